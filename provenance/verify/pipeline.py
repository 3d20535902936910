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
   no sandbox paths beyond the policy's: environment.recorded_problem, as `gate` applies).
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

Here: the order (`verify`), the threshold rule per check, and the signed summary (level 4).
Level 1 is authentic.py, level 2 binding.py (with drvdiff.py), level 3 reproduce.py; the
request and report types are verification.py, re-exported here and by the package.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from provenance.doors.git import NOTES_REF, Git
from provenance.doors.nix import Nix, current_system
from provenance.doors.notes import DEFAULT_SEARCH_DEPTH
from provenance.doors.selection import EvaluatedCheck
from provenance.errors import UsageError
from provenance.formats import bundle, dsse
from provenance.formats.uris import flake_subdir
from provenance.policy import resolve as policy_mod
from provenance.policy.definition import Definitions
from provenance.policy.trust import Endorsement, Tally, TrustPolicy, count_signers
from provenance.progress import Reporter
from provenance.verify.authentic import authenticate, read_bundle, read_notes
from provenance.verify.binding import Repo, bind, check_environment, judge_failed_results
from provenance.verify.drvdiff import explain_drv_difference
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
    repo: Repo,
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
            dependencies=r.dependencies.as_json() if r.dependencies else None,
        )
        lines.append(dsse.sign(stmt.dump_bytes(), [req.signer]).to_json())
    if not lines:
        reporter.warn("nothing authentic to summarise: no verification summary written")
        return None, False
    # Named per reviewer key, as bundles are per signing key: a second reviewer's summary
    # of the same revision sits beside the first's instead of replacing it.
    name = f"{repo.rev}.{req.signer.keyid}{VSA_SUFFIX}"
    path = req.vsa_output or (req.flake_dir.resolve() / ".provenance" / name)
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
    if (req.caches.urls or req.caches.keys) and not req.rebuild:
        msg = "--substituters and --trusted-public-keys only apply to --rebuild"
        raise UsageError(msg, "they say where a rebuild may take its dependencies from")
    flake_dir = req.flake_dir.resolve()
    if not (flake_dir / "flake.nix").is_file():
        msg = f"{req.flake_dir} is not a flake (no flake.nix)"
        raise UsageError(msg, "pass the flake directory with --flake DIR")
    git = Git(flake_dir)
    top, rev = git.head() if req.rev == "HEAD" else (git.toplevel(), git.rev_parse(req.rev))
    window = tuple(git.rev_list(rev, DEFAULT_SEARCH_DEPTH))
    subdir = flake_subdir(flake_dir, top)
    repo = Repo(git, top, subdir, rev, window, Definitions(git, rev, subdir))
    requested = (AUTHENTIC, BOUND, *((REPRODUCED,) if req.rebuild else ()))
    warning = policy_mod.check_source(req.policy, top, signing=req.signer is not None)
    if warning:
        reporter.warn(warning)

    system = current_system()
    with ThreadPoolExecutor(max_workers=1) as pool:
        # The evaluation at rev does not depend on what is verified: it runs while the
        # bundles are read and their signatures checked (bind() waits for it).
        started = {system: pool.submit(nix.eval_checks, repo.ref(rev), system, None)}
        return _verify(req, nix, reporter, repo, requested, system, started)


def _verify(
    req: VerifyRequest,
    nix: Nix,
    reporter: Reporter,
    repo: Repo,
    requested: tuple[str, ...],
    system: str,
    started: dict[str, Future[dict[str, EvaluatedCheck]]],
) -> VerifyReport:
    git, rev, top, subdir = repo.git, repo.rev, repo.top, repo.subdir
    if req.bundles:
        atts = [a for p in req.bundles for a in read_bundle(p)]
    else:
        atts = read_notes(git, rev, DEFAULT_SEARCH_DEPTH)

    for a in atts:
        authenticate(a, req.policy)

    wanted = set(req.checks) if req.checks else None
    if wanted is not None:
        for a in atts:
            if a.claim and not a.failed and not a.skipped and a.claim.check not in wanted:
                a.skip(BOUND, "check", f"check {a.claim.check} not selected by --check")

    all_evaluated = bind(atts, repo, nix, system, started)
    check_environment(atts, req.policy)
    evaluated = {n: c.drv_path for n, c in all_evaluated.get(system, {}).items()}
    judge_failed_results(atts, all_evaluated, rev, wanted)

    if req.rebuild:
        # Imported here: the rebuild machinery (attest's realise, caches) only for --rebuild.
        from provenance.verify.reproduce import rebuild_fresh, rebuild_in_place  # noqa: PLC0415

        bound = [a for a in atts if a.claim and not a.failed and not a.skipped]
        if bound and req.in_place:
            rebuild_in_place(bound, nix, reporter, req.caches)
        elif bound:
            rebuild_fresh(bound, nix, req.store, reporter, req.caches)

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
    review = None
    if req.base is not None:
        # What the revision did to its tests against the base (review/compare.py): a
        # weakening attests honestly under a new drvPath, so only a comparison catches it.
        # Imported here: verify without --base needs none of the review machinery.
        from provenance.review.compare import Scope, compare, resolve_base  # noqa: PLC0415
        from provenance.review.policy import from_commit  # noqa: PLC0415

        base = resolve_base(git, req.base, rev, trusted=False)
        rules = req.review_policy or from_commit(git, base.commit, subdir, base.ref)
        mine = all_evaluated.get(system, {})
        wanted_names = tuple(sorted(wanted)) if wanted is not None else None
        scope = Scope(git, top, subdir, rev, system, mine, wanted_names, DEFAULT_SEARCH_DEPTH)
        review = compare(scope, base, nix, req.policy, rules)

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
        review=review,
    )
