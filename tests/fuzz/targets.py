"""Every parser of outside input, as a function of the bytes that arrive.

Each target feeds its bytes through the code the way the tool does (a file on disk, a note
blob from git, nix's stdout) and returns what it read; `harness.bounded` judges the outcome.
Git and nix are replaced by fakes that hand over the fuzzed bytes: the parsers, not the
tools, are under test. TARGETS maps each name to its function (crash seeds replay by name).
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from provenance.attest import bundles, cache, runnerlogs, testreports, testresults
from provenance.audit import html, ledger, render, rules, stats
from provenance.ci import evidence
from provenance.doors import drvfile, notes, proc, selection, storeroot
from provenance.doors.nix import (
    Nix,
    parse_config,
    parse_derivations,
    parse_flake_metadata,
    parse_path_info,
)
from provenance.errors import UsageError
from provenance.formats import bundle, claims, dsse, keys
from provenance.policy import definition, nixenv, resolve, trust, trusted_ref
from provenance.policy.trust import TrustedKey, TrustPolicy
from provenance.progress import Reporter
from provenance.verify import authentic, binding
from provenance.verify import pipeline as verify_pipeline
from provenance.verify.verification import AUTHENTIC, BOUND, VerifyRequest
from tests.fuzz import harness

COMMIT = "121e272cf737cdc051486e49788bcebe2b397099"  # the commit the seeds attest
PARENT = "0" * 39 + "1"
TOP = Path("/tmp/fz13/ex/project")  # where the seeds were made (their flake URL says so)
CHECK = "unit"
DRV = "/nix/store/hdyaarqx1x03mcqs7zf5nm615q4d5x3h-wordcount-unit-tests.drv"
OUT = "/nix/store/ykmcdm6yxx8071m79k1hwl9syvw71scy-wordcount-unit-tests"
SYSTEM = "x86_64-linux"

# In memory where there is a tmpfs: bundles and ledgers are fsynced on every write.
_SHM = Path("/dev/shm")
_SCRATCH = Path(
    tempfile.mkdtemp(prefix="provenance-fuzz-", dir=_SHM if os.access(_SHM, os.W_OK) else None)
)
atexit.register(shutil.rmtree, _SCRATCH, ignore_errors=True)


def scratch(name: str, data: bytes, mode: int = 0o600) -> Path:
    """`data` as the file `name` in a private directory (rewritten for every input)."""
    path = _SCRATCH / name
    path.unlink(missing_ok=True)
    path.write_bytes(data)
    path.chmod(mode)
    return path


def _policy() -> TrustPolicy:
    example = keys.public_key_from_pem((harness.SEEDS / "keys" / "keygen.pub").read_bytes(), "x")
    return TrustPolicy(
        (TrustedKey("fuzz", harness.FUZZ_SIGNER.public), TrustedKey("example", example)),
        threshold=1,
        source="fuzz",
    )


POLICY = _policy()


# -- fakes of the two tools -------------------------------------------------------------------


class FakeGit:
    """What the readers ask git, answered from memory: one note on COMMIT, a parent."""

    def __init__(self, note: bytes = b"", files: Mapping[str, bytes] | None = None) -> None:
        self.note = note
        self.files = dict(files or {})

    def rev_list(self, rev: str, depth: int) -> list[str]:
        return [COMMIT, PARENT][:depth]

    def notes_index(self, ref: str = "") -> dict[str, str]:
        return {COMMIT: "b" * 40}

    def read_blobs(self, blobs: list[str]) -> dict[str, bytes]:
        return {b: self.note for b in blobs}

    def rev_parse(self, rev: str = "HEAD") -> str:
        if rev in (COMMIT, PARENT):
            return rev
        msg = f"unknown revision {rev[:40]!r}"
        raise UsageError(msg)

    def changed_paths(self, old: str, new: str) -> list[str]:
        return ["README.md"]

    def show_file(self, rev: str, path: str) -> bytes | None:
        return self.files.get(path)

    def refs(self, names: list[str]) -> dict[str, str]:
        return {n: "c" * 40 for n in names if n == "refs/remotes/origin/main"}

    def resolve_ref(self, ref: str) -> str | None:
        return COMMIT


Responder = Callable[[list[str]], proc.Completed]


@contextlib.contextmanager
def fake_nix(responder: Responder) -> Iterator[Nix]:
    """A Nix whose every command is answered by `responder` (proc.run, the one door, swapped)."""
    real = proc.run

    def run(cmd: list[str], **_: Any) -> proc.Completed:
        return responder(cmd)

    proc.run = run  # type: ignore[assignment]
    try:
        yield Nix(nix_bin="nix-fuzz", _version="2.8.0")
    finally:
        proc.run = real  # type: ignore[assignment]


def _answers(stdout: bytes, stderr: str = "", returncode: int = 0) -> Responder:
    def respond(cmd: list[str]) -> proc.Completed:
        return proc.Completed(cmd, returncode, stdout, stderr)

    return respond


_SELECTED = (harness.SEEDS / "nix" / "select-checks-2.8.json").read_bytes()
_DERIVATION = (harness.FIXTURES / "nix" / "show-derivation-2.8.json").read_bytes()


def _canned(cmd: list[str]) -> proc.Completed:
    """Real answers for what verify asks nix: the seed flake's checks and a derivation."""
    out = _SELECTED if "eval" in cmd else _DERIVATION if "show-derivation" in cmd else b"{}"
    return proc.Completed(cmd, 0, out, "")


