"""Which attributes of a flake's `checks` are checks, and what they evaluate to.

`nix eval --apply` runs data/select-checks.nix over the flake's `checks` output. For each
selected check it instantiates the derivation again from the check's own `drvAttrs`
(`builtins.derivationStrict`) and keeps the drvPath and outputs of that call, never the
attribute set's own say-so. This module writes that expression and reads its answer;
nix.py runs it (the one door to nix). A check the expression reports as a problem is
refused with `NotADerivationError` (exit 3): its drvPath was not produced by evaluating
this commit, so nothing may be attested, verified or skipped on it. Why the check holds
against plain attribute sets and `builtins.appendContext`: docs/architecture.md.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provenance.errors import NotADerivationError, UsageError

_EXPRESSION = Path(__file__).parent.parent / "data" / "select-checks.nix"
_HINT = (
    "define each check with `derivation` (or a function built on it, such as nixpkgs' "
    "mkDerivation); a check is only ever the derivation this commit evaluates to"
)


@dataclass(frozen=True)
class EvaluatedCheck:
    name: str
    drv_path: str
    outputs: dict[str, str]  # output name -> store path (not necessarily built)


class MalformedAnswer(ValueError):
    """nix printed JSON, but not the shape select-checks.nix returns."""


def apply_expression(system: str, names: list[str] | None) -> str:
    """The `--apply` function selecting `names` (None: all) of `checks.<system>`."""
    for n in names or []:
        # Any attribute name a flake can define is selectable ("unit tests", "café"): the
        # names reach Nix as JSON data, never as source. Only what no Nix string can hold
        # (empty, NUL) is refused here.
        if not n or "\x00" in n:
            msg = f"{n!r} is not a valid check name"
            raise UsageError(msg, "name a check the flake defines, e.g. --check unit")
    # The selection is data: JSON, embedded as a Nix string literal (escaped below).
    want = json.dumps(names) if names is not None else "null"
    text = _EXPRESSION.read_text()
    return text.replace("@WANT@", _nix_string(want)).replace("@SYSTEM@", _nix_string(system))


def _nix_string(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("${", "\\${")
    return f'"{escaped}"'


def parse(result: Any, system: str, names: list[str] | None) -> dict[str, EvaluatedCheck]:
    """The checks in select-checks.nix's answer; raises for missing or non-genuine ones."""
    try:
        have = result["selected"]
        systems = list(result["systems"])
    except (TypeError, KeyError) as e:
        raise MalformedAnswer(str(e)) from None
    if have is None:
        shown = ", ".join(systems) or "none"
        msg = f"the flake has no checks for {system} (systems with checks: {shown})"
        raise UsageError(msg, "add checks.<system>.<name> to flake.nix outputs")
    try:
        available, drvs = list(have["names"]), dict(have["drvs"])
    except (TypeError, KeyError, ValueError) as e:
        raise MalformedAnswer(str(e)) from None
    if not all(isinstance(n, str) for n in [*available, *systems]):
        raise MalformedAnswer("check and system names must be strings")
    if not available:
        msg = f"the flake defines no checks for {system}"
        raise UsageError(msg, "add checks.<system>.<name> to flake.nix outputs")
    missing = [n for n in names or [] if n not in available]
    if missing:
        msg = f"unknown check {', '.join(missing)}; the flake has: {', '.join(available)}"
        raise UsageError(msg)
    bad = sorted(n for n, d in drvs.items() if not isinstance(d, dict) or "drvPath" not in d)
    if bad:
        more = f" (and {len(bad) - 1} more check(s) like it)" if len(bad) > 1 else ""
        raise NotADerivationError(problem(system, bad[0], drvs[bad[0]]) + more, _HINT)
    try:
        return {
            n: EvaluatedCheck(n, str(d["drvPath"]), {o: str(p) for o, p in d["outputs"].items()})
            for n, d in drvs.items()
        }
    except (TypeError, KeyError, AttributeError) as e:
        raise MalformedAnswer(str(e)) from None


def problem(system: str, name: str, found: Any) -> str:
    """One line saying why checks.<system>.<name> is not a derivation of this evaluation."""
    attr = f"checks.{system}.{name}"
    info = found if isinstance(found, dict) else {}
    kind = info.get("problem")
    claimed = info.get("claimed")
    if kind == "not-attrs":
        return f"{attr} is a {info.get('type', 'value')}, not a derivation"
    if kind == "not-derivation":
        return f'{attr} is an attribute set without type = "derivation": not a derivation'
    if kind == "no-drvAttrs":
        return (
            f"{attr} names drvPath {claimed} but was not made by `derivation` (no drvAttrs to "
            "derive it from): a plain attribute set or a string with forged context is not a "
            "derivation of this commit"
        )
    if kind == "drvPath":
        return (
            f"{attr} names drvPath {claimed}, but its own attributes derive "
            f"{info.get('derived')}: that drvPath was not produced by evaluating this commit"
        )
    if kind == "outPath":
        return (
            f"{attr} names outPath {claimed}, which is not output {info.get('output')!r} of "
            "the derivation it evaluates to"
        )
    return f"{attr} is not a derivation of this evaluation"
