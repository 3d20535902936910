"""The build closure of the checks being attested: what is refused before anything is
built, and what the statements list as resolvedDependencies.

One walk of the .drv files (drvfile.read_drv_closure_flags) gives each derivation's
sandbox flags, its inputs and its NAR hash (a .drv is one regular file: the hash of its
bytes is what `nix path-info` records for an intact store). Only the sources' hashes come
from nix, in one `nix path-info` of just those paths; asking nix for the whole closure
(`nix path-info --derivation -r`) cost 76 ms at 1,500 derivations and 12 s of CPU, 45 MB
of JSON, at 100,000. When the files cannot be read (a remote store), nix answers all of
it, as before, and then a second opinion applies: nix's closure holds no derivation
the flags did not see, or the flags come from nix too (refused before anything is signed).
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

from provenance.doors.drvfile import DrvFlags, read_drv_closure_flags
from provenance.doors.nix import Nix, PathInfo
from provenance.errors import RefusedError
from provenance.formats.hashing import closure_digest

_CHUNK = 5000  # paths per `nix path-info` call: argv stays far below ARG_MAX


def _refuse_impure(closure: dict[str, DrvFlags]) -> frozenset[str]:
    """Refuse what escapes the sandbox; return the fixed-output drvs (network, by hash)."""
    for d in closure.values():
        if d.no_chroot:
            msg = f"{d.path} sets __noChroot: it would build outside the sandbox"
            raise RefusedError(msg, "remove __noChroot; an unsandboxed build cannot be attested")
        if d.impure:
            msg = f"{d.path} is an impure derivation: its output is not determined by its inputs"
            raise RefusedError(msg, "remove __impure; impure derivations cannot be attested")
    return frozenset(d.path for d in closure.values() if d.fixed_output)


class Closure:
    """The checks' closure: flags now (refusing what escapes the sandbox), the per-path
    infos from a query that runs during the builds and is awaited after them."""

    def __init__(
        self,
        pool: ThreadPoolExecutor,
        nix: Nix,
        roots: list[str],
        walked: dict[str, DrvFlags] | None,
    ) -> None:
        self._nix = nix
        if walked is None:  # the files cannot be read: nix says what the closure is
            self._f: Future[dict[str, PathInfo]] = pool.submit(_from_nix, nix, roots)
            walked = nix.drv_flags(p for p in self._f.result() if p.endswith(".drv"))
        else:
            self._f = pool.submit(_from_walk, nix, roots, walked)
        self.flags = walked
        self.fods = _refuse_impure(walked)
        self._infos: dict[str, PathInfo] | None = None

    def infos(self) -> dict[str, PathInfo]:
        """Every .drv and source with its NAR hash and references (awaited once)."""
        if self._infos is None:
            self._infos = self._f.result()
            drvs = [p for p in self._infos if p.endswith(".drv")]
            if not set(drvs) <= set(self.flags):  # a .drv only a source refers to, say
                self.flags = {**self.flags, **self._nix.drv_flags(drvs)}
                self.fods = _refuse_impure(self.flags)
        return self._infos


def closure_digest_of(nix: Nix, drv: str) -> tuple[str, int]:
    """The closure digest of `drv` as this store holds it (hashing.closure_digest), and how
    many paths it covers: what `verify` compares with a `--closure digest` statement."""
    walked = read_drv_closure_flags([drv]) if nix.store is None else None
    infos = _from_walk(nix, [drv], walked) if walked is not None else _from_nix(nix, [drv])
    return closure_digest((p, i.nar_hash) for p, i in infos.items()), len(infos)


def _from_nix(nix: Nix, roots: list[str]) -> dict[str, PathInfo]:
    return {i.path: i for i in nix.closure_info(roots)}


def _from_walk(nix: Nix, roots: list[str], walked: dict[str, DrvFlags]) -> dict[str, PathInfo]:
    """The closure `nix path-info --derivation -r` prints, from the walk and the sources'
    own path-info (following their references, as -r does)."""
    infos = {
        p: PathInfo(
            path=p,
            nar_hash=f.nar_sha256 or "",
            nar_size=f.nar_size,
            references=tuple(sorted({*f.input_drvs, *f.input_srcs})),
            deriver=None,
            ca=None,
            ultimate=False,
        )
        for p, f in walked.items()
    }
    if any(f.nar_sha256 is None for f in walked.values()):
        return _from_nix(nix, roots)
    pending = sorted({s for f in walked.values() for s in f.input_srcs} - infos.keys())
    while pending:
        found: dict[str, PathInfo] = {}
        for i in range(0, len(pending), _CHUNK):
            found.update(nix.path_info(pending[i : i + _CHUNK]))
        if set(pending) - found.keys():  # not valid? then nix's own answer, or its error
            return _from_nix(nix, roots)
        infos.update(found)
        pending = sorted({r for i in found.values() for r in i.references} - infos.keys())
    return infos


def closure_of(drv: str, infos: dict[str, PathInfo]) -> list[PathInfo]:
    seen: set[str] = set()
    stack = [drv]
    while stack:
        p = stack.pop()
        if p in seen or p not in infos:
            continue
        seen.add(p)
        stack.extend(infos[p].references)
    return [infos[p] for p in sorted(seen)]
