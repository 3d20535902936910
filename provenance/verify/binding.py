"""Level 2 of `provenance verify`: is an authentic claim about this project, at --rev?

The attested commit must be --rev or a recent ancestor with the same definition of the
checks (definition.py, as `gate`), the flake ref and attribute this repo's, and the
flake re-evaluated at --rev (never the work tree) must give the same drvPath with exactly
the attested outputs (a different drvPath is explained: drvdiff.py). The recorded Nix
environment must prove the claim (environment.recorded_problem, as `gate`), and a trusted
test-result saying FAILED for a check's drvPath fails it. Apart from level 1 because this
is where the repository and nix come in: git for the commits, one evaluation per system.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from provenance.doors.git import Git
from provenance.doors.nix import Nix
from provenance.doors.notes import DEFAULT_SEARCH_DEPTH
from provenance.doors.selection import EvaluatedCheck
from provenance.errors import UsageError
from provenance.formats.uris import git_file_flake, local_path
from provenance.policy import tier
from provenance.policy.definition import Definitions, describe
from provenance.policy.environment import recorded_problem
from provenance.policy.trust import TrustPolicy
from provenance.verify.drvdiff import explain_drv_difference
from provenance.verify.verification import BOUND, Attestation


@dataclass(frozen=True)
class Repo:
    """The repository verified: its top, the flake's directory in it, and --rev."""

    git: Git
    top: Path
    subdir: str
    rev: str
    window: tuple[str, ...] = ()  # rev and its ancestors within the bound, newest first
    definitions: Definitions | None = None  # what defines the checks at rev (definition.py)

    def ref(self, commit: str) -> str:
        return git_file_flake(str(self.top), rev=commit, subdir=self.subdir)

    def flake(self) -> str:
        return git_file_flake(str(self.top), subdir=self.subdir)


def _check_static_binding(att: Attestation, repo: Repo) -> bool:
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
        # drvPath (bind).
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
    try:
        url = urllib.parse.urlsplit(c.flake)
    except ValueError:  # "git+file://[": an unclosed IPv6 host
        att.unbound("flake", f"names flake {c.flake[:200]!r}, which is not a URL")
        return False
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
    where = local_path(c.flake)  # percent-decoded, as git_file_flake encoded it
    moved = f" (attested at {where}, a copy of this repository)" if where != str(repo.top) else ""
    att.ok(BOUND, "flake", f"{repo.flake()}{moved}")
    want_attr = f"checks.{c.system}.{c.check}"
    if c.attribute != want_attr:
        att.unbound("attribute", f"attribute {c.attribute!r} is not {want_attr!r}")
        return False
    return True


def bind(
    atts: list[Attestation], repo: Repo, nix: Nix, required_system: str
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


def check_environment(atts: list[Attestation], policy: TrustPolicy) -> None:
    """What the statement records about its build must prove the claim (as in `gate`),
    at the tier the policy requires, if it requires one (policy/tier.py)."""
    for a in atts:
        if a.claim is None or a.failed or a.skipped:
            continue
        problem = recorded_problem(a.claim.internal, policy.environment)
        if problem is None and policy.require_tier is not None:
            judged = tier.judge(a.claim, a.keyids, policy.service_keys())
            problem = tier.shortfall(judged, policy.require_tier)
        if problem is not None:
            if a.ancestor:  # history that proves nothing (an older tool's, say), not evidence
                a.skip(BOUND, "environment", f"{problem} (on an ancestor's note: not counted)")
            else:
                a.fail(BOUND, "environment", problem)
        else:
            kind = a.claim.internal.get("nix", {}).get("sandboxEnforcement")
            detail = f"recorded: sandboxed, no hooks or remote builders, not substituted ({kind})"
            a.ok(BOUND, "environment", detail)


def judge_failed_results(
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
