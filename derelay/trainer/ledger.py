"""One fold of a task's events into typed records: the money each event moved, each round's facts,
and who joined and left.

`fold_events` is pure: it takes decoded events in chain order (web3's event data, from `get_logs`
or a receipt: mappings with "event", "args", "blockNumber", "blockHash", "transactionHash" and
"logIndex") and returns a `Ledger`. The payouts, the dashboard and the simulation all read the
chain's money through it. `TaskLogs` is the thin I/O around it: it fetches a task's logs (paged)
or takes them from a receipt, and decodes them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from functools import partial
from typing import Any

from eth_utils import event_abi_to_log_topic
from web3.types import FilterParams, TxReceipt

from derelay.trainer.chain import rpc_read
from derelay.trainer.contract import LOG_PAGE, DeRelayContract, SlashReason, Status, block_pages

# Events whose first indexed argument is the task id: everything but Withdrawn.
TASK_EVENTS = (
    "TaskCreated",
    "PoolFunded",
    "RelayerJoined",
    "StakeAdded",
    "RelayerLeft",
    "TurnStarted",
    "RelaySubmitted",
    "ValidatorRegistered",
    "ValidatorLeft",
    "ScoreCommitted",
    "ScoreRevealed",
    "RoundFinalized",
    "ChampionCrowned",
    "ValidatorMissed",
    "ValidatorPaid",
    "ValidatorSlashed",
    "ValidatorOutvoted",
    "RelayerSlashed",
    "KeeperPaid",
    "ModelPaid",
    "RoyaltiesSettled",
)


class MoneyKind(Enum):
    """What moved money; the value is how the dashboard names it."""

    CREATED = "task created"  # the publisher's first pool
    FUNDED = "funded"  # someone added to the pool
    MODEL_PAID = "model paid"  # a payment for the model: part to royalties, the rest to the pool
    REWARD = "reward"  # the pool paid a relayer (0 unless crowned)
    FEE = "fee"  # the pool paid a validator for an in-band reveal
    BOUNTY = "bounty"  # the pool paid a keeper for a skip or a finalize
    TIMEOUT = "timeout"  # a relayer's stake to the pool: its turn ran out
    REJECTED = "rejected"  # a relayer's stake to the pool: its child was rejected
    NO_REVEAL = "no reveal"  # a validator's stake to the pool: it committed and did not reveal
    OUTVOTED = "outvoted"  # a validator's stake to the pool: it passed a rejected child
    MISSED = "missed"  # a validator's stake to the pool: it missed a commit
    ROYALTY = "royalty"  # owed royalties became withdrawable; the pool does not move

    @property
    def stake_lost(self) -> bool:
        """Whether the account lost stake (a slash or a missed-commit charge)."""
        return self in _STAKE_LOST


_STAKE_LOST = frozenset(
    {
        MoneyKind.TIMEOUT,
        MoneyKind.REJECTED,
        MoneyKind.NO_REVEAL,
        MoneyKind.OUTVOTED,
        MoneyKind.MISSED,
    }
)
_RELAYER_SLASHES = {
    SlashReason.TIMEOUT: MoneyKind.TIMEOUT,
    SlashReason.REJECTED: MoneyKind.REJECTED,
}


class Role(Enum):
    RELAYER = "relayer"
    VALIDATOR = "validator"


@dataclass(frozen=True)
class Place:
    """Where an event sits on the chain."""

    block: int
    block_hash: bytes
    tx: bytes
    log_index: int

    @classmethod
    def of(cls, event: Mapping[str, Any]) -> Place:
        return cls(
            int(event["blockNumber"]),
            bytes(event["blockHash"]),
            bytes(event["transactionHash"]),
            int(event["logIndex"]),
        )


@dataclass(frozen=True)
class Movement:
    """Money one event moved for one account, and what it did to the task's pool (wei).

    `amount` is what the account received (reward, fee, bounty, royalty), lost (the stake-lost
    kinds) or paid in (created, funded, model paid: of a model payment, `amount - pool_delta` went
    to royalties). `round` is None for moves outside a round. `reason` says it in words.
    """

    place: Place
    round: int | None
    account: str
    kind: MoneyKind
    amount: int
    pool_delta: int
    reason: str

    @property
    def headline(self) -> bool:
        """Whether this move names its transaction: a verdict, a timeout, a task's creation."""
        return self.kind in (MoneyKind.CREATED, MoneyKind.REWARD, MoneyKind.TIMEOUT)


@dataclass(frozen=True)
class Submission:
    """The holder's child under review (RelaySubmitted)."""

    relayer: str
    parent_digest: bytes
    child_cid: bytes
    metadata_cid: bytes
    samples: int
    place: Place


@dataclass(frozen=True)
class Commit:
    """A validator's hidden scores (ScoreCommitted)."""

    validator: str
    commitment: bytes
    place: Place


