"""Thin typer CLI: parse options, call one API function, render, map errors to exit codes.

This is the only place that exits. Humans read stderr; `--json` output goes to stdout.
Exit codes (docs/cli.md): 0 ok, 1 failed check or verification, 2 bad usage or input,
3 refused (cannot be attested honestly), 4 environment (nix/git missing or failing).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import typer

from provenance.errors import ExitCode, ProvenanceError
from provenance.progress import Reporter

app = typer.Typer(
    name="provenance",
    help="Signed, drv-hash-bound attestations for Nix flake checks.\n\n"
    "build: attest your checks; verify: check a bundle; gate: let CI skip proven work.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
log = logging.getLogger("provenance")
T = TypeVar("T")


class StderrReporter(Reporter):
    def __init__(self, *, quiet: bool = False) -> None:
        self.quiet = quiet

    def info(self, message: str) -> None:
        if not self.quiet:
            typer.echo(message, err=True)

    def warn(self, message: str) -> None:
        typer.echo(f"warning: {message}", err=True)

    def log_line(self, check: str, line: str) -> None:
        if not self.quiet:
            typer.echo(f"  {check}| {line}", err=True)


def _setup_logging(verbose: bool) -> None:
    level = os.environ.get("PROVENANCE_LOGLEVEL", "DEBUG" if verbose else "WARNING").upper()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False


def _guard(fn: Callable[[], T]) -> T:
    """Run an API call; turn our errors into one stderr line and a documented exit code."""
    try:
        return fn()
    except ProvenanceError as e:
        typer.echo(f"error: {e.diagnostics()}", err=True)
        raise typer.Exit(e.exit_code) from None
    except KeyboardInterrupt:
        typer.echo("interrupted; nothing was attached", err=True)
        raise typer.Exit(130) from None


def _emit_json(obj: Any) -> None:
    typer.echo(json.dumps(obj, indent=2, sort_keys=True))


Verbose = Annotated[
    bool, typer.Option("--verbose", "-v", help="Debug logging (every nix/git call).")
]
JsonOut = Annotated[bool, typer.Option("--json", help="Print a machine-readable result on stdout.")]


@app.command()
def keygen(
    out_dir: Annotated[
        Path, typer.Option("--out-dir", help="Directory for provenance.key and .pub.")
    ],
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing key files.")] = False,
    json_out: JsonOut = False,
) -> None:
    """Create an Ed25519 signing key (PKCS#8 PEM, 0600) and its public key (SPKI PEM).

    The keyid is the hex SHA-256 of the public key's DER SubjectPublicKeyInfo.
    """
    from provenance.formats import keys  # noqa: PLC0415 - keep `--help` and other commands lean

    key_path, pub_path, keyid = _guard(lambda: keys.generate(out_dir, force=force))
    if json_out:
        _emit_json({"key": str(key_path), "pub": str(pub_path), "keyid": keyid})
    typer.echo(f"wrote {key_path} (keep secret) and {pub_path}\nkeyid {keyid}", err=True)


@app.command()
def build(
    flake_dir: Annotated[Path, typer.Argument(help="Flake directory inside a git repo.")] = Path(),
    key: Annotated[
        Path | None,
        typer.Option(
            "--key", envvar="PROVENANCE_KEY", help="Ed25519 signing key (or $PROVENANCE_KEY)."
        ),
    ] = None,
    check: Annotated[
        list[str] | None, typer.Option("--check", help="Attest only this check (repeatable).")
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Bundle path [default: FLAKE_DIR/.provenance/COMMIT.intoto.jsonl].",
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Rebuild and re-attest even on a cache hit.")
    ] = False,
    allow_dirty: Annotated[
        bool,
        typer.Option(
            "--allow-dirty", help="Attest uncommitted changes (labelled dirty; no git note)."
        ),
    ] = False,
    no_note: Annotated[
        bool, typer.Option("--no-note", help="Write the bundle but attach no git note.")
    ] = False,
    verify_deps: Annotated[
        bool,
        typer.Option(
            "--verify-deps",
            help="First prove that dependency outputs and sources in the store still match "
            "their recorded hashes (nix store verify); recorded in the statement.",
        ),
    ] = False,
    service: Annotated[
        Path | None,
        typer.Option(
            "--service",
            envvar="PROVENANCE_SERVICE",
            help="Have the attestation service at this socket build and sign "
            "(or $PROVENANCE_SERVICE); no key needed (docs/service.md).",
        ),
    ] = None,
    json_out: JsonOut = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Only warnings and errors on stderr.")
    ] = False,
    verbose: Verbose = False,
) -> None:
    """Evaluate the flake's checks, build them in the Nix sandbox, and sign what was proven.

    Each check's outputs become subjects (hex NAR SHA-256) of an in-toto Statement with
    an SLSA Provenance v1 predicate, signed in a DSSE envelope. The bundle (.intoto.jsonl)
    is written atomically and unioned into the git note refs/notes/provenance on HEAD.
    A check this key already attested for the same drvPath on HEAD is a cache hit.
    """
    _setup_logging(verbose)
    if service is not None:
        options = (check, output, force, allow_dirty, no_note, verify_deps)
        _build_via_service(service, flake_dir, key, options, json_out=json_out, quiet=quiet)
        return
    from provenance.attest import pipeline as attest  # noqa: PLC0415
    from provenance.doors.nix import Nix, default_nix_bin  # noqa: PLC0415
    from provenance.formats import keys  # noqa: PLC0415

    if key is None:
        typer.echo("error: no signing key (pass --key PATH or set PROVENANCE_KEY)", err=True)
        raise typer.Exit(ExitCode.USAGE)
    reporter = StderrReporter(quiet=quiet)
    signer = _guard(lambda: keys.load_signer(key))
    req = attest.BuildRequest(
        flake_dir=flake_dir,
        signer=signer,
        checks=tuple(check) if check else None,
        output=output,
        force=force,
        allow_dirty=allow_dirty,
        attach_note=not no_note,
        verify_deps=verify_deps,
    )
    started = time.monotonic()

    def run_build() -> attest.BuildReport:
        try:
            return attest.build(req, Nix(default_nix_bin()), reporter)
        except attest.ChecksFailedError as e:
            _record_build(flake_dir, e.report, started, reporter)  # failed runs count too
            raise

    report = _guard(run_build)
    _record_build(flake_dir, report, started, reporter)
    if json_out:
        _emit_json(report.as_json())
    where = f"bundle {report.bundle_path}" if report.bundle_path else "no bundle"
    note = "; note on refs/notes/provenance" if report.note_attached else ""
    reporter.info(f"{len(report.checks)} check(s) proven at {report.commit[:12]}: {where}{note}")


@app.command()
def example(
    workdir: Annotated[
        Path | None,
        typer.Option("--workdir", help="Where to put the example [default: a temp dir]."),
    ] = None,
    json_out: JsonOut = False,
) -> None:
    """Run the built-in example: copy a small flake, git-commit it, keygen, build, show."""
    from provenance import example as ex  # noqa: PLC0415

    summary = _guard(lambda: ex.run(workdir, StderrReporter()))
    if json_out:
        _emit_json(summary)


trust_app = typer.Typer(
    help="Manage the trust policy file (provenance.toml).", no_args_is_help=True
)
app.add_typer(trust_app, name="trust")


@trust_app.command("add")
def trust_add(
    name: Annotated[str, typer.Argument(help="A name for the key, e.g. alice or ci.")],
    pub: Annotated[Path, typer.Argument(help="The Ed25519 public key (PEM) to trust.")],
    policy: Annotated[Path, typer.Option("--policy", help="Policy file to write.")] = Path(
        "provenance.toml"
    ),
    expires: Annotated[
        str | None,
        typer.Option("--expires", help="Stop trusting the key after this date (YYYY-MM-DD)."),
    ] = None,
    service: Annotated[
        bool,
        typer.Option(
            "--service", help="An attestation service's key: its statements can be isolated."
        ),
    ] = False,
) -> None:
    """Trust PUB under NAME in the policy file (added or replaced; the rest is kept)."""
    import datetime as dt  # noqa: PLC0415

    from provenance.policy import trust  # noqa: PLC0415

    try:
        day = dt.date.fromisoformat(expires) if expires else None
    except ValueError:
        typer.echo(f"error: --expires {expires!r} is not a YYYY-MM-DD date", err=True)
        raise typer.Exit(ExitCode.USAGE) from None
    entry = _guard(lambda: trust.add_key(policy, name, pub, day, service=service))
    typer.echo(f"{policy}: trusting {name} (keyid {entry.key.keyid[:16]}...)", err=True)


@app.command()
def verify(
    bundles: Annotated[
        list[Path] | None,
        typer.Argument(help="Bundles (.intoto.jsonl) to verify [default: the git note on --rev]."),
    ] = None,
    trusted_key: Annotated[
        list[Path] | None,
        typer.Option("--trusted-key", help="Trust this Ed25519 public key (repeatable)."),
    ] = None,
    policy: Annotated[
        Path | None,
        typer.Option("--policy", help="Trust policy file [default: the repo's provenance.toml]."),
    ] = None,
    flake: Annotated[
        Path, typer.Option("--flake", help="Flake directory in the git repo.")
    ] = Path(),
    rev: Annotated[
        str, typer.Option("--rev", help="The commit attestations must bind to.")
    ] = "HEAD",
    check: Annotated[
        list[str] | None, typer.Option("--check", help="Verify only this check (repeatable).")
    ] = None,
    rebuild: Annotated[
        bool, typer.Option("--rebuild", help="Rebuild; compare every output's NAR hash (level 3).")
    ] = False,
    store: Annotated[
        Path | None,
        typer.Option("--store", help="Fresh store root for --rebuild [default: a temp dir]."),
    ] = None,
    in_place: Annotated[
        bool, typer.Option("--in-place", help="Rebuild in the local store (nix --rebuild).")
    ] = False,
    sign_with: Annotated[
        Path | None,
        typer.Option("--sign-with", help="Sign an SLSA Verification Summary with this key."),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="VSA bundle [default: FLAKE/.provenance/REV.vsa.intoto.jsonl]."
        ),
    ] = None,
    no_note: Annotated[bool, typer.Option("--no-note", help="Attach no VSA git note.")] = False,
    json_out: JsonOut = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Only failures and the verdict.")
    ] = False,
    verbose: Verbose = False,
) -> None:
    """Check attestations: signatures, binding to the flake at --rev, and (--rebuild) reproduction.

    Levels: authentic (trusted signatures over the exact payload), bound (re-evaluating
    the flake at the attested commit gives the attested drvPath and outputs), reproduced
    (an independent rebuild gives the attested NAR hashes; differing files are listed).
    Exit 0 all verified, 1 verification failed, 2 bad usage or unreadable input,
    4 nix/git failure. See docs/verify.md.
    """
    _setup_logging(verbose)
    from provenance.doors.nix import Nix, default_nix_bin  # noqa: PLC0415
    from provenance.formats import keys  # noqa: PLC0415
    from provenance.policy import resolve as policy_mod  # noqa: PLC0415
    from provenance.verify import pipeline as verify_mod  # noqa: PLC0415

    reporter = StderrReporter(quiet=quiet)
    search = [flake.resolve()]
    trust = _guard(lambda: policy_mod.resolve(list(trusted_key or []), policy, search))
    signer = _guard(lambda: keys.load_signer(sign_with)) if sign_with else None
    req = verify_mod.VerifyRequest(
        flake_dir=flake,
        policy=trust,
        bundles=tuple(bundles or ()),
        rev=rev,
        checks=tuple(check) if check else None,
        rebuild=rebuild,
        in_place=in_place,
        store=store,
        signer=signer,
        vsa_output=output,
        attach_note=not no_note,
    )
    started = time.monotonic()
    report = _guard(lambda: verify_mod.verify(req, Nix(default_nix_bin()), reporter))
    _record(
        flake,
        "verify",
        ok=report.passed,
        commit=report.rev,
        report=report,
        bundles=[(b, "read") for b in bundles or ()],
        started=started,
        reporter=reporter,
    )
    if json_out:
        _emit_json(report.as_json())
    for line in report.lines():
        if not quiet or not line.startswith(("OK", "SKIP")):
            typer.echo(line, err=True)
    if report.vsa_path:
        note = "; note on refs/notes/provenance" if report.vsa_note else ""
        reporter.info(f"verification summary: {report.vsa_path}{note}")
    if not report.passed:
        raise typer.Exit(ExitCode.FAILED)


def _record_build(flake_dir: Path, report: Any, started: float, reporter: Reporter) -> None:
    _record(
        flake_dir,
        "build",
        ok=not report.failed,
        commit=report.commit,
        report=report,
        bundles=[(report.bundle_path, "written")] if report.bundle_path else [],
        started=started,
        reporter=reporter,
        keyid=report.keyid,
    )


def _record(
    where: Path,
    command: Literal["build", "verify", "gate"],
    *,
    ok: bool,
    commit: str | None,
    report: Any,
    bundles: list[tuple[Path, Literal["written", "read"]]],
    started: float,
    reporter: Reporter,
    keyid: str | None = None,
) -> None:
    """Append the run to the audit ledger; a ledger problem is only a warning."""
    from provenance.audit import ledger  # noqa: PLC0415

    per_check = {
        "build": ledger.build_checks,
        "verify": ledger.verify_checks,
        "gate": ledger.gate_checks,
    }[command]
    ledger.record(
        where,
        command=command,
        ok=ok,
        commit=commit,
        checks=per_check(report),
        bundles=bundles,
        keyid=keyid,
        duration_ms=int((time.monotonic() - started) * 1000),
        warn=reporter.warn,
    )


def main() -> None:
    app()


# -- audit ------------------------------------------------------------------------------

audit_app = typer.Typer(
    help="Read the audit ledger (.provenance/ledger.jsonl): verify, summarise, report, gate.",
    no_args_is_help=True,
)
app.add_typer(audit_app, name="audit")

LedgerOpt = Annotated[
    Path | None,
    typer.Option("--ledger", help="Ledger [default: <git toplevel>/.provenance/ledger.jsonl]."),
]


def _ledger(ledger: Path | None) -> Path:
    from provenance.audit import summary as audit  # noqa: PLC0415

    return _guard(lambda: audit.ledger_path(ledger))


def _warn_chain(chain: Any) -> None:
    from provenance.audit import summary as audit  # noqa: PLC0415

    if chain.broken:
        typer.echo(f"warning: {chain.path}: chain {audit.chain_line(chain)}", err=True)
    elif chain.partial_tail:
        typer.echo(f"warning: {chain.path}: {audit.chain_line(chain)}", err=True)


@audit_app.command("verify")
def audit_verify(ledger: LedgerOpt = None, json_out: JsonOut = False) -> None:
    """Check the hash chain; name the first broken entry (exit 1) or print the head hash."""
    from provenance.audit import ledger as ledger_mod  # noqa: PLC0415

    path = _ledger(ledger)
    report = _guard(lambda: ledger_mod.verify_chain(path))
    if json_out:
        _emit_json(report.as_json())
    if report.partial_tail:
        typer.echo(
            f"warning: {path}: the last line is incomplete ({report.partial_tail} bytes, "
            "an interrupted append); the next append drops it",
            err=True,
        )
    if report.broken:
        typer.echo(f"error: {report.describe()}", err=True)
        raise typer.Exit(ExitCode.FAILED)
    typer.echo(f"OK: {report.describe()}", err=True)


@audit_app.command("summary")
def audit_summary(ledger: LedgerOpt = None, json_out: JsonOut = False) -> None:
    """Runs, pass rate per check, and how many results are local, CI or reproduced."""
    from provenance.audit import summary as audit  # noqa: PLC0415

    path = _ledger(ledger)
    s = _guard(lambda: audit.summary(path))
    if s.chain:
        _warn_chain(s.chain)
    if json_out:
        _emit_json(s.as_json())
    else:
        typer.echo(audit.render_text(s), nl=False)


def _write_reports(s: Any, html_out: Path | None, markdown: bool) -> None:
    from provenance.audit import html as report_html  # noqa: PLC0415
    from provenance.audit import summary as audit  # noqa: PLC0415
    from provenance.formats import bundle  # noqa: PLC0415

    if html_out is None and not markdown:
        typer.echo("error: nothing to write (pass --html FILE and/or --markdown)", err=True)
        raise typer.Exit(ExitCode.USAGE)
    if html_out is not None:
        page = report_html.render(s).encode()
        _guard(lambda: bundle.write_atomic(html_out, page))
        typer.echo(f"wrote {html_out} ({len(page)} bytes)", err=True)
    if markdown:
        typer.echo(audit.render_markdown(s), nl=False)


@audit_app.command("report")
def audit_report(
    ledger: LedgerOpt = None,
    html_out: Annotated[
        Path | None, typer.Option("--html", help="Write a self-contained HTML page here.")
    ] = None,
    markdown: Annotated[
        bool, typer.Option("--markdown", help="Print Markdown (PR comments, step summaries).")
    ] = False,
) -> None:
    """Write the summary as one HTML page (plots, recent runs) and/or Markdown on stdout."""
    from provenance.audit import summary as audit  # noqa: PLC0415

    path = _ledger(ledger)
    s = _guard(lambda: audit.summary(path))
    if s.chain:
        _warn_chain(s.chain)
    _write_reports(s, html_out, markdown)


@audit_app.command("aggregate")
def audit_aggregate(
    paths: Annotated[list[Path], typer.Argument(help="Ledger files or repository directories.")],
    json_out: JsonOut = False,
    html_out: Annotated[
        Path | None, typer.Option("--html", help="Also write an HTML page here.")
    ] = None,
    markdown: Annotated[bool, typer.Option("--markdown", help="Print Markdown instead.")] = False,
) -> None:
    """Roll several repositories' ledgers up into one summary."""
    from provenance.audit import summary as audit  # noqa: PLC0415

    s = _guard(lambda: audit.aggregate(paths))
    for part in s.parts:
        if part.chain:
            _warn_chain(part.chain)
    if json_out:
        _emit_json(s.as_json())
    if html_out is not None or markdown:
        _write_reports(s, html_out, markdown)
    elif not json_out:
        typer.echo(audit.render_text(s), nl=False)


@audit_app.command("check")
def audit_check(
    require: Annotated[
        list[str] | None,
        typer.Option("--require", help="This check's latest result must be a pass (repeatable)."),
    ] = None,
    require_reproduced: Annotated[
        bool,
        typer.Option(
            "--require-reproduced",
            help="Required checks (or all in scope) must also be reproduced.",
        ),
    ] = False,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Only entries from this ISO date/time, or an age: 7d, 12h."),
    ] = None,
    commit: Annotated[
        str | None, typer.Option("--commit", help="Only entries for this commit (or prefix).")
    ] = None,
    require_chain: Annotated[
        bool, typer.Option("--require-chain", help="The ledger's hash chain must verify.")
    ] = False,
    ledger: LedgerOpt = None,
    json_out: JsonOut = False,
) -> None:
    """Policy gate over the ledger: exit 0 if every rule holds, 1 listing the failed rules."""
    from provenance.audit import summary as audit  # noqa: PLC0415

    path = _ledger(ledger)
    when = _guard(lambda: audit.parse_since(since)) if since else None
    entries, chain = _guard(lambda: audit.load(path))
    _warn_chain(chain)
    result = _guard(
        lambda: audit.check_policy(
            entries,
            chain,
            require=require or [],
            require_reproduced=require_reproduced,
            require_chain=require_chain,
            since=when,
            commit=commit,
        )
    )
    if json_out:
        _emit_json(result.as_json())
    for r in result.rules:
        typer.echo(f"{'PASS' if r.ok else 'FAIL'}: {r.rule}: {r.detail}", err=True)
    _guard(result.raise_if_failed)


