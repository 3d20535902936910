"""`provenance verify`: confirm every claim of a bundle without trusting who made it.

Levels, each reported per attestation (docs/verify.md):

1. authentic: the DSSE signatures check against the trust policy over the PAE of the
   payload bytes, before anything is parsed (any one trusted key authenticates); then
   payloadType, predicateType and the statement's shape (claims.py: subject names are
   plain store paths, digests hex).
2. bound: the attested commit must be --rev or one of its ancestors within
   notes.DEFAULT_SEARCH_DEPTH commits (as `gate`), the flake ref and attribute must be
   this repo's, and the flake re-evaluated at --rev (never the work tree) must give the
   same drvPath (it pins tests, dependencies and toolchain) with exactly the attested
   outputs. A different drvPath is explained (which inputs, sources or env keys differ).
3. reproduced (--rebuild): the derivation is built again in a fresh chroot store (or in
   place with Nix's rebuild check) and every output's NAR SHA-256, computed by us, must be
   the subject digest; every differing output is compared file by file (diff.py).
4. with a signer, one SLSA Verification Summary per attestation is signed, written as a
   bundle and unioned into the git note (vsa.py).

Then per check, the threshold rule shared with `gate` (trust.count_signers): the distinct
trusted signers of passing attestations that agree on the outputs must reach the policy's
threshold, and a trusted test-result saying FAILED for the check's drvPath fails it.

`verify()` returns a frozen VerifyReport (one entry per attestation and per check); it
raises only for bad usage, unreadable input or a broken environment. Bundles given on the
command line are verified strictly: every envelope must pass. Without bundles, the notes
on --rev and its ancestors are read as a shared log: lines not signed by the policy's
keys, or not build provenance (someone's verification summary, say), are listed as
skipped, ancestors' lines that do not bind to --rev are counted as history, and every
check of the flake (or each --check) must be covered by attestations that pass.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import stat
import tempfile
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provenance import bundle, diff, dsse
from provenance import policy as policy_mod
from provenance.claims import (
    ProvenanceClaim,
    load_statement,
    parse_provenance,
    test_result_binding,
    test_result_outcome,
)
from provenance.errors import AttestationError, NixError, UsageError, VerificationError
from provenance.git import NOTES_REF, Git
from provenance.hashing import nar_sha256, sha256_hex
from provenance.keys import Signer
from provenance.nix import HERMETIC_OPTIONS, Derivation, EvaluatedCheck, Nix, current_system
from provenance.notes import DEFAULT_SEARCH_DEPTH, history_notes
from provenance.progress import Reporter
from provenance.trust import Endorsement, Tally, TrustPolicy, count_signers
from provenance.uris import SLSA_PROVENANCE_V1, TEST_RESULT_V01

AUTHENTIC, BOUND, REPRODUCED = "authentic", "bound", "reproduced"
PASSED, FAILED, SKIPPED = "PASSED", "FAILED", "SKIPPED"
VSA_SUFFIX = ".vsa.intoto.jsonl"  # default: FLAKE_DIR/.provenance/<commit>.vsa.intoto.jsonl


@dataclass(frozen=True)
class VerifyRequest:
    flake_dir: Path
    policy: TrustPolicy
    bundles: tuple[Path, ...] = ()
    rev: str = "HEAD"
    checks: tuple[str, ...] | None = None
    rebuild: bool = False
    in_place: bool = False  # rebuild with `nix build --rebuild` in the local store
    store: Path | None = None  # fresh store root for the rebuild (default: a temp dir)
    signer: Signer | None = None  # sign a verification summary
    vsa_output: Path | None = None
    attach_note: bool = True


@dataclass(frozen=True)
class Step:
    level: str  # authentic | bound | reproduced
    name: str
    ok: bool
    detail: str

    def as_json(self) -> dict[str, Any]:
        return {"level": self.level, "name": self.name, "ok": self.ok, "detail": self.detail}


@dataclass(frozen=True)
class OutputDiff:
    """A rebuilt output whose NAR hash is not the attested one, and how its files differ."""

    output: str
    path: str
    attested: str
    rebuilt: str
    compared_with: str | None  # the tree the rebuild was compared with, if any was available
    files: tuple[diff.FileDiff, ...]
    note: str = ""
    diffoscope: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "output": self.output,
            "path": self.path,
            "attestedSha256": self.attested,
            "rebuiltSha256": self.rebuilt,
            "comparedWith": self.compared_with,
            "files": [f.as_json() for f in self.files],
            **({"note": self.note} if self.note else {}),
            **({"diffoscope": self.diffoscope} if self.diffoscope else {}),
        }


@dataclass(frozen=True)
class AttestationReport:
    source: str  # "bundle.intoto.jsonl line 2" or "note on <rev> line 2"
    sha256: str  # of the envelope's exact JSONL line (VSA inputAttestations)
    status: str  # PASSED | FAILED | SKIPPED
    steps: tuple[Step, ...]
    levels: tuple[str, ...]  # levels reached
    check: str | None = None
    drv_path: str | None = None
    signers: tuple[str, ...] = ()
    subjects: dict[str, tuple[str, str]] = field(default_factory=dict)  # path -> (out, sha256)
    diffs: tuple[OutputDiff, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "sha256": self.sha256,
            "status": self.status,
            "check": self.check,
            "drvPath": self.drv_path,
            "signers": list(self.signers),
            "levels": list(self.levels),
            "steps": [s.as_json() for s in self.steps],
            "subjects": {p: {"output": o, "sha256": d} for p, (o, d) in self.subjects.items()},
            "diffs": [d.as_json() for d in self.diffs],
        }


@dataclass(frozen=True)
class CheckResult:
    """The verdict on one check: the threshold rule over its passing attestations."""

    name: str
    passed: bool
    reason: str
    drv_path: str | None = None
    signers: tuple[str, ...] = ()
    attested_on: tuple[str, ...] = ()  # commits named by the counted attestations

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "passed": self.passed,
            "reason": self.reason,
            "drvPath": self.drv_path,
            "signers": list(self.signers),
            "attestedOn": list(self.attested_on),
        }


@dataclass(frozen=True)
class VerifyReport:
    rev: str
    flake: str
    mode: str  # "bundle" | "notes"
    requested: tuple[str, ...]  # levels asked for
    attestations: tuple[AttestationReport, ...]
    missing: tuple[str, ...]  # checks that did not pass (no attestation, threshold, FAILED)
    vsa_path: Path | None = None
    vsa_note: bool = False
    checks: tuple[CheckResult, ...] = ()
    ancestor_lines_ignored: int = 0  # lines on ancestors' notes that say nothing about rev

    @property
    def passed(self) -> bool:
        considered = [a for a in self.attestations if a.status != SKIPPED]
        return bool(considered) and not self.missing and all(a.status == PASSED for a in considered)

    def as_json(self) -> dict[str, Any]:
        return {
            "result": PASSED if self.passed else FAILED,
            "rev": self.rev,
            "flake": self.flake,
            "mode": self.mode,
            "levels": list(self.requested),
            "attestations": [a.as_json() for a in self.attestations],
            "missing": list(self.missing),
            "checks": [c.as_json() for c in self.checks],
            "ancestorLinesIgnored": self.ancestor_lines_ignored,
            "vsa": {"path": str(self.vsa_path), "noteAttached": self.vsa_note}
            if self.vsa_path
            else None,
        }

    def lines(self) -> list[str]:
        """The human report: one OK/FAIL/SKIP line per check, then the verdict."""
        out: list[str] = []
        for a in self.attestations:
            label = a.check or a.source
            if a.status == SKIPPED:
                reason = a.steps[-1].detail if a.steps else "skipped"
                out.append(f"SKIP {label}: {reason} [{a.source}]")
                continue
            for s in a.steps:
                out.append(f"{'OK  ' if s.ok else 'FAIL'} {label} {s.level}/{s.name}: {s.detail}")
            for d in a.diffs:
                out.append(f"     {label} output {d.output} ({d.path}) differs:")
                if d.note:
                    out.append(f"       {d.note}")
                out.extend(f"       {f.change:8} {f.path or '.'}: {f.detail}" for f in d.files)
                if d.diffoscope:
                    out.extend(f"       | {ln}" for ln in d.diffoscope.splitlines()[:60])
        if self.ancestor_lines_ignored:
            out.append(
                f"SKIP {self.ancestor_lines_ignored} line(s) on ancestors' notes: "
                "not trusted build claims bound to this revision"
            )
        judged = {c.name for c in self.checks}
        for c in self.checks:
            out.append(f"{'OK  ' if c.passed else 'FAIL'} {c.name}: {c.reason}")
        failed = {a.check for a in self.attestations if a.status == FAILED}
        for name in self.missing:
            if name in failed or name in judged:
                continue  # its failing attestation or its verdict is listed above
            out.append(f"FAIL {name}: no attestation that passes verification")
        verdict = "verified" if self.passed else "verification FAILED"
        reached = ", ".join(self.requested)
        out.append(
            f"{verdict}: {len(self.attestations)} attestation(s), "
            f"levels {reached}, rev {self.rev[:12]}"
        )
        return out


# -- working state of one attestation ---------------------------------------------------


@dataclass
class _Att:
    source: str
    line: bytes
    envelope: dsse.Envelope | None
    strict: bool  # bundle input: every failure counts; notes: unauthentic lines are skipped
    ancestor: bool = False  # read from an ancestor's note: it counts only if it binds to rev
    steps: list[Step] = field(default_factory=list)
    skipped: bool = False
    claim: ProvenanceClaim | None = None
    signers: tuple[str, ...] = ()
    keyids: frozenset[str] = frozenset()
    failed_result: str | None = None  # drvPath of a trusted test-result that says FAILED
    check: str | None = None  # the check a FAILED test-result is about
    diffs: list[OutputDiff] = field(default_factory=list)

    def ok(self, level: str, name: str, detail: str) -> None:
        self.steps.append(Step(level, name, True, detail))

    def fail(self, level: str, name: str, detail: str) -> None:
        self.steps.append(Step(level, name, False, detail))

    def skip(self, level: str, name: str, detail: str) -> None:
        self.steps.append(Step(level, name, False, detail))
        self.skipped = True

    def unbound(self, name: str, detail: str) -> None:
        """Level 2 failed. A line on an ancestor's note is about that ancestor: skip it."""
        if self.ancestor:
            self.skip(BOUND, name, f"{detail} (not a claim about this revision)")
        else:
            self.fail(BOUND, name, detail)

    @property
    def failed(self) -> bool:
        return any(not s.ok for s in self.steps)

    def reached(self, level: str) -> bool:
        mine = [s for s in self.steps if s.level == level]
        return bool(mine) and all(s.ok for s in mine)

    def freeze(self, requested: tuple[str, ...]) -> AttestationReport:
        status = SKIPPED if self.skipped else FAILED if self.failed else PASSED
        if status == PASSED and not all(self.reached(lv) for lv in requested):
            status = FAILED  # a requested level never ran: never report it as passed
        c = self.claim
        return AttestationReport(
            source=self.source,
            sha256=sha256_hex(self.line),
            status=status,
            steps=tuple(self.steps),
            levels=tuple(lv for lv in requested if self.reached(lv)),
            check=c.check if c else self.check,
            drv_path=c.drv_path if c else self.failed_result,
            signers=self.signers,
            subjects={p: (c.output_names[p], d) for p, d in c.subjects.items()} if c else {},
            diffs=tuple(self.diffs),
        )


