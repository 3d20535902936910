"""The evaluation half of the door to nix: evaluate a flake's checks to drvPaths, read its
metadata. `Nix` (nix.py) inherits these calls; they run through its `_run`, like every
other nix call, and are apart only so that the runner stays short enough to read.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from provenance.doors import nixargv, nixerrors, proc, selection
from provenance.doors.nixargv import PURE_EVAL
from provenance.doors.nixparse import FlakeMetadata, parse_flake_metadata
from provenance.doors.selection import EvaluatedCheck
from provenance.errors import NixError

_T = TypeVar("_T")


class Evaluation:
    """Evaluations, through the `_run` and `_json` of the Nix that inherits them."""

    def _run(
        self,
        args: Iterable[str],
        *,
        options: Mapping[str, str] | None = None,
        what: str,
        on_line: Callable[[str], None] | None = None,
        check: bool = True,
    ) -> proc.Completed:
        raise NotImplementedError  # nix.Nix runs it

    def _json(self, args: Iterable[str], *, what: str, **kw: Any) -> Any:
        raise NotImplementedError  # nix.Nix runs it

    def flake_metadata(self, ref: str) -> FlakeMetadata:
        raw = self._json(
            ["flake", "metadata", "--json", "--no-update-lock-file", ref],
            what="reading the flake",
        )
        return parse_flake_metadata(raw)

    def check_drv_paths(self, ref: str, system: str, names: list[str] | None) -> dict[str, str]:
        """Evaluate `checks.<system>` (all, or `names`) to drvPaths, in one nix call."""
        return {n: c.drv_path for n, c in self.eval_checks(ref, system, names).items()}

    def eval_checks(
        self, ref: str, system: str, names: list[str] | None
    ) -> dict[str, EvaluatedCheck]:
        """Evaluate checks to drvPaths and output paths, in one nix call.

        Only derivations this evaluation instantiates count (selection.py); any other
        value under `checks` raises NotADerivationError.
        """
        return self._eval(
            nixargv.checks(ref, system, names), lambda raw: selection.parse(raw, system, names)
        )

    def eval_pinned(
        self, ref: str, system: str, names: list[str] | None, subdir: str = ""
    ) -> tuple[dict[str, EvaluatedCheck], FlakeMetadata]:
        """`eval_checks` and `flake_metadata` of a locked ref (`?rev=`), in one nix call.

        The same evaluation of the same checks (selection.pinned_expression says why),
        with the source's hash and lock file from that evaluation: one process fewer.
        `subdir`: the flake's directory in the repository, as in the ref's `dir=`.
        """
        checks, source = self._eval(
            nixargv.pinned(ref, subdir, system, names),
            lambda raw: selection.parse_pinned(raw, ref, system, names),
        )
        return checks, parse_flake_metadata(source)

    def _eval(self, args: list[str], parse: Callable[[Any], _T]) -> _T:
        done = self._run(
            args,
            options=PURE_EVAL,  # never --impure (nixargv.py)
            what="evaluating the flake's checks",
            check=False,
        )
        if done.returncode != 0:
            raise nixerrors.eval_error(done)
        try:
            return parse(json.loads(done.stdout))
        except (ValueError, RecursionError):  # MalformedAnswer is a ValueError
            msg = "evaluating the flake's checks: nix printed something that is not the JSON asked for"
            raise NixError(msg, cmd=done.cmd, stderr=done.stderr) from None
