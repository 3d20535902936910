"""Trust policy files that are not what they should be: one-line UsageErrors, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from provenance.cli import app
from provenance.errors import UsageError
from provenance.formats import keys
from provenance.policy import trust


@pytest.fixture
def pub(tmp_path: Path) -> Path:
    return keys.generate(tmp_path / "k")[1]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("trust = 3\n", "[trust] must be a table"),
        ("[trust]\nkeys = [1]\n", "trust.keys must be a table"),
        ('[trust]\nkeys = "x"\n', "trust.keys must be a table"),
        ("[trust]\nkeys = 3\n", "trust.keys must be a table"),
        ("[trust.keys]\nalice = 1\n", "trust.keys.alice needs a public_key PEM string"),
        ('[trust.keys]\nalice = "pem"\n', "trust.keys.alice needs a public_key PEM string"),
        ("[trust.keys.alice]\npublic_key = 1\n", "trust.keys.alice needs a public_key"),
        ("[trust]\nthreshold = 0\n", "trust.threshold must be a positive integer"),
    ],
)
def test_malformed_policy_is_a_usage_error(tmp_path: Path, text: str, message: str) -> None:
    policy = tmp_path / "provenance.toml"
    policy.write_text(text)
    with pytest.raises(UsageError) as raised:
        trust.load_policy(policy)
    assert message in raised.value.message


def test_policy_that_is_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="is a directory"):
        trust.load_policy(tmp_path)
    with pytest.raises(UsageError, match="is not a regular file"):
        trust.load_policy(Path("/dev/zero"))


@pytest.mark.parametrize("text", ["trust = 3\n", "[trust]\nkeys = [1]\n", '[trust]\nkeys = "x"\n'])
def test_trust_add_refuses_a_malformed_policy_and_leaves_it(
    tmp_path: Path, pub: Path, text: str
) -> None:
    policy = tmp_path / "provenance.toml"
    policy.write_text(text)
    with pytest.raises(UsageError, match="must be tables; not changing it"):
        trust.add_key(policy, "alice", pub)
    assert policy.read_text() == text
    result = CliRunner().invoke(app, ["trust", "add", "alice", str(pub), "--policy", str(policy)])
    assert result.exit_code == 2
    assert isinstance(result.exception, SystemExit)
    assert "not changing it" in result.stderr and result.stderr.count("\n") == 1


def test_trust_add_with_a_directory_as_policy(tmp_path: Path, pub: Path) -> None:
    result = CliRunner().invoke(app, ["trust", "add", "alice", str(pub), "--policy", str(tmp_path)])
    assert result.exit_code == 2
    assert isinstance(result.exception, SystemExit)
    assert f"policy file {tmp_path} is a directory" in result.stderr


def test_trust_add_then_load_round_trips(tmp_path: Path, pub: Path) -> None:
    policy = tmp_path / "provenance.toml"
    trust.add_key(policy, "alice", pub)
    loaded = trust.load_policy(policy)
    assert [k.name for k in loaded.keys] == ["alice"] and loaded.threshold == 1


def _policy(tmp_path: Path, threshold: int) -> tuple[trust.TrustPolicy, list[str]]:
    ks = [trust.TrustedKey(n, keys.load_public_key(keys.generate(tmp_path / n)[1])) for n in "abc"]
    return trust.TrustPolicy(tuple(ks), threshold, "test"), [k.key.keyid for k in ks]


def test_count_signers_needs_agreeing_distinct_signers(tmp_path: Path) -> None:
    policy, (a, b, c) = _policy(tmp_path, 2)
    x, y = {"/nix/store/x-out": "11" * 32}, {"/nix/store/x-out": "22" * 32}
    E = trust.Endorsement.of
    one = trust.count_signers(policy, [E(frozenset({a}), x), E(frozenset({a}), x)])
    assert not one.passed and one.reason == "only 1 of 2 required trusted signer(s) (a)"
    two = trust.count_signers(policy, [E(frozenset({a}), x), E(frozenset({b}), x)])
    assert two.passed and two.signers == ("a", "b") and not two.dissent
    split = trust.count_signers(policy, [E(frozenset({a}), x), E(frozenset({b}), y)])
    assert not split.passed and split.count == 1 and split.dissent == ("b",)
    assert "b attested different output digests" in split.reason
    # The larger agreeing group counts; the odd one out is named.
    most = trust.count_signers(
        policy, [E(frozenset({c}), y), E(frozenset({a}), x), E(frozenset({b}), x)]
    )
    assert most.passed and most.signers == ("a", "b") and most.dissent == ("c",)
    assert not trust.count_signers(policy, []).passed


def test_a_signer_who_contradicts_themselves_never_counts(tmp_path: Path) -> None:
    policy, (a, b, _) = _policy(tmp_path, 1)
    x, y = {"/nix/store/x-out": "11" * 32}, {"/nix/store/x-out": "22" * 32}
    E = trust.Endorsement.of
    both = trust.count_signers(policy, [E(frozenset({a}), x), E(frozenset({a}), y)])
    assert not both.passed and both.count == 0 and both.dissent == ("a",)
    # {a, b} say x, b alone also says y: b contradicts b, so only a counts, b dissents.
    mixed = trust.count_signers(
        policy, [E(frozenset({a}), x), E(frozenset({b}), x), E(frozenset({b}), y)]
    )
    assert mixed.passed and mixed.signers == ("a",) and mixed.dissent == ("b",)


def test_the_same_key_under_two_names_is_refused(tmp_path: Path, pub: Path) -> None:
    policy = tmp_path / "provenance.toml"
    trust.add_key(policy, "alice", pub)
    before = policy.read_bytes()
    # `trust add` refuses it now (verify and gate would refuse the whole policy after)...
    with pytest.raises(UsageError, match="already trusts this key as 'alice'"):
        trust.add_key(policy, "also-alice", pub)
    assert policy.read_bytes() == before
    # ...and a hand-edited file with it is still refused when loaded.
    text = before.decode()
    policy.write_text(
        text + text[text.index("[trust.keys.alice]") :].replace("alice]", "also-alice]", 1)
    )
    with pytest.raises(UsageError, match="alice and also-alice are the same key"):
        trust.load_policy(policy)


def test_trust_remove_and_threshold(tmp_path: Path, pub: Path) -> None:
    policy = tmp_path / "provenance.toml"
    _, other, _ = keys.generate(tmp_path / "bob")
    trust.add_key(policy, "alice", pub)
    trust.add_key(policy, "bob", other)
    trust.set_threshold(policy, 2)
    assert trust.load_policy(policy).threshold == 2
    with pytest.raises(UsageError, match="would leave 1 key"):
        trust.remove_key(policy, "bob")
    with pytest.raises(UsageError, match="not between 1 and the 2"):
        trust.set_threshold(policy, 3)
    with pytest.raises(UsageError, match="no key named 'carol'"):
        trust.remove_key(policy, "carol")
    trust.set_threshold(policy, 1)
    trust.remove_key(policy, "bob")
    loaded = trust.load_policy(policy)
    assert [k.name for k in loaded.keys] == ["alice"] and loaded.threshold == 1


def test_key_files_with_the_same_name_are_told_apart(tmp_path: Path) -> None:
    _, a, _ = keys.generate(tmp_path / "alice")
    _, b, _ = keys.generate(tmp_path / "bob")
    assert a.name == b.name  # every keygen writes provenance.pub
    names = [k.name for k in trust.from_key_files([a, b]).keys]
    assert names == [str(a), str(b)]
    assert [k.name for k in trust.from_key_files([a]).keys] == ["provenance.pub"]


@pytest.mark.parametrize("command", ["verify", "gate"])
def test_a_deeply_nested_policy_is_one_line_not_a_traceback(tmp_path: Path, command: str) -> None:
    # tomllib recurses per nesting level; this used to end in a RecursionError traceback.
    policy = tmp_path / "provenance.toml"
    policy.write_text("x = " + "[" * 50000 + "]" * 50000 + "\n")
    with pytest.raises(UsageError, match="nested too deeply"):
        trust.load_policy(policy)
    result = CliRunner().invoke(app, [command, "--policy", str(policy), str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert "nested too deeply" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_a_deeply_nested_definition_table_means_the_definition_is_unknown() -> None:
    from provenance.policy import definition  # noqa: PLC0415

    with pytest.raises(ValueError, match="nested too deeply"):
        definition._parse_extra(("x = " + "[" * 50000 + "]" * 50000).encode(), "")


def test_trust_commands_list_remove_threshold_and_keygen_name(tmp_path: Path) -> None:
    runner = CliRunner()
    policy = tmp_path / "provenance.toml"
    for who in ("alice", "bob"):
        done = runner.invoke(app, ["keygen", "--out-dir", str(tmp_path / "k"), "--name", who])
        assert done.exit_code == 0, done.output
        done = runner.invoke(
            app, ["trust", "add", who, str(tmp_path / "k" / f"{who}.pub"), "--policy", str(policy)]
        )
        assert done.exit_code == 0, done.output
    assert runner.invoke(app, ["trust", "threshold", "2", "--policy", str(policy)]).exit_code == 0
    listed = runner.invoke(app, ["trust", "list", "--policy", str(policy), "--json"])
    assert listed.exit_code == 0, listed.output
    data = json.loads(listed.stdout)
    assert data["threshold"] == 2 and [k["name"] for k in data["keys"]] == ["alice", "bob"]
    refused = runner.invoke(app, ["trust", "remove", "bob", "--policy", str(policy)])
    assert refused.exit_code == 2 and "would leave 1 key" in refused.output
    assert runner.invoke(app, ["trust", "threshold", "1", "--policy", str(policy)]).exit_code == 0
    assert runner.invoke(app, ["trust", "remove", "bob", "--policy", str(policy)]).exit_code == 0
    assert [k.name for k in trust.load_policy(policy).keys] == ["alice"]


def test_trust_add_warns_about_a_past_expiry(tmp_path: Path, pub: Path) -> None:
    done = CliRunner().invoke(
        app,
        [
            "trust",
            "add",
            "old",
            str(pub),
            "--policy",
            str(tmp_path / "p.toml"),
            "--expires",
            "2020-01-01",
        ],
    )
    assert done.exit_code == 0
    assert "--expires 2020-01-01 is in the past" in done.output
