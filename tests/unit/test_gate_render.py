"""The gate's verdict is one value; every rendering comes from it. No nix needed here."""

from __future__ import annotations

from pathlib import Path

from provenance.ci import gate as g
from provenance.doors.nix import EvaluatedCheck, Nix
from provenance.policy.trust import TrustPolicy

C1 = "a" * 40
C0 = "b" * 40


def _report(skip: bool) -> g.GateReport:
    checks = (
        g.CheckVerdict(
            "det", "/nix/store/x-det-check.drv", True, "attested by alice on this commit", C1
        ),
        g.CheckVerdict(
            "chain|pipe", "/nix/store/y-chain-check.drv", skip, "line one\nline | two", C0
        ),
    )
    return g.GateReport(skip, "reason with\nnewline", "HEAD", C1, checks, "local notes", "k", 50)


def test_github_output_is_one_line_per_key() -> None:
    out = g.github_output(_report(False))
    assert out.splitlines() == ["skip=false", "reason=reason with newline", f"commit={C1}"]


def test_summary_table_escapes_and_names_the_attesting_commit() -> None:
    md = g.step_summary(_report(True))
    row = next(ln for ln in md.splitlines() if ln.startswith("| chain"))
    assert row == (
        f"| chain\\|pipe | pass | `y-chain-check.drv` | `{C0[:12]}` | line one line \\| two |"
    )
    assert "### provenance gate: skip" in md


def test_reused_lists_only_earlier_commits() -> None:
    assert _report(True).reused == {"chain|pipe": C0}


def test_unwritable_ci_files_are_reported_not_raised(tmp_path: Path) -> None:
    problems = g.write_ci_files(_report(True), {"GITHUB_OUTPUT": str(tmp_path)})
    assert len(problems) == 1
    assert problems[0].startswith("cannot write $GITHUB_OUTPUT")


class _BrokenNix(Nix):
    def eval_checks(
        self, ref: str, system: str, names: list[str] | None
    ) -> dict[str, EvaluatedCheck]:
        msg = "a bug"
        raise RuntimeError(msg)


def test_an_unexpected_error_means_run(flake: Path) -> None:
    # Real git repo; a nix stand-in that crashes the way a bug would (real nix cannot).
    req = g.GateRequest(flake_dir=flake, policy=TrustPolicy(()))
    report = g.gate(req, _BrokenNix())
    assert report.skip is False
    assert report.reason == "unexpected error: RuntimeError: a bug"
    assert "skip=false" in g.github_output(report)
