"""`provenance build`: evaluate, build in the sandbox, hash, read the test results, sign.

`pipeline` runs the steps and writes the bundle and note, with `cache` (what this key
already attested), `checks` (build, hash and sign the rest) and `report` (the request and
result types); `realise` is the one build that counts; `statement` maps Nix
facts into SLSA Provenance; `testresults` (with `testreports`, `runnerlogs`) reads what the
tests said; `lognorm` normalises the build log before it is hashed.
"""
