"""What each crash the harness found now gives: the right refusal, not just no traceback.

test_fuzz.py::test_crashes replays every committed crash (seeds/crashes/) and only asks
for a result or a ProvenanceError. Here, one case per kind of crash, the outcome itself:
a fix that turned a crash into a silent pass would fail these.
"""

from __future__ import annotations

import json

import pytest

from provenance.attest import bundles, runnerlogs, testreports
from provenance.audit import ledger
from provenance.doors import drvfile, storeroot
from provenance.errors import AttestationError, NixError, RefusedError, UsageError
from provenance.formats import claims, dsse
from provenance.policy import nixenv
from tests.fuzz import harness, targets

HUGE = "9" * 5000  # over Python's int-from-text limit (4300 digits)


def _statement() -> dict[str, object]:
    return json.loads(json.dumps(harness.statements()[0]))


def test_a_recorded_enforcement_of_the_wrong_type_is_a_problem_not_a_pass() -> None:
    internal = {"nix": {"sandbox": True, "sandboxFallback": False, "sandboxEnforcement": []}}
    problem = nixenv.recorded_problem(internal, nixenv.EnvironmentPolicy())
    assert problem is not None and "sandboxEnforcement is []" in problem


def test_a_policy_listing_unhashable_enforcements_is_refused() -> None:
    with pytest.raises(UsageError, match="sandbox-enforcement must list"):
        nixenv.EnvironmentPolicy.from_table({"sandbox-enforcement": [["local-store"]]}, "p")


def test_a_signed_claim_with_a_flake_that_is_no_url_fails_binding() -> None:
    stmt = _statement()
    stmt["predicate"]["buildDefinition"]["externalParameters"]["flake"] = "git+file://["  # type: ignore[index]
    reports, _ = targets.verify_note(harness.sign_line(harness.dump(stmt)))
    (report,) = json.loads(reports)[:1]
    assert report["status"] == "FAILED"
    assert any("which is not a URL" in s["detail"] for s in report["steps"])


def test_a_signed_payload_with_a_lone_surrogate_is_refused() -> None:
    stmt = _statement()
    stmt["predicate"]["buildDefinition"]["externalParameters"]["check"] = "\ud800"  # type: ignore[index]
    with pytest.raises(AttestationError, match="lone UTF-16 surrogate"):
        claims.load_statement(harness.dump(stmt))
    emoji = harness.dump({**_statement(), "x": "\U0001f600"})  # a surrogate pair: one character
    assert claims.load_statement(emoji)["x"] == "\U0001f600"


def test_results_json_with_an_id_that_cannot_be_signed_is_refused() -> None:
    doc = harness.results_documents()[0]
    doc["tests"][0]["id"] = "\ud800"
    with pytest.raises(AttestationError, match="is not a provenance-test-results/v1"):
        testreports.parse_results_json(harness.dump(doc))


@pytest.mark.parametrize(
    "line",
    [
        b'{"payloadType":"x","payload":"","signatures":[],"n":' + HUGE.encode() + b"}",
        b"\xff\xfe",
    ],
)
def test_an_envelope_with_a_huge_number_or_bad_bytes_is_an_attestation_error(line: bytes) -> None:
    with pytest.raises(AttestationError, match="envelope is not valid JSON"):
        dsse.Envelope.from_json(line)


def test_a_runner_count_too_long_for_int_is_an_attestation_error() -> None:
    with pytest.raises(AttestationError, match="line 2 of the log holds a count too long"):
        runnerlogs.scan(f"start\n{HUGE} passed, 0 failed\n")
    with pytest.raises(AttestationError, match="number too long to be a test count"):
        testreports.parse_tap(f"1..{HUGE}\nok 1\n")


def test_junit_counts_too_long_for_int_still_count_as_failures() -> None:
    report = f'<testsuite failures="{HUGE}"><testcase name="a"/></testsuite>'.encode()
    with pytest.raises(AttestationError, match="but none of its test cases failed"):
        testreports.parse_junit(report)


def test_junit_nested_thousands_deep_is_refused() -> None:
    report = b"<testsuite>" * 3000 + b'<testcase name="a"/>' + b"</testsuite>" * 3000
    with pytest.raises(AttestationError, match="nests too deeply"):
        testreports.parse_junit(report)


@pytest.mark.parametrize(
    ("stdout", "message"),
    [
        (b"\xff", "not JSON"),
        (b"[" * 3000 + b"]" * 3000, "not JSON"),
        (HUGE.encode(), "not JSON"),
        (b"[[]]", "shape this tool cannot read"),
        (b'{"/nix/store/x": {"narHash": "sha256-", "narSize": 1e999}}', "cannot read"),
    ],
)
def test_nix_path_info_of_any_bytes_is_a_nix_error(stdout: bytes, message: str) -> None:
    with pytest.raises(NixError, match=message):
        targets.nix_path_info(stdout)


def test_nix_eval_naming_checks_that_are_not_strings_is_a_nix_error() -> None:
    answer = {"selected": {"drvs": {}, "names": [None]}, "systems": ["x86_64-linux"]}
    with pytest.raises(NixError, match="not the JSON asked for"):
        targets.nix_checks_named(json.dumps(answer).encode())


def test_a_drv_naming_an_input_with_a_nul_is_unreadable_not_a_crash() -> None:
    seed = harness.files("fuzz/seeds/drv/*chain-check.drv")[0]
    path = targets.scratch("nul.drv", seed.replace(b'[("/nix/store/', b'[("/nix/store/\x00', 1))
    assert drvfile.read_drv_closure_flags([str(path)]) is None  # the caller asks nix instead


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("time", "2026-13-99T99:99:99Z", "month must be in 1..12"),
        ("time", "9999-12-31T23:59:59.999Z", "outside 1970..8999"),
        ("time", "\uff12\uff10\uff12\uff16-01-01T00:00:00Z", "should match pattern"),
        ("durationMs", 10**400, "less than or equal"),
    ],
)
def test_a_ledger_entry_no_report_can_compute_with_breaks_the_chain(
    field: str, value: object, reason: str
) -> None:
    first, second = (json.loads(ln) for ln in harness.files("fuzz/seeds/ledger/*")[0].splitlines())
    first[field] = value
    line = ledger.canonical(first)
    second["prev"] = ledger.entry_hash(line)
    path = targets.scratch("bad-ledger.jsonl", line + b"\n" + ledger.canonical(second) + b"\n")
    report = ledger.verify_chain(path, keep=True)
    assert report.broken is not None and report.broken.line == 1
    assert reason in report.broken.reason
    assert report.items == []  # nothing after the break reaches a summary or the HTML report


def test_a_store_setting_that_is_no_url_is_refused_as_a_store_we_cannot_read() -> None:
    with pytest.raises(RefusedError, match="whose files are not on this machine"):
        storeroot.locate("local://[")


def test_merging_a_bundle_keeps_a_line_this_key_signed_over_junk() -> None:
    junk = _statement()
    junk["predicate"] = {"buildDefinition": True}
    old = harness.sign_line(harness.dump(junk))
    new = harness.sign_line(harness.dump(_statement()))
    assert bundles.merged([old], [new], harness.FUZZ_SIGNER.public) == [old, new]
