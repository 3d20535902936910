"""Trust policy: which public keys count, how many must agree, and until when.

A policy file (`provenance.toml`) names keys with inline PEM, so it can be reviewed and
committed like code:

    [trust]
    threshold = 1                      # distinct trusted signers needed per check
    require-tier = "isolated"          # optional: only statements of this tier count (tier.py)

    [trust.keys.alice]
    public_key = "-----BEGIN PUBLIC KEY-----\\n...\\n-----END PUBLIC KEY-----\\n"
    expires = 2027-06-30               # optional: signatures by this key stop counting after

    [trust.keys.build-service]
    public_key = "..."
    service = true                     # the attestation service's key (`provenance serve`)

    [environment]                      # optional: what a statement's recorded Nix environment
    allowed-sandbox-paths = []         # may be (environment.EnvironmentPolicy; docs/verify.md)

`provenance trust add NAME PUB` writes it (tomli-w), keeping other tables, such as the
`[definition] paths` that definition.py reads (what else defines the checks). Verification and the gate take either
`--trusted-key PUB...` (threshold 1, no expiry) or a policy file, and both apply the one
threshold rule here (`count_signers`): a statement authenticates with any one trusted key,
and a check needs `threshold` distinct trusted signers of statements that agree on its
drvPath and every output digest.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provenance.errors import KeyFileError, UsageError, VerificationError
from provenance.formats import dsse
from provenance.formats.dsse import Envelope
from provenance.formats.keys import PublicKey, load_public_key, public_key_from_pem
from provenance.policy.environment import EnvironmentPolicy
from provenance.policy.tier import TIERS

POLICY_FILE = "provenance.toml"


@dataclass(frozen=True)
class TrustedKey:
    name: str
    key: PublicKey
    expires: dt.date | None = None
    service: bool = False  # the key of an attestation service: its statements may be isolated

    def active(self, today: dt.date) -> bool:
        return self.expires is None or today <= self.expires


@dataclass(frozen=True)
class TrustPolicy:
    keys: tuple[TrustedKey, ...]
    threshold: int = 1
    source: str = "--trusted-key"
    environment: EnvironmentPolicy = field(default_factory=EnvironmentPolicy)
    files: tuple[str, ...] = ()  # the key files given with --trusted-key (where trust came from)
    require_tier: str | None = None  # only statements of this tier or above count (tier.py)

    def active_keys(self, today: dt.date | None = None) -> list[PublicKey]:
        day = today or dt.datetime.now(dt.UTC).date()
        return [k.key for k in self.keys if k.active(day)]

    def service_keys(self) -> dict[str, str]:
        """keyid -> name of the keys marked `service = true`."""
        return {k.key.keyid: k.name for k in self.keys if k.service}

    def expired_signers(self, envelope: Envelope, today: dt.date | None = None) -> tuple[str, ...]:
        """ "NAME (trusted until DATE)" for each expired trusted key that signed `envelope`.

        Asked only after verification with the active keys failed, so that a signature by
        a key whose trust ran out is reported as that, not as tampering.
        """
        day = today or dt.datetime.now(dt.UTC).date()
        expired = [k for k in self.keys if not k.active(day)]
        if not expired:
            return ()
        try:
            signed = dsse.verify(envelope, [k.key for k in expired]).keyids
        except VerificationError:
            return ()
        return tuple(
            f"{k.name} (trusted until {k.expires})" for k in expired if k.key.keyid in signed
        )

    def name_of(self, keyid: str) -> str:
        for k in self.keys:
            if k.key.keyid == keyid:
                return k.name
        return keyid[:16]


def from_key_files(paths: list[Path]) -> TrustPolicy:
    """Trust exactly these public key files (threshold 1, no expiry).

    Each signer is named by its file name, or by the path as given when two files share
    a name (every `keygen` writes `provenance.pub`: "alice/provenance.pub", not twice
    "provenance.pub").
    """
    names = [p.name for p in paths]
    keys = tuple(
        TrustedKey(p.name if names.count(p.name) == 1 else str(p), load_public_key(p))
        for p in paths
    )
    return TrustPolicy(keys, files=tuple(str(p) for p in paths))


MAX_POLICY_BYTES = 1024 * 1024


def _read_policy_text(path: Path) -> str:
    """The policy file's text; refuses devices and FIFOs, which never end or block."""
    if path.exists() and not path.is_file():
        kind = "a directory" if path.is_dir() else "not a regular file"
        msg = f"policy file {path} is {kind}"
        raise UsageError(msg, f"pass the file, e.g. {POLICY_FILE}")
    with path.open("rb") as f:
        data = f.read(MAX_POLICY_BYTES + 1)
    if len(data) > MAX_POLICY_BYTES:
        msg = f"policy file {path} is over the {MAX_POLICY_BYTES}-byte limit"
        raise UsageError(msg)
    return data.decode()