# -- input ------------------------------------------------------------------------------


def _split_lines(data: bytes) -> list[bytes]:
    # Same rule as bundle.parse_pairs: blank lines are skipped, the rest are envelopes.
    return [ln for ln in data.split(b"\n") if ln.strip()]


def _read_bundle(path: Path) -> list[_Att]:
    return [
        _Att(f"{path.name} line {n}", ln, env, strict=True)
        for n, (ln, env) in enumerate(bundle.read_pairs(path), 1)
    ]


def _read_notes(git: Git, rev: str, depth: int) -> list[_Att]:
    """The notes on rev and on its ancestors within the bound, newest first."""
    _, notes = history_notes(git, rev, depth)
    atts: list[_Att] = []
    for commit, data in notes:
        for n, ln in enumerate(_split_lines(data), 1):
            att = _Att(f"note on {commit[:12]} line {n}", ln, None, False, commit != rev)
            try:
                att.envelope = dsse.Envelope.from_json(ln)
            except AttestationError as e:
                att.skip(AUTHENTIC, "envelope", f"not a DSSE envelope ({e.message})")
            atts.append(att)
    return atts


# -- level 1: authentic -----------------------------------------------------------------


def _authenticate(att: _Att, policy: TrustPolicy) -> None:
    env = att.envelope
    if env is None:
        return
    try:
        # Any one trusted key authenticates a statement; the policy's threshold is
        # counted per check, over statements that agree (trust.count_signers).
        verified = dsse.verify(env, policy.active_keys())
    except VerificationError as e:
        detail = f"{e.message} (trust: {policy.source})"
        if att.strict:
            att.fail(AUTHENTIC, "signature", detail)
        else:
            att.skip(AUTHENTIC, "signature", detail)
        return
    att.keyids = verified.keyids
    att.signers = tuple(sorted(policy.name_of(k) for k in verified.keyids))
    att.ok(AUTHENTIC, "signature", f"signed by {', '.join(att.signers)}")
    try:
        stmt = load_statement(verified.payload)
    except AttestationError as e:
        att.fail(AUTHENTIC, "statement", e.message)
        return
    ptype = stmt.get("predicateType")
    bound = test_result_binding(stmt) if ptype == TEST_RESULT_V01 else None
    result = test_result_outcome(stmt)
    if bound is not None and result == "FAILED":
        # A trusted key says the tests of this derivation failed: judged once the flake is
        # evaluated (_judge_failed_results), whatever provenance says about the same drvPath.
        att.failed_result = bound[0]
        att.ok(AUTHENTIC, "predicateType", f"test-result FAILED for {bound[0]}")
        return
    if bound is not None and result is not None:
        # build writes a test-result statement beside each check's provenance: signed and
        # authentic, but it claims nothing about the build, so it is reported, not counted.
        att.skip(
            AUTHENTIC,
            "predicateType",
            f"test-result {result} for {_short(bound[0])}: not a build claim",
        )
        return
    if ptype != SLSA_PROVENANCE_V1:
        detail = f"predicateType is {ptype!r}, expected {SLSA_PROVENANCE_V1}"
        if att.strict:
            att.fail(AUTHENTIC, "predicateType", detail)
        else:
            att.skip(AUTHENTIC, "predicateType", f"{detail}: not a build claim")
        return
    try:
        att.claim = parse_provenance(stmt)
    except AttestationError as e:
        att.fail(AUTHENTIC, "statement", f"signed statement is malformed: {e.message}")
        return
    att.ok(AUTHENTIC, "statement", f"SLSA provenance v1 for check {att.claim.check}")


