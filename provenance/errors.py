"""One error hierarchy for the whole tool.

Library code raises a subclass of `ProvenanceError`; only the CLI (`cli/`) turns it into a
one-line message and an exit code. Each class carries its exit code so the mapping
lives in exactly one place, and `docs/cli.md` documents the same table.
"""

from __future__ import annotations


class ExitCode:
    """Documented exit codes (see docs/cli.md)."""

    OK = 0
    FAILED = 1  # a check failed to build, or verification failed
    USAGE = 2  # bad usage or unreadable input: key, flake, bundle, options
    REFUSED = 3  # the tool cannot honestly attest this (dirty tree, no sandbox, impure)
    ENVIRONMENT = 4  # nix/git missing or misbehaving, or an I/O failure


class ProvenanceError(Exception):
    """Base class. `message` says what is wrong, `hint` what to do about it."""

    exit_code = ExitCode.ENVIRONMENT

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def diagnostics(self) -> str:
        """The one line shown to the user."""
        return f"{self.message} ({self.hint})" if self.hint else self.message


class UsageError(ProvenanceError):
    """Bad options or unreadable input (missing key, not a flake, unknown check)."""

    exit_code = ExitCode.USAGE


class KeyFileError(UsageError):
    """A signing or public key cannot be read or is not Ed25519."""


class RefusedError(ProvenanceError):
    """The build cannot be attested honestly, so nothing is attested."""

    exit_code = ExitCode.REFUSED


class NotADerivationError(RefusedError):
    """A check is not a derivation that evaluating this commit produced (see nix.py)."""


class BuildFailedError(ProvenanceError):
    """A check's derivation failed to build (its tests failed)."""

    exit_code = ExitCode.FAILED


class NixError(ProvenanceError):
    """`nix` could not be run, or exited non-zero where that was not expected."""

    exit_code = ExitCode.ENVIRONMENT

    def __init__(
        self,
        message: str,
        hint: str | None = None,
        *,
        cmd: list[str] | None = None,
        returncode: int | None = None,
        stderr: str = "",
    ) -> None:
        super().__init__(message, hint)
        self.cmd = cmd or []
        self.returncode = returncode
        self.stderr = stderr


class StoreReadError(ProvenanceError):
    """A store path could not be read to hash it (missing, unreadable, a special file)."""

    exit_code = ExitCode.ENVIRONMENT


class GitError(ProvenanceError):
    """`git` could not be run, or refused an operation."""

    exit_code = ExitCode.ENVIRONMENT


class AttestationError(UsageError):
    """A bundle or envelope is malformed (garbage JSON, wrong shape, too large)."""


class VerificationError(ProvenanceError):
    """A signature, binding or rebuild check failed."""

    exit_code = ExitCode.FAILED


class PolicyViolation(VerificationError):
    """Verified statements do not satisfy the trust policy."""


class ServiceError(ProvenanceError):
    """The attestation service cannot be reached, or broke the protocol (service/)."""

    exit_code = ExitCode.ENVIRONMENT


class RemoteError(ProvenanceError):
    """An error the attestation service reported, with the exit code it chose."""

    def __init__(self, message: str, hint: str | None, exit_code: int) -> None:
        super().__init__(message, hint)
        self.exit_code = exit_code
