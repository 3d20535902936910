"""`provenance build`: evaluate once, build hermetically, hash, sign, write, attach.

Order matters for honesty:
1. read the key and the git state first (cheap refusals before any nix work);
2. evaluate the checks at the exact commit (`git+file://REPO?rev=COMMIT`) to drvPaths,
   once; everything after works on those drvPaths, never on the flake again;
3. a note on the commit (or one of the 49 before it, when nothing that defines the checks
   changed in between: definition.py) that already attests the same drvPath with the
   same key is a cache hit: nothing is built;
4. refuse what cannot be attested honestly (no sandbox, hooks or sandbox paths we cannot
   switch off: nixenv.py; `__noChroot`, impure drvs, a fixed-output check);
5. build in that environment (realise.py); any output that was already valid, or that
   nix did not build here in this call, is rebuilt and compared (`--rebuild`): it may have
   been built unsandboxed, placed by hand, downloaded or tampered with;
6. hash outputs ourselves (NAR SHA-256) and cross-check nix's narHash; read the test
   results, and sign nothing for a check whose results say a test failed;
7. sign, write the bundle atomically, union it into the git note.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from provenance.attest import realise
from provenance.doors.drvfile import DrvFlags, read_drv_closure_flags
from provenance.doors.git import Git
from provenance.doors.nix import Nix, PathInfo, current_system
from provenance.doors.notes import DEFAULT_SEARCH_DEPTH, history_notes
from provenance.doors.selection import EvaluatedCheck
from provenance.errors import (
    AttestationError,
    BuildFailedError,
    NixError,
    RefusedError,
    UsageError,
    VerificationError,
)
from provenance.formats import bundle, dsse
from provenance.formats.claims import load_statement, parse_provenance, test_result_binding
from provenance.formats.hashing import nar_sha256, sha256_hex
from provenance.formats.keys import Signer
from provenance.policy import nixenv
from provenance.policy.definition import Definitions, describe
from provenance.progress import Reporter

if TYPE_CHECKING:  # imported where used: ~25 ms the cache-hit path does not need
    from concurrent.futures import ThreadPoolExecutor

BUILT, REBUILT = realise.BUILT, realise.REBUILT  # internalParameters.outputCheck
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
    verify_deps: bool = False  # `nix store verify` the dependency outputs and sources first


@dataclass(frozen=True)
class CheckResult:
    name: str
    drv_path: str
    status: str  # "attested" | "cached" | "failed"
    outputs: dict[str, dict[str, str]] = field(default_factory=dict)  # out -> {path, sha256}
    output_check: str | None = None
    log_sha256: str | None = None
    error: str | None = None
    tests: dict[str, object] | None = None  # test results, when the check left any
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
                    **({"tests": c.tests} if c.tests else {}),
                    **({"reusedFrom": c.via} if c.via else {}),
                }
                for c in self.checks
            ],
        }


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _repo_state(
    req: BuildRequest, reporter: Reporter
) -> tuple[Git, Path, str, str, tuple[str, ...]]:
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
        raise RefusedError(
            msg, "commit them, or pass --allow-dirty to attest a dirty tree (labelled so)"
        )
    prefix = f"{subdir}/" if subdir else ""
    invisible = [
        p
        for p in status.untracked
        if p.startswith(prefix) and not p.startswith(f"{prefix}{BUNDLE_DIR}/")
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


@dataclass
class _OwnLines:
    """This key's statements already in the notes, per check name, newest commit first."""

    provenance: dict[str, list[tuple[str, CheckResult]]] = field(default_factory=dict)
    test_results: dict[str, list[tuple[str, str | None]]] = field(default_factory=dict)
    cosigned: set[str] = field(default_factory=set)  # lines another key signed too
    # Ancestors' lines for the same drvPath, not reused because what defines the checks
    # changed since: check name -> (that commit, the changed paths).
    redefined: dict[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)
    # This commit's lines that gate and verify would not believe (an older tool's, without
    # the recorded settings): never a cache hit, and replaced when the check is re-attested.
    stale: dict[str, list[str]] = field(default_factory=dict)

    def companions(self, name: str, commit: str | None) -> list[str]:
        """The test-result lines that go with the provenance line made on `commit`."""
        return [ln for ln, c in self.test_results.get(name, []) if c == commit]

    def on_commit(self, name: str, commit: str) -> list[str]:
        """This key's own lines for the check on `commit`, which --force may replace.

        A line someone else co-signed is theirs too, so it is never dropped.
        """
        prov = [ln for ln, r in self.provenance.get(name, []) if r.via is None]
        prov += self.stale.get(name, [])
        return [ln for ln in prov + self.companions(name, commit) if ln not in self.cosigned]


