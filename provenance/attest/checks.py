"""Attest the checks that are not cache hits: steps 4 to 7 of pipeline.py, short of writing.

Establish the Nix environment (nixenv.py) and refuse what escapes the sandbox
(`__noChroot`, impure derivations, a fixed-output check); build each check there
(realise.py); hash every output ourselves and cross-check nix's narHash; read the test
results and sign nothing for a check whose results say a test failed; vouch for the
dependencies on request (`--verify-deps`); sign one provenance statement (and one
test-result statement) per check. Returns the signed lines; pipeline.py writes them.

Apart from pipeline.py because this is the only part that runs builds and writes the
statements (plain JSON, formats/plainjson.py: loaded only once there is something to
attest, so a cache hit never pays for them).
"""

from __future__ import annotations

import datetime as dt
import os
import time
from concurrent.futures import ThreadPoolExecutor

from provenance.attest import realise
from provenance.attest.closure import Closure, closure_of
from provenance.attest.prefetch import NixFacts
from provenance.attest.report import BuildRequest, CheckResult, Source
from provenance.doors import buildlog, storeroot
from provenance.doors.drvfile import DrvFlags, read_drv_closure_flags
from provenance.doors.nix import FlakeMetadata, Nix, PathInfo
from provenance.doors.selection import EvaluatedCheck
from provenance.doors.storeroot import StoreRoot
from provenance.errors import NixError, RefusedError
from provenance.formats import dsse
from provenance.formats.claims import CLOSURE_AUTO, CLOSURE_DIGEST, CLOSURE_FULL
from provenance.formats.hashing import nar_sha256, sha256_hex
from provenance.formats.uris import git_file_flake
from provenance.policy import nixenv
from provenance.progress import Reporter


def _metadata(nix: Nix, src: Source) -> FlakeMetadata:
    return src.metadata if src.metadata is not None else nix.flake_metadata(src.ref)


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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


def _log(nix: Nix, drv_path: str, since: float | None) -> bytes | None:
    """The build log: read from the store's log directory when that is surely this build's
    log as `nix log` prints it (buildlog.py), else from `nix log`."""
    found = buildlog.fresh_log(drv_path, since) if since is not None else None
    return found if found is not None else nix.log(drv_path)


# `--closure auto` lists every path while the statement stays a few MB, else the digest:
# a listing estimated from its store paths' lengths (about 140 bytes of JSON around each
# path, written twice, and base64's 4/3), kept well under dsse.MAX_ENVELOPE_BYTES.
AUTO_FULL_MAX_BYTES = 8 * 1024 * 1024


def _listing(asked: str, closure: list[PathInfo]) -> str:
    if asked != CLOSURE_AUTO:
        return asked
    estimate = sum(2 * len(p.path) + 140 for p in closure) * 4 // 3
    return CLOSURE_FULL if estimate <= AUTO_FULL_MAX_BYTES else CLOSURE_DIGEST


def _hash_outputs(
    nix: Nix,
    name: str,
    outputs: dict[str, str],
    pool: ThreadPoolExecutor,
    where: StoreRoot,
    recorded: dict[str, PathInfo] | None = None,
) -> dict[str, tuple[str, str]]:
    """Our own NAR hash of each output, refused unless it is the narHash nix recorded.

    Ours is of the files nix built: in a chroot store not at the store path, which may
    not exist or be the host store's copy of it (storeroot.py). `recorded`: nix's
    path-info from before a rebuild that passed. A passing `--rebuild` leaves the valid
    path and its registration as they were (it only compares), so the narHash read then
    is still the one nix records: no second query.
    """
    theirs_f = pool.submit(nix.path_info, outputs.values()) if recorded is None else None
    ours = {out: nar_sha256(where.physical(path)) for out, path in outputs.items()}
    theirs = theirs_f.result() if theirs_f is not None else recorded or {}
    hashed: dict[str, tuple[str, str]] = {}
    for out, path in sorted(outputs.items()):
        info = theirs.get(path)
        if info is None or info.nar_hash != ours[out]:
            msg = f"check {name}: output {path} does not match the NAR hash nix recorded"
            raise RefusedError(msg, f"the store may be corrupt; run `nix store verify {path}`")
        hashed[out] = (path, ours[out])
    return hashed


