"""Gas of every external function of DeRelay, measured on the embedded chain.

For each queue size it runs the same scripted relay: the first round, then steady-state rounds
(every later round), each with a submit, commits and reveals from every validator, and a finalize.
It reports per function the gas of the first round and the median of the steady-state rounds, the
ratio between queue sizes (O(1) in participants means ~1.00), and one accepted round's total
against its floor: the 21,000 base of each transaction, its calldata, and the storage the round
must write (documented in `round_floor`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_tester import EthereumTester, PyEVMBackend
from eth_utils import keccak
from web3 import EthereumTesterProvider, Web3

from trainer.chain import ChainClient
from trainer.contract import DeRelayContract, TaskParams, commitment_for, decoder_for

ETH = 10**18
# The issue's own estimate of an accepted round's floor with 3 validators on Shanghai.
ISSUE_ROUND_FLOOR = 297_000
TARGETS = {
    "submitRelay": 65_000,
    "commitScore": 45_000,
    "revealScore": 42_000,
    "finalize(3 reveals)": 85_000,
    "finalize(5 reveals)": 110_000,
    "withdraw": 35_000,
    "joinRelay": 130_000,
}


def _cid(label: str) -> bytes:
    return bytes([0x01, 0x55, 0x12, 0x20]) + hashlib.sha256(label.encode()).digest()


def calldata_gas(data: bytes) -> int:
    """Intrinsic calldata gas on Shanghai: 4 per zero byte, 16 per other byte."""
    return sum(4 if b == 0 else 16 for b in data)


@dataclass
class GasRun:
    """Gas per function: the first round's, and every steady-state round's."""

    relayers: int
    reveals: int
    first: dict[str, int] = field(default_factory=dict)
    steady: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    round_totals: list[int] = field(default_factory=list)
    round_calldata: list[int] = field(default_factory=list)

    def steady_median(self, name: str) -> int:
        return int(statistics.median(self.steady[name]))


def _funded_clients(tester: EthereumTester, w3: Web3, count: int) -> list[ChainClient]:
    decoder = decoder_for()
    funder = tester.get_accounts()[0]
    clients = []
    for i in range(count):
        account = Account.from_key(hashlib.sha256(f"bench-{i}".encode()).digest())
        tester.send_transaction(
            {"from": funder, "to": account.address, "value": 1_000 * ETH, "gas": 21_000}
        )
        clients.append(ChainClient(w3, account, decoder))
    return clients


def measure(relayers: int, validators: int, rounds: int) -> GasRun:
    """Run `rounds` accepted rounds with `relayers` queued and `validators` revealing.

    A relayer's first reward writes two new slots (its withdrawable balance and its royalty
    shares), so finalize is reported apart for a holder's first reward and for a returning holder.
    """
    tester = EthereumTester(PyEVMBackend())
    w3 = Web3(EthereumTesterProvider(tester))
    clients = _funded_clients(tester, w3, 3 + validators + relayers)
    publisher = DeRelayContract.deploy(clients[0])
    keeper = publisher.as_account(clients[1])
    vals = [publisher.as_account(c) for c in clients[2 : 2 + validators]]
    rels = [publisher.as_account(c) for c in clients[2 + validators : -1]]
    leaver = publisher.as_account(clients[-1])
    by_address = {r.client.address: r for r in rels}
    params = TaskParams(
        spec_cid=_cid("spec"),
        genesis_cid=_cid("genesis"),
        genesis_score=5000,
        min_stake=ETH,
        validator_stake=ETH,
        max_validators=max(validators, 2),
        quorum=min(2, validators),
        max_queue=relayers + 1,
    )
    task = publisher.create_task(params, funding=100 * ETH)
    run = GasRun(relayers, validators)
    for v in vals:
        v.register_validator(task, ETH)
    for i, r in enumerate(rels):
        gas = r.join_relay(task, ETH)["gasUsed"]
        if i == 0:
            run.first["joinRelay(first, starts turn)"] = gas
        elif i == 1:
            run.first["joinRelay"] = gas
        else:
            run.steady["joinRelay"].append(gas)
    leaver.join_relay(task, ETH)
    run.steady["leaveRelay"].append(leaver.leave_relay(task)["gasUsed"])

    rewarded: set[str] = set()
    for round_index in range(rounds):
        state = publisher.task_state(task)
        holder = by_address[state.holder]
        returning = state.holder in rewarded
        rewarded.add(state.holder)
        gas_of: dict[str, int] = {}
        calldata = 0
        receipt = holder.submit_relay(
            task, state.round, state.head_cid[4:], _cid(f"child-{round_index}"),
            _cid(f"card-{round_index}"), hashlib.sha256(b"data").digest(), 1000,
        )  # fmt: skip
        gas_of["submitRelay"] = receipt["gasUsed"]
        calldata += _tx_calldata(w3, receipt)
        salts = []
        for k, v in enumerate(vals):
            salt = os.urandom(32)
            score = 5100 + 50 * round_index + k
            salts.append((score, salt))
            receipt = v.commit_score(
                task, state.round, commitment_for(task, state.round, score, salt, v.client.address)
            )
            gas_of.setdefault("commitScore", receipt["gasUsed"])
            calldata += _tx_calldata(w3, receipt)
        tester.time_travel(int(w3.eth.get_block("latest")["timestamp"]) + params.commit_window + 1)
        for v, (score, salt) in zip(vals, salts, strict=True):
            receipt = v.reveal_score(task, state.round, score, salt)
            gas_of.setdefault("revealScore", receipt["gasUsed"])
            calldata += _tx_calldata(w3, receipt)
        receipt = keeper.finalize(task)
        finalize_name = (
            f"finalize({validators} reveals{', returning relayer' if returning else ''})"
        )
        gas_of[finalize_name] = receipt["gasUsed"]
        calldata += _tx_calldata(w3, receipt)
        total = gas_of["submitRelay"] + gas_of[finalize_name]
        total += validators * (gas_of["commitScore"] + gas_of["revealScore"])
        if round_index == 0:
            run.first.update(gas_of)
        else:
            for name, gas in gas_of.items():
                run.steady[name].append(gas)
            if returning:
                run.round_totals.append(total)
                run.round_calldata.append(calldata)

    run.steady["withdraw"].append(rels[0].withdraw()["gasUsed"])
    return run


def _tx_calldata(w3: Web3, receipt: Any) -> int:
    tx = w3.eth.get_transaction(receipt["transactionHash"])
    return calldata_gas(bytes(tx["input"]))


def round_floor(validators: int, calldata: int) -> int:
    """The least gas an accepted round can cost: base and calldata of its transactions, plus the
    storage it must write. Must-write storage, each at its cheapest (a new slot 22,100 with its
    cold access, an update 5,000): the child's record (new: the never-seen-before check needs one
    slot per child), each commitment and each revealed score (updates), and in finalize the head,
    the relayer's reward, its royalty shares, each validator's fee and the turn state (updates).
    """
    transactions = 2 + 2 * validators
    storage = 22_100 + validators * 5_000 * 2 + 5_000 * (4 + validators)
    return transactions * 21_000 + calldata + storage


def collect(
    queue_sizes: tuple[int, ...] = (10, 500), validators: tuple[int, ...] = (3, 5)
) -> dict[str, Any]:
    """Run every configuration; return per function its first-round gas, its steady-state median
    per queue size and the ratio, and each accepted round's total against its floor."""
    small, large = queue_sizes[0], queue_sizes[-1]
    # The small queue runs past one full rotation so that holders come back; the large one runs
    # the same first rounds, which is what the O(1) ratio compares.
    runs = {
        (q, v): measure(q, v, rounds=small + 3 if q == small else 6)
        for q in queue_sizes
        for v in validators
    }
    names: list[tuple[str, int]] = []
    for v in validators:
        for name in runs[(small, v)].steady:
            if (name, v) not in names and (v == validators[0] or name.startswith("finalize")):
                names.append((name, v))
    functions = []
    for name, v in names:
        a, b = runs[(small, v)], runs[(large, v)]
        sa = a.steady_median(name)
        sb = b.steady_median(name) if b.steady.get(name) else None
        functions.append(
            {
                "function": name,
                "first": a.first.get(name),
                "steady_small": sa,
                "steady_large": sb,
                "ratio": sb / sa if sb is not None else None,
                "target": TARGETS.get(name.replace(", returning relayer", "")),
            }
        )
    rounds = []
    for (q, v), run in sorted(runs.items()):
        if not run.round_totals:
            continue
        total = int(statistics.median(run.round_totals))
        calldata = int(statistics.median(run.round_calldata))
        floor = round_floor(v, calldata)
        rounds.append(
            {"queued": q, "validators": v, "total": total, "floor": floor, "calldata": calldata}
        )
    return {"queue_sizes": [small, large], "functions": functions, "rounds": rounds}


