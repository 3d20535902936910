"""`provenance build`: evaluate once, build hermetically, hash, sign, write, attach.

Order matters for honesty:
1. read the key and the git state first (cheap refusals before any nix work);
2. evaluate the checks at the exact commit (`git+file://REPO?rev=COMMIT`) to drvPaths,
   once; everything after works on those drvPaths, never on the flake again;
3. a note on the commit that already attests the same drvPath with the same key is a
   cache hit: nothing is built;
4. refuse what cannot be attested honestly (no sandbox, `__noChroot`, impure drvs);
5. build; an output that was already valid is rebuilt and compared (`--rebuild`)
   because it may have been built unsandboxed or tampered with;
6. hash outputs ourselves (NAR SHA-256) and cross-check nix's narHash;
7. sign, write the bundle atomically, union it into the git note.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from provenance import bundle, dsse
from provenance.claims import load_statement, parse_provenance
from provenance.errors import (
    AttestationError,
    BuildFailedError,
    NixError,
    RefusedError,
    UsageError,
    VerificationError,
)
from provenance.git import Git
from provenance.hashing import nar_sha256, sha256_hex
from provenance.keys import Signer
from provenance.nix import HERMETIC_OPTIONS, Derivation, Nix, PathInfo, current_system
from provenance.notes import DEFAULT_SEARCH_DEPTH, history_notes
from provenance.progress import Reporter
from provenance.statement import BUILT, REBUILT, BuiltCheck, SourceInfo, provenance_statement

BUNDLE_DIR = ".provenance"  # default bundle location, relative to the flake directory


@dataclass(frozen=True)
class BuildRequest:
    flake_dir: Path
    signer: Signer
    checks: tuple[str, ...] | None = None
    output: Path | None = None
    force: bool = False
    allow_dirty: bool = False
    attach_note: bool = True


@dataclass(frozen=True)
class CheckResult:
    name: str
    drv_path: str
    status: str  # "attested" | "cached" | "failed"
    outputs: dict[str, dict[str, str]] = field(default_factory=dict)  # out -> {path, sha256}
    output_check: str | None = None
    log_sha256: str | None = None
    error: str | None = None
    via: str | None = None  # cache hit on an ancestor: the commit whose attestation was reused


@dataclass(frozen=True)
class BuildReport:
    commit: str
    dirty: bool
    system: str
    keyid: str
    checks: tuple[CheckResult, ...]
    bundle_path: Path | None
    note_attached: bool

    @property
    def failed(self) -> list[CheckResult]:
        return [c for c in self.checks if c.status == "failed"]

    def as_json(self) -> dict[str, object]:
        return {
            "commit": self.commit,
            "dirty": self.dirty,
            "system": self.system,
            "keyid": self.keyid,
            "bundle": str(self.bundle_path) if self.bundle_path else None,
            "noteAttached": self.note_attached,
            "checks": [
                {
                    "name": c.name,
                    "drvPath": c.drv_path,
                    "status": c.status,
                    "outputs": c.outputs,
                    "outputCheck": c.output_check,
                    "logSha256": c.log_sha256,
                    **({"error": c.error} if c.error else {}),
                    **({"reusedFrom": c.via} if c.via else {}),
                }
                for c in self.checks
            ],
        }


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _repo_state(req: BuildRequest, reporter: Reporter) -> tuple[Git, Path, str, str, tuple[str, ...]]:
    flake_dir = req.flake_dir.resolve()
    if not flake_dir.is_dir():
        msg = f"{req.flake_dir} is not a directory"
        raise UsageError(msg)
    if not (flake_dir / "flake.nix").is_file():
        msg = f"{req.flake_dir} is not a flake (no flake.nix)"
        raise UsageError(msg, "run in a directory with a flake.nix, or pass it as FLAKE_DIR")
    git = Git(flake_dir)
    top = git.toplevel()
    commit = git.rev_parse("HEAD")
    status = git.status()
    subdir = flake_dir.relative_to(top).as_posix() if flake_dir != top else ""
    if status.dirty and not req.allow_dirty:
        shown = ", ".join(status.modified[:8]) + (" ..." if len(status.modified) > 8 else "")
        msg = f"the work tree has uncommitted changes: {shown}"
        raise RefusedError(msg, "commit them, or pass --allow-dirty to attest a dirty tree (labelled so)")
    prefix = f"{subdir}/" if subdir else ""
    invisible = [
        p for p in status.untracked if p.startswith(prefix) and not p.startswith(f"{prefix}{BUNDLE_DIR}/")
    ]
    if invisible:
        shown = ", ".join(invisible[:5]) + (" ..." if len(invisible) > 5 else "")
        reporter.warn(f"{len(invisible)} untracked file(s) are invisible to the flake: {shown}")
    return git, top, commit, subdir, status.modified


def _flake_ref(top: Path, commit: str, subdir: str, dirty: bool) -> str:
    # Clean: evaluate the commit itself, not the work tree, so later edits cannot slip in.
    query = [] if dirty else [f"rev={commit}"]
    if subdir:
        query.append(f"dir={subdir}")
    return f"git+file://{top}" + (f"?{'&'.join(query)}" if query else "")


def _cached(
    git: Git, commit: str, drvs: dict[str, str], signer: Signer, depth: int = DEFAULT_SEARCH_DEPTH
) -> dict[str, tuple[str, CheckResult]]:
    """Checks whose drvPath this key already attested: name -> (line, result).

    On this commit or, since the drvPath pins every input, on one of its last `depth`
    commits (a README-only change keeps the drvPaths): the same bound as `gate`.
    """
    window, notes = history_notes(git, commit, depth)
    in_window = set(window)
    hits: dict[str, tuple[str, CheckResult]] = {}
    wanted = {drv: name for name, drv in drvs.items()}
    lines = [ln for _, note in notes for ln in note.decode(errors="replace").splitlines()]
    for line in lines:
        if not line.strip():
            continue
        try:
            env = dsse.Envelope.from_json(line)
            verified = dsse.verify(env, [signer.public])
            claim = parse_provenance(load_statement(verified.payload))
        except (AttestationError, VerificationError):
            continue  # other keys' lines, other predicates, or junk: not ours to judge here
        name = wanted.get(claim.drv_path)
        if name is None or claim.dirty or claim.commit not in in_window or name in hits:
            continue
        hits[name] = (
            line,
            CheckResult(
                name,
                claim.drv_path,
                "cached",
                {claim.output_names[p]: {"path": p, "sha256": d} for p, d in claim.subjects.items()},
                claim.output_check,
                via=None if claim.commit == commit else claim.commit,
            ),
        )
    return hits


def _refuse_impure(closure: dict[str, Derivation]) -> frozenset[str]:
    """Refuse what escapes the sandbox; return the fixed-output drvs (network, by hash)."""
    for d in closure.values():
        if d.no_chroot:
            msg = f"{d.path} sets __noChroot: it would build outside the sandbox"
            raise RefusedError(msg, "remove __noChroot; an unsandboxed build cannot be attested")
        if d.impure:
            msg = f"{d.path} is an impure derivation: its output is not determined by its inputs"
            raise RefusedError(msg, "remove __impure; impure derivations cannot be attested")
    return frozenset(d.path for d in closure.values() if d.fixed_output)


def _closure_of(drv: str, infos: dict[str, PathInfo]) -> list[PathInfo]:
    seen: set[str] = set()
    stack = [drv]
    while stack:
        p = stack.pop()
        if p in seen or p not in infos:
            continue
        seen.add(p)
        stack.extend(infos[p].references)
    return [infos[p] for p in sorted(seen)]


def _installable(drv: str, nix_version: str) -> str:
    # `drv^*` means "its outputs" from Nix 2.13 on; 2.8 has no `^` and builds outputs anyway.
    parts = nix_version.split(".")
    try:
        newer = (int(parts[0]), int(parts[1])) >= (2, 13)
    except (ValueError, IndexError):
        newer = True
    return f"{drv}^*" if newer else drv


def _build_one(
    nix: Nix, name: str, drv: Derivation, nix_version: str, reporter: Reporter
) -> tuple[dict[str, str], str]:
    paths = [o.path for o in drv.outputs if o.path]
    already = nix.path_info(paths)
    deps_built = 0

    def on_line(line: str) -> None:
        nonlocal deps_built
        if line.startswith("building '") and drv.path not in line:
            deps_built += 1
        reporter.log_line(name, line)

    target = _installable(drv.path, nix_version)
    result = nix.build(target, options=HERMETIC_OPTIONS, on_line=on_line)
    output_check = BUILT
    if already:
        # It was valid before we built: we did not see it built. Prove it reproduces.
        reporter.info(f"{name}: output already in the store; rebuilding to check it reproduces")
        try:
            nix.build(target, rebuild=True, options=HERMETIC_OPTIONS, on_line=on_line)
        except NixError as e:
            msg = (
                f"check {name}: the output already in the store does not reproduce "
                f"in the sandbox ({e.message}); it may have been built unsandboxed or tampered with"
            )
            raise RefusedError(msg, f"delete it with `nix store delete {' '.join(paths)}` and rerun") from None
        output_check = REBUILT
    if deps_built:
        reporter.info(f"{name}: built {deps_built} dependency derivation(s)")
    return result.outputs, output_check


def _hash_outputs(nix: Nix, name: str, outputs: dict[str, str]) -> dict[str, tuple[str, str]]:
    infos = nix.path_info(outputs.values())
    hashed: dict[str, tuple[str, str]] = {}
    for out, path in sorted(outputs.items()):
        ours = nar_sha256(path)
        theirs = infos.get(path)
        if theirs is None or theirs.nar_hash != ours:
            msg = f"check {name}: output {path} does not match the NAR hash nix recorded"
            raise RefusedError(msg, f"the store may be corrupt; run `nix store verify {path}`")
        hashed[out] = (path, ours)
    return hashed


def build(req: BuildRequest, nix: Nix, reporter: Reporter | None = None) -> BuildReport:
    """Attest the flake's checks at HEAD. See the module docstring for the order of steps."""
    reporter = reporter or Reporter()
    git, top, commit, subdir, dirty_files = _repo_state(req, reporter)
    dirty = bool(dirty_files)
    ref = _flake_ref(top, commit, subdir, dirty)
    system = current_system()
    drvs = nix.check_drv_paths(ref, system, list(req.checks) if req.checks else None)
    names = sorted(drvs)

    hits = {} if (req.force or dirty) else _cached(git, commit, drvs, req.signer)
    for name in hits:
        via = hits[name][1].via
        where = f"cache hit via {via[:12]}, same drvPath" if via else "cache hit"
        reporter.info(f"{name}: already attested for {drvs[name]} ({where})")
    todo = [n for n in names if n not in hits]

    lines: list[str] = []
    results: dict[str, CheckResult] = {n: hits[n][1] for n in hits}
    lines += [hits[n][0] for n in sorted(hits)]
    if todo:
        lines += _attest(nix, req, reporter, git, top, ref, commit, subdir, dirty_files, system,
                         {n: drvs[n] for n in todo}, results)

    bundle_path = None
    note_attached = False
    if lines:
        bundle_path = req.output or (req.flake_dir.resolve() / BUNDLE_DIR / f"{commit}.intoto.jsonl")
        _ensure_ignored(bundle_path)
        bundle.write_atomic(bundle_path, ("\n".join(lines) + "\n").encode())
        if dirty:
            reporter.warn("dirty tree: the bundle is written but not attached to the commit as a note")
        elif req.attach_note:
            git.add_note_lines(commit, lines)
            note_attached = True
    report = BuildReport(
        commit=commit,
        dirty=dirty,
        system=system,
        keyid=req.signer.keyid,
        checks=tuple(results[n] for n in names),
        bundle_path=bundle_path,
        note_attached=note_attached,
    )
    if report.failed:
        failed = ", ".join(c.name for c in report.failed)
        msg = f"check(s) failed: {failed}" + ("; the others were attested" if lines else "")
        raise BuildFailedError(msg, "see the log above; failed checks are never attested")
    return report


