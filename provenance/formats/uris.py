"""Type URIs we emit and accept. A module of its own so that readers of statements
(claims.py, on the cache-hit path) need not import pydantic."""

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
SLSA_PROVENANCE_V1 = "https://slsa.dev/provenance/v1"
TEST_RESULT_V01 = "https://in-toto.io/attestation/test-result/v0.1"
VSA_V1 = "https://slsa.dev/verification_summary/v1"
_DOC = "https://github.com/provenance-nix/provenance/blob/main/docs/attestation-format.md"
# Our buildType and local builder id: documented field by field in docs/attestation-format.md.
BUILD_TYPE = f"{_DOC}#nix-flake-check-v1"
BUILDER_ID = f"{_DOC}#local-builder-v1"
