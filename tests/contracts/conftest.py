"""Fixtures for the contract tests: named actors and a created task."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from eth_utils import is_hex_address, keccak, to_checksum_address
from web3.logs import DISCARD
from web3.types import TxReceipt

from derelay.trainer.chain import ChainClient
from derelay.trainer.contract import DeRelayContract, Phase, TaskParams, TaskState, commitment_for
from derelay.trainer.errors import ContractRevert
from tests.conftest import Chain

ETH = 10**18


def cid_of(label: str, codec: int = 0x55) -> bytes:
    """A binary CIDv1 for test content named `label`."""
    return bytes([0x01, codec, 0x12, 0x20]) + hashlib.sha256(label.encode()).digest()


def digest_of(cid: bytes) -> bytes:
    return cid[4:]


def make_params(**overrides: object) -> TaskParams:
    """Small, round test parameters; `overrides` replace any of them."""
    values: dict[str, object] = dict(
        spec_cid=cid_of("spec"),
        genesis_cid=cid_of("genesis"),
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
        slash_timeout_bp=1000,
        slash_reject_bp=2000,
        slash_no_reveal_bp=1000,
        slash_miss_bp=500,
        band_bp=300,
        validator_fee=ETH // 100,
        keeper_bounty_bp=1000,
        royalty_bp=5000,
        usage_fee=ETH // 100,
    )
    values.update(overrides)
    return TaskParams(**values)  # type: ignore[arg-type]


@dataclass
class Actors:
    """The contract as each role sees it."""

    publisher: DeRelayContract
    relayers: list[DeRelayContract]
    validators: list[DeRelayContract]
    keeper: DeRelayContract
    consumer: DeRelayContract

    @staticmethod
    def address(view: DeRelayContract) -> str:
        return view.client.address


@pytest.fixture
def actors(relay: DeRelayContract, clients: list[ChainClient]) -> Actors:
    views = [relay.as_account(c) for c in clients]
    return Actors(
        publisher=views[0],
        relayers=views[1:5],
        validators=views[5:10],
        keeper=views[10],
        consumer=views[11],
    )


@pytest.fixture
def task(actors: Actors) -> int:
    """A task with a 10 ETH pool and the small test parameters."""
    return actors.publisher.create_task(make_params(), funding=10 * ETH)


# ---------------------------------------------------------------------- shared helpers

META_CID = cid_of("relay-card")
DATA_COMMITMENT = keccak(b"sample hashes")


def make_task(actors: Actors, funding: int = 10 * ETH, **overrides: object) -> int:
    """Create a task with `make_params(**overrides)` and `funding` in its pool; return its id."""
    return actors.publisher.create_task(make_params(**overrides), funding=funding)


@contextmanager
def reverts(name: str, *args: object) -> Iterator[pytest.ExceptionInfo[ContractRevert]]:
    """Expect the block to revert with custom error `name` (and `args`, when given)."""
    with pytest.raises(ContractRevert) as exc:
        yield exc
    assert exc.value.name == name, str(exc.value)
    if args:
        assert _normalized(exc.value.error_args) == _normalized(args), str(exc.value)


def _normalized(values: tuple[object, ...]) -> tuple[object, ...]:
    return tuple(
        to_checksum_address(v) if isinstance(v, str) and is_hex_address(v) else v for v in values
    )


def events_in(view: DeRelayContract, receipt: TxReceipt, name: str) -> list[dict[str, Any]]:
    """The arguments of every `name` event emitted in `receipt`, in order."""
    logs = getattr(view.contract.events, name)().process_receipt(receipt, errors=DISCARD)
    return [dict(log["args"]) for log in logs]


def simulate(view: DeRelayContract, function: str, *args: object) -> object:
    """Run contract `function` as an eth_call from `view`'s account.

    On the embedded chain, web3's EthereumTesterProvider decodes the revert payload of a failing
    gas estimate as if it were Error(string), which loses the selector of custom errors with
    dynamic arguments (InvalidParameter, InvalidCid); an eth_call keeps the raw data, so tests
    read those errors this way after checking that the transaction itself fails.
    """
    return view.client.call(getattr(view.contract.functions, function)(*args), function)


def next_tx_at(chain: Chain, timestamp: int) -> None:
    """Make the next transaction's block carry `timestamp`, which must be in the future."""
    delta = timestamp - chain.now()
    assert delta >= 1, f"cannot travel back to {timestamp} from {chain.now()}"
    chain.advance(delta)


