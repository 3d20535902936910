"""What nix's failures mean: the one line worth showing, and the evaluation errors that
are the user's to fix (exit 2) rather than nix's. Used by the runner (nix.py) only;
apart from it so that the runner stays about which command to run.
"""

from __future__ import annotations

from provenance.doors import proc
from provenance.errors import NixError, UsageError


def unknown_command(stderr: str) -> bool:
    # How nix (and the forks) say a subcommand does not exist in this release.
    return "not a recognised command" in stderr or "unrecognised" in stderr


def failure(done: proc.Completed, message: str) -> NixError:
    return NixError(message, cmd=done.cmd, returncode=done.returncode, stderr=done.stderr)


def last_error(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    for ln in lines:
        if ln.startswith("error:"):
            return ln.removeprefix("error:").strip()
    return lines[-1] if lines else "no error message"


def eval_error(done: proc.Completed) -> Exception:
    err = done.stderr
    first = last_error(err)
    if "does not provide attribute" in err and "checks" in err:
        return UsageError(
            "the flake has no `checks` output", "add checks.<system>.<name> to flake.nix"
        )
    if (
        "path '" in err and "flake.nix' does not exist" in err
    ) or "does not contain a 'flake.nix'" in err:
        return UsageError(f"not a flake: {first}", "run in a directory with a flake.nix")
    if "is not a valid URL" in err or "getting status of" in err:
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
