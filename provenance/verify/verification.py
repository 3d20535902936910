"""What verification finds: levels, per-attestation steps, per-check results, the report.

`pipeline.py` runs the levels: `authentic.py` is level 1, `binding.py` level 2 and
`reproduce.py` level 3. Each records into `Attestation`, the working state of one
envelope; the pipeline freezes it into the report types here, which the CLI renders
(text on stderr, `--json` on stdout) and the VSA summarises.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from provenance.cache.substituters import Caches
from provenance.formats import dsse
from provenance.formats.claims import (
    ProvenanceClaim,
)
from provenance.formats.hashing import sha256_hex
from provenance.formats.keys import Signer
from provenance.policy.trust import TrustPolicy
from provenance.text import printable
from provenance.verify import diff

if TYPE_CHECKING:  # names in annotations only: verify without --base or --rebuild never loads them
    from provenance.attest.realise import Dependencies
    from provenance.review.compare import Review
    from provenance.review.policy import ReviewPolicy

AUTHENTIC, BOUND, REPRODUCED = "authentic", "bound", "reproduced"
PASSED, FAILED, SKIPPED = "PASSED", "FAILED", "SKIPPED"
VSA_SUFFIX = ".vsa.intoto.jsonl"  # default: FLAKE_DIR/.provenance/<commit>.<keyid>.vsa.intoto.jsonl


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
    caches: Caches = field(
        default_factory=Caches
    )  # extra caches the rebuild may take dependencies from
    signer: Signer | None = None  # sign a verification summary
    vsa_output: Path | None = None
    attach_note: bool = True
    base: str | None = None  # compare tests and protected paths with this revision
    review_policy: ReviewPolicy | None = None  # from --policy FILE; None: the base's own


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
    dependencies: Dependencies | None = None  # level 3: where the rebuild's inputs came from
    tier: str | None = None  # what a provenance statement counts as (policy/tier.py)

    def as_json(self) -> dict[str, Any]:
        return {
            "dependencies": self.dependencies.as_json() if self.dependencies else None,
            "source": self.source,
            "tier": self.tier,
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
    review: Review | None = None  # with --base: the deltas against it

    @property
    def passed(self) -> bool:
        considered = [a for a in self.attestations if a.status != SKIPPED]
        attested = bool(considered) and not self.missing
        return attested and all(a.status == PASSED for a in considered) and self.review_ok

    @property
    def review_ok(self) -> bool:
        return self.review is None or self.review.ok

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
            "review": self.review.as_json() if self.review else None,
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
        if self.review is not None:
            r = self.review
            out.append(f"{'OK  ' if r.ok else 'FAIL'} base {r.base.ref}: {r.reason()}")
            for i in r.items:
                who = ", ".join(r.approved_by(i))
                state = (
                    "not approved" if r.blocks(i) else f"approved by {who}" if who else "allowed"
                )
                out.append(f"     {i.describe()} [{state}]")
            out += [f"     doubt: {d}" for d in r.doubts]
            out += [f"     approval not counted: {d}" for d in r.ignored]
        verdict = "verified" if self.passed else "verification FAILED"
        reached = ", ".join(self.requested)
        # Counted by outcome: a skipped line (another key, another commit) was not verified.
        counts = {
            s: sum(a.status == s for a in self.attestations) for s in (PASSED, FAILED, SKIPPED)
        }
        tally = f"{counts[PASSED]} attestation(s) verified"
        tally += f", {counts[FAILED]} failed" if counts[FAILED] else ""
        tally += f", {counts[SKIPPED]} skipped" if counts[SKIPPED] else ""
        out.append(f"{verdict}: {tally}, levels {reached}, rev {self.rev[:12]}")
        # Names, reasons and paths come from the flake and the notes: no raw control characters.
        return [printable(line) for line in out]


# -- working state of one attestation ---------------------------------------------------


@dataclass
class Attestation:
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
    dependencies: Dependencies | None = None
    tier: str | None = None

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
            dependencies=self.dependencies,
            tier=self.tier,
        )
