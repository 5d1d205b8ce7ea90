"""Python bindings of the DeRelay contract: one method per function, typed views, decoded events."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from enum import IntEnum
from functools import partial
from importlib import resources
from typing import Any

from eth_abi import encode as abi_encode
from eth_utils import keccak, to_checksum_address
from web3.types import TxReceipt

from derelay.trainer.chain import ChainClient, RevertDecoder, rpc_read
from derelay.trainer.cid import Cid
from derelay.trainer.errors import ChainError

# The compiled contracts ship as package data, so an installed wheel finds them too.
ARTIFACTS_DIR = resources.files("derelay.trainer") / "artifacts"


def load_abi(name: str = "DeRelay") -> list[dict[str, Any]]:
    """The ABI from the committed artifact of contract `name`."""
    path = ARTIFACTS_DIR / f"{name}.json"
    if not path.is_file():
        raise ChainError(f"no compiled artifact {path}: compile the contracts first")
    return list(json.loads(path.read_text())["abi"])


class Phase(IntEnum):
    IDLE = 0
    TURN = 1
    REVIEW = 2


class Status(IntEnum):
    NONE = 0
    GENESIS = 1
    PENDING = 2
    ACCEPTED = 3
    REJECTED = 4
    VOID = 5
    HELD = 6  # within the slash band, outside the advance band: no reward, no slash, head unchanged


class SlashReason(IntEnum):
    """Why a relayer lost stake (RelayerSlashed's `reason`)."""

    TIMEOUT = 0
    REJECTED = 1


class Ballot(IntEnum):
    NONE = 0  # with the review's round: seated during that review, excused from it
    COMMITTED = 1
    REVEALED = 2


ETHER = 10**18


@dataclass(frozen=True)
class TaskParams:
    """Every parameter of a task (amounts in wei, scores and shares in basis points, times in seconds).

    The defaults are those the review sweep supports: honest turns not slashed and nearly all
    advanced under label skew, poisoned turns rejected, a within-band poisoner held to the advance
    band, rewards only for beating the champion.
    """

    spec_cid: bytes  # binary CIDv1 of the task spec JSON
    genesis_cid: bytes  # binary CIDv1 of the genesis weights
    genesis_score: int  # genesis accuracy in bp on the reference held-out data
    min_stake: int = ETHER // 10  # least stake to join the relay
    validator_stake: int = ETHER // 10  # stake for a validator seat
    turn_duration: int = 600  # seconds the holder has to submit
    commit_window: int = 120  # seconds for commits after a submission
    reveal_window: int = 120  # seconds for reveals after the commit window
    quorum: int = 2  # least reveals for a verdict
    max_validators: int = 5  # validator seats
    max_queue: int = 256  # longest relay queue
    slash_band: int = 3000  # reject and slash below champion - slash_band (bp); wide for label skew
    advance_band: int = 280  # the child becomes the head at >= champion - advance_band (bp)
    max_misses: int = 3  # reviews in a row without a reveal that cost a validator its seat
    min_gain: int = 170  # least gain over the champion (bp) that crowns a child: > 1 in 60
    base_reward: int = ETHER // 100  # paid when the gain over the parent is >= min_gain too
    reward_per_point: int = ETHER // 10_000  # per bp of min(gain over champion, over parent)
    slash_timeout_bp: int = 1000  # stake share lost by a holder that times out
    slash_reject_bp: int = 2000  # stake share lost by a rejected relayer
    slash_no_reveal_bp: int = 1000  # validator stake share lost by committing and not revealing
    slash_miss_bp: int = 500  # validator stake share lost per review it could have committed to
    band_bp: int = 1500  # reveals this close to both medians earn validator_fee: 9 in 60 samples
    validator_fee: int = ETHER // 1000  # paid per in-band reveal
    keeper_bounty_bp: int = (
        1000  # keeper share of a timeout slash; finalize pays this share of validator_fee
    )
    royalty_bp: int = 7000  # share of usage fees paid to contributors
    usage_fee: int = ETHER // 100  # least payment for the model

    def as_tuple(self) -> tuple[Any, ...]:
        """The ABI tuple in the contract's field order."""
        return (
            self.min_stake,
            self.validator_stake,
            self.turn_duration,
            self.commit_window,
            self.reveal_window,
            self.quorum,
            self.max_validators,
            self.max_queue,
            self.slash_band,
            self.advance_band,
            self.max_misses,
            self.min_gain,
            self.base_reward,
            self.reward_per_point,
            self.slash_timeout_bp,
            self.slash_reject_bp,
            self.slash_no_reveal_bp,
            self.slash_miss_bp,
            self.band_bp,
            self.validator_fee,
            self.keeper_bounty_bp,
            self.royalty_bp,
            self.usage_fee,
            self.genesis_score,
            self.spec_cid,
            self.genesis_cid,
        )

    @classmethod
    def from_tuple(cls, values: tuple[Any, ...]) -> TaskParams:
        """Inverse of `as_tuple`."""
        names = [
            "min_stake", "validator_stake", "turn_duration", "commit_window", "reveal_window",
            "quorum", "max_validators", "max_queue", "slash_band", "advance_band", "max_misses",
            "min_gain", "base_reward", "reward_per_point", "slash_timeout_bp", "slash_reject_bp",
            "slash_no_reveal_bp", "slash_miss_bp", "band_bp", "validator_fee", "keeper_bounty_bp",
            "royalty_bp", "usage_fee", "genesis_score", "spec_cid", "genesis_cid",
        ]  # fmt: skip
        return cls(**dict(zip(names, values, strict=True)))

    def to_json_dict(self) -> dict[str, Any]:
        """Plain JSON types (CIDs as hex)."""
        out = asdict(self)
        out["spec_cid"] = self.spec_cid.hex()
        out["genesis_cid"] = self.genesis_cid.hex()
        return out

    @classmethod
    def field_names(cls) -> list[str]:
        """Names of every parameter."""
        return [f.name for f in fields(cls)]


@dataclass(frozen=True)
class TaskState:
    """A task's relay state as `taskState` returns it."""

    phase: Phase
    round: int
    holder: str
    phase_start: int
    deadline: int  # turn deadline (TURN) or commit end (REVIEW)
    reveal_end: int
    pool: int
    queue_length: int
    submission_count: int
    accepted_count: int
    champion_score: int
    head_score: int
    head_cid: bytes
    champion_cid: bytes
    validator_count: int
    total_shares: int
    acc_per_share: int


@dataclass(frozen=True)
class AccountState:
    """What an address holds in a task."""

    withdrawable: int
    relayer_stake: int
    queued: bool
    validator_stake: int
    seat: int
    shares: int
    pending_royalties: int


@dataclass(frozen=True)
class LineageEntry:
    """The genesis or one submission, with its verdict."""

    index: int
    cid: bytes
    relayer: str
    round: int
    submitted_at: int
    status: Status
    score: int

    def to_json(self) -> dict[str, Any]:
        """Plain JSON: the CID as text, the status by name."""
        return {
            "index": self.index,
            "cid": str(Cid.from_bytes(self.cid)),
            "relayer": self.relayer,
            "round": self.round,
            "submitted_at": self.submitted_at,
            "status": self.status.name.lower(),
            "score": self.score,
        }


@dataclass(frozen=True)
class SeatState:
    """A validator seat and its ballot for `round`."""

    index: int
    validator: str
    round: int
    child_score: int
    champion_score: int
    parent_score: int
    ballot: Ballot
    misses: int  # consecutive reviews it could have revealed in and did not


ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
# Gas limits of the transactions a worker sends without eth_estimateGas, after an eth_call that
# catches any revert: under 50 workers ganache took 5-14 s on average and up to 30 s to estimate,
# longer than a reveal window, and long enough to seat a task's validators minutes late. About twice
# the most each has used (bench/gas-baseline.json, where first uses write cold slots; a registration
# may read up to 16 seats).
FIXED_GAS = {
    "submitRelay": 200_000,
    "commitScore": 120_000,
    "revealScore": 90_000,
    "joinRelay": 200_000,
    "registerValidator": 250_000,
}


def finalize_gas(max_validators: int) -> int:
    """A gas limit for `finalize` that needs no estimate (under load ganache's estimates of it
    timed out at 30 s): about twice the most it has needed, 276k with 3 seats and 795k with 16
    (a relayer's first reward, a quorum paid, every other seat charged for a miss and removed,
    whose refunds come only after the call; bench.gas.finalize_cases), each seat adding ~40k."""
    return 2 * (170_000 + 40_000 * max_validators)


def commitment_for(
    task_id: int,
    round_: int,
    child_score: int,
    champion_score: int,
    parent_score: int,
    salt: bytes,
    validator: str,
) -> bytes:
    """keccak256(abi.encode(taskId, round, childScore, championScore, parentScore, salt,
    validator)), as the contract computes it."""
    encoded = abi_encode(
        ["uint256", "uint32", "uint16", "uint16", "uint16", "bytes32", "address"],
        [
            task_id,
            round_,
            child_score,
            champion_score,
            parent_score,
            salt,
            to_checksum_address(validator),
        ],
    )
    return keccak(encoded)


LOG_PAGE = 10_000  # blocks per eth_getLogs call: the range many public endpoints accept
MAX_SCAN_BLOCKS = 10**9  # an event scan's longest span: beyond any real chain's age in blocks


class DeRelayContract:
    """The deployed DeRelay contract, seen through one account's `ChainClient`."""

    def __init__(
        self,
        client: ChainClient,
        address: str,
        abi: list[dict[str, Any]] | None = None,
        deployed_block: int = 0,
    ) -> None:
        self.client = client
        # No event of the contract is older: log scans start here (a deployment record has it).
        self.deployed_block = deployed_block
        self.abi = abi if abi is not None else load_abi()
        self.address = to_checksum_address(address)
        self.contract = client.w3.eth.contract(address=self.address, abi=self.abi)
        self.deploy_receipt: TxReceipt | None = None
        code = rpc_read(lambda: bytes(client.w3.eth.get_code(self.address)), "contract code")
        if len(code) == 0:
            raise ChainError(
                f"no contract at {self.address} on this chain: deploy the contract there first, "
                "or check its address"
            )

    @classmethod
    def deploy(cls, client: ChainClient) -> DeRelayContract:
        """Deploy a new DeRelay contract from the committed artifact."""
        artifact = json.loads((ARTIFACTS_DIR / "DeRelay.json").read_text())
        address, receipt = client.deploy(artifact["abi"], artifact["bytecode"])
        contract = cls(client, address, artifact["abi"], int(receipt["blockNumber"]))
        contract.deploy_receipt = receipt
        return contract

    def deployment_id(self) -> str:
        """The hash of the block the contract was deployed in (block 0 where that is not known),
        as 0x and 64 hex digits: what tells this deployment from one at the same address on a
        wiped chain of the same id, whose deployment transaction can be the very same bytes."""
        block = rpc_read(lambda: self.client.w3.eth.get_block(self.deployed_block), "block")
        digest = bytes(block["hash"])
        if len(digest) != 32:
            raise ChainError(
                f"the RPC endpoint answered block {self.deployed_block} with a hash of "
                f"{len(digest)} bytes: is it an Ethereum node?"
            )
        return "0x" + digest.hex()

    def as_account(self, client: ChainClient) -> DeRelayContract:
        """The same contract seen through another account."""
        return DeRelayContract(client, self.address, self.abi, self.deployed_block)

    # -------------------------------------------------------------- transactions

    def _tx(self, name: str, *args: Any, value: int = 0, gas: int | None = None) -> TxReceipt:
        fn = getattr(self.contract.functions, name)(*args)
        return self.client.transact(fn, name, value, gas or FIXED_GAS.get(name))

    def create_task(self, params: TaskParams, funding: int = 0) -> int:
        """Create a task funded with `funding` wei; return its id."""
        receipt = self._tx("createTask", params.as_tuple(), value=funding)
        (event,) = self.contract.events.TaskCreated().process_receipt(receipt)
        return int(event["args"]["taskId"])

    def fund(self, task_id: int, amount: int) -> TxReceipt:
        """Add `amount` wei to the task's pool."""
        return self._tx("fund", task_id, value=amount)

    def pay_for_model(self, task_id: int, amount: int) -> TxReceipt:
        """Pay `amount` wei for the model (royalties and pool)."""
        return self._tx("payForModel", task_id, value=amount)

    def join_relay(self, task_id: int, stake: int) -> TxReceipt:
        """Stake and join the relay queue."""
        return self._tx("joinRelay", task_id, value=stake)

    def add_stake(self, task_id: int, amount: int) -> TxReceipt:
        """Top up the relayer stake."""
        return self._tx("addStake", task_id, value=amount)

    def leave_relay(self, task_id: int) -> TxReceipt:
        """Leave the queue; the stake becomes withdrawable."""
        return self._tx("leaveRelay", task_id)

    def skip_turn(self, task_id: int) -> TxReceipt:
        """Skip an expired turn (keeper)."""
        return self._tx("skipTurn", task_id)

    def submit_relay(
        self,
        task_id: int,
        round_: int,
        parent_digest: bytes,
        child_cid: bytes,
        metadata_cid: bytes,
        data_commitment: bytes,
        samples: int,
    ) -> TxReceipt:
        """Submit the trained child for review."""
        return self._tx(
            "submitRelay",
            task_id,
            round_,
            parent_digest,
            child_cid,
            metadata_cid,
            data_commitment,
            samples,
        )

    def register_validator(self, task_id: int, stake: int) -> TxReceipt:
        """Stake and take a validator seat."""
        return self._tx("registerValidator", task_id, value=stake)

    def leave_validator(self, task_id: int) -> TxReceipt:
        """Give up the validator seat; the stake becomes withdrawable."""
        return self._tx("leaveValidator", task_id)

    def commit_score(self, task_id: int, round_: int, commitment: bytes) -> TxReceipt:
        """Commit to a hidden score."""
        return self._tx("commitScore", task_id, round_, commitment)

    def reveal_score(
        self,
        task_id: int,
        round_: int,
        child_score: int,
        champion_score: int,
        parent_score: int,
        salt: bytes,
    ) -> TxReceipt:
        """Reveal the committed scores of the child, of the champion and of the child's parent."""
        return self._tx(
            "revealScore", task_id, round_, child_score, champion_score, parent_score, salt
        )

    def finalize(self, task_id: int, gas: int | None = None) -> TxReceipt:
        """End the review and start the next turn (keeper); with `gas`, no estimate is asked for
        (`finalize_gas` gives a safe limit)."""
        return self._tx("finalize", task_id, gas=gas)

    def claim_royalties(self, task_id: int) -> TxReceipt:
        """Move owed royalties into the withdrawable balance."""
        return self._tx("claimRoyalties", task_id)

    def withdraw(self) -> TxReceipt:
        """Send the whole withdrawable balance to this account."""
        return self._tx("withdraw")

    # -------------------------------------------------------------- views

    def _view(self, name: str, *args: Any) -> Any:
        return self.client.call(getattr(self.contract.functions, name)(*args), name)

    def task_count(self) -> int:
        """Number of tasks created."""
        return int(self._view("taskCount"))

    def task_params(self, task_id: int) -> TaskParams:
        """The task's parameters."""
        return TaskParams.from_tuple(tuple(self._view("taskParams", task_id)))

    def task_state(self, task_id: int) -> TaskState:
        """The task's relay state."""
        v = self._view("taskState", task_id)
        return TaskState(
            phase=Phase(v[0]),
            round=v[1],
            holder=v[2],
            phase_start=v[3],
            deadline=v[4],
            reveal_end=v[5],
            pool=v[6],
            queue_length=v[7],
            submission_count=v[8],
            accepted_count=v[9],
            champion_score=v[10],
            head_score=v[11],
            head_cid=bytes(v[12]),
            champion_cid=bytes(v[13]),
            validator_count=v[14],
            total_shares=v[15],
            acc_per_share=v[16],
        )

    def head(self, task_id: int) -> tuple[bytes, int]:
        """The head's binary CID and score."""
        cid, score = self._view("head", task_id)
        return bytes(cid), int(score)

    def champion(self, task_id: int) -> tuple[bytes, int]:
        """The champion's binary CID and score: the best model accepted so far, what consumers
        license and what each review measures children against."""
        cid, score = self._view("champion", task_id)
        return bytes(cid), int(score)

    def publisher_of(self, task_id: int) -> str:
        """The task's publisher."""
        return str(self._view("publisherOf", task_id))

    def account(self, task_id: int, address: str) -> AccountState:
        """What `address` holds in the task."""
        v = self._view("accountOf", task_id, to_checksum_address(address))
        return AccountState(*v)

    def withdrawable(self, address: str) -> int:
        """Withdrawable wei of `address` across tasks."""
        return int(self._view("withdrawable", to_checksum_address(address)))

    def queue(self, task_id: int, page_size: int = 100) -> list[tuple[str, int]]:
        """The whole relay queue in turn order, with stakes, read page by page. A node whose
        pages come back to a member already read (a queue that never ends) is a ChainError."""
        members: dict[str, int] = {}
        cursor = ZERO_ADDRESS
        while True:
            page, stakes, cursor = self._view("queuePage", task_id, cursor, page_size)
            if len(page) != len(stakes) or len(page) > page_size or cursor in members:
                raise ChainError(
                    f"the RPC endpoint gave a malformed page of task {task_id}'s queue: "
                    "is it an Ethereum node you trust?"
                )
            for member, stake in zip(page, stakes, strict=True):
                if member in members:
                    raise ChainError(
                        f"the RPC endpoint gave task {task_id}'s queue with {member} twice: "
                        "is it an Ethereum node you trust?"
                    )
                members[member] = stake
            if cursor == ZERO_ADDRESS or not page:
                return list(members.items())

    def lineage(self, task_id: int, offset: int = 0, limit: int = 100) -> list[LineageEntry]:
        """A page of the lineage (genesis at index 0): the genesis and every child in the order of
        its first submission (a void child submitted again keeps its place), each with its record.
        The contract keeps only the newest entry (`latestSubmission`); the order comes from the
        TaskCreated and RelaySubmitted events, each verdict from `recordOf`."""
        if offset < 0 or limit < 0:
            raise ValueError(f"lineage page {offset}+{limit}: both must be >= 0")
        cids = self._lineage_cids(task_id)[offset : offset + limit]
        return [self._entry(task_id, offset + i, cid) for i, cid in enumerate(cids)]

    def full_lineage(self, task_id: int, page_size: int = 100) -> list[LineageEntry]:
        """Every lineage entry up to the submission count read first."""
        count = self.task_state(task_id).submission_count
        return [self._entry(task_id, i, cid) for i, cid in enumerate(self._lineage_cids(task_id))][
            :count
        ]

    def latest_submission(self, task_id: int) -> LineageEntry:
        """The newest lineage entry: the child under review during a review, else the latest
        submission decided, or the genesis before any."""
        count = self.task_state(task_id).submission_count
        cid, r = self._view("latestSubmission", task_id)
        return LineageEntry(count - 1, bytes(cid), r[0], r[1], r[2], Status(r[3]), r[4])

    def _lineage_cids(self, task_id: int) -> list[bytes]:
        created = self.events("TaskCreated", taskId=task_id)
        if not created:
            return []
        cids = [bytes(created[0]["args"]["genesisCid"])]
        seen = {cids[0]}
        for log in self.events("RelaySubmitted", taskId=task_id):
            cid = bytes(log["args"]["childCid"])
            if cid not in seen:
                seen.add(cid)
                cids.append(cid)
        return cids

    def _entry(self, task_id: int, index: int, cid: bytes) -> LineageEntry:
        relayer, round_, submitted_at, status, score, _ = self.record(task_id, cid[4:])
        return LineageEntry(index, cid, relayer, round_, submitted_at, status, score)

    def seats(self, task_id: int) -> list[SeatState]:
        """Every validator seat."""
        return [
            SeatState(i, s[0], s[1], s[2], s[3], s[5], Ballot(s[4]), s[6])
            for i, s in enumerate(self._view("seatsOf", task_id))
        ]

    def record(self, task_id: int, digest: bytes) -> tuple[str, int, int, Status, int, int]:
        """The record of a model by CID digest: relayer, round, submittedAt, status, score, codec."""
        r = self._view("recordOf", task_id, digest)
        return (r[0], r[1], r[2], Status(r[3]), r[4], r[5])

    # -------------------------------------------------------------- events

    def events(
        self, name: str, from_block: int | None = None, to_block: int | None = None, **filters: Any
    ) -> list[Any]:
        """Decoded logs of event `name` in [from_block (default: the deployment's block), to_block
        (default: the latest)], optionally filtered by indexed arguments."""
        event = getattr(self.contract.events, name)()
        start = self.deployed_block if from_block is None else from_block
        end = self.client.latest_block() if to_block is None else to_block
        found: list[Any] = []
        for first, last in block_pages(start, end):
            query = partial(
                event.get_logs, from_block=first, to_block=last, argument_filters=filters or None
            )
            found += rpc_read(lambda q=query: list(q()), f"{name} events")
        return found


def block_pages(first: int, last: int, page: int = LOG_PAGE) -> Iterator[tuple[int, int]]:
    """[first, last] cut into ranges of at most `page` blocks, one `eth_getLogs` call each.

    The span comes from the node (its latest block), so it is bounded before any call is made: a
    node that claims an absurd height is refused, not scanned."""
    if last - first >= MAX_SCAN_BLOCKS:
        raise ChainError(
            f"the node's latest block is more than {MAX_SCAN_BLOCKS} blocks past {first}, too many "
            "to scan for events: check the RPC endpoint"
        )
    for start in range(first, last + 1, page):
        yield start, min(start + page - 1, last)


def decoder_for(abi: list[dict[str, Any]] | None = None) -> RevertDecoder:
    """A revert decoder for DeRelay's custom errors."""
    return RevertDecoder(abi if abi is not None else load_abi())
