"""`provenance publish`: copy a commit's attested outputs to a Nix binary cache.

Which attestations: the lines of the git note on REV signed by a trusted key (the same
trust as `verify`: --trusted-key, --policy or the repo's provenance.toml) that are SLSA
provenance for REV. A note is a shared log anyone can push to; without this rule a
stranger's line could name any path in this store (a private one, say) and have it
uploaded and signed with the cache's key.

Which paths (`--closure`, docs/cache.md):
- outputs (default): the attested outputs. Nix copies what a path references with it
  (a cache must be closed under references), so this is their runtime closure;
- runtime: plus what the check's builder saw: its sources and the outputs of
  its input derivations, with their references. What a reviewer needs to rebuild only
  the check;
- build: plus the outputs of every derivation in the check's build closure that this
  store holds, so a reviewer can substitute any of them.

Every attested output must be in this store with exactly the attested NAR hash (as
Nix recorded it; Nix re-hashes while copying and refuses a corrupted path), or nothing
is copied. The bundle travels too: the trusted lines become a content-addressed store
path, `provenance-<commit>.intoto.jsonl`, copied to the same cache (the git notes stay
the index; this copy serves machines without the notes, such as a fork's CI).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from provenance.doors.git import Git
from provenance.doors.nix import Nix
from provenance.errors import (
    NixError,
    ProvenanceError,
    RefusedError,
    UsageError,
    VerificationError,
)
from provenance.formats import dsse
from provenance.formats.claims import ProvenanceClaim, load_statement, parse_provenance
from provenance.formats.uris import SLSA_PROVENANCE_V1
from provenance.policy.trust import TrustPolicy
from provenance.progress import Reporter

Closure = Literal["outputs", "runtime", "build"]
CLOSURES: tuple[Closure, ...] = ("outputs", "runtime", "build")


@dataclass(frozen=True)
class PublishRequest:
    flake_dir: Path
    to: str  # a store URL: file:///dir, http(s)://host/..., s3://bucket, ...
    policy: TrustPolicy
    rev: str = "HEAD"
    secret_key: Path | None = None
    closure: Closure = "outputs"
    bundle: bool = True


@dataclass
class PublishReport:
    """What was (or would have been) published; `error` set when it stopped."""

    rev: str
    to: str
    closure: str
    signed: bool
    checks: list[dict[str, Any]] = field(default_factory=list)
    sizes: dict[str, int] = field(default_factory=dict)  # every path sent or there: NAR bytes
    copied: list[str] = field(default_factory=list)
    unfinished: list[str] = field(default_factory=list)  # started when the copy failed
    not_in_store: list[str] = field(default_factory=list)  # closure paths this store lacks
    bundle: str | None = None
    skipped_lines: int = 0
    error: str | None = None

    @property
    def already_there(self) -> list[str]:
        if self.error is not None:
            return []  # unknown: the copy did not finish
        sent = set(self.copied)
        return sorted(p for p in self.sizes if p not in sent)

    def as_json(self) -> dict[str, Any]:
        copied_bytes = sum(self.sizes.get(p, 0) for p in self.copied)
        return {
            "ok": self.error is None,
            "error": self.error,
            "rev": self.rev,
            "to": self.to,
            "closure": self.closure,
            "signed": self.signed,
            "checks": self.checks,
            "paths": len(self.sizes),
            "bytes": sum(self.sizes.values()),
            "copied": sorted(self.copied),
            "copiedBytes": copied_bytes,
            "alreadyThere": self.already_there,
            "alreadyThereBytes": sum(self.sizes[p] for p in self.already_there),
            "notInStore": sorted(self.not_in_store),
            "unfinished": sorted(self.unfinished),
            "bundle": self.bundle,
            "skippedLines": self.skipped_lines,
        }


class PublishError(ProvenanceError):
    """Publishing stopped; `report` holds what was known (the CLI prints it as JSON)."""

    def __init__(self, cause: ProvenanceError, report: PublishReport) -> None:
        super().__init__(cause.message, cause.hint)
        self.exit_code = cause.exit_code
        self.report = report


def _shown(url: str) -> str:
    return url.split("?", 1)[0]


def _signed_url(url: str, key: Path | None) -> str:
    if key is None:
        return url
    try:
        text = key.read_text().strip()
    except (OSError, UnicodeDecodeError) as e:
        msg = f"cannot read the cache's secret key {key}: {getattr(e, 'strerror', None) or e}"
        raise UsageError(msg, "make one with `nix key generate-secret --key-name NAME`") from None
    if ":" not in text or len(text.partition(":")[2]) < 80:  # 64 bytes in base64
        msg = f"{key} is not a Nix secret key (NAME:BASE64 of 64 bytes)"
        raise UsageError(msg, "make one with `nix key generate-secret --key-name NAME`")
    return f"{url}{'&' if '?' in url else '?'}secret-key={key.resolve()}"


def trusted_claims(
    git: Git, rev: str, policy: TrustPolicy
) -> tuple[list[ProvenanceClaim], list[bytes], int]:
    """REV's provenance claims signed by a trusted key; every trusted line; lines skipped."""
    note = git.note(rev) or b""
    claims: list[ProvenanceClaim] = []
    lines: list[bytes] = []
    skipped = 0
    for line in (ln for ln in note.split(b"\n") if ln.strip()):
        try:
            verified = dsse.verify(dsse.Envelope.from_json(line), policy.active_keys())
            stmt = load_statement(verified.payload)
        except (UsageError, VerificationError):
            skipped += 1  # not an envelope, or not signed by a key we trust
            continue
        lines.append(line)
        if stmt.get("predicateType") != SLSA_PROVENANCE_V1:
            continue  # a test result or a verification summary: it travels in the bundle
        try:
            claim = parse_provenance(stmt)
        except UsageError:
            skipped += 1
            continue
        if claim.commit == rev and not claim.dirty:
            claims.append(claim)
    return claims, lines, skipped