# -- notes sync, gate, hooks (the local-first loop; docs/ci.md) -----------------------------

notes_app = typer.Typer(
    help="Move the attestation notes (refs/notes/provenance) to and from a remote.",
    no_args_is_help=True,
)
app.add_typer(notes_app, name="notes")
Repo = Annotated[Path, typer.Option("--repo", "-C", help="Repository (or flake) directory.")]


@notes_app.command("fetch")
def notes_fetch(
    remote: Annotated[str, typer.Argument(help="Remote name or URL.")] = "origin",
    repo: Repo = Path(),
) -> None:
    """Fetch the remote's notes and union them into ours (lines are never lost)."""
    from provenance.doors import notes  # noqa: PLC0415
    from provenance.doors.git import Git  # noqa: PLC0415

    res = _guard(lambda: notes.fetch(Git(repo), remote))
    shown = f"unioned, {res.gained} note(s) gained lines" if res.found else "none"
    typer.echo(f"notes: {shown} from {remote}", err=True)


@notes_app.command("push")
def notes_push(
    remote: Annotated[str, typer.Argument(help="Remote name or URL.")] = "origin",
    repo: Repo = Path(),
) -> None:
    """Fetch-union-push our notes to the remote, retrying when someone pushed meanwhile."""
    from provenance.doors import notes  # noqa: PLC0415
    from provenance.doors.git import Git  # noqa: PLC0415

    res = _guard(lambda: notes.push(Git(repo), remote))
    if res.found:
        typer.echo(f"notes: pushed to {remote} (attempt {res.attempts})", err=True)
    else:
        typer.echo(f"notes: nothing to push to {remote}", err=True)