def attest_checks(
    pool: ThreadPoolExecutor,
    facts: NixFacts,
    nix: Nix,
    req: BuildRequest,
    reporter: Reporter,
    src: Source,
    system: str,
    checks: dict[str, EvaluatedCheck],
    results: dict[str, CheckResult],
) -> list[str]:
    # What needs the drvPaths, side by side (what does not was asked during the eval:
    # prefetch.py); the .drv walk reads files, no nix call.
    drv_paths = [c.drv_path for c in checks.values()]
    meta_f = pool.submit(_metadata, nix, src)
    valid_f = pool.submit(nix.path_info, [p for c in checks.values() for p in c.outputs.values()])
    walked_f = pool.submit(read_drv_closure_flags, drv_paths)
    nix_version = facts.version.result()

    config = facts.config.result()
    env = nixenv.establish(nix, config, facts.store.result())
    where = storeroot.locate(config.values.get("store"))
    user = facts.user.result()
    if env.enforcement != nixenv.DAEMON_CONF and user is not None:
        for warning in nixenv.switched_off(user):
            reporter.warn(warning)
    # Refused before anything is built, on the .drv files' own word (closure.py). The
    # walk read them at their store paths; a chroot store has them elsewhere.
    relocated = where.real is not None
    walked = read_drv_closure_flags(drv_paths, where.physical) if relocated else walked_f.result()
    closure = Closure(pool, nix, drv_paths, walked)
    for name, check in sorted(checks.items()):
        if check.drv_path in closure.fods:
            msg = (
                f"check {name} is a fixed-output derivation: it has network access in the "
                "sandbox, and only its declared output hash is checked, so it says nothing "
                "about the tests of this commit"
            )
            raise RefusedError(msg, "make the check an ordinary derivation (fetch in a dependency)")
    valid = valid_f.result()
    local_logs = buildlog.default_local_store(
        nix.store,
        env.config.values.get("store"),
        facts.store.result().local,
        os.environ if nix.env is None else nix.env,
    )

    lines: list[str] = []
    for name, check in sorted(checks.items()):
        drv_path = check.drv_path
        reporter.info(f"{name}: building {drv_path}")
        started, since = _now(), time.time()
        inputs = closure.flags[drv_path].input_drvs if drv_path in closure.flags else ()
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
        log_f = pool.submit(_log, nix, drv_path, since if local_logs else None)
        facts.imported.result()  # loaded during the eval and the build: needed from here
        from uuid import uuid4  # noqa: PLC0415

        from provenance.attest import lognorm, testresults  # noqa: PLC0415
        from provenance.attest.statement import (  # noqa: PLC0415
            BuiltCheck,
            SourceInfo,
            provenance_statement,
            source_descriptor,
        )

        # Every evaluated output, by name and path, is hashed and becomes a subject.
        # Valid before and rebuilt-and-compared: nix's record is what it was (_hash_outputs).
        was_valid = output_check == realise.REBUILT and all(p in valid for p in outputs.values())
        recorded = valid if was_valid else None
        hashed = _hash_outputs(nix, name, outputs, pool, where, recorded)
        log = log_f.result()
        tested, why = testresults.read_for_check(
            hashed, log, name, reporter, drv_path, where.physical
        )
        if why is not None:
            # The build passed but its results say tests failed, or cannot be trusted
            # (unreadable, contradicted by the log): nothing is signed for it, exactly
            # as for a failing build.
            reporter.info(f"{name}: FAILED ({why})")
            results[name] = CheckResult(name, drv_path, "failed", error=why)
            continue
        infos = closure.infos()  # awaited only now: the query ran during the build
        deps = closure_of(drv_path, infos)
        dependency_check = _check_dependencies(nix, drv_path, deps, closure.flags, req.verify_deps)
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
            closure=deps,
            dependency_check=dependency_check,
            fixed_output_drvs=closure.fods,
            started_on=started,
            finished_on=finished,
            invocation_id=str(uuid4()),
            log_normalised_sha256=lognorm.normalised_sha256(log) if log is not None else None,
            closure_listing=_listing(req.closure, deps),
        )
        source = SourceInfo(
            flake_ref=src.ref,
            repo_url=git_file_flake(str(src.top)),
            commit=src.commit,
            subdir=src.subdir,
            dirty=bool(src.dirty_files),
            dirty_files=src.dirty_files,
            metadata=meta_f.result(),
        )
        stmt = provenance_statement(built, source, env.record(nix_version), req.builder)
        envelope = dsse.sign(stmt.dump_bytes(), [req.signer]).to_json()
        if len(envelope) > dsse.MAX_ENVELOPE_BYTES:
            msg = (
                f"check {name}: listing all {len(deps)} paths of its closure makes a "
                f"{len(envelope):,}-byte statement, over the {dsse.MAX_ENVELOPE_BYTES:,}-byte "
                "envelope limit of gate and verify"
            )
            raise RefusedError(msg, "attest it with --closure digest (or auto, the default)")
        lines.append(envelope)
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
                    source_descriptor(source),
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
