"""`provenance gate`: may CI skip the checks of a revision because a trusted machine proved them?

The decision is a value, `GateReport`, with one `CheckVerdict` per required check; every
rendering (GITHUB_OUTPUT lines, the step-summary table, the stderr text, the JSON) is
made from that one value in this module.

How it decides (docs/ci.md has the long form):
1. notes: fetch `refs/notes/provenance` from the remote and union it into ours; a repo
   without a remote uses its local notes, and a failed fetch is reported and the local
   notes are used (the signatures, not the transport, carry the trust);
2. evaluate the required checks (all by default) to drvPaths at the exact commit REV
   (`git+file://TOP?rev=REV`; evaluation only, nothing is built); a check that is not a
   derivation this evaluation instantiates is an error (selection.py), so CI runs;
3. walk REV and at most `search_depth - 1` of its ancestors (`git rev-list`); a check
   passes when enough trusted keys signed a clean provenance statement for exactly its
   drvPath, its name, attribute and system, made at one of those commits, whose subjects
   are exactly the check's evaluated outputs and whose recorded Nix environment proves the
   claim (nixenv.recorded_problem, as `verify` requires). The threshold
   rule is verify's (trust.count_signers): each statement authenticates with any one
   trusted key, and the distinct signers of statements that agree on every output digest
   are counted against the policy's threshold. An ancestor's statement is reused only
   when nothing that defines the checks differs between it and REV (definition.py): the
   drvPath pins every input of the check (tests, dependencies, toolchain), the
   definition pins what the check is;
4. `skip` is true only when every required check passes.

Fail safe: `gate()` never raises. Any error (nix missing, git failing, a corrupt note,
a bug) becomes `skip=False` with the error as the reason, so CI simply runs. Bad usage
(no trust source, an unreadable key or policy file, a trust file inside the tree under
test) is rejected before `gate()` by `resolve_trust`, which raises `UsageError` (exit 2).

Trust comes from outside the change: keys from CI secrets/variables or files outside the
checkout, or `provenance.toml` read from a trusted ref (the target branch), never from the
tree under test, or a pull request could add its own key and approve itself.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provenance.doors.git import Git
from provenance.doors.nix import Nix, current_system
from provenance.doors.notes import DEFAULT_SEARCH_DEPTH, default_remote, history_notes
from provenance.doors.notes import fetch as fetch_notes
from provenance.errors import AttestationError, ProvenanceError, UsageError, VerificationError
from provenance.formats import dsse
from provenance.formats.claims import ProvenanceClaim, load_statement, parse_provenance
from provenance.formats.uris import SLSA_PROVENANCE_V1, TEST_RESULT_V01
from provenance.policy import nixenv
from provenance.policy.definition import Definitions, describe
from provenance.policy.trust import (
    Endorsement,
    TrustPolicy,
    count_signers,
    from_key_files,
    load_policy,
)
from provenance.policy.trusted_ref import policy_from_ref

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GateRequest:
    flake_dir: Path
    rev: str = "HEAD"
    policy: TrustPolicy | None = None  # from --trusted-key or --policy (outside the tree)
    policy_ref: str | None = None  # or: read provenance.toml at this trusted ref
    required: tuple[str, ...] | None = None  # None: every check of the flake at REV
    remote: str | None = None  # None: `origin`, or the only remote
    fetch: bool = True
    search_depth: int = DEFAULT_SEARCH_DEPTH


@dataclass(frozen=True)
class CheckVerdict:
    name: str
    drv_path: str | None
    passed: bool
    reason: str
    commit: str | None = None  # the commit whose attestation counts (may be an ancestor)
    signers: tuple[str, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "drvPath": self.drv_path,
            "passed": self.passed,
            "reason": self.reason,
            "attestedCommit": self.commit,
            "signers": list(self.signers),
        }


@dataclass(frozen=True)
class GateReport:
    skip: bool
    reason: str  # one line
    rev: str
    commit: str | None
    checks: tuple[CheckVerdict, ...] = ()
    notes: str = ""  # where the notes came from
    trust: str = ""  # where the trust came from
    search_depth: int = DEFAULT_SEARCH_DEPTH
    warnings: tuple[str, ...] = ()

    @property
    def reused(self) -> dict[str, str]:
        """Checks whose attestation came from an earlier commit: name -> that commit."""
        return {
            c.name: c.commit
            for c in self.checks
            if c.passed and c.commit and c.commit != self.commit
        }

    def as_json(self) -> dict[str, Any]:
        return {
            "skip": self.skip,
            "reason": self.reason,
            "rev": self.rev,
            "commit": self.commit,
            "notes": self.notes,
            "trust": self.trust,
            "searchDepth": self.search_depth,
            "warnings": list(self.warnings),
            "checks": [c.as_json() for c in self.checks],
        }


# -- trust -------------------------------------------------------------------------------


def target_branch(environ: Mapping[str, str]) -> str | None:
    """The branch a change is headed for, as CI systems announce it."""
    for var in ("GITHUB_BASE_REF", "CI_MERGE_REQUEST_TARGET_BRANCH_NAME", "CI_DEFAULT_BRANCH"):
        value = environ.get(var, "").strip()
        if value:
            return value
    return None


def resolve_trust(
    flake_dir: Path, key_files: list[Path], policy_file: Path | None
) -> TrustPolicy | None:
    """Load trust given as files; refuse files that live in the tree under test.

    Raises UsageError (exit 2): this is configuration, and a broken configuration should
    be loud rather than silently make CI run forever.
    """
    if key_files and policy_file:
        msg = "pass --trusted-key or --policy, not both"
        raise UsageError(msg)
    files = [*key_files, *([policy_file] if policy_file else [])]
    top = _toplevel_or_none(flake_dir)
    for f in files:
        if top is not None and f.resolve().is_relative_to(top):
            msg = f"{f} is inside the tree under test ({top}): a change could trust itself"
            raise UsageError(
                msg, "take keys from CI secrets or a path outside the checkout, or use --policy-ref"
            )
    if policy_file:
        return load_policy(policy_file)
    if key_files:
        return from_key_files(key_files)
    return None


def _toplevel_or_none(flake_dir: Path) -> Path | None:
    try:
        return Git(flake_dir).toplevel().resolve()
    except ProvenanceError:
        return None


# -- evidence ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Claim:
    note_commit: str  # the commit the note hangs on
    claim: ProvenanceClaim
    keyids: frozenset[str]


@dataclass(frozen=True)
class _Failure:
    note_commit: str
    drv_paths: frozenset[str]  # what the failed test-result names
    keyids: frozenset[str]


@dataclass
class _Evidence:
    claims: list[_Claim] = field(default_factory=list)
    failures: list[_Failure] = field(default_factory=list)
    malformed: int = 0  # lines that are not envelopes / statements we can read
    bad_signature: int = 0  # lines naming a trusted keyid whose signature fails
    untrusted: set[str] = field(default_factory=set)  # keyid hints of other signers
    lines: int = 0


def _read_evidence(notes: list[tuple[str, bytes]], policy: TrustPolicy) -> _Evidence:
    keys = policy.active_keys()
    trusted_ids = {k.key.keyid for k in policy.keys}
    ev = _Evidence()
    for commit, body in notes:
        for raw in body.split(b"\n"):
            if not raw.strip():
                continue
            ev.lines += 1
            try:
                env = dsse.Envelope.from_json(raw)
            except AttestationError:
                ev.malformed += 1
                continue
            try:
                verified = dsse.verify(env, keys)
            except VerificationError:
                hints = {s.keyid for s in env.signatures}
                if hints & trusted_ids:
                    ev.bad_signature += 1  # claims a trusted key, signature fails: tampered
                else:
                    ev.untrusted.update(h[:16] for h in hints)
                continue
            try:
                stmt = load_statement(verified.payload)
                ptype = stmt.get("predicateType")
                if ptype == SLSA_PROVENANCE_V1:
                    ev.claims.append(_Claim(commit, parse_provenance(stmt), verified.keyids))
                elif ptype == TEST_RESULT_V01:
                    failed = _failed_drvs(stmt)
                    if failed:
                        ev.failures.append(_Failure(commit, failed, verified.keyids))
            except AttestationError:
                ev.malformed += 1
    return ev


def _failed_drvs(stmt: dict[str, Any]) -> frozenset[str]:
    """drvPaths named by a test-result statement whose result is not PASSED/WARNED."""
    pred = stmt.get("predicate")
    if not isinstance(pred, dict) or pred.get("result") in ("PASSED", "WARNED"):
        return frozenset()
    named: set[str] = set()
    for rd in [*(pred.get("configuration") or []), *(stmt.get("subject") or [])]:
        if not isinstance(rd, dict):
            continue
        notes = rd.get("annotations")
        notes = notes if isinstance(notes, dict) else {}
        for v in (rd.get("name"), rd.get("uri"), notes.get("drvPath"), notes.get("nixStorePath")):
            if isinstance(v, str) and v.endswith(".drv"):
                named.add(v)
    return frozenset(named)


def _short(commit: str) -> str:
    return commit[:12]


@dataclass(frozen=True)
class _Context:
    system: str
    commit: str  # REV, resolved
    window: tuple[str, ...]  # REV and its searched ancestors, newest first
    evidence: _Evidence
    policy: TrustPolicy
    definitions: Definitions  # what defines the checks at REV, compared with ancestors
    outputs: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # check -> out -> path


def _unsound(c: _Claim, outputs: Mapping[str, str], policy: TrustPolicy) -> str | None:
    """Why an authentic, bound claim still proves nothing, or None (verify's rule too)."""
    if dict(c.claim.output_names) != {p: o for o, p in outputs.items()}:
        return "its subjects are not exactly the check's outputs (names and store paths)"
    return nixenv.recorded_problem(c.claim.internal, policy.environment)


def _judge(name: str, drv: str, ctx: _Context) -> CheckVerdict:
    system, commit, ev, policy = ctx.system, ctx.commit, ctx.evidence, ctx.policy
    in_window = set(ctx.window)
    depth = len(ctx.window)
    for f in ev.failures:
        if drv in f.drv_paths:
            reason = f"a trusted key attested it FAILED (note on {_short(f.note_commit)})"
            return CheckVerdict(name, drv, passed=False, reason=reason, commit=f.note_commit)
    same_check = [
        c
        for c in ev.claims
        if c.claim.check == name
        and c.claim.attribute == f"checks.{system}.{name}"
        and c.claim.system == system
    ]
    exact = [c for c in same_check if c.claim.drv_path == drv]
    usable = [c for c in exact if not c.claim.dirty and c.claim.commit in in_window]
    # An ancestor's proof counts only for the definition it was made on (definition.py).
    defined = [c for c in usable if ctx.definitions.same_as(c.claim.commit)]
    problems = [(c, p) for c in defined if (p := _unsound(c, ctx.outputs.get(name, {}), policy))]
    good = [c for c in defined if not any(c is b for b, _ in problems)]
    if problems and not good:
        bad, problem = problems[0]
        reason = f"the attestation on {_short(bad.claim.commit)} does not prove it: {problem}"
        return CheckVerdict(name, drv, passed=False, reason=reason, commit=bad.claim.commit)
    if good:
        # `good` follows the walk, newest first: on a tie the newest agreeing group counts.
        tally = count_signers(policy, [Endorsement.of(c.keyids, c.claim.subjects) for c in good])
        agreeing = [
            c for c in good if Endorsement.of(c.keyids, c.claim.subjects).subjects == tally.subjects
        ]
        at = agreeing[0].claim.commit  # the newest commit that carries it
        if not tally.passed:
            return CheckVerdict(
                name, drv, passed=False, reason=tally.reason, commit=at, signers=tally.signers
            )
        if tally.dissent:
            # Trusted keys built the same derivation and got different outputs: the check
            # is not reproducible, or a machine is lying. Doubt means run.
            reason = f"trusted signers disagree on the output digests: {tally.reason}"
            return CheckVerdict(
                name, drv, passed=False, reason=reason, commit=at, signers=tally.signers
            )
        how = (
            "on this commit"
            if at == commit
            else f"on {_short(at)}, reused (same drvPath, same definition)"
        )
        reason = f"attested by {', '.join(tally.signers)} {how}"
        if policy.threshold > 1:
            reason += f": {tally.reason}"
        return CheckVerdict(name, drv, passed=True, reason=reason, commit=at, signers=tally.signers)
    if usable:
        at = usable[0].claim.commit
        changed = describe(ctx.definitions.changes_since(at))
        reason = (
            f"attested on {_short(at)} for this drvPath, but what defines the checks changed "
            f"since ({changed}): a proof counts only for the definition it was made on"
        )
    elif any(c.claim.dirty for c in exact):
        reason = "only dirty-tree attestations exist for this drvPath; they never count"
    elif exact:
        reason = (
            f"the attestation for this drvPath names commit {_short(exact[0].claim.commit)}, "
            f"which is not among the last {depth} commit(s) of the revision"
        )
    elif same_check:
        newest = same_check[0]
        reason = (
            f"attested on {_short(newest.claim.commit)} for a different drvPath "
            f"({newest.claim.drv_path.rsplit('/', 1)[-1]}): an input of the check changed"
        )
    elif ev.bad_signature:
        reason = f"{ev.bad_signature} note line(s) fail signature verification (corrupted note?)"
    elif ev.malformed:
        reason = f"{ev.malformed} note line(s) are malformed (corrupted note?)"
    elif ev.untrusted:
        reason = f"notes are signed only by untrusted key(s) {', '.join(sorted(ev.untrusted))}"
    elif ev.lines == 0:
        reason = f"no attestation notes on the revision or its ancestors (searched {depth})"
    else:
        reason = f"no trusted attestation for this check within the last {depth} commit(s)"
    return CheckVerdict(name, drv, passed=False, reason=reason)


# -- the gate ----------------------------------------------------------------------------


def _flake_ref(top: Path, commit: str, subdir: str) -> str:
    # Same as attest._flake_ref for a clean tree: the commit itself, never the work tree.
    return f"git+file://{top}?rev={commit}" + (f"&dir={subdir}" if subdir else "")


def gate(req: GateRequest, nix: Nix) -> GateReport:
    """Decide whether CI may skip REV's checks. Never raises: errors mean skip=False."""
    try:
        return _gate(req, nix)
    except ProvenanceError as e:
        return GateReport(
            False, f"error: {e.diagnostics()}", req.rev, None, search_depth=req.search_depth
        )
    except Exception as e:  # fail safe: any bug means "run CI", never "skip"
        log.debug("gate failed", exc_info=True)
        reason = f"unexpected error: {type(e).__name__}: {e}".replace("\n", " ")
        return GateReport(False, reason, req.rev, None, search_depth=req.search_depth)


def _gate(req: GateRequest, nix: Nix) -> GateReport:
    if req.search_depth < 1:
        msg = "the search depth must be at least 1"
        raise UsageError(msg)
    flake_dir = req.flake_dir.resolve()
    git = Git(flake_dir)
    top = git.toplevel().resolve()
    subdir = flake_dir.relative_to(top).as_posix() if flake_dir != top else ""
    commit = git.rev_parse(req.rev)
    warnings: list[str] = []

    remote = req.remote or (default_remote(git) if req.fetch else None)
    if not req.fetch:
        notes_src = "local notes (fetch disabled)"
    elif remote is None:
        notes_src = "local notes (no remote)"
    else:
        try:
            synced = fetch_notes(git, remote)
            notes_src = f"fetched from {remote}" if synced.found else f"local ({remote} has none)"
        except ProvenanceError as e:
            notes_src = "local notes (fetch failed)"
            warnings.append(f"fetching notes from {remote} failed, using local notes: {e.message}")

    if req.policy is not None:
        policy = req.policy
    elif req.policy_ref is not None:
        policy = policy_from_ref(git, req.policy_ref, subdir)
    else:
        msg = "no trusted keys"
        raise UsageError(msg, "pass --trusted-key, --policy or --policy-ref")
    trust_src = f"{policy.source} ({len(policy.keys)} key(s), threshold {policy.threshold})"

    system = current_system()
    required = list(req.required) if req.required else None
    evaluated = nix.eval_checks(_flake_ref(top, commit, subdir), system, required)
    drvs = {n: c.drv_path for n, c in evaluated.items()}
    window, notes = history_notes(git, commit, req.search_depth)
    evidence = _read_evidence(notes, policy)
    definitions = Definitions(git, commit, subdir)
    outputs = {n: c.outputs for n, c in evaluated.items()}
    ctx = _Context(system, commit, tuple(window), evidence, policy, definitions, outputs)
    verdicts = tuple(_judge(n, drvs[n], ctx) for n in sorted(drvs))
    failed = [v for v in verdicts if not v.passed]
    if failed:
        more = f" (+{len(failed) - 1} more check(s) not proven)" if len(failed) > 1 else ""
        reason = f"{failed[0].name}: {failed[0].reason}{more}"
    else:
        reused = sorted({v.commit for v in verdicts if v.commit and v.commit != commit})
        reason = f"all {len(verdicts)} check(s) attested by trusted keys for their exact drvPaths"
        if reused:
            reason += "; reused the attestation of commit " + ", ".join(reused)
    return GateReport(
        skip=not failed,
        reason=reason,
        rev=req.rev,
        commit=commit,
        checks=verdicts,
        notes=notes_src,
        trust=trust_src,
        search_depth=req.search_depth,
        warnings=tuple(warnings),
    )


# -- rendering ---------------------------------------------------------------------------


def _one_line(text: str) -> str:
    return " ".join(text.split())


def github_output(report: GateReport) -> str:
    """Lines for $GITHUB_OUTPUT: skip, reason (one line), commit."""
    return f"skip={'true' if report.skip else 'false'}\nreason={_one_line(report.reason)}\n" + (
        f"commit={report.commit}\n" if report.commit else ""
    )


def _md(text: str) -> str:
    return _one_line(text).replace("|", "\\|")


def step_summary(report: GateReport) -> str:
    """A markdown section for $GITHUB_STEP_SUMMARY: verdict, then a table per check."""
    verdict = "skip: the checks are proven" if report.skip else "run: the checks are not proven"
    rev = f"`{report.commit[:12]}`" if report.commit else f"`{report.rev}`"
    out = [f"### provenance gate: {verdict}", "", f"Revision {rev}: {_md(report.reason)}", ""]
    if report.checks:
        out += ["| check | verdict | drvPath | attested at | reason |", "|---|---|---|---|---|"]
        for c in report.checks:
            drv = f"`{c.drv_path.rsplit('/', 1)[-1]}`" if c.drv_path else ""
            at = f"`{c.commit[:12]}`" if c.commit else ""
            mark = "pass" if c.passed else "not proven"
            out.append(f"| {_md(c.name)} | {mark} | {drv} | {at} | {_md(c.reason)} |")
        out.append("")
    out.append(
        f"Notes: {report.notes or 'n/a'}. Trust: {report.trust or 'n/a'}. "
        f"Search depth: {report.search_depth} commit(s)."
    )
    out += [f"> warning: {_md(w)}" for w in report.warnings]
    return "\n".join(out) + "\n"


def text(report: GateReport) -> str:
    """The human verdict for stderr."""
    lines = [f"gate: skip={'true' if report.skip else 'false'}: {report.reason}"]
    for c in report.checks:
        lines.append(f"  {'PASS' if c.passed else 'RUN '} {c.name}: {c.reason}")
    lines += [f"warning: {w}" for w in report.warnings]
    if report.notes or report.trust:
        lines.append(f"  notes: {report.notes}; trust: {report.trust}")
    return "\n".join(lines)


def to_json(report: GateReport) -> str:
    return json.dumps(report.as_json(), indent=2, sort_keys=True)


def write_ci_files(report: GateReport, environ: Mapping[str, str] | None = None) -> list[str]:
    """Append to $GITHUB_OUTPUT / $GITHUB_STEP_SUMMARY when set; return problems, if any.

    A failure to write is reported, never raised: without `skip=true` CI runs anyway.
    """
    env = os.environ if environ is None else environ
    problems: list[str] = []
    for var, body in (
        ("GITHUB_OUTPUT", github_output(report)),
        ("GITHUB_STEP_SUMMARY", step_summary(report)),
    ):
        path = env.get(var)
        if not path:
            continue
        try:
            with Path(path).open("a", encoding="utf-8") as f:
                f.write(body)
        except OSError as e:
            problems.append(f"cannot write ${var} ({path}): {e.strerror}")
    return problems
