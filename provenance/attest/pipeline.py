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

This module keeps the order (`build`), the git state and flake ref (steps 1-2), and the
writing of the bundle and the note (step 7). The note cache is cache.py (step 3);
refusing, building, hashing and signing what is not cached is checks.py (steps 4-7); the
request and report types are report.py, re-exported here for callers
(`from provenance.attest import pipeline as attest`, then `attest.build(...)`).
"""

from __future__ import annotations

from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from provenance.attest import bundles
from provenance.attest.cache import NotesRead, OwnLines, cached, read_notes
from provenance.attest.prefetch import Prefetch
from provenance.attest.report import (
    BUILT,
    REBUILT,
    Builder,
    BuildReport,
    BuildRequest,
    CheckResult,
    ChecksFailedError,
    Source,
)
from provenance.doors.git import Git
from provenance.doors.nix import Nix, current_system
from provenance.doors.selection import EvaluatedCheck
from provenance.errors import RefusedError, UsageError
from provenance.formats import bundle
from provenance.formats.claims import CLOSURE_AUTO, CLOSURE_LISTINGS
from provenance.formats.keys import PublicKey
from provenance.formats.uris import flake_subdir, git_file_flake
from provenance.policy.definition import Definitions, describe
from provenance.progress import Reporter

__all__ = [
    "BUILT",
    "BUNDLE_DIR",
    "REBUILT",
    "BuildReport",
    "BuildRequest",
    "Builder",
    "CheckResult",
    "ChecksFailedError",
    "build",
    "working_copy",
    "write_outputs",
]

# internalParameters.outputCheck (report.py; realise.py decides which)
BUNDLE_DIR = ".provenance"  # default bundle location, relative to the flake directory


def working_copy(
    flake_dir: Path, reporter: Reporter, *, allow_dirty: bool = False
) -> tuple[Git, Path, str, str, tuple[str, ...]]:
    """(git, top, HEAD, the flake's subdir, modified files) of the flake's repository.

    Refuses a dirty tree unless `allow_dirty`, and warns about untracked files under the
    flake (Nix leaves them out). `build --service` runs the same checks on the client.
    """
    given, flake_dir = flake_dir, flake_dir.resolve()
    if not flake_dir.is_dir():
        msg = f"{given} is not a directory"
        raise UsageError(msg)
    if not (flake_dir / "flake.nix").is_file():
        msg = f"{given} is not a flake (no flake.nix)"
        raise UsageError(msg, "run in a directory with a flake.nix, or pass it as FLAKE_DIR")
    git = Git(flake_dir)
    top, commit = git.head()
    status = git.status()
    subdir = flake_subdir(flake_dir, top)
    if status.dirty and not allow_dirty:
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
    # Percent-encoded (uris.py): a `#` or `?` in the path would otherwise cut the URL.
    return git_file_flake(str(top), rev=None if dirty else commit, subdir=subdir)


def _evaluate(
    nix: Nix, req: BuildRequest, top: Path, commit: str, subdir: str, dirty_files: tuple[str, ...]
) -> tuple[dict[str, EvaluatedCheck], Source]:
    """Step 2: the checks' drvPaths at the commit (clean: and the flake's metadata)."""
    ref = _flake_ref(top, commit, subdir, bool(dirty_files))
    names = list(req.checks) if req.checks else None
    if dirty_files:  # a work tree is not a locked ref: evaluated as an installable
        return nix.eval_checks(ref, current_system(), names), Source(
            top, ref, commit, subdir, dirty_files
        )
    evaluated, meta = nix.eval_pinned(ref, current_system(), names, subdir)
    return evaluated, Source(top, ref, commit, subdir, dirty_files, meta)


def _read_notes(git: Git, commit: str, req: BuildRequest, prefetch: Prefetch) -> NotesRead:
    read = read_notes(git, commit, req.signer.keyid, ancestors=not req.force)
    if not read.mention(req.signer.keyid):
        prefetch.start()  # no line of this key's: no cache hit, a build is certain
    return read


def build(req: BuildRequest, nix: Nix, reporter: Reporter | None = None) -> BuildReport:
    """Attest the flake's checks at HEAD. See the module docstring for the order of steps."""
    reporter = reporter or Reporter()
    if req.closure not in (CLOSURE_AUTO, *CLOSURE_LISTINGS):
        msg = f"--closure {req.closure!r} is not one of auto, {', '.join(CLOSURE_LISTINGS)}"
        raise UsageError(msg, "pass --closure auto, full (every path) or digest")
    git, top, commit, subdir, dirty_files = working_copy(
        req.flake_dir, reporter, allow_dirty=req.allow_dirty
    )
    dirty = bool(dirty_files)
    system = current_system()
    with ThreadPoolExecutor(max_workers=6) as pool:
        # The notes are read while nix evaluates. When they hold no line of this key's (or
        # with --force), nothing can be a cache hit, and the nix facts a build needs are
        # asked during the eval as well (prefetch.py).
        prefetch = Prefetch(pool, nix)
        notes_f = None if dirty else pool.submit(_read_notes, git, commit, req, prefetch)
        if dirty or req.force:
            prefetch.start()
        evaluated, src = _evaluate(nix, req, top, commit, subdir, tuple(dirty_files))
        drvs = {n: c.drv_path for n, c in evaluated.items()}
        names = sorted(drvs)

        own = (
            OwnLines()
            if notes_f is None
            else cached(
                git,
                commit,
                drvs,
                req.signer,
                ancestors=not req.force,
                definitions=Definitions(git, commit, subdir),
                read=notes_f.result(),
            )
        )
        hits = {} if req.force else {n: found[0] for n, found in own.provenance.items()}
        for name, (at, changed) in sorted(own.redefined.items()):
            reporter.info(
                f"{name}: attested on {at[:12]} for the same drvPath, but what defines the "
                f"checks changed since ({describe(changed)}): attesting it again"
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
            # The reused test-result statement's counts, so a cache hit reports what was proven.
            counts = [own.test_counts[ln] for ln in reused if ln in own.test_counts]
            if counts:
                results[n] = replace(hit, tests=counts[0])
            if hit.via:
                ancestors.update(reused)
        if todo:
            # Imported only now: a cache hit never needs the build steps (~10 ms).
            from provenance.attest.checks import attest_checks  # noqa: PLC0415

            lines += attest_checks(
                pool,
                prefetch.start(),
                nix,
                req,
                reporter,
                src,
                system,
                {n: evaluated[n] for n in todo},
                results,
            )

    own_lines = [ln for ln in lines if ln not in ancestors]
    bundle_path, note_attached = write_outputs(
        git,
        req.flake_dir,
        commit,
        req.signer.public,
        lines,
        own_lines if req.attach_note and not dirty else [],
        superseded,
        output=req.output,
        dirty=dirty,
        # else: every line was read from this commit's note just now; nothing to add
        changed=bool(todo or superseded),
    )
    if dirty and lines:
        reporter.warn("dirty tree: the bundle is written but not attached to the commit as a note")
    report = BuildReport(
        commit=commit,
        dirty=dirty,
        system=system,
        keyid=req.signer.keyid,
        checks=tuple(results[n] for n in names),
        bundle_path=bundle_path,
        note_attached=note_attached,
        lines=tuple(lines),
        note_lines=tuple(own_lines) if not dirty else (),
        superseded=tuple(sorted(superseded)),
    )
    if report.failed:
        failed = ", ".join(c.name for c in report.failed)
        msg = f"check(s) failed: {failed}" + ("; the others were attested" if lines else "")
        raise ChecksFailedError(msg, "see the log above; failed checks are never attested", report)
    return report


def write_outputs(
    git: Git,
    flake_dir: Path,
    commit: str,
    key: PublicKey,
    lines: list[str],
    note_lines: list[str],
    drop: Collection[str],
    *,
    output: Path | None = None,
    dirty: bool = False,
    changed: bool = True,
) -> tuple[Path | None, bool]:
    """Step 7: merge `lines` (signed by `key`) into the bundle, then union `note_lines` into
    the note on commit.

    The bundle is `output`, else per commit and key in the flake's `.provenance/`, a dirty
    tree's apart (bundles.py). Returns (the bundle's path, or None when there was nothing to
    write; whether the note holds the lines). `changed=False` says the lines were all read
    from that note just now (a repeated cache hit), so it is not rewritten. `build
    --service` writes what the service returns through this too.
    """
    if not lines:
        return None, False
    bundle_dir = flake_dir.resolve() / BUNDLE_DIR
    bundle_path = output or bundle_dir / bundles.default_name(commit, key.keyid, dirty)
    _ensure_ignored(bundle_path)
    legacy = None if output else bundle_dir / bundles.legacy_name(commit)
    bundles.write(bundle_path, lines, key, legacy)
    if dirty or not note_lines:
        return bundle_path, False
    if changed:
        git.add_note_lines(commit, note_lines, drop=drop)
    return bundle_path, True


def _ensure_ignored(bundle_path: Path) -> None:
    # A self-ignoring default directory: bundles never show up as untracked files.
    if bundle_path.parent.name == BUNDLE_DIR:
        ignore = bundle_path.parent / ".gitignore"
        if not ignore.exists():
            bundle.write_atomic(ignore, b"*\n")
