"""Attest the checks that are not cache hits: steps 4 to 7 of pipeline.py, short of writing.

Establish the Nix environment (nixenv.py) and refuse what escapes the sandbox
(`__noChroot`, impure derivations, a fixed-output check); build each check there
(realise.py); hash every output ourselves and cross-check nix's narHash; read the test
results and sign nothing for a check whose results say a test failed; vouch for the
dependencies on request (`--verify-deps`); sign one provenance statement (and one
test-result statement) per check. Returns the signed lines; pipeline.py writes them.

Apart from pipeline.py because this is the only part that runs builds, uses the thread
pool and loads the statement models (pydantic, imported only once there is something to
attest: a cache hit never pays for them).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

from provenance.attest import realise
from provenance.attest.report import BuildRequest, CheckResult
from provenance.doors import storeroot
from provenance.doors.drvfile import DrvFlags, read_drv_closure_flags
from provenance.doors.nix import Nix, PathInfo
from provenance.doors.selection import EvaluatedCheck
from provenance.doors.storeroot import StoreRoot
from provenance.errors import NixError, RefusedError
from provenance.formats import dsse
from provenance.formats.hashing import nar_sha256, sha256_hex
from provenance.formats.uris import git_file_flake
from provenance.policy import nixenv
from provenance.progress import Reporter

if TYPE_CHECKING:  # imported where used: ~25 ms the cache-hit path does not need
    from concurrent.futures import ThreadPoolExecutor


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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
    nix: Nix, name: str, outputs: dict[str, str], pool: ThreadPoolExecutor, where: StoreRoot
) -> dict[str, tuple[str, str]]:
    # nix's recorded narHash and our own NAR hash are computed side by side. Ours is of
    # the files nix built: in a chroot store not at the store path, which may not exist
    # or be the host store's copy of it (storeroot.py).
    theirs_f = pool.submit(nix.path_info, outputs.values())
    ours = {out: nar_sha256(where.physical(path)) for out, path in outputs.items()}
    theirs = theirs_f.result()
    hashed: dict[str, tuple[str, str]] = {}
    for out, path in sorted(outputs.items()):
        info = theirs.get(path)
        if info is None or info.nar_hash != ours[out]:
            msg = f"check {name}: output {path} does not match the NAR hash nix recorded"
            raise RefusedError(msg, f"the store may be corrupt; run `nix store verify {path}`")
        hashed[out] = (path, ours[out])
    return hashed


def _import_statement() -> None:
    # pydantic costs ~100 ms to import; only attesting needs it, so it loads in a thread
    # while the first nix calls run.
    import provenance.attest.statement  # noqa: PLC0415
    import provenance.attest.testresults  # noqa: F401, PLC0415


def attest_checks(
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
    where = storeroot.locate(config_f.result().values.get("store"))
    if env.enforcement != nixenv.DAEMON_CONF:
        for warning in nixenv.switched_off(user_f.result()):
            reporter.warn(warning)
    infos = {i.path: i for i in infos_f.result()}
    closure_drvs = [p for p in infos if p.endswith(".drv")]
    # The walk read the .drv files at their store paths; a chroot store has them elsewhere.
    relocated = where.real is not None
    walked = read_drv_closure_flags(drv_paths, where.physical) if relocated else walked_f.result()
    flags = walked or {}
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
        repo_url=git_file_flake(str(top)),
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
        hashed = _hash_outputs(nix, name, outputs, pool, where)
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
        stmt = provenance_statement(built, src, env.record(nix_version), req.builder)
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