def _ensure_ignored(bundle_path: Path) -> None:
    # A self-ignoring default directory: bundles never show up as untracked files.
    if bundle_path.parent.name == BUNDLE_DIR:
        ignore = bundle_path.parent / ".gitignore"
        if not ignore.exists():
            bundle.write_atomic(ignore, b"*\n")


def _attest(
    nix: Nix,
    req: BuildRequest,
    reporter: Reporter,
    git: Git,
    top: Path,
    ref: str,
    commit: str,
    subdir: str,
    dirty_files: Iterable[str],
    system: str,
    drvs: dict[str, str],
    results: dict[str, CheckResult],
) -> list[str]:
    config = nix.config(HERMETIC_OPTIONS)
    if not config.hermetic:
        msg = (
            f"nix reports sandbox={config.sandbox}, sandbox-fallback={config.sandbox_fallback}: "
            "builds would not be hermetic"
        )
        raise RefusedError(msg, "enable `sandbox = true` and `sandbox-fallback = false` in nix.conf")
    nix_version = nix.version()
    meta = nix.flake_metadata(ref)
    src = SourceInfo(
        flake_ref=ref,
        repo_url=f"git+file://{top}",
        commit=commit,
        subdir=subdir,
        dirty=bool(list(dirty_files)),
        dirty_files=tuple(dirty_files),
        metadata=meta,
    )
    closure = nix.derivations(drvs.values(), recursive=True)
    fods = _refuse_impure(closure)
    infos = {i.path: i for i in nix.closure_info(drvs.values())}

    lines: list[str] = []
    for name, drv_path in sorted(drvs.items()):
        drv = closure[drv_path]
        reporter.info(f"{name}: building {drv_path}")
        started = _now()
        try:
            outputs, output_check = _build_one(nix, name, drv, nix_version, reporter)
        except NixError as e:
            tail = [ln for ln in e.stderr.splitlines() if ln.strip()][-15:]
            for ln in tail:
                reporter.log_line(name, ln)
            reporter.info(f"{name}: FAILED ({e.message})")
            results[name] = CheckResult(name, drv_path, "failed", error=e.message)
            continue
        finished = _now()
        hashed = _hash_outputs(nix, name, outputs)
        log = nix.log(drv_path)
        log_sha = sha256_hex(log) if log is not None else None
        if log_sha is None:
            reporter.warn(f"{name}: nix kept no build log; the statement has no log byproduct")
        check = BuiltCheck(
            name=name,
            attribute=f"checks.{system}.{name}",
            drv=drv,
            outputs=hashed,
            output_check=output_check,
            log_sha256=log_sha,
            closure=_closure_of(drv_path, infos),
            fixed_output_drvs=fods,
            started_on=started,
            finished_on=finished,
            invocation_id=str(uuid.uuid4()),
        )
        stmt = provenance_statement(check, src, config, nix_version)
        envelope = dsse.sign(stmt.dump_bytes(), [req.signer])
        lines.append(envelope.to_json())
        results[name] = CheckResult(
            name,
            drv_path,
            "attested",
            {o: {"path": p, "sha256": h} for o, (p, h) in hashed.items()},
            output_check,
            log_sha,
        )
        reporter.info(f"{name}: OK, attested {len(hashed)} output(s) [{output_check}]")
    return lines
