"""The only door to `nix`: how nix is run, which spelling each Nix release wants, and what
its failures mean. Every call goes through `Nix._run`; results come back typed.

Nix renames commands and flags across releases and forks (`show-config` became
`config show`, `show-derivation` became `derivation show`, `store ping` became
`store info`; 2.33+ wants `--json-format`), so the runner picks the spelling by version
and falls through to the next one when a fork renamed on its own schedule. What nix
prints is read by nixparse.py, one parser per output shape; its result types (and
`current_system`) are re-exported here, where callers import them from.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provenance.doors import nixargv, nixerrors, nixlog, proc
from provenance.doors.drvfile import DrvFlags, read_drv_flags
from provenance.doors.nixargv import current_system, default_nix_bin
from provenance.doors.nixeval import Evaluation
from provenance.doors.nixlog import SubstitutionLog
from provenance.doors.nixparse import (
    BuildResult,
    Derivation,
    FlakeMetadata,
    LockedInput,
    NixConfig,
    Output,
    PathInfo,
    RebuildCheck,
    StoreCheck,
    StoreInfo,
    parse_build_result,
    parse_config,
    parse_derivations,
    parse_flake_metadata,  # noqa: F401 - the parsers are imported from here (tests/fuzz)
    parse_path_info,
    parse_rebuild_failure,
    parse_store_info_json,
    parse_store_info_text,
    parse_store_verify,
)
from provenance.doors.selection import EvaluatedCheck
from provenance.errors import NixError

__all__ = [  # the result types and current_system live in nixparse.py; import them here
    "BuildResult",
    "Derivation",
    "EvaluatedCheck",
    "FlakeMetadata",
    "LockedInput",
    "Nix",
    "NixConfig",
    "Output",
    "PathInfo",
    "RebuildCheck",
    "StoreCheck",
    "StoreInfo",
    "current_system",
    "default_nix_bin",
]

INSTALL_HINT = (
    "install Nix, e.g. `apt-get install nix-bin` on Debian, or see https://nixos.org/download"
)
# The settings a build runs with are nixenv.py's business (what we force, read back, refuse).
OnLine = Callable[[str], None] | None


@dataclass
class Nix(Evaluation):
    """Runs nix with fixed flags. `nix_bin` is injectable for fake-nix tests."""

    nix_bin: str = "nix"
    store: str | None = None  # e.g. a chroot store for independent rebuilds
    env: Mapping[str, str] | None = None
    _version: str | None = field(default=None, repr=False)
    _version_lock: threading.Lock = field(
        default_factory=threading.Lock, init=False, repr=False, compare=False
    )

    def _cmd(self, args: Iterable[str], options: Mapping[str, str] | None = None) -> list[str]:
        return nixargv.command(self.nix_bin, args, options, self.store)

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
            raise nixerrors.failure(done, f"{what} failed: {nixerrors.why(done)}")
        return done

    def _json(self, args: Iterable[str], *, what: str, **kw: Any) -> Any:
        done = self._run(args, what=what, **kw)
        try:
            return json.loads(done.stdout)
        except (ValueError, RecursionError):  # not UTF-8, not JSON, too deep, a huge number
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
        # Asked once per Nix object: threads of one run ask at the same time (the lock).
        with self._version_lock:
            if self._version is None:
                raw = self._run(nixargv.version(), what="nix --version").stdout
                out = raw.decode(errors="replace").strip()
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
                if not nixerrors.unknown_command(e.stderr) or i == len(commands) - 1:
                    raise
        raise AssertionError  # unreachable: the loop returns or raises

    def store_info(self) -> StoreInfo:
        """Which store builds go to, and whether it trusts us (when nix can say)."""
        # `store info` since 2.20; `store ping` is its deprecated alias there (and all 2.8 has).
        name = "info" if self.version_tuple() >= (2, 20) else "ping"
        if self.version_tuple() >= (2, 14):
            done = self._run(["store", name, "--json"], what=f"nix store {name}", check=False)
            if done.returncode != 0 and name == "info" and nixerrors.unknown_command(done.stderr):
                name = "ping"  # a fork numbered past 2.20 that kept the old name
                done = self._run(["store", name, "--json"], what="nix store ping", check=False)
            if (info := parse_store_info_json(done.stdout)) is not None:
                return info
        done = self._run(["store", name], what=f"nix store {name}", check=False)
        return parse_store_info_text(done.stderr + done.stdout.decode(errors="replace"))

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
        found = parse_store_verify(done.stderr)
        if done.returncode != 0 and not (found.modified or found.untrusted):
            raise nixerrors.failure(done, f"nix store verify failed: {nixerrors.why(done)}")
        return found

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
                inputs = tuple(sorted(d.input_drvs))
                flags[d.path] = DrvFlags(
                    d.path, d.fixed_output, d.no_chroot, d.impure, outs, input_drvs=inputs
                )
        return flags

    def closure_info(self, drv_paths: Iterable[str]) -> list[PathInfo]:
        """Every .drv and source in the build closure, with NAR hashes (one call)."""
        args = ["--derivation", *drv_paths]
        return list(self._closure(args, "querying the derivation closure").values())

    def runtime_closure(self, paths: Iterable[str]) -> dict[str, PathInfo]:
        """Valid `paths` and everything they reference, with NAR sizes (one call)."""
        paths = list(paths)
        return self._closure(paths, "querying the closure") if paths else {}

    def _closure(self, args: list[str], what: str) -> dict[str, PathInfo]:
        done = self._path_info(["-r", *args], check=True, what=what)
        try:
            return parse_path_info(json.loads(done.stdout))
        except (ValueError, RecursionError):  # also invalid UTF-8, 4300-digit numbers, nesting
            msg = f"{what}: nix printed something that is not JSON"
            raise NixError(msg, cmd=done.cmd, stderr=done.stderr) from None

    def _path_info(self, args: list[str], *, check: bool, what: str = "") -> proc.Completed:
        """`nix path-info --json ARGS`, with the `--json-format` that 2.33+ wants.

        2.33+ warns that `--json` without `--json-format` will become an error; 2.8 .. 2.32
        reject the flag, and so may a fork numbered past 2.33: then ask without it.
        """
        fmt = ["--json-format", "2"] if self.version_tuple() >= (2, 33) else []
        what = what or ("querying the derivation closure" if check else "nix path-info")
        done = self._run(["path-info", "--json", *fmt, *args], what=what, check=False)
        if fmt and done.returncode != 0 and "--json-format" in done.stderr:
            done = self._run(["path-info", "--json", *args], what=what, check=False)
        if check and done.returncode != 0:
            raise nixerrors.failure(done, f"{what} failed: {nixerrors.why(done)}")
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
        try:
            raw = json.loads(done.stdout)
        except (ValueError, RecursionError):
            msg = "nix path-info: nix printed something that is not JSON"
            raise NixError(msg, cmd=done.cmd, stderr=done.stderr) from None
        return parse_path_info(raw)

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
            raise nixerrors.failure(done, nixerrors.why(done))
        if (result := parse_build_result(done.stdout, done.stderr)) is None:
            msg = "nix build printed no usable --json result"
            raise NixError(msg, cmd=done.cmd, stderr=done.stderr)
        return result

    def realise(
        self, installables: list[str], *, options: Mapping[str, str], on_line: OnLine = None
    ) -> SubstitutionLog:
        """Build or substitute several installables (dependencies): what nix said it
        substituted, from where, and built (its lines; NixError if the call failed)."""
        if not installables:
            return nixlog.substitution("")
        args = ["build", "--no-link", *installables]
        done = self._run(args, options=options, what="nix build", on_line=on_line)
        return nixlog.substitution(done.stderr)

    def add_file(self, path: Path) -> str:
        """`nix store add-file`: the file as a content-addressed store path."""
        done = self._run(["store", "add-file", str(path)], what="nix store add-file")
        return done.stdout.decode().strip()

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
        self, drv_path: str, *, options: Mapping[str, str] | None = None, on_line: OnLine = None
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
        if (differs := parse_rebuild_failure(done.stderr)) is None:
            raise nixerrors.failure(done, nixerrors.why(done))
        return differs

    # -- binary caches (provenance publish, verify --substituters) ---------------------

    def copy_to(
        self, url: str, paths: Iterable[str], on_copied: Callable[[str], None] | None = None
    ) -> list[str]:
        """`nix copy -v --to URL` of `paths` and their closure; the paths nix sent (from
        its `copying path` lines: one the cache has is not named). Nix signs with the
        `?secret-key=FILE` in `url`."""
        paths = list(paths)
        if not paths:
            return []
        what = f"copying to {url.split('?', 1)[0]}"
        line = nixlog.on_copy(on_copied)
        done = self._run(["copy", "-v", "--to", url, *paths], what=what, on_line=line)
        return nixlog.copied_to(done.stderr)

    def copy_from(self, url: str, paths: Iterable[str], options: Mapping[str, str]) -> None:
        """Fetch `paths` from a cache into this store; Nix checks their signatures."""
        args = ["copy", "--from", url, "--to", self.store or "auto", *paths]
        self._run(args, options=options, what=f"fetching from {url}")

    def cache_unreachable(self, url: str) -> str | None:
        """Why the binary cache at `url` cannot be read, or None: one try, no retries.
        Nix creates a file:// cache it is only asked about: cache/substituters.py judges those."""
        # `store ping`: every release has it (a deprecated alias of `store info` since 2.20).
        probe = Nix(self.nix_bin, url, self.env, self._version)
        opts = {"download-attempts": "1"}
        done = probe._run(["store", "ping"], options=opts, what="nix store ping", check=False)
        return None if done.returncode == 0 else nixerrors.why(done)
