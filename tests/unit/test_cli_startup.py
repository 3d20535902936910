"""`import provenance.cli` is the start-up of every command (`--help`, and the cache-hit
build agents run after each change), so it loads the command modules and nothing else of
ours: each command imports its job when it runs (bench/bench_verify.py measures the time)."""

from __future__ import annotations

import json
import subprocess
import sys

# What importing the CLI adds to what typer itself loads.
PROBE = (
    "import json, sys, typer\n"
    "before = set(sys.modules)\n"
    "import provenance.cli\n"
    "print(json.dumps(sorted(set(sys.modules) - before)))\n"
)


def _loaded_by_import() -> set[str]:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout))


def test_importing_the_cli_loads_no_job() -> None:
    loaded = _loaded_by_import()
    ours = {m for m in loaded if m.split(".")[0] == "provenance"}
    assert ours == {
        "provenance",
        "provenance.errors",
        "provenance.progress",
        "provenance.text",  # printable(): a regex, for every line the CLI prints
        "provenance.cli",
        "provenance.cli.common",
        "provenance.cli.keys",
        "provenance.cli.build",
        "provenance.cli.verify",
        "provenance.cli.publish",
        "provenance.cli.ci",
        "provenance.cli.review",
        "provenance.cli.audit",
        "provenance.cli.serve",
    }
    heavy = {"pydantic", "cryptography", "rich", "tomllib", "tomli_w"}
    assert {m.split(".")[0] for m in loaded} & heavy == set()


def test_importing_the_cli_loads_neither_logging_nor_json() -> None:
    # Deferred to the commands that use them: about 3 ms of every start-up. (The probe
    # imports json before it looks, so ask a fresh interpreter about json separately.)
    assert "logging" not in _loaded_by_import()
    code = "import sys, typer\nimport provenance.cli\nprint('json' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_gate_and_verify_load_the_review_and_rebuild_machinery_only_when_asked() -> None:
    # --base (review/) and --rebuild (reproduce.py, attest's realise): ~20 ms of imports
    # that a plain gate or verify, run on every push, does not need.
    code = (
        "import json, sys\n"
        "import provenance.ci.gate, provenance.verify.pipeline\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(json.loads(out.stdout))
    assert not {m for m in loaded if m.startswith("provenance.review")}
    assert "provenance.verify.reproduce" not in loaded
    assert "provenance.attest.realise" not in loaded