def _cached(
    git: Git,
    commit: str,
    drvs: dict[str, str],
    signer: Signer,
    depth: int = DEFAULT_SEARCH_DEPTH,
    *,
    ancestors: bool = True,
    definitions: Definitions | None = None,
) -> _OwnLines:
    """Lines in which this key already attested a check's drvPath.

    On this commit or, since the drvPath pins every input, on one of its last `depth`
    commits (a README-only change keeps the drvPaths): the same bound as `gate`, and as
    there only when nothing that defines the checks differs (`definitions`). The
    first provenance line per check (this commit's before an ancestor's) is a cache hit,
    and its test-result companion rides along into the bundle. With --force
    (`ancestors=False`) this commit's lines for the check are superseded by the new
    statements and dropped from its note; other keys' and other checks' lines are kept.
    """
    own = _OwnLines()
    wanted = {drv: name for name, drv in drvs.items()}
    seen: set[str] = set()
    # This commit's note first: one git call, and on a repeated cache hit the only one.
    _scan_note(own, git.note(commit) or b"", {commit}, commit, wanted, signer, seen)
    if not ancestors or set(own.provenance) >= set(drvs):
        return own
    window, notes = history_notes(git, commit, depth)
    for _, note in notes:  # newest commit first
        _scan_note(own, note, set(window), commit, wanted, signer, seen)
    if definitions is not None:
        _keep_same_definition(own, definitions)
    return own


def _keep_same_definition(own: _OwnLines, definitions: Definitions) -> None:
    """Drop ancestors' hits made for another definition of the checks (definition.py)."""
    for name, found in list(own.provenance.items()):
        kept: list[tuple[str, CheckResult]] = []
        dropped: list[str] = []
        for line, result in found:
            if result.via is None or definitions.same_as(result.via):
                kept.append((line, result))
            else:
                dropped.append(result.via)
        if dropped and not kept:
            own.redefined[name] = (dropped[0], definitions.changes_since(dropped[0]))
        if kept:
            own.provenance[name] = kept
        else:
            del own.provenance[name]


def _scan_note(
    own: _OwnLines,
    note: bytes,
    in_window: set[str],
    commit: str,
    wanted: dict[str, str],
    signer: Signer,
    seen: set[str],
) -> None:
    # Lines are split on b"\n" only, as everywhere notes are read (U+2028 in a JSON
    # string is not a line break); a line that is not UTF-8 cannot be one of ours.
    for line in (raw.decode(errors="replace") for raw in note.split(b"\n")):
        # keyid is only a hint, but a line without ours cannot count as ours here, and
        # skipping it saves parsing other signers' (large) statements.
        if signer.keyid not in line or line in seen:
            continue
        try:
            env = dsse.Envelope.from_json(line)
            stmt = load_statement(dsse.verify(env, [signer.public]).payload)
            if len(env.signatures) > 1:
                own.cosigned.add(line)
            if (bound := test_result_binding(stmt)) is not None:
                name = wanted.get(bound[0])
                if name is not None:
                    seen.add(line)
                    own.test_results.setdefault(name, []).append((line, bound[1]))
                continue
            claim = parse_provenance(stmt)
        except (AttestationError, VerificationError):
            continue  # other keys' lines, other predicates, or junk: not ours to judge
        name = wanted.get(claim.drv_path)
        if name is None or claim.dirty or claim.commit not in in_window:
            continue
        if nixenv.recorded_problem(claim.internal, _ANY_SANDBOX_PATHS) is not None:
            if claim.commit == commit:
                own.stale.setdefault(name, []).append(line)
            continue  # gate and verify would not believe it: build again
        seen.add(line)
        outputs = {
            claim.output_names[p]: {"path": p, "sha256": d} for p, d in claim.subjects.items()
        }
        via = None if claim.commit == commit else claim.commit
        result = CheckResult(name, claim.drv_path, "cached", outputs, claim.output_check, via=via)
        own.provenance.setdefault(name, []).append((line, result))


