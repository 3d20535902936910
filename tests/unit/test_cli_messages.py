"""Messages and interfaces of the CLI (issue 13): `--json` on every failure, defaults in
`--help`, click's usage errors as our one line, escaped names, honest counts and hints."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from provenance.cli import app
from provenance.text import printable


def cli(*args: str) -> tuple[int, str, str]:
    done = CliRunner().invoke(app, list(args), env={"COLUMNS": "400"})
    return done.exit_code, done.stdout, done.stderr


def _commands() -> list[list[str]]:
    """The path of every command, e.g. ["trust", "add"]."""
    out: list[list[str]] = []

    def walk(cmd: object, path: list[str]) -> None:
        subs = getattr(cmd, "commands", None)
        if subs is None:
            out.append(path)
            return
        for name, sub in subs.items():
            walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return out


@pytest.mark.parametrize("path", _commands(), ids=" ".join)
def test_every_default_is_shown_in_help(path: list[str]) -> None:
    cmd = typer.main.get_command(app)
    for name in path:
        cmd = cmd.commands[name]  # type: ignore[attr-defined]
    code, out, _ = cli(*path, "--help")
    assert code == 0
    out = " ".join(out.split())  # the renderer wraps long defaults
    for p in cmd.params:  # type: ignore[attr-defined]
        # One way to state a default (show_default), so a renderer cannot hide some of them.
        assert "[default" not in (getattr(p, "help", None) or ""), p.name
        if isinstance(p.show_default, str):
            shown = (f"[default: {p.show_default}]", f"[default: ({p.show_default})]")
            assert any(s in out for s in shown), p.name
        elif p.default not in (None, False, ()) and not p.required:
            assert "[default: " in out, p.name


def test_build_help_shows_the_bundle_default_and_the_cache_search() -> None:
    _, out, _ = cli("build", "--help")
    out = " ".join(out.split())
    assert re.search(r"\[default: \(?FLAKE_DIR/.provenance/COMMIT.KEYID.intoto.jsonl\)?\]", out)
    assert "on HEAD or one of its 49 ancestors" in out


def test_bad_option_value_is_one_line_exit_2() -> None:
    code, out, err = cli("gate", "--search-depth", "0")
    assert code == 2
    assert out == ""
    assert err.strip().splitlines() == [
        "error: Invalid value for '--search-depth': 0 is not in the range x>=1. "
        "(see provenance gate --help)"
    ]


def test_bad_option_value_under_json_is_one_object() -> None:
    code, out, err = cli("gate", "--search-depth", "0", "--json")
    assert code == 2
    error = json.loads(out)["error"]
    assert error["exitCode"] == 2 and "--search-depth" in error["message"]
    assert error["hint"] == "see provenance gate --help"
    assert err.startswith("error: ")


def test_unknown_option_and_missing_argument_are_one_line() -> None:
    for args in (["build", "--bogus"], ["trust", "add"]):
        code, _, err = cli(*args)
        assert code == 2
        assert len(err.strip().splitlines()) == 1 and err.startswith("error: "), err


def test_no_args_still_prints_help() -> None:
    code, out, err = cli("trust")
    assert code == 2
    assert "Usage:" in out + err


def test_json_error_for_our_own_refusals(tmp_path: Path) -> None:
    code, out, err = cli("build", str(tmp_path), "--json")  # no key
    assert code == 2
    assert json.loads(out) == {
        "error": {
            "message": "no signing key",
            "hint": "pass --key PATH or set PROVENANCE_KEY",
            "exitCode": 2,
        }
    }
    assert err == "error: no signing key (pass --key PATH or set PROVENANCE_KEY)\n"


def test_json_error_for_provenance_errors(tmp_path: Path) -> None:
    code, out, _ = cli("build", str(tmp_path), "--key", str(tmp_path / "missing.key"), "--json")
    assert code == 2
    error = json.loads(out)["error"]
    assert error["exitCode"] == 2 and "missing.key" in error["message"]
    code, out, _ = cli("gate", str(tmp_path), "--json")  # no trust given, exit 2
    assert code == 2 and json.loads(out)["error"]["message"] == "no trust given"
    code, out, _ = cli("audit", "summary", "--ledger", str(tmp_path / "none"), "--json")
    assert code == 2 and "no ledger" in json.loads(out)["error"]["message"]


def test_verify_output_without_sign_with_is_refused(tmp_path: Path) -> None:
    code, out, err = cli("verify", "--flake", str(tmp_path), "-o", str(tmp_path / "v"), "--json")
    assert code == 2
    assert "--sign-with" in json.loads(out)["error"]["hint"]
    assert "written only with --sign-with" in err


def test_audit_aggregate_does_not_suggest_a_missing_option(tmp_path: Path) -> None:
    code, _, err = cli("audit", "aggregate", str(tmp_path / "nowhere.jsonl"))
    assert code == 2
    assert "no ledger" in err and "--ledger" not in err


def test_printable_escapes_controls_only() -> None:
    assert printable("unit tests") == "unit tests"
    assert printable("café ✓") == "café ✓"
    assert printable("x\nskip=true") == "x\\nskip=true"
    assert printable("a\rb\x1b[2Jc\x00\u2028\u202e") == "a\\rb\\x1b[2Jc\\x00\\u2028\\u202e"


def test_gate_text_and_summary_escape_names() -> None:
    from provenance.ci import outputs  # noqa: PLC0415
    from provenance.ci.report import CheckVerdict, GateReport  # noqa: PLC0415

    name = "evil\nskip=true"
    check = CheckVerdict(name=name, drv_path=None, passed=False, reason=f"{name}\x1b[1m")
    report = GateReport(
        skip=False, reason=f"{name} not proven", rev="HEAD", commit=None, checks=(check,)
    )
    for rendered in (outputs.text(report), outputs.step_summary(report)):
        assert not any(line.startswith("skip=true") for line in rendered.splitlines())
        assert "\x1b" not in rendered
    assert "evil\\nskip=true" in outputs.text(report)
