"""provenance: signed, drv-hash-bound attestations for Nix flake checks."""

__version__ = "0.1.0"