@app.command()
def gate(
    flake_dir: Annotated[Path, typer.Argument(help="Flake directory inside a git repo.")] = Path(),
    rev: Annotated[str, typer.Option("--rev", help="Revision to decide for.")] = "HEAD",
    trusted_key: Annotated[
        list[Path] | None,
        typer.Option("--trusted-key", help="Trusted public key (repeatable); from a CI secret."),
    ] = None,
    policy: Annotated[
        Path | None, typer.Option("--policy", help="Policy file outside the tree under test.")
    ] = None,
    policy_ref: Annotated[
        str | None,
        typer.Option(
            "--policy-ref",
            help="Read provenance.toml from this trusted ref: a full ref name or a remote-tracking"
            " branch nothing else is named like [default: refs/remotes/origin/<target branch>"
            " from $GITHUB_BASE_REF, $CI_MERGE_REQUEST_TARGET_BRANCH_NAME or $CI_DEFAULT_BRANCH].",
        ),
    ] = None,
    require: Annotated[
        list[str] | None,
        typer.Option("--require", help="Check that must be proven (repeatable) [default: all]."),
    ] = None,
    remote: Annotated[
        str | None, typer.Option("--remote", help="Remote to fetch notes from [default: origin].")
    ] = None,
    no_fetch: Annotated[bool, typer.Option("--no-fetch", help="Use the local notes only.")] = False,
    search_depth: Annotated[
        int,
        typer.Option(
            "--search-depth", min=1, help="Commits searched for the same drvPath, REV included."
        ),
    ] = 50,
    json_out: JsonOut = False,
    verbose: Verbose = False,
) -> None:
    """Decide whether CI may skip the checks (skip=true|false, for CI).

    skip=true only when every required check has a valid attestation from a trusted key
    for exactly its drvPath at REV (or an ancestor within --search-depth commits that
    defines the checks the same way: docs/architecture.md).

    Fails safe: any doubt or error prints skip=false and exits 0, so CI simply runs.
    Only bad usage exits 2 (no trust given; an unreadable key or policy; a key or policy
    inside the tree under test). Writes skip= and reason= to $GITHUB_OUTPUT and a table to
    $GITHUB_STEP_SUMMARY when those are set.
    """
    _setup_logging(verbose)
    from provenance.ci import gate as g  # noqa: PLC0415
    from provenance.doors.nix import Nix, default_nix_bin  # noqa: PLC0415

    keys_given = list(trusted_key or [])
    given = sum(bool(x) for x in (keys_given, policy, policy_ref))
    if given > 1:
        typer.echo("error: pass one of --trusted-key, --policy, --policy-ref", err=True)
        raise typer.Exit(ExitCode.USAGE)
    trust = _guard(lambda: g.resolve_trust(flake_dir, keys_given, policy))
    if trust is None and policy_ref is None:
        branch = g.target_branch(os.environ)
        if branch is None:
            typer.echo(
                "error: no trust given (pass --trusted-key PUB, --policy FILE or --policy-ref REF;"
                " on CI the target branch is used when the CI names it)",
                err=True,
            )
            raise typer.Exit(ExitCode.USAGE)
        # The full name: a tag or local branch called origin/<branch> cannot shadow it.
        policy_ref = f"refs/remotes/{remote or 'origin'}/{branch}"
    req = g.GateRequest(
        flake_dir=flake_dir,
        rev=rev,
        policy=trust,
        policy_ref=policy_ref,
        required=tuple(require) if require else None,
        remote=remote,
        fetch=not no_fetch,
        search_depth=search_depth,
    )
    started = time.monotonic()
    report = g.gate(req, Nix(default_nix_bin()))
    _record(
        flake_dir,
        "gate",
        ok=report.skip,
        commit=report.commit,
        report=report,
        bundles=[],
        started=started,
        reporter=StderrReporter(),
    )
    for problem in g.write_ci_files(report):
        typer.echo(f"warning: {problem}", err=True)
    if json_out:
        typer.echo(g.to_json(report))
    typer.echo(g.text(report), err=True)


