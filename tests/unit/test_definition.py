"""definition.py against real git repositories (no nix): which changes define the checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from provenance.doors.git import Git
from provenance.policy.definition import Definitions, describe
from tests.conftest import git


def _repo(tmp_path: Path, files: dict[str, str]) -> tuple[Path, str]:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    return repo, git(repo, "rev-parse", "HEAD")


def _commit(repo: Path, files: dict[str, str | None]) -> str:
    for name, text in files.items():
        path = repo / name
        if text is None:
            git(repo, "rm", "-q", name)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        git(repo, "add", name)
    git(repo, "commit", "-qm", "change")
    return git(repo, "rev-parse", "HEAD")


BASE = {
    "flake.nix": "{ }\n",
    "README.md": "hi\n",
    "src/app.py": "x = 1\n",
    "sub/flake.nix": "{ }\n",
    "sub/data/a.json": "{}\n",
}


@pytest.mark.parametrize(
    ("change", "subdir", "expected"),
    [
        ({"README.md": "docs\n"}, "", ()),
        ({"src/app.py": "x = 2\n"}, "", ()),  # code: the drvPath decides, not the definition
        ({"flake.nix": "{ x = 1; }\n"}, "", ("flake.nix",)),
        ({"lib/new.nix": "{ }\n"}, "", ("lib/new.nix",)),  # an added .nix file
        ({"sub/flake.nix": None}, "", ("sub/flake.nix",)),  # a removed one
        ({"flake.lock": "{}\n"}, "", ("flake.lock",)),
        ({"provenance.toml": "[trust]\n"}, "", ("provenance.toml",)),
        ({"flake.lock": "{}\n"}, "sub", ()),  # another directory's lock file
        ({"sub/flake.lock": "{}\n"}, "sub", ("sub/flake.lock",)),
        ({"flake.nix": "{ y = 1; }\n"}, "sub", ("flake.nix",)),  # importable from sub
    ],
)
def test_what_defines_the_checks(
    tmp_path: Path, change: dict[str, str | None], subdir: str, expected: tuple[str, ...]
) -> None:
    repo, base = _repo(tmp_path, BASE)
    head = _commit(repo, change)
    assert Definitions(Git(repo), head, subdir).changes_since(base) == expected


def test_provenance_toml_adds_files_directories_and_globs(tmp_path: Path) -> None:
    policy = '[definition]\npaths = ["data", "../top.json", "cfg/*.toml"]\n'
    repo, base = _repo(tmp_path, {**BASE, "sub/provenance.toml": policy})
    defs = lambda head: Definitions(Git(repo), head, "sub").changes_since(base)  # noqa: E731
    assert defs(_commit(repo, {"sub/data/a.json": '{"a": 1}\n'})) == ("sub/data/a.json",)
    assert defs(_commit(repo, {"top.json": "{}\n"})) == ("sub/data/a.json", "top.json")
    assert "sub/cfg/x/y.toml" in defs(_commit(repo, {"sub/cfg/x/y.toml": "a = 1\n"}))
    assert defs(_commit(repo, {"sub/datafile": "x\n", "sub/cfg.toml": "x\n"})) == (
        "sub/cfg/x/y.toml",
        "sub/data/a.json",
        "top.json",
    )


@pytest.mark.parametrize(
    ("policy", "said"),
    [
        ("[definition\n", "is not valid TOML"),
        ('[definition]\npaths = "data"\n', "must be a list of paths"),
        ('[definition]\npaths = [""]\n', "must be a list of paths"),
        ('[definition]\npaths = ["../../out"]\n', "is outside the repository"),
        ('[definition]\npaths = ["/etc"]\n', "is outside the repository"),
    ],
)
def test_an_unreadable_definition_means_changed(tmp_path: Path, policy: str, said: str) -> None:
    """In doubt the definitions differ: nothing is reused, and the reason says why."""
    repo, base = _repo(tmp_path, {**BASE, "sub/provenance.toml": policy})
    head = _commit(repo, {"README.md": "docs\n"})
    (reason,) = Definitions(Git(repo), head, "sub").changes_since(base)
    assert said in reason
    assert reason.startswith("sub/provenance.toml")


def test_same_commit_and_bad_ids(tmp_path: Path) -> None:
    repo, base = _repo(tmp_path, BASE)
    defs = Definitions(Git(repo), base)
    assert defs.same_as(base)
    assert "is not a commit id" in defs.changes_since("HEAD~1")[0]
    (reason,) = defs.changes_since("0" * 40)  # well-formed, but not in this repository
    assert reason.startswith("cannot compare with 000000000000")


def test_one_git_call_per_compared_commit(tmp_path: Path) -> None:
    repo, base = _repo(tmp_path, BASE)
    head = _commit(repo, {"README.md": "docs\n"})
    calls: list[tuple[str, ...]] = []

    class Counting(Git):
        def _run(self, *args: str, **kw: object) -> object:  # type: ignore[override]
            calls.append(args)
            return super()._run(*args, **kw)  # type: ignore[arg-type]

    defs = Definitions(Counting(repo), head)
    assert defs.same_as(base) and defs.same_as(base)
    # diff-tree, then provenance.toml (absent here) for the paths it might add.
    assert [c[0] for c in calls] == ["diff-tree", "show"]


def test_describe_names_the_first_few() -> None:
    assert describe(("a.nix",)) == "a.nix"
    assert describe(("a", "b", "c", "d", "e")) == "a, b, c (+2 more)"