def render(data: dict[str, Any]) -> str:
    """The markdown tables of `collect`'s result."""
    small, large = data["queue_sizes"]
    lines = [
        f"| function | first round | steady ({small} queued) | steady ({large} queued) | ratio | target |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for f in data["functions"]:
        first = "" if f["first"] is None else f["first"]
        target = "" if f["target"] is None else f["target"]
        if f["steady_large"] is None:
            large_cell, ratio = "n/a", "n/a"
        else:
            large_cell, ratio = f["steady_large"], f"{f['ratio']:.3f}"
        lines.append(
            f"| {f['function']} | {first} | {f['steady_small']} | {large_cell} | {ratio} | {target} |"
        )
    lines.append("")
    lines.append(
        "| accepted round, returning relayer | validators | total gas | floor | total / floor | total / 297k |"
    )
    lines.append("|---|---:|---:|---:|---:|---:|")
    for r in data["rounds"]:
        total, floor = r["total"], r["floor"]
        lines.append(
            f"| {r['queued']} queued | {r['validators']} | {total} | {floor} | "
            f"{total / floor:.2f} | {total / ISSUE_ROUND_FLOOR:.2f} |"
        )
    return "\n".join(lines)


def report(queue_sizes: tuple[int, ...] = (10, 500), validators: tuple[int, ...] = (3, 5)) -> str:
    """Run every configuration and render the markdown report."""
    return render(collect(queue_sizes, validators))


# ---------------------------------------------------------------------- royalty-share holders


def measure_holders(holders: int, validators: int = 3) -> dict[str, int]:
    """Gas of every per-round and royalty function once `holders` relayers each hold royalty
    shares (each had an accepted, rewarded turn), all of them still queued.

    The relay is brought there by scripted rounds sent without gas estimation (`FastSender`); the
    measured transactions then go through the bindings like every other figure here.
    """
    from bench.common import FastSender

    tester = EthereumTester(PyEVMBackend())
    w3 = Web3(EthereumTesterProvider(tester))
    clients = _funded_clients(tester, w3, 4 + validators + holders)
    publisher = DeRelayContract.deploy(clients[0])
    keeper = publisher.as_account(clients[1])
    consumer = publisher.as_account(clients[2])
    newcomer = publisher.as_account(clients[3])
    vals = [publisher.as_account(c) for c in clients[4 : 4 + validators]]
    rels = [publisher.as_account(c) for c in clients[4 + validators :]]
    by_address = {r.client.address: r for r in rels}
    params = TaskParams(
        spec_cid=_cid("spec"),
        genesis_cid=_cid("genesis"),
        genesis_score=5000,
        min_stake=ETH,
        validator_stake=ETH,
        max_validators=validators,
        quorum=2,
        max_queue=holders + 2,
    )
    task = publisher.create_task(params, funding=100 * ETH)
    fast = FastSender(w3)
    for v in vals:
        fast.send(v, "registerValidator", task, value=ETH)
    for r in rels:
        fast.send(r, "joinRelay", task, value=ETH)

    def play(voters: list[DeRelayContract], send: Callable[..., Any]) -> dict[str, int]:
        state = publisher.task_state(task)
        holder = by_address[state.holder]
        score = min(10_000, state.ref + 1)  # accepted with a minimal gain: a reward, shares
        gas = {}
        child = _cid(f"child-{state.round}")
        gas["submitRelay"] = send(
            holder, "submitRelay", task, state.round, state.head_cid[4:], child,
            _cid(f"card-{state.round}"), hashlib.sha256(b"data").digest(), 1000,
        )  # fmt: skip
        salts = [
            hashlib.sha256(f"{v.client.address}{state.round}".encode()).digest() for v in voters
        ]
        for v, salt in zip(voters, salts, strict=True):
            commitment = commitment_for(task, state.round, score, salt, v.client.address)
            gas["commitScore"] = send(v, "commitScore", task, state.round, commitment)
        tester.time_travel(int(w3.eth.get_block("latest")["timestamp"]) + params.commit_window + 1)
        for v, salt in zip(voters, salts, strict=True):
            gas["revealScore"] = send(v, "revealScore", task, state.round, score, salt)
        gas[f"finalize({len(voters)} reveals, returning relayer)"] = send(keeper, "finalize", task)
        return gas

    def fast_send(view: DeRelayContract, name: str, *args: Any) -> int:
        return int(fast.send(view, name, *args)["gasUsed"])

    def bound_send(view: DeRelayContract, name: str, *args: Any) -> int:
        method = {
            "submitRelay": view.submit_relay,
            "commitScore": view.commit_score,
            "revealScore": view.reveal_score,
            "finalize": view.finalize,
        }[name]
        return int(method(*args)["gasUsed"])

    for _ in range(holders):
        play(vals[:2], fast_send)
    state = publisher.task_state(task)
    holding = sum(1 for r in rels if publisher.account(task, r.client.address).shares > 0)
    if holding != holders:
        raise RuntimeError(f"{holding} of {holders} relayers hold shares after {holders} rounds")
    play(vals, bound_send)  # every validator votes (its first fee writes a new slot) ...
    gas = play(vals, bound_send)  # ... and now every figure is a steady-state one
    consumer.pay_for_model(task, params.usage_fee)
    gas["payForModel"] = int(consumer.pay_for_model(task, params.usage_fee)["gasUsed"])
    gas["claimRoyalties"] = int(rels[0].claim_royalties(task)["gasUsed"])
    gas["withdraw"] = int(rels[0].withdraw()["gasUsed"])
    gas["joinRelay"] = int(newcomer.join_relay(task, ETH)["gasUsed"])
    gas["leaveRelay"] = int(newcomer.leave_relay(task)["gasUsed"])
    gas["_total_shares"] = state.total_shares
    return gas


def holders_report(counts: tuple[int, ...] = (10, 1000)) -> dict[str, Any]:
    """`measure_holders` for each count, with the ratio of the largest to the smallest."""
    runs = {n: measure_holders(n) for n in counts}
    small, large = runs[counts[0]], runs[counts[-1]]
    names = [k for k in small if not k.startswith("_")]
    return {
        "holders": list(counts),
        "gas": {
            str(n): {k: v for k, v in r.items() if not k.startswith("_")} for n, r in runs.items()
        },
        "ratio": {k: large[k] / small[k] for k in names},
    }


def render_holders(data: dict[str, Any]) -> str:
    counts = data["holders"]
    header = "| function | " + " | ".join(f"{n} holding shares" for n in counts)
    header += f" | ratio {counts[-1]} / {counts[0]} |"
    lines = [header, "|---|" + "---:|" * (len(counts) + 1)]
    for name, ratio in data["ratio"].items():
        cells = " | ".join(str(data["gas"][str(n)][name]) for n in counts)
        lines.append(f"| {name} | {cells} | {ratio:.3f} |")
    return "\n".join(lines)


# ---------------------------------------------------------------------- the gas budget

BASELINE_PATH = Path(__file__).resolve().parent / "gas-baseline.json"
BUDGET_TOLERANCE = 0.05
# The keys of tests/conftest.py's `clients` fixture, so that the baseline is written from the very
# accounts the budget test replays with (addresses reach calldata through the commitments).
BUDGET_KEYS = [f"0x{i:064x}" for i in range(0x1001, 0x1001 + 16)]
UPDATE_HINT = (
    "if the change is deliberate, update the baseline with "
    "`python -m bench.gas --write-baseline` and commit bench/gas-baseline.json"
)


def _budget_params() -> TaskParams:
    return TaskParams(
        spec_cid=_cid("spec"),
        genesis_cid=_cid("genesis"),
        genesis_score=5000,
        min_stake=ETH,
        validator_stake=ETH,
        turn_duration=100,
        commit_window=50,
        reveal_window=50,
        quorum=2,
        max_validators=3,
        max_queue=8,
        tolerance=100,
        ema_bp=5000,
        min_gain=10,
        base_reward=ETH // 10,
        reward_per_point=ETH // 1000,
        validator_fee=ETH // 100,
        royalty_bp=5000,
        usage_fee=ETH // 100,
    )


def scripted_gas(
    relay: DeRelayContract, clients: list[ChainClient], advance: Callable[[int], None]
) -> dict[str, int]:
    """Gas of every external function of DeRelay in one scripted relay: two tasks, three
    validators, three relayers, accepted rounds (first and returning relayers), a rejected and a
    void round, a skipped turn, royalties paid and claimed, leaving, withdrawing.

    `relay` is a freshly deployed contract seen by clients[0]; `advance(seconds)` moves the chain's
    clock forward. Deterministic: the same chain and accounts give the same gas every time. Where
    a function runs more than once, the figure is that of a later, steady-state call.
    """
    views = [relay.as_account(c) for c in clients]
    publisher, keeper = views[0], views[1]
    vals, (a, b, c), consumer = views[2:5], views[5:8], views[8]
    gas: dict[str, int] = {}

    def record(name: str, receipt: Any) -> None:
        gas[name] = int(receipt["gasUsed"])

    params = _budget_params()
    create = publisher.contract.functions.createTask(params.as_tuple())
    record("createTask(first task)", publisher.client.transact(create, "createTask", 10 * ETH))
    task = publisher.task_count()
    record("createTask", publisher.client.transact(create, "createTask", ETH))
    record("fund", publisher.fund(task, ETH))
    for v in vals:
        record("registerValidator", v.register_validator(task, ETH))
    record("joinRelay(first, starts turn)", a.join_relay(task, ETH))
    record("joinRelay", b.join_relay(task, ETH))
    record("addStake", b.add_stake(task, ETH))

    def round_(scores: list[int | None], label: str) -> dict[str, int]:
        """Submit, commit every scored vote, reveal, finalize; a None vote stays silent."""
        state = relay.task_state(task)
        holder = {v.client.address: v for v in (a, b, c)}[state.holder]
        out = {}
        out["submitRelay"] = int(
            holder.submit_relay(
                task, state.round, state.head_cid[4:], _cid(f"child-{label}"), _cid(f"card-{label}"),
                hashlib.sha256(b"data").digest(), 100,
            )["gasUsed"]
        )  # fmt: skip
        salts = {}
        for v, score in zip(vals, scores, strict=True):
            if score is None:
                continue
            salt = keccak(text=f"salt:{v.client.address}:{state.round}")
            salts[v.client.address] = salt
            commitment = commitment_for(task, state.round, score, salt, v.client.address)
            out["commitScore"] = int(v.commit_score(task, state.round, commitment)["gasUsed"])
        advance(params.commit_window + 1)
        for v, score in zip(vals, scores, strict=True):
            if score is not None:
                salt = salts[v.client.address]
                out["revealScore"] = int(v.reveal_score(task, state.round, score, salt)["gasUsed"])
        if not salts:
            advance(params.reveal_window + 1)
        out["finalize"] = int(keeper.finalize(task)["gasUsed"])
        return out

    r1 = round_([5200, 5300, 5400], "1")  # a, first reward
    gas["finalize(3 reveals, first reward)"] = r1["finalize"]
    round_([5300, 5350, 5400], "2")  # b, first reward
    r3 = round_([5300, 5350, 5400], "3")  # a, returning
    for name in ("submitRelay", "commitScore", "revealScore"):
        gas[name] = r3[name]
    gas["finalize(3 reveals, returning relayer)"] = r3["finalize"]
    gas["finalize(3 reveals, rejected)"] = round_([1000, 1000, 1000], "4")["finalize"]  # b
    gas["finalize(void, no reveals)"] = round_([None, None, None], "5")["finalize"]  # a
    record("payForModel(first)", consumer.pay_for_model(task, params.usage_fee))
    record("payForModel", consumer.pay_for_model(task, params.usage_fee))
    record("claimRoyalties", a.claim_royalties(task))
    record("joinRelay", c.join_relay(task, ETH))  # a queue of two: the steady-state join
    record("leaveRelay", c.leave_relay(task))
    # b holds the turn: let it expire, then anyone may skip it.
    advance(params.turn_duration + 1)
    record("skipTurn", keeper.skip_turn(task))
    record("leaveValidator", vals[2].leave_validator(task))
    record("withdraw", a.withdraw())
    return gas


def _budget_chain() -> tuple[DeRelayContract, list[ChainClient], Callable[[int], None]]:
    """A fresh embedded chain with the budget accounts funded and DeRelay deployed."""
    tester = EthereumTester(PyEVMBackend())
    w3 = Web3(EthereumTesterProvider(tester))
    funder = tester.get_accounts()[0]
    decoder = decoder_for()
    clients = []
    for key in BUDGET_KEYS:
        account = Account.from_key(key)
        tester.send_transaction(
            {"from": funder, "to": account.address, "value": 1_000 * ETH, "gas": 21_000}
        )
        clients.append(ChainClient(w3, account, decoder))

    def advance(seconds: int) -> None:
        tester.time_travel(int(w3.eth.get_block("latest")["timestamp"]) + seconds)

    return DeRelayContract.deploy(clients[0]), clients, advance


def write_baseline(path: Path = BASELINE_PATH) -> dict[str, int]:
    """Measure `scripted_gas` on a fresh embedded chain and write it as the committed baseline."""
    relay, clients, advance = _budget_chain()
    gas = scripted_gas(relay, clients, advance)
    document = {
        "about": (
            "Steady-state gas per external function of DeRelay, measured by "
            "bench.gas.scripted_gas on the embedded chain (Shanghai). "
            "tests/contracts/test_gas_budget.py fails when a function uses more than "
            f"{BUDGET_TOLERANCE:.0%} above its figure here. Regenerate deliberately with "
            "`python -m bench.gas --write-baseline`."
        ),
        "tolerance": BUDGET_TOLERANCE,
        "gas": dict(sorted(gas.items())),
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    return gas


def load_baseline(path: Path = BASELINE_PATH) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))


