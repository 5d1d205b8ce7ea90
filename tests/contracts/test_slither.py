"""Static analysis: Slither over DeRelay.sol, compiled exactly as the build compiles it.

The test fails on any finding of impact High or Medium that `.slither-triage.json` (repository
root) does not list with a verdict and a reason. Findings are matched by detector and by their
description with source locations removed, so a triage survives edits elsewhere in the file but
not a change to the code it is about. Low and informational findings are printed, not enforced.

Slither pins web3 below 8 and this project runs web3 8, so Slither lives in its own virtual
environment, `.venv-slither`, installed from `requirements-slither.lock`:

    python3 -m venv .venv-slither && .venv-slither/bin/pip install -r requirements-slither.lock

The test looks for $DERELAY_SLITHER, then `.venv-slither/bin/slither`, then `slither` on PATH,
and is skipped when none exists. `python -m tests.contracts.test_slither` prints every finding
with the key to triage it by.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from derelay.deploy import build

ROOT = build.ROOT
TRIAGE_FILE = ROOT / ".slither-triage.json"
ENFORCED = ("High", "Medium")
TARGET = (
    "contracts/DeRelay.sol"  # the test contracts under contracts/test/ are adversaries on purpose
)
OZ_REMAPPING = "@openzeppelin/=ganache/node_modules/@openzeppelin/"
# Slither needs the AST and the compiler's usual outputs of every source.
OUTPUT_SELECTION = {
    "*": {
        "*": ["abi", "metadata", "devdoc", "userdoc", "evm.bytecode", "evm.deployedBytecode"],
        "": ["ast"],
    }
}


@dataclass(frozen=True)
class Finding:
    check: str
    impact: str
    confidence: str
    finding: str  # the description without source locations, on one line
    where: str  # the first source location, for people

    @property
    def key(self) -> tuple[str, str]:
        return (self.check, self.finding)


def slither_executable() -> str | None:
    """$DERELAY_SLITHER, `.venv-slither/bin/slither`, or `slither` on PATH."""
    configured = os.environ.get("DERELAY_SLITHER")
    if configured:
        return configured
    local = ROOT / ".venv-slither" / "bin" / "slither"
    if local.exists():
        return str(local)
    return shutil.which("slither")


def standard_json_input() -> dict[str, Any]:
    """The build's standard JSON input (same compiler settings: viaIR, optimizer, evmVersion),
    for DeRelay.sol alone, with OpenZeppelin read from ganache/node_modules, where Slither can
    find each file it reports on."""
    document = build.standard_input()
    document["sources"] = {TARGET: document["sources"][TARGET]}
    document["settings"]["remappings"] = [OZ_REMAPPING]
    document["settings"]["outputSelection"] = OUTPUT_SELECTION
    return document


def normalize(description: str) -> str:
    """A description without its source locations, e.g. ` (contracts/DeRelay.sol#589-607)`."""
    without = re.sub(r"\s*\([^()]*#\d+(?:-\d+)?\)", "", description)
    return " ".join(without.split())


def run_slither(slither: str, workdir: Path) -> list[Finding]:
    """Run every Slither detector over DeRelay.sol; return the findings outside dependencies."""
    source = workdir / "derelay-standard-input.json"
    source.write_text(json.dumps(standard_json_input()))
    report = workdir / "slither.json"
    command = [
        slither,
        str(source),
        "--compile-force-framework",
        "solc-json",
        "--solc",
        build.solc_binary(),
        "--filter-paths",
        "node_modules",
        "--json",
        str(report),
        "--disable-color",
    ]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    if not report.exists():
        raise AssertionError(f"slither wrote no report (exit {done.returncode}):\n{done.stderr[-4000:]}")  # fmt: skip
    document = json.loads(report.read_text())
    if not document.get("success"):
        raise AssertionError(f"slither failed: {document.get('error')}\n{done.stderr[-4000:]}")
    findings = []
    for result in document.get("results", {}).get("detectors", []):
        findings.append(
            Finding(
                check=result["check"],
                impact=result["impact"],
                confidence=result["confidence"],
                finding=normalize(result["description"]),
                where=result.get("first_markdown_element", ""),
            )
        )
    return findings


def load_triage(path: Path = TRIAGE_FILE) -> dict[tuple[str, str], dict[str, str]]:
    """Triaged findings by (check, finding); each must give a verdict and a reason."""
    entries = json.loads(path.read_text())["triaged"]
    triage = {}
    for entry in entries:
        assert entry.get("verdict", "").strip(), f"triage entry without a verdict: {entry}"
        assert entry.get("reason", "").strip(), f"triage entry without a reason: {entry}"
        triage[entry["check"], entry["finding"]] = entry
    return triage


def report(findings: list[Finding]) -> str:
    order = {"High": 0, "Medium": 1, "Low": 2, "Informational": 3, "Optimization": 4}
    lines = []
    for f in sorted(findings, key=lambda f: (order.get(f.impact, 9), f.check, f.finding)):
        lines.append(f"[{f.impact}/{f.confidence}] {f.check} at {f.where}\n    {f.finding}")
    return "\n".join(lines)


@pytest.fixture(scope="module")
def findings(tmp_path_factory: pytest.TempPathFactory) -> list[Finding]:
    slither = slither_executable()
    if slither is None:
        pytest.skip(
            "slither is not installed: python3 -m venv .venv-slither && "
            ".venv-slither/bin/pip install -r requirements-slither.lock"
        )
    return run_slither(slither, tmp_path_factory.mktemp("slither"))


def test_no_untriaged_high_or_medium_findings(findings: list[Finding]):
    triage = load_triage()
    print(report(findings))

    untriaged = [f for f in findings if f.impact in ENFORCED and f.key not in triage]

    assert not untriaged, (
        f"{len(untriaged)} High/Medium Slither finding(s) not triaged: fix the code, or if the "
        f"finding is a false positive add it to {TRIAGE_FILE.name} with a verdict and a reason:\n"
        + "\n".join(json.dumps({"check": f.check, "finding": f.finding}) for f in untriaged)
    )


def test_every_triage_entry_still_matches_a_finding(findings: list[Finding]):
    triage = load_triage()
    seen = {f.key for f in findings}

    stale = [entry for key, entry in triage.items() if key not in seen]

    assert not stale, (
        f"{TRIAGE_FILE.name} lists findings Slither no longer reports (the code changed or was "
        "fixed): remove or update them:\n" + "\n".join(json.dumps(e) for e in stale)
    )


if __name__ == "__main__":
    import tempfile

    executable = slither_executable()
    if executable is None:
        sys.exit("slither is not installed: see the module docstring")
    with tempfile.TemporaryDirectory() as tmp:
        print(report(run_slither(executable, Path(tmp))))