def gas_cost(receipt: TxReceipt) -> int:
    """Wei the sender paid for gas."""
    return int(receipt["gasUsed"]) * int(receipt["effectiveGasPrice"])


def salt_of(view: DeRelayContract, round_: int) -> bytes:
    """The salt a validator uses in a round, unless a test picks another."""
    return keccak(text=f"salt:{view.client.address}:{round_}")


def standing_scores(
    view: DeRelayContract, task: int, champion: int | None, parent: int | None
) -> tuple[int, int]:
    """The champion and parent scores of a ballot: those given, else the champion's score on chain
    and the parent's: the head is the parent of the child under review, measured as the champion
    when it is the champion, else at its score on chain."""
    if champion is not None and parent is not None:
        return champion, parent
    return standing_in(view.task_state(task), champion, parent)


def standing_in(state: TaskState, champion: int | None, parent: int | None) -> tuple[int, int]:
    """`standing_scores` against a `state` already read."""
    champion = state.champion_score if champion is None else champion
    if parent is None:
        parent = champion if state.head_cid == state.champion_cid else state.head_score
    return champion, parent


def commit(
    view: DeRelayContract,
    task: int,
    round_: int,
    score: int,
    salt: bytes | None = None,
    *,
    champion: int | None = None,
    parent: int | None = None,
) -> TxReceipt:
    """Commit `score` for the child under review, `champion` for the champion and `parent` for
    the child's parent (defaults: their scores on chain)."""
    salt = salt_of(view, round_) if salt is None else salt
    champion, parent = standing_scores(view, task, champion, parent)
    commitment = commitment_for(task, round_, score, champion, parent, salt, view.client.address)
    return view.commit_score(task, round_, commitment)


def reveal(
    view: DeRelayContract,
    task: int,
    round_: int,
    score: int,
    salt: bytes | None = None,
    *,
    champion: int | None = None,
    parent: int | None = None,
) -> TxReceipt:
    """Reveal `score`, `champion` and `parent` with the salt `commit` used."""
    salt = salt_of(view, round_) if salt is None else salt
    champion, parent = standing_scores(view, task, champion, parent)
    return view.reveal_score(task, round_, score, champion, parent, salt)


def submit(
    view: DeRelayContract,
    task: int,
    label: str,
    *,
    round_: int | None = None,
    parent: bytes | None = None,
    child: bytes | None = None,
    samples: int = 100,
) -> bytes:
    """Submit child `cid_of(label)` (or `child`) from the head (or `parent`); return the child CID."""
    state = view.task_state(task)
    round_ = state.round if round_ is None else round_
    parent = digest_of(state.head_cid) if parent is None else parent
    child = cid_of(label) if child is None else child
    view.submit_relay(task, round_, parent, child, META_CID, DATA_COMMITMENT, samples)
    return child


def seat(validators: list[DeRelayContract], task: int, stake: int = ETH) -> None:
    """Register every view in `validators` as a validator of `task` with `stake`."""
    for view in validators:
        view.register_validator(task, stake)


@dataclass(frozen=True)
class Vote:
    """A validator's ballot in a round: the scores it commits (the child's, the champion's and the
    parent's: None for their scores on chain when the round starts), and whether it reveals."""

    validator: DeRelayContract
    score: int
    reveal: bool = True
    champion: int | None = None
    parent: int | None = None


@dataclass(frozen=True)
class RoundResult:
    round: int
    holder: str
    child: bytes
    commit_end: int
    reveal_end: int
    finalize_receipt: TxReceipt


