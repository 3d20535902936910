"""nix/lib.nix against real nix: hermetic checks, failing suites, flaky clocks, fresh stores.

Also the structure of the project's own flake.nix (lib must not force nixpkgs, which
cannot be fetched here) and the syntax of the nixpkgs-flavoured parts.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import pytest

from provenance.attest import lognorm, testresults
from provenance.doors.nix import current_system
from provenance.example import find_static_busybox
from provenance.formats.hashing import sha256_hex
from tests.conftest import chroot_store, nix, path_info_nar_hash, run

ROOT = Path(__file__).parent.parent.parent
LIB_FILES = ("lib.nix", "check-builder.sh", "normalise-results.awk")

FLAKE = """{
  outputs = { self }:
    let
      system = "@SYSTEM@";
      lib = import ./nix/lib.nix;
      tools = builtins.path { path = ./tools; name = "bootstrap-tools"; };
      src = builtins.path { path = ./src; name = "suite"; };
      mk = name: extra: lib.mkTestCheck ({
        inherit name system src;
        toolchain = tools;
        command = "sh run.sh";
        format = "tap";
        report = "report.tap";
        env = { salt = "@SALT@"; };
      } // extra);
    in {
      checks.${system} = {
        ok = mk "suite-ok" { };
        fail = mk "suite-fail" { env = { salt = "@SALT@"; FAILME = "1"; }; };
        quoted = mk "suite-quoted" { command = "sh quoted.sh"; };
      };
    };
}
"""

# A suite with a flaky clock: dates and durations (random, so two runs always differ) go
# into the report and the log, never into $out.
RUN_SH = """t=0.$(busybox od -An -N2 -tu2 /dev/urandom | busybox tr -d ' ')
echo "TAP version 13" > report.tap
echo "1..3" >> report.tap
echo "# started $(busybox date) time=$t" >> report.tap
echo "ok 1 - parses input" >> report.tap
echo "ok 2 - counts words # SKIP slow" >> report.tap
if [ -n "$FAILME" ]; then echo "not ok 3 - broken on purpose" >> report.tap; exit 1; fi
echo "ok 3 - handles empty input" >> report.tap
echo "$(busybox date -u +%Y-%m-%dT%H:%M:%S) 2 passed in ${t}s"
"""

# Test ids with the two characters JSON escapes (pytest writes `test_x[a"b]`, Windows paths
# and regexes bring backslashes): a quote, backslashes, one at an id's end, one before a quote.
QUOTED_TAP = r"""TAP version 13
1..4
ok 1 - test_param[<x>-"q" & y]
ok 2 - C:\temp\dir
ok 3 - ends in a backslash \
ok 4 - a \" and a \\"
"""
QUOTED_SH = f"busybox cat > report.tap <<'EOF'\n{QUOTED_TAP}EOF\n"


def make_suite(dest: Path) -> Path:
    (dest / "tools" / "bin").mkdir(parents=True)
    shutil.copy2(find_static_busybox(), dest / "tools" / "bin" / "busybox")
    (dest / "nix").mkdir()
    for f in LIB_FILES:
        shutil.copy2(ROOT / "nix" / f, dest / "nix" / f)
    (dest / "src").mkdir()
    (dest / "src" / "run.sh").write_text(RUN_SH)
    (dest / "src" / "quoted.sh").write_text(QUOTED_SH)
    flake = FLAKE.replace("@SYSTEM@", current_system()).replace("@SALT@", uuid.uuid4().hex)
    (dest / "flake.nix").write_text(flake)
    run(["git", "init", "-q"], cwd=dest)
    run(["git", "add", "-A"], cwd=dest)
    run(["git", "commit", "-q", "-m", "suite"], cwd=dest)
    return dest


def build(ref: str, store: str | None = None) -> str:
    args = ["build", "--no-link", "--json", *(chroot_store(store) if store else []), ref]
    return str(json.loads(nix(*args))[0]["outputs"]["out"])


def nar_hash(out: str, store: str | None = None) -> str:
    args = ["path-info", "--json", *(["--store", store] if store else []), out]
    return path_info_nar_hash(json.loads(nix(*args)), out)


def build_log(out: str, store: str | None = None) -> bytes:
    args = ["log", *(["--store", store] if store else []), out]
    return nix(*args).encode() + b"\n"


@pytest.mark.nix
def test_passing_suite_writes_only_normalised_results(tmp_path: Path) -> None:
    repo = make_suite(tmp_path / "suite")
    out = Path(build(f"git+file://{repo}#checks.{current_system()}.ok"))
    assert sorted(p.name for p in out.iterdir()) == ["results.json"]
    results = json.loads((out / "results.json").read_text())
    assert results["counts"] == {"passed": 2, "failed": 0, "skipped": 1}
    assert [t["id"] for t in results["tests"]] == [
        "counts words",
        "handles empty input",
        "parses input",
    ]
    log = build_log(str(out))
    assert b"# started " in log  # the raw report, clock included, is in the log


@pytest.mark.nix
def test_ids_with_quotes_and_backslashes_are_valid_json(tmp_path: Path) -> None:
    # Busybox 1.37's awk (trixie, sid) reads gsub replacements the POSIX way: the escaper
    # built on gsub wrote `"q"` unescaped there, and results.json was not JSON at all.
    repo = make_suite(tmp_path / "suite")
    out = Path(build(f"git+file://{repo}#checks.{current_system()}.quoted"))
    written = (out / "results.json").read_bytes()
    busybox = run([str(find_static_busybox())]).stdout.splitlines()[0]
    ids = [t["id"] for t in json.loads(written)["tests"]]  # raises on invalid JSON
    assert ids == [
        "C:\\temp\\dir",
        'a \\" and a \\\\"',
        "ends in a backslash \\",
        'test_param[<x>-"q" & y]',
    ], busybox
    twin = testresults.parse_report(QUOTED_TAP.encode(), "tap", "report.tap")
    assert written == twin.render(), busybox


@pytest.mark.nix
def test_failing_suite_fails_the_build(tmp_path: Path) -> None:
    repo = make_suite(tmp_path / "suite")
    with pytest.raises(AssertionError, match="failed with exit code 1"):
        build(f"git+file://{repo}#checks.{current_system()}.fail")


@pytest.mark.nix
def test_two_fresh_stores_give_the_same_output_and_normalised_log(tmp_path: Path) -> None:
    repo = make_suite(tmp_path / "suite")
    ref = f"git+file://{repo}#checks.{current_system()}.ok"
    stores = [str(tmp_path / "store-a"), str(tmp_path / "store-b")]
    outs = [build(ref, s) for s in stores]
    assert outs[0] == outs[1]
    assert nar_hash(outs[0], stores[0]) == nar_hash(outs[1], stores[1])
    logs = [build_log(o, s) for o, s in zip(outs, stores, strict=True)]
    assert sha256_hex(logs[0]) != sha256_hex(logs[1])  # the clocks differ...
    norm = [lognorm.normalised_sha256(log) for log in logs]
    assert norm[0] == norm[1]  # ...and normalise away
    results = [
        (Path(s) / o.lstrip("/") / "results.json").read_bytes()
        for o, s in zip(outs, stores, strict=True)
    ]
    assert results[0] == results[1]


@pytest.mark.nix
def test_project_flake_lib_needs_no_nixpkgs() -> None:
    # nixpkgs is unreachable here: any evaluation that forced it would fail.
    names = json.loads(
        nix(
            "eval",
            "--json",
            "--no-update-lock-file",
            f"{ROOT}#lib",
            "--apply",
            "builtins.attrNames",
        )
    )
    assert names == ["formats", "mkTestCheck", "normaliser"]
    structure = {
        out: json.loads(
            nix(
                "eval",
                "--json",
                "--no-update-lock-file",
                f"{ROOT}#{out}.x86_64-linux",
                "--apply",
                "builtins.attrNames",
            )
        )
        for out in ("apps", "checks", "devShells", "packages")
    }
    assert structure == {
        "apps": ["default"],
        "checks": ["tests"],
        "devShells": ["default"],
        "packages": ["default", "provenance"],
    }


def test_project_flake_lock_pins_a_nixpkgs_release() -> None:
    lock = json.loads((ROOT / "flake.lock").read_text())
    assert lock["version"] == 7
    node = lock["nodes"][lock["nodes"]["root"]["inputs"]["nixpkgs"]]
    assert node["original"]["ref"].startswith("nixos-")
    assert len(node["locked"]["rev"]) == 40
    assert node["locked"]["narHash"].startswith("sha256-")


@pytest.mark.nix
@pytest.mark.parametrize("path", ["flake.nix", "nix/lib.nix", "nix/pytest.nix"])
def test_nix_files_parse(path: str) -> None:
    run(["nix-instantiate", "--parse", str(ROOT / path)])


def _tracked(path: str) -> list[tuple[str, str]]:
    """(mode, path) of every file git tracks under `path`."""
    out = run(["git", "-C", str(ROOT), "ls-files", "-s", "--", path]).stdout
    return [(line.split()[0], line.split("\t", 1)[1]) for line in out.splitlines()]


def test_the_nix_library_exists_once() -> None:
    # The example reaches the library through a symlink into the repo's own nix/, so a fix
    # to nix/ is a fix to the example: no second copy can drift (issue 19).
    example_nix = "examples/python-pytest/nix"
    assert _tracked(example_nix) == [("120000", example_nix)], "must be a symlink, not a copy"
    assert os.readlink(ROOT / example_nix) == "../../nix"
    names = {"lib.nix", "check-builder.sh", "normalise-results.awk", "pytest.nix"}
    copies = [p for _, p in _tracked(".") if Path(p).name in names and not p.startswith("nix/")]
    assert copies == []


def test_the_example_copied_as_a_user_copies_it_has_the_library() -> None:
    # What the tests (tests/integration/conftest.py) and bench/pytest-example.sh build is a
    # copy that follows the symlink: it must carry the library itself, byte for byte.
    from tests.integration.conftest import EXAMPLE, IGNORED  # noqa: PLC0415

    with tempfile.TemporaryDirectory() as tmp:
        dest = Path(tmp) / "calc"
        shutil.copytree(EXAMPLE, dest, ignore=IGNORED)
        assert not (dest / "nix").is_symlink()
        for f in LIB_FILES:
            assert (dest / "nix" / f).read_bytes() == (ROOT / "nix" / f).read_bytes()
