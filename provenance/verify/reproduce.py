"""Level 3 of `provenance verify`: rebuild without trusting the store, compare every output.

By default the derivation is copied into a fresh chroot store and built there (which
forces the sandbox); `--in-place` uses Nix's own rebuild check. Both run in the environment
nixenv.py forces and reads back, and a rebuild counts only when Nix reports building that
derivation here (realise.py): it is never substituted, and exit 0 alone proves nothing.
Every output's NAR SHA-256 is computed by us and must be the subject digest; every
differing output is compared file by file (diff.py), not just the first.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from provenance.attest.realise import (
    Dependencies,
    build_here,
    build_traced,
    built_dependencies,
    rebuild_here,
)
from provenance.cache import substituters
from provenance.cache.substituters import Caches
from provenance.doors import storeroot
from provenance.doors.nix import Nix
from provenance.doors.storeroot import StoreRoot
from provenance.errors import NixError, UsageError
from provenance.formats.hashing import nar_sha256
from provenance.policy import nixenv
from provenance.progress import Reporter
from provenance.verify import diff
from provenance.verify.verification import REPRODUCED, Attestation, OutputDiff

# -- level 3: reproduced -----------------------------------------------------------------


def _make_writable(root: Path) -> None:
    # Store paths are read-only; make them deletable (never following symlinks).
    for dirpath, _dirs, _files in os.walk(root):
        with contextlib.suppress(OSError):
            Path(dirpath).chmod(stat.S_IRWXU)


def _remove_tree(root: Path) -> None:
    if os.path.lexists(root):
        _make_writable(root)
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def _fresh_store(store: Path | None) -> Iterator[Path]:
    if store is not None:
        store.mkdir(parents=True, exist_ok=True)
        yield store.resolve()
        return
    tmp = Path(tempfile.mkdtemp(prefix="provenance-verify-"))
    try:
        yield tmp
    finally:
        _remove_tree(tmp)


# Nix 2.30 moved a store's builds from $TMPDIR into the store's own state directory, and
# refuses a build directory with a world-writable or symlinked parent: a fresh store in
# /tmp (the default one, or a --store there) built nothing. Such a store gets a private
# build directory of ours instead (inside the sandbox every build sees it as /build).
_BUILDS_IN_STATE_DIR = (2, 30)


def unsafe_parent(path: Path) -> Path | None:
    """The first of `path` and its parents that is world-writable or a symlink, if any."""
    for p in (path, *path.parents):
        try:
            st = p.lstat()
        except OSError:
            continue  # not made yet: nix makes it with its own modes
        if stat.S_ISLNK(st.st_mode) or st.st_mode & stat.S_IWOTH:
            return p
    return None


def private_build_base() -> Path | None:
    """A directory of this user's own with no world-writable or symlinked parent, if any:
    our cache directory, else ~/.cache/provenance (an XDG_CACHE_HOME under /tmp is ours,
    but /tmp is world-writable, and Nix >= 2.30 refuses a build dir below it)."""
    candidates = [Path(nixenv.decline_hook()).parent]
    if os.environ.get("HOME"):
        candidates.append(Path.home() / ".cache" / "provenance")
    for base in candidates:
        if unsafe_parent(base) is not None:
            continue
        try:
            base.mkdir(mode=0o700, parents=True, exist_ok=True)
            st = base.stat()
        except OSError:
            continue
        # Checked again once it exists: made meanwhile as a symlink, it is not ours to use.
        if st.st_uid == os.getuid() and not st.st_mode & 0o022 and unsafe_parent(base) is None:
            return base
    return None


@contextlib.contextmanager
def build_dir_options(nix: Nix, root: Path) -> Iterator[dict[str, str]]:
    """`build-dir` for a chroot store at `root` whose own build directory nix refuses."""
    bad = unsafe_parent(root)
    if bad is None or nix.version_tuple() < _BUILDS_IN_STATE_DIR:
        yield {}
        return
    base = private_build_base()
    if base is None:
        msg = f"nix {nix.version()} builds nothing in a store under {bad} (world-writable)"
        raise UsageError(msg, "pass --store DIR outside it, or set XDG_CACHE_HOME to yours")
    builds = Path(tempfile.mkdtemp(prefix="builds-", dir=base))
    try:
        yield {"build-dir": str(builds)}
    finally:
        _remove_tree(builds)


Published = Callable[[str], tuple[Path | None, str]]  # store path -> (fetched copy, how)


def _diff_output(
    out: str,
    path: str,
    attested: str,
    rebuilt: str,
    rebuilt_tree: Path,
    where: StoreRoot,
    published: Published | None = None,
) -> OutputDiff:
    """Compare a non-matching rebuild with the attested bytes: this machine's copy, else
    the one published to a cache (fetched into a temporary store, signature checked).

    `where`: the default store's location (a chroot store keeps `path` elsewhere).
    """
    local = Path(where.physical(path))
    how = ""
    if not os.path.lexists(local) and published is not None:
        fetched, how = published(path)
        if fetched is not None:
            local = fetched
        else:
            how = f"the attested output is in neither the local store nor a cache ({how})"
    if not os.path.lexists(local):
        return OutputDiff(
            out,
            path,
            attested,
            rebuilt,
            None,
            (),
            how or "the attested output is not in the local store: no files to compare with",
        )
    local_hash = nar_sha256(local)
    note = (
        ""
        if local_hash == attested
        else (f"the local {path} has NAR SHA-256 {local_hash}, not the attested one either")
    )
    if local.resolve() == rebuilt_tree.resolve():
        return OutputDiff(
            out, path, attested, rebuilt, None, (), "the rebuild replaced the attested copy"
        )
    return OutputDiff(
        out,
        path,
        attested,
        rebuilt,
        f"{path} ({how})" if how else str(local),
        tuple(diff.compare_trees(local, rebuilt_tree)),
        "; ".join(filter(None, [how, note])),
        diff.diffoscope(local, rebuilt_tree),
    )


def _compare_outputs(
    att: Attestation,
    built: dict[str, Path],
    infos: dict[str, str],
    how: str,
    where: StoreRoot,
    published: Published | None = None,
) -> None:
    """built: store path -> physical path of the rebuild; infos: store path -> nix's narHash."""
    c = att.claim
    assert c is not None
    for path, digest in sorted(c.subjects.items()):
        out = c.output_names[path]
        physical = built.get(path)
        if physical is None or not os.path.lexists(physical):
            att.fail(REPRODUCED, f"output {out}", f"the rebuild produced no {path}")
            continue
        ours = nar_sha256(physical)
        if path in infos and infos[path] != ours:
            att.fail(
                REPRODUCED,
                f"output {out}",
                f"nix's narHash for the rebuilt {path} is not ours: store corrupt?",
            )
            continue
        if ours == digest:
            att.ok(REPRODUCED, f"output {out}", f"NAR SHA-256 {ours[:16]}... matches ({how})")
        else:
            att.fail(
                REPRODUCED,
                f"output {out}",
                f"rebuilt NAR SHA-256 {ours[:16]}... is not the attested {digest[:16]}... ({how})",
            )
            att.diffs.append(_diff_output(out, path, digest, ours, physical, where, published))


