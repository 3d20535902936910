"""Which trust policy a verification uses: explicit keys, a policy file, or the repo's own.

Order: `--trusted-key PUB...` (threshold 1, no expiry), else `--policy FILE`, else the
`provenance.toml` in the flake directory. NOTE: that file is read from the work tree of
the repository being verified, so whoever controls the repository controls it; a
reviewer who does not trust the repository passes keys or a policy of their own, and
`verify --sign-with` refuses trust from inside the repository (verify.py). With none of these there is nothing to trust, and verification refuses to start: an
empty trust set must never pass anything.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from provenance.errors import RefusedError, UsageError
from provenance.policy.trust import POLICY_FILE, TrustPolicy, from_key_files, load_policy


def resolve(
    trusted_keys: list[Path], policy_file: Path | None, search_dirs: list[Path]
) -> TrustPolicy:
    if trusted_keys and policy_file:
        msg = "pass either --trusted-key or --policy, not both"
        raise UsageError(msg)
    if trusted_keys:
        return from_key_files(trusted_keys)
    if policy_file:
        return load_policy(policy_file)
    for d in search_dirs:
        candidate = d / POLICY_FILE
        if candidate.is_file():
            return load_policy(candidate)
    msg = "no trusted keys: pass --trusted-key PUB or --policy FILE"
    raise UsageError(msg, f"or commit a {POLICY_FILE} made with `provenance trust add NAME PUB`")


def digest(policy: TrustPolicy) -> str:
    """SHA-256 identifying the policy in a verification summary.

    A policy file is identified by its bytes; `--trusted-key` by the sorted keyids and
    the threshold, so the same keys always give the same digest.
    """
    if policy.source != "--trusted-key":
        try:
            return hashlib.sha256(Path(policy.source).read_bytes()).hexdigest()
        except OSError:
            pass
    ids = sorted(k.key.keyid for k in policy.keys)
    return hashlib.sha256(f"threshold={policy.threshold};keys={','.join(ids)}".encode()).hexdigest()


def in_tree(policy: TrustPolicy, top: Path) -> Path | None:
    """The first trust file (policy or key) inside the repository at `top`, if any."""
    files = [*policy.files, *([] if policy.source == "--trusted-key" else [policy.source])]
    for f in files:
        path = Path(f).resolve()
        if path.is_relative_to(top.resolve()):
            return path
    return None


def check_source(policy: TrustPolicy, top: Path, *, signing: bool) -> str | None:
    """Trust from the reviewed tree is its author's choice: a warning, and never a VSA.

    Returns the warning to show (None when the trust comes from outside); raises
    RefusedError when a verification summary would be signed on such trust.
    """
    inside = in_tree(policy, top)
    if inside is None:
        return None
    why = f"trust comes from {inside}, in the tree under review: whoever can change this "
    if signing:
        # A signed summary says a reviewer checked the claims against *their* policy; one
        # made on keys the reviewed repository chose would vouch for nothing.
        msg = why + "repository chooses the keys, so no verification summary is signed on it"
        raise RefusedError(msg, "pass --trusted-key or --policy from outside the repository")
    return why + "repository chooses the keys; pass --trusted-key or --policy from outside it"