def _selection(nix: Nix, claims: list[ProvenanceClaim], closure: Closure) -> list[str]:
    """The paths to copy for `closure`, attested outputs first (Nix adds references)."""
    paths = [p for c in claims for p in sorted(c.subjects)]
    drvs = sorted({c.drv_path for c in claims})
    if closure == "runtime":
        nodes = nix.derivations(drvs)
        inputs = sorted({i for d in nodes.values() for i in d.input_drvs})
        outs = nix.derivations(inputs) if inputs else {}
        for d in nodes.values():
            paths += d.input_srcs
            for i, names in d.input_drvs.items():
                paths += [o.path for o in outs[i].outputs if o.name in names and o.path]
    elif closure == "build":
        for d in nix.derivations(drvs, recursive=True).values():
            paths += [*d.input_srcs, *(o.path for o in d.outputs if o.path)]
    return list(dict.fromkeys(paths))


def _check_outputs(nix: Nix, claims: list[ProvenanceClaim]) -> None:
    attested = {p: d for c in claims for p, d in c.subjects.items()}
    have = nix.path_info(attested)
    missing = sorted(p for p in attested if p not in have)
    if missing:
        msg = f"attested output {missing[0]} is not in this store ({len(missing)} missing)"
        raise ProvenanceError(msg, "run `provenance build` again, then publish")
    for path, digest in sorted(attested.items()):
        if have[path].nar_hash != digest:
            msg = (
                f"{path} in this store has NAR SHA-256 {have[path].nar_hash[:16]}..., "
                f"not the attested {digest[:16]}...: not publishing it"
            )
            raise RefusedError(msg, f"delete it (`nix store delete {path}`) and rebuild")


def _add_bundle(nix: Nix, rev: str, lines: list[bytes]) -> str:
    with tempfile.TemporaryDirectory(prefix="provenance-publish-") as tmp:
        path = Path(tmp) / f"provenance-{rev}.intoto.jsonl"
        path.write_bytes(b"".join(ln + b"\n" for ln in lines))
        return nix.add_file(path)


def publish(req: PublishRequest, nix: Nix, reporter: Reporter | None = None) -> PublishReport:
    """Copy REV's attested outputs (and what `closure` adds) to the cache at `req.to`.

    >>> publish(PublishRequest(Path("."), "file:///tmp/cache", policy), Nix())  # doctest: +SKIP
    """
    reporter = reporter or Reporter()
    git = Git(req.flake_dir.resolve())
    rev = git.rev_parse(req.rev)
    report = PublishReport(rev, _shown(req.to), req.closure, req.secret_key is not None)
    try:
        _publish(req, nix, git, report, reporter)
    except ProvenanceError as e:
        report.error = e.diagnostics()
        raise PublishError(e, report) from None
    return report


def _publish(
    req: PublishRequest, nix: Nix, git: Git, report: PublishReport, reporter: Reporter
) -> None:
    url = _signed_url(req.to, req.secret_key)
    if req.closure not in CLOSURES:
        msg = f"--closure {req.closure!r}: choose one of {', '.join(CLOSURES)}"
        raise UsageError(msg)
    claims, lines, report.skipped_lines = trusted_claims(git, report.rev, req.policy)
    if not claims:
        msg = f"commit {report.rev[:12]} has no attestation signed by a trusted key to publish"
        hint = f"run `provenance build` on it first (trust: {req.policy.source})"
        raise UsageError(msg, hint)
    report.checks = [
        {"check": c.check, "drvPath": c.drv_path, "outputs": sorted(c.subjects)} for c in claims
    ]
    _check_outputs(nix, claims)
    selected = _selection(nix, claims, req.closure)
    valid = nix.path_info(selected)
    report.not_in_store = [p for p in selected if p not in valid]
    for p in report.not_in_store:
        reporter.warn(f"{p} is not in this store: not published")
    roots = [p for p in selected if p in valid]
    if req.bundle:
        report.bundle = _add_bundle(nix, report.rev, lines)
        roots.append(report.bundle)
    report.sizes = {p: i.nar_size for p, i in nix.runtime_closure(roots).items()}
    if not req.to.startswith("file://") and (why := nix.cache_unreachable(req.to)):
        msg = f"cannot reach the cache {report.to}: {why}"
        raise ProvenanceError(msg, "check the URL and that the cache server is running")
    if req.secret_key is None:
        reporter.warn(
            "no --secret-key: paths are copied unsigned, and reviewers (who require "
            "signatures) will not substitute them"
        )
    total = len(report.sizes)
    step = max(1, total // 20)
    reporter.info(f"publishing {total} path(s) to {report.to} ({req.closure} closure)")

    def progress(path: str) -> None:
        report.copied.append(path)
        n = len(report.copied)
        if n % step == 0 or n == total:
            reporter.info(f"  copied {n} path(s), latest {path}")

    report.copied = []
    try:
        sent = nix.copy_to(url, roots, on_copied=progress)
    except NixError:
        # Nix names a path when it starts sending it, not when the cache has it.
        report.unfinished, report.copied = report.copied, []
        raise
    report.copied = list(dict.fromkeys([*report.copied, *sent]))
