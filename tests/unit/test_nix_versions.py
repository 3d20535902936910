"""How `Nix` copes with the spellings of other Nix versions and forks (fake nix binaries)."""

from __future__ import annotations

from pathlib import Path

import pytest

from provenance.errors import NixError
from provenance.nix import Nix

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
