"""Gas of every external function of DeRelay, measured on the embedded chain.

For each queue size it runs the same scripted relay: the first round, then steady-state rounds
(every later round), each with a submit, commits and reveals from every validator, and a finalize.
It reports per function the gas of the first round and the median of the steady-state rounds, the
ratio between queue sizes (O(1) in participants means ~1.00), and one crowned round's total
against its floor: the 21,000 base of each transaction, its calldata, and the storage the round
must write (documented in `round_floor`). Each call's own floor, counted slot by slot, is
`bench.gas_floor`'s; each operation on each verdict path at 10 and 1000 participants,
`bench.gas_paths`'.

Every scripted review is steered down the path it is named after by the paired scores the
validators reveal, set against the champion score on chain (`ballots`), and checked after
finalize from the RoundFinalized event (`expect_path`): a figure for a crowned round is always one
of a child that beat the champion and was paid for it, whatever the reward rule. Keepers' finalize
goes out as the worker sends it, with `finalize_gas(maxValidators)` and no estimate (the gas it
uses does not depend on its limit).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import statistics
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_tester.exceptions import TransactionFailed
from eth_utils import keccak
from web3 import Web3
from web3.contract.contract import ContractFunction
from web3.logs import DISCARD
from web3.types import TxReceipt

from derelay.lab.harness import EmbeddedRelay, send_fixed, start_relay
from derelay.trainer.chain import ChainClient
from derelay.trainer.contract import (
    ZERO_ADDRESS,
    DeRelayContract,
    Status,
    TaskParams,
    commitment_for,
    decoder_for,
    finalize_gas,
)

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


# ---------------------------------------------------------------------- review paths

# crowned: accepted, beat the champion, paid; accepted: the new head, no gain, no reward;
# held: below the advance band; rejected: below the slash band; void: nobody voted.
PATHS = ("crowned", "accepted", "held", "rejected", "void")


def path_delta(path: str, params: TaskParams, gain: int | None = None) -> int:
    """The median delta (child - champion) that takes a decided review down `path`; a crowned
    child gains `gain` (default: minGain, the least that crowns)."""
    if path == "crowned":
        gain = params.min_gain if gain is None else gain
        if gain < params.min_gain:
            raise ValueError(f"a crowned child needs a gain of minGain or more, not {gain}")
        return gain
    if path == "accepted":
        return 0
    if path == "held":
        if params.advance_band >= params.slash_band:
            raise ValueError("no held path: the advance band is as wide as the slash band")
        return -((params.advance_band + params.slash_band + 1) // 2)
    if path == "rejected":
        return -(params.slash_band + 100)
    raise ValueError(f"no delta for path {path!r}: use one of {', '.join(PATHS[:-1])}")


def ballots(
    path: str, champion: int, params: TaskParams, voters: int, gain: int | None = None
) -> list[tuple[int, int, int]]:
    """Paired scores (child, champion, parent) for `voters` reveals that take the review down
    `path`: each validator measures the champion, which is also the child's parent, within a
    point or two of `champion` (its score on chain) and the child at the path's delta from it, so
    the lower medians are exactly `champion` and `champion + delta`, and progress is delta. A
    rejected child that would score below 0 scores 0 (also rejected)."""
    delta = path_delta(path, params, gain)
    pairs = []
    for k in range(voters):
        seen = champion + k - (voters - 1) // 2
        child = max(0, seen + delta) if path == "rejected" else seen + delta
        if not (0 <= seen <= 10_000 and 0 <= child <= 10_000):
            raise ValueError(f"champion {champion}: path {path} needs scores outside 0..10000")
        pairs.append((child, seen, seen))
    return pairs


def expect_path(relay: DeRelayContract, receipt: TxReceipt, path: str) -> None:
    """Raise unless the finalize in `receipt` went down `path` (see PATHS)."""
    (final,) = relay.contract.events.RoundFinalized().process_receipt(receipt, errors=DISCARD)
    crowned = relay.contract.events.ChampionCrowned().process_receipt(receipt, errors=DISCARD)
    verdict, reward = Status(final["args"]["verdict"]), int(final["args"]["reward"])
    got = {
        Status.ACCEPTED: "crowned" if crowned and reward > 0 else "accepted",
        Status.HELD: "held",
        Status.REJECTED: "rejected",
        Status.VOID: "void",
    }[verdict]
    if got != path or (path == "accepted" and crowned):
        raise RuntimeError(
            f"round {final['args']['round']} was scripted {path} and finalized {verdict.name} "
            f"(delta {final['args']['delta']}, reward {reward}, crowned {bool(crowned)})"
        )


def _create_task(publisher: DeRelayContract, params: TaskParams, funding: int) -> int:
    """Create a task without a gas estimate (it costs a dozen runs of createTask); its id."""
    send_fixed(publisher, "createTask", params.as_tuple(), value=funding)
    return publisher.task_count()


def _salt(address: str, round_: int) -> bytes:
    return keccak(text=f"salt:{address}:{round_}")


# ---------------------------------------------------------------------- per queue size


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


def bench_relay(count: int) -> EmbeddedRelay:
    """A fresh embedded chain with DeRelay deployed and `count` accounts with 200 ether each: the
    funder's million lasts for 5,000 of them (a thousand relayers each staking a few ether, a
    publisher funding a 100-ether pool)."""
    keys = [hashlib.sha256(f"bench-{i}".encode()).digest() for i in range(count)]
    return start_relay([Account.from_key(k) for k in keys], ether_each=200)


def measure(relayers: int, validators: int, rounds: int) -> GasRun:
    """Run `rounds` crowned rounds (each child beats the champion by minGain and is paid) with
    `relayers` queued and `validators` revealing.

    A relayer's first reward writes two new slots (its withdrawable balance and its royalty
    shares), so finalize is reported apart for a holder's first reward and for a returning holder.
    """
    embedded = bench_relay(3 + validators + relayers)
    w3 = embedded.w3
    clients, publisher = embedded.clients, embedded.relay
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
    task = _create_task(publisher, params, 100 * ETH)
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
        pairs = ballots("crowned", state.champion_score, params, validators, params.min_gain)
        salts = [os.urandom(32) for _ in vals]
        for v, (child, champion, parent), salt in zip(vals, pairs, salts, strict=True):
            commitment = commitment_for(
                task, state.round, child, champion, parent, salt, v.client.address
            )
            receipt = v.commit_score(task, state.round, commitment)
            gas_of.setdefault("commitScore", receipt["gasUsed"])
            calldata += _tx_calldata(w3, receipt)
        embedded.chain.advance(params.commit_window + 1)
        for v, (child, champion, parent), salt in zip(vals, pairs, salts, strict=True):
            receipt = v.reveal_score(task, state.round, child, champion, parent, salt)
            gas_of.setdefault("revealScore", receipt["gasUsed"])
            calldata += _tx_calldata(w3, receipt)
        receipt = keeper.finalize(task, finalize_gas(params.max_validators))
        expect_path(publisher, receipt, "crowned")
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
    """The least gas a crowned round can cost: base and calldata of its transactions, plus the
    storage it must write. Must-write storage, each at its cheapest (a new slot 22,100 with its
    cold access, an update 5,000): the child's record (new: the never-seen-before check needs one
    slot per child), each commitment and each seat's revealed pair of scores (updates), and in
    finalize the head, the champion, the relayer's reward, its royalty shares, each validator's
    fee and the turn state (updates).
    """
    transactions = 2 + 2 * validators
    storage = 22_100 + validators * 5_000 * 2 + 5_000 * (5 + validators)
    return transactions * 21_000 + calldata + storage


def collect(
    queue_sizes: tuple[int, ...] = (10, 500),
    validators: tuple[int, ...] = (3, 5),
    round_counts: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """Run every configuration; return per function its first-round gas, its steady-state median
    per queue size and the ratio, and each crowned round's total against its floor.
    `round_counts`: how many rounds the smallest queue and the others run (default: a rotation
    and 3 more, and 6)."""
    small, large = queue_sizes[0], queue_sizes[-1]
    # The small queue runs past one full rotation so that holders come back; the large one runs
    # the same first rounds, which is what the O(1) ratio compares.
    small_rounds, other_rounds = round_counts or (small + 3, 6)
    if small_rounds <= small:
        raise ValueError(f"{small} queued need {small + 1} rounds or more for a holder to return")
    runs = {
        (q, v): measure(q, v, rounds=small_rounds if q == small else other_rounds)
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
        "| crowned round, returning relayer | validators | total gas | floor | total / floor | total / 297k |"
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
    shares (each crowned a champion and was paid for it), all of them still queued.

    The relay is brought there by scripted rounds sent without gas estimation (`send_fixed`), each
    child 1 bp above the champion before it, so that every relayer crowns one; the measured
    transactions then go through the bindings like every other figure here.
    """
    embedded = bench_relay(4 + validators + holders)
    clients, publisher = embedded.clients, embedded.relay
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
        min_gain=1,  # every child 1 bp above the champion: scores stay in range for 1000 rounds
    )
    task = _create_task(publisher, params, 100 * ETH)
    for v in vals:
        send_fixed(v, "registerValidator", task, value=ETH)
    for r in rels:
        send_fixed(r, "joinRelay", task, value=ETH)

    def play(send: Callable[..., TxReceipt]) -> dict[str, int]:
        """One crowned round: every validator votes (a silent one would be charged for a miss)."""
        state = publisher.task_state(task)
        holder = by_address[state.holder]
        pairs = ballots("crowned", state.champion_score, params, len(vals))
        gas = {}
        child = _cid(f"child-{state.round}")
        gas["submitRelay"] = send(
            holder, "submitRelay", task, state.round, state.head_cid[4:], child,
            _cid(f"card-{state.round}"), hashlib.sha256(b"data").digest(), 1000,
        )["gasUsed"]  # fmt: skip
        for v, (child_score, champion_score, parent_score) in zip(vals, pairs, strict=True):
            commitment = commitment_for(
                task, state.round, child_score, champion_score, parent_score,
                _salt(v.client.address, state.round), v.client.address,
            )  # fmt: skip
            gas["commitScore"] = send(v, "commitScore", task, state.round, commitment)["gasUsed"]
        embedded.chain.advance(params.commit_window + 1)
        for v, (child_score, champion_score, parent_score) in zip(vals, pairs, strict=True):
            salt = _salt(v.client.address, state.round)
            gas["revealScore"] = send(
                v,
                "revealScore",
                task,
                state.round,
                child_score,
                champion_score,
                parent_score,
                salt,
            )["gasUsed"]
        receipt = send(keeper, "finalize", task)
        expect_path(publisher, receipt, "crowned")
        gas[f"finalize({len(vals)} reveals, returning relayer)"] = receipt["gasUsed"]
        return {name: int(value) for name, value in gas.items()}

    def bound_send(view: DeRelayContract, name: str, *args: Any) -> TxReceipt:
        methods: dict[str, Callable[..., TxReceipt]] = {
            "submitRelay": view.submit_relay,
            "commitScore": view.commit_score,
            "revealScore": view.reveal_score,
            "finalize": functools.partial(view.finalize, gas=finalize_gas(validators)),
        }
        return methods[name](*args)

    for _ in range(holders):
        play(send_fixed)
    state = publisher.task_state(task)
    holding = sum(1 for r in rels if publisher.account(task, r.client.address).shares > 0)
    if holding != holders:
        raise RuntimeError(f"{holding} of {holders} relayers hold shares after {holders} rounds")
    # Every relayer, validator and the keeper has been paid before: a steady-state round.
    gas = play(bound_send)
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