# Sandbox paths are the policy's to allow (gate, verify); every other recorded setting must
# hold for a line to count as a cache hit.
_ANY_SANDBOX_PATHS = nixenv.EnvironmentPolicy(allowed_sandbox_paths=None)


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


def _check_dependencies(
    nix: Nix, drv_path: str, closure: list[PathInfo], flags: dict[str, DrvFlags], verify: bool
) -> str:
    """How far the check's dependency outputs and sources are vouched for.

    Only the check's own outputs are built (or rebuilt and compared) by us. What it
    builds on is pinned by the drv hash but taken from the store as it is; with
    --verify-deps, `nix store verify` first proves each one's contents still match the
    hash the store recorded *and* that this store built it (`ultimate`), a trusted key
    signed it, or it is content-addressed. A path placed by hand and registered with the
    hash of its fake contents fails the second part. It proves no more than that: not
    that a dependency was built in a sandbox.
    """
    if not verify:
        return "taken-from-store"
    sources = [p.path for p in closure if not p.path.endswith(".drv")]
    outputs = [
        out
        for p in closure
        if p.path.endswith(".drv") and p.path != drv_path and p.path in flags
        for out in flags[p.path].outputs
    ]
    # Only what is in the store: a build-only dependency may have been collected since,
    # and an unused output of a multi-output dependency never built. Neither was read.
    paths = sorted(nix.path_info(sources + outputs))

    found = nix.verify_store(paths)
    if found.modified:
        msg = f"a dependency in the store does not match its recorded hash: {found.modified[0]}"
        raise RefusedError(msg, "repair it with `nix store repair PATH`, or delete it and rerun")
    if found.untrusted:
        msg = (
            f"a dependency in the store was neither built by this store nor signed by a "
            f"trusted key: {found.untrusted[0]}"
        )
        raise RefusedError(msg, "delete it (`nix store delete PATH`) and rerun to build it")
    return "verified-local-or-signed"


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


def _hash_outputs(
    nix: Nix, name: str, outputs: dict[str, str], pool: ThreadPoolExecutor
) -> dict[str, tuple[str, str]]:
    # nix's recorded narHash and our own NAR hash are computed side by side.
    theirs_f = pool.submit(nix.path_info, outputs.values())
    ours = {out: nar_sha256(path) for out, path in outputs.items()}
    theirs = theirs_f.result()
    hashed: dict[str, tuple[str, str]] = {}
    for out, path in sorted(outputs.items()):
        info = theirs.get(path)
        if info is None or info.nar_hash != ours[out]:
            msg = f"check {name}: output {path} does not match the NAR hash nix recorded"
            raise RefusedError(msg, f"the store may be corrupt; run `nix store verify {path}`")
        hashed[out] = (path, ours[out])
    return hashed


