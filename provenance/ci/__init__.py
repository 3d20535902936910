"""What runs in CI and around commits: the merge `gate` and the opt-in git `hooks`."""
