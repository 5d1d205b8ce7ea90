"""Scale, path for path: the gas of each operation on each verdict path, at a small and a large
relay, side by side. O(1) per operation is a design promise, so every ratio must stay <= 1.01.

A relay of size N has N of each kind of participant:
- queue length: N relayers queued;
- share holders: each of them crowned a champion and was paid (N crowned rounds, royalties paid);
- lineage length: N + 1 entries (the genesis and N children);
- validators: N validators registered and left over the relay's life (the seats are capped at
  `MAX_VALIDATORS`, so the same three voters are seated on both sides; what finalize costs per
  seat, up to the cap, is the dearest-finalize table's business).

The big side is built cheaply on the embedded chain: scripted joins and scripted crowned rounds
sent without gas estimation (`send_fixed`), every child 1 bp above the champion. Then, from the
same point on both sides (the first relayer holds its second turn, with shares and royalties
owed to it), each operation is measured once on its path, every finalize path from the same
snapshot taken after the submission:

    python -m bench.gas_paths [--sizes 10 1000]
"""

from __future__ import annotations

import argparse
import hashlib
from typing import Any

from web3.types import TxReceipt

from bench.gas import ETH, _cid, _create_task, _salt, ballots, bench_relay, expect_path
from derelay.lab.harness import send_fixed
from derelay.trainer.contract import DeRelayContract, TaskParams, commitment_for

# The operations of issue 13 item 3, with finalize once per verdict path.
OPERATIONS = (
    "joinRelay",
    "leaveRelay",
    "registerValidator",
    "leaveValidator",
    "submitRelay",
    "commitScore",
    "revealScore",
    "finalize(crowned, returning relayer)",
    "finalize(accepted)",
    "finalize(held)",
    "finalize(rejected)",
    "finalize(void)",
    "payForModel",
    "claimRoyalties",
    "withdraw",
    "skipTurn",
)
TARGET_RATIO = 1.01
VOTERS = 3


def _params(size: int) -> TaskParams:
    return TaskParams(
        spec_cid=_cid("spec"),
        genesis_cid=_cid("genesis"),
        genesis_score=5000,
        min_stake=ETH,
        validator_stake=ETH,
        max_validators=VOTERS + 1,  # a free seat for the measured registration
        quorum=2,
        max_queue=size + 4,
        # Every scripted transaction is a block a second or more later: the first holder's turn
        # must outlast a thousand joins.
        turn_duration=30 * 24 * 3600,
        min_gain=1,  # every scripted child crowns at 1 bp over the champion
        base_reward=ETH // 1000,
        reward_per_point=ETH // 10_000,
        validator_fee=ETH // 10_000,
    )


