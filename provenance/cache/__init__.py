"""Nix binary caches: publish attested outputs (publish.py), and let a rebuild take its
dependencies from caches while the attested derivation itself is built (substituters.py).
Nix's own binary cache protocol does the work: every transfer is a `nix copy` or a
substitution through the nix door, signed with the cache's key and checked by Nix."""
