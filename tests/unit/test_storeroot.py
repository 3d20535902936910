"""storeroot.locate: where a store's paths are on this machine, for every spelling of the
`store` setting nix prints back. A wrong answer hashes the host store's copy of a path
instead of what was built (docs/architecture.md), so each spelling is pinned."""

from __future__ import annotations

import pytest

from provenance.doors.storeroot import locate
from provenance.errors import RefusedError


@pytest.mark.parametrize(
    ("setting", "real"),
    [
        ("auto", None),
        ("daemon", None),
        ("local", None),
        ("unix:///nix/var/nix/daemon-socket/socket", None),
        ("/tmp/xx", "/tmp/xx/nix/store"),  # Nix 2.8 to 2.26 print the path as given
        ("local:///tmp/xx", "/tmp/xx/nix/store"),  # Nix 2.34 prints `store = /tmp/xx` so
        ("local://?root=/tmp/xx", "/tmp/xx/nix/store"),
        ("local?root=/tmp/xx", "/tmp/xx/nix/store"),
        ("local:///tmp/xx?real=/elsewhere", "/elsewhere"),
        ("local://", None),
    ],
)
def test_every_spelling_of_a_local_store_is_read_where_its_files_are(
    setting: str, real: str | None
) -> None:
    assert locate(setting).real == real
    if real is not None:
        assert locate(setting).physical("/nix/store/abc-x/out") == f"{real}/abc-x/out"


def test_a_store_whose_files_are_elsewhere_is_refused() -> None:
    with pytest.raises(RefusedError):
        locate("ssh://builder")
