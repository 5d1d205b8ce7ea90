"""The Foundry invariant suite (foundry/): a campaign of more than 100,000 random calls against
DeRelay, a gas check, and mutants of the contract that the campaign must catch.

forge comes from the npm tree of ganache/ (`@foundry-rs/forge`, pinned in ganache/package.json)
and compiles through the project's solc shim. The campaign runs forge's `ci` profile with a fresh
seed each time: the seed is printed, and reported in the run's "campaign sizes" section, so that a
failure can be replayed with `cd foundry && FOUNDRY_PROFILE=ci ../ganache/node_modules/.bin/forge
test --match-test invariant_ --fuzz-seed SEED`.

Each mutant is contracts/DeRelay.sol with one small change, in a copy of the Foundry project in a
temporary folder; a short campaign of the one invariant that must catch it has to fail, naming it.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CI_FIGURE

ROOT = Path(__file__).resolve().parents[2]
FOUNDRY = ROOT / "foundry"
FORGE_CANDIDATES = (
    ROOT / "ganache/node_modules/@foundry-rs/forge-linux-amd64/bin/forge",
    ROOT / "ganache/node_modules/.bin/forge",
)
MIN_CALLS = 100_000
CAMPAIGN_TIMEOUT = 600  # seconds; the ci profile takes 55 s of CPU


@dataclass(frozen=True)
class Mutant:
    """One textual change to DeRelay.sol, and the invariant whose campaign must catch it."""

    name: str
    original: str
    mutated: str
    invariant: str


MUTANTS = (
    Mutant(
        "a rejected child's relayer is not slashed",
        "_slashRelayer(taskId, s, ledger, config.slashRejectBp, SlashReason.Rejected);",
        "// slash skipped",
        "invariant_moneyMovesByTheRules",
    ),
    Mutant(
        "withdraw without the reentrancy guard, clearing the balance after the send",
        "    function withdraw() external nonReentrant {\n"
        "        uint256 amount = withdrawable[msg.sender];\n"
        "        if (amount == 0) revert DeRelay__NothingToWithdraw(msg.sender);\n"
        "        withdrawable[msg.sender] = 0;\n"
        "        emit Withdrawn(msg.sender, amount);\n"
        "        Address.sendValue(payable(msg.sender), amount);\n",
        "    function withdraw() external {\n"
        "        uint256 amount = withdrawable[msg.sender];\n"
        "        if (amount == 0) revert DeRelay__NothingToWithdraw(msg.sender);\n"
        "        emit Withdrawn(msg.sender, amount);\n"
        "        Address.sendValue(payable(msg.sender), amount);\n"
        "        withdrawable[msg.sender] = 0;\n",
        "invariant_everyCreditWithdrawnAtMostOnce",
    ),
    Mutant(
        "a skip pays the keeper its bounty twice",
        "            withdrawable[msg.sender] += bounty;\n            emit KeeperPaid(",
        "            withdrawable[msg.sender] += 2 * bounty;\n            emit KeeperPaid(",
        "invariant_balanceEquation",
    ),
    Mutant(
        "a child exactly minGain over the champion is not crowned",
        "if (delta < int256(uint256(config.minGain))) return 0;",
        "if (delta <= int256(uint256(config.minGain))) return 0;",
        "invariant_anHonestChildIsAlwaysCrowned",
    ),
)


def forge_binary() -> Path:
    for candidate in FORGE_CANDIDATES:
        if candidate.exists():
            return candidate
    pytest.skip("forge is not installed: run `make install` (npm ci in ganache/)")


def forge(
    project: Path, *args: str, profile: str = "default", timeout: int = CAMPAIGN_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """Run forge in `project`; returns the completed process (stdout and stderr as text)."""
    env = {**os.environ, "FOUNDRY_PROFILE": profile}
    return subprocess.run(
        [str(forge_binary()), *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def build(project: Path, profile: str = "default") -> None:
    """Compile `project` for `profile` (DeRelay.sol through the shim with via-IR, the tests
    without); a lock keeps parallel test workers from compiling the same project at once."""
    (project / "cache").mkdir(exist_ok=True)
    with open(project / "cache" / "build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = forge(project, "build", profile=profile)
    assert done.returncode == 0, f"forge build failed:\n{done.stdout}\n{done.stderr}"


def run_tests(project: Path, match: str, profile: str, seed: int) -> dict[str, dict[str, Any]]:
    """`forge test --json` of the tests matching `match`: each test's result by its name
    (`invariant_balanceEquation`, ...)."""
    done = forge(
        project, "test", "--json", "--match-test", match, "--fuzz-seed", hex(seed), profile=profile
    )
    start = done.stdout.find("{")
    assert start >= 0, f"forge test printed no results:\n{done.stdout}\n{done.stderr}"
    suites = json.loads(done.stdout[start:])
    return {
        name.split("(")[0]: result
        for suite in suites.values()
        for name, result in suite["test_results"].items()
    }


def invariant_calls(result: dict[str, Any]) -> int:
    return int(result["kind"]["Invariant"]["calls"])


def fresh_seed() -> int:
    return secrets.randbits(64)


@pytest.fixture(scope="session")
def foundry_project() -> Path:
    build(FOUNDRY)
    return FOUNDRY


@pytest.fixture
def mutant_project(tmp_path: Path) -> Path:
    """A copy of the Foundry project beside a copy of contracts/, DeRelay.sol to be mutated; the
    npm tree (the solc shim, OpenZeppelin) is linked, not copied."""
    shutil.copytree(FOUNDRY, tmp_path / "foundry", ignore=shutil.ignore_patterns("out", "cache"))
    contracts = ROOT / "contracts"
    shutil.copytree(contracts, tmp_path / "contracts", ignore=shutil.ignore_patterns("artifacts"))
    (tmp_path / "ganache").symlink_to(ROOT / "ganache")
    return tmp_path / "foundry"


def test_invariant_campaign_of_100k_calls(
    foundry_project: Path, record_property: Callable[[str, object], None]
) -> None:
    """Every invariant holds over the ci profile's campaign, which makes at least MIN_CALLS calls."""
    seed = fresh_seed()
    print(f"forge invariant campaign, seed {seed:#x}: replay with")
    print(
        "  cd foundry && FOUNDRY_PROFILE=ci ../ganache/node_modules/.bin/forge test"
        f" --match-test invariant_ --fuzz-seed {seed:#x}"
    )
    results = run_tests(foundry_project, "invariant_", "ci", seed)
    failed = {name: r["reason"] for name, r in results.items() if r["status"] != "Success"}
    assert not failed, f"invariants broken (seed {seed:#x}): {failed}"
    calls = sum(invariant_calls(r) for r in results.values())
    reverts = sum(int(r["kind"]["Invariant"]["reverts"]) for r in results.values())
    figure = (
        f"forge invariant campaign: {calls} calls over {len(results)} invariants, seed {seed:#x}"
    )
    print(f"{figure} ({reverts} reverted)")
    record_property(CI_FIGURE, figure)
    assert len(results) >= 7, f"expected the 7 invariants, ran {sorted(results)}"
    assert calls >= MIN_CALLS, f"only {calls} calls: the ci profile must make {MIN_CALLS}"


