"""`provenance build` emits a signed test-result statement beside the provenance one.

The pytest example (examples/python-pytest) is attested end to end with its Debian-built
toolchain, and rebuilt in two fresh stores to the same bytes.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from provenance.attest import lognorm
from provenance.doors.nix import current_system
from provenance.formats.intoto import SLSA_PROVENANCE_V1, TEST_RESULT_V01
from tests.conftest import chroot_store, git, nix, path_info_nar_hash, run
from tests.integration.conftest import IGNORED

TOOLCHAIN_NAME = "python-pytest-toolchain"


def provenance(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "provenance", *args], capture_output=True, text=True, check=False
    )


def statements(bundle: Path) -> list[dict[str, object]]:
    lines = bundle.read_text().splitlines()
    return [json.loads(base64.b64decode(json.loads(ln)["payload"])) for ln in lines]


@pytest.mark.nix
def test_build_attests_the_fixture_tests(flake: Path, keypair: tuple[Path, Path]) -> None:
    done = provenance("build", "--key", str(keypair[0]), str(flake), "--json", "--no-note")
    assert done.returncode == 0, done.stderr
    assert "det: 2 passed, 0 failed [PASSED" in done.stderr
    report = json.loads(done.stdout)
    by_name = {c["name"]: c for c in report["checks"]}
    assert by_name["det"]["tests"]["result"] == "PASSED"
    assert "tests" not in by_name["chain"]  # no results: no test-result statement
    stmts = statements(Path(report["bundle"]))
    kinds = sorted(str(s["predicateType"]) for s in stmts)
    assert kinds == sorted([SLSA_PROVENANCE_V1, SLSA_PROVENANCE_V1, TEST_RESULT_V01])
    test_stmt = next(s for s in stmts if s["predicateType"] == TEST_RESULT_V01)
    prov = next(
        s
        for s in stmts
        if s["predicateType"] == SLSA_PROVENANCE_V1 and s["subject"] == test_stmt["subject"]
    )
    drv = prov["predicate"]["buildDefinition"]["externalParameters"]["drvPath"]  # type: ignore[index]
    config = test_stmt["predicate"]["configuration"]  # type: ignore[index]
    assert config[0]["name"] == drv
    assert len(config[0]["digest"]["sha256"]) == 64
    assert config[1]["digest"]["gitCommit"] == git(flake, "rev-parse", "HEAD")
    byproducts = {b["name"]: b for b in prov["predicate"]["runDetails"]["byproducts"]}  # type: ignore[index]
    assert set(byproducts) == {"build.log", "build.log.normalised"}
    log = nix("log", drv).encode() + b"\n"
    assert byproducts["build.log.normalised"]["digest"]["sha256"] == lognorm.normalised_sha256(log)


# -- the pytest example ------------------------------------------------------------------


def copy_example(dest: Path, source: Path) -> Path:
    """A committed copy of `source` without ./toolchain: evaluation never reads it."""
    shutil.copytree(source, dest, ignore=IGNORED)
    run(["git", "init", "-q"], cwd=dest)
    run(["git", "add", "-A"], cwd=dest)
    run(["git", "commit", "-q", "-m", "calc"], cwd=dest)
    return dest


def add_toolchain(tree: Path, store: str | None = None) -> str:
    where = ["--store", store] if store else []
    return nix(*where, "store", "add-path", "--name", TOOLCHAIN_NAME, str(tree))


@pytest.mark.nix
def test_pytest_example_is_attested_and_reproduces(
    tmp_path: Path, keypair: tuple[Path, Path], toolchain: Path
) -> None:
    add_toolchain(toolchain)  # the flake only names it by hash; it must be in the store
    repo = copy_example(tmp_path / "calc", toolchain.parent)
    done = provenance("build", "--key", str(keypair[0]), str(repo), "--json", "--force")
    assert done.returncode == 0, done.stderr
    assert "unit: 20 passed, 0 failed [PASSED, from junit]" in done.stderr
    report = json.loads(done.stdout)
    (check,) = report["checks"]
    assert check["tests"] == {
        "result": "PASSED",
        "format": "junit",
        "passed": 20,
        "failed": 0,
        "skipped": 0,
        "source": check["outputs"]["out"]["path"] + "/results.json",
    }
    stmts = statements(Path(report["bundle"]))
    test_stmt = next(s for s in stmts if s["predicateType"] == TEST_RESULT_V01)
    predicate = test_stmt["predicate"]
    assert predicate["result"] == "PASSED"  # type: ignore[index]
    passed = predicate["passedTests"]  # type: ignore[index]
    assert "tests.test_calc::test_evaluate[1/3 + 1/6-value1]" in passed
    assert predicate["failedTests"] == []  # type: ignore[index]
    assert test_stmt["subject"][0]["digest"]["sha256"] == check["outputs"]["out"]["sha256"]  # type: ignore[index]

    # Two honest rebuilds in two fresh stores: same NAR hash, same normalised log.
    ref = f"git+file://{repo}#checks.{current_system()}.unit"
    nar, norm = set(), set()
    for name in ("a", "b"):
        store = str(tmp_path / f"store-{name}")
        add_toolchain(toolchain, store)
        built = json.loads(nix("build", *chroot_store(store), "--no-link", "--json", ref))
        out = built[0]["outputs"]["out"]
        assert out == check["outputs"]["out"]["path"]
        nar.add(
            path_info_nar_hash(json.loads(nix("path-info", "--store", store, "--json", out)), out)
        )
        norm.add(lognorm.normalised_sha256(nix("log", "--store", store, out).encode() + b"\n"))
    assert len(nar) == 1
    assert len(norm) == 1
    prov = next(s for s in stmts if s["predicateType"] == SLSA_PROVENANCE_V1)
    by = prov["predicate"]["runDetails"]["byproducts"]  # type: ignore[index]
    byproducts = {b["name"]: b["digest"]["sha256"] for b in by}
    assert norm == {byproducts["build.log.normalised"]}


@pytest.mark.nix
def test_a_failing_test_means_no_statement_at_all(
    tmp_path: Path, keypair: tuple[Path, Path], toolchain: Path
) -> None:
    add_toolchain(toolchain)
    repo = copy_example(tmp_path / "calc", toolchain.parent)
    (repo / "tests" / "test_regression.py").write_text(
        "from calc import evaluate\n\n\n"
        "def test_precedence():\n    assert evaluate('1 + 2 * 3') == 9\n"
    )
    run(["git", "add", "-A"], cwd=repo)
    run(["git", "commit", "-q", "-m", "a wrong test"], cwd=repo)
    done = provenance("build", "--key", str(keypair[0]), str(repo), "--json")
    assert done.returncode == 1
    assert "check(s) failed: unit" in done.stderr
    assert "1 failed, 20 passed" in done.stderr  # pytest's own summary, from the build log
    # Nothing signed, PASSED or otherwise (the audit ledger records the failed run).
    assert not list((repo / ".provenance").glob("*.intoto.jsonl"))
    assert git(repo, "notes", "--ref", "refs/notes/provenance", "list") == ""


@pytest.mark.nix
def test_several_hundred_real_pytest_tests_are_signed_exactly(
    tmp_path: Path, keypair: tuple[Path, Path], toolchain: Path
) -> None:
    """Real pytest, in the sandbox, on a suite of several hundred tests: the statement
    carries the exact count and every name, as pytest's own JUnit report gives them."""
    add_toolchain(toolchain)
    repo = copy_example(tmp_path / "calc", toolchain.parent)
    cases = "\n".join(
        f"def test_case_{i}():\n    assert evaluate('{i} + 1') == {i + 1}\n" for i in range(400)
    )
    (repo / "tests" / "test_many.py").write_text("from calc import evaluate\n\n\n" + cases)
    run(["git", "add", "-A"], cwd=repo)
    run(["git", "commit", "-q", "-m", "400 more tests"], cwd=repo)
    done = provenance("build", "--key", str(keypair[0]), str(repo), "--json")
    assert done.returncode == 0, done.stderr
    assert "unit: 420 passed, 0 failed [PASSED, from junit]" in done.stderr
    (check,) = json.loads(done.stdout)["checks"]
    assert check["tests"]["passed"] == 420 and check["tests"]["failed"] == 0
    stmts = statements(Path(json.loads(done.stdout)["bundle"]))
    predicate = next(s for s in stmts if s["predicateType"] == TEST_RESULT_V01)["predicate"]
    passed = set(predicate["passedTests"])  # type: ignore[index]
    assert len(passed) == 420
    assert {f"tests.test_many::test_case_{i}" for i in range(400)} <= passed
