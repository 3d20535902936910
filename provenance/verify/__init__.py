"""`provenance verify`: signatures (`authentic`), re-evaluation (`binding`, with `drvdiff`
saying why two drvPaths differ), and on request a rebuild that compares every output
(`reproduce`, with `diff`); `pipeline` runs them in order and signs the summary;
`verification` holds what they find.

The API is `verify(VerifyRequest, Nix, Reporter) -> VerifyReport` (docs/verify.md).
"""

from provenance.verify.pipeline import VerifyReport, VerifyRequest, verify

__all__ = ["VerifyReport", "VerifyRequest", "verify"]
