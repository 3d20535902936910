"""What we trust and what we require: trusted keys and thresholds (`trust`), which policy a
verification uses (`resolve`) and the one trusted ref of the gate (`trusted_ref`), the Nix
settings every attested build and every rebuild runs under (`nixenv`), the rule for each
of them and what a statement must have recorded to be believed (`environment`), and what
defines a flake's checks, so that an attestation is reused only where it still holds
(`definition`).

Shared by all three jobs (build, verify, gate), so it sits below them: policy imports
doors and formats, never a job (tests/unit/test_layout.py).
"""
