"""`provenance verify`: signatures, re-evaluation, and on request a rebuild that compares
every output (`reproduce`, with `diff`); `verification` holds what it finds.

The API is `verify(VerifyRequest, Nix, Reporter) -> VerifyReport` (docs/verify.md).
"""

from provenance.verify.pipeline import VerifyReport, VerifyRequest, verify

__all__ = ["VerifyReport", "VerifyRequest", "verify"]
