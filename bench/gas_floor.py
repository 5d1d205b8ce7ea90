"""Each call's gas beside its floor, counted from first principles (issue 13 item 4).

The floor of a call is what no implementation of the same rules can avoid paying on Shanghai:

- 21,000 intrinsic gas;
- calldata, 16 per non-zero byte and 4 per zero byte, of the very transaction measured;
- each storage slot the call must write, cold, by EIP-2929 and EIP-2200: a zero slot made
  non-zero 22,100 (20,000 + 2,100 cold access), a non-zero slot changed 5,000 (2,900 + 2,100), a
  non-zero slot cleared 5,000 less a 4,800 refund (EIP-3529), refunds capped at a fifth of the gas
  used;
- the logs it emits, 375 + 375 per topic + 8 per data byte (one event per state change is a
  project rule, so the events of the receipt are counted as they are);
- a value transfer where ether must leave (withdraw), 9,000.

Reads are not in the floor: a cold slot read (2,100) is overhead, and so is every opcode. Which
writes a call cannot avoid, and why, is `WRITES` below: one line per slot, with what it holds
and why no design of the same rules can skip it. The table compares each call of the scripted
relay of `bench.gas.scripted_receipts` (the same run as the gas baseline) with its floor; the
target is 1.2x. The steady round (a returning relayer's crowned child reviewed by 3 validators)
is compared with the sum of its calls' floors.

    python -m bench.gas_floor
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from web3 import Web3
from web3.types import TxReceipt

from bench.gas import _budget_chain, calldata_gas, scripted_receipts

TARGET = 1.2
INTRINSIC = 21_000
NEW = 22_100  # zero -> non-zero, cold
UPDATE = 5_000  # non-zero -> non-zero, cold
CLEAR = 5_000  # non-zero -> zero, cold; refunds CLEAR_REFUND
CLEAR_REFUND = 4_800
TRANSFER = 9_000  # CALL with value to an account that exists, already warm (the sender)
COSTS = {"new": NEW, "update": UPDATE, "clear": CLEAR}

# One write: (kind, what the slot holds and why the call cannot skip it).
Write = tuple[str, str]

_STATE = ("update", "task state (phase, round, holder, phase end): the relay moves on")
_POOL = ("update", "pool: ether moved in or out of it")
_RECORD = ("update", "the child's record: its verdict and score, what recordOf answers")


def _fees(validators: int, kind: str) -> list[Write]:
    return [("" + kind, "a validator's withdrawable balance: its fee")] * validators


def _finalize(path: str, fees: int = 3, fee_kind: str = "update") -> list[Write]:
    writes = [_STATE, _RECORD]
    if path != "void":
        writes.append(_POOL)
        writes += _fees(fees, fee_kind)
        writes.append((fee_kind, "the keeper's withdrawable balance: its bounty"))
    if path in ("crowned", "accepted"):
        writes.append(("update", "head digest: the child becomes the head"))
    if path == "crowned":
        writes.append(("update", "champion digest: the child becomes the champion"))
    if path == "rejected":
        writes.append(("update", "the relayer's stake: slashed"))
    return writes


def _crowned_reward(kind: str) -> list[Write]:
    return [
        (kind, "the relayer's withdrawable balance: its reward"),
        (kind, "the relayer's royalty shares"),
        # Shares the slot of the consumer terms, set at creation: never a new slot.
        ("update", "total shares: the royalty accumulator's denominator"),
    ]


def _missed(seats: int) -> list[Write]:
    return [
        ("update", "a seat that missed its commit: its miss count"),
        ("update", "that validator's stake: charged for the miss"),
    ] * seats


WRITES: dict[str, list[Write]] = {
    "createTask(first task)": [
        ("new", "task count: the new id (the first task ever)"),
        *[("new", "parameters: 109 bytes of them and the publisher, packed in 5 slots")] * 5,
        ("new", "spec digest"),
        ("new", "head digest: the genesis"),
        ("new", "the genesis record: a child may never be the genesis again"),
        ("new", "pool and scores"),
        ("new", "task state: the head's codec"),
    ],
    "createTask": [
        ("update", "task count: the new id"),
        *[("new", "parameters: 109 bytes of them and the publisher, packed in 5 slots")] * 5,
        ("new", "spec digest"),
        ("new", "head digest: the genesis"),
        ("new", "the genesis record: a child may never be the genesis again"),
        ("new", "pool and scores"),
        ("new", "task state: the head's codec"),
    ],
    "fund": [_POOL],
    "addStake": [("update", "the relayer's stake")],
    "joinRelay(first, starts turn)": [
        ("new", "the relayer's queue links and stake (two addresses and a stake: two slots)"),
        ("new", "the relayer's queue links and stake (two addresses and a stake: two slots)"),
        ("update", "queue length"),
        _STATE,
    ],
    "joinRelay": [
        ("new", "the relayer's queue links and stake (two addresses and a stake: two slots)"),
        ("new", "the relayer's queue links and stake (two addresses and a stake: two slots)"),
        ("update", "the tail's next link: the newcomer"),
        ("update", "the front's previous link: the newcomer, the new tail"),
        ("update", "queue length"),
    ],
    "leaveRelay": [
        ("clear", "the relayer's queue links and stake"),
        ("clear", "the relayer's queue links and stake"),
        ("update", "the previous member's next link"),
        ("update", "the next member's previous link"),
        ("update", "queue length"),
        ("new", "the leaver's withdrawable balance (its first): the refund"),
    ],
    "skipTurn": [
        ("update", "the holder's stake: slashed"),
        _POOL,
        ("update", "the keeper's withdrawable balance: its bounty"),
        _STATE,
    ],
    "registerValidator": [
        ("new", "the seat: validator and ballot"),
        ("new", "the validator's stake and seat number"),
    ],
    "leaveValidator": [
        ("clear", "the seat"),
        ("clear", "the validator's stake and seat number"),
        ("update", "the validator's withdrawable balance: its refund"),
    ],
    "submitRelay": [
        ("new", "the child's record: no child may be submitted twice, so each needs a slot"),
        ("update", "the digest under review: finalize must know which child it decides"),
        _STATE,
    ],
    "submitRelay(void child again)": [
        ("update", "the child's record: pending again, for this round"),
        _STATE,
    ],
    "commitScore": [
        ("update", "the commitment: 32 bytes of hash, a slot of its own"),
        ("update", "the seat's ballot: committed for this round"),
    ],
    "revealScore": [("update", "the seat's ballot: the three revealed scores")],
    "finalize(3 reveals, crowned, first reward)": [
        *_finalize("crowned", fee_kind="new"),
        *_crowned_reward("new"),
    ],
    "finalize(3 reveals, crowned, returning relayer)": [
        *_finalize("crowned"),
        *_crowned_reward("update"),
    ],
    "finalize(3 reveals, accepted, no gain)": _finalize("accepted"),
    "finalize(3 reveals, held)": _finalize("held"),
    "finalize(3 reveals, rejected)": _finalize("rejected"),
    "finalize(void, 3 missed commits)": [*_finalize("void"), _POOL, *_missed(3)],
    "finalize(2 reveals, crowned, 1 missed commit)": [
        *_finalize("crowned", fees=2),
        *_crowned_reward("update"),
        *_missed(1),
    ],
    "payForModel(first)": [("new", "royalty per share: grows by the fee"), _POOL],
    "payForModel": [("update", "royalty per share: grows by the fee"), _POOL],
    "claimRoyalties": [
        ("new", "the contributor's royalty checkpoint (its first: shares came before any fee)"),
        ("update", "its withdrawable balance: the royalties"),
    ],
    "withdraw": [("clear", "the withdrawable balance")],
}
TRANSFERS = {"withdraw": 1}

# Cold reads of slots a call must consult and does not write (2,100 each). Not in the floor (the
# issue counts writes and logs); shown beside it to say how much of the gap no code can close.
_FINALIZE_READS = [
    "windows and stakes",
    "review parameters",
    "fees and bands",
    "the digest under review",
    "the holder's queue link (who holds the next turn)",
]


def _seat_reads(seats: int) -> list[str]:
    return ["a seat's ballot"] * seats


_REWARD_READS = ["royalty per share", "the relayer's royalty checkpoint"]
READS: dict[str, list[str]] = {
    "submitRelay": ["head digest (the parent check)", "windows (the commit window)"],
    "submitRelay(void child again)": [
        "head digest (the parent check)",
        "windows (the commit window)",
        "the latest digest (only the latest void child may come back)",
    ],
    "commitScore": ["task state (phase, round, commit end)", "the caller's seat number"],
    "revealScore": [
        "task state (phase, round, commit end)",
        "windows (the reveal window)",
        "the caller's seat number",
        "its commitment (what the reveal must match)",
    ],
    "finalize(3 reveals, crowned, first reward)": [
        *_FINALIZE_READS,
        *_seat_reads(3),
        *_REWARD_READS,
    ],
    "finalize(3 reveals, crowned, returning relayer)": [
        *_FINALIZE_READS,
        *_seat_reads(3),
        *_REWARD_READS,
    ],
    "finalize(3 reveals, accepted, no gain)": [*_FINALIZE_READS, *_seat_reads(3)],
    "finalize(3 reveals, held)": [*_FINALIZE_READS, *_seat_reads(3)],
    "finalize(3 reveals, rejected)": [*_FINALIZE_READS[:-1], *_seat_reads(3)],
    "finalize(void, 3 missed commits)": _FINALIZE_READS,  # each seat is written (its misses)
    "finalize(2 reveals, crowned, 1 missed commit)": [
        *_FINALIZE_READS,
        *_seat_reads(2),
        *_REWARD_READS,
    ],
    "registerValidator": ["stakes (validatorStake)", "seat count", "task state (excused?)"],
    "skipTurn": ["windows and stakes (the next turn, minStake)", "slash and bounty shares"],
    "joinRelay": ["windows and stakes (minStake)", "queue limit", "task state (the front)"],
    "joinRelay(first, starts turn)": ["windows and stakes (minStake)", "queue limit"],
    "leaveRelay": ["task state (is it the holder?)"],
    "leaveValidator": ["task state (phase)"],
    "payForModel": ["consumer terms and total shares"],
    "payForModel(first)": ["consumer terms and total shares"],
    "claimRoyalties": ["royalty per share", "the contributor's shares"],
}
COLD_READ = 2_100
STEADY_ROUND = (
    "submitRelay",
    "commitScore",
    "revealScore",
    "finalize(3 reveals, crowned, returning relayer)",
)


@dataclass
class Floor:
    intrinsic: int
    calldata: int
    storage: int
    refund: int  # before the cap
    logs: int
    transfers: int

    def total(self, used: int) -> int:
        gross = self.intrinsic + self.calldata + self.storage + self.logs + self.transfers
        return gross - min(self.refund, used // 5)


def log_gas(receipt: TxReceipt) -> int:
    """LOG costs of every event in `receipt`: 375 + 375 per topic + 8 per data byte."""
    return sum(
        375 + 375 * len(log["topics"]) + 8 * len(bytes(log["data"])) for log in receipt["logs"]
    )


def floor_of(w3: Web3, name: str, receipt: TxReceipt) -> Floor:
    """The floor of the call `name` (a key of WRITES) as sent in `receipt`."""
    tx = w3.eth.get_transaction(receipt["transactionHash"])
    writes = WRITES[name]
    return Floor(
        intrinsic=INTRINSIC,
        calldata=calldata_gas(bytes(tx["input"])),
        storage=sum(COSTS[kind] for kind, _ in writes),
        refund=CLEAR_REFUND * sum(1 for kind, _ in writes if kind == "clear"),
        logs=log_gas(receipt),
        transfers=TRANSFER * TRANSFERS.get(name, 0),
    )


def collect() -> dict[str, Any]:
    """Run the scripted relay; each call's gas, floor and ratio, and the steady round's."""
    relay, clients, advance = _budget_chain()
    receipts = scripted_receipts(relay, clients, advance)
    w3 = relay.client.w3
    missing = sorted(receipts.keys() - WRITES.keys())
    if missing:
        raise RuntimeError(f"no floor for {missing}: add their writes to WRITES")
    rows = []
    for name in sorted(receipts):
        used = int(receipts[name]["gasUsed"])
        floor = floor_of(w3, name, receipts[name])
        total = floor.total(used)
        rows.append(
            {
                "call": name,
                "used": used,
                "floor": total,
                "calldata": floor.calldata,
                "storage": floor.storage - min(floor.refund, used // 5),
                "logs": floor.logs,
                "ratio": used / total,
                "ok": used / total <= TARGET,
                "reads": COLD_READ * len(READS.get(name, [])),
            }
        )
    by_call = {r["call"]: r for r in rows}
    count = {"commitScore": 3, "revealScore": 3}
    used = sum(by_call[n]["used"] * count.get(n, 1) for n in STEADY_ROUND)
    floor = sum(by_call[n]["floor"] * count.get(n, 1) for n in STEADY_ROUND)
    reads = sum(by_call[n]["reads"] * count.get(n, 1) for n in STEADY_ROUND)
    steady = {
        "used": used,
        "floor": floor,
        "ratio": used / floor,
        "ok": used / floor <= TARGET,
        "reads": reads,
    }
    return {"target": TARGET, "rows": rows, "steady_round": steady}


def render(data: dict[str, Any]) -> str:
    target = data["target"]
    lines = [
        "| call | gas used | floor | of which calldata | storage | logs | used / floor | target "
        "| met | cold reads it cannot skip | used / (floor + reads) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for r in data["rows"]:
        lines.append(
            f"| {r['call']} | {r['used']:,} | {r['floor']:,} | {r['calldata']:,} | "
            f"{r['storage']:,} | {r['logs']:,} | {r['ratio']:.2f} | <= {target} | "
            f"{'yes' if r['ok'] else 'no'} | {r['reads']:,} | "
            f"{r['used'] / (r['floor'] + r['reads']):.2f} |"
        )
    s = data["steady_round"]
    lines.append(
        f"| **steady round, 3 validators** (submit, 3 commits, 3 reveals, crowned finalize) | "
        f"{s['used']:,} | {s['floor']:,} | | | | {s['ratio']:.2f} | <= {target} | "
        f"{'yes' if s['ok'] else 'no'} | {s['reads']:,} | "
        f"{s['used'] / (s['floor'] + s['reads']):.2f} |"
    )
    return "\n".join(lines)


def render_writes() -> str:
    """The unavoidable writes (and cold reads) of each call, as a markdown list."""
    lines = []
    for name, writes in WRITES.items():
        counted: dict[Write, int] = {}
        for w in writes:
            counted[w] = counted.get(w, 0) + 1
        items = "; ".join(
            f"{what} ({kind}{f' x{n}' if n > 1 else ''})" for (kind, what), n in counted.items()
        )
        reads: dict[str, int] = {}
        for what in READS.get(name, []):
            reads[what] = reads.get(what, 0) + 1
        read_items = "; ".join(f"{what}{f' x{n}' if n > 1 else ''}" for what, n in reads.items())
        lines.append(f"- **{name}**: {items}" + (f". Reads: {read_items}" if read_items else ""))
    return "\n".join(lines)


def main() -> None:
    print(render(collect()))


if __name__ == "__main__":
    main()