# -- level 2: bound to the project -------------------------------------------------------


@dataclass(frozen=True)
class _Repo:
    git: Git
    top: Path
    subdir: str
    rev: str
    window: tuple[str, ...] = ()  # rev and its ancestors within the bound, newest first

    def ref(self, commit: str) -> str:
        query = f"rev={commit}" + (f"&dir={urllib.parse.quote(self.subdir)}" if self.subdir else "")
        return f"git+file://{self.top}?{query}"

    def flake(self) -> str:
        return f"git+file://{self.top}" + (f"?dir={self.subdir}" if self.subdir else "")


def _check_static_binding(att: _Att, repo: _Repo) -> bool:
    """Commit, flake ref and attribute: what can be checked before evaluating."""
    c = att.claim
    assert c is not None
    if c.dirty:
        att.unbound(
            "commit", "the attestation is of a dirty work tree: it names no commit to check"
        )
        return False
    if c.commit == repo.rev:
        att.ok(BOUND, "commit", f"attests {c.commit[:12]}, the revision verified")
    elif c.commit in repo.window:
        # As the gate does: the drvPath pins every input of the check, so a statement made
        # on a recent ancestor holds for rev if rev evaluates to the same drvPath (_bind).
        att.ok(
            BOUND,
            "commit",
            f"attests {c.commit[:12]}, an ancestor of {repo.rev[:12]} within "
            f"{len(repo.window)} commits: it holds if the drvPath at {repo.rev[:12]} is the same",
        )
    else:
        try:
            repo.git.rev_parse(c.commit)
        except UsageError:
            att.unbound(
                "commit",
                f"attests commit {c.commit[:40]!r}, which is not in this repository "
                "(a bundle from another repository?)",
            )
            return False
        att.unbound(
            "commit",
            f"attests commit {c.commit[:12]}, but the revision verified is {repo.rev[:12]}, "
            f"and it is not one of its last {DEFAULT_SEARCH_DEPTH} commits "
            "(replayed from another commit? pass --rev to verify that commit)",
        )
        return False
    url = urllib.parse.urlsplit(c.flake)
    their_dir = urllib.parse.parse_qs(url.query).get("dir", [""])[0]
    if (
        url.scheme != "git+file"
        or their_dir != repo.subdir
        or {*urllib.parse.parse_qs(url.query)} - {"dir"}
    ):
        att.unbound(
            "flake", f"names flake {c.flake!r}, not this repository's flake {repo.flake()!r}"
        )
        return False
    moved = (
        f" (attested at {url.path}, a copy of this repository)" if url.path != str(repo.top) else ""
    )
    att.ok(BOUND, "flake", f"{repo.flake()}{moved}")
    want_attr = f"checks.{c.system}.{c.check}"
    if c.attribute != want_attr:
        att.unbound("attribute", f"attribute {c.attribute!r} is not {want_attr!r}")
        return False
    return True


