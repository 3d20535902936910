"""The only door to `nix`. Every call goes through `Nix._run`; results come back typed.

Nix's JSON grows new fields and changed shape across releases (2.8 vs 2.19+: path-info
became an object keyed by path; `show-derivation` became `derivation show`; newer
releases key derivations by basename). The parsers here accept every shape we have a
recorded sample of (tests/fixtures/nix/) and normalise hashes to hex.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from provenance.doors import proc, selection
from provenance.doors.drvfile import DrvFlags, read_drv_flags
from provenance.doors.selection import EvaluatedCheck
from provenance.errors import NixError, UsageError
from provenance.formats.hashing import sha256_to_hex

log = logging.getLogger(__name__)

STORE_DIR = "/nix/store"
INSTALL_HINT = (
    "install Nix, e.g. `apt-get install nix-bin` on Debian, or see https://nixos.org/download"
)
# The settings a build runs with are nixenv.py's business (what we force, read back, refuse).
PURE_EVAL = {"pure-eval": "true"}


def current_system() -> str:
    """Nix's system double for this host, without spending a nix call on it."""
    machine = platform.machine().lower()
    machine = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
    kernel = platform.system().lower()
    return f"{machine}-{kernel}"


def _store_path(p: str) -> str:
    # Newer `nix derivation show` prints basenames; put the store dir back.
    return p if p.startswith("/") else f"{STORE_DIR}/{p}"


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


