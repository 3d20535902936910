"""Build a derivation here, in the environment nixenv establishes; count nothing else.

A build counts only when Nix says, in this call, that it builds that very derivation here:
`building '<drv>'...`, or `checking outputs of '<drv>'...` for a rebuild. A download,
another machine's build (`building '<drv>' on '<host>'`), or an output that became valid
meanwhile is not a build of ours. The derivation itself is never substituted
(nixenv: `substitute = false`); its dependencies may be, first, with the user's
substituters. Used by `build` (attest.py) and both rebuild paths of `verify --rebuild`
(reproduce.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from provenance.attest.report import BUILT, REBUILT
from provenance.doors.nix import BuildResult, Nix
from provenance.doors.nixlog import SubstitutionLog, substitution
from provenance.errors import NixError, RefusedError
from provenance.policy.nixenv import (
    BuildEnvironment,
    built_here,
    installable,
    nondeterministic_outputs,
    saw_build,
)
from provenance.progress import Reporter

# How an output came to be trusted (internalParameters.outputCheck): BUILT, REBUILT,
# defined in report.py (the shared types) and re-exported here.
__all__ = [
    "BUILT",
    "REBUILT",
    "Dependencies",
    "Realised",
    "build_here",
    "build_traced",
    "built_dependencies",
    "dependencies_built",
    "for_attestation",
    "rebuild_here",
]

OnLine = Callable[[str], None] | None


@dataclass(frozen=True)
class Dependencies:
    """Where a build's dependencies came from, read from nix's own lines, never guessed.

    A path counts as substituted when nix said it copied it from a cache, did not reject
    it, and the store then holds it as not built here (`ultimate` false); a refused
    substitute (signed by no trusted key, or a NAR that does not match its hash) is named
    with its cache, and what nix built instead is listed as built.
    """

    substituted: Mapping[str, str] = field(default_factory=dict)  # store path -> cache URL
    built: tuple[str, ...] = ()  # dependency derivations nix built here
    refused: Mapping[str, str] = field(default_factory=dict)  # store path -> cache and why
    unreachable: Mapping[str, str] = field(default_factory=dict)  # cache URL -> nix's error
    caches: tuple[str, ...] = ()  # the caches the dependency step read

    def as_json(self) -> dict[str, Any]:
        return {
            "caches": list(self.caches),
            "substituted": [{"path": p, "from": u} for p, u in sorted(self.substituted.items())],
            "built": sorted(self.built),
            "refused": [{"path": p, "reason": r} for p, r in sorted(self.refused.items())],
            "unreachable": [{"url": u, "error": e} for u, e in sorted(self.unreachable.items())],
        }

    def summary(self) -> str:
        by_cache: dict[str, int] = {}
        for url in self.substituted.values():
            by_cache[url] = by_cache.get(url, 0) + 1
        parts = [f"{n} substituted from {u}" for u, n in sorted(by_cache.items())]
        parts.append(f"{len(self.built)} built here")
        parts += [f"refused {p}: {why}" for p, why in sorted(self.refused.items())]
        parts += [
            f"cache {u} unreachable ({e}): built instead"
            for u, e in sorted(self.unreachable.items())
        ]
        return "dependencies: " + "; ".join(parts)


def _dependencies(
    nix: Nix, drv: str, logs: list[SubstitutionLog], caches: tuple[str, ...]
) -> Dependencies:
    started: dict[str, str] = {}
    refused: dict[str, str] = {}
    built: list[str] = []
    for log in logs:
        started.update(log.substituted)
        refused.update({p: f"{u}: signed by no trusted key" for p, u in log.unsigned.items()})
        refused.update({p: f"{u}: its NAR does not match its hash" for p, u in log.corrupt.items()})
        built += [d for d in log.built if d != drv]
    valid = nix.path_info(started) if started else {}
    substituted = {p: u for p, u in started.items() if p in valid and not valid[p].ultimate}
    return Dependencies(substituted, tuple(dict.fromkeys(built)), refused, caches=caches)


def built_dependencies(stderr: str, drv: str) -> Dependencies:
    """For a `--rebuild`, which substitutes nothing: the dependencies nix built."""
    return Dependencies(built=tuple(d for d in substitution(stderr).built if d != drv))


def build_traced(
    nix: Nix,
    env: BuildEnvironment,
    drv: str,
    inputs: Iterable[str],
    version: str,
    on_line: OnLine = None,
) -> tuple[BuildResult, Dependencies]:
    """Build the outputs of `drv` (not `--rebuild`); NixError when the build fails.

    The caller still asks `saw_build(result.stderr, drv)`: exit 0 alone proves nothing.
    """
    deps = sorted(inputs)
    logs: list[SubstitutionLog] = []
    caches = env.substituters if deps else ()
    if caches:
        # Dependencies first, with the user's substituters; then the derivation itself,
        # which must not come from a cache.
        wanted = [installable(d, version) for d in deps]
        logs.append(nix.realise(wanted, options=env.dependency_options, on_line=on_line))
    result = nix.build(installable(drv, version), options=env.options, on_line=on_line)
    logs.append(substitution(result.stderr))
    return result, _dependencies(nix, drv, logs, caches)


def build_here(
    nix: Nix,
    env: BuildEnvironment,
    drv: str,
    inputs: Iterable[str],
    version: str,
    on_line: OnLine = None,
) -> BuildResult:
    """`build_traced` without the record of where dependencies came from."""
    return build_traced(nix, env, drv, inputs, version, on_line)[0]


def rebuild_here(
    nix: Nix, env: BuildEnvironment, drv: str, version: str, on_line: OnLine = None
) -> BuildResult:
    """`nix build --rebuild`: build again, compare with the valid outputs (NixError if not)."""
    target = installable(drv, version)
    return nix.build(target, rebuild=True, options=env.options, on_line=on_line)


def dependencies_built(stderr: str, drv: str) -> int:
    return sum(1 for ln in stderr.splitlines() if (b := built_here(ln)) and b[1] != drv)


@dataclass(frozen=True)
class Realised:
    outputs: dict[str, str]  # every output of the derivation: name -> store path
    how: str  # BUILT | REBUILT


def for_attestation(
    nix: Nix,
    env: BuildEnvironment,
    name: str,
    drv: str,
    outputs: Mapping[str, str],
    valid: Iterable[str],
    inputs: Iterable[str],
    version: str,
    reporter: Reporter,
) -> Realised:
    """Make every output of a check valid by a build of ours, or prove it by a rebuild.

    Every output, or none: an output that is valid already (even one of several) may
    have been built unsandboxed, placed by hand or downloaded, and Nix keeps it as it
    is. So whenever one is valid, the missing ones are built and then all are rebuilt
    and compared. RefusedError when a valid output does not reproduce.
    """
    valid = set(valid)

    def on_line(line: str) -> None:
        reporter.log_line(name, line)

    present = [p for p in outputs.values() if p in valid]
    if not present or len(present) < len(outputs):
        result = build_here(nix, env, drv, inputs, version, on_line)
        if deps := dependencies_built(result.stderr, drv):
            reporter.info(f"{name}: built {deps} dependency derivation(s)")
        strange = {o: p for o, p in result.outputs.items() if outputs.get(o) != p}
        if strange:
            msg = f"check {name}: nix built outputs {strange} that are not the evaluated ones"
            raise RefusedError(msg, "re-run; if it persists, report a bug")
        if not present and saw_build(result.stderr, drv):
            return Realised(dict(outputs), BUILT)
        # Nix did not build it here (the outputs became valid after we looked: another
        # process built them, perhaps unsandboxed), or it kept the outputs that were
        # valid and built only the others. Neither is ours yet: check them all below.
    reporter.info(f"{name}: output(s) already in the store; rebuilding to check they reproduce")
    try:
        result = rebuild_here(nix, env, drv, version, on_line)
    except NixError as e:
        differing = nondeterministic_outputs(e.stderr)
        if differing is None:
            raise  # the rebuild failed for another reason (its tests, say): a failed check
        msg = (
            f"check {name}: the output already in the store does not reproduce in the "
            "sandbox; it may have been built unsandboxed, placed by hand, downloaded or "
            "tampered with"
        )
        outs = " ".join(differing) or "<output path>"
        raise RefusedError(msg, f"delete it with `nix store delete {outs}` and rerun") from None
    if not saw_build(result.stderr, drv, rebuild=True):
        msg = f"check {name}: nix exited 0 without rebuilding {drv} here, so nothing was compared"
        raise RefusedError(msg, "report this with `nix --version`; nothing was attested")
    return Realised(dict(outputs), REBUILT)