hooks_app = typer.Typer(
    help="Opt-in git hooks: attest each commit, push notes.", no_args_is_help=True
)
app.add_typer(hooks_app, name="hooks")


@hooks_app.command("install")
def hooks_install(
    flake_dir: Annotated[Path, typer.Argument(help="Flake directory inside a git repo.")] = Path(),
) -> None:
    """Add marked blocks to pre-commit, post-commit and pre-push (existing hooks are kept).

    post-commit runs `provenance build` in the background with $PROVENANCE_KEY or
    `git config provenance.key`, skipping commits made with --no-verify; pre-push runs
    `provenance notes push`. Neither can fail your commit or push.
    """
    from provenance.ci import hooks  # noqa: PLC0415

    for c in _guard(lambda: hooks.install(flake_dir)):
        typer.echo(f"{c.hook}: {c.action} ({c.path})", err=True)
    if not _guard(lambda: hooks.signing_key_configured(flake_dir)):
        typer.echo(
            "warning: no signing key is configured, so post-commit will attest nothing; "
            "set one with `git config provenance.key PATH` or export PROVENANCE_KEY",
            err=True,
        )


@hooks_app.command("uninstall")
def hooks_uninstall(
    flake_dir: Annotated[Path, typer.Argument(help="Flake directory inside a git repo.")] = Path(),
) -> None:
    """Remove exactly the blocks `hooks install` added (and a hook file left empty)."""
    from provenance.ci import hooks  # noqa: PLC0415

    changes = _guard(lambda: hooks.uninstall(flake_dir))
    for c in changes:
        typer.echo(f"{c.hook}: {c.action} ({c.path})", err=True)
    if not changes:
        typer.echo("no provenance hooks installed", err=True)