@dataclass(frozen=True)
class Reveal:
    """A validator's paired scores (ScoreRevealed): the child's, the champion's, the parent's."""

    validator: str
    child: int
    champion: int
    parent: int
    place: Place

    @property
    def delta(self) -> int:
        return self.child - self.champion

    @property
    def progress(self) -> int:
        return self.child - self.parent


@dataclass(frozen=True)
class Verdict:
    """A review's end (RoundFinalized); scores mean nothing in a void one."""

    status: Status
    relayer: str
    child_score: int
    champion_score: int
    delta: int
    progress: int
    reveals: int
    reward: int
    place: Place


@dataclass(frozen=True)
class Miss:
    """A validator missed a commit it could have made (`misses`: its reviews without a reveal in a
    row so far)."""

    validator: str
    amount: int
    misses: int
    place: Place


@dataclass(frozen=True)
class Departure:
    """An account left the queue or a seat; `refund` became withdrawable."""

    account: str
    role: Role
    refund: int
    forced: bool
    place: Place


@dataclass
class RoundFacts:
    """Everything the events say about one round, in event order."""

    round: int
    holder: str | None = None
    turn_deadline: int | None = None
    started: Place | None = None
    submission: Submission | None = None
    commits: list[Commit] = field(default_factory=list)
    reveals: list[Reveal] = field(default_factory=list)
    verdict: Verdict | None = None
    crowned: bool = False
    misses: list[Miss] = field(default_factory=list)
    movements: list[Movement] = field(default_factory=list)

    @property
    def timed_out(self) -> bool:
        return any(m.kind is MoneyKind.TIMEOUT for m in self.movements)

    @property
    def relayer_slashed(self) -> int:
        """Stake the holder lost in this round (timeout or rejection)."""
        return sum(
            m.amount for m in self.movements if m.kind in (MoneyKind.TIMEOUT, MoneyKind.REJECTED)
        )

    def paid(self, kind: MoneyKind) -> list[Movement]:
        """This round's movements of `kind`, in event order."""
        return [m for m in self.movements if m.kind is kind]


@dataclass
class Ledger:
    """The fold of a task's events: every money movement in chain order, each round's facts, the
    accounts that joined (relayers) or took a seat (validators), and every departure."""

    movements: list[Movement] = field(default_factory=list)
    rounds: dict[int, RoundFacts] = field(default_factory=dict)
    members: set[str] = field(default_factory=set)
    departures: list[Departure] = field(default_factory=list)

    def pool(self) -> int:
        """The pool as the events built it."""
        return sum(m.pool_delta for m in self.movements)


def fold_events(events: Iterable[Mapping[str, Any]]) -> Ledger:
    """Fold decoded events of one task, in chain order, into a `Ledger`."""
    ledger = Ledger()
    for event in events:
        _fold(ledger, event)
    return ledger