@dataclass
class Nix:
    """Runs nix with fixed flags. `nix_bin` is injectable for fake-nix tests."""

    nix_bin: str = "nix"
    store: str | None = None  # e.g. a chroot store for independent rebuilds
    env: Mapping[str, str] | None = None
    _version: str | None = field(default=None, repr=False)

    def _cmd(self, args: Iterable[str], options: Mapping[str, str] | None = None) -> list[str]:
        cmd = [self.nix_bin, "--extra-experimental-features", "nix-command flakes"]
        for k, v in (options or {}).items():
            cmd += ["--option", k, v]
        if self.store:
            cmd += ["--store", self.store]
        return cmd + list(args)

    def _run(
        self,
        args: Iterable[str],
        *,
        options: Mapping[str, str] | None = None,
        what: str,
        on_line: Callable[[str], None] | None = None,
        check: bool = True,
    ) -> proc.Completed:
        cmd = self._cmd(args, options)
        try:
            done = proc.run(cmd, env=self.env, on_stderr_line=on_line)
        except FileNotFoundError:
            msg = f"nix is not installed (no `{self.nix_bin}` on PATH)"
            raise NixError(msg, INSTALL_HINT, cmd=cmd) from None
        except PermissionError:
            msg = f"cannot execute {self.nix_bin}"
            raise NixError(msg, INSTALL_HINT, cmd=cmd) from None
        if check and done.returncode != 0:
            raise NixError(
                f"{what} failed: {_last_error(done.stderr)}",
                cmd=cmd,
                returncode=done.returncode,
                stderr=done.stderr,
            )
        return done

    def _json(self, args: Iterable[str], *, what: str, **kw: Any) -> Any:
        done = self._run(args, what=what, **kw)
        try:
            return json.loads(done.stdout)
        except json.JSONDecodeError:
            msg = f"{what}: nix printed something that is not JSON"
            raise NixError(msg, cmd=done.cmd, stderr=done.stderr) from None

    # -- facts about nix itself ------------------------------------------------------

    def version_tuple(self) -> tuple[int, int]:
        parts = self.version().split(".")
        try:
            return int(parts[0]), int(parts[1].split("pre")[0])
        except (ValueError, IndexError):
            return (99, 0)  # unknown spelling: assume a current Nix

    def version(self) -> str:
        if self._version is None:
            out = self._run(["--version"], what="nix --version").stdout.decode().strip()
            # "nix (Nix) 2.8.0", "nix (Lix, like Nix) 2.91.1", "nix (Determinate Nix 3.6.0) 2.29.0"
            self._version = out.split(") ", 1)[-1] if ") " in out else out
        return self._version

    def config(self, options: Mapping[str, str] | None = None) -> NixConfig:
        """Effective settings under `options`, as the builds we run will see them."""
        # `nix config show` replaced `nix show-config` (2.20); the old name is deprecated.
        names = [["config", "show"], ["show-config"]]
        if self.version_tuple() < (2, 20):
            names.reverse()
        raw = self._json_either(names, ["--json"], what="reading nix's settings", options=options)
        return parse_config(raw)

    def _json_either(
        self,
        commands: list[list[str]],
        args: list[str],
        *,
        what: str,
        options: Mapping[str, str] | None = None,
    ) -> Any:
        """Run the first command nix knows, in the order given (most likely first).

        The version picks the order, but forks (Lix, Determinate Nix) rename on their own
        schedules, so an unknown command falls through to the next spelling.
        """
        for i, command in enumerate(commands):
            try:
                return self._json([*command, *args], what=what, options=options)
            except NixError as e:
                unknown = "not a recognised command" in e.stderr or "unrecognised" in e.stderr
                if not unknown or i == len(commands) - 1:
                    raise
        raise AssertionError  # unreachable: the loop returns or raises

    def store_info(self) -> StoreInfo:
        """Which store builds go to, and whether it trusts us (when nix can say)."""
        # `store info` since 2.20; `store ping` is its deprecated alias there (and all 2.8 has).
        name = "info" if self.version_tuple() >= (2, 20) else "ping"
        if self.version_tuple() >= (2, 14):
            done = self._run(["store", name, "--json"], what=f"nix store {name}", check=False)
            unknown = "not a recognised command" in done.stderr or "unrecognised" in done.stderr
            if done.returncode != 0 and name == "info" and unknown:
                name = "ping"  # a fork numbered past 2.20 that kept the old name
                done = self._run(["store", name, "--json"], what="nix store ping", check=False)
            try:
                raw = json.loads(done.stdout)
                trusted = raw.get("trusted")  # 1/0 on 2.26, true/false on 2.34
                return StoreInfo(
                    str(raw.get("url", "unknown")), None if trusted is None else bool(trusted)
                )
            except (json.JSONDecodeError, AttributeError):
                pass
        done = self._run(["store", name], what=f"nix store {name}", check=False)
        m = re.search(r"Store URL: (\S+)", done.stderr + done.stdout.decode(errors="replace"))
        return StoreInfo(m.group(1) if m else "unknown", None)

    def verify_store(self, paths: Iterable[str]) -> StoreCheck:
        """`nix store verify`: contents match the recorded hash, and each path is trusted.

        Trusted: built by this store (`ultimate`), signed by a key in trusted-public-keys,
        or content-addressed. A path registered by hand with the hash of fake contents
        passes the contents check but not this one.
        """
        paths = list(paths)
        if not paths:
            return StoreCheck((), ())
        done = self._run(["store", "verify", *paths], what="nix store verify", check=False)
        q = "['\"]"
        modified = re.findall(rf"^path {q}(/[^'\"]+){q} was modified", done.stderr, re.M)
        untrusted = re.findall(rf"^path {q}(/[^'\"]+){q} is untrusted", done.stderr, re.M)
        if done.returncode != 0 and not (modified or untrusted):
            raise NixError(
                f"nix store verify failed: {_last_error(done.stderr)}",
                cmd=done.cmd,
                returncode=done.returncode,
                stderr=done.stderr,
            )
        return StoreCheck(tuple(modified), tuple(untrusted))

    # -- evaluation ------------------------------------------------------------------

    def flake_metadata(self, ref: str) -> FlakeMetadata:
        raw = self._json(
            ["flake", "metadata", "--json", "--no-update-lock-file", ref],
            what="reading the flake",
        )
        return parse_flake_metadata(raw)

    def check_drv_paths(self, ref: str, system: str, names: list[str] | None) -> dict[str, str]:
        """Evaluate `checks.<system>` (all, or `names`) to drvPaths, in one nix call."""
        return {n: c.drv_path for n, c in self.eval_checks(ref, system, names).items()}

    def eval_checks(
        self, ref: str, system: str, names: list[str] | None
    ) -> dict[str, EvaluatedCheck]:
        """Evaluate checks to drvPaths and output paths, in one nix call.

        Only derivations this evaluation instantiates count (selection.py); any other
        value under `checks` raises NotADerivationError.
        """
        done = self._run(
            [
                "eval",
                "--json",
                "--no-update-lock-file",
                f"{ref}#checks",
                "--apply",
                selection.apply_expression(system, names),
            ],
            # Never --impure: impure builtins (getEnv, currentTime, host files) would make
            # the drvPath depend on the machine. Flakes already evaluate purely without
            # --impure (checked on 2.8, even with `pure-eval = false`); the option pins it.
            options=PURE_EVAL,
            what="evaluating the flake's checks",
            check=False,
        )
        if done.returncode != 0:
            raise _eval_error(done)
        try:
            return selection.parse(json.loads(done.stdout), system, names)
        except (json.JSONDecodeError, selection.MalformedAnswer):
            msg = "evaluating the flake's checks: nix printed something that is not the JSON asked for"
            raise NixError(msg, cmd=done.cmd, stderr=done.stderr) from None

    def derivations(
        self, drv_paths: Iterable[str], *, recursive: bool = False
    ) -> dict[str, Derivation]:
        args = [*(["-r"] if recursive else []), *drv_paths]
        # `derivation show` since 2.15; `show-derivation` before, and gone in current Nix.
        names = [["derivation", "show"], ["show-derivation"]]
        if self.version_tuple() < (2, 15):
            names.reverse()
        return parse_derivations(self._json_either(names, args, what="reading derivations"))

    def drv_flags(self, drv_paths: Iterable[str]) -> dict[str, DrvFlags]:
        """Sandbox-relevant flags of each .drv: from the files, else from nix."""
        flags: dict[str, DrvFlags] = {}
        missing: list[str] = []
        for p in drv_paths:
            if self.store is None and (f := read_drv_flags(p)) is not None:
                flags[p] = f
            else:
                missing.append(p)
        if missing:
            for d in self.derivations(missing).values():
                outs = tuple(o.path for o in d.outputs if o.path)
                flags[d.path] = DrvFlags(d.path, d.fixed_output, d.no_chroot, d.impure, outs)
        return flags

    def closure_info(self, drv_paths: Iterable[str]) -> list[PathInfo]:
        """Every .drv and source in the build closure, with NAR hashes (one call)."""
        done = self._path_info(["--derivation", "-r", *drv_paths], check=True)
        try:
            raw = json.loads(done.stdout)
        except json.JSONDecodeError:
            msg = "querying the derivation closure: nix printed something that is not JSON"
            raise NixError(msg, cmd=done.cmd, stderr=done.stderr) from None
        return list(parse_path_info(raw).values())

    def _path_info(self, args: list[str], *, check: bool) -> proc.Completed:
        """`nix path-info --json ARGS`, with the `--json-format` that 2.33+ wants.

        2.33+ warns that `--json` without `--json-format` will become an error; 2.8 .. 2.32
        reject the flag, and so may a fork numbered past 2.33: then ask without it.
        """
        fmt = ["--json-format", "2"] if self.version_tuple() >= (2, 33) else []
        what = "querying the derivation closure" if check else "nix path-info"
        done = self._run(["path-info", "--json", *fmt, *args], what=what, check=False)
        if fmt and done.returncode != 0 and "--json-format" in done.stderr:
            done = self._run(["path-info", "--json", *args], what=what, check=False)
        if check and done.returncode != 0:
            raise NixError(
                f"{what} failed: {_last_error(done.stderr)}",
                cmd=done.cmd,
                returncode=done.returncode,
                stderr=done.stderr,
            )
        return done

    # -- store -----------------------------------------------------------------------

    def path_info(self, paths: Iterable[str]) -> dict[str, PathInfo]:
        """Info for valid paths; invalid ones are simply absent from the result."""
        paths = list(paths)
        if not paths:
            return {}
        done = self._path_info(paths, check=False)
        # 2.8 fails the whole call on one invalid path; ask one by one then.
        if done.returncode != 0:
            found: dict[str, PathInfo] = {}
            if len(paths) == 1:
                return found
            for p in paths:
                found.update(self.path_info([p]))
            return found
        return parse_path_info(json.loads(done.stdout))

    def build(
        self,
        drv_path: str,
        *,
        rebuild: bool = False,
        options: Mapping[str, str] | None = None,
        on_line: Callable[[str], None] | None = None,
    ) -> BuildResult:
        """Build one derivation (one per call: with several, a failure prints no JSON)."""
        args = ["build", "--no-link", "--json", "-L", *(["--rebuild"] if rebuild else []), drv_path]
        done = self._run(args, options=options, what="nix build", on_line=on_line, check=False)
        if done.returncode != 0:
            raise NixError(
                _last_error(done.stderr),
                cmd=done.cmd,
                returncode=done.returncode,
                stderr=done.stderr,
            )
        try:
            entries = json.loads(done.stdout)
            entry = entries[0]
            return BuildResult(entry["drvPath"], dict(entry["outputs"]), done.stderr)
        except (json.JSONDecodeError, LookupError, TypeError):
            msg = "nix build printed no usable --json result"
            raise NixError(msg, cmd=done.cmd, stderr=done.stderr) from None

    def realise(self, installables: list[str], *, options: Mapping[str, str]) -> None:
        """Build or substitute several installables, printing nothing (dependencies)."""
        if installables:
            self._run(["build", "--no-link", *installables], options=options, what="nix build")

    def log(self, path: str) -> bytes | None:
        done = self._run(["log", path], what="nix log", check=False)
        return done.stdout if done.returncode == 0 else None

    # -- independent rebuilds (provenance verify) -------------------------------------

    def copy_derivations(self, drv_paths: Iterable[str], to_store: str) -> None:
        """Copy .drv files and their closure (sources included) into another store."""
        self._run(
            ["copy", "--derivation", "--to", to_store, *drv_paths],
            what="copying derivations into the verification store",
        )

    def rebuild_check(
        self,
        drv_path: str,
        *,
        options: Mapping[str, str] | None = None,
        on_line: Callable[[str], None] | None = None,
    ) -> RebuildCheck:
        """`nix build --rebuild --keep-failed`: build again and compare with the valid outputs.

        Nix stops at the first differing output and keeps that rebuild as `PATH.check`
        (unregistered; the caller deletes it, and the kept build directory).
        """
        args = ["build", "--no-link", "--json", "-L", "--rebuild", "--keep-failed", drv_path]
        what = "nix build --rebuild"
        done = self._run(args, options=options, what=what, on_line=on_line, check=False)
        if done.returncode == 0:
            return RebuildCheck(True, None, None, done.stderr)
        # Nix quotes paths with '...' up to 2.33 and with "..." from 2.34.
        m = re.search(r"may not be deterministic: output ['\"]([^'\"]+)['\"] differs", done.stderr)
        if not m:
            raise NixError(
                _last_error(done.stderr),
                cmd=done.cmd,
                returncode=done.returncode,
                stderr=done.stderr,
            )
        kept = re.search(r"keeping build directory ['\"]([^'\"]+)['\"]", done.stderr)
        return RebuildCheck(False, m.group(1), kept.group(1) if kept else None, done.stderr)