def _short(p: str) -> str:
    base = p.rsplit("/", 1)[-1]
    return base.split("-", 1)[1] if "-" in base else base


def explain_drv_difference(nix: Nix, attested: str, evaluated: str, limit: int = 12) -> str:
    """Why two drvPaths differ: input derivations, sources and env keys, recursively."""
    try:
        ours = nix.derivations([evaluated], recursive=True)
    except NixError as e:
        return f"cannot read {evaluated}: {e.message}"
    try:
        theirs = nix.derivations([attested], recursive=True)
    except NixError:
        return (
            f"the attested derivation {attested} is not in the local store, so the difference "
            "cannot be itemised (the tests, dependencies or toolchain differ)"
        )
    found: list[str] = []
    seen: set[tuple[str, str]] = set()

    def walk(a: str, b: str, depth: int) -> None:
        if (a, b) in seen or len(found) >= limit or depth > 6:
            return
        seen.add((a, b))
        da, db = theirs.get(a), ours.get(b)
        if da is None or db is None:
            return
        where = _short(b)
        ia = {_short(p): p for p in da.input_drvs}
        ib = {_short(p): p for p in db.input_drvs}
        for name in sorted(set(ia) | set(ib)):
            pa, pb = ia.get(name), ib.get(name)
            if pa == pb:
                continue
            if pa and pb:
                found.append(f"{where}: input derivation {name} differs ({pa} -> {pb})")
                walk(pa, pb, depth + 1)
            else:
                found.append(f"{where}: input derivation {name} {'removed' if pa else 'added'}")
        sa = {_short(p): p for p in da.input_srcs}
        sb = {_short(p): p for p in db.input_srcs}
        for name in sorted(set(sa) | set(sb)):
            pa, pb = sa.get(name), sb.get(name)
            if pa != pb:
                change = "differs" if pa and pb else "removed" if pa else "added"
                found.append(f"{where}: source {name} {change} ({pa or '-'} -> {pb or '-'})")
        outputs = {o.name for o in da.outputs} | {o.name for o in db.outputs}
        for key in sorted(set(da.env) | set(db.env)):
            if key in outputs or key in da.input_drvs:
                continue  # output paths follow from everything else
            va, vb = da.env.get(key), db.env.get(key)
            if va != vb and not _only_paths_differ(va, vb, da, db):
                found.append(f"{where}: env {key} differs")
        for attr in ("builder", "system"):
            if getattr(da, attr) != getattr(db, attr):
                found.append(f"{where}: {attr} differs")

    walk(attested, evaluated, 0)
    if not found:
        return "the derivations differ in a way not itemised here (args or output names)"
    more = " ..." if len(found) >= limit else ""
    return "; ".join(found[:limit]) + more


