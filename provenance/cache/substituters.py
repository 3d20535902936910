"""Where a rebuild's dependencies may come from: the reviewer's configured substituters
and those given with `verify --substituters URL --trusted-public-keys KEY`.

Rules (docs/verify.md, "Dependencies from binary caches"):
- only dependencies: the attested derivation is built with `substitute = false`
  (nixenv.py), whatever the caches hold;
- signatures stay required (`require-sigs = true`): a path signed by no trusted key is
  refused by Nix, which builds it instead, and we name it (realise.Dependencies);
- `fallback = true`: a substitute that fails (a corrupt NAR) is built from source;
- a cache that cannot be reached is asked once, left out, and named: the dependencies
  it would have given are built here, and the report says so.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from provenance.doors.nix import Nix
from provenance.errors import NixError, UsageError
from provenance.policy.nixenv import BuildEnvironment
from provenance.progress import Reporter


@dataclass(frozen=True)
class Caches:
    """The caches and keys given on the command line (both may be empty)."""

    urls: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()

    @classmethod
    def of(cls, urls: Iterable[str], keys: Iterable[str]) -> Caches:
        """Checked spellings (UsageError naming the bad one)."""
        return cls(tuple(check_url(u) for u in urls), tuple(check_public_key(k) for k in keys))


def check_url(url: str) -> str:
    """A store URL a binary cache can have: scheme://..., a file:// path absolute."""
    if "://" not in url:
        msg = f"{url!r} is not a store URL"
        raise UsageError(msg, "name a binary cache as file:///DIR, http(s)://HOST/... or s3://...")
    if url.startswith("file://") and not url.removeprefix("file://").startswith("/"):
        msg = f"{url!r}: a file:// cache needs an absolute path"
        raise UsageError(msg, "write file:///abs/dir (three slashes)")
    return url.rstrip("/") if url.count("/") > 2 else url


def check_public_key(key: str) -> str:
    """`name:base64` of a 32-byte Ed25519 key, as `nix key convert-secret-to-public` prints."""
    name, _, b64 = key.strip().partition(":")
    try:
        raw = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if not name or len(raw) != 32:
        hint = "pass NAME:BASE64 as printed by `nix key convert-secret-to-public`"
        if len(raw) == 64:
            hint = "that is a secret key: pass its public half (`nix key convert-secret-to-public`)"
        # Name only the key's name: what follows the colon may be a secret.
        msg = f"the key named {name[:40]!r} is not a Nix public key"
        raise UsageError(msg, hint)
    return key.strip()


def unreachable(nix: Nix, url: str) -> str | None:
    """Why `url` cannot serve substitutes, or None. Never creates a file:// cache."""
    if url.startswith("file://"):
        root = Path(url.removeprefix("file://").split("?", 1)[0])
        if not (root / "nix-cache-info").is_file():
            return f"{root} is not a binary cache (no nix-cache-info)"
        return None if os.access(root, os.R_OK) else f"{root} is not readable"
    try:
        return nix.cache_unreachable(url)
    except NixError as e:
        return e.message


def for_rebuild(
    nix: Nix, env: BuildEnvironment, caches: Caches, reporter: Reporter
) -> tuple[BuildEnvironment, dict[str, str]]:
    """`env` with its dependency step reading every reachable cache; the unreachable ones
    (URL -> why), left out so that Nix does not spend its retries on them."""
    wanted = list(dict.fromkeys([*env.substituters, *caches.urls]))
    lost = {u: why for u in wanted if (why := unreachable(nix, u)) is not None}
    for url, why in lost.items():
        reporter.warn(f"cache {url} is unreachable ({why}): its dependencies are built here")
    reachable = tuple(u for u in wanted if u not in lost)
    extra = {"require-sigs": "true", "fallback": "true"}
    if caches.urls or lost:
        extra["substituters"] = " ".join(reachable)
    if caches.keys:
        extra["extra-trusted-public-keys"] = " ".join(caches.keys)
    planned = dataclasses.replace(env, substituters=reachable, dependency_extra=extra)
    return planned, lost


def fetch_published(
    nix: Nix, urls: Iterable[str], keys: Iterable[str], path: str, into: Path
) -> tuple[Path | None, str]:
    """Fetch the published `path` into a temporary store at `into`, signature checked.

    Returns (its physical path, "") or (None, why not). Used to compare a rebuild that
    does not reproduce with the attested bytes when this machine does not have them.
    """
    options = {"require-sigs": "true"}
    if keys := list(keys):
        options["extra-trusted-public-keys"] = " ".join(keys)
    store = dataclasses.replace(nix, store=str(into))
    why = "no cache to fetch it from"
    for url in urls:
        try:
            store.copy_from(url, [path], options)
        except NixError as e:
            why = f"{url}: {e.message}"
            continue
        return into / path.lstrip("/"), f"fetched from {url}"
    return None, why
