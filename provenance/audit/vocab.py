"""The ledger's vocabulary: which commands record, the trust tiers, the check results.

Plain `Literal` types and sets, with no pydantic and no I/O, so that both the writer
(`ledger`, `chain`: appending never imports pydantic) and the reader's schema (`models`)
import them from here instead of from each other.
"""

from __future__ import annotations

from typing import Literal

Command = Literal["build", "verify", "gate"]
Tier = Literal["local", "ci", "reproduced"]
Result = Literal["passed", "failed", "cached", "reused", "skipped", "error"]
TIER_RANK: dict[str, int] = {"local": 0, "ci": 1, "reproduced": 2}
PASSING: frozenset[str] = frozenset({"passed", "cached", "reused"})
FAILING: frozenset[str] = frozenset({"failed", "error"})