def build(req: BuildRequest, nix: Nix, reporter: Reporter | None = None) -> BuildReport:
    """Attest the flake's checks at HEAD. See the module docstring for the order of steps."""
    reporter = reporter or Reporter()
    git, top, commit, subdir, dirty_files = _repo_state(req, reporter)
    dirty = bool(dirty_files)
    ref = _flake_ref(top, commit, subdir, dirty)
    system = current_system()
    evaluated = nix.eval_checks(ref, system, list(req.checks) if req.checks else None)
    drvs = {n: c.drv_path for n, c in evaluated.items()}
    names = sorted(drvs)

    own = (
        _OwnLines()
        if dirty
        else _cached(
            git,
            commit,
            drvs,
            req.signer,
            ancestors=not req.force,
            definitions=Definitions(git, commit, subdir),
        )
    )
    hits = {} if req.force else {n: found[0] for n, found in own.provenance.items()}
    for name, (at, changed) in sorted(own.redefined.items()):
        reporter.info(
            f"{name}: attested on {at[:12]} for the same drvPath, but what defines the checks "
            f"changed since ({describe(changed)}): attesting it again"
        )
    superseded = {ln for n in names if n not in hits for ln in own.on_commit(n, commit)}
    for name in hits:
        via = hits[name][1].via
        where = f"cache hit via {via[:12]}, same drvPath" if via else "cache hit"
        reporter.info(f"{name}: already attested for {drvs[name]} ({where})")
    todo = [n for n in names if n not in hits]

    lines: list[str] = []
    # Lines reused from an ancestor go into the bundle but not onto this commit's note:
    # they are statements about that commit (verify binds a statement to its own commit).
    ancestors: set[str] = set()
    results: dict[str, CheckResult] = {n: hits[n][1] for n in hits}
    for n in sorted(hits):
        line, hit = hits[n]
        reused = [line, *own.companions(n, hit.via or commit)]
        lines += reused
        if hit.via:
            ancestors.update(reused)
    if todo:
        # Imported here: ~25 ms that a cache hit does not need (see TYPE_CHECKING).
        from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415

        with ThreadPoolExecutor(max_workers=6) as pool:
            lines += _attest(
                pool,
                nix,
                req,
                reporter,
                top,
                ref,
                commit,
                subdir,
                tuple(dirty_files),
                system,
                {n: evaluated[n] for n in todo},
                results,
            )

    bundle_path = None
    note_attached = False
    if lines:
        bundle_path = req.output or (
            req.flake_dir.resolve() / BUNDLE_DIR / f"{commit}.intoto.jsonl"
        )
        _ensure_ignored(bundle_path)
        data = ("\n".join(lines) + "\n").encode()
        if not _same_bytes(bundle_path, data):  # a repeated cache hit rewrites nothing
            bundle.write_atomic(bundle_path, data)
        if dirty:
            reporter.warn(
                "dirty tree: the bundle is written but not attached to the commit as a note"
            )
        elif req.attach_note and (own_lines := [ln for ln in lines if ln not in ancestors]):
            if todo or superseded:
                git.add_note_lines(commit, own_lines, drop=superseded)
            # else: every line was read from this commit's note just now; nothing to add
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
        raise ChecksFailedError(msg, "see the log above; failed checks are never attested", report)
    return report


class ChecksFailedError(BuildFailedError):
    """Some checks failed; carries the full report so callers can still record the run."""

    def __init__(self, message: str, hint: str | None, report: BuildReport) -> None:
        super().__init__(message, hint)
        self.report = report


def _same_bytes(path: Path, data: bytes) -> bool:
    try:
        return path.stat().st_size == len(data) and path.read_bytes() == data
    except OSError:
        return False


def _ensure_ignored(bundle_path: Path) -> None:
    # A self-ignoring default directory: bundles never show up as untracked files.
    if bundle_path.parent.name == BUNDLE_DIR:
        ignore = bundle_path.parent / ".gitignore"
        if not ignore.exists():
            bundle.write_atomic(ignore, b"*\n")


def _import_statement() -> None:
    # pydantic costs ~100 ms to import; only attesting needs it, so it loads in a thread
    # while the first nix calls run.
    import provenance.attest.statement  # noqa: PLC0415
    import provenance.attest.testresults  # noqa: F401, PLC0415


