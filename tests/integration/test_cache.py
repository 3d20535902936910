"""Binary caches against real Nix, a real nginx and file:// caches (issue 14).

`provenance publish` copies a commit's attested outputs to a cache, signed with the
cache's key (from `nix key generate-secret`); a second machine (a fresh chroot store)
then verifies by substituting the dependencies from the cache and rebuilding only the
check, and its VSA names what was substituted. Every bad input of the issue is here:
unreachable caches, wrong signatures, a corrupted NAR, nothing attested, a cache Nix
cannot write to.
"""

from __future__ import annotations

import base64
import json
import lzma
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from provenance.attest import pipeline as attest
from provenance.cli import app
from provenance.doors.nix import Nix
from provenance.formats import dsse, keys
from tests import nginx
from tests.conftest import NIX_CONFIG, git, isolate, make_flake, nix, run

pytestmark = pytest.mark.nix

# deep: a check whose input has an input of its own, to tell the closures apart.
EXTRA = """{ mk, tests }: rec {
  nondet = mk "nondet-check" ''
    busybox mkdir -p $out
    echo stable > $out/same.txt
    echo "$RANDOM $RANDOM $RANDOM $RANDOM" > $out/random.txt
  '' { };
  deep = mk "deep-check" "busybox cat $mid > $out" {
    mid = mk "mid" "busybox cat $base > $out; echo mid >> $out" {
      base = mk "base" "echo base > $out" { };
    };
  };
}
"""


@dataclass(frozen=True)
class Attested:
    repo: Path
    pub: Path  # provenance public key (trust for publish and verify)
    signer: keys.Signer
    commit: str
    lines: dict[str, str]  # check -> envelope line
    cache_sk: Path  # the cache's Nix secret key
    cache_pk: str  # ... and its public key
    other_pk: str  # a Nix key that signed nothing

    def claim(self, check: str) -> dict[str, Any]:
        return _payload(self.lines[check])

    def output(self, check: str) -> str:
        return str(self.claim(check)["subject"][0]["name"])


def _payload(line: str) -> dict[str, Any]:
    return json.loads(base64.b64decode(json.loads(line)["payload"]))  # type: ignore[no-any-return]


def _nix_keys(base: Path, name: str) -> tuple[Path, str]:
    sk = base / f"{name}.sk"
    sk.write_text(nix("key", "generate-secret", "--key-name", name))
    pk = run(["nix", "key", "convert-secret-to-public"], input=sk.read_text()).stdout.strip()
    return sk, pk


def _attest(repo: Path, key: Path) -> tuple[str, dict[str, str]]:
    report = attest.build(attest.BuildRequest(flake_dir=repo, signer=keys.load_signer(key)), Nix())
    assert report.bundle_path is not None
    lines = {}
    for ln in report.bundle_path.read_text().splitlines():
        stmt = _payload(ln)
        if stmt["predicateType"] == "https://slsa.dev/provenance/v1":
            lines[stmt["predicate"]["buildDefinition"]["externalParameters"]["check"]] = ln
    return report.commit, lines


@pytest.fixture(scope="module")
def attested(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Attested]:
    base = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        isolate(mp)
        repo = make_flake(base / "repo", extra_checks=EXTRA)
        key, pub, _ = keys.generate(base / "keys")
        commit, lines = _attest(repo, key)
        sk, pk = _nix_keys(base, "cache-1")
        _, other = _nix_keys(base, "other-1")
        yield Attested(repo, pub, keys.load_signer(key), commit, lines, sk, pk, other)


@pytest.fixture(autouse=True)
def _own_narinfo_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Nix remembers narinfo answers per cache URL for an hour (~/.cache/nix): a port or
    # directory reused by another test must not inherit them.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))


@pytest.fixture
def server(tmp_path: Path) -> Iterator[nginx.Nginx]:
    srv = nginx.start(tmp_path / "nginx")
    yield srv
    srv.stop()


