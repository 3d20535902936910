"""Why two drvPaths differ: input derivations, sources and env keys, recursively.

When the flake re-evaluated at --rev gives another drvPath than the attestation names,
`verify` says what changed (which inputs, sources or env keys) instead of only that
something did. Apart from binding.py because it is a reading of two derivation graphs
(`nix derivation show -r`) that knows nothing about attestations; not to be confused with
diff.py, which compares the files of a rebuilt output.
"""

from __future__ import annotations

from provenance.doors.nix import Derivation, Nix
from provenance.errors import NixError


def short_name(p: str) -> str:
    """A store path's name without its directory and hash: what stays when inputs change."""
    base = p.rsplit("/", 1)[-1]
    return base.split("-", 1)[1] if "-" in base else base


def explain_drv_difference(nix: Nix, attested: str, evaluated: str, limit: int = 12) -> str:
    """Why two drvPaths differ: input derivations, sources and env keys, recursively."""
    try:
        ours = nix.derivations([evaluated], recursive=True)
    except NixError as e:
        return f"cannot read {evaluated}: {e.message}"
    try:
        theirs = nix.derivations([attested], recursive=True)
    except NixError:
        return (
            f"the attested derivation {attested} is not in the local store, so the difference "
            "cannot be itemised (the tests, dependencies or toolchain differ)"
        )
    found: list[str] = []
    seen: set[tuple[str, str]] = set()

    def walk(a: str, b: str, depth: int) -> None:
        if (a, b) in seen or len(found) >= limit or depth > 6:
            return
        seen.add((a, b))
        da, db = theirs.get(a), ours.get(b)
        if da is None or db is None:
            return
        where = short_name(b)
        ia = {short_name(p): p for p in da.input_drvs}
        ib = {short_name(p): p for p in db.input_drvs}
        for name in sorted(set(ia) | set(ib)):
            pa, pb = ia.get(name), ib.get(name)
            if pa == pb:
                continue
            if pa and pb:
                found.append(f"{where}: input derivation {name} differs ({pa} -> {pb})")
                walk(pa, pb, depth + 1)
            else:
                found.append(f"{where}: input derivation {name} {'removed' if pa else 'added'}")
        sa = {short_name(p): p for p in da.input_srcs}
        sb = {short_name(p): p for p in db.input_srcs}
        for name in sorted(set(sa) | set(sb)):
            pa, pb = sa.get(name), sb.get(name)
            if pa != pb:
                change = "differs" if pa and pb else "removed" if pa else "added"
                found.append(f"{where}: source {name} {change} ({pa or '-'} -> {pb or '-'})")
        outputs = {o.name for o in da.outputs} | {o.name for o in db.outputs}
        for key in sorted(set(da.env) | set(db.env)):
            if key in outputs or key in da.input_drvs:
                continue  # output paths follow from everything else
            va, vb = da.env.get(key), db.env.get(key)
            if va != vb and not _only_paths_differ(va, vb, da, db):
                found.append(f"{where}: env {key} differs")
        for attr in ("builder", "system"):
            if getattr(da, attr) != getattr(db, attr):
                found.append(f"{where}: {attr} differs")

    walk(attested, evaluated, 0)
    if not found:
        return "the derivations differ in a way not itemised here (args or output names)"
    more = " ..." if len(found) >= limit else ""
    return "; ".join(found[:limit]) + more


def _only_paths_differ(va: str | None, vb: str | None, da: Derivation, db: Derivation) -> bool:
    # An env value that only embeds changed input paths is a consequence, not a cause.
    if va is None or vb is None:
        return False
    for old, new in zip(sorted(da.input_srcs), sorted(db.input_srcs), strict=False):
        va = va.replace(old, new)
    for old, new in zip(sorted(da.input_drvs), sorted(db.input_drvs), strict=False):
        va = va.replace(old, new)
    return va == vb