def test_gas_per_call_is_flat_in_the_number_of_participants(foundry_project: Path) -> None:
    results = run_tests(foundry_project, "test_gasPerCall", "default", fresh_seed())
    assert list(results) == ["test_gasPerCallIsFlatInTheNumberOfParticipants"], results
    (result,) = results.values()
    assert result["status"] == "Success", result["reason"]


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.invariant[len("invariant_") :] for m in MUTANTS])
def test_the_campaign_catches_a_mutant(mutant: Mutant, mutant_project: Path) -> None:
    # prepare: DeRelay.sol with one change
    contract = mutant_project.parent / "contracts" / "DeRelay.sol"
    source = contract.read_text()
    assert source.count(mutant.original) == 1, f"the mutant '{mutant.name}' no longer applies"
    contract.write_text(source.replace(mutant.original, mutant.mutated))
    build(mutant_project, "mutant")

    # act: a short campaign of the invariant that must catch it
    seed = fresh_seed()
    results = run_tests(mutant_project, mutant.invariant, "mutant", seed)

    # check: it fails, and names the invariant
    assert list(results) == [mutant.invariant], results
    result = results[mutant.invariant]
    assert result["status"] == "Failure", (
        f"'{mutant.name}' survived {invariant_calls(result)} calls (seed {seed:#x})"
    )
    print(f"{mutant.name}: {mutant.invariant} failed: {result['reason']} (seed {seed:#x})")
