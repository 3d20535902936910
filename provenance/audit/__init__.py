"""The audit ledger and what is read from it.

Writing: `ledger` (what each run records; the public face, re-exporting the rest),
`chain` (the hash-chained file: append, tail repair, verify), `vocab` (the shared
words: commands, tiers, results), `models` (the strict schema readers validate with).
Reading: `summary` (loading and roll-ups; the public face), `stats` (the `Summary`
value), `render` (text and Markdown), `html` (the HTML page), `rules` (the policy check).
"""
