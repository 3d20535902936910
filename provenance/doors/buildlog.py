"""Read the build log Nix has just written, without starting `nix log`.

A local store keeps each derivation's log under `/nix/var/log/nix/drvs/<2 chars>/<rest
of the basename>`, bzip2-compressed unless `compress-build-log = false`, and `nix log DRV`
prints exactly that file, decompressed (`sha256(nix log)` = `sha256(bzcat file)`: shared/
NIX.md). The log's hash is signed and the test results are read from it, so the file is
read here only when it is surely the one `nix log` would print, and this build's:

- the store is this machine's default one: no `--store`, the `store` setting `auto` or
  `local`, a store that says it is local, and none of NIX_REMOTE, NIX_STATE_DIR or
  NIX_LOG_DIR set (each moves the store or its logs elsewhere);
- the file (first of the names `nix log` tries, in its order) was last written after the
  build started: a log left by an earlier build is never taken for this one's.

Otherwise `fresh_log` says None and the caller asks `nix log`, as before. No process at all.
"""

from __future__ import annotations

import bz2
import os
from collections.abc import Mapping

LOG_DIR = "/nix/var/log/nix"  # Nix's default; NIX_LOG_DIR / NIX_STATE_DIR move it
_MOVERS = ("NIX_REMOTE", "NIX_STATE_DIR", "NIX_LOG_DIR", "NIX_STORE_DIR")


def default_local_store(
    store_override: str | None, store_setting: object, store_is_local: bool, env: Mapping[str, str]
) -> bool:
    """Do builds write their logs to LOG_DIR? (Only then may `fresh_log` be used.)"""
    return (
        store_override is None
        and store_setting in ("auto", "local")
        and store_is_local
        and not any(env.get(name) for name in _MOVERS)
    )


def fresh_log(drv_path: str, since: float, log_dir: str = LOG_DIR) -> bytes | None:
    """The log of `drv_path` if Nix wrote it at or after `since` (epoch seconds), else None."""
    base = os.path.basename(drv_path)
    # LocalFSStore::getBuildLog's order: the split directory, then the flat one; in each,
    # the plain file before the .bz2. The first that exists is what `nix log` prints.
    for stem in (f"{log_dir}/drvs/{base[:2]}/{base[2:]}", f"{log_dir}/drvs/{base}"):
        for path, packed in ((stem, False), (f"{stem}.bz2", True)):
            try:
                if os.stat(path).st_mtime < since:
                    return None  # an earlier build's log: let nix say what it has
                with open(path, "rb") as f:
                    data = f.read()
                return bz2.decompress(data) if packed else data
            except FileNotFoundError:
                continue
            except (OSError, ValueError, EOFError):
                return None  # unreadable, or not bzip2 after all: ask nix
    return None