def play_round(
    chain: Chain,
    task: int,
    holder: DeRelayContract,
    label: str,
    votes: list[Vote],
    *,
    keeper: DeRelayContract,
    check: Callable[[], object] | None = None,
) -> RoundResult:
    """One full review cycle: `holder` submits, every vote commits, revealers reveal after the
    commit window, and `keeper` finalizes: at once when everyone revealed, else after the reveal
    window. `check` (e.g. the invariant) runs after every transaction."""

    def step() -> None:
        if check is not None:
            check()

    state = holder.task_state(task)
    assert state.phase == Phase.TURN and state.holder == holder.client.address
    round_ = state.round
    child = submit(holder, task, label)
    step()

    def standing(vote: Vote) -> dict[str, int]:
        champion, parent = standing_in(state, vote.champion, vote.parent)
        return {"champion": champion, "parent": parent}

    for vote in votes:
        commit(vote.validator, task, round_, vote.score, **standing(vote))
        step()
    review = holder.task_state(task)
    next_tx_at(chain, review.deadline + 1)
    for vote in votes:
        if vote.reveal:
            reveal(vote.validator, task, round_, vote.score, **standing(vote))
            step()
    if not all(vote.reveal for vote in votes):
        next_tx_at(chain, review.reveal_end + 1)
    receipt = keeper.finalize(task)
    step()
    return RoundResult(
        round_, holder.client.address, child, review.deadline, review.reveal_end, receipt
    )


class Invariant:
    """DESIGN.md section 2: the contract's balance equals the sum of pools, relayer stakes,
    validator stakes, withdrawable balances and unsettled royalties, plus rounding dust.

    Dust comes only from royalties: a payment sets its whole royalty R aside while accPerShare
    grows by floor(R * 1e18 / T), which leaves less than 1 + T / 1e18 wei unassigned; each
    contributor then receives `floor(shares * accDelta / 1e18)` per settlement, losing less than
    1 wei per settlement segment, and a segment that floors anything holds at least one payment.
    So `0 <= dust <= (contributors + 1 + T / 1e18) * payments` for every task (summed). Without
    payments the accounts balance to the wei.
    """

    def __init__(self, relay: DeRelayContract, addresses: list[str]) -> None:
        self.relay = relay
        self.addresses = list(addresses)  # test accounts: counted once they sent a transaction
        self.tracked: list[str] = []  # contracts: always counted
        self._payments: dict[int, int] = {}  # ModelPaid events per task, read incrementally
        self._next_block = 0

    def _count_payments(self) -> None:
        latest = self.relay.client.w3.eth.block_number
        if latest >= self._next_block:
            for event in self.relay.events(
                "ModelPaid", from_block=self._next_block, to_block=latest
            ):
                task = int(event["args"]["taskId"])
                self._payments[task] = self._payments.get(task, 0) + 1
            self._next_block = latest + 1

    def track(self, address: str) -> None:
        """Also count the positions of `address` (e.g. an adversary contract)."""
        self.tracked.append(address)

    def _holders(self) -> list[str]:
        # Every position in DeRelay is opened by a transaction of its owner (stakes, rewards and
        # fees go to msg.sender, the holder or seated validators), and each test starts from the
        # session chain where no test account has sent one: an account with nonce 0 holds nothing.
        w3 = self.relay.client.w3
        active = [a for a in self.addresses if w3.eth.get_transaction_count(a) > 0]
        return active + self.tracked

    def measure(self) -> tuple[int, int]:
        """(dust, the bound it must stay under)."""
        relay = self.relay
        tasks = range(1, relay.task_count() + 1)
        self._count_payments()
        holders = self._holders()
        owed = 0
        bound = 0
        for task in tasks:
            state = relay.task_state(task)
            owed += state.pool
            payments = self._payments.get(task, 0)
            contributors = 0
            for address in holders:
                account = relay.account(task, address)
                owed += account.relayer_stake + account.validator_stake + account.pending_royalties
                if task == 1:  # withdrawable is per address, across tasks: count it once
                    owed += account.withdrawable
                contributors += account.shares > 0
            bound += (contributors + 1 + state.total_shares // 10**18) * payments
        if not tasks:
            owed += sum(relay.withdrawable(address) for address in holders)
        return relay.client.balance(relay.address) - owed, bound

    def check(self) -> int:
        """Assert the invariant; return the dust."""
        dust, bound = self.measure()
        assert 0 <= dust <= bound, f"balance invariant broken: dust {dust} wei, allowed 0..{bound}"
        return dust


@pytest.fixture
def invariant(relay: DeRelayContract, actors: Actors) -> Invariant:
    """The balance invariant over every actor's account (add others with `track`)."""
    views = [actors.publisher, *actors.relayers, *actors.validators, actors.keeper, actors.consumer]
    return Invariant(relay, [view.client.address for view in views])
