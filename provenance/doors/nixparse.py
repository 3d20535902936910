"""What nix prints, read into typed results: one parser per output shape.

Separate from the runner (nix.py) because the two change for different reasons: the
runner changes when a command is renamed or a flag appears (which spelling to run), the
parsers when an output grows new fields or changes shape. Nix's JSON did both across
releases (2.8 vs 2.19+: path-info became an object keyed by path; newer releases key
derivations by basename and print hashes as objects; 2.34 spells sandbox-paths as an
object). The parsers accept every shape we have a recorded sample of
(tests/fixtures/nix/, tests/unit/test_nix_parse.py) and normalise hashes to hex. They run
no process and raise nothing of their own: a shape they cannot read is the runner's
error to report.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import wraps
from typing import Any, ParamSpec, TypeVar

from provenance.doors.nixargv import current_system
from provenance.errors import NixError
from provenance.formats.hashing import sha256_to_hex

STORE_DIR = "/nix/store"


def _store_path(p: str) -> str:
    # Newer `nix derivation show` prints basenames; put the store dir back.
    return p if p.startswith("/") else f"{STORE_DIR}/{p}"


# -- the typed results ----------------------------------------------------------------


@dataclass(frozen=True)
class NixConfig:
    """Effective settings read back from nix, recorded next to the hashes."""

    sandbox: bool | str
    sandbox_fallback: bool
    sandbox_paths: tuple[str, ...]
    system: str
    store: str = "local"
    values: Mapping[str, Any] = field(default_factory=dict, compare=False)  # every setting

    @property
    def hermetic(self) -> bool:
        return self.sandbox is True and self.sandbox_fallback is False

    def as_dict(self) -> dict[str, Any]:
        return {
            "sandbox": self.sandbox,
            "sandboxFallback": self.sandbox_fallback,
            "sandboxPaths": list(self.sandbox_paths),
            "system": self.system,
        }


@dataclass(frozen=True)
class StoreInfo:
    url: str  # "local", "daemon", "unix://...", a chroot path, ...
    trusted: bool | None  # does the store trust this user? None when nix cannot say

    @property
    def local(self) -> bool:
        """Builds run in this process: the options we pass are the ones in force."""
        return self.url == "local" or self.url.startswith(("/", "local?", "local://"))


@dataclass(frozen=True)
class LockedInput:
    name: str
    type: str
    uri: str
    rev: str | None
    nar_hash: str | None  # hex


@dataclass(frozen=True)
class FlakeMetadata:
    url: str
    rev: str | None  # None when the tree is dirty
    nar_hash: str  # hex SHA-256 of the source NAR
    last_modified: int | None
    store_path: str
    inputs: tuple[LockedInput, ...]


@dataclass(frozen=True)
class Output:
    name: str
    path: str | None  # None for content-addressed/impure outputs with no fixed path


@dataclass(frozen=True)
class Derivation:
    path: str
    outputs: tuple[Output, ...]
    input_drvs: dict[str, tuple[str, ...]]
    input_srcs: tuple[str, ...]
    system: str
    builder: str
    env: dict[str, str]
    impure: bool = False

    @property
    def fixed_output(self) -> bool:
        """A fixed-output derivation: the only kind that gets network in the sandbox."""
        return "outputHash" in self.env

    @property
    def no_chroot(self) -> bool:
        return self.env.get("__noChroot") == "1"


@dataclass(frozen=True)
class PathInfo:
    path: str
    nar_hash: str  # hex
    nar_size: int
    references: tuple[str, ...]
    deriver: str | None
    ca: str | None
    ultimate: bool


@dataclass(frozen=True)
class BuildResult:
    drv_path: str
    outputs: dict[str, str]  # output name -> store path
    stderr: str


@dataclass(frozen=True)
class RebuildCheck:
    reproduced: bool
    differing_output: str | None  # the first output nix found to differ (kept as PATH.check)
    build_dir: str | None  # the build directory nix kept (--keep-failed)
    stderr: str = ""  # nix's log: says whether it really rebuilt the derivation here


@dataclass(frozen=True)
class StoreCheck:
    """What `nix store verify` found wrong (both empty: every path checked out)."""

    modified: tuple[str, ...]  # contents no longer match the hash the store recorded
    untrusted: tuple[str, ...]  # neither built by this store, signed by a trusted key, nor CA


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _shaped(what: str) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
    """JSON of a shape the parser does not know (a field of another type, a future Nix)
    is a NixError naming what was read, not a traceback."""

    def wrap(parse: Callable[_P, _R]) -> Callable[_P, _R]:
        @wraps(parse)
        def parsed(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            try:
                return parse(*args, **kwargs)
            except (AttributeError, TypeError, LookupError, ValueError, OverflowError) as e:
                msg = f"{what}: nix printed JSON of a shape this tool cannot read ({e!r:.200})"
                raise NixError(msg, "is this a Nix release provenance supports?") from None

        return parsed

    return wrap


# -- `nix config show --json` / `nix show-config --json` --------------------------------


@_shaped("reading nix's settings")
def parse_config(raw: Mapping[str, Any]) -> NixConfig:
    def val(name: str, default: Any) -> Any:
        entry = raw.get(name)
        return entry.get("value", default) if isinstance(entry, dict) else default

    sandbox = val("sandbox", False)
    return NixConfig(
        sandbox=sandbox if sandbox in (True, False, "relaxed") else str(sandbox),
        sandbox_fallback=bool(val("sandbox-fallback", True)),
        sandbox_paths=_sandbox_paths(val("sandbox-paths", [])),
        system=str(val("system", current_system())),
        values={k: e["value"] for k, e in raw.items() if isinstance(e, dict) and "value" in e},
    )


def _sandbox_paths(raw: Any) -> tuple[str, ...]:
    """`sandbox-paths` as nix.conf spells them: `TARGET[=SOURCE][?]`.

    2.8 .. 2.33 print a list of those strings; 2.34 an object
    `{TARGET: {"source": SOURCE, "optional": BOOL}}`, whose keys alone would drop the host
    path that is bound in.
    """
    if isinstance(raw, dict):
        paths = []
        for target, entry in raw.items():
            spec = entry if isinstance(entry, dict) else {}
            source = spec.get("source")
            spelled = target if source in (None, "", target) else f"{target}={source}"
            paths.append(spelled + ("?" if spec.get("optional") else ""))
        return tuple(sorted(paths))
    return tuple(sorted(str(p) for p in raw or []))


# -- `nix store info --json` / `nix store ping` -----------------------------------------


def parse_store_info_json(stdout: bytes) -> StoreInfo | None:
    """`nix store info --json` (2.14+), or None when nix printed no such object."""
    try:
        raw = json.loads(stdout)
        trusted = raw.get("trusted")  # 1/0 on 2.26, true/false on 2.34
        return StoreInfo(str(raw.get("url", "unknown")), None if trusted is None else bool(trusted))
    except (ValueError, RecursionError, AttributeError):  # ValueError: not UTF-8 or JSON
        return None


def parse_store_info_text(text: str) -> StoreInfo:
    """`nix store ping` without --json (2.8 .. 2.13): the URL only, trust unknown."""
    m = re.search(r"Store URL: (\S+)", text)
    return StoreInfo(m.group(1) if m else "unknown", None)


# -- `nix store verify` -----------------------------------------------------------------


def parse_store_verify(stderr: str) -> StoreCheck:
    """The paths `nix store verify` says were modified or are untrusted."""
    q = "['\"]"
    modified = re.findall(rf"^path {q}(/[^'\"]+){q} was modified", stderr, re.M)
    untrusted = re.findall(rf"^path {q}(/[^'\"]+){q} is untrusted", stderr, re.M)
    return StoreCheck(tuple(modified), tuple(untrusted))


# -- `nix flake metadata --json` --------------------------------------------------------


@_shaped("reading the flake's metadata")
def parse_flake_metadata(raw: Mapping[str, Any]) -> FlakeMetadata:
    locked = raw.get("locked", {})
    nodes = raw.get("locks", {}).get("nodes", {})
    root = nodes.get(raw.get("locks", {}).get("root", "root"), {})
    inputs: list[LockedInput] = []
    # Every locked node, direct inputs first and then their inputs ("home-manager/nixpkgs"),
    # breadth first, each node once: an input's own inputs are dependencies of the build
    # too. `follows` entries are lists pointing at another node, which is listed under its
    # own name.
    seen = {raw.get("locks", {}).get("root", "root")}
    level = [("", root)]
    while level:
        below = []
        for prefix, parent in level:
            refs = parent.get("inputs", {}) if isinstance(parent, dict) else {}
            for name, node_ref in sorted(refs.items()):
                if not isinstance(node_ref, str) or node_ref in seen:
                    continue
                seen.add(node_ref)
                node = nodes.get(node_ref, {})
                lk = node.get("locked", {}) if isinstance(node, dict) else {}
                nar = lk.get("narHash")
                inputs.append(
                    LockedInput(
                        name=prefix + name,
                        type=str(lk.get("type", "")),
                        uri=_locked_uri(lk),
                        rev=lk.get("rev"),
                        nar_hash=sha256_to_hex(nar) if nar else None,
                    )
                )
                below.append((f"{prefix}{name}/", node))
        level = below
    return FlakeMetadata(
        url=str(raw.get("resolvedUrl") or raw.get("url") or locked.get("url", "")),
        rev=raw.get("revision") or locked.get("rev"),
        nar_hash=sha256_to_hex(locked.get("narHash") or raw["narHash"]),
        last_modified=raw.get("lastModified"),
        store_path=str(raw.get("path", "")),
        inputs=tuple(inputs),
    )


def _locked_uri(lk: Mapping[str, Any]) -> str:
    kind = lk.get("type", "")
    if kind in ("github", "gitlab", "sourcehut"):
        return f"{kind}:{lk.get('owner')}/{lk.get('repo')}/{lk.get('rev', '')}"
    if "url" in lk:
        return (
            f"{kind}+{lk['url']}"
            if kind in ("git", "hg") and "+" not in lk["url"]
            else str(lk["url"])
        )
    if "path" in lk:
        return f"path:{lk['path']}"
    return str(kind)


# -- `nix derivation show` / `nix show-derivation` --------------------------------------


@_shaped("reading derivations")
def parse_derivations(raw: Mapping[str, Any]) -> dict[str, Derivation]:
    body = raw.get("derivations", raw) if isinstance(raw.get("derivations"), dict) else raw
    out: dict[str, Derivation] = {}
    for key, d in body.items():
        path = _store_path(key)
        outputs = tuple(
            Output(name, _store_path(o["path"]) if o.get("path") else None)
            for name, o in sorted(d.get("outputs", {}).items())
        )
        impure = any(o.get("impure") for o in d.get("outputs", {}).values())
        input_drvs: dict[str, tuple[str, ...]] = {}
        inputs = d.get("inputDrvs")
        if inputs is None and isinstance(
            d.get("inputs"), dict
        ):  # newest: {"inputs": {"drvs", "srcs"}}
            inputs = d["inputs"].get("drvs", {})
        for dp, outs in (inputs or {}).items():
            names = outs.get("outputs", []) if isinstance(outs, dict) else outs
            input_drvs[_store_path(dp)] = tuple(names)
        srcs = d.get("inputSrcs")
        if srcs is None and isinstance(d.get("inputs"), dict):
            srcs = d["inputs"].get("srcs", [])
        out[path] = Derivation(
            path=path,
            outputs=outputs,
            input_drvs=input_drvs,
            input_srcs=tuple(_store_path(s) for s in srcs or []),
            system=str(d.get("system", "")),
            builder=str(d.get("builder", "")),
            env={str(k): str(v) for k, v in d.get("env", {}).items()},
            impure=bool(impure),
        )
    return out


# -- `nix path-info --json` -------------------------------------------------------------


@_shaped("reading nix path-info")
def parse_path_info(raw: Any) -> dict[str, PathInfo]:
    """Accept 2.8's array, 2.19+'s object keyed by path (null = invalid path), and
    2.33+'s `{"version": 2, "info": {basename: ...}}` (`--json-format 2`)."""
    if isinstance(raw, dict) and isinstance(raw.get("info"), dict) and "version" in raw:
        raw = raw["info"]
    if isinstance(raw, dict):
        items = [(k, v) for k, v in raw.items()]
    else:
        items = [(e.get("path", ""), e) for e in raw]
    out: dict[str, PathInfo] = {}
    for path, e in items:
        if not e or "narHash" not in e or e.get("valid") is False:
            continue
        ca = e.get("ca")
        if isinstance(ca, dict):  # newest: {"method": ..., "hash": ...}
            ca = f"{ca.get('method', '')}:{ca.get('hash', '')}"
        deriver = e.get("deriver")
        out[_store_path(path)] = PathInfo(
            path=_store_path(path),
            nar_hash=sha256_to_hex(_hash_str(e["narHash"])),
            nar_size=int(e.get("narSize", 0)),
            references=tuple(_store_path(r) for r in e.get("references", [])),
            deriver=_store_path(deriver) if deriver else None,
            ca=ca,
            ultimate=bool(e.get("ultimate", False)),
        )
    return out


def _hash_str(h: Any) -> str:
    # Newest Nix may print hashes as {"algorithm": "sha256", "hash": "..."} objects.
    if isinstance(h, dict):
        return str(h.get("hash", ""))
    return str(h)


# -- `nix build --json` and `nix build --rebuild --keep-failed` -------------------------


def parse_build_result(stdout: bytes, stderr: str) -> BuildResult | None:
    """The one derivation `nix build --json` built, or None when it printed no such list."""
    try:
        entries = json.loads(stdout)
        entry = entries[0]
        return BuildResult(entry["drvPath"], dict(entry["outputs"]), stderr)
    except (ValueError, RecursionError, LookupError, TypeError):
        return None


def parse_rebuild_failure(stderr: str) -> RebuildCheck | None:
    """A failed `--rebuild` that found a differing output, or None if that is not why."""
    # Nix quotes paths with '...' up to 2.33 and with "..." from 2.34.
    m = re.search(r"may not be deterministic: output ['\"]([^'\"]+)['\"] differs", stderr)
    if not m:
        return None
    kept = re.search(r"keeping build directory ['\"]([^'\"]+)['\"]", stderr)
    return RebuildCheck(False, m.group(1), kept.group(1) if kept else None, stderr)
