#!/bin/sh
# Test-only system dependencies that pip cannot provide. Called from scripts/test.sh (the README test command) before pytest.
# - chromium: tests/integration/test_audit_browser.py renders the HTML audit report headless and
#   reads its numbers back from the DOM (under CI=true a missing browser fails that test).
#   Unpinned on purpose (Debian keeps only its newest chromium): the test asserts numbers in
#   the rendered page, which any current browser renders alike, not a browser version.
# - nginx: tests/integration/test_cache.py serves a Nix binary cache over HTTP from it, with
#   uploads through its DAV module (in Debian's nginx). The tests start their own servers on
#   free loopback ports; the package's own service is kept from starting (it would take port
#   80). Under CI=true a missing nginx fails those tests. Unpinned: they use only PUT and GET.
set -eu

if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
else
    SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
need=""
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || need="$need chromium"
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need="$need nginx"
if [ -z "$need" ]; then
    echo "install-test-deps: chromium and nginx already installed"
    exit 0
fi
# No service may start from this install: a policy-rc.d that denies, unless one is there.
policy=/usr/sbin/policy-rc.d
own_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# scripts/install-test-deps.sh: start no service while installing\nexit 101\n' | $SUDO tee "$policy" >/dev/null
    $SUDO chmod 755 "$policy"
    own_policy=1
fi
status=0
$SUDO apt-get update -qq || status=$?
# shellcheck disable=SC2086 # $need is a list of package names
[ "$status" -ne 0 ] || $SUDO apt-get install -y -qq --no-install-recommends $need >/dev/null || status=$?
[ "$own_policy" -eq 0 ] || $SUDO rm -f "$policy"
[ "$status" -eq 0 ] || exit "$status"
command -v chromium >/dev/null 2>&1 && chromium --version || true
{ command -v nginx || echo /usr/sbin/nginx; } | xargs -I{} sh -c '{} -v'
