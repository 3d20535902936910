# Sourced by the run scripts. Nix settings for this offline machine: sandbox on and
# failing closed, no binary cache to retry (nixpkgs' cache is unreachable here), no
# registry lookups. On a machine with a network, drop `substituters =` to use caches.
export NIX_CONFIG="experimental-features = nix-command flakes
sandbox = true
sandbox-fallback = false
substituters =
use-registries = false"