def budget_problems(measured: dict[str, int], baseline: dict[str, Any]) -> list[str]:
    """One line per function over its baseline by more than the tolerance, or without one."""
    tolerance = float(baseline.get("tolerance", BUDGET_TOLERANCE))
    budget: dict[str, int] = baseline["gas"]
    problems = []
    for name, gas in sorted(measured.items()):
        if name not in budget:
            problems.append(f"{name}: {gas} gas, no baseline")
            continue
        limit = budget[name] * (1 + tolerance)
        if gas > limit:
            problems.append(
                f"{name}: {gas} gas, {gas / budget[name] - 1:+.1%} over its baseline "
                f"{budget[name]} (allowed +{tolerance:.0%})"
            )
    for name in sorted(budget.keys() - measured.keys()):
        problems.append(f"{name}: in the baseline but no longer measured")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description="Gas of DeRelay's functions.")
    parser.add_argument(
        "--write-baseline", action="store_true", help=f"rewrite {BASELINE_PATH.name}"
    )
    parser.add_argument("--full", action="store_true", help="500 queued, 1000 share holders")
    args = parser.parse_args()
    if args.write_baseline:
        gas = write_baseline()
        width = max(len(name) for name in gas)
        for name, value in sorted(gas.items()):
            print(f"{name:<{width}}  {value}")
        print(f"wrote {BASELINE_PATH}")
        return
    print(report(queue_sizes=(10, 500) if args.full else (10, 100)))
    print()
    print(render_holders(holders_report((10, 1000) if args.full else (10, 100))))


if __name__ == "__main__":
    main()