def _only_paths_differ(va: str | None, vb: str | None, da: Derivation, db: Derivation) -> bool:
    # An env value that only embeds changed input paths is a consequence, not a cause.
    if va is None or vb is None:
        return False
    for old, new in zip(sorted(da.input_srcs), sorted(db.input_srcs), strict=False):
        va = va.replace(old, new)
    for old, new in zip(sorted(da.input_drvs), sorted(db.input_drvs), strict=False):
        va = va.replace(old, new)
    return va == vb


def _bind(
    atts: list[_Att], repo: _Repo, nix: Nix, required_system: str
) -> dict[str, dict[str, EvaluatedCheck]]:
    """Level 2 for every authentic claim; returns the checks evaluated at rev, per system."""
    candidates = [a for a in atts if a.claim and not a.failed and not a.skipped]
    statically_ok = [a for a in candidates if _check_static_binding(a, repo)]
    ref = repo.ref(repo.rev)
    # One evaluation per system gives each check's drvPath and its output paths together.
    evaluated: dict[str, dict[str, EvaluatedCheck]] = {}
    systems = {required_system} | {a.claim.system for a in statically_ok if a.claim}
    errors: dict[str, str] = {}
    for system in sorted(systems):
        try:
            evaluated[system] = nix.eval_checks(ref, system, None)
        except UsageError as e:
            errors[system] = e.message
    for a in statically_ok:
        c = a.claim
        assert c is not None
        if c.system in errors:
            a.fail(
                BOUND, "drvPath", f"re-evaluating {ref} for {c.system} failed: {errors[c.system]}"
            )
            continue
        check = evaluated[c.system].get(c.check)
        if check is None:
            a.unbound(
                "drvPath", f"the flake at {repo.rev[:12]} has no check {c.check!r} for {c.system}"
            )
            continue
        drv = check.drv_path
        ancestor = c.commit != repo.rev
        if drv != c.drv_path:
            if a.ancestor:
                # An older statement about an older derivation: superseded, nothing to explain.
                a.skip(BOUND, "drvPath", f"attested on {c.commit[:12]} for another drvPath")
                continue
            why = explain_drv_difference(nix, c.drv_path, drv)
            replayed = (
                f"attests commit {c.commit[:12]}, but the revision verified is {repo.rev[:12]} "
                "and the check's inputs changed in between: "
                if ancestor
                else ""
            )
            a.fail(
                BOUND,
                "drvPath",
                f"{replayed}re-evaluation at {repo.rev[:12]} gives {drv}, "
                f"the attestation says {c.drv_path}: {why}",
            )
            continue
        via = f"; attested on ancestor {c.commit[:12]}, same drvPath" if ancestor else ""
        a.ok(BOUND, "drvPath", f"{drv} (re-evaluated at {repo.rev[:12]}{via})")
        outputs = {path: name for name, path in check.outputs.items()}
        claimed = dict(c.output_names)
        if claimed != outputs:
            extra = sorted(set(claimed) - set(outputs))
            absent = sorted(set(outputs) - set(claimed))
            renamed = sorted(p for p in set(claimed) & set(outputs) if claimed[p] != outputs[p])
            parts = [
                *(f"{p} is not an output" for p in extra),
                *(f"output {outputs[p]} ({p}) is missing" for p in absent),
                *(f"{p} is output {outputs[p]}, not {claimed[p]}" for p in renamed),
            ]
            a.unbound("subjects", "subjects are not the derivation's outputs: " + "; ".join(parts))
            continue
        a.ok(BOUND, "subjects", f"exactly the {len(outputs)} output(s) of the derivation")
    return evaluated


def _judge_failed_results(
    atts: list[_Att],
    evaluated: dict[str, dict[str, EvaluatedCheck]],
    rev: str,
    wanted: set[str] | None,
) -> None:
    """A trusted test-result saying FAILED for a check's exact drvPath fails that check."""
    by_drv = {c.drv_path: name for checks in evaluated.values() for name, c in checks.items()}
    for a in atts:
        drv = a.failed_result
        if drv is None or a.failed or a.skipped:
            continue
        name = by_drv.get(drv)
        if name is None:
            detail = f"test-result FAILED for {drv}, which is no check of the flake at {rev[:12]}"
            if a.strict:
                a.fail(BOUND, "test-result", detail)
            else:
                a.skip(BOUND, "test-result", f"{detail}: not about this revision")
            continue
        a.check = name
        if wanted is not None and name not in wanted:
            a.skip(BOUND, "check", f"check {name} not selected by --check")
            continue
        a.fail(
            BOUND,
            "test-result",
            f"signed by {', '.join(a.signers)}: the tests of {name} at exactly this drvPath "
            f"({drv}) FAILED",
        )