def cli(*args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    print(f"exit {result.exit_code}\n{result.stderr}")  # shown by pytest on failure
    return result.exit_code, result.stdout, result.stderr


def publish(a: Attested, to: str, *extra: str | Path) -> tuple[int, dict[str, Any], str]:
    code, out, err = cli(
        "publish", "--flake", a.repo, "--trusted-key", a.pub, "--to", to, "--json", *extra
    )
    return code, json.loads(out), err


def verify(a: Attested, check: str, *extra: str | Path) -> tuple[int, dict[str, Any], str]:
    code, out, err = cli(
        "verify", "--flake", a.repo, "--trusted-key", a.pub, "--check", check, "--json", *extra
    )
    return code, json.loads(out), err


def deps_of(report: dict[str, Any], check: str) -> dict[str, Any]:
    (att,) = [x for x in report["attestations"] if x["check"] == check]
    return att["dependencies"]  # type: ignore[no-any-return]


def lib_out(a: Attested) -> tuple[str, str]:
    """chain's one dependency: (its .drv, its output), from the flake."""
    drv = nix("eval", "--raw", f"{a.repo}#checks.{_system()}.chain.lib.drvPath")
    out = nix("eval", "--raw", f"{a.repo}#checks.{_system()}.chain.lib.outPath")
    return drv, out


def path_info(path: str, store: Path | None = None) -> dict[str, Any]:
    """Nix's record of `path`: from 2.8's array, or the object keyed by path of 2.19+."""
    where = ["--store", str(store)] if store else []
    raw = json.loads(nix("path-info", "--json", *where, path))
    entry = raw[path] if isinstance(raw, dict) else next(e for e in raw if e["path"] == path)
    assert entry, f"{path} is not valid"
    return entry  # type: ignore[no-any-return]


def _system() -> str:
    from provenance.doors.nix import current_system  # noqa: PLC0415

    return current_system()


# -- the second machine ------------------------------------------------------------------


def test_second_machine_substitutes_dependencies_from_nginx_and_rebuilds_only_the_check(
    attested: Attested, server: nginx.Nginx, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, summary, err = publish(
        attested, server.url, "--secret-key", attested.cache_sk, "--closure", "runtime"
    )
    assert code == 0, err
    lib_drv, lib = lib_out(attested)
    chain = attested.output("chain")
    assert {chain, lib} <= set(summary["copied"])
    assert summary["ok"] and summary["signed"] and summary["bytes"] > 0
    assert (server.root / "nix-cache-info").is_file()  # uploaded through nginx's PUT
    assert re.search(rf'"PUT /{Path(lib).name[:32]}\.narinfo HTTP/1\.1" 201', server.access_log())

    published = len(server.access_log())
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "second-xdg"))  # its own narinfo cache
    reviewer_key, _, _ = keys.generate(tmp_path / "reviewer")
    vsa_out = tmp_path / "vsa.intoto.jsonl"
    store = tmp_path / "second-machine"
    code, report, err = verify(
        attested,
        "chain",
        "--rebuild",
        "--store",
        store,
        "--substituters",
        server.url,
        "--trusted-public-keys",
        attested.cache_pk,
        "--sign-with",
        reviewer_key,
        "--output",
        vsa_out,
        "--no-note",
    )
    assert code == 0, err
    deps = deps_of(report, "chain")
    assert deps["substituted"] == [{"path": lib, "from": server.url}]
    assert lib_drv not in deps["built"]  # the dependency came from the cache...
    assert "OK   chain reproduced/output out" in err  # ...and the check was built here
    log = server.access_log()[published:]  # what the second machine asked the cache
    assert f"GET /{Path(lib).name[:32]}.narinfo" in log
    assert f"/{Path(chain).name[:32]}.narinfo" not in log  # the claim is never substituted
    (line,) = vsa_out.read_text().splitlines()
    pred = json.loads(dsse.Envelope.from_json(line).payload)["predicate"]
    assert pred["verificationResult"] == "PASSED"
    assert "PROVENANCE_REPRODUCED" in pred["verifiedLevels"]
    assert pred["rebuildDependencies"]["substituted"] == [{"path": lib, "from": server.url}]
    assert pred["rebuildDependencies"]["caches"] == [server.url]
    # The substituted path is in the second store as not built there (nix's own record).
    assert not path_info(lib, store).get("ultimate")


