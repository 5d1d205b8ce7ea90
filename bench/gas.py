"""Gas of every external function of DeRelay, measured on the embedded chain.

For each queue size it runs the same scripted relay: the first round, then steady-state rounds
(every later round), each with a submit, commits and reveals from every validator, and a finalize.
It reports per function the gas of the first round and the median of the steady-state rounds, the
ratio between queue sizes (O(1) in participants means ~1.00), and one accepted round's total
against its floor: the 21,000 base of each transaction, its calldata, and the storage the round
must write (documented in `round_floor`).
"""

from __future__ import annotations

import hashlib
import os
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from eth_account import Account
from eth_tester import EthereumTester, PyEVMBackend
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


def report(queue_sizes: tuple[int, ...] = (10, 500), validators: tuple[int, ...] = (3, 5)) -> str:
    """Run every configuration and render the markdown report."""
    small, large = queue_sizes[0], queue_sizes[-1]
    # The small queue runs past one full rotation so that holders come back; the large one runs
    # the same first rounds, which is what the O(1) ratio compares.
    runs = {
        (q, v): measure(q, v, rounds=small + 3 if q == small else 6)
        for q in queue_sizes
        for v in validators
    }
    lines = [
        f"| function | first round | steady ({small} queued) | steady ({large} queued) | ratio | target |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    names: list[tuple[str, int]] = []
    for v in validators:
        for name in runs[(small, v)].steady:
            if (name, v) not in names and (v == validators[0] or name.startswith("finalize")):
                names.append((name, v))
    for name, v in names:
        a, b = runs[(small, v)], runs[(large, v)]
        first = a.first.get(name, "")
        sa = a.steady_median(name)
        target = TARGETS.get(name.replace(", returning relayer", ""), "")
        if b.steady.get(name):
            sb = b.steady_median(name)
            lines.append(f"| {name} | {first} | {sa} | {sb} | {sb / sa:.3f} | {target} |")
        else:
            lines.append(f"| {name} | {first} | {sa} | n/a | n/a | {target} |")
    lines.append("")
    lines.append(
        "| accepted round, returning relayer | validators | total gas | floor | total / floor | total / 297k |"
    )
    lines.append("|---|---:|---:|---:|---:|---:|")
    for (q, v), run in sorted(runs.items()):
        if not run.round_totals:
            continue
        total = int(statistics.median(run.round_totals))
        calldata = int(statistics.median(run.round_calldata))
        floor = round_floor(v, calldata)
        lines.append(
            f"| {q} queued | {v} | {total} | {floor} | {total / floor:.2f} | {total / ISSUE_ROUND_FLOOR:.2f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(report())