def _judge_checks(
    atts: list[_Att], reports: list[AttestationReport], policy: TrustPolicy
) -> list[CheckResult]:
    """The threshold rule (trust.count_signers) per check and drvPath, over passing claims."""
    groups: dict[tuple[str, str], list[_Att]] = {}
    for a, r in zip(atts, reports, strict=True):
        if r.status == PASSED and a.claim is not None:
            groups.setdefault((a.claim.check, a.claim.drv_path), []).append(a)
    failed_results = {a.check: a for a in atts if a.failed_result and a.check and not a.skipped}
    results: list[CheckResult] = []
    for name in sorted({n for n, _ in groups} | set(failed_results)):
        bad = failed_results.get(name)
        if bad is not None:
            results.append(
                CheckResult(
                    name,
                    False,
                    f"a trusted key attested it FAILED ({bad.source})",
                    bad.failed_result,
                    bad.signers,
                )
            )
            continue
        for (_, drv), mine in sorted((k, v) for k, v in groups.items() if k[0] == name):
            results.append(_tally_result(name, drv, mine, policy))
    return results


def _tally_result(name: str, drv: str, atts: list[_Att], policy: TrustPolicy) -> CheckResult:
    tally: Tally = count_signers(
        policy, [Endorsement.of(a.keyids, a.claim.subjects) for a in atts if a.claim]
    )
    counted = [
        a
        for a in atts
        if a.claim and Endorsement.of(a.keyids, a.claim.subjects).subjects == tally.subjects
    ]
    commits = tuple(dict.fromkeys(a.claim.commit for a in counted if a.claim))
    return CheckResult(name, tally.passed, tally.reason, drv, tally.signers, commits)


def _warn_if_trust_is_in_the_tree(policy: TrustPolicy, top: Path, reporter: Reporter) -> None:
    if policy.source == "--trusted-key":
        return
    source = Path(policy.source).resolve()
    if source.is_relative_to(top.resolve()):
        reporter.warn(
            f"trust comes from {source}, in the tree under review: whoever can change this "
            "repository chooses the keys; pass --trusted-key or --policy from outside it"
        )


# -- level 3: reproduced -----------------------------------------------------------------


def _make_writable(root: Path) -> None:
    # Store paths are read-only; make them deletable (never following symlinks).
    for dirpath, _dirs, _files in os.walk(root):
        with contextlib.suppress(OSError):
            Path(dirpath).chmod(stat.S_IRWXU)


def _remove_tree(root: Path) -> None:
    if os.path.lexists(root):
        _make_writable(root)
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def _fresh_store(store: Path | None) -> Iterator[Path]:
    if store is not None:
        store.mkdir(parents=True, exist_ok=True)
        yield store.resolve()
        return
    tmp = Path(tempfile.mkdtemp(prefix="provenance-verify-"))
    try:
        yield tmp
    finally:
        _remove_tree(tmp)


def _diff_output(
    out: str, path: str, attested: str, rebuilt: str, rebuilt_tree: Path
) -> OutputDiff:
    """Compare a non-matching rebuild with the attested bytes, if this machine has them."""
    local = Path(path)
    if not os.path.lexists(local):
        return OutputDiff(
            out,
            path,
            attested,
            rebuilt,
            None,
            (),
            "the attested output is not in the local store: no files to compare with",
        )
    local_hash = nar_sha256(local)
    note = (
        ""
        if local_hash == attested
        else (f"the local {path} has NAR SHA-256 {local_hash}, not the attested one either")
    )
    if local.resolve() == rebuilt_tree.resolve():
        return OutputDiff(
            out, path, attested, rebuilt, None, (), "the rebuild replaced the attested copy"
        )
    return OutputDiff(
        out,
        path,
        attested,
        rebuilt,
        str(local),
        tuple(diff.compare_trees(local, rebuilt_tree)),
        note,
        diff.diffoscope(local, rebuilt_tree),
    )


def _compare_outputs(att: _Att, built: dict[str, Path], infos: dict[str, str], how: str) -> None:
    """built: store path -> physical path of the rebuild; infos: store path -> nix's narHash."""
    c = att.claim
    assert c is not None
    for path, digest in sorted(c.subjects.items()):
        out = c.output_names[path]
        physical = built.get(path)
        if physical is None or not os.path.lexists(physical):
            att.fail(REPRODUCED, f"output {out}", f"the rebuild produced no {path}")
            continue
        ours = nar_sha256(physical)
        if path in infos and infos[path] != ours:
            att.fail(
                REPRODUCED,
                f"output {out}",
                f"nix's narHash for the rebuilt {path} is not ours: store corrupt?",
            )
            continue
        if ours == digest:
            att.ok(REPRODUCED, f"output {out}", f"NAR SHA-256 {ours[:16]}... matches ({how})")
        else:
            att.fail(
                REPRODUCED,
                f"output {out}",
                f"rebuilt NAR SHA-256 {ours[:16]}... is not the attested {digest[:16]}... ({how})",
            )
            att.diffs.append(_diff_output(out, path, digest, ours, physical))


