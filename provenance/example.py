"""`provenance example`: the README's first command, end to end on a built-in flake.

Copies a small flake (a shell tool and its tests, no nixpkgs) to a work dir, brings in
the host's static busybox as its toolchain, commits it, creates a key, attests it, then
checks the bundle's signature and the output hashes again to show what was proven.
"""

from __future__ import annotations

import shutil
import struct
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

from provenance.attest import pipeline as attest
from provenance.doors.git import Git
from provenance.doors.nix import Nix, current_system, default_nix_bin
from provenance.errors import UsageError
from provenance.formats import bundle, dsse, keys
from provenance.formats.claims import load_statement, parse_provenance, test_result_outcome
from provenance.formats.hashing import nar_sha256
from provenance.progress import Reporter

_PT_INTERP = 3


def is_static_elf(path: Path) -> bool:
    """True when `path` is an ELF executable with no program interpreter (static)."""
    try:
        with path.open("rb") as f:
            head = f.read(64)
            if head[:4] != b"\x7fELF" or head[4] != 2:  # 64-bit only
                return False
            endian = "<" if head[5] == 1 else ">"
            phoff = struct.unpack_from(endian + "Q", head, 0x20)[0]
            phentsize, phnum = struct.unpack_from(endian + "HH", head, 0x36)
            f.seek(phoff)
            table = f.read(phentsize * phnum)
    except OSError:
        return False
    return all(
        struct.unpack_from(endian + "I", table, i * phentsize)[0] != _PT_INTERP
        for i in range(phnum)
    )


def find_static_busybox() -> Path:
    for candidate in ("/bin/busybox", "/usr/bin/busybox", shutil.which("busybox") or ""):
        p = Path(candidate)
        if candidate and p.is_file() and is_static_elf(p.resolve()):
            return p.resolve()
    msg = "no static busybox found (the example's toolchain)"
    raise UsageError(msg, "install it with `apt-get install busybox-static`")


def materialise(dest: Path, busybox: Path | None = None) -> Path:
    """Copy the example flake to `dest` with busybox as tools/bin/busybox; return `dest`."""
    src = resources.files("provenance") / "data" / "example"
    with resources.as_file(src) as src_dir:
        shutil.copytree(src_dir, dest, dirs_exist_ok=True)
    flake = dest / "flake.nix"
    flake.write_text(flake.read_text().replace('"x86_64-linux"', f'"{current_system()}"'))
    (dest / "tools" / "bin").mkdir(parents=True, exist_ok=True)
    shutil.copy2(busybox or find_static_busybox(), dest / "tools" / "bin" / "busybox")
    return dest


def run(workdir: Path | None, reporter: Reporter) -> dict[str, Any]:
    base = workdir or Path(tempfile.mkdtemp(prefix="provenance-example-"))
    project = base / "project"
    if project.exists() and any(project.iterdir()):
        msg = f"{project} already exists and is not empty"
        raise UsageError(msg, "pass an empty --workdir")
    materialise(project)
    commit = Git(project).init_commit_all("example: wordcount and its tests")
    reporter.info(f"example project at {project}, commit {commit[:12]}")
    key_path, pub_path, keyid = keys.generate(base / "keys")
    reporter.info(f"signing key {key_path} (keyid {keyid[:16]}...)")
    signer = keys.load_signer(key_path)
    report = attest.build(
        attest.BuildRequest(flake_dir=project, signer=signer), Nix(default_nix_bin()), reporter
    )

    # Show what was proven, re-checking it independently of the build step.
    assert report.bundle_path is not None
    public = keys.load_public_key(pub_path)
    reporter.info("")
    reporter.info("What this proves:")
    for env in bundle.read(report.bundle_path):
        stmt = load_statement(dsse.verify(env, [public]).payload)
        if (outcome := test_result_outcome(stmt)) is not None:
            named = len(stmt["predicate"].get("passedTests") or [])
            names = f", {named} test(s) by name" if named else ""
            reporter.info(
                f"  test results: {outcome}{names} (signed, pinned to the same derivation)"
            )
            continue
        claim = parse_provenance(stmt)
        reporter.info(f"  signature by {keyid[:16]}... verifies over the exact statement bytes")
        reporter.info(f"  check {claim.check} = derivation {claim.drv_path}")
        reporter.info(f"  evaluated from commit {claim.commit} (clean tree)")
        how = {
            "built": "built in this run, in the Nix sandbox",
            "rebuilt-and-compared": "already in the store, so rebuilt in the sandbox and "
            "compared bit for bit before attesting",
        }
        reporter.info(f"  output check: {how.get(claim.output_check, claim.output_check)}")
        for path, digest in claim.subjects.items():
            ok = nar_sha256(path) == digest
            reporter.info(f"  output {path}")
            reporter.info(f"    NAR sha256 {digest} {'(re-hashed: match)' if ok else '(MISMATCH)'}")
    reporter.info(f"  bundle: {report.bundle_path}")
    reporter.info(f"  git note: git -C {project} notes --ref refs/notes/provenance show HEAD")
    reporter.info("  this is SLSA Build L1 with a signature: a local build, not a hosted one.")
    return {"project": str(project), "publicKey": str(pub_path), **report.as_json()}
