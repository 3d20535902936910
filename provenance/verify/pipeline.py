"""`provenance verify`: confirm every claim of a bundle without trusting who made it.

Levels, each reported per attestation (docs/verify.md):

1. authentic: the DSSE signatures check against the trust policy over the PAE of the
   payload bytes, before anything is parsed (any one trusted key authenticates); then
   payloadType, predicateType and the statement's shape (claims.py: subject names are
   plain store paths, digests hex).
2. bound: the attested commit must be --rev or one of its ancestors within
   notes.DEFAULT_SEARCH_DEPTH commits whose files that define the checks are the same
   (definition.py; as `gate`), the flake ref and attribute must be
   this repo's, and the flake re-evaluated at --rev (never the work tree) must give the
   same drvPath (it pins tests, dependencies and toolchain) with exactly the attested
   outputs. A different drvPath is explained (which inputs, sources or env keys differ).
   The Nix environment the statement records must prove its claim (sandboxed, no hooks,
   no sandbox paths beyond the policy's: nixenv.recorded_problem, the rule `gate` applies).
3. reproduced (--rebuild): the derivation is built again in a fresh chroot store (or in
   place with Nix's rebuild check) and every output's NAR SHA-256, computed by us, must be
   the subject digest; every differing output is compared file by file (reproduce.py,
   diff.py).
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

import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from provenance.doors.git import NOTES_REF, Git
from provenance.doors.nix import Derivation, Nix, current_system
from provenance.doors.notes import DEFAULT_SEARCH_DEPTH, history_notes
from provenance.doors.selection import EvaluatedCheck
from provenance.errors import AttestationError, NixError, UsageError, VerificationError
from provenance.formats import bundle, dsse
from provenance.formats.claims import (
    load_statement,
    parse_provenance,
    test_result_binding,
    test_result_outcome,
)
from provenance.formats.uris import SLSA_PROVENANCE_V1, TEST_RESULT_V01
from provenance.policy import nixenv
from provenance.policy import resolve as policy_mod
from provenance.policy.definition import Definitions, describe
from provenance.policy.trust import Endorsement, Tally, TrustPolicy, count_signers
from provenance.progress import Reporter
from provenance.verify.reproduce import rebuild_fresh, rebuild_in_place
from provenance.verify.verification import (  # VerifyRequest and VerifyReport are this API's types
    AUTHENTIC,
    BOUND,
    PASSED,
    REPRODUCED,
    SKIPPED,
    VSA_SUFFIX,
    Attestation,
    AttestationReport,
    CheckResult,
    VerifyReport,
    VerifyRequest,
)

__all__ = ["VerifyReport", "VerifyRequest", "explain_drv_difference", "verify"]

# -- input ------------------------------------------------------------------------------


def _split_lines(data: bytes) -> list[bytes]:
    # Same rule as bundle.parse_pairs: blank lines are skipped, the rest are envelopes.
    return [ln for ln in data.split(b"\n") if ln.strip()]


def _read_bundle(path: Path) -> list[Attestation]:
    return [
        Attestation(f"{path.name} line {n}", ln, env, strict=True)
        for n, (ln, env) in enumerate(bundle.read_pairs(path), 1)
    ]


def _read_notes(git: Git, rev: str, depth: int) -> list[Attestation]:
    """The notes on rev and on its ancestors within the bound, newest first."""
    _, notes = history_notes(git, rev, depth)
    atts: list[Attestation] = []
    for commit, data in notes:
        for n, ln in enumerate(_split_lines(data), 1):
            att = Attestation(f"note on {commit[:12]} line {n}", ln, None, False, commit != rev)
            try:
                att.envelope = dsse.Envelope.from_json(ln)
            except AttestationError as e:
                att.skip(AUTHENTIC, "envelope", f"not a DSSE envelope ({e.message})")
            atts.append(att)
    return atts


# -- level 1: authentic -----------------------------------------------------------------


def _authenticate(att: Attestation, policy: TrustPolicy) -> None:
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
    definitions: Definitions | None = None  # what defines the checks at rev (definition.py)

    def ref(self, commit: str) -> str:
        query = f"rev={commit}" + (f"&dir={urllib.parse.quote(self.subdir)}" if self.subdir else "")
        return f"git+file://{self.top}?{query}"

    def flake(self) -> str:
        return f"git+file://{self.top}" + (f"?dir={self.subdir}" if self.subdir else "")


def _check_static_binding(att: Attestation, repo: _Repo) -> bool:
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
        # As the gate does: the drvPath pins every input of the check and the definition
        # pins what the check is, so a statement made on a recent ancestor holds for rev
        # if nothing that defines the checks changed and rev evaluates to the same
        # drvPath (_bind).
        changed = repo.definitions.changes_since(c.commit) if repo.definitions else ()
        if changed:
            att.unbound(
                "commit",
                f"attests {c.commit[:12]}, an ancestor of {repo.rev[:12]}, but what defines "
                f"the checks changed since ({describe(changed)}): a statement holds only for "
                "the definition it was made on",
            )
            return False
        att.ok(
            BOUND,
            "commit",
            f"attests {c.commit[:12]}, an ancestor of {repo.rev[:12]} within "
            f"{len(repo.window)} commits with the same definition of the checks: it holds "
            f"if the drvPath at {repo.rev[:12]} is the same",
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
    atts: list[Attestation], repo: _Repo, nix: Nix, required_system: str
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


def _check_environment(atts: list[Attestation], policy: TrustPolicy) -> None:
    """What the statement records about its build must prove the claim (as in `gate`)."""
    for a in atts:
        if a.claim is None or a.failed or a.skipped:
            continue
        problem = nixenv.recorded_problem(a.claim.internal, policy.environment)
        if problem is not None:
            if a.ancestor:  # history that proves nothing (an older tool's, say), not evidence
                a.skip(BOUND, "environment", f"{problem} (on an ancestor's note: not counted)")
            else:
                a.fail(BOUND, "environment", problem)
        else:
            kind = a.claim.internal.get("nix", {}).get("sandboxEnforcement")
            detail = f"recorded: sandboxed, no hooks or remote builders, not substituted ({kind})"
            a.ok(BOUND, "environment", detail)


def _judge_failed_results(
    atts: list[Attestation],
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
    atts: list[Attestation], reports: list[AttestationReport], policy: TrustPolicy
) -> list[CheckResult]:
    """The threshold rule (trust.count_signers) per check and drvPath, over passing claims."""
    groups: dict[tuple[str, str], list[Attestation]] = {}
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


def _tally_result(name: str, drv: str, atts: list[Attestation], policy: TrustPolicy) -> CheckResult:
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


# -- level 4: signed verdict --------------------------------------------------------------


def _write_vsa(
    req: VerifyRequest,
    repo: _Repo,
    reports: list[AttestationReport],
    requested: tuple[str, ...],
    reporter: Reporter,
) -> tuple[Path | None, bool]:
    from provenance.formats import vsa  # noqa: PLC0415 - pydantic models, only needed when signing

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
    repo = _Repo(git, top, subdir, rev, window, Definitions(git, rev, subdir))
    requested = (AUTHENTIC, BOUND, *((REPRODUCED,) if req.rebuild else ()))
    warning = policy_mod.check_source(req.policy, top, signing=req.signer is not None)
    if warning:
        reporter.warn(warning)

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
    _check_environment(atts, req.policy)
    evaluated = {n: c.drv_path for n, c in all_evaluated.get(system, {}).items()}
    _judge_failed_results(atts, all_evaluated, rev, wanted)

    if req.rebuild:
        bound = [a for a in atts if a.claim and not a.failed and not a.skipped]
        if bound and req.in_place:
            rebuild_in_place(bound, nix, reporter)
        elif bound:
            rebuild_fresh(bound, nix, req.store, reporter)

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
