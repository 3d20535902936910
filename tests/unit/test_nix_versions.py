"""How `Nix` copes with the spellings of other Nix versions and forks (fake nix binaries)."""

from __future__ import annotations

from pathlib import Path

import pytest

from provenance.doors.nix import Nix
from provenance.errors import NixError

CONFIG = '{"sandbox":{"value":true},"sandbox-fallback":{"value":false}}'


def fake(tmp_path: Path, version: str, known: str) -> Nix:
    """A nix that prints `version` and knows only the config command spelled `known`."""
    script = tmp_path / "nix"
    script.write_text(
        "#!/bin/sh\n"
        f'case "$*" in *--version*) echo "{version}"; exit 0;; esac\n'
        f'case "$*" in *"{known} --json"*) echo \'{CONFIG}\'; exit 0;; esac\n'
        "echo \"error: '$3' is not a recognised command\" >&2; exit 1\n"
    )
    script.chmod(0o755)
    return Nix(str(script))


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("nix (Nix) 2.8.0", (2, 8)),
        ("nix (Lix, like Nix) 2.91.1", (2, 91)),
        ("nix (Determinate Nix 3.6.0) 2.29.0", (2, 29)),
        ("nix (Nix) 2.24.0pre20240101_abcdef", (2, 24)),
        ("something else", (99, 0)),
    ],
)
def test_version_spellings(tmp_path: Path, version: str, expected: tuple[int, int]) -> None:
    assert fake(tmp_path, version, "show-config").version_tuple() == expected


@pytest.mark.parametrize(
    ("version", "known"),
    [
        ("nix (Nix) 2.8.0", "show-config"),  # old name, old version
        ("nix (Nix) 2.24.0", "config show"),  # new name, new version
        ("nix (Lix, like Nix) 2.91.1", "show-config"),  # a fork that kept the old name
        ("nix (Nix) 2.18.0", "config show"),  # new name on a version we thought older
    ],
)
def test_config_command_falls_through_to_the_known_spelling(
    tmp_path: Path, version: str, known: str
) -> None:
    cfg = fake(tmp_path, version, known).config()
    assert cfg.hermetic


def test_other_errors_are_not_retried(tmp_path: Path) -> None:
    script = tmp_path / "nix"
    script.write_text(
        "#!/bin/sh\n"
        'case "$*" in *--version*) echo "nix (Nix) 2.24.0"; exit 0;; esac\n'
        'echo "error: cannot connect to socket" >&2; echo called >> "$0.calls"; exit 1\n'
    )
    script.chmod(0o755)
    with pytest.raises(NixError, match="cannot connect to socket"):
        Nix(str(script)).config()
    assert Path(f"{script}.calls").read_text().count("called") == 1


def logging_nix(tmp_path: Path, version: str, body: str) -> Nix:
    """A nix that prints `version`, logs every other call's arguments, then runs `body`."""
    script = tmp_path / "nix"
    script.write_text(
        "#!/bin/sh\n"
        f'case "$*" in *--version*) echo "{version}"; exit 0;; esac\n'
        f'echo "$*" >> "{tmp_path}/calls"\n' + body
    )
    script.chmod(0o755)
    return Nix(str(script))


def calls(tmp_path: Path) -> list[str]:
    return (tmp_path / "calls").read_text().splitlines()


@pytest.mark.parametrize(
    ("version", "command", "answer", "trusted"),
    [
        ("nix (Nix) 2.26.3", "store info", '{"trusted":1,"url":"daemon","version":"2.26.3"}', True),
        ("nix (Nix) 2.34.8", "store info", '{"trusted":false,"url":"daemon"}', False),
        ("nix (Nix) 2.18.1", "store ping", '{"url":"daemon"}', None),
    ],
)
def test_store_info_on_2_20_and_later_store_ping_before(
    tmp_path: Path, version: str, command: str, answer: str, trusted: bool | None
) -> None:
    nix = logging_nix(tmp_path, version, f"echo '{answer}'\n")
    info = nix.store_info()
    assert info.url == "daemon" and info.trusted is trusted
    (call,) = calls(tmp_path)
    assert f"{command} --json" in call


def test_store_info_falls_back_to_store_ping_on_a_fork_without_it(tmp_path: Path) -> None:
    nix = logging_nix(
        tmp_path,
        "nix (Lix, like Nix) 2.91.1",
        'case "$*" in *"store info"*) echo "error: \'info\' is not a recognised command" >&2;'
        ' exit 1;; esac\necho \'{"trusted":true,"url":"local"}\'\n',
    )
    assert nix.store_info().trusted is True
    assert ["store info" in c for c in calls(tmp_path)] == [True, False]


PATH_INFO_OUT = (
    '{"/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-x":{"narHash":'
    '"sha256-rcU0Sek2slflcmv68/fyNuOQkC+bd7OGN3LsBFgjyHQ=","narSize":1,"references":[]}}'
)


@pytest.mark.parametrize(
    ("version", "with_format"),
    [("nix (Nix) 2.8.0", False), ("nix (Nix) 2.26.3", False), ("nix (Nix) 2.34.8", True)],
)
def test_path_info_asks_for_a_json_format_only_where_nix_has_it(
    tmp_path: Path, version: str, with_format: bool
) -> None:
    # 2.26 and 2.8 reject --json-format; 2.34 warns that --json without it will be an error.
    nix = logging_nix(
        tmp_path,
        version,
        'case "$*" in *--json-format*) [ "$WANT" = 1 ] || { echo "error: unrecognised flag'
        " '--json-format'\" >&2; exit 1; };; esac\n"
        f"echo '{PATH_INFO_OUT}'\n",
    )
    nix = Nix(nix.nix_bin, env={"PATH": "/usr/bin:/bin", "WANT": "1" if with_format else ""})
    assert list(nix.path_info(["/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-x"]))
    (call,) = calls(tmp_path)
    assert ("--json-format 2" in call) is with_format


def test_path_info_drops_json_format_when_a_fork_rejects_it(tmp_path: Path) -> None:
    nix = logging_nix(
        tmp_path,
        "nix (Lix, like Nix) 2.91.1",
        'case "$*" in *--json-format*) echo "error: unrecognised flag \'--json-format\'" >&2;'
        f" exit 1;; esac\necho '{PATH_INFO_OUT}'\n",
    )
    assert list(nix.path_info(["/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-x"]))
    assert ["--json-format" in c for c in calls(tmp_path)] == [True, False]
    assert len(nix.closure_info(["/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-x.drv"])) == 1
