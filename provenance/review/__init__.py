"""`--base`: test deltas and protected-path changes against the base, and the approvals
that accept them (docs/review.md). Used by gate, verify, show and approve."""