def _last_error(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    for ln in lines:
        if ln.startswith("error:"):
            return ln.removeprefix("error:").strip()
    return lines[-1] if lines else "no error message"


def _eval_error(done: proc.Completed) -> Exception:
    err = done.stderr
    first = _last_error(err)
    if "does not provide attribute" in err and "checks" in err:
        return UsageError(
            "the flake has no `checks` output", "add checks.<system>.<name> to flake.nix"
        )
    if (
        "path '" in err and "flake.nix' does not exist" in err
    ) or "does not contain a 'flake.nix'" in err:
        return UsageError(f"not a flake: {first}", "run in a directory with a flake.nix")
    if "is not a valid URL" in err or "getting status of" in err:
        return UsageError(
            f"cannot evaluate the flake: {first}",
            "is flake.nix added to git (`git add flake.nix`)?",
        )
    if "requires lock file changes" in err:
        return UsageError(
            "flake.lock is missing or out of date",
            "run `nix flake lock` and commit flake.lock",
        )
    return NixError(f"evaluating the flake failed: {first}", cmd=done.cmd, stderr=err)


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


def parse_flake_metadata(raw: Mapping[str, Any]) -> FlakeMetadata:
    locked = raw.get("locked", {})
    nodes = raw.get("locks", {}).get("nodes", {})
    root = nodes.get(raw.get("locks", {}).get("root", "root"), {})
    inputs: list[LockedInput] = []
    for name, node_ref in sorted(root.get("inputs", {}).items()):
        # `follows` entries are lists pointing at other nodes; the node itself is listed.
        if not isinstance(node_ref, str):
            continue
        node = nodes.get(node_ref, {})
        lk = node.get("locked", {})
        nar = lk.get("narHash")
        inputs.append(
            LockedInput(
                name=name,
                type=str(lk.get("type", "")),
                uri=_locked_uri(lk),
                rev=lk.get("rev"),
                nar_hash=sha256_to_hex(nar) if nar else None,
            )
        )
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


def default_nix_bin() -> str:
    return os.environ.get("PROVENANCE_NIX", "nix")
