"""What nix's failures mean: the message and hint of a NixError (or UsageError) for a nix
call that failed, read from its exit status and stderr.

Apart from nix.py, which runs nix, because this only reads what came back. A nix killed
by a signal printed nothing about it (`ulimit -f` sends SIGXFSZ mid-write), so the
signal is named here rather than "no error message".
"""

from __future__ import annotations

from provenance.doors import proc
from provenance.errors import NixError, UsageError


def unknown_command(stderr: str) -> bool:
    # How nix (and the forks) say a subcommand does not exist in this release.
    return "not a recognised command" in stderr or "unrecognised" in stderr


def failure(done: proc.Completed, message: str) -> NixError:
    return NixError(
        message, _signal_hint(done), cmd=done.cmd, returncode=done.returncode, stderr=done.stderr
    )


# What a signal usually means for nix, for the hint of a nix that was killed.
_SIGNAL_HINTS = {
    "SIGXFSZ": "a file-size limit was reached (`ulimit -f`): raise or remove it",
    "SIGKILL": "it was killed from outside, often by the out-of-memory killer",
    "SIGSEGV": "nix crashed; report it with `nix --version`",
    "SIGTERM": "something stopped it (a timeout, a CI job being cancelled?)",
    "SIGINT": "it was interrupted",
}


def _signal_hint(done: proc.Completed) -> str | None:
    sig = done.signal
    return _SIGNAL_HINTS.get(sig.split(" ")[0]) if sig else None


def why(done: proc.Completed) -> str:
    """Why a nix call failed: the signal that killed it, or its own error message."""
    if (sig := done.signal) is not None:
        return f"nix was killed by {sig}"
    return last_error(done.stderr)


def last_error(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    for ln in lines:
        # Nix 2.34 may print a bare "error:" and the trace below it, the cause on a nested
        # "error: ..." line: the first error line that says something.
        if ln.startswith("error:") and ln.removeprefix("error:").strip():
            return ln.removeprefix("error:").strip()
    return lines[-1] if lines else "no error message"


def eval_error(done: proc.Completed) -> Exception:
    err = done.stderr
    first = why(done)
    if done.signal is not None:  # its stderr ends mid-evaluation: nothing below applies
        return failure(done, f"evaluating the flake failed: {first}")
    if "does not provide attribute" in err and "checks" in err:
        return UsageError(
            "the flake has no `checks` output", "add checks.<system>.<name> to flake.nix"
        )
    if (
        "path '" in err and "flake.nix' does not exist" in err
    ) or "does not contain a 'flake.nix'" in err:
        return UsageError(f"not a flake: {first}", "run in a directory with a flake.nix")
    if "is not a valid URL" in err:
        # Not a missing file: the flake URL itself (uris.git_file_flake encodes the path).
        return UsageError(
            f"cannot evaluate the flake: {first}",
            "nix cannot read this flake URL; report it with the repository's path",
        )
    if "getting status of" in err:
        return UsageError(
            f"cannot evaluate the flake: {first}",
            "is flake.nix added to git (`git add flake.nix`)?",
        )
    if "requires lock file changes" in err:
        return UsageError(
            "flake.lock is missing or out of date",
            "run `nix flake lock` and commit flake.lock",
        )
    return NixError(f"evaluating the flake failed: {first}", cmd=done.cmd, stderr=err)