def _read_policy(path: Path) -> dict[str, Any]:
    """The policy file as TOML data; one UsageError for every way it can be unreadable."""
    try:
        return tomllib.loads(_read_policy_text(path))
    except FileNotFoundError:
        msg = f"policy file {path} does not exist"
        raise UsageError(msg, "create it with `provenance trust add NAME PUB`") from None
    except (OSError, UnicodeDecodeError) as e:
        msg = f"cannot read policy file {path}: {e}"
        raise UsageError(msg) from None
    except ValueError as e:  # TOMLDecodeError, or a number over 4300 digits long
        msg = f"policy file {path} is not valid TOML: {e}"
        raise UsageError(msg) from None
    except RecursionError:
        # tomllib recurses per nesting level: `a = [[[[...` deep enough blows the stack.
        msg = f"policy file {path} is nested too deeply to be a trust policy"
        raise UsageError(msg) from None


def load_policy(path: Path) -> TrustPolicy:
    data = _read_policy(path)
    trust = data.get("trust", {})
    if not isinstance(trust, dict):
        msg = f"{path}: [trust] must be a table"
        raise UsageError(msg)
    entries = trust.get("keys", {})
    if not isinstance(entries, dict):
        msg = f"{path}: trust.keys must be a table of named keys"
        raise UsageError(msg, "add keys with `provenance trust add NAME PUB`")
    keys = [_entry(path, name, entry) for name, entry in entries.items()]
    threshold = trust.get("threshold", 1)
    if not isinstance(threshold, int) or isinstance(threshold, bool) or threshold < 1:
        msg = f"{path}: trust.threshold must be a positive integer"
        raise UsageError(msg)
    if not keys:
        msg = f"{path} trusts no keys"
        raise UsageError(msg, "add one with `provenance trust add NAME PUB`")
    seen: dict[str, str] = {}
    for k in keys:
        if k.key.keyid in seen:
            msg = f"{path}: keys {seen[k.key.keyid]} and {k.name} are the same key"
            raise UsageError(msg, "a key counts once toward a threshold; list it once")
        seen[k.key.keyid] = k.name
    if threshold > len(keys):
        msg = f"{path}: threshold {threshold} exceeds the {len(keys)} key(s) it names"
        raise UsageError(msg)
    environment = EnvironmentPolicy.from_table(data.get("environment"), str(path))
    require = trust.get("require-tier")
    if require is not None and require not in TIERS:
        msg = f"{path}: trust.require-tier must be one of {', '.join(TIERS)}"
        raise UsageError(msg, "see docs/verify.md, Tiers")
    if require is not None and require != TIERS[0] and not any(k.service for k in keys):
        msg = f"{path}: trust.require-tier is {require!r}, but no key is marked service = true"
        raise UsageError(
            msg, "trust the service's key with `provenance trust add NAME PUB --service`"
        )
    return TrustPolicy(tuple(keys), threshold, str(path), environment, require_tier=require)


def _entry(path: Path, name: str, entry: Any, table: str = "trust.keys") -> TrustedKey:
    if not isinstance(entry, dict) or not isinstance(entry.get("public_key"), str):
        msg = f"{path}: {table}.{name} needs a public_key PEM string"
        raise UsageError(msg)
    try:
        key = public_key_from_pem(entry["public_key"].encode(), f"{path}:{name}")
    except KeyFileError as e:
        raise UsageError(f"{path}: {table}.{name}: {e.message}") from None
    service = entry.get("service", False)
    if not isinstance(service, bool):
        msg = f"{path}: {table}.{name}.service must be true or false"
        raise UsageError(msg)
    expires = entry.get("expires")
    if isinstance(expires, dt.datetime):
        expires = expires.date()
    if expires is not None and not isinstance(expires, dt.date):
        msg = f"{path}: {table}.{name}.expires must be a date (YYYY-MM-DD)"
        raise UsageError(msg)
    return TrustedKey(name, key, expires, service)


def read_policy_data(path: Path) -> dict[str, Any]:
    """The policy file as TOML data (other tables than [trust] are read by their owners)."""
    return _read_policy(path)


def key_entry(where: Path | str, name: str, entry: Any, table: str) -> TrustedKey:
    """One named key entry of `table` (`public_key`, optional `expires`), as in [trust.keys]."""
    return _entry(Path(where), name, entry, table)


