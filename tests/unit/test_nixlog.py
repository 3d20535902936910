"""Reading nix's human-readable lines (doors/nixlog.py) and the cache inputs we accept
(cache/substituters.py). The lines are as Nix 2.8 printed them in this project's runs,
plus the spellings newer releases use ("..." quotes from 2.34, "ignoring substitute")."""

from __future__ import annotations

import pytest

from provenance.attest.realise import Dependencies
from provenance.cache.substituters import Caches, check_public_key, check_url
from provenance.doors import nixlog
from provenance.errors import UsageError

LIB = "/nix/store/k5mq4nhp0bb7qijh8dfv7h168ad17vp0-lib"
DRV = "/nix/store/8rxnab04r4ipmsz6f2c6l36sjsmgl14v-lib.drv"
URL = "file:///tmp/c/cache"

# Recorded from `nix build` on 2.8 with a corrupted NAR and --option fallback true.
CORRUPT_28 = f"""copying path '{LIB}' from '{URL}'...
error: hash mismatch importing path '{LIB}';
         specified: sha256:17l9a7qn1gg071nf52kxbrb960blvdf206sxp8f0abr5hrhvwxcm
         got:       sha256:0rfxv6pc1ylh1wxhlq5pv11dz2as4333lqanmza1srckz8ws04sd
building '{DRV}'...
"""
UNSIGNED_28 = (
    f"warning: the substitute for '{LIB}' from '{URL}' is not signed by any of the keys "
    "in 'trusted-public-keys'\n"
    f"building '{DRV}'...\n"
)


def test_a_substitution_is_read_from_nix_s_copying_line() -> None:
    log = nixlog.substitution(f"copying path '{LIB}' from '{URL}'...\n")
    assert log.substituted == {LIB: URL}
    assert log.built == ()


def test_a_corrupt_nar_is_not_a_substitution_and_the_rebuild_is_seen() -> None:
    log = nixlog.substitution(CORRUPT_28)
    assert log.started == {LIB: URL}
    assert log.corrupt == {LIB: URL}
    assert log.substituted == {}
    assert log.built == (DRV,)


@pytest.mark.parametrize(
    "line",
    [
        UNSIGNED_28,
        f"warning: ignoring substitute for '{LIB}' from '{URL}', as it's not signed by any of "
        "the keys in 'trusted-public-keys'\n",
        f'warning: ignoring substitute for "{LIB}" from "{URL}", as it\'s not signed by any '
        "of the keys in 'trusted-public-keys'\n",
    ],
)
def test_an_unsigned_substitute_is_named_in_every_spelling(line: str) -> None:
    assert nixlog.substitution(line).unsigned == {LIB: URL}


def test_newer_quotes_and_a_builders_own_lines() -> None:
    text = (
        f'copying path "{LIB}" from "{URL}"...\n'
        # A builder printing nix's words is not nix: its lines come prefixed.
        f"lib> copying path '/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-x' from 'http://evil'...\n"
        f"lib> building '/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-y.drv'...\n"
    )
    log = nixlog.substitution(text)
    assert log.substituted == {LIB: URL}
    assert log.built == ()


def test_copied_to_reads_only_nix_copy_s_send_lines() -> None:
    text = (
        f"querying info about '{LIB}' on 'http://127.0.0.1:1'...\n"
        "copying 1 paths...\n"
        f"copying path '{LIB}' to 'http://127.0.0.1:1'...\n"
        f"copying path '{LIB}' (288 bytes, compressed 38.9% in 1 ms) to binary cache\n"
    )
    assert nixlog.copied_to(text) == [LIB]
    seen: list[str] = []
    handler = nixlog.on_copy(seen.append)
    assert handler is not None
    for line in text.splitlines():
        handler(line)
    assert seen == [LIB]
    assert nixlog.on_copy(None) is None


def test_dependencies_summary_names_every_source() -> None:
    deps = Dependencies(
        substituted={LIB: URL},
        built=(DRV,),
        refused={"/nix/store/x": f"{URL}: signed by no trusted key"},
        unreachable={"http://dead": "Couldn't connect to server"},
    )
    text = deps.summary()
    assert f"1 substituted from {URL}" in text
    assert "1 built here" in text
    assert "refused /nix/store/x" in text
    assert "cache http://dead unreachable" in text
    assert deps.as_json()["substituted"] == [{"path": LIB, "from": URL}]


PK = "cache-1:EYexicXqmuFOp65Ty/VpDWL1bdaRIxesqrhUezwVl6Q="


def test_public_keys_and_urls_are_checked() -> None:
    assert check_public_key(f" {PK}\n") == PK
    with pytest.raises(UsageError, match="is not a Nix public key"):
        check_public_key("cache-1:not-base64!")
    with pytest.raises(UsageError, match="is not a Nix public key"):
        check_public_key("EYexicXqmuFOp65Ty/VpDWL1bdaRIxesqrhUezwVl6Q=")  # no name
    secret = "cache-1:" + "A" * 86 + "=="
    with pytest.raises(UsageError) as e:
        check_public_key(secret)
    assert "secret key" in e.value.diagnostics() and "A" * 12 not in e.value.diagnostics()
    assert check_url("http://127.0.0.1:8080/") == "http://127.0.0.1:8080"
    assert check_url("file:///var/cache") == "file:///var/cache"
    for bad in ("/var/cache", "file://relative/dir"):
        with pytest.raises(UsageError):
            check_url(bad)
    assert Caches.of(["s3://bucket?region=x"], [PK]) == Caches(("s3://bucket?region=x",), (PK,))
