"""The doors to other programs: `proc` (the only module that starts a process), `git`,
`nix` and the git notes store; plus the parsers of what those programs print.

Doors import formats (for hashes) and nothing above them (tests/unit/test_layout.py).
"""
