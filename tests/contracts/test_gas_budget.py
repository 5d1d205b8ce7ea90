"""The gas budget: every external function of DeRelay stays within 5% of its committed baseline.

The baseline (bench/gas-baseline.json) is what `bench.gas.scripted_gas` measured when it was last
written on purpose; this test replays the same script on the embedded chain. A function that got
dearer fails here with its figures; if the increase is deliberate, regenerate the baseline with
`python -m bench.gas --write-baseline` and commit it with the change that explains it.
"""

from __future__ import annotations

from bench import gas_paths
from bench.gas import (
    BASELINE_PATH,
    BUDGET_KEYS,
    FINALIZE_CASES,
    UPDATE_HINT,
    budget_problems,
    finalize_cases,
    load_baseline,
    scripted_gas,
)
from derelay.trainer.contract import FIXED_GAS, finalize_gas
from tests.conftest import TEST_KEYS


def test_the_budget_replays_with_the_baseline_accounts():
    # Addresses reach calldata through the commitments: the same accounts, the same gas.
    assert BUDGET_KEYS == TEST_KEYS


def test_every_function_stays_within_its_gas_budget(chain, clients, relay):
    baseline = load_baseline()
    measured = scripted_gas(relay, clients, chain.advance)
    problems = budget_problems(measured, baseline)
    assert not problems, (
        f"gas over budget ({BASELINE_PATH.name}):\n  " + "\n  ".join(problems) + f"\n{UPDATE_HINT}"
    )


def test_the_budget_check_reports_increases_and_gaps():
    baseline = {"tolerance": 0.05, "gas": {"finalize": 100_000, "withdraw": 30_000, "gone": 1}}
    measured = {"finalize": 105_000, "withdraw": 31_600, "new": 5}
    problems = budget_problems(measured, baseline)
    assert problems == [
        "new: 5 gas, no baseline",
        "withdraw: 31600 gas, +5.3% over its baseline 30000 (allowed +5%)",
        "gone: in the baseline but no longer measured",
    ]


def test_the_fixed_finalize_limit_leaves_room_over_its_dearest_case():
    # Keepers send finalize with finalize_gas(maxValidators) and no estimate: it must cover the
    # limit the dearest finalize needs (first rewards and fees, every other seat charged and
    # removed, refunds only after the call), with room to spare.
    for seats in (3, 16):
        rows = finalize_cases(seats)

        assert {(r["path"], r["revealers"], r["others"]) for r in rows} == set(FINALIZE_CASES)
        assert all(r["limit"] >= r["used"] for r in rows)
        dearest = max(r["limit"] for r in rows)
        assert 1.5 * dearest <= finalize_gas(seats), f"{seats} seats: {dearest} needed"


def test_every_fixed_gas_limit_leaves_room_over_the_baseline():
    gas = load_baseline()["gas"]
    for name, limit in FIXED_GAS.items():
        used = max(figure for key, figure in gas.items() if key.split("(")[0] == name)

        assert 1.5 * used <= limit, f"{name}: {limit} is too close to the {used} it has used"


def test_every_operation_costs_the_same_on_its_path_at_10_and_100_participants():
    # Issue 13 item 3, quick version (`python -m bench --full` runs 10 vs 1000): each operation on
    # the same verdict path in a relay of 10 and of 100 queued relayers, share holders, lineage
    # entries and validators over its life.
    data = gas_paths.collect((10, 100))

    assert [r["operation"] for r in data["rows"]] == list(gas_paths.OPERATIONS)
    over = [f"{r['operation']}: {r['small']} -> {r['large']}" for r in data["rows"] if not r["ok"]]
    assert not over, "not O(1):\n  " + "\n  ".join(over)