def _environment(
    nix: Nix, caches: Caches, reporter: Reporter
) -> tuple[nixenv.BuildEnvironment, dict[str, str]]:
    """Our settings for the rebuilds through `nix` (RefusedError if they cannot hold),
    with the reachable caches for dependencies; the unreachable ones (URL -> why)."""
    env = nixenv.establish(nix, nix.config(nixenv.forced_options()), nix.store_info())
    return substituters.for_rebuild(nix, env, caches, reporter)


@contextlib.contextmanager
def _published(
    nix: Nix, env: nixenv.BuildEnvironment, caches: Caches
) -> Iterator[Published | None]:
    """Fetch attested outputs from the caches on demand, into one temporary store."""
    if not env.substituters:
        yield None
        return
    tmp = Path(tempfile.mkdtemp(prefix="provenance-published-"))

    def fetch(path: str) -> tuple[Path | None, str]:
        return substituters.fetch_published(nix, env.substituters, caches.keys, path, tmp)

    try:
        yield fetch
    finally:
        _remove_tree(tmp)


def _record(att: Attestation, deps: Dependencies, lost: dict[str, str]) -> None:
    deps = dataclasses.replace(deps, unreachable=lost)
    att.dependencies = deps
    att.ok(REPRODUCED, "dependencies", deps.summary())


_NOT_BUILT = (
    "nix exited 0 but did not build it here (a download, or an output made valid "
    "meanwhile, is not a rebuild)"
)