# ---------------------------------------------------------------------- the dearest finalize

# The finalize cases that write the most, as (path, seats that reveal, what the others do): every
# seat revealing and paid; a quorum paid and every other seat charged for a missed commit or a
# silent ballot and removed; a rejected holder that leaves the queue; a void review nobody voted in.
# A removed seat deletes two slots, whose refunds come back only after the transaction, so the
# limit a finalize needs is above the gas it reports.
FINALIZE_CASES: tuple[tuple[str, str, str], ...] = (
    ("crowned", "all", "none"),
    ("crowned", "quorum", "missed"),
    ("crowned", "quorum", "silent"),
    ("rejected", "quorum", "missed"),
    ("void", "none", "missed"),
)


def finalize_cases(
    validators: int, cases: Sequence[tuple[str, str, str]] = FINALIZE_CASES
) -> list[dict[str, Any]]:
    """Gas of finalize with `validators` seats for each of `cases` (path, revealers, others), each
    from the same submission: `revealers` ("all", "quorum" or "none") reveal ballots for `path`
    (and are paid); the other seats miss the commit ("missed") or commit and stay silent
    ("silent"). Every write is as dear as it can be: each validator and the keeper are paid for
    the first time, each validator staked exactly validatorStake, so any charge costs its seat;
    the holder staked exactly minStake, so a rejection sends it out of the queue; a crowned holder
    earns its first reward after royalties were paid to earlier contributors. Each row has the
    gas used and the least gas limit the call needs (`least_gas_limit`), which it is then sent
    with. Transactions that only set the stage are scripted (`send_fixed`)."""
    embedded = bench_relay(8 + validators)
    w3 = embedded.w3
    tester = embedded.chain.tester
    clients, publisher = embedded.clients, embedded.relay
    early_keeper, first, holder, consumer = (publisher.as_account(c) for c in clients[2:6])
    early = [publisher.as_account(c) for c in clients[6:8]]
    vals = [publisher.as_account(c) for c in clients[8:]]
    quorum = min(2, validators)
    params = TaskParams(
        spec_cid=_cid("spec"),
        genesis_cid=_cid("genesis"),
        genesis_score=5000,
        min_stake=ETH,
        validator_stake=ETH,
        max_validators=max(validators, len(early)),
        quorum=quorum,
    )
    task = _create_task(publisher, params, 100 * ETH)

    def submit(relayer: DeRelayContract) -> None:
        state = publisher.task_state(task)
        send_fixed(
            relayer, "submitRelay", task, state.round, state.head_cid[4:],
            _cid(f"child-{state.round}"), _cid("card"), hashlib.sha256(b"data").digest(), 1000,
        )  # fmt: skip

    def review(voters: list[DeRelayContract], path: str, silent: list[DeRelayContract]) -> None:
        """`voters` commit and reveal ballots for `path`, `silent` only commit; the clock passes
        the commit window (and the reveal window, when some are silent)."""
        state = publisher.task_state(task)
        pairs = ballots(path, state.champion_score, params, len(voters)) if voters else []
        ballots_of = list(zip(voters + silent, pairs + [(0, 0, 0)] * len(silent), strict=True))
        for v, (child, champion, parent) in ballots_of:
            salt = _salt(v.client.address, state.round)
            commitment = commitment_for(
                task, state.round, child, champion, parent, salt, v.client.address
            )
            send_fixed(v, "commitScore", task, state.round, commitment)
        now = int(w3.eth.get_block("latest")["timestamp"])
        tester.time_travel(now + params.commit_window + 1)
        for v, (child, champion, parent) in ballots_of[: len(voters)]:
            salt = _salt(v.client.address, state.round)
            send_fixed(v, "revealScore", task, state.round, child, champion, parent, salt)
        if silent:  # a silent ballot holds the review open to the end of the reveals
            tester.time_travel(now + params.commit_window + params.reveal_window + 2)
        tester.mine_blocks()  # eth_call runs at the latest block's time

    # A first round crowned by `first`, reviewed by two early validators who then leave, and a
    # payment for the model: royalties per share are above 0 when the holder's turn comes.
    for v in early:
        send_fixed(v, "registerValidator", task, value=ETH)
    send_fixed(first, "joinRelay", task, value=ETH)
    send_fixed(holder, "joinRelay", task, value=ETH)
    submit(first)
    review(early, "crowned", [])
    expect_path(publisher, send_fixed(early_keeper, "finalize", task), "crowned")
    for v in early:
        send_fixed(v, "leaveValidator", task)
    send_fixed(consumer, "payForModel", task, value=params.usage_fee)
    for v in vals:
        send_fixed(v, "registerValidator", task, value=ETH)
    submit(holder)
    snapshot = tester.take_snapshot()
    rows = []
    for path, revealers, others in cases:
        tester.revert_to_snapshot(snapshot)
        voting = {"all": validators, "quorum": quorum, "none": 0}[revealers]
        review(vals[:voting], path, vals[voting:] if others == "silent" else [])
        # A fresh client: the last case's one remembers a nonce from after the snapshot.
        keeper = publisher.as_account(ChainClient(w3, clients[1].account, decoder_for()))
        call = publisher.contract.functions.finalize(task)
        limit = least_gas_limit(call, keeper.client.address, finalize_gas(validators))
        receipt = keeper.finalize(task, gas=limit)
        expect_path(publisher, receipt, path)
        removed = sum(1 for seat in publisher.seats(task) if seat.validator == ZERO_ADDRESS)
        if removed != validators - voting:
            raise RuntimeError(f"{removed} seats removed, {validators - voting} expected")
        rows.append(
            {
                "seats": validators,
                "path": path,
                "revealers": revealers,
                "others": others,
                "used": int(receipt["gasUsed"]),
                "limit": limit,
            }
        )
    return rows