def _attest(
    pool: ThreadPoolExecutor,
    nix: Nix,
    req: BuildRequest,
    reporter: Reporter,
    top: Path,
    ref: str,
    commit: str,
    subdir: str,
    dirty_files: tuple[str, ...],
    system: str,
    checks: dict[str, EvaluatedCheck],
    results: dict[str, CheckResult],
) -> list[str]:
    # The nix queries below are independent of each other: run them side by side.
    imported = pool.submit(_import_statement)
    version_f = pool.submit(nix.version)  # picks the command names of config and store ping
    drv_paths = [c.drv_path for c in checks.values()]
    meta_f = pool.submit(nix.flake_metadata, ref)
    infos_f = pool.submit(nix.closure_info, drv_paths)
    valid_f = pool.submit(nix.path_info, [p for c in checks.values() for p in c.outputs.values()])
    walked_f = pool.submit(read_drv_closure_flags, drv_paths)  # no nix call: reads .drv files
    nix_version = version_f.result()
    config_f = pool.submit(nix.config, nixenv.forced_options())
    store_f = pool.submit(nix.store_info)
    user_f = pool.submit(nix.config)  # without our options: only to say what we switch off

    env = nixenv.establish(nix, config_f.result(), store_f.result())
    if env.enforcement != nixenv.DAEMON_CONF:
        for warning in nixenv.switched_off(user_f.result()):
            reporter.warn(warning)
    infos = {i.path: i for i in infos_f.result()}
    closure_drvs = [p for p in infos if p.endswith(".drv")]
    flags = walked_f.result() or {}
    if not set(closure_drvs) <= set(flags):  # the walk could not read everything: ask nix
        flags = nix.drv_flags(closure_drvs)
    fods = _refuse_impure(flags)
    for name, check in sorted(checks.items()):
        if check.drv_path in fods:
            msg = (
                f"check {name} is a fixed-output derivation: it has network access in the "
                "sandbox, and only its declared output hash is checked, so it says nothing "
                "about the tests of this commit"
            )
            raise RefusedError(msg, "make the check an ordinary derivation (fetch in a dependency)")
    imported.result()
    from uuid import uuid4  # noqa: PLC0415

    from provenance.attest import lognorm, testresults  # noqa: PLC0415
    from provenance.attest.statement import (  # noqa: PLC0415
        BuiltCheck,
        SourceInfo,
        provenance_statement,
        source_descriptor,
    )

    src = SourceInfo(
        flake_ref=ref,
        repo_url=f"git+file://{top}",
        commit=commit,
        subdir=subdir,
        dirty=bool(dirty_files),
        dirty_files=dirty_files,
        metadata=meta_f.result(),
    )
    valid = valid_f.result()

    lines: list[str] = []
    for name, check in sorted(checks.items()):
        drv_path = check.drv_path
        reporter.info(f"{name}: building {drv_path}")
        started = _now()
        own = infos.get(drv_path)
        inputs = [r for r in own.references if r.endswith(".drv")] if own else []
        try:
            done = realise.for_attestation(
                nix, env, name, drv_path, check.outputs, valid, inputs, nix_version, reporter
            )
        except NixError as e:
            tail = [ln for ln in e.stderr.splitlines() if ln.strip()][-15:]
            for ln in tail:
                reporter.log_line(name, ln)
            reporter.info(f"{name}: FAILED ({e.message})")
            results[name] = CheckResult(name, drv_path, "failed", error=e.message)
            continue
        finished = _now()
        outputs, output_check = done.outputs, done.how
        log_f = pool.submit(nix.log, drv_path)
        # Every evaluated output, by name and path, is hashed and becomes a subject.
        hashed = _hash_outputs(nix, name, outputs, pool)
        log = log_f.result()
        tested, why = testresults.read_for_check(hashed, log, name, reporter, drv_path)
        if why is not None:
            # The build passed but its results say tests failed, or cannot be trusted
            # (unreadable, contradicted by the log): nothing is signed for it, exactly
            # as for a failing build.
            reporter.info(f"{name}: FAILED ({why})")
            results[name] = CheckResult(name, drv_path, "failed", error=why)
            continue
        closure = _closure_of(drv_path, infos)
        dependency_check = _check_dependencies(nix, drv_path, closure, flags, req.verify_deps)
        log_sha = sha256_hex(log) if log is not None else None
        if log_sha is None:
            reporter.warn(f"{name}: nix kept no build log; the statement has no log byproduct")
        built = BuiltCheck(
            name=name,
            attribute=f"checks.{system}.{name}",
            drv_path=drv_path,
            system=system,
            outputs=hashed,
            output_check=output_check,
            log_sha256=log_sha,
            closure=closure,
            dependency_check=dependency_check,
            fixed_output_drvs=fods,
            started_on=started,
            finished_on=finished,
            invocation_id=str(uuid4()),
            log_normalised_sha256=lognorm.normalised_sha256(log) if log is not None else None,
        )
        stmt = provenance_statement(built, src, env.record(nix_version))
        envelope = dsse.sign(stmt.dump_bytes(), [req.signer])
        lines.append(envelope.to_json())
        # -- test results (provenance/testresults.py): one more statement, same bundle --
        if tested is not None:
            lines.append(
                testresults.sign_for_check(
                    tested,
                    stmt.subject,
                    built.attribute,
                    name,
                    drv_path,
                    infos.get(drv_path),
                    source_descriptor(src),
                    req.signer,
                )
            )
        results[name] = CheckResult(
            name,
            drv_path,
            "attested",
            {o: {"path": p, "sha256": h} for o, (p, h) in hashed.items()},
            output_check,
            log_sha,
            tests=tested.as_json() if tested else None,
        )
        reporter.info(f"{name}: OK, attested {len(hashed)} output(s) [{output_check}]")
    return lines
