"""The nix facts a build needs before it can build, asked in one wave beside the evaluation.

`provenance build` needs four facts before it builds anything: the Nix version (it picks
command spellings and is recorded), the settings read back under our options (nixenv.py),
which store builds go to, and the user's own settings (only to warn about the hooks we
switch off). None depends on the evaluation, so they are asked side by side with it,
each in its own thread, together with the import of the statement writers.

Nothing is cached across runs: each fact is what this nix says now, in this run, so
what a statement records about its environment is still read back, not remembered.
Asked early, they are wasted only when the run turns out to be a cache hit, so they are
started early only when the notes say no line of this key's can be one (`--force`, or
no line of its keyid on the commit or its searched history); otherwise after the cache
decision, as before.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # loaded when the facts are asked: a cache hit asks none of them
    from provenance.doors.nix import Nix, NixConfig, StoreInfo


def _import_statement() -> None:
    # Only attesting needs them (test reports' parsers, the statements), so they load in
    # a thread while the first nix calls run. (No pydantic: formats/plainjson.py.)
    import provenance.attest.statement  # noqa: PLC0415
    import provenance.attest.testresults  # noqa: F401, PLC0415


def _user_config(nix: Nix) -> NixConfig | None:
    # Without our options: only to say what we switch off, so skipped when no config can
    # name such a hook (nixenv.may_configure_hooks).
    from provenance.policy import nixenv  # noqa: PLC0415

    return nix.config() if nixenv.may_configure_hooks() else None


class NixFacts:
    """Futures of what nix says about itself, asked once per run, side by side."""

    def __init__(self, pool: ThreadPoolExecutor, nix: Nix) -> None:
        from provenance.policy import nixenv  # noqa: PLC0415 - not on a cache hit

        # The version first: config and store info wait for it to pick their spelling.
        self.version: Future[str] = pool.submit(nix.version)
        self.config: Future[NixConfig] = pool.submit(nix.config, nixenv.forced_options())
        self.store: Future[StoreInfo] = pool.submit(nix.store_info)
        self.user: Future[NixConfig | None] = pool.submit(_user_config, nix)
        # The import last: it holds the GIL, and each thread the pool starts after it would
        # wait for it (a switch interval, 5 ms, per thread) before the eval could start.
        self.imported: Future[None] = pool.submit(_import_statement)


class Prefetch:
    """Starts `NixFacts` once, from whichever thread first knows they will be needed."""

    def __init__(self, pool: ThreadPoolExecutor, nix: Nix) -> None:
        self._pool = pool
        self._nix = nix
        self._lock = threading.Lock()
        self._facts: NixFacts | None = None

    def start(self) -> NixFacts:
        with self._lock:
            if self._facts is None:
                self._facts = NixFacts(self._pool, self._nix)
            return self._facts

    @property
    def started(self) -> bool:
        with self._lock:
            return self._facts is not None