def least_gas_limit(call: ContractFunction, sender: str, most: int) -> int:
    """The least gas limit, rounded up to within 1,000, with which `call` from `sender` succeeds,
    found by eth_calls at limits up to `most` (where it must succeed: any failure below it is then
    for want of gas). Above the gas the transaction reports when it frees storage: refunds are
    paid back only after the call."""
    call.call({"from": sender, "gas": most})
    low, high = 21_000, most
    while high - low > 1_000:
        middle = (low + high) // 2
        try:
            call.call({"from": sender, "gas": middle})
        except TransactionFailed:
            low = middle
        else:
            high = middle
    return high


def finalize_report(seat_counts: Sequence[int] = (3, 16)) -> dict[str, Any]:
    """`finalize_cases` for each number of seats."""
    return {"rows": [row for seats in seat_counts for row in finalize_cases(seats)]}


def render_finalize(data: dict[str, Any]) -> str:
    lines = [
        "| seats | verdict | reveal | the other seats | gas used | limit needed | finalize_gas |",
        "|---:|---|---|---|---:|---:|---:|",
    ]
    for r in data["rows"]:
        others = {"none": "-", "missed": "miss, removed", "silent": "silent, removed"}[r["others"]]
        lines.append(
            f"| {r['seats']} | {r['path']} | {r['revealers']} | {others} | {r['used']} | "
            f"{r['limit']} | {finalize_gas(r['seats'])} |"
        )
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
        slash_band=1000,
        advance_band=100,
        max_misses=3,
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
    """`scripted_receipts`' gas used per name."""
    receipts = scripted_receipts(relay, clients, advance)
    return {name: int(receipt["gasUsed"]) for name, receipt in receipts.items()}