def test_the_reviewers_own_substituters_serve_dependencies_but_never_the_claim(
    attested: Attested, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"file://{tmp_path / 'cache'}"
    code, summary, err = publish(
        attested, url, "--secret-key", attested.cache_sk, "--closure", "runtime"
    )
    assert code == 0, err
    chain = attested.output("chain")
    assert chain in summary["copied"]  # the cache holds the attested output itself, too
    config = NIX_CONFIG.replace("substituters =", f"substituters = {url}")
    monkeypatch.setenv("NIX_CONFIG", f"{config}\ntrusted-public-keys = {attested.cache_pk}")
    store = tmp_path / "s"
    code, report, err = verify(attested, "chain", "--rebuild", "--store", store)
    assert code == 0, err
    _, lib = lib_out(attested)
    deps = deps_of(report, "chain")
    assert deps["substituted"] == [{"path": lib, "from": url}] and deps["caches"] == [url]
    # The check's output was built in the second store, not copied from the cache.
    assert path_info(chain, store)["ultimate"] is True


def test_in_place_the_missing_dependency_is_substituted_and_the_check_built_here(
    attested: Attested, tmp_path: Path
) -> None:
    # Its own flake: its outputs are deleted from this store below.
    repo = make_flake(tmp_path / "own")
    key, pub, _ = keys.generate(tmp_path / "keys")
    commit, lines = _attest(repo, key)
    own = Attested(repo, pub, keys.load_signer(key), commit, lines, attested.cache_sk, "", "")
    url = f"file://{tmp_path / 'cache'}"
    code, _, err = publish(own, url, "--secret-key", own.cache_sk, "--closure", "runtime")
    assert code == 0, err
    lib_drv, lib = lib_out(own)
    chain = own.output("chain")
    nix("store", "delete", chain, lib)
    code, report, err = verify(
        own, "chain", "--rebuild", "--in-place", "--substituters", url,
        "--trusted-public-keys", attested.cache_pk,
    )  # fmt: skip
    assert code == 0, err
    deps = deps_of(report, "chain")
    assert deps["substituted"] == [{"path": lib, "from": url}] and lib_drv not in deps["built"]
    assert path_info(chain)["ultimate"] is True  # built here, though the cache had it


def test_without_a_cache_the_rebuild_builds_its_dependencies(
    attested: Attested, tmp_path: Path
) -> None:
    lib_drv, _ = lib_out(attested)
    code, report, err = verify(attested, "chain", "--rebuild", "--store", tmp_path / "s")
    assert code == 0, err
    deps = deps_of(report, "chain")
    assert deps["substituted"] == [] and deps["built"] == [lib_drv]


def test_publish_again_copies_nothing_and_says_what_was_there(
    attested: Attested, tmp_path: Path
) -> None:
    url = f"file://{tmp_path / 'cache'}"
    code, first, _ = publish(attested, url, "--secret-key", attested.cache_sk)
    assert code == 0
    code, again, _ = publish(attested, url, "--secret-key", attested.cache_sk)
    assert code == 0
    assert again["copied"] == [] and again["copiedBytes"] == 0
    assert sorted(again["alreadyThere"]) == sorted(first["copied"])
    assert again["alreadyThereBytes"] == first["bytes"] == first["copiedBytes"]
    # The bundle travels as a store path holding exactly the note's trusted lines.
    bundle = Path(first["bundle"])
    assert bundle.name.endswith(f"-provenance-{attested.commit}.intoto.jsonl")
    assert set(attested.lines.values()) <= set(bundle.read_text().splitlines())
    assert (tmp_path / "cache" / f"{bundle.name[:32]}.narinfo").is_file()


def test_closures_outputs_runtime_build(attested: Attested, tmp_path: Path) -> None:
    system = _system()
    paths: dict[str, set[str]] = {}
    for closure in ("outputs", "runtime", "build"):
        url = f"file://{tmp_path / closure}"
        code, summary, err = publish(attested, url, "--closure", closure, "--no-bundle")
        assert code == 0, err
        assert summary["bundle"] is None
        paths[closure] = set(summary["copied"])
    deep = attested.output("deep")
    mid = nix("eval", "--raw", f"{attested.repo}#checks.{system}.deep.mid.outPath")
    base = nix("eval", "--raw", f"{attested.repo}#checks.{system}.deep.mid.base.outPath")
    assert deep in paths["outputs"] and mid not in paths["outputs"]
    assert paths["outputs"] == {attested.output(c) for c in attested.lines}
    assert mid in paths["runtime"] and base not in paths["runtime"]  # what deep's build saw
    assert base in paths["build"]  # the whole build closure
    assert paths["outputs"] < paths["runtime"] < paths["build"]


def test_published_output_is_the_diff_base_when_the_local_copy_is_gone(
    attested: Attested, tmp_path: Path
) -> None:
    # Its own flake: the output deleted below must not be missing for the other tests.
    repo = make_flake(tmp_path / "own", extra_checks=EXTRA)
    key, pub, _ = keys.generate(tmp_path / "keys")
    commit, lines = _attest(repo, key)
    attested = Attested(
        repo, pub, keys.load_signer(key), commit, lines, attested.cache_sk, attested.cache_pk, ""
    )
    url = f"file://{tmp_path / 'cache'}"
    code, _, err = publish(attested, url, "--closure", "outputs", "--secret-key", attested.cache_sk)
    assert code == 0, err
    out = attested.output("nondet")
    nix("store", "delete", out)
    assert not Path(out).exists()
    code, report, err = verify(
        attested,
        "nondet",
        "--rebuild",
        "--substituters",
        url,
        "--trusted-public-keys",
        attested.cache_pk,
    )
    assert code == 1
    (att,) = [x for x in report["attestations"] if x["check"] == "nondet"]
    (d,) = att["diffs"]
    assert d["comparedWith"] == f"{out} (fetched from {url})"
    assert [f["path"] for f in d["files"]] == ["random.txt"]
    assert not Path(out).exists()  # fetched into a temporary store, not this one


# -- bad input: verify ------------------------------------------------------------------


def test_unreachable_cache_falls_back_to_building_and_says_so(
    attested: Attested, tmp_path: Path
) -> None:
    lib_drv, _ = lib_out(attested)
    dead = f"http://127.0.0.1:{nginx.free_port()}"
    missing = tmp_path / "no-such-cache"
    code, report, err = verify(
        attested,
        "chain",
        "--rebuild",
        "--store",
        tmp_path / "s",
        "--substituters",
        dead,
        "--substituters",
        f"file://{missing}",
        "--trusted-public-keys",
        attested.cache_pk,
    )
    assert code == 0, err
    deps = deps_of(report, "chain")
    assert {u["url"] for u in deps["unreachable"]} == {dead, f"file://{missing}"}
    assert deps["built"] == [lib_drv] and deps["substituted"] == []
    assert f"cache {dead} is unreachable" in err and "built here" in err
    assert not missing.exists()  # asking about a file:// cache must not create it


def test_signature_by_an_untrusted_key_is_refused_and_named(
    attested: Attested, server: nginx.Nginx, tmp_path: Path
) -> None:
    assert (
        publish(attested, server.url, "--secret-key", attested.cache_sk, "--closure", "runtime")[0]
        == 0
    )
    lib_drv, lib = lib_out(attested)
    code, report, err = verify(
        attested,
        "chain",
        "--rebuild",
        "--store",
        tmp_path / "s",
        "--substituters",
        server.url,
        "--trusted-public-keys",
        attested.other_pk,
    )
    assert code == 0, err  # the dependency was built instead, and the check reproduced
    deps = deps_of(report, "chain")
    assert deps["refused"] == [{"path": lib, "reason": f"{server.url}: signed by no trusted key"}]
    assert deps["substituted"] == [] and deps["built"] == [lib_drv]
    assert f"refused {lib}" in err


def test_unsigned_publish_is_refused_by_the_reviewer(attested: Attested, tmp_path: Path) -> None:
    url = f"file://{tmp_path / 'cache'}"
    code, summary, err = publish(attested, url, "--closure", "runtime")
    assert code == 0 and summary["signed"] is False
    assert "no --secret-key" in err
    _, lib = lib_out(attested)
    code, report, _ = verify(
        attested, "chain", "--rebuild", "--store", tmp_path / "s", "--substituters", url,
        "--trusted-public-keys", attested.cache_pk,
    )  # fmt: skip
    assert code == 0
    assert [r["path"] for r in deps_of(report, "chain")["refused"]] == [lib]


def test_corrupted_nar_is_rejected_and_the_path_named(attested: Attested, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    assert (
        publish(
            attested, f"file://{cache}", "--secret-key", attested.cache_sk, "--closure", "runtime"
        )[0]
        == 0
    )
    lib_drv, lib = lib_out(attested)
    narinfo = (cache / f"{Path(lib).name[:32]}.narinfo").read_text()
    nar = cache / re.search(r"^URL: (\S+)$", narinfo, re.M).group(1)  # type: ignore[union-attr]
    assert nar.name.endswith(".nar.xz")
    body = lzma.decompress(nar.read_bytes()).replace(b"library", b"LIBRARY")
    nar.chmod(0o644)
    nar.write_bytes(lzma.compress(body, format=lzma.FORMAT_XZ))
    code, report, err = verify(
        attested, "chain", "--rebuild", "--store", tmp_path / "s", "--substituters",
        f"file://{cache}", "--trusted-public-keys", attested.cache_pk,
    )  # fmt: skip
    assert code == 0, err
    deps = deps_of(report, "chain")
    assert deps["refused"] == [
        {"path": lib, "reason": f"file://{cache}: its NAR does not match its hash"}
    ]
    assert deps["substituted"] == [] and deps["built"] == [lib_drv]


def test_verify_usage_errors(attested: Attested) -> None:
    code, _, err = cli(
        "verify", "--flake", attested.repo, "--trusted-key", attested.pub,
        "--substituters", "file:///tmp/x",
    )  # fmt: skip
    assert code == 2 and "only apply to --rebuild" in err
    secret = attested.cache_sk.read_text().strip()
    code, _, err = cli(
        "verify", "--flake", attested.repo, "--trusted-key", attested.pub, "--rebuild",
        "--trusted-public-keys", secret,
    )  # fmt: skip
    assert code == 2 and "that is a secret key" in err
    assert secret.split(":")[1][:12] not in err  # never echo a secret
    code, _, err = cli(
        "verify", "--flake", attested.repo, "--trusted-key", attested.pub, "--rebuild",
        "--substituters", "/tmp/cache",
    )  # fmt: skip
    assert code == 2 and "is not a store URL" in err


# -- bad input: publish -----------------------------------------------------------------


def test_publish_a_commit_with_no_attestations(tmp_path: Path, keypair: tuple[Path, Path]) -> None:
    repo = make_flake(tmp_path / "r")
    code, out, err = cli(
        "publish", "--flake", repo, "--trusted-key", keypair[1], "--to",
        f"file://{tmp_path / 'c'}", "--json",
    )  # fmt: skip
    assert code == 2
    assert "has no attestation signed by a trusted key" in err
    assert json.loads(out)["ok"] is False
    assert not (tmp_path / "c").exists()


def test_publish_to_a_cache_nix_cannot_write(attested: Attested, tmp_path: Path) -> None:
    ro = nginx.start(tmp_path / "ro", writable=False)
    try:
        (ro.root / "nix-cache-info").write_text("StoreDir: /nix/store\n")
        code, summary, err = publish(attested, ro.url, "--secret-key", attested.cache_sk)
    finally:
        ro.stop()
    assert code == 4
    assert f"copying to {ro.url} failed" in err and "405" in err
    assert summary["ok"] is False and summary["copied"] == [] and summary["alreadyThere"] == []
    assert summary["paths"] > 0  # the summary still says what would have gone
    assert summary["unfinished"] and not list(ro.root.glob("*.narinfo"))
    code, summary, err = publish(attested, "file:///proc/provenance-cache")
    assert code == 4 and "failed" in err and summary["ok"] is False


def test_publish_to_an_unreachable_cache(attested: Attested) -> None:
    dead = f"http://127.0.0.1:{nginx.free_port()}"
    code, summary, err = publish(attested, dead, "--secret-key", attested.cache_sk)
    assert code == 4
    assert f"cannot reach the cache {dead}" in err
    assert summary["error"].startswith("cannot reach")


def test_publish_usage_errors(attested: Attested, tmp_path: Path) -> None:
    url = f"file://{tmp_path / 'c'}"
    code, _, err = publish(attested, url, "--secret-key", tmp_path / "missing.sk")
    assert code == 2 and "cannot read the cache's secret key" in err
    pk_file = tmp_path / "pk"
    pk_file.write_text(attested.cache_pk)
    code, _, err = publish(attested, url, "--secret-key", pk_file)
    assert code == 2 and "is not a Nix secret key" in err
    code, _, err = publish(attested, url, "--closure", "everything")
    assert code == 2 and "choose one of outputs, runtime, build" in err
    code, _, err = cli("publish", "--flake", attested.repo, "--trusted-key", attested.pub)
    assert code == 2 and "pass --to URL" in err
    assert not (tmp_path / "c").exists()


def _append_note(repo: Path, commit: str, line: str) -> None:
    git(repo, "notes", "--ref", "refs/notes/provenance", "append", "-m", line, commit)


def test_a_strangers_line_on_the_note_publishes_nothing(tmp_path: Path) -> None:
    repo = make_flake(tmp_path / "r")
    key, pub, _ = keys.generate(tmp_path / "k")
    commit, lines = _attest(repo, key)
    stranger = keys.load_signer(keys.generate(tmp_path / "stranger")[0])
    stmt = _payload(lines["det"])
    secret = run(["nix", "store", "add-file", str(key)]).stdout.strip()  # a private path
    stmt["subject"] = [{"name": secret, "digest": {"sha256": "0" * 64}}]
    _append_note(repo, commit, dsse.sign(json.dumps(stmt).encode(), [stranger]).to_json())
    code, out, err = cli(
        "publish", "--flake", repo, "--trusted-key", pub, "--to",
        f"file://{tmp_path / 'c'}", "--closure", "outputs", "--json",
    )  # fmt: skip
    assert code == 0, err
    summary = json.loads(out)
    assert summary["skippedLines"] == 1
    assert secret not in summary["copied"] and secret not in json.dumps(summary)


def test_an_output_that_is_not_the_attested_one_is_not_published(tmp_path: Path) -> None:
    repo = make_flake(tmp_path / "r")
    key, pub, _ = keys.generate(tmp_path / "k")
    commit, lines = _attest(repo, key)
    git(repo, "notes", "--ref", "refs/notes/provenance", "remove", commit)
    stmt = _payload(lines["det"])
    stmt["subject"][0]["digest"]["sha256"] = "ab" * 32  # a trusted signer's wrong digest
    _append_note(
        repo, commit, dsse.sign(json.dumps(stmt).encode(), [keys.load_signer(key)]).to_json()
    )
    code, out, err = cli(
        "publish", "--flake", repo, "--trusted-key", pub, "--to",
        f"file://{tmp_path / 'c'}", "--json",
    )  # fmt: skip
    assert code == 3
    assert "not the attested abababababababab..." in err
    assert json.loads(out)["copied"] == []
