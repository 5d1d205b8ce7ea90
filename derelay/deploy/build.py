"""Compile the contracts reproducibly and read the committed artifacts.

The compiler is solc at one pinned version, called through py-solc-x's `compile_standard`. A
native solc of that version is used when py-solc-x has one installed; otherwise a small Node shim
over the npm `solc` package (the same compiler built to WebAssembly, `ganache/solc-shim.js`)
serves as the binary. Both give the same output for the same standard JSON input, so the
committed artifacts can be checked byte for byte against a fresh compile.
"""

from __future__ import annotations

import json
import posixpath
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import solcx

from derelay.trainer import contract
from derelay.trainer.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS_DIR = ROOT / "contracts"
# Written into the package (derelay/trainer/artifacts), which ships them as package data.
ARTIFACTS_DIR = Path(str(contract.ARTIFACTS_DIR))
NODE_MODULES = ROOT / "ganache" / "node_modules"
SOLC_SHIM = ROOT / "ganache" / "solc-shim.js"

SOLC_VERSION = "0.8.28"
EVM_VERSION = "shanghai"  # the newest fork ganache 7.9 runs
OPTIMIZER_RUNS = 200  # the size limit (24 KiB of runtime code) rules out higher values
SOURCES = (
    "DeRelay.sol",
    "IDeRelay.sol",
    "test/ReentrantWithdrawer.sol",
    "test/RevertingReceiver.sol",
)


@dataclass(frozen=True)
class Artifact:
    """A compiled contract: what deploying and calling it needs."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: str
    deployed_bytecode: str


def standard_input() -> dict[str, Any]:
    """The solc standard JSON input for every source, with OpenZeppelin inlined by content."""
    sources: dict[str, dict[str, str]] = {}
    for rel in SOURCES:
        sources[f"contracts/{rel}"] = {"content": (CONTRACTS_DIR / rel).read_text()}
    for dep in _openzeppelin_imports(sources):
        sources[dep] = {"content": (NODE_MODULES / dep).read_text()}
    for dep in _project_imports(sources):
        sources[dep] = {"content": (ROOT / dep).read_text()}
    return {
        "language": "Solidity",
        "sources": dict(sorted(sources.items())),
        "settings": {
            "evmVersion": EVM_VERSION,
            "optimizer": {"enabled": True, "runs": OPTIMIZER_RUNS},
            "viaIR": True,
            "metadata": {"bytecodeHash": "none"},
            "outputSelection": {
                "*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]}
            },
        },
    }


def _openzeppelin_imports(sources: dict[str, dict[str, str]]) -> list[str]:
    """Every `@openzeppelin/...` file the sources import, transitively, as source unit names."""
    if not (NODE_MODULES / "@openzeppelin" / "contracts").is_dir():
        raise ConfigError(
            "OpenZeppelin contracts are not installed: run `make install` (npm ci in ganache/)"
        )
    found: set[str] = set()
    pending: list[tuple[str, str]] = [(name, text["content"]) for name, text in sources.items()]
    while pending:
        origin, content = pending.pop()
        for target in _import_targets(content):
            if target.startswith("@openzeppelin/"):
                unit = target
            elif origin.startswith("@openzeppelin/"):
                unit = posixpath.normpath(posixpath.join(posixpath.dirname(origin), target))
            else:
                continue  # a relative import between the project's own sources
            if unit not in found:
                found.add(unit)
                pending.append((unit, (NODE_MODULES / unit).read_text()))
    return sorted(found)


def _project_imports(sources: dict[str, dict[str, str]]) -> list[str]:
    """Every file under contracts/ that the project's sources import by a relative path (such as
    `./IDeRelay.sol`) and SOURCES does not already list, transitively, as source unit names."""
    found: set[str] = set()
    pending = [
        (name, text["content"]) for name, text in sources.items() if name.startswith("contracts/")
    ]
    while pending:
        origin, content = pending.pop()
        for target in _import_targets(content):
            if not target.startswith("."):
                continue  # a remapped library import: OpenZeppelin's are resolved above
            unit = posixpath.normpath(posixpath.join(posixpath.dirname(origin), target))
            if not unit.startswith("contracts/"):
                raise ConfigError(f"{origin} imports {target}, outside contracts/")
            if unit not in sources and unit not in found:
                found.add(unit)
                pending.append((unit, (ROOT / unit).read_text()))
    return sorted(found)


def _import_targets(source: str) -> list[str]:
    targets = []
    for line in source.splitlines():
        line = line.strip()
        if line.startswith("import ") and '"' in line:
            targets.append(line.split('"')[1])
    return targets


def solc_binary() -> str:
    """A native solc of the pinned version if py-solc-x has one, else the Node shim."""
    try:
        return str(solcx.install.get_executable(SOLC_VERSION))
    except solcx.exceptions.SolcNotInstalled:
        pass
    if shutil.which("node") is None or not SOLC_SHIM.exists():
        raise ConfigError(
            f"no solc {SOLC_VERSION}: install Node 20 and run `make install`, "
            f"or `python -m solcx.install v{SOLC_VERSION}`"
        )
    if not (NODE_MODULES / "solc").is_dir():
        raise ConfigError(
            "the npm solc package is missing: run `make install` (npm ci in ganache/)"
        )
    return str(SOLC_SHIM)


def compile_contracts() -> dict[str, Any]:
    """Compile every source; returns solc's standard JSON output. Raises on any error."""
    output = solcx.compile_standard(
        standard_input(), solc_binary=solc_binary(), allow_paths=[str(ROOT)]
    )
    errors = [e for e in output.get("errors", []) if e.get("severity") == "error"]
    if errors:
        raise ConfigError("solc failed: " + "; ".join(e["formattedMessage"] for e in errors))
    return output


def artifacts_from(output: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """One artifact document per contract defined in the project's own sources."""
    result: dict[str, dict[str, Any]] = {}
    for source, contracts in output["contracts"].items():
        if not source.startswith("contracts/"):
            continue
        for name, data in contracts.items():
            if not data["evm"]["bytecode"]["object"]:
                continue  # an interface: nothing to deploy
            result[name] = {
                "contractName": name,
                "sourceName": source,
                "abi": data["abi"],
                "bytecode": "0x" + data["evm"]["bytecode"]["object"],
                "deployedBytecode": "0x" + data["evm"]["deployedBytecode"]["object"],
                "compiler": {"version": SOLC_VERSION, "settings": standard_input()["settings"]},
            }
    return result


def render(document: dict[str, Any]) -> str:
    """The committed text form of an artifact or build-info document."""
    return json.dumps(document, indent=1, sort_keys=True) + "\n"


def write_artifacts(out_dir: Path = ARTIFACTS_DIR) -> list[Path]:
    """Compile and write one JSON artifact per contract plus the build info (input and version)."""
    output = compile_contracts()
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, document in artifacts_from(output).items():
        path = out_dir / f"{name}.json"
        _write_atomically(path, render(document))
        written.append(path)
    build_info = {"solcVersion": SOLC_VERSION, "input": standard_input()}
    path = out_dir / "build-info.json"
    _write_atomically(path, render(build_info))
    written.append(path)
    return written


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def load_artifact(name: str = "DeRelay") -> Artifact:
    """The committed artifact of contract `name`."""
    path = ARTIFACTS_DIR / f"{name}.json"
    if not path.exists():
        raise ConfigError(f"no compiled artifact {path}: compile the contracts first")
    document = json.loads(path.read_text())
    return Artifact(
        name=name,
        abi=document["abi"],
        bytecode=document["bytecode"],
        deployed_bytecode=document["deployedBytecode"],
    )