# --- attestation service (issue 15; docs/service.md) -------------------------------------


def _build_via_service(
    socket_path: Path,
    flake_dir: Path,
    key: Path | None,
    options: tuple[list[str] | None, Path | None, bool, bool, bool, bool],
    *,
    json_out: bool,
    quiet: bool,
) -> None:
    """`build --service`: the same report, output and ledger entry as a local build."""
    from provenance.attest import pipeline as attest  # noqa: PLC0415
    from provenance.service import client  # noqa: PLC0415

    check, output, force, allow_dirty, no_note, verify_deps = options
    reporter = StderrReporter(quiet=quiet)
    if allow_dirty:
        typer.echo(
            "error: --allow-dirty does not go with --service: the service attests commits, "
            "never a work tree (commit first)",
            err=True,
        )
        raise typer.Exit(ExitCode.USAGE)
    if key is not None:
        reporter.warn(f"the service signs: the key {key} (--key or $PROVENANCE_KEY) is not used")
    req = client.ServiceBuildRequest(
        socket_path=socket_path,
        flake_dir=flake_dir,
        checks=tuple(check) if check else None,
        output=output,
        force=force,
        attach_note=not no_note,
        verify_deps=verify_deps,
    )
    started = time.monotonic()

    def run_build() -> attest.BuildReport:
        try:
            return client.build(req, reporter)
        except attest.ChecksFailedError as e:
            _record_build(flake_dir, e.report, started, reporter)
            raise

    report = _guard(run_build)
    _record_build(flake_dir, report, started, reporter)
    if json_out:
        _emit_json(report.as_json())
    where = f"bundle {report.bundle_path}" if report.bundle_path else "no bundle"
    note = "; note on refs/notes/provenance" if report.note_attached else ""
    reporter.info(
        f"{len(report.checks)} check(s) proven at {report.commit[:12]} by the service "
        f"(keyid {report.keyid[:16]}): {where}{note}"
    )


