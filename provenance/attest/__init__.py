"""`provenance build`: evaluate, build in the sandbox, hash, read the test results, sign.

`pipeline` runs the steps; `realise` is the one build that counts; `statement` maps Nix
facts into SLSA Provenance; `testresults` (with `testreports`, `runnerlogs`) reads what the
tests said; `lognorm` normalises the build log before it is hashed.
"""