# -- formats -----------------------------------------------------------------------------------


def envelope(data: bytes) -> object:
    env = dsse.Envelope.from_json(data)
    return dsse.verify(env, POLICY.active_keys())


def bundle_lines(data: bytes) -> object:
    return bundle.parse_pairs(data, "fuzz.intoto.jsonl")


def bundle_file(data: bytes) -> object:
    return bundle.read(scratch("fuzz.intoto.jsonl", data))


def statement(data: bytes) -> object:
    """A signed payload's statement, read as build, verify and gate read it."""
    stmt = claims.load_statement(data)
    found: list[object] = [claims.test_result_binding(stmt), claims.test_result_outcome(stmt)]
    claim = claims.parse_provenance(stmt)
    for env in (POLICY.environment, nixenv.EnvironmentPolicy(allowed_sandbox_paths=None)):
        found.append(nixenv.recorded_problem(claim.internal, env))
    return found


def public_pem(data: bytes) -> object:
    return keys.public_key_from_pem(data, "fuzz.pub")


def public_file(data: bytes) -> object:
    return keys.load_public_key(scratch("fuzz.pub", data))


def signing_key(data: bytes) -> object:
    return keys.load_signer(scratch("fuzz.key", data))


# -- note blobs --------------------------------------------------------------------------------


