"""Architecture rules that keep the code honest: one door per external tool, imports only
downward, no circles, no module too long to read (docs/architecture.md shows the tree)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PKG = Path(__file__).parent.parent.parent / "provenance"

# A module may import modules of a lower layer, and modules of its own subpackage. Layers
# of equal rank (ci, audit) are peers that do not import each other.
RANK = {
    "": 0,  # provenance/__init__.py, errors, progress, files, text
    "formats": 1,
    "doors": 2,
    "policy": 3,
    # cache: nix copy and substituters through the nix door, trust and nixenv from policy;
    # attest's builds and verify's rebuilds stand on it, it on neither.
    "cache": 4,
    "attest": 5,
    # Deltas against the base, protected paths, approvals: needs formats, doors (git, nix,
    # notes) and policy (trust, trusted_ref); used by verify, ci and show. A peer of attest.
    "review": 5,
    "verify": 6,
    # The attestation service runs the attest pipeline for other users (server) and is
    # used by the build command (client); verify, ci and audit never need it.
    "service": 6,
    "ci": 7,
    "audit": 7,
    # `provenance show`: assembles what is attested (reads envelopes with verify.authentic,
    # compares with review); nothing imports it but the CLI. A peer of ci and audit.
    "show": 7,
    "top": 8,  # cli, example, launch (the entry point, which starts nix ahead), __main__
}
TOP = {"cli", "example", "launch", "__main__"}
MAX_LINES = 420


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _layer(module: str) -> str:
    parts = module.split(".")[1:]  # drop "provenance"
    if not parts:
        return ""
    if parts[0] in TOP:
        return "top"
    if (PKG / parts[0]).is_dir() and parts[0] in RANK:
        return parts[0]
    return ""


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PKG.rglob("*.py")}


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """Every provenance module `path` imports, at top level or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
        for imported in names:
            if not imported.startswith("provenance"):
                continue
            # `from provenance.attest import lognorm` names a module; `from x import func`
            # names its module x. Keep the longest prefix that is a module.
            name = imported
            while name not in modules and "." in name:
                name = name.rsplit(".", 1)[0]
            if name in modules:
                found.add(name)
    found.discard(_module_name(path))
    return found


def test_only_proc_imports_subprocess() -> None:
    offenders = [
        str(p.relative_to(PKG))
        for p in PKG.rglob("*.py")
        if p != PKG / "doors" / "proc.py"
        and re.search(r"^\s*(import subprocess|from subprocess)", p.read_text(), re.M)
    ]
    assert offenders == []


def test_only_cli_exits() -> None:
    offenders = [
        str(p.relative_to(PKG))
        for p in PKG.rglob("*.py")
        if not (p.relative_to(PKG).parts[0] in ("cli", "cli.py") or p.name == "__main__.py")
        and re.search(r"sys\.exit\(|typer\.Exit\(", p.read_text())
    ]
    assert offenders == []


def test_every_module_lives_in_a_known_layer() -> None:
    stray = [
        m
        for m in _modules()
        if _layer(m) == ""
        and m.split(".")[1:2] not in ([], ["errors"], ["progress"], ["files"], ["text"])
    ]
    assert stray == [], "a new subpackage or top-level module needs a place in RANK"


def test_imports_only_go_downward() -> None:
    modules = _modules()
    wrong = []
    for name, path in modules.items():
        here = _layer(name)
        for target in _imports(path, modules):
            there = _layer(target)
            if there == here:
                continue  # within one subpackage (or among the top-level modules)
            if RANK[there] < RANK[here] or target == "provenance":
                continue
            wrong.append(f"{name} ({here or 'base'}) imports {target} ({there or 'base'})")
    assert wrong == []


def test_no_import_circles() -> None:
    modules = _modules()
    # A module "importing" its own package's __init__ (Python runs it first) is not a
    # circle of behaviour; an __init__ re-exporting its modules would otherwise look like one.
    graph = {
        name: {t for t in _imports(path, modules) if not name.startswith(t + ".")}
        for name, path in modules.items()
    }
    circles = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph[n]):
            if state.get(m) == 1:
                circles.append(" -> ".join([*stack[stack.index(m) :], m]))
            elif m not in state:
                visit(m)
        stack.pop()
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n)
    assert circles == []


def test_no_module_is_too_long_to_read() -> None:
    long = {
        str(p.relative_to(PKG)): n
        for p in PKG.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}, f"split these along a seam a newcomer would name: {long}"


def test_the_checker_sees_imports_inside_functions() -> None:
    # The CLI imports its jobs lazily (for start-up time); the rules must still see them.
    modules = _modules()
    cli = PKG / "cli.py" if (PKG / "cli.py").exists() else PKG / "cli" / "__init__.py"
    seen = set().union(
        *(_imports(p, modules) for p in cli.parent.rglob("*.py") if "cli" in p.parts or p == cli)
    )
    assert "provenance.attest.pipeline" in seen


# What flake.nix's `checks.<system>.tests` gives the test suite, by import name (the
# attribute names in its pythonPackages, plus pytest, which nix/pytest.nix always adds).
_NIX_IMPORT_NAMES = {"tomli-w": "tomli_w", "protobuf": "google"}


def test_the_flakes_own_check_has_every_package_the_unit_tests_import() -> None:
    # The project's flake check runs tests/ minus tests/integration in the sandbox with
    # nixpkgs' Python packages; a test module importing a package not listed there fails at
    # collection (three did, with in_toto_attestation).
    import sys  # noqa: PLC0415

    flake = (PKG.parent / "flake.nix").read_text()
    attrs = set(re.findall(r"\bps\.([A-Za-z0-9_-]+)", flake))
    available = {_NIX_IMPORT_NAMES.get(a, a) for a in attrs} | {"pytest", "provenance", "tests"}
    missing = {}
    for path in (PKG.parent / "tests").rglob("*.py"):
        if "integration" in path.parts:
            continue
        for node in ast.parse(path.read_text()).body:  # module level: what collection imports
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and node.level == 0
                else []
            )
            for name in names:
                top = name.split(".")[0]
                if top and top not in sys.stdlib_module_names and top not in available:
                    missing.setdefault(top, []).append(str(path.relative_to(PKG.parent)))
    assert missing == {}, "add them to pythonPackages in flake.nix (or import them lazily)"
