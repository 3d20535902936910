"""`store = /some/dir` (a chroot store): outputs are hashed, and test reports read, where
nix built them, `/some/dir/nix/store/...`, never at the logical `/nix/store/...` (which
is absent, or the host store's own copy). Real nix, real git, the CLI.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from provenance.cli import app
from provenance.formats import bundle
from provenance.formats.hashing import nar_sha256
from tests.conftest import NIX_CONFIG, chroot_build_dir, make_flake, run

pytestmark = pytest.mark.nix
runner = CliRunner()
TAPPED = """{ mk, tests }: {
  tapped = mk "tapped-check" ''
    busybox mkdir -p $out/reports
    printf '1..2\\nok 1 - parses\\nok 2 - prints\\n' > $out/reports/r.tap
  '' { testReport = "reports/r.tap"; };
}
"""


def test_build_in_a_chroot_store_hashes_the_physical_outputs(
    tmp_path: Path, keypair: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_flake(tmp_path / "repo", extra_checks=TAPPED)
    chroot = tmp_path / "chroot"
    builds = chroot_build_dir(chroot)  # Nix >= 2.30 builds nothing in a store's own dir under /tmp
    extra = f"\nbuild-dir = {builds}" if builds else ""
    monkeypatch.setenv("NIX_CONFIG", f"{NIX_CONFIG}\nstore = {chroot}{extra}")
    key, pub = keypair
    r = runner.invoke(app, ["build", "--key", str(key), str(repo), "--json", "-q"])
    assert r.exit_code == 0, r.stderr
    assert "Traceback" not in r.stderr and "cannot read" not in r.stderr
    built = json.loads(r.stdout)
    checks = {c["name"]: c for c in built["checks"]}
    assert {c["status"] for c in checks.values()} == {"attested"}
    for c in checks.values():
        for out in c["outputs"].values():
            logical = out["path"]
            assert logical.startswith("/nix/store/")
            assert not os.path.lexists(logical)  # only the chroot has it: the old code failed
            physical = chroot / logical.lstrip("/")
            assert out["sha256"] == nar_sha256(physical)
            theirs = run(["nix", "path-info", "--json", "--store", str(chroot), logical]).stdout
            assert logical in theirs
    # The declared report was read in the chroot; the statement names its store path.
    assert checks["tapped"]["tests"]["passed"] == 2
    tapped_out = checks["tapped"]["outputs"]["out"]["path"]
    assert checks["tapped"]["tests"]["source"] == f"{tapped_out}/reports/r.tap"
    for env in bundle.read(Path(built["bundle"])):
        text = env.payload.decode()
        assert str(chroot) not in text  # no physical path leaks into what is signed

    verify = ["verify", "--trusted-key", str(pub), "--flake", str(repo)]
    r = runner.invoke(app, verify)
    assert r.exit_code == 0, r.stderr
    # Rebuilt in that same store, outputs are compared where they are, too.
    r = runner.invoke(app, [*verify, "--rebuild", "--in-place", "--check", "det"])
    assert r.exit_code == 0, r.stderr
    assert "NAR SHA-256" in r.stderr and "matches" in r.stderr


def test_store_settings_map_to_where_the_files_are() -> None:
    from provenance.doors.storeroot import locate  # noqa: PLC0415
    from provenance.errors import RefusedError  # noqa: PLC0415

    p = "/nix/store/abc-x"
    assert locate("auto").physical(p) == p and locate("daemon").physical(p) == p
    assert locate("unix:///nix/var/nix/daemon-socket/socket").physical(p) == p
    assert locate(None).physical(p) == p
    assert locate("/srv/c").physical(p) == "/srv/c/nix/store/abc-x"
    assert locate("local?root=/srv/c").physical(p + "/bin") == "/srv/c/nix/store/abc-x/bin"
    assert locate("local?real=/srv/real").physical(p) == "/srv/real/abc-x"
    alt = locate("local?store=/gnu/store&root=/srv/c")
    assert alt.physical("/gnu/store/abc-x") == "/srv/c/gnu/store/abc-x"
    for remote in ("ssh://builder", "s3://bucket", "https://cache.example.invalid"):
        with pytest.raises(RefusedError, match="not on this machine"):
            locate(remote)