def _editable(policy_path: Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(the whole file, its [trust] table, trust.keys) for editing; refuses what it cannot edit."""
    data = _read_policy(policy_path) if policy_path.exists() else {}
    trust = data.setdefault("trust", {})
    if not isinstance(trust, dict) or not isinstance(trust.setdefault("keys", {}), dict):
        msg = f"{policy_path}: [trust] and trust.keys must be tables; not changing it"
        raise UsageError(msg, "fix the file by hand (see docs/verify.md), then try again")
    return data, trust, trust["keys"]


def _write(policy_path: Path, data: dict[str, Any]) -> None:
    import tomli_w  # noqa: PLC0415 - only the trust commands write TOML

    from provenance.formats.bundle import write_atomic  # noqa: PLC0415

    write_atomic(policy_path, tomli_w.dumps(data).encode())


def write_policy_data(policy_path: Path, data: dict[str, Any]) -> None:
    """Write the whole policy file atomically (the owners of other tables edit through this)."""
    _write(policy_path, data)


def add_key(
    policy_path: Path,
    name: str,
    pub: Path,
    expires: dt.date | None = None,
    *,
    service: bool = False,
) -> TrustedKey:
    """Add or replace key NAME in the policy file, keeping everything else in it.

    `service`: NAME is an attestation service's key (`provenance serve`), whose statements
    count as the isolated tier (tier.py).

    The same key under a second name is refused here: `verify` and `gate` would refuse
    the whole policy afterwards (a key counts once toward a threshold).
    """
    key = load_public_key(pub)
    data, trust, keys = _editable(policy_path)
    for other, existing in keys.items():
        if other != name and isinstance(existing, dict) and existing.get("keyid") == key.keyid:
            msg = f"{policy_path} already trusts this key as {other!r}"
            raise UsageError(
                msg, f"remove it first (`provenance trust remove {other}`) to rename it"
            )
    trust.setdefault("threshold", 1)
    entry: dict[str, Any] = {"public_key": key.pem().decode(), "keyid": key.keyid}
    if expires:
        entry["expires"] = expires
    if service:
        entry["service"] = True
    keys[name] = entry
    _write(policy_path, data)
    return TrustedKey(name, key, expires, service)


def remove_key(policy_path: Path, name: str) -> None:
    """Remove key NAME; refuses to leave a threshold the remaining keys cannot meet."""
    if not policy_path.exists():
        msg = f"policy file {policy_path} does not exist"
        raise UsageError(msg)
    data, trust, keys = _editable(policy_path)
    if name not in keys:
        known = ", ".join(sorted(keys)) or "none"
        msg = f"{policy_path} has no key named {name!r} (keys: {known})"
        raise UsageError(msg, "`provenance trust list` shows them")
    threshold = trust.get("threshold", 1)
    if isinstance(threshold, int) and threshold > len(keys) - 1:
        msg = f"removing {name!r} would leave {len(keys) - 1} key(s) for threshold {threshold}"
        raise UsageError(msg, "lower it first with `provenance trust threshold N`")
    del keys[name]
    _write(policy_path, data)


def set_threshold(policy_path: Path, threshold: int) -> None:
    """How many distinct trusted signers must agree; between 1 and the number of keys."""
    data, trust, keys = _editable(policy_path)
    if not 1 <= threshold <= len(keys):
        msg = (
            f"threshold {threshold} is not between 1 and the {len(keys)} key(s) {policy_path} names"
        )
        raise UsageError(msg, "add keys with `provenance trust add NAME PUB` first")
    trust["threshold"] = threshold
    _write(policy_path, data)


# -- the threshold rule, shared by `verify` and `gate` ------------------------------------


@dataclass(frozen=True)
class Endorsement:
    """One authentic, bound statement about a check's exact derivation.

    keyids: the trusted keys whose signatures on it verified (each envelope authenticates
    with any one trusted key); subjects: what it says the outputs are (path -> sha256).
    """

    keyids: frozenset[str]
    subjects: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, keyids: frozenset[str], subjects: dict[str, str]) -> Endorsement:
        return cls(keyids, tuple(sorted(subjects.items())))


@dataclass(frozen=True)
class Tally:
    passed: bool
    count: int
    threshold: int
    signers: tuple[str, ...]  # names of the counted signers
    subjects: tuple[tuple[str, str], ...]  # the outputs they agree on
    dissent: tuple[str, ...] = ()  # names of trusted signers who attested other digests

    @property
    def reason(self) -> str:
        names = f" ({', '.join(self.signers)})" if self.signers else ""
        text = f"{self.count} of {self.threshold} required trusted signer(s){names}"
        if not self.passed:
            text = "only " + text
        if self.dissent:
            text += (
                f"; {', '.join(self.dissent)} attested different output digests for the same "
                "drvPath, which do not add up (nondeterministic build, or a forgery)"
            )
        return text


def count_signers(policy: TrustPolicy, endorsements: list[Endorsement]) -> Tally:
    """The one threshold rule: distinct trusted signers who agree on the same outputs.

    The caller passes the endorsements of one check's one drvPath (each already
    authentic and bound). They are grouped by their subjects, exact paths and digests;
    the group with the most distinct signers counts (the first one on a tie, so callers
    list newest first), and the check passes when it has at least `policy.threshold`.
    Signers who attested other digests never add to it; they are named in `dissent`.
    """
    groups: dict[tuple[tuple[str, str], ...], set[str]] = {}
    for e in endorsements:
        groups.setdefault(e.subjects, set()).update(e.keyids)
    if not groups:
        return Tally(False, 0, policy.threshold, (), ())
    best = max(groups, key=lambda s: len(groups[s]))  # max keeps the first of equals
    # Anyone who also signed other digests contradicts themselves: they are dissent, and
    # never count toward the threshold.
    others = set().union(*(k for s, k in groups.items() if s != best))
    counted = groups[best] - others
    return Tally(
        passed=len(counted) >= policy.threshold,
        count=len(counted),
        threshold=policy.threshold,
        signers=tuple(sorted(policy.name_of(k) for k in counted)),
        subjects=best,
        dissent=tuple(sorted(policy.name_of(k) for k in others)),
    )