def scripted_receipts(
    relay: DeRelayContract, clients: list[ChainClient], advance: Callable[[int], None]
) -> dict[str, TxReceipt]:
    """The receipts of every external function of DeRelay in one scripted relay: two tasks, three
    validators, three relayers, a review down every path (crowned for a first and a returning
    relayer, accepted without gain, held, rejected, void), a resubmitted void child reviewed with
    a missed commit, a skipped turn, royalties paid and claimed, leaving, withdrawing.

    `relay` is a freshly deployed contract seen by clients[0]; `advance(seconds)` moves the chain's
    clock forward. Deterministic: the same chain and accounts give the same gas every time. Where
    a function runs more than once, the figure is that of a later, steady-state call.
    """
    views = [relay.as_account(c) for c in clients]
    publisher, keeper = views[0], views[1]
    vals, (a, b, c), consumer = views[2:5], views[5:8], views[8]
    gas: dict[str, TxReceipt] = {}

    def record(name: str, receipt: TxReceipt) -> None:
        gas[name] = receipt

    params = _budget_params()
    create = publisher.contract.functions.createTask(params.as_tuple())
    record("createTask(first task)", publisher.client.transact(create, "createTask", 10 * ETH))
    task = publisher.task_count()
    record("createTask", publisher.client.transact(create, "createTask", ETH))
    record("fund", publisher.fund(task, ETH))
    for v in vals:
        # Twice the seat's stake: a charge for a missed commit leaves the validator seated.
        record("registerValidator", v.register_validator(task, 2 * ETH))
    record("joinRelay(first, starts turn)", a.join_relay(task, ETH))
    record("joinRelay", b.join_relay(task, ETH))
    record("addStake", b.add_stake(task, ETH))

    def round_(path: str, label: str, voters: int = 3) -> dict[str, TxReceipt]:
        """Submit child `label`, let the first `voters` validators commit and reveal ballots for
        `path` (the others miss the commit), finalize, and check the path taken."""
        state = relay.task_state(task)
        holder = {v.client.address: v for v in (a, b, c)}[state.holder]
        out = {}
        out["submitRelay"] = holder.submit_relay(
            task, state.round, state.head_cid[4:], _cid(f"child-{label}"), _cid(f"card-{label}"),
            hashlib.sha256(b"data").digest(), 100,
        )  # fmt: skip
        pairs = [] if path == "void" else ballots(path, state.champion_score, params, voters)
        for v, (child, champion, parent) in zip(vals, pairs, strict=False):
            salt = _salt(v.client.address, state.round)
            commitment = commitment_for(
                task, state.round, child, champion, parent, salt, v.client.address
            )
            out["commitScore"] = v.commit_score(task, state.round, commitment)
        advance(params.commit_window + 1)
        for v, (child, champion, parent) in zip(vals, pairs, strict=False):
            salt = _salt(v.client.address, state.round)
            out["revealScore"] = v.reveal_score(task, state.round, child, champion, parent, salt)
        receipt = keeper.finalize(task, finalize_gas(params.max_validators))
        expect_path(relay, receipt, path)
        out["finalize"] = receipt
        return out

    gas["finalize(3 reveals, crowned, first reward)"] = round_("crowned", "1")["finalize"]  # a
    round_("crowned", "2")  # b, its first reward
    steady = round_("crowned", "3")  # a, returning
    for name in ("submitRelay", "commitScore", "revealScore"):
        gas[name] = steady[name]
    gas["finalize(3 reveals, crowned, returning relayer)"] = steady["finalize"]
    gas["finalize(3 reveals, accepted, no gain)"] = round_("accepted", "4")["finalize"]  # b
    gas["finalize(3 reveals, held)"] = round_("held", "5")["finalize"]  # a
    gas["finalize(3 reveals, rejected)"] = round_("rejected", "6")["finalize"]  # b
    gas["finalize(void, 3 missed commits)"] = round_("void", "7")["finalize"]  # a keeps the turn
    retry = round_("crowned", "7", voters=2)  # a resubmits its void child
    gas["submitRelay(void child again)"] = retry["submitRelay"]
    gas["finalize(2 reveals, crowned, 1 missed commit)"] = retry["finalize"]
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
    embedded = start_relay([Account.from_key(key) for key in BUDGET_KEYS])
    return embedded.relay, embedded.clients, embedded.chain.advance


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
    print()
    print(render_finalize(finalize_report()))


if __name__ == "__main__":
    main()