def _rebuild_fresh(atts: list[_Att], nix: Nix, store: Path | None, reporter: Reporter) -> None:
    drvs = sorted({a.claim.drv_path for a in atts if a.claim})
    with _fresh_store(store) as root:
        reporter.info(f"rebuilding {len(drvs)} derivation(s) in the independent store {root}")
        fresh = dataclasses.replace(nix, store=str(root))
        nix.copy_derivations(drvs, str(root))
        results: dict[str, dict[str, Path] | str] = {}
        infos: dict[str, str] = {}
        for drv in drvs:
            try:
                # A store given by the user may already hold the outputs: rebuild them then.
                outs = [o.path for o in fresh.derivations([drv])[drv].outputs if o.path]
                again = bool(fresh.path_info(outs))
                res = fresh.build(drv, rebuild=again, options=HERMETIC_OPTIONS)
            except NixError as e:
                results[drv] = e.message
                continue
            results[drv] = {p: root / p.lstrip("/") for p in res.outputs.values()}
            infos.update({p: i.nar_hash for p, i in fresh.path_info(res.outputs.values()).items()})
        for a in atts:
            assert a.claim is not None
            r = results[a.claim.drv_path]
            if isinstance(r, str):
                a.fail(REPRODUCED, "build", f"the rebuild in {root} failed: {r}")
            else:
                _compare_outputs(a, r, infos, f"fresh store {root}")


def _rebuild_in_place(atts: list[_Att], nix: Nix, reporter: Reporter) -> None:
    for drv in sorted({a.claim.drv_path for a in atts if a.claim}):
        mine = [a for a in atts if a.claim and a.claim.drv_path == drv]
        reporter.info(f"rebuilding {drv} in place (nix build --rebuild)")
        outs = [o.path for o in nix.derivations([drv])[drv].outputs if o.path]
        valid = nix.path_info(outs)
        try:
            if not valid:
                # Not in the store: an ordinary build is a rebuild from scratch here.
                res = nix.build(drv, options=HERMETIC_OPTIONS)
                built = {p: Path(p) for p in res.outputs.values()}
                for a in mine:
                    _compare_outputs(a, built, {}, "built in the local store")
                continue
            check = nix.rebuild_check(drv, options=HERMETIC_OPTIONS)
        except NixError as e:
            for a in mine:
                a.fail(REPRODUCED, "build", f"the rebuild failed: {e.message}")
            continue
        # Nix compared its rebuild with the valid outputs; we compare those with the subjects.
        built = {p: Path(p) for p in outs}
        if check.reproduced:
            for a in mine:
                _compare_outputs(a, built, {}, "nix --rebuild matched the store")
            continue
        differing = check.differing_output or ""
        kept = Path(differing + ".check")
        try:
            for a in mine:
                assert a.claim is not None
                for path, digest in sorted(a.claim.subjects.items()):
                    out = a.claim.output_names[path]
                    if path != differing:
                        continue
                    rebuilt = nar_sha256(kept) if os.path.lexists(kept) else "unknown"
                    a.fail(REPRODUCED, f"output {out}", f"nix --rebuild: {path} does not reproduce")
                    d = _diff_output(out, path, digest, rebuilt, kept)
                    first_only = (
                        "nix --rebuild stops at the first differing output; "
                        "rebuild in a fresh store (the default) to compare every output"
                    )
                    a.diffs.append(
                        dataclasses.replace(d, note="; ".join(filter(None, [d.note, first_only])))
                    )
        finally:
            _remove_tree(kept)
            if check.build_dir:
                _remove_tree(Path(check.build_dir))


# -- level 4: signed verdict --------------------------------------------------------------


def _write_vsa(
    req: VerifyRequest,
    repo: _Repo,
    reports: list[AttestationReport],
    requested: tuple[str, ...],
    reporter: Reporter,
) -> tuple[Path | None, bool]:
    from provenance import vsa  # noqa: PLC0415 - pydantic models, only needed when signing

    assert req.signer is not None
    lines: list[str] = []
    policy_uri = (
        Path(req.policy.source).resolve().as_uri()
        if req.policy.source != "--trusted-key"
        else "provenance:trusted-keys"
    )
    policy_sha = policy_mod.digest(req.policy)
    for r in reports:
        if r.status == SKIPPED or not r.subjects or r.check is None:
            continue
        levels: list[str] = []
        if AUTHENTIC in r.levels and BOUND in r.levels:
            levels += [vsa.LEVEL_L1, vsa.LEVEL_BOUND]
        if REPRODUCED in r.levels:
            levels.append(vsa.LEVEL_REPRODUCED)
        system = current_system()
        stmt = vsa.summary_statement(
            subjects=r.subjects,
            resource_uri=f"{repo.ref(repo.rev)}#checks.{system}.{r.check}",
            policy_uri=policy_uri,
            policy_sha256=policy_sha,
            input_uri=r.source,
            input_sha256=r.sha256,
            passed=r.status == PASSED,
            levels=levels,
        )
        lines.append(dsse.sign(stmt.dump_bytes(), [req.signer]).to_json())
    if not lines:
        reporter.warn("nothing authentic to summarise: no verification summary written")
        return None, False
    path = req.vsa_output or (req.flake_dir.resolve() / ".provenance" / f"{repo.rev}{VSA_SUFFIX}")
    bundle.write_atomic(path, ("\n".join(lines) + "\n").encode())
    noted = False
    if req.attach_note:
        repo.git.add_note_lines(repo.rev, lines, NOTES_REF)
        noted = True
    return path, noted


