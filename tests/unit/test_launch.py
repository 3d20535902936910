"""launch.py starts the hot command's nix eval before the CLI is imported; proc.py lets
only the identical run adopt it. What is tested here: the option tables are the commands'
own, argv the reader is unsure of starts nothing, and an adopted process is only ever the
very run that was asked (same argv, environment, directory); one not adopted is killed.
tests/integration/test_launch.py runs it against real nix."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import typer
import typer.main

from provenance import launch
from provenance.cli import build, ci, verify
from provenance.doors import proc

COMMANDS = {"build": build.build, "gate": ci.gate, "verify": verify.verify}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_option_tables_are_the_commands_own(name: str) -> None:
    one = typer.Typer(add_completion=False)
    one.command()(COMMANDS[name])
    command = typer.main.get_command(one)
    values, flags = set(), set()
    for p in command.params:
        if p.param_type_name != "option":
            continue
        names = set(p.opts) | set(p.secondary_opts)
        (flags if getattr(p, "is_flag", False) else values).update(names)
    assert launch.VALUE_OPTIONS[name] == values
    assert launch.FLAGS[name] == flags


def test_parse_reads_argv_as_click_does() -> None:
    got = launch.parse("gate", ["--trusted-key", "k.pub", "dir", "--require=unit", "-v"])
    assert got == (["dir"], {"--trusted-key": ["k.pub"], "--require": ["unit"], "-v": [""]})
    got = launch.parse("build", ["-q", "--check", "a", "--check", "b", "--force"])
    assert got == ([], {"-q": [""], "--check": ["a", "b"], "--force": [""]})


@pytest.mark.parametrize(
    "argv",
    [
        ["gate", "--help"],
        ["gate", "--", "dir"],
        ["gate", "--trusted-ky", "k"],  # misspelt: click will refuse it
        ["build", "-qv"],  # combined short flags
        ["build", "--key"],  # the value is missing
        ["gate", "--json=yes"],  # a flag given a value
    ],
)
def test_unsure_argv_is_not_parsed(argv: list[str]) -> None:
    assert launch.parse(argv[0], argv[1:]) is None


def test_nothing_is_started_for_what_evaluates_otherwise_or_not_at_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[list[str]] = []
    monkeypatch.setattr(proc, "start_ahead", lambda cmd, **kw: started.append(cmd) or True)
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "flake.nix").write_text("{ outputs = _: { }; }\n")
    for argv in (
        ["keygen"],
        ["gate", str(repo), "--rev", "HEAD~1", "--trusted-key", "k"],
        ["build", str(repo), "--service", "/run/s"],
        ["build", str(repo), str(repo)],
        ["gate", str(tmp_path / "nowhere")],  # no flake.nix
        ["gate", str(repo)],  # a flake, but no repository: the command says so itself
    ):
        assert launch.start(argv) is False, argv
    monkeypatch.setenv("PROVENANCE_SERVICE", "/run/s")
    assert launch.start(["build", str(repo)]) is False
    assert started == []


def _echo(tmp_path: Path) -> list[str]:
    # Each run appends a line to a file: adopted, the command ran once; not, twice.
    return ["sh", "-c", f'echo "$WHO" >> {tmp_path / "runs"}; echo "$WHO"']


def _runs(tmp_path: Path, want: int) -> list[str]:
    deadline = time.monotonic() + 10
    runs = tmp_path / "runs"
    while time.monotonic() < deadline:
        lines = runs.read_text().splitlines() if runs.exists() else []
        if len(lines) >= want:
            return lines
        time.sleep(0.01)
    return runs.read_text().splitlines() if runs.exists() else []


def _gone(pid: int) -> bool:
    """`pid` has exited within 10 s (a zombie counts: init reaps it once its parent is gone)."""
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    return not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()


def test_the_identical_run_adopts_the_process(tmp_path: Path) -> None:
    cmd = _echo(tmp_path)
    assert proc.start_ahead(cmd, env={"WHO": "ahead"})
    done = proc.run(cmd, env={"WHO": "ahead"})
    assert done.stdout == b"ahead\n"
    assert _runs(tmp_path, 1) == ["ahead"]
    assert proc._AHEAD == {}


@pytest.mark.parametrize("change", ["env", "environ", "cwd", "argv"])
def test_any_difference_runs_anew(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: str
) -> None:
    cmd = _echo(tmp_path)
    monkeypatch.setenv("WHO", "ahead")
    assert proc.start_ahead(cmd, env=None if change == "environ" else {"WHO": "ahead"})
    if change == "environ":  # os.environ changed between the start and the run
        monkeypatch.setenv("WHO", "later")
        done = proc.run(cmd)
    elif change == "env":
        done = proc.run(cmd, env={"WHO": "later"})
    elif change == "cwd":
        done = proc.run(cmd, env={"WHO": "ahead"}, cwd=str(tmp_path))
    else:
        done = proc.run([*cmd, "x"], env={"WHO": "ahead"})
    assert done.stdout == (b"later\n" if change in ("env", "environ") else b"ahead\n")
    assert sorted(_runs(tmp_path, 2)) == sorted(["ahead", done.stdout.decode().strip()])
    assert len(proc._AHEAD) == 1
    proc._kill_unadopted()


def test_a_process_not_adopted_is_killed_at_exit(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    code = (
        "import sys, time, pathlib\n"
        "from provenance.doors import proc\n"
        f"proc.start_ahead(['sh', '-c', 'echo $$ > {pidfile}.tmp; mv {pidfile}.tmp {pidfile};"
        " exec sleep 60'])\n"
        f"p = pathlib.Path('{pidfile}')\n"
        "while not p.exists(): time.sleep(0.01)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    pid = int(pidfile.read_text())
    assert _gone(pid)


def test_a_missing_binary_is_not_started(tmp_path: Path) -> None:
    assert proc.start_ahead([str(tmp_path / "no-such-nix"), "--version"]) is False
    assert proc._AHEAD == {}


def test_the_entry_point_is_launch() -> None:
    text = (Path(launch.__file__).parent.parent / "pyproject.toml").read_text()
    assert 'provenance = "provenance.launch:main"' in text
    assert "launch" in (Path(launch.__file__).parent / "__main__.py").read_text()


def test_no_ahead_turns_it_off(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[list[str]] = []
    monkeypatch.setattr(launch, "start", lambda argv: started.append(argv) or True)
    monkeypatch.setattr("provenance.cli.common.exit_on_sigterm", lambda: None)  # not pytest's
    monkeypatch.setattr("provenance.cli.main", lambda: None)
    monkeypatch.setattr(sys, "argv", ["provenance", "gate"])
    monkeypatch.setenv("PROVENANCE_NO_AHEAD", "1")
    launch.main()
    assert started == []
    monkeypatch.delenv("PROVENANCE_NO_AHEAD")
    launch.main()
    assert started == [["gate"]]


def test_exit_does_not_wait_for_what_a_killed_process_started(tmp_path: Path) -> None:
    # nix's fetcher runs git, git runs git-remote-http; killed with nix, they must not keep
    # its pipes open and our exit waiting (a remote that never answers: forever).
    pidfile = tmp_path / "child"
    code = (
        "import pathlib, time\n"
        "from provenance.doors import proc\n"
        f"proc.start_ahead(['sh', '-c', 'sleep 120 & echo $! > {pidfile}.tmp;"
        f" mv {pidfile}.tmp {pidfile}; exec sleep 120'])\n"
        f"p = pathlib.Path('{pidfile}')\n"
        "while not p.exists(): time.sleep(0.01)\n"
    )
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    assert time.monotonic() - started < 30
    child = int(pidfile.read_text())
    assert _gone(child)


def test_a_symlink_loop_starts_nothing_and_raises_nothing(tmp_path: Path) -> None:
    (tmp_path / "loop1").symlink_to(tmp_path / "loop2")
    (tmp_path / "loop2").symlink_to(tmp_path / "loop1")
    assert launch.start(["gate", str(tmp_path / "loop1" / "x"), "--trusted-key", "k"]) is False


def test_sigterm_kills_what_was_started_ahead(tmp_path: Path) -> None:
    # A timeout or a cancelled CI job signals our process group; the started process has
    # its own, so our exit must take it along (atexit), with the usual status 143.
    pidfile = tmp_path / "pid"
    code = (
        "import os, pathlib, signal, time\n"
        "from provenance.cli.common import exit_on_sigterm\n"
        "from provenance.doors import proc\n"
        f"proc.start_ahead(['sh', '-c', 'echo $$ > {pidfile}.tmp; mv {pidfile}.tmp {pidfile};"
        " exec sleep 120'])\n"
        "exit_on_sigterm()\n"
        f"p = pathlib.Path('{pidfile}')\n"
        "while not p.exists(): time.sleep(0.01)\n"
        "os.kill(os.getpid(), signal.SIGTERM)\n"
        "time.sleep(60)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], timeout=60, check=False)
    assert done.returncode == 143
    pid = int(pidfile.read_text())
    assert _gone(pid)
