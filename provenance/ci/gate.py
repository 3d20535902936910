"""`provenance gate`: may CI skip the checks of a revision because a trusted machine proved them?

The decision is a value, `GateReport` (`report`), with one `CheckVerdict` per required
check, judged from the signed notes by `evidence`; every rendering (GITHUB_OUTPUT lines,
the step-summary table, the stderr text, the JSON) is made from that one value in
`outputs`. This module holds the decision and where trust comes from, and re-exports the
request, report and renderings, so callers need only `from provenance.ci import gate`.

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
4. with `--base REF`: the tests of each check and the protected paths are compared with
   the merge base of REV and REF, and every weakening the base's `[review]` policy names
   must be approved by a trusted reviewer (review/compare.py; docs/review.md);
5. `skip` is true only when every required check passes and (with --base) nothing
   unapproved or unknown stands against the base.

Fail safe: `gate()` never raises. Any error (nix missing, git failing, a corrupt note,
a bug) becomes `skip=False` with the error as the reason, so CI simply runs. Bad usage
(no trust source, an unreadable key or policy file, a trust file inside the tree under
test) is rejected before `gate()` by `resolve_trust`, which raises `UsageError` (exit 2).

Trust comes from outside the change: keys from CI secrets/variables or files outside the
checkout, or `provenance.toml` read from a trusted ref (the target branch), never from the
tree under test, or a pull request could add its own key and approve itself.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from provenance.ci.evidence import Context, Evidence, judge, read_evidence
from provenance.ci.outputs import github_output, step_summary, text, to_json, write_ci_files
from provenance.ci.report import CheckVerdict, GateReport, GateRequest
from provenance.doors.git import Git
from provenance.doors.nix import Nix, current_system
from provenance.doors.notes import default_remote, history_notes
from provenance.doors.notes import fetch as fetch_notes
from provenance.errors import ProvenanceError, UsageError
from provenance.formats.uris import flake_subdir, git_file_flake
from provenance.policy.definition import Definitions
from provenance.policy.trust import TrustPolicy, from_key_files, load_policy
from provenance.policy.trusted_ref import policy_from_ref

if TYPE_CHECKING:
    from provenance.review.compare import Review

__all__ = [
    "CheckVerdict",
    "GateReport",
    "GateRequest",
    "gate",
    "github_output",
    "resolve_trust",
    "step_summary",
    "target_branch",
    "text",
    "to_json",
    "write_ci_files",
]

log = logging.getLogger(__name__)


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


# -- the gate ----------------------------------------------------------------------------


def _flake_ref(top: Path, commit: str, subdir: str) -> str:
    # Same as attest._flake_ref for a clean tree: the commit itself, never the work tree.
    return git_file_flake(str(top), rev=commit, subdir=subdir)


def gate(req: GateRequest, nix: Nix) -> GateReport:
    """Decide whether CI may skip REV's checks. Never raises: errors mean skip=False."""
    try:
        return _gate(req, nix)
    except ProvenanceError as e:
        reason = f"error: {e.diagnostics()}"
        return GateReport(False, reason, req.rev, None, search_depth=req.search_depth, errored=True)
    except Exception as e:  # fail safe: any bug means "run CI", never "skip"
        log.debug("gate failed", exc_info=True)
        reason = f"unexpected error: {type(e).__name__}: {e}".replace("\n", " ")
        return GateReport(False, reason, req.rev, None, search_depth=req.search_depth, errored=True)


@dataclass(frozen=True)
class _Notes:
    source: str  # where the notes came from, for the report
    window: list[str]
    evidence: Evidence
    warnings: list[str]


def _notes(git: Git, req: GateRequest, commit: str, policy: TrustPolicy) -> _Notes:
    """Fetch the notes when asked, read REV's bounded history's, judge their signatures."""
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
    window, notes = history_notes(git, commit, req.search_depth)
    return _Notes(notes_src, window, read_evidence(notes, policy), warnings)


def _gate(req: GateRequest, nix: Nix) -> GateReport:
    if req.search_depth < 1:
        msg = "the search depth must be at least 1"
        raise UsageError(msg)
    flake_dir = req.flake_dir.resolve()
    git = Git(flake_dir)
    top, commit = git.head() if req.rev == "HEAD" else (git.toplevel(), git.rev_parse(req.rev))
    top = top.resolve()
    subdir = flake_subdir(flake_dir, top)

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
    with ThreadPoolExecutor(max_workers=1) as pool:
        # Fetching and reading the notes (signatures, statements) does not depend on the
        # evaluation: it runs while nix evaluates.
        notes_f = pool.submit(_notes, git, req, commit, policy)
        evaluated = nix.eval_checks(_flake_ref(top, commit, subdir), system, required)
        found = notes_f.result()
    drvs = {n: c.drv_path for n, c in evaluated.items()}
    definitions = Definitions(git, commit, subdir)
    outputs = {n: c.outputs for n, c in evaluated.items()}
    ctx = Context(system, commit, tuple(found.window), found.evidence, policy, definitions, outputs)
    verdicts = tuple(judge(n, drvs[n], ctx) for n in sorted(drvs))
    review: Review | None = None
    if req.base is not None:
        # The deltas against the base: a change that weakens its tests gets a new drvPath
        # and an honest attestation, so the drvPath alone cannot catch it (review/).
        # Imported here: ~25 ms that a gate without --base does not need.
        from provenance.review.compare import Scope, compare, resolve_base  # noqa: PLC0415
        from provenance.review.policy import from_commit  # noqa: PLC0415

        base = resolve_base(git, req.base, commit, trusted=True)
        rules = req.review_policy or from_commit(git, base.commit, subdir, base.ref)
        wanted = tuple(required) if required else None
        scope = Scope(git, top, subdir, commit, system, evaluated, wanted, req.search_depth)
        review = compare(scope, base, nix, policy, rules)
    failed = [v for v in verdicts if not v.passed]
    if failed:
        more = f" (+{len(failed) - 1} more check(s) not proven)" if len(failed) > 1 else ""
        reason = f"{failed[0].name}: {failed[0].reason}{more}"
    elif review is not None and not review.ok:
        reason = review.reason()
    else:
        reused = sorted({v.commit for v in verdicts if v.commit and v.commit != commit})
        reason = f"all {len(verdicts)} check(s) attested by trusted keys for their exact drvPaths"
        if reused:
            reason += "; reused the attestation of commit " + ", ".join(reused)
        if review is not None:
            reason += f"; {review.reason()}"
    return GateReport(
        skip=not failed and (review is None or review.ok),
        reason=reason,
        rev=req.rev,
        commit=commit,
        checks=verdicts,
        notes=found.source,
        trust=trust_src,
        search_depth=req.search_depth,
        warnings=tuple(found.warnings),
        review=review,
    )
