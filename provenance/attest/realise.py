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
from dataclasses import dataclass

from provenance.doors.nix import BuildResult, Nix
from provenance.errors import NixError, RefusedError
from provenance.policy.nixenv import (
    BuildEnvironment,
    built_here,
    installable,
    nondeterministic_outputs,
    saw_build,
)
from provenance.progress import Reporter

# How an output came to be trusted (internalParameters.outputCheck):
BUILT = "built"  # we saw nix build it, sandboxed, here, in this run
REBUILT = "rebuilt-and-compared"  # it was already valid; nix --rebuild reproduced it bit for bit

OnLine = Callable[[str], None] | None


def build_here(
    nix: Nix,
    env: BuildEnvironment,
    drv: str,
    inputs: Iterable[str],
    version: str,
    on_line: OnLine = None,
) -> BuildResult:
    """Build the outputs of `drv` (not `--rebuild`); NixError when the build fails.

    The caller still asks `saw_build(result.stderr, drv)`: exit 0 alone proves nothing.
    """
    deps = sorted(inputs)
    if deps and env.substituters:
        # Dependencies first, with the user's substituters; then the derivation itself,
        # which must not come from a cache.
        nix.realise([installable(d, version) for d in deps], options=env.dependency_options)
    return nix.build(installable(drv, version), options=env.options, on_line=on_line)


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