def notes_union(data: bytes) -> object:
    """Two note bodies (the input cut in half) unioned: no line of either may be lost."""
    ours, theirs = data[: len(data) // 2], data[len(data) // 2 :]
    merged = notes.union_lines(ours, theirs)
    for body in (ours, theirs):
        missing = [ln for ln in body.split(b"\n") if ln.strip() and ln not in merged]
        assert not missing, f"union lost {len(missing)} line(s)"
    return merged


def gate_note(data: bytes) -> object:
    """The gate's reading of a note on COMMIT, then its verdict on the seed's check."""
    ev = evidence.read_evidence([(COMMIT, data)], POLICY)
    ctx = evidence.Context(
        system=SYSTEM,
        commit=COMMIT,
        window=(COMMIT, PARENT),
        evidence=ev,
        policy=POLICY,
        definitions=definition.Definitions(FakeGit(), COMMIT),  # type: ignore[arg-type]
        outputs={CHECK: {"out": OUT}},
    )
    verdicts = [evidence.judge(CHECK, DRV, ctx)]
    verdicts += [evidence.judge(c.claim.check, c.claim.drv_path, ctx) for c in ev.claims[:5]]
    return [v.as_json() for v in verdicts]


def build_note(data: bytes) -> object:
    """`build`'s search of a note for its own earlier statements (the cache)."""
    own = cache.OwnLines()
    cache._scan_note(own, data, {COMMIT, PARENT}, COMMIT, {DRV: CHECK}, harness.FUZZ_SIGNER, set())
    return own


_NEW_LINE = harness.sign_line(harness.dump(harness.statements()[0]))  # what this build adds


def bundle_merge(data: bytes) -> object:
    """`build` adding its lines to an existing bundle: this key's older lines for the same
    check are replaced, every other line kept byte for byte."""
    path = scratch("merge.intoto.jsonl", data)
    new = [_NEW_LINE]
    try:
        existing = bundles._lines(path)
    except harness.ProvenanceError:
        existing = [ln for ln in data.split(b"\n") if ln.strip()]  # merged() takes any lines
    merged = bundles.merged(existing, new, harness.FUZZ_SIGNER.public)
    assert new[0] in merged
    return merged


def verify_note(data: bytes) -> object:
    """`verify` on a note: authentic, bound (static and re-evaluated), environment, verdict."""
    git = FakeGit(data)
    repo = binding.Repo(
        git,  # type: ignore[arg-type]
        TOP,
        "",
        COMMIT,
        (COMMIT, PARENT),
        definition.Definitions(git, COMMIT),  # type: ignore[arg-type]
    )
    atts = authentic.read_notes(git, COMMIT, 50)  # type: ignore[arg-type]
    for a in atts:
        authentic.authenticate(a, POLICY)
    with fake_nix(_canned) as nix:
        evaluated = binding.bind(atts, repo, nix, SYSTEM)
    binding.check_environment(atts, POLICY)
    binding.judge_failed_results(atts, evaluated, COMMIT, None)
    reports = [a.freeze((AUTHENTIC, BOUND)) for a in atts]
    results = verify_pipeline._judge_checks(atts, reports, POLICY)
    # --sign-with: the verification summary, signed over what the note said
    req = VerifyRequest(
        _SCRATCH,
        POLICY,
        signer=harness.FUZZ_SIGNER,
        vsa_output=_SCRATCH / "vsa.intoto.jsonl",
        attach_note=False,
    )
    vsa = verify_pipeline._write_vsa(req, repo, reports, (AUTHENTIC, BOUND), Reporter())
    return json.dumps([r.as_json() for r in reports] + [c.as_json() for c in results]), vsa


# -- policy ------------------------------------------------------------------------------------


def policy_file(data: bytes) -> object:
    path = scratch("provenance.toml", data)
    policy = trust.load_policy(path)
    return policy, resolve.digest(policy), policy.active_keys(dt.date(2030, 1, 1))


def policy_search(data: bytes) -> object:
    """The policy found in the flake directory, as verify finds it without options."""
    scratch("provenance.toml", data)
    return resolve.resolve([], None, [_SCRATCH])


def policy_ref(data: bytes) -> object:
    """`gate --policy-ref origin/main`: the provenance.toml on a trusted ref."""
    git = FakeGit(files={trust.POLICY_FILE: data})
    saved, tempfile.tempdir = tempfile.tempdir, str(_SCRATCH)  # its temp file, in memory too
    try:
        return trusted_ref.policy_from_ref(git, "origin/main", "")  # type: ignore[arg-type]
    finally:
        tempfile.tempdir = saved


def definition_paths(data: bytes) -> object:
    """`[definition] paths` of provenance.toml, as the gate compares definitions."""
    git = FakeGit(files={trust.POLICY_FILE: data})
    return definition.Definitions(git, COMMIT).changes_since(PARENT)  # type: ignore[arg-type]


# -- test reports and runner logs --------------------------------------------------------------


def junit(data: bytes) -> object:
    return testresults.parse_report(data, "junit", "fuzz.xml").render()


def tap(data: bytes) -> object:
    return testresults.parse_report(data, "tap", "fuzz.tap").render()


def runner_log(data: bytes) -> object:
    found = runnerlogs.scan(data.decode(errors="replace"))
    return found.describe(), found.failing(), testresults.parse_summary(data.decode("latin-1"))


def summary_report(data: bytes) -> object:
    return testresults.parse_report(data, "summary", "fuzz.txt").as_json()


def results_json(data: bytes) -> object:
    return testreports.parse_results_json(data, "results.json").render()


def found_reports(data: bytes) -> object:
    """A built output holding the input as each well-known report, with the log beside it."""
    out = _SCRATCH / "out"
    out.mkdir(exist_ok=True)
    for old in out.iterdir():
        old.unlink()
    first = data.lstrip()[:1]
    name = (
        "results.json" if first in (b"{", b"[") else "report.xml" if first == b"<" else "report.tap"
    )
    (out / name).write_bytes(data)
    return testresults.read_for_check({"out": (str(out), "0" * 64)}, data[::-1], CHECK, Reporter())


def declared(data: bytes) -> object:
    """The test report a .drv declares (testReport, or in __json with structured attrs)."""
    return testresults.declared_reports(str(scratch("x-fuzz.drv", data)))


# -- nix ---------------------------------------------------------------------------------------


def drv_flags(data: bytes) -> object:
    path = str(scratch("y-fuzz.drv", data))
    return drvfile.read_drv_flags(path), drvfile.read_drv_closure_flags([path])


def _nix_call(call: Callable[[Nix], object], stdout: bytes, stderr: str = "") -> object:
    with fake_nix(_answers(stdout, stderr)) as nix:
        return call(nix)


def nix_config(data: bytes) -> object:
    config = _nix_call(lambda n: n.config(), data)
    assert isinstance(config, type(parse_config({})))
    return config, nixenv.switched_off(config)


def nix_environment(data: bytes) -> object:
    """The build environment decided from nix's settings (what build refuses or records)."""
    config = _nix_call(lambda n: n.config(nixenv.forced_options()), data)
    with fake_nix(_answers(data)) as nix:
        store = nix.store_info()
        return nixenv.establish(nix, config, store)  # type: ignore[arg-type]


def nix_store_info(data: bytes) -> object:
    return _nix_call(lambda n: n.store_info(), data, data.decode(errors="replace"))


def nix_path_info(data: bytes) -> object:
    return _nix_call(lambda n: n.path_info([OUT, DRV]), data)


def nix_closure(data: bytes) -> object:
    return _nix_call(lambda n: n.closure_info([DRV]), data)


def nix_build(data: bytes) -> object:
    return _nix_call(lambda n: n.build(DRV), data)


def nix_flake_metadata(data: bytes) -> object:
    return _nix_call(lambda n: n.flake_metadata(str(TOP)), data)


def nix_derivations(data: bytes) -> object:
    return _nix_call(lambda n: (n.derivations([DRV]), n.drv_flags(["/nonexistent.drv"])), data)


def nix_checks(data: bytes) -> object:
    """select-checks.nix's answer (doors/selection), as `nix eval` prints it."""
    return _nix_call(lambda n: n.eval_checks(str(TOP), SYSTEM, None), data)


def nix_checks_named(data: bytes) -> object:
    return _nix_call(lambda n: n.eval_checks(str(TOP), SYSTEM, [CHECK]), data)


def nix_stderr(data: bytes) -> object:
    """What is read from nix's stderr and exit: errors, rebuild checks, store verify."""
    text = data.decode(errors="replace")
    found: list[object] = []
    for code in (0, 1, -9):
        with fake_nix(_answers(data, text, code)) as nix:
            for call in (
                lambda: nix.rebuild_check(DRV),
                lambda: nix.verify_store([OUT]),
                lambda: nix.log(OUT),
                lambda: nix.realise([DRV], options={}),
            ):
                try:
                    found.append(call())
                except Exception as e:  # only ProvenanceErrors may escape: rethrow others
                    if not isinstance(e, harness.ProvenanceError):
                        raise
                    found.append(e.message)
    found += [nixenv.saw_build(text, DRV), nixenv.nondeterministic_outputs(text)]
    return found


def nix_store_root(data: bytes) -> object:
    """Where the store's files are, from nix's `store` setting: the input as the setting's
    text, and as `nix config show` JSON naming one."""

    def from_config() -> object:
        config = _nix_call(lambda n: n.config(), data)
        return config.values.get("store")  # type: ignore[attr-defined]

    found: list[object] = []
    for setting in (lambda: data.decode(errors="replace").strip(), from_config):
        try:
            root = storeroot.locate(setting())
            found += [root, root.physical(OUT)]
        except harness.ProvenanceError as e:  # each on its own: one refusal hides no crash
            found.append(e.message)
    return found


def nix_version(data: bytes) -> object:
    with fake_nix(_answers(data)) as nix:
        nix._version = None
        return nix.version(), nix.version_tuple(), nixenv.installable(DRV, nix.version())


def nix_objects(data: bytes) -> object:
    """The parse_* functions on any JSON value (what a future nix might print)."""
    try:
        raw = json.loads(data)
    except (ValueError, RecursionError):
        return None  # not JSON: the _json readers above take that case
    found: list[object] = []
    for parse in (parse_config, parse_flake_metadata, parse_derivations, parse_path_info):
        try:
            found.append(parse(raw))
        except harness.ProvenanceError as e:
            found.append(e.message)
    try:
        found.append(selection.parse(raw, SYSTEM, [CHECK]))
    except selection.MalformedAnswer as e:  # the caller's cue to raise NixError
        found.append(str(e))
    except harness.ProvenanceError as e:
        found.append(e.message)
    return found


# -- the ledger --------------------------------------------------------------------------------


def ledger_read(data: bytes) -> object:
    """`audit verify`, `audit summary` (text, Markdown, HTML) and `audit check`."""
    path = scratch("ledger.jsonl", data, 0o644)
    chain = ledger.verify_chain(path, keep=True)
    s = stats.summarize(chain.items, str(path), chain)
    text = render.render_text(s) + render.render_markdown(s) + html.render(s, "now")
    report = rules.check_policy(
        chain.items,
        chain,
        require=[CHECK],
        require_reproduced=True,
        require_chain=True,
        since=dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
        commit=COMMIT[:7],
    )
    return chain.describe(), json.dumps(chain.as_json()), len(text), report


def ledger_append(data: bytes) -> object:
    """Appending after whatever the ledger's last line is (a crash's leftovers, an edit)."""
    path = scratch("ledger.jsonl", data, 0o644)
    draft = {
        "actor": {"host": "fuzz", "user": "fuzz"},
        "command": "gate",
        "ok": True,
        "repo": str(TOP),
        "tier": "local",
        "time": "2026-01-01T00:00:00.000Z",
    }
    return ledger.append(path, draft)


TARGETS: dict[str, Callable[[bytes], object]] = {
    "dsse.envelope": envelope,
    "bundle.lines": bundle_lines,
    "bundle.file": bundle_file,
    "claims.statement": statement,
    "keys.public_pem": public_pem,
    "keys.public_file": public_file,
    "keys.signing_key": signing_key,
    "notes.union": notes_union,
    "notes.gate": gate_note,
    "notes.build": build_note,
    "notes.verify": verify_note,
    "notes.bundle_merge": bundle_merge,
    "policy.file": policy_file,
    "policy.search": policy_search,
    "policy.ref": policy_ref,
    "policy.definition": definition_paths,
    "reports.junit": junit,
    "reports.tap": tap,
    "reports.summary": summary_report,
    "reports.runner_log": runner_log,
    "reports.results_json": results_json,
    "reports.found": found_reports,
    "reports.declared": declared,
    "nix.drvfile": drv_flags,
    "nix.config": nix_config,
    "nix.environment": nix_environment,
    "nix.store_info": nix_store_info,
    "nix.path_info": nix_path_info,
    "nix.closure": nix_closure,
    "nix.build": nix_build,
    "nix.flake_metadata": nix_flake_metadata,
    "nix.derivations": nix_derivations,
    "nix.checks": nix_checks,
    "nix.checks_named": nix_checks_named,
    "nix.stderr": nix_stderr,
    "nix.version": nix_version,
    "nix.store_root": nix_store_root,
    "nix.objects": nix_objects,
    "ledger.read": ledger_read,
    "ledger.append": ledger_append,
}
