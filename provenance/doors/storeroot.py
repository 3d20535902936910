"""Where the store's paths physically are on this machine, from nix's `store` setting.

With `store = /some/dir` (NIX_CONFIG, nix.conf or `--store`), a chroot store, nix builds
`/nix/store/…-x` at `/some/dir/nix/store/…-x`. We hash outputs and read test reports and
.drv files ourselves, so we must read them there: at the logical path there is nothing,
or worse, the host store's own copy of the same path, which an input-addressed output
need not share. A store whose files are not on this machine (ssh, s3, http, a binary
cache) cannot be read at all, and is refused.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from provenance.errors import RefusedError

_HERE = ("", "auto", "local", "daemon")  # the default store, where paths are what they say


@dataclass(frozen=True)
class StoreRoot:
    """Maps a store path to the file that holds it; `real` is None when they coincide."""

    setting: str = "auto"
    real: str | None = None  # the physical directory of the store's paths
    store_dir: str = "/nix/store"  # the logical one, which store paths name

    def physical(self, path: str) -> str:
        """The file holding store path `path` (or a file inside one) on this machine."""
        prefix = self.store_dir.rstrip("/") + "/"
        if self.real is None or not path.startswith(prefix):
            return path
        return os.path.join(self.real, path[len(prefix) :])


def locate(setting: object) -> StoreRoot:
    """The `StoreRoot` of nix's effective `store` setting (`nix config show`'s value)."""
    value = setting.strip() if isinstance(setting, str) else "auto"
    if value in _HERE or value.startswith("unix://"):
        return StoreRoot(value)  # the daemon's store: /nix/store on this machine
    if value.startswith("/"):
        return StoreRoot(value, os.path.join(value, "nix/store"))  # `store = /dir`: its root
    try:
        url = urlsplit(value)
    except ValueError:  # "local://[", an unclosed IPv6 host: no store we can read, refused below
        url = urlsplit("")
    if url.scheme == "local" or value.startswith("local?"):
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        store_dir = query.get("store", "/nix/store")
        if "real" in query:
            return StoreRoot(value, query["real"], store_dir)
        # `local:///dir` is `store = /dir` as Nix 2.34 prints it back: the path is the root.
        root = query.get("root") or (url.path if url.path not in ("", "/") else None)
        if root:
            return StoreRoot(value, os.path.join(root, store_dir.lstrip("/")), store_dir)
        return StoreRoot(value, None, store_dir)
    msg = f"nix's store is {value!r}, whose files are not on this machine"
    raise RefusedError(
        msg,
        "provenance hashes what nix built itself, so it builds into a local store only: "
        "unset `store` (or pass a local path as the store)",
    )