# -- the API -----------------------------------------------------------------------------


def verify(req: VerifyRequest, nix: Nix, reporter: Reporter | None = None) -> VerifyReport:
    """Verify bundles (or the note on --rev) level by level; see the module docstring.

    >>> report = verify(VerifyRequest(Path("."), policy), Nix())  # doctest: +SKIP
    >>> report.passed, [a.levels for a in report.attestations]  # doctest: +SKIP
    (True, [('authentic', 'bound')])
    """
    reporter = reporter or Reporter()
    if req.in_place and req.store is not None:
        msg = "--in-place and --store exclude each other"
        raise UsageError(msg, "a rebuild runs either in a fresh store or in place")
    if (req.in_place or req.store is not None) and not req.rebuild:
        msg = "--in-place and --store only apply to --rebuild"
        raise UsageError(msg)
    flake_dir = req.flake_dir.resolve()
    if not (flake_dir / "flake.nix").is_file():
        msg = f"{req.flake_dir} is not a flake (no flake.nix)"
        raise UsageError(msg, "pass the flake directory with --flake DIR")
    git = Git(flake_dir)
    top = git.toplevel()
    rev = git.rev_parse(req.rev)
    window = tuple(git.rev_list(rev, DEFAULT_SEARCH_DEPTH))
    subdir = flake_dir.relative_to(top).as_posix() if flake_dir != top else ""
    repo = _Repo(git, top, subdir, rev, window)
    requested = (AUTHENTIC, BOUND, *((REPRODUCED,) if req.rebuild else ()))
    _warn_if_trust_is_in_the_tree(req.policy, top, reporter)

    if req.bundles:
        atts = [a for p in req.bundles for a in _read_bundle(p)]
    else:
        atts = _read_notes(git, rev, DEFAULT_SEARCH_DEPTH)

    for a in atts:
        _authenticate(a, req.policy)

    wanted = set(req.checks) if req.checks else None
    if wanted is not None:
        for a in atts:
            if a.claim and not a.failed and not a.skipped and a.claim.check not in wanted:
                a.skip(BOUND, "check", f"check {a.claim.check} not selected by --check")

    system = current_system()
    all_evaluated = _bind(atts, repo, nix, system)
    evaluated = {n: c.drv_path for n, c in all_evaluated.get(system, {}).items()}
    _judge_failed_results(atts, all_evaluated, rev, wanted)

    if req.rebuild:
        bound = [a for a in atts if a.claim and not a.failed and not a.skipped]
        if bound and req.in_place:
            _rebuild_in_place(bound, nix, reporter)
        elif bound:
            _rebuild_fresh(bound, nix, req.store, reporter)

    # Lines on ancestors' notes that bind to nothing here are history, not evidence: counted,
    # not listed one by one (a long-attested history would bury the report).
    ignored = sum(1 for a in atts if a.ancestor and a.skipped)
    atts = [a for a in atts if not (a.ancestor and a.skipped)]
    reports = [a.freeze(requested) for a in atts]
    checks = _judge_checks(atts, reports, req.policy)
    # A pass counts for the system being verified: the statement's drvPath must be the one
    # this system evaluates (a bound aarch64 statement says nothing about x86_64). Given
    # bundles on their own are judged for the systems they name (each re-evaluated).
    own_systems_only = not (req.bundles and wanted is None)
    passing = {
        c.name
        for c in checks
        if c.passed and (not own_systems_only or c.drv_path == evaluated.get(c.name))
    } - {c.name for c in checks if not c.passed}
    if wanted is not None:
        unknown = sorted(wanted - set(evaluated))
        if unknown:
            msg = (
                f"unknown check {', '.join(unknown)}; the flake has: {', '.join(sorted(evaluated))}"
            )
            raise UsageError(msg)
        required = wanted
    elif req.bundles:
        required = {c.name for c in checks}  # every check the bundles speak of
    else:
        required = set(evaluated)
    missing = tuple(sorted(required - passing))

    vsa_path, vsa_note = None, False
    if req.signer is not None:
        vsa_path, vsa_note = _write_vsa(req, repo, reports, requested, reporter)
    return VerifyReport(
        rev=rev,
        flake=repo.flake(),
        mode="bundle" if req.bundles else "notes",
        requested=requested,
        attestations=tuple(reports),
        missing=missing,
        vsa_path=vsa_path,
        vsa_note=vsa_note,
        checks=tuple(checks),
        ancestor_lines_ignored=ignored,
    )
