"""`gate --policy-ref`: the one trusted ref whose provenance.toml decides, and that policy.

Git resolves a short name through several namespaces in turn (refs/NAME, refs/tags/NAME,
refs/heads/NAME, refs/remotes/NAME, refs/remotes/NAME/HEAD), so a tag or a local branch
called `origin/main` wins over the remote-tracking branch `refs/remotes/origin/main`.
Anyone who may push a tag (and `actions/checkout` with `fetch-depth: 0` fetches tags)
could then choose the policy that trusts their own key. So the name resolves to exactly
one ref, or it is an error naming the candidates (the gate then fails safe: it runs):
- a full ref name (`refs/remotes/origin/main`, `refs/heads/main`) is taken as it is;
- a short name must be a remote-tracking branch (`origin/main` for
  `refs/remotes/origin/main`) that no other ref answers to.
The policy is then read from the commit that ref points at, by its id, never by name.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from provenance.doors.git import Git
from provenance.errors import UsageError
from provenance.policy.trust import POLICY_FILE, TrustPolicy, load_policy


@dataclass(frozen=True)
class TrustedRef:
    name: str  # the full ref name, e.g. refs/remotes/origin/main
    commit: str


def candidates(name: str) -> list[str]:
    """The refs git would take a short `name` for, in git's order (git-rev-parse(1))."""
    return [
        f"refs/{name}",
        f"refs/tags/{name}",
        f"refs/heads/{name}",
        f"refs/remotes/{name}",
        f"refs/remotes/{name}/HEAD",
    ]


def resolve(git: Git, name: str) -> TrustedRef:
    """The one ref `name` stands for; UsageError when it is missing or ambiguous."""
    if name.startswith("refs/"):
        found = git.refs([name])
        if name not in found:
            msg = f"trusted ref {name} does not exist here"
            raise UsageError(msg, _fetch_hint(name))
        return TrustedRef(name, _commit(git, name, found[name]))
    found = git.refs(candidates(name))
    tracking = f"refs/remotes/{name}"
    others = [r for r in candidates(name) if r in found and r != tracking]
    if tracking in found and not others:
        return TrustedRef(tracking, _commit(git, tracking, found[tracking]))
    if not found:
        msg = f"trusted ref {name} does not exist here (no ref {tracking})"
        raise UsageError(msg, _fetch_hint(tracking))
    named = ", ".join(r for r in candidates(name) if r in found)
    if tracking in found:
        msg = f"trusted ref {name} is ambiguous: it names {named}"
        hint = f"pass the full ref name, e.g. --policy-ref {tracking}"
    else:
        msg = f"trusted ref {name} is not a remote-tracking branch: it names {named}"
        hint = f"pass a full ref name (e.g. --policy-ref {tracking} or {others[0]})"
    raise UsageError(msg, hint)


def _commit(git: Git, ref: str, obj: str) -> str:
    commit = git.resolve_ref(obj)  # an object id: nothing for git to resolve by name
    if commit is None:
        msg = f"trusted ref {ref} does not point at a commit"
        raise UsageError(msg)
    return commit


def _fetch_hint(ref: str) -> str:
    parts = ref.split("/", 3)
    if len(parts) == 4 and parts[1] == "remotes":
        return f"fetch it first (e.g. `git fetch {parts[2]} {parts[3]}`)"
    return "fetch or create it first"


def policy_from_ref(git: Git, name: str, subdir: str) -> TrustPolicy:
    """The provenance.toml of the flake directory as it is on the trusted ref."""
    ref = resolve(git, name)
    path = f"{subdir}/{POLICY_FILE}" if subdir else POLICY_FILE
    where = f"{ref.name}:{path}"
    data = git.show_file(ref.commit, path)
    if data is None:
        msg = f"no {path} on the trusted ref {ref.name}"
        raise UsageError(msg, "commit a policy there with `provenance trust add` first")
    # load_policy reads files; give it one, and name the ref (not the temp file) in errors.
    with tempfile.TemporaryDirectory(prefix="provenance-policy-") as tmp:
        tmp_path = Path(tmp) / POLICY_FILE
        tmp_path.write_bytes(data)
        try:
            policy = load_policy(tmp_path)
        except UsageError as e:
            raise UsageError(e.message.replace(str(tmp_path), where), e.hint) from None
    return TrustPolicy(policy.keys, policy.threshold, where, policy.environment)
