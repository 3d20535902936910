"""The ledger's vocabulary: which commands record, the trust tiers, the check results.

Plain `Literal` types and sets, with no pydantic and no I/O, so that both the writer
(`ledger`, `chain`: appending never imports pydantic) and the reader's schema (`models`)
import them from here instead of from each other.
"""

from __future__ import annotations

from typing import Literal

Command = Literal["build", "verify", "gate"]
Tier = Literal["local", "ci", "reproduced"]
# `unverified`: verify found no attestation it could trust for the check (a wrong key, too
# few signers): nothing about the check itself, so neither a pass nor a failure.
Result = Literal["passed", "failed", "cached", "reused", "skipped", "unverified", "error"]
TIER_RANK: dict[str, int] = {"local": 0, "ci": 1, "reproduced": 2}
PASSING: frozenset[str] = frozenset({"passed", "cached", "reused"})
# What pass rates count as a pass: the check was built or verified in that run. A cache
# hit or a gate's reuse repeats an earlier result; counting it again would inflate them.
RATED_PASS: frozenset[str] = frozenset({"passed"})
FAILING: frozenset[str] = frozenset({"failed", "error"})