def _fold(ledger: Ledger, event: Mapping[str, Any]) -> None:
    name, args, place = event["event"], event["args"], Place.of(event)
    facts = None
    if "round" in args:
        round_ = int(args["round"])
        facts = ledger.rounds.setdefault(round_, RoundFacts(round_))

    def move(account: str, kind: MoneyKind, amount: int, pool_delta: int, reason: str) -> None:
        number = facts.round if facts is not None else None
        movement = Movement(place, number, account, kind, amount, pool_delta, reason)
        ledger.movements.append(movement)
        if facts is not None:
            facts.movements.append(movement)

    in_round = f"round {args['round']} " if facts is not None else ""
    if name == "TaskCreated":
        move(args["publisher"], MoneyKind.CREATED, args["pool"], args["pool"], "task created")
    elif name == "PoolFunded":
        move(args["funder"], MoneyKind.FUNDED, args["amount"], args["amount"], "funded")
    elif name == "ModelPaid":
        kept = args["amount"] - args["toContributors"]
        move(args["payer"], MoneyKind.MODEL_PAID, args["amount"], kept, "model paid")
    elif name == "RoyaltiesSettled":
        move(args["account"], MoneyKind.ROYALTY, args["amount"], 0, "royalties settled")
    elif name in ("RelayerJoined", "ValidatorRegistered"):
        ledger.members.add(args["relayer" if name == "RelayerJoined" else "validator"])
    elif name in ("RelayerLeft", "ValidatorLeft"):
        role = Role.RELAYER if name == "RelayerLeft" else Role.VALIDATOR
        ledger.departures.append(
            Departure(args[role.value], role, args["refund"], args["forced"], place)
        )
    elif facts is None:
        return
    elif name == "TurnStarted":
        facts.holder, facts.turn_deadline, facts.started = args["holder"], args["deadline"], place
    elif name == "RelaySubmitted":
        facts.holder = args["relayer"]
        facts.submission = Submission(
            args["relayer"],
            bytes(args["parentDigest"]),
            bytes(args["childCid"]),
            bytes(args["metadataCid"]),
            args["samples"],
            place,
        )
    elif name == "ScoreCommitted":
        facts.commits.append(Commit(args["validator"], bytes(args["commitment"]), place))
    elif name == "ScoreRevealed":
        facts.reveals.append(
            Reveal(
                args["validator"],
                args["childScore"],
                args["championScore"],
                args["parentScore"],
                place,
            )
        )
    elif name == "ChampionCrowned":
        facts.crowned = True
    elif name == "RoundFinalized":
        verdict = Verdict(
            Status(args["verdict"]),
            args["relayer"],
            args["childScore"],
            args["championScore"],
            args["delta"],
            args["progress"],
            args["reveals"],
            args["reward"],
            place,
        )
        facts.holder, facts.verdict = verdict.relayer, verdict
        move(
            verdict.relayer,
            MoneyKind.REWARD,
            verdict.reward,
            -verdict.reward,
            in_round + verdict.status.name.lower(),
        )
    elif name == "ValidatorPaid":
        move(
            args["validator"], MoneyKind.FEE, args["fee"], -args["fee"], in_round + "validator fee"
        )
    elif name == "KeeperPaid":
        bounty = args["bounty"]
        move(args["keeper"], MoneyKind.BOUNTY, bounty, -bounty, in_round + "keeper bounty")
    elif name == "RelayerSlashed":
        kind = _RELAYER_SLASHES[SlashReason(args["reason"])]
        label = "timed out" if kind is MoneyKind.TIMEOUT else "relayer slashed"
        move(args["relayer"], kind, args["amount"], args["amount"], in_round + label)
    elif name == "ValidatorSlashed":
        amount = args["amount"]
        move(args["validator"], MoneyKind.NO_REVEAL, amount, amount, in_round + "validator slashed")
    elif name == "ValidatorOutvoted":
        amount = args["amount"]
        move(args["validator"], MoneyKind.OUTVOTED, amount, amount, in_round + "validator outvoted")
    elif name == "ValidatorMissed":
        amount = args["amount"]
        facts.misses.append(Miss(args["validator"], amount, args["misses"], place))
        move(
            args["validator"],
            MoneyKind.MISSED,
            amount,
            amount,
            in_round + "validator missed its commit",
        )


class TaskLogs:
    """The contract's task events, fetched or taken from a receipt, decoded, in chain order."""

    def __init__(self, relay: DeRelayContract) -> None:
        self.relay = relay
        self._names = {
            event_abi_to_log_topic(item): item["name"]  # type: ignore[arg-type]
            for item in relay.abi
            if item.get("type") == "event" and item["name"] in TASK_EVENTS
        }

    def decode(self, logs: Iterable[Mapping[str, Any]]) -> list[Any]:
        """The task events among raw `logs` of any contract, decoded, in chain order."""
        decoded = []
        for entry in logs:
            topics = entry["topics"]
            if entry["address"] != self.relay.address or not topics:
                continue
            name = self._names.get(bytes(topics[0]))
            if name is not None:
                event = getattr(self.relay.contract.events, name)()
                decoded.append(event.process_log(entry))
        decoded.sort(key=lambda e: (int(e["blockNumber"]), int(e["logIndex"])))
        return decoded

    def of_receipt(self, receipt: TxReceipt) -> list[Any]:
        """The task events a transaction emitted."""
        return self.decode(receipt["logs"])

    def fetch(
        self, task_id: int, from_block: int, to_block: int, page: int = LOG_PAGE
    ) -> list[Any]:
        """Every event of `task_id` in [from_block, to_block], one `eth_getLogs` per `page` blocks."""
        w3 = self.relay.client.w3
        task_topic = "0x" + task_id.to_bytes(32, "big").hex()
        logs: list[Any] = []
        for first, last in block_pages(from_block, to_block, page):
            query: FilterParams = {
                "address": self.relay.address,
                "fromBlock": first,
                "toBlock": last,
                "topics": [None, task_topic],
            }
            logs.extend(rpc_read(partial(w3.eth.get_logs, query), "task events"))
        return self.decode(logs)


def task_ledger(
    relay: DeRelayContract, task_id: int, from_block: int | None = None, to_block: int | None = None
) -> Ledger:
    """The fold of every event of `task_id` in [from_block, to_block] (default: from the
    contract's deployment to the latest block)."""
    start = relay.deployed_block if from_block is None else from_block
    end = relay.client.latest_block() if to_block is None else to_block
    return fold_events(TaskLogs(relay).fetch(task_id, start, end))


__all__ = [
    "TASK_EVENTS",
    "Commit",
    "Departure",
    "Ledger",
    "Miss",
    "MoneyKind",
    "Movement",
    "Place",
    "Reveal",
    "Role",
    "RoundFacts",
    "Submission",
    "TaskLogs",
    "Verdict",
    "fold_events",
    "task_ledger",
]