@app.command()
def serve(
    socket_path: Annotated[
        Path, typer.Option("--socket", help="The Unix socket to listen on.")
    ] = Path("/run/provenance/socket"),
    state_dir: Annotated[
        Path, typer.Option("--state-dir", help="The service's mirrors, cache and key.")
    ] = Path("/var/lib/provenance"),
    key: Annotated[
        Path | None,
        typer.Option("--key", help="The signing key [default: STATE_DIR/key/provenance.key]."),
    ] = None,
    socket_mode: Annotated[
        str, typer.Option("--socket-mode", help="Octal mode of the socket (who may ask).")
    ] = "666",
    socket_group: Annotated[
        str | None, typer.Option("--socket-group", help="Group of the socket (with mode 660).")
    ] = None,
    workers: Annotated[
        int, typer.Option("--workers", min=1, help="Requests built at once; others wait.")
    ] = 4,
    keep_checkouts: Annotated[
        int, typer.Option("--keep-checkouts", min=1, help="Work trees kept per repository.")
    ] = 32,
    setup: Annotated[
        bool,
        typer.Option(
            "--setup", help="As root: create the service's user, state directory and key; exit."
        ),
    ] = False,
    user: Annotated[
        str, typer.Option("--user", help="With --setup: the service's user name.")
    ] = "provenance",
    uid: Annotated[
        int | None,
        typer.Option("--uid", min=1, help="With --setup: the new user's uid (and group id)."),
    ] = None,
    json_out: JsonOut = False,
) -> None:
    """Run the attestation service: build and sign other users' commits with a key they cannot read.

    Run it as its own user (`--setup` makes one). Agents then run
    `provenance build --service SOCKET` (or set PROVENANCE_SERVICE): the same command and
    output, but the commit is fetched into the service's mirror, built through the
    nix-daemon in the service's own environment, and signed with the service's key, with
    trustTier `isolated`. Stops on SIGTERM. See docs/service.md.
    """
    import grp  # noqa: PLC0415

    from provenance.service import server  # noqa: PLC0415
    from provenance.service import setup as setup_mod  # noqa: PLC0415

    if setup:
        done = _guard(lambda: setup_mod.setup(user, state_dir, socket_path, uid))
        if json_out:
            _emit_json(done.as_json())
        made = "created" if done.created_user else "kept"
        typer.echo(
            f"user {done.user} (uid {done.uid}): {made}; key {done.key_path} "
            f"({'created' if done.created_key else 'kept'}), keyid {done.keyid}\n"
            f"start it:  runuser -u {done.user} -- provenance serve --socket {done.socket_path}"
            f" --state-dir {done.state_dir}\n"
            f"trust it:  provenance trust add build-service {done.pub_path} --service\n"
            f"use it:    export PROVENANCE_SERVICE={done.socket_path}; provenance build\n"
            f"(with Nix's daemon, add `trusted-users = {done.user}` to nix.conf so that the "
            "service's sandbox options are in force; docs/service.md)",
            err=True,
        )
        return
    try:
        mode = int(socket_mode, 8)
    except ValueError:
        typer.echo(f"error: --socket-mode {socket_mode!r} is not an octal mode", err=True)
        raise typer.Exit(ExitCode.USAGE) from None
    gid = None
    if socket_group is not None:
        try:
            gid = grp.getgrnam(socket_group).gr_gid
        except KeyError:
            typer.echo(f"error: no group {socket_group!r}", err=True)
            raise typer.Exit(ExitCode.USAGE) from None
    cfg = server.ServeConfig(
        socket_path=socket_path.absolute(),
        state_dir=state_dir.absolute(),
        key_path=(key or state_dir / "key" / "provenance.key").absolute(),
        socket_mode=mode,
        socket_group=gid,
        workers=workers,
        keep_checkouts=keep_checkouts,
    )
    _guard(lambda: server.serve(cfg, lambda line: typer.echo(f"serve: {line}", err=True)))


# --- end attestation service ---------------------------------------------------------------