def measure_side(size: int) -> dict[str, Any]:
    """Build a relay with `size` participants of each kind; measure every operation once."""
    embedded = bench_relay(4 + VOTERS + size)
    tester = embedded.chain.tester
    clients, publisher = embedded.clients, embedded.relay
    keeper, consumer, newcomer = (publisher.as_account(c) for c in clients[1:4])
    vals = [publisher.as_account(c) for c in clients[4 : 4 + VOTERS]]
    rels = [publisher.as_account(c) for c in clients[4 + VOTERS :]]
    by_address = {r.client.address: r for r in rels}
    params = _params(size)
    task = _create_task(publisher, params, 100 * ETH)

    advance = embedded.chain.advance

    # Validators over the relay's life: every relayer account once took a seat and left it.
    for r in rels:
        send_fixed(r, "registerValidator", task, value=ETH)
        send_fixed(r, "leaveValidator", task)
    for v in vals:
        send_fixed(v, "registerValidator", task, value=ETH)
    for r in rels:
        send_fixed(r, "joinRelay", task, value=ETH)

    def submit() -> tuple[DeRelayContract, TxReceipt]:
        state = publisher.task_state(task)
        holder = by_address[state.holder]
        receipt = send_fixed(
            holder, "submitRelay", task, state.round, state.head_cid[4:],
            _cid(f"child-{state.round}"), _cid(f"card-{state.round}"),
            hashlib.sha256(b"data").digest(), 1000,
        )  # fmt: skip
        return holder, receipt

    def review(path: str) -> tuple[TxReceipt | None, TxReceipt | None, TxReceipt]:
        """Every voter commits and reveals ballots for `path` (none for void); then finalize.
        Returns the first commit's, the first reveal's and finalize's receipts."""
        state = publisher.task_state(task)
        voters = [] if path == "void" else vals
        pairs = ballots(path, state.champion_score, params, len(voters)) if voters else []
        commit = reveal = None
        for v, (child, champion, parent) in zip(voters, pairs, strict=True):
            salt = _salt(v.client.address, state.round)
            commitment = commitment_for(
                task, state.round, child, champion, parent, salt, v.client.address
            )
            receipt = send_fixed(v, "commitScore", task, state.round, commitment)
            commit = commit or receipt
        advance(params.commit_window + 1)
        for v, (child, champion, parent) in zip(voters, pairs, strict=True):
            salt = _salt(v.client.address, state.round)
            receipt = send_fixed(v, "revealScore", task, state.round, child, champion, parent, salt)
            reveal = reveal or receipt
        if path == "void":
            advance(params.reveal_window + 1)
        final = send_fixed(keeper, "finalize", task)
        expect_path(publisher, final, path)
        return commit, reveal, final

    # Every relayer crowns a champion once: `size` share holders, a lineage of size + 1.
    for index in range(size):
        submit()
        review("crowned")
        if index == 0:
            send_fixed(consumer, "payForModel", task, value=params.usage_fee)
    send_fixed(consumer, "payForModel", task, value=params.usage_fee)
    state = publisher.task_state(task)
    holding = sum(1 for r in rels if publisher.account(task, r.client.address).shares > 0)
    if (state.queue_length, holding, state.submission_count) != (size, size, size + 1):
        raise RuntimeError(
            f"size {size}: queue {state.queue_length}, {holding} holding shares, "
            f"lineage {state.submission_count}"
        )

    lineage = state.submission_count
    gas: dict[str, int] = {}

    def record(name: str, receipt: TxReceipt | None) -> None:
        if receipt is None:
            raise RuntimeError(f"{name} was not sent")
        gas[name] = int(receipt["gasUsed"])

    turn = tester.take_snapshot()  # the first relayer holds its second turn
    record("joinRelay", send_fixed(newcomer, "joinRelay", task, value=ETH))
    record("leaveRelay", send_fixed(newcomer, "leaveRelay", task))
    record("registerValidator", send_fixed(newcomer, "registerValidator", task, value=ETH))
    record("leaveValidator", send_fixed(newcomer, "leaveValidator", task))
    record("payForModel", send_fixed(consumer, "payForModel", task, value=params.usage_fee))
    owed = rels[1]  # holds shares, with royalties owed since the last payment
    record("claimRoyalties", send_fixed(owed, "claimRoyalties", task))
    record("withdraw", send_fixed(owed, "withdraw"))
    tester.revert_to_snapshot(turn)
    advance(params.turn_duration + 1)
    tester.mine_blocks()
    record("skipTurn", send_fixed(keeper, "skipTurn", task))
    tester.revert_to_snapshot(turn)
    _, receipt = submit()
    record("submitRelay", receipt)
    submitted = tester.take_snapshot()
    for path in ("crowned", "accepted", "held", "rejected", "void"):
        name = "finalize(crowned, returning relayer)" if path == "crowned" else f"finalize({path})"
        tester.revert_to_snapshot(submitted)
        commit, reveal, final = review(path)
        if path == "crowned":
            record("commitScore", commit)
            record("revealScore", reveal)
        record(name, final)
    return {
        "size": size,
        "queue": size,
        "holders": holding,
        "lineage": lineage,
        "validators_over_life": size + VOTERS,
        "gas": {name: gas[name] for name in OPERATIONS},
    }


def collect(sizes: tuple[int, int] = (10, 1000)) -> dict[str, Any]:
    """`measure_side` at both sizes, with each operation's ratio large / small."""
    small, large = (measure_side(n) for n in sizes)
    rows = []
    for name in OPERATIONS:
        a, b = small["gas"][name], large["gas"][name]
        rows.append(
            {"operation": name, "small": a, "large": b, "ratio": b / a, "ok": b / a <= TARGET_RATIO}
        )
    return {"sizes": list(sizes), "target": TARGET_RATIO, "sides": [small, large], "rows": rows}


def render(data: dict[str, Any]) -> str:
    small, large = data["sizes"]
    target = data["target"]
    lines = [
        f"| operation (path) | gas at {small} | gas at {large} | ratio | target | met |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for r in data["rows"]:
        lines.append(
            f"| {r['operation']} | {r['small']} | {r['large']} | {r['ratio']:.4f} | "
            f"<= {target} | {'yes' if r['ok'] else 'no'} |"
        )
    sides = data["sides"]
    lines.append("")
    lines.append(
        "Participants of each kind: "
        + "; ".join(
            f"{s['size']}: queue {s['queue']}, {s['holders']} share holders, lineage {s['lineage']}, "
            f"{s['validators_over_life']} validators over its life ({VOTERS} seated)"
            for s in sides
        )
        + "."
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs=2, default=(10, 1000))
    args = parser.parse_args()
    print(render(collect(tuple(args.sizes))))


if __name__ == "__main__":
    main()