def rebuild_fresh(
    atts: list[Attestation],
    nix: Nix,
    store: Path | None,
    reporter: Reporter,
    caches: Caches | None = None,
) -> None:
    caches = caches or Caches()
    drvs = sorted({a.claim.drv_path for a in atts if a.claim})
    version = nix.version()
    local = storeroot.locate(nix.config().values.get("store"))  # the attested copies' store
    with _fresh_store(store) as root, build_dir_options(nix, root) as build_dir:
        reporter.info(f"rebuilding {len(drvs)} derivation(s) in the independent store {root}")
        fresh = dataclasses.replace(nix, store=str(root))
        nix.copy_derivations(drvs, str(root))
        env, lost = _environment(fresh, caches, reporter)
        env = dataclasses.replace(env, options={**env.options, **build_dir})
        results: dict[str, dict[str, Path] | str] = {}
        infos: dict[str, str] = {}
        sources: dict[str, Dependencies] = {}
        for drv in drvs:
            try:
                node = fresh.derivations([drv])[drv]
                outs = [o.path for o in node.outputs if o.path]
                # A store given by the user may already hold (some of) the outputs: build
                # the missing ones, then rebuild and compare them all.
                valid = fresh.path_info(outs)
                if not valid:
                    res, sources[drv] = build_traced(fresh, env, drv, node.input_drvs, version)
                    ours = nixenv.saw_build(res.stderr, drv)
                else:
                    if len(valid) < len(outs):
                        build_here(fresh, env, drv, node.input_drvs, version)
                    res = rebuild_here(fresh, env, drv, version)
                    sources[drv] = built_dependencies(res.stderr, drv)
                    ours = nixenv.saw_build(res.stderr, drv, rebuild=True)
            except NixError as e:
                results[drv] = e.message
                continue
            if not ours:
                results[drv] = _NOT_BUILT
                continue
            results[drv] = {p: root / p.lstrip("/") for p in res.outputs.values()}
            infos.update({p: i.nar_hash for p, i in fresh.path_info(res.outputs.values()).items()})
        with _published(nix, env, caches) as published:
            for a in atts:
                assert a.claim is not None
                r = results[a.claim.drv_path]
                if a.claim.drv_path in sources:
                    _record(a, sources[a.claim.drv_path], lost)
                if isinstance(r, str):
                    a.fail(REPRODUCED, "build", f"the rebuild in {root} failed: {r}")
                else:
                    _compare_outputs(a, r, infos, f"fresh store {root}", local, published)


def rebuild_in_place(
    atts: list[Attestation], nix: Nix, reporter: Reporter, caches: Caches | None = None
) -> None:
    drvs = sorted({a.claim.drv_path for a in atts if a.claim})
    env, lost = _environment(nix, caches or Caches(), reporter) if drvs else (None, {})
    # Where the store nix rebuilds in keeps its files: elsewhere for a chroot store.
    where = storeroot.locate(env.config.values.get("store")) if env else StoreRoot()
    version = nix.version()
    for drv in drvs:
        assert env is not None
        mine = [a for a in atts if a.claim and a.claim.drv_path == drv]
        reporter.info(f"rebuilding {drv} in place (nix build --rebuild)")
        node = nix.derivations([drv])[drv]
        outs = [o.path for o in node.outputs if o.path]
        valid = nix.path_info(outs)
        try:
            if not valid:
                # Not in the store: an ordinary build is a rebuild from scratch here.
                res, deps = build_traced(nix, env, drv, node.input_drvs, version)
                for a in mine:
                    _record(a, deps, lost)
                if not nixenv.saw_build(res.stderr, drv):
                    for a in mine:
                        a.fail(REPRODUCED, "build", _NOT_BUILT)
                    continue
                built = {p: Path(where.physical(p)) for p in res.outputs.values()}
                for a in mine:
                    _compare_outputs(a, built, {}, "built in the local store", where)
                continue
            if len(valid) < len(outs):
                build_here(nix, env, drv, node.input_drvs, version)  # then all are compared
            check = nix.rebuild_check(nixenv.installable(drv, version), options=env.options)
        except NixError as e:
            for a in mine:
                a.fail(REPRODUCED, "build", f"the rebuild failed: {e.message}")
            continue
        # Nix compared its rebuild with the valid outputs; we compare those with the subjects.
        for a in mine:
            _record(a, built_dependencies(check.stderr, drv), lost)
        built = {p: Path(where.physical(p)) for p in outs}
        if check.reproduced and not nixenv.saw_build(check.stderr, drv, rebuild=True):
            for a in mine:
                a.fail(REPRODUCED, "build", _NOT_BUILT)
            continue
        if check.reproduced:
            for a in mine:
                _compare_outputs(a, built, {}, "nix --rebuild matched the store", where)
            continue
        differing = check.differing_output or ""
        kept = Path(where.physical(differing) + ".check")
        try:
            for a in mine:
                assert a.claim is not None
                for path, digest in sorted(a.claim.subjects.items()):
                    out = a.claim.output_names[path]
                    if path != differing:
                        continue
                    rebuilt = nar_sha256(kept) if os.path.lexists(kept) else "unknown"
                    a.fail(REPRODUCED, f"output {out}", f"nix --rebuild: {path} does not reproduce")
                    d = _diff_output(out, path, digest, rebuilt, kept, where)
                    first_only = (
                        "nix --rebuild stops at the first differing output; "
                        "rebuild in a fresh store (the default) to compare every output"
                    )
                    a.diffs.append(
                        dataclasses.replace(d, note="; ".join(filter(None, [d.note, first_only])))
                    )
        finally:
            _remove_tree(kept)
            if check.build_dir:
                _remove_tree(Path(check.build_dir))
