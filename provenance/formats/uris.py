"""Type URIs we emit and accept. A module of its own so that readers of statements
(claims.py, on the cache-hit path) need not import pydantic."""

from __future__ import annotations

from pathlib import Path

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1"
TEST_RESULT_V01 = "https://in-toto.io/attestation/test-result/v0.1"
VSA_V1 = "https://slsa.dev/verification_summary/v1"
_DOC = "https://github.com/provenance-nix/provenance/blob/main/docs/attestation-format.md"
# Our buildType and local builder id: documented field by field in docs/attestation-format.md.
BUILD_TYPE = f"{_DOC}#nix-flake-check-v1"
BUILDER_ID = f"{_DOC}#local-builder-v1"
# A reviewer's acceptance of a commit's test deltas and protected-path changes
# (provenance/review/approval.py; docs/attestation-format.md#approval-v1).
APPROVAL_V1 = f"{_DOC}#approval-v1"
# The attestation service (`provenance serve`): the key is the service's, out of the
# requester's reach; its statements say trustTier "isolated" (docs/service.md).
SERVICE_BUILDER_ID = f"{_DOC}#isolated-builder-v1"


def git_file_flake(top: str, *, rev: str | None = None, subdir: str = "") -> str:
    """The flake URL of a local git repository, at `rev` when given.

    The path is percent-encoded: a repository under `/home/me/my code` or `/srv/a#b?c` is
    otherwise cut at the `#` or `?` (nothing could be built, and the error blamed
    `flake.nix`). Ordinary paths come out unchanged, so URLs in existing statements do not
    move. Nix decodes it (tests/integration/test_odd_repo_paths.py).
    """
    from urllib.parse import quote  # noqa: PLC0415 - urllib is not needed by readers

    query = ([f"rev={rev}"] if rev else []) + ([f"dir={quote(subdir, safe='/')}"] if subdir else [])
    # What RFC 3986 allows raw in a path stays raw (sub-delims, ':' and '@').
    path = quote(top, safe="/!$&'()*+,;=:@")
    return f"git+file://{path}" + (f"?{'&'.join(query)}" if query else "")


def flake_subdir(flake_dir: Path, top: Path) -> str:
    """The flake's directory inside the repository at `top`, as a ref's `dir=` ("" at top)."""
    return flake_dir.relative_to(top).as_posix() if flake_dir != top else ""


def local_path(flake_url: str) -> str:
    """The repository path of a `git+file://` URL (`git_file_flake` inverted)."""
    from urllib.parse import unquote, urlsplit  # noqa: PLC0415

    return unquote(urlsplit(flake_url).path)
