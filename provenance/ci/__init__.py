"""What runs in CI and around commits: the merge `gate` (the decision; its request and
report in `report`, the judging of signed notes in `evidence`, the renderings for CI in
`outputs`) and the opt-in git `hooks`."""
