"""Stateful property tests: a Hypothesis state machine drives DeRelay on the embedded chain.

Relayers, validators (one relayer validates too), a keeper and a consumer do every action in
random order, with random arguments (fresh, stale, repeated and malformed submissions; right and
wrong reveals; stakes below, at and above the minimum), and the clock jumps to just before, on and
just after each window's edge. A Python model of DESIGN.md section 2 predicts every outcome:

- an action the model says must succeed succeeds, with exactly the model's effects;
- an action that reverts reverts with one of the custom errors the model says apply (a revert is
  an expected outcome, never a failure by itself; a panic or an unexplained error is a failure).

After every step the whole observable state (task view, every actor's account, the seats, the
queue walked page by page, the queue's next/prev links in storage, the contract's balance) must
equal the model, and these invariants must hold on the chain's own numbers:

- balance: the contract holds pools + stakes + withdrawable + unsettled royalties + bounded dust;
- money in and out: everything ever paid out <= everything paid in, and the balance is the difference;
- one holder: Idle iff the queue is empty iff nobody holds the turn; otherwise the holder is the
  queue's front;
- queue integrity: the walk's length is queueLength, no member twice, next/prev form one cycle;
- no reward without an accepted turn: a RoundFinalized reward is non-zero only with verdict
  Accepted, and the rewards sum to the royalty shares;
- no stuck stake: a relayer out of the queue (a validator without a seat) has no stake, one in it
  has at least the minimum; leaving credits the whole stake;
- withdrawals: withdraw succeeds for every positive balance and pays exactly that balance.

Each example takes a chain snapshot (the contract deployed, no task), creates a task from drawn
parameters (quorum, seats, queue cap, tolerance, slashes, fees, bounties, royalty share, pool) and
reverts to the snapshot in teardown. Its last act is to move everyone out: finish any review,
leave the queue (the holder gives up its fresh turn) and the seats, claim royalties and withdraw,
each of which must succeed; what stays is the pool and the royalty dust.

Transactions skip the bindings' gas estimate (a binary search of a dozen EVM runs): an eth_call
on the pending block decodes a revert, else the signed transaction goes straight to eth-tester.
Reads for the checks also go straight to eth-tester. Both make a step about twice as cheap.

Profiles: the default suite runs a small one (`DEFAULT_EXAMPLES` x `DEFAULT_STEPS`); `--slow` or
DERELAY_SLOW=1 adds a larger one (`SLOW_EXAMPLES` x `SLOW_STEPS`). DERELAY_HYPOTHESIS_EXAMPLES and
DERELAY_HYPOTHESIS_STEPS override the numbers of either.
"""

from __future__ import annotations

import functools
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest
from eth_abi import decode as abi_decode
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_tester import EthereumTester
from eth_tester.exceptions import TransactionFailed
from eth_utils import function_abi_to_4byte_selector, keccak, to_checksum_address
from eth_utils.abi import get_abi_input_types, get_abi_output_types
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from web3.logs import DISCARD
from web3.types import TxReceipt

from tests.conftest import TEST_KEYS, Chain
from tests.contracts.conftest import (
    DATA_COMMITMENT,
    META_CID,
    Actors,
    cid_of,
    gas_cost,
    make_params,
    make_task,
    next_tx_at,
)
from trainer.chain import ChainClient, RevertDecoder, revert_data
from trainer.contract import (
    ZERO_ADDRESS,
    AccountState,
    DeRelayContract,
    Phase,
    Status,
    TaskParams,
    TaskState,
    commitment_for,
    decoder_for,
)
from trainer.errors import ContractRevert

ETH = 10**18
BP = 10_000
ACC_SCALE = 10**18

DEFAULT_EXAMPLES, DEFAULT_STEPS = 15, 30
SLOW_EXAMPLES, SLOW_STEPS = 100, 50

# Roles, as indices into tests.conftest.TEST_KEYS.
PUBLISHER = 0
RELAYERS = (1, 2, 3)
VALIDATORS = (5, 6, 7)
DUAL = 1  # a relayer that also takes a validator seat (self-review must be refused)
SEAT_SEEKERS = (*VALIDATORS, DUAL)
KEEPER = 10
CONSUMER = 11
EVERYONE = (PUBLISHER, *RELAYERS, *VALIDATORS, KEEPER, CONSUMER)

F = TypeVar("F", bound=Callable[..., Any])

# Outcomes seen by the last run (action: "ok" or the revert's name), printed at its end: the
# quickest way to see what a profile reaches (`pytest -s`).
OUTCOMES: Counter[tuple[str, str]] = Counter()
STEPS: list[int] = []  # steps of each example of the last run


# ---------------------------------------------------------------------- the model


@dataclass
class SeatModel:
    validator: str
    round: int = 0
    score: int = 0
    ballot: int = 0  # 0 none, 1 committed, 2 revealed


@dataclass
class Model:
    """DESIGN.md section 2 for one task, in Python: what the chain must show after each action."""

    p: TaskParams
    pool: int
    ref: int
    head: bytes  # digest of the head's CID
    head_codec: int
    head_score: int
    phase: Phase = Phase.IDLE
    round: int = 0
    phase_start: int = 0
    queue: list[str] = field(default_factory=list)  # turn order; queue[0] holds the turn
    stakes: dict[str, int] = field(default_factory=dict)  # queued relayers only
    vstakes: dict[str, int] = field(default_factory=dict)  # seated validators only
    seats: list[SeatModel | None] = field(default_factory=list)
    commitments: dict[int, bytes] = field(default_factory=dict)  # by seat index
    ballots: dict[str, tuple[int, bytes]] = field(default_factory=dict)  # score, salt this round
    withdrawable: dict[str, int] = field(default_factory=dict)
    shares: dict[str, int] = field(default_factory=dict)
    acc_paid: dict[str, int] = field(default_factory=dict)
    acc: int = 0
    total_shares: int = 0
    records: dict[bytes, tuple[str, int, int, Status, int, int]] = field(default_factory=dict)
    lineage: list[bytes] = field(default_factory=list)
    past_heads: list[bytes] = field(default_factory=list)
    accepted: int = 0
    payments: int = 0  # ModelPaid count: bounds the royalty dust
    paid_in: int = 0  # every wei sent to the contract
    paid_out: int = 0  # every wei the contract sent

    # ------------------------------------------------------------------ derived

    @property
    def holder(self) -> str:
        return self.queue[0] if self.queue else ZERO_ADDRESS

    @property
    def deadline(self) -> int:
        return self.phase_start + self.p.turn_duration

    @property
    def commit_end(self) -> int:
        return self.phase_start + self.p.commit_window

    @property
    def reveal_end(self) -> int:
        return self.commit_end + self.p.reveal_window

    def seat_of(self, who: str) -> int:
        for i, seat in enumerate(self.seats):
            if seat is not None and seat.validator == who:
                return i
        return -1

    def pending(self, who: str) -> int:
        return self.shares.get(who, 0) * (self.acc - self.acc_paid.get(who, 0)) // ACC_SCALE

    def credit(self, who: str, amount: int) -> None:
        self.withdrawable[who] = self.withdrawable.get(who, 0) + amount

    def settle(self, who: str) -> None:
        if self.acc_paid.get(who, 0) == self.acc:
            return
        owed = self.pending(who)
        self.acc_paid[who] = self.acc
        self.credit(who, owed)

    # ------------------------------------------------------------------ relay queue

    def expect_join(self, who: str, value: int) -> set[str]:
        errors = set()
        if value < self.p.min_stake:
            errors.add("DeRelay__StakeTooLow")
        if who in self.stakes:
            errors.add("DeRelay__AlreadyQueued")
        if len(self.queue) >= self.p.max_queue:
            errors.add("DeRelay__QueueFull")
        return errors

    def join(self, who: str, value: int, ts: int) -> None:
        self.paid_in += value
        self.stakes[who] = value
        self.queue.append(who)
        if len(self.queue) == 1:
            self._start_turn(ts)

    def expect_add_stake(self, who: str, value: int) -> set[str]:
        errors = set()
        if value == 0:
            errors.add("DeRelay__ZeroAmount")
        if who not in self.stakes:
            errors.add("DeRelay__NotQueued")
        return errors

    def add_stake(self, who: str, value: int) -> None:
        self.paid_in += value
        self.stakes[who] += value

    def expect_leave(self, who: str, ts: int) -> set[str]:
        if who not in self.stakes:
            return {"DeRelay__NotQueued"}
        if who == self.holder and (self.phase != Phase.TURN or ts > self.deadline):
            return {"DeRelay__HolderCannotLeave"}  # under review, or its unused turn expired
        return set()

    def leave(self, who: str, ts: int) -> None:
        holding = who == self.holder
        stake = self.stakes.pop(who)
        if holding and len(self.queue) > 1:  # giving up a turn others wait for costs a skip's slash
            slash = stake * self.p.slash_timeout_bp // BP
            self.pool += slash
            stake -= slash
        self.queue.remove(who)
        self.credit(who, stake)
        if holding:  # it gave up an unused turn: the next one starts at once
            self._start_turn(ts)

    def expect_skip(self, ts: int) -> set[str]:
        if self.phase != Phase.TURN:
            return {"DeRelay__WrongPhase"}
        if ts <= self.deadline:
            return {"DeRelay__TurnNotExpired"}
        return set()

    def skip(self, caller: str, ts: int) -> None:
        holder = self.holder
        slash = self.stakes[holder] * self.p.slash_timeout_bp // BP
        bounty = 0 if caller == holder else slash * self.p.keeper_bounty_bp // BP
        self.stakes[holder] -= slash
        self.pool += slash - bounty
        self.credit(caller, bounty)
        self._end_turn(ts)

    def _start_turn(self, ts: int) -> None:
        self.phase_start = ts
        if not self.queue:
            self.phase = Phase.IDLE
            return
        self.round += 1
        self.phase = Phase.TURN
        self.ballots = {}

    def _end_turn(self, ts: int) -> None:
        holder = self.queue.pop(0)
        if self.stakes[holder] < self.p.min_stake:
            self.credit(holder, self.stakes.pop(holder))
        else:
            self.queue.append(holder)
        self._start_turn(ts)

    # ------------------------------------------------------------------ submission

    def expect_submit(
        self, who: str, round_: int, parent: bytes, child: bytes, samples: int, ts: int
    ) -> set[str]:
        errors = set()
        if self.phase != Phase.TURN:
            errors.add("DeRelay__WrongPhase")
        if who != self.holder:
            errors.add("DeRelay__NotHolder")
        if round_ != self.round:
            errors.add("DeRelay__WrongRound")
        if ts > self.deadline:
            errors.add("DeRelay__TurnExpired")
        if parent != self.head:
            errors.add("DeRelay__StaleParent")
        if child[1] not in (0x55, 0x70):
            errors.add("DeRelay__InvalidCid")
        if samples == 0:
            errors.add("DeRelay__ZeroSamples")
        if child[4:] in self.records:
            errors.add("DeRelay__ChildSeen")
        return errors

    def submit(self, who: str, child: bytes, ts: int) -> None:
        digest = child[4:]
        self.records[digest] = (who, self.round, ts, Status.PENDING, 0, child[1])
        self.lineage.append(digest)
        self.phase = Phase.REVIEW
        self.phase_start = ts

    # ------------------------------------------------------------------ validators

    def expect_register(self, who: str, value: int) -> set[str]:
        errors = set()
        if value < self.p.validator_stake:
            errors.add("DeRelay__StakeTooLow")
        if self.seat_of(who) >= 0:
            errors.add("DeRelay__AlreadyValidator")
        if all(seat is not None for seat in self.seats):
            errors.add("DeRelay__SeatsFull")
        return errors

    def register(self, who: str, value: int) -> None:
        self.paid_in += value
        index = self.seats.index(None)
        self.seats[index] = SeatModel(who)
        self.vstakes[who] = value

    def expect_leave_validator(self, who: str) -> set[str]:
        index = self.seat_of(who)
        if index < 0:
            return {"DeRelay__NotValidator"}
        seat = self.seats[index]
        assert seat is not None
        if self.phase == Phase.REVIEW and seat.round == self.round and seat.ballot != 0:
            return {"DeRelay__BallotOpen"}
        return set()

    def remove_validator(self, who: str) -> None:
        self.seats[self.seat_of(who)] = None
        self.credit(who, self.vstakes.pop(who))

    def expect_commit(self, who: str, round_: int, ts: int) -> set[str]:
        errors = set()
        if self.phase != Phase.REVIEW:
            errors.add("DeRelay__WrongPhase")
        if round_ != self.round:
            errors.add("DeRelay__WrongRound")
        if ts > self.commit_end:
            errors.add("DeRelay__CommitClosed")
        if who == self.holder:
            errors.add("DeRelay__SelfReview")
        index = self.seat_of(who)
        if index < 0:
            errors.add("DeRelay__NotValidator")
        else:
            seat = self.seats[index]
            assert seat is not None
            if seat.round == round_ and seat.ballot != 0:
                errors.add("DeRelay__AlreadyCommitted")
        return errors

    def commit(self, who: str, commitment: bytes, score: int, salt: bytes) -> None:
        index = self.seat_of(who)
        seat = self.seats[index]
        assert seat is not None
        seat.round, seat.score, seat.ballot = self.round, 0, 1
        self.commitments[index] = commitment
        self.ballots[who] = (score, salt)

    def expect_reveal(
        self, task: int, who: str, round_: int, score: int, salt: bytes, ts: int
    ) -> set[str]:
        errors = set()
        if self.phase != Phase.REVIEW:
            errors.add("DeRelay__WrongPhase")
        if round_ != self.round:
            errors.add("DeRelay__WrongRound")
        if ts <= self.commit_end:
            errors.add("DeRelay__RevealNotOpen")
        if ts > self.reveal_end:
            errors.add("DeRelay__RevealClosed")
        if score > BP:
            errors.add("DeRelay__ScoreOutOfRange")
        index = self.seat_of(who)
        if index < 0:
            errors.add("DeRelay__NotValidator")
        else:
            seat = self.seats[index]
            assert seat is not None
            if seat.round != round_ or seat.ballot == 0:
                errors.add("DeRelay__NotCommitted")
            if seat.ballot == 2:
                errors.add("DeRelay__AlreadyRevealed")
            if commitment_for(task, round_, score, salt, who) != self.commitments.get(index):
                errors.add("DeRelay__RevealMismatch")
        return errors

    def reveal(self, who: str, score: int) -> None:
        seat = self.seats[self.seat_of(who)]
        assert seat is not None
        seat.score, seat.ballot = score, 2

    # ------------------------------------------------------------------ verdict

    def _ballots(self) -> tuple[list[tuple[str, int]], bool]:
        reveals = []
        unrevealed = False
        for seat in self.seats:
            if seat is None or seat.round != self.round:
                continue
            if seat.ballot == 2:
                reveals.append((seat.validator, seat.score))
            elif seat.ballot == 1:
                unrevealed = True
        return reveals, unrevealed

    def expect_finalize(self, ts: int) -> set[str]:
        if self.phase != Phase.REVIEW:
            return {"DeRelay__WrongPhase"}
        _, unrevealed = self._ballots()
        if ts <= self.reveal_end and (unrevealed or ts <= self.commit_end):
            return {"DeRelay__ReviewOpen"}
        return set()

    def finalize(self, caller: str, ts: int) -> dict[str, Any]:
        """Apply a finalize; return the RoundFinalized event it must emit."""
        p = self.p
        holder = self.holder
        reveals, _ = self._ballots()
        scores = [score for _, score in reveals]
        median = sorted(scores)[(len(scores) - 1) // 2] if scores else 0
        reward = 0
        if len(reveals) < p.quorum:
            verdict = Status.VOID
        elif median != 0 and median + p.tolerance >= self.ref:  # a median of 0: unusable child
            verdict = Status.ACCEPTED
            gain = max(0, median - max(self.ref, self.head_score))  # over ref and the parent
            reward = (p.base_reward if gain >= p.min_gain else 0) + p.reward_per_point * gain
            reward = min(reward, self.pool)
            self.past_heads.append(self.head)
            child = self.lineage[-1]
            self.head, self.head_codec, self.head_score = child, self.records[child][5], median
            self.accepted += 1
            if median >= self.ref:
                self.ref += (median - self.ref) * p.ema_bp // BP
            else:
                self.ref -= (self.ref - median) * p.ema_bp // BP
            if reward:
                self.pool -= reward
                self.settle(holder)
                self.shares[holder] = self.shares.get(holder, 0) + reward
                self.total_shares += reward
                self.credit(holder, reward)
        else:
            verdict = Status.REJECTED
            slash = self.stakes[holder] * p.slash_reject_bp // BP
            self.stakes[holder] -= slash
            self.pool += slash
        child = self.lineage[-1]
        relayer, round_, submitted, _, _, codec = self.records[child]
        score = 0 if verdict == Status.VOID else median
        self.records[child] = (relayer, round_, submitted, verdict, score, codec)
        event = {
            "taskId": 1,
            "round": self.round,
            "relayer": holder,
            "verdict": int(verdict),
            "median": median,
            "reveals": len(reveals),
            "ref": self.ref,
            "reward": reward,
        }
        for validator, score in reveals:  # validator fees, in seat order while the pool lasts
            fee = p.validator_fee
            if abs(score - median) > p.band_bp or fee > self.pool or fee == 0:
                continue
            self.pool -= fee
            self.credit(validator, fee)
        for seat in list(self.seats):  # committed and silent: slashed, maybe unseated
            if seat is None or seat.round != self.round or seat.ballot != 1:
                continue
            slash = self.vstakes[seat.validator] * p.slash_no_reveal_bp // BP
            self.vstakes[seat.validator] -= slash
            self.pool += slash
            seat.ballot = 0
            if self.vstakes[seat.validator] < p.validator_stake:
                self.remove_validator(seat.validator)
        bounty = min(p.validator_fee * p.keeper_bounty_bp // BP, self.pool)
        self.pool -= bounty
        self.credit(caller, bounty)
        self._end_turn(ts)
        return event

    # ------------------------------------------------------------------ money

    def expect_pay(self, value: int) -> set[str]:
        return {"DeRelay__FeeTooLow"} if value == 0 or value < self.p.usage_fee else set()

    def pay(self, value: int) -> None:
        self.paid_in += value
        self.payments += 1
        to_contributors = 0
        if self.total_shares:
            to_contributors = value * self.p.royalty_bp // BP
            self.acc += to_contributors * ACC_SCALE // self.total_shares
        self.pool += value - to_contributors

    def expect_fund(self, value: int) -> set[str]:
        return {"DeRelay__ZeroAmount"} if value == 0 else set()

    def fund(self, value: int) -> None:
        self.paid_in += value
        self.pool += value

    def expect_withdraw(self, who: str) -> set[str]:
        return set() if self.withdrawable.get(who, 0) else {"DeRelay__NothingToWithdraw"}

    def withdraw(self, who: str) -> int:
        amount = self.withdrawable.pop(who)
        self.paid_out += amount
        return amount


# ---------------------------------------------------------------------- the chain side


@dataclass
class Environment:
    """What every example shares: the chain, the deployed contract, the actors' keys."""

    chain: Chain
    address: str
    abi: list[dict[str, Any]]
    decoder: RevertDecoder
    accounts: dict[int, LocalAccount]
    relayers_slot: int  # storage slot of DeRelay._relayers (for the queue's prev links)


def checksummed(value: Any) -> Any:
    """Decoded ABI values with every address in checksum form (eth_abi gives lower case)."""
    if isinstance(value, (tuple, list)):
        return type(value)(checksummed(v) for v in value)
    if isinstance(value, str) and len(value) == 42 and value.startswith("0x"):
        return to_checksum_address(value)
    return value


class Lens:
    """Reads for the per-step checks, fast: calls go straight to eth-tester (no web3 middleware,
    about three times quicker) with calldata encoded once."""

    def __init__(
        self, tester: EthereumTester, address: str, abi: list[dict[str, Any]], caller: str
    ) -> None:
        self.tester = tester
        self.address = address
        self.caller = caller
        self.functions = {i["name"]: i for i in abi if i.get("type") == "function"}
        self._calldata: dict[tuple[Any, ...], str] = {}

    def call(self, name: str, *args: Any) -> Any:
        item = self.functions[name]
        key = (name, *args)
        data = self._calldata.get(key)
        if data is None:
            encoded = abi_encode(get_abi_input_types(item), args)
            data = "0x" + (function_abi_to_4byte_selector(item) + encoded).hex()
            self._calldata[key] = data
        raw = self.tester.call({"from": self.caller, "to": self.address, "data": data}, "latest")
        values = checksummed(abi_decode(get_abi_output_types(item), bytes.fromhex(raw[2:])))
        return values[0] if len(values) == 1 else values

    def task_state(self, task: int) -> TaskState:
        v = self.call("taskState", task)
        return TaskState(Phase(v[0]), *v[1:12], bytes(v[12]), *v[13:])

    def account(self, task: int, address: str) -> AccountState:
        return AccountState(*self.call("accountOf", task, address))

    def balance(self) -> int:
        return int(self.tester.get_balance(self.address))

    def storage(self, slot: int) -> int:
        return int(self.tester.get_storage_at(self.address, hex(slot)), 16)

    def relayer_words(self, slot: int, task: int, who: str) -> tuple[int, int]:
        """The two storage words of `_relayers[task][who]` if `_relayers` sits at `slot`:
        (next | stake << 160, prev)."""
        inner = keccak(task.to_bytes(32, "big") + slot.to_bytes(32, "big"))
        base = int.from_bytes(keccak(bytes.fromhex(who[2:]).rjust(32, b"\0") + inner), "big")
        return self.storage(base), self.storage(base + 1)


def as_address(word: int) -> str:
    return to_checksum_address((word & (2**160 - 1)).to_bytes(20, "big"))


def locate_relayers_slot(lens: Lens, task: int, queue: list[str]) -> int:
    """Find `_relayers` in storage: the slot whose entries hold the queue's next and prev links
    (`queue`: three members in turn order)."""
    a, b, c = queue
    expected = {a: (b, c), b: (c, a), c: (a, b)}  # member: (next, prev)
    for slot in range(64):
        words = {who: lens.relayer_words(slot, task, who) for who in expected}
        if all((as_address(w[0]), as_address(w[1])) == expected[who] for who, w in words.items()):
            return slot
    pytest.fail(
        "cannot find DeRelay._relayers in storage (a Relayer struct of next+stake, then prev): "
        "if its layout changed, update Lens.relayer_words in tests/contracts/test_stateful.py"
    )


def tracked(method: F) -> F:
    """Mark the machine dirty while a step runs (steps call steps: the outermost one counts), so
    that teardown skips its exit checks after a failure."""

    @functools.wraps(method)
    def wrapper(self: RelayMachine, *args: Any, **kwargs: Any) -> Any:
        self.clean = False
        self.depth += 1
        result = method(self, *args, **kwargs)
        self.depth -= 1
        self.clean = self.depth == 0
        return result

    return wrapper  # type: ignore[return-value]


PARAMS = st.fixed_dictionaries(
    {
        "quorum": st.sampled_from([1, 2]),
        "max_validators": st.sampled_from([2, 3]),
        "max_queue": st.sampled_from([2, 3, 8]),
        "tolerance": st.sampled_from([0, 100]),
        "ema_bp": st.sampled_from([0, 5000, 10_000]),
        "min_gain": st.sampled_from([0, 10]),
        "slash_timeout_bp": st.sampled_from([0, 1000, 5000]),
        "slash_reject_bp": st.sampled_from([0, 2000, 10_000]),
        "slash_no_reveal_bp": st.sampled_from([1000, 10_000]),
        "band_bp": st.sampled_from([0, 300]),
        "validator_fee": st.sampled_from([0, ETH // 100]),
        "keeper_bounty_bp": st.sampled_from([0, 1000, 10_000]),
        "royalty_bp": st.sampled_from([0, 5000, 10_000]),
        "usage_fee": st.sampled_from([0, ETH // 100]),
    }
)
FUNDING = st.sampled_from([0, ETH // 20, 10 * ETH])  # small pools run dry: rewards get capped
STAKE = st.sampled_from(["below", "min", "min", "double"])
AUTO = "auto"  # the actor most likely to make progress with this action
# Scores as offsets from ref: far below, just outside and on the edge of a tolerance of 100, on
# it, and gains below and above minGain (10). 10_001 (out of range) stands for itself.
SCORE_OFFSETS = [-3000, -600, -101, -100, 0, 5, 50, 400]
PROGRESS_COPIES = 5
STALL = st.sampled_from([False, False, False, True])  # the holder lets its turn run out
OFFSETS = st.lists(st.sampled_from(SCORE_OFFSETS), min_size=1, max_size=3)
MODES = st.lists(st.sampled_from(["right"] * 8 + ["silent", "wrong_salt"]), min_size=1, max_size=3)


class RelayMachine(RuleBasedStateMachine):
    """One example: a task created from drawn parameters, then random actions (see module doc)."""

    env: Environment  # set by the test that runs the machine

    def __init__(self) -> None:
        super().__init__()
        env = self.env
        self.chain = env.chain
        self.tester = env.chain.tester
        self.w3 = env.chain.w3
        self.snapshot = self.tester.take_snapshot()
        self.accounts = env.accounts
        self.addr = {i: to_checksum_address(a.address) for i, a in env.accounts.items()}
        self.lens = Lens(self.tester, env.address, env.abi, self.addr[KEEPER])
        self.contract = self.w3.eth.contract(address=env.address, abi=env.abi)
        # Nonces are read from the chain on first use: each snapshot rewinds them.
        self.nonces: dict[int, int] = {}
        self.model: Model | None = None
        self.task = 0
        self.finalized: list[dict[str, Any]] = []  # every RoundFinalized event
        self.labels = 0
        self.reveals_tried: set[tuple[int, int]] = set()  # (round, who) progress() revealed for
        self.active: set[int] = set()  # actors that sent a transaction: only they can hold anything
        self.clean = True
        self.depth = 0
        self.steps = 0  # checks after the set-up: one per step
        # The chain's clock runs ahead of the wall clock, so blocks are 1 s apart unless the
        # test moves time: outcomes are predictable to the second.
        self.tester.time_travel(max(self.chain.now(), int(time.time())) + 1000)

    def teardown(self) -> None:
        STEPS.append(self.steps)
        try:
            if self.clean and self.model is not None:
                self.everyone_leaves()
        finally:
            self.tester.revert_to_snapshot(self.snapshot)

    # ------------------------------------------------------------------ transactions

    def next_timestamp(self) -> int:
        return int(self.tester.get_block_by_number("pending")["timestamp"])

    def send(self, who: int, function: str, *args: Any, value: int = 0) -> TxReceipt:
        """`who` calls `function`: an eth_call on the pending block first, whose revert is decoded
        and raised as the bindings do after their gas estimate, then the signed transaction
        straight to eth-tester with a fixed gas limit. The bindings' gas estimate (a binary search
        of a dozen executions) would double the cost of every step."""
        address = self.addr[who]
        data = self.contract.encode_abi(function, args)
        call = {"from": address, "to": self.env.address, "data": data, "value": value}
        try:
            self.tester.call(call, "pending")
        except TransactionFailed as exc:
            raise self.env.decoder.decode(revert_data(exc), function) from exc
        if who not in self.nonces:
            self.nonces[who] = int(self.tester.get_nonce(address))
        base_fee = int(self.tester.get_block_by_number("pending")["base_fee_per_gas"])
        tx = {
            "to": self.env.address,
            "data": data,
            "value": value,
            "gas": 3_000_000,
            "nonce": self.nonces[who],
            "chainId": self.chain_id,
            "maxFeePerGas": 2 * base_fee + 10**9,
            "maxPriorityFeePerGas": 10**9,
            "type": 2,
        }
        signed = self.accounts[who].sign_transaction(tx)
        tx_hash = self.tester.send_raw_transaction("0x" + signed.raw_transaction.hex())
        self.nonces[who] += 1
        receipt = self.w3.eth.get_transaction_receipt(tx_hash)
        assert receipt["status"] == 1, f"{function} passed its eth_call, then reverted on chain"
        return receipt

    @functools.cached_property
    def chain_id(self) -> int:
        return int(self.w3.eth.chain_id)

    def act(
        self,
        who: int,
        expected: set[str],
        function: str,
        *args: Any,
        value: int = 0,
        what: str = "",
    ) -> TxReceipt | None:
        """`who` calls `function`: it must succeed iff `expected` is empty, else revert with one
        of the `expected` errors. Return the receipt of a success."""
        what = what or function
        self.active.add(who)
        ts = self.next_timestamp()
        try:
            receipt = self.send(who, function, *args, value=value)
        except ContractRevert as exc:
            assert expected, f"{what} by #{who} at {ts} should succeed, reverted: {exc}"
            assert exc.name in expected, f"{what} by #{who} at {ts}: expected one of {expected}, got {exc}"  # fmt: skip
            OUTCOMES[what, exc.name.removeprefix("DeRelay__")] += 1
            return None
        assert not expected, f"{what} by #{who} at {ts} should revert with one of {expected}"
        mined = int(self.w3.eth.get_block(receipt["blockNumber"])["timestamp"])
        assert mined == ts, f"harness: predicted block time {ts}, mined at {mined}"
        OUTCOMES[what, "ok"] += 1
        return receipt

    def events(self, receipt: TxReceipt, name: str) -> list[dict[str, Any]]:
        logs = getattr(self.contract.events, name)().process_receipt(receipt, errors=DISCARD)
        return [dict(log["args"]) for log in logs]

    # ------------------------------------------------------------------ helpers

    def pick(self, choice: int | str, candidates: Iterable[int], fallback: Iterable[int]) -> int:
        """`choice` itself, or for AUTO the first candidate (else the first fallback)."""
        if choice != AUTO:
            return int(choice)
        return next(iter(candidates), next(iter(fallback)))

    def ballot_of(self, who: int) -> int:
        """`who`'s ballot in the current round: 0 none (or no seat), 1 committed, 2 revealed."""
        m = self.model
        assert m is not None
        index = m.seat_of(self.addr[who])
        seat = m.seats[index] if index >= 0 else None
        return seat.ballot if seat is not None and seat.round == m.round else 0

    def index_of(self, address: str) -> int | None:
        return next((i for i, a in self.addr.items() if a == address), None)

    def record(self, digest: bytes) -> tuple[Any, ...]:
        r = self.lens.call("recordOf", self.task, digest)
        return (r[0], r[1], r[2], Status(r[3]), r[4], r[5])

    # ------------------------------------------------------------------ set-up

    @initialize(params=PARAMS, funding=FUNDING, relayers=st.lists(st.sampled_from(RELAYERS), unique=True, min_size=1), validators=st.lists(st.sampled_from(SEAT_SEEKERS), unique=True, min_size=2, max_size=3))  # fmt: skip
    @tracked
    def create_task(
        self, params: dict[str, Any], funding: int, relayers: list[int], validators: list[int]
    ) -> None:
        params["quorum"] = min(params["quorum"], params["max_validators"])
        p = make_params(**params)
        ts = self.next_timestamp()
        receipt = self.act(PUBLISHER, set(), "createTask", p.as_tuple(), value=funding)
        assert receipt is not None
        (created,) = self.events(receipt, "TaskCreated")
        self.task = int(created["taskId"])
        assert self.task == 1
        genesis = p.genesis_cid[4:]
        m = Model(
            p=p,
            pool=funding,
            ref=p.genesis_score,
            head=genesis,
            head_codec=p.genesis_cid[1],
            head_score=p.genesis_score,
            seats=[None] * p.max_validators,
            paid_in=funding,
        )
        m.records[genesis] = (self.addr[PUBLISHER], 0, ts, Status.GENESIS, p.genesis_score, p.genesis_cid[1])  # fmt: skip
        m.lineage.append(genesis)
        self.model = m
        for who in relayers[: p.max_queue]:
            self.join(who, "min")
        for k, who in enumerate(validators):  # a double stake survives a no-reveal slash
            self.register_validator(who, "double" if k % 2 else "min")

    # ------------------------------------------------------------------ relay queue

    @tracked
    def join(self, who: int, stake: str) -> None:
        m = self.model
        assert m is not None
        value = {"below": m.p.min_stake - 1, "min": m.p.min_stake, "double": 2 * m.p.min_stake}
        ts = self.next_timestamp()
        address = self.addr[who]
        expected = m.expect_join(address, value[stake])
        if self.act(who, expected, "joinRelay", self.task, value=value[stake]):
            m.join(address, value[stake], ts)

    @tracked
    def add_stake(self, who: int, amount: int) -> None:
        m = self.model
        assert m is not None
        address = self.addr[who]
        expected = m.expect_add_stake(address, amount)
        if self.act(who, expected, "addStake", self.task, value=amount):
            m.add_stake(address, amount)

    @tracked
    def leave_relay(self, who: int | str) -> None:
        m = self.model
        assert m is not None
        queued = [self.index_of(a) for a in [*m.queue[1:], *m.queue[:1]]]  # the holder last
        actor = self.pick(who, [i for i in queued if i is not None], RELAYERS)
        address = self.addr[actor]
        ts = self.next_timestamp()
        expected = m.expect_leave(address, ts)
        stake = m.stakes.get(address, 0)
        before = m.withdrawable.get(address, 0)
        slash = 0
        if address == m.holder and len(m.queue) > 1:
            slash = stake * m.p.slash_timeout_bp // BP  # giving up a turn others wait for
        if self.act(actor, expected, "leaveRelay", self.task):
            m.leave(address, ts)
            # the stake, less any slash, became withdrawable at once
            assert self.lens.call("withdrawable", address) == before + stake - slash

    @rule(who=st.sampled_from([AUTO, AUTO, *EVERYONE]))
    @tracked
    def skip_turn(self, who: int | str) -> None:
        m = self.model
        assert m is not None
        actor = self.pick(who, [KEEPER], EVERYONE)
        ts = self.next_timestamp()
        expected = m.expect_skip(ts)
        if self.act(actor, expected, "skipTurn", self.task):
            m.skip(self.addr[actor], ts)

    # ------------------------------------------------------------------ submission

    @rule(
        who=st.sampled_from([AUTO, AUTO, AUTO, *RELAYERS]),
        kind=st.sampled_from(
            ["fresh"] * 5
            + ["stale_parent", "seen_child", "head_child", "recoded_child", "wrong_round"]
            + ["zero_samples", "bad_cid"]
        ),
    )
    @tracked
    def submit(self, who: int | str, kind: str) -> None:
        m = self.model
        assert m is not None
        holder = self.index_of(m.holder)
        actor = self.pick(who, [holder] if holder is not None else [], RELAYERS)
        self.labels += 1
        round_ = m.round
        parent = m.head
        samples = 100
        child = cid_of(f"child-{self.labels}", 0x55 if self.labels % 2 else 0x70)
        if kind == "stale_parent":
            parent = m.past_heads[-1] if m.past_heads else keccak(b"no such parent")
        elif kind == "seen_child":  # the genesis or any earlier submission
            child = bytes([1, 0x55, 0x12, 0x20]) + m.lineage[self.labels % len(m.lineage)]
        elif kind == "head_child":
            child = bytes([1, m.head_codec, 0x12, 0x20]) + m.head
        elif kind == "recoded_child":  # same digest as a seen child, other codec: still seen
            digest = m.lineage[-1]
            child = bytes([1, 0x70 if m.records[digest][5] == 0x55 else 0x55, 0x12, 0x20]) + digest
        elif kind == "wrong_round":
            round_ = max(round_ + (1 if self.labels % 2 else -1), 0)
        elif kind == "zero_samples":
            samples = 0
        elif kind == "bad_cid":  # dag-cbor: not a codec `ipfs add` produces
            child = bytes([1, 0x71, 0x12, 0x20]) + child[4:]
        ts = self.next_timestamp()
        address = self.addr[actor]
        expected = m.expect_submit(address, round_, parent, child, samples, ts)
        args = (self.task, round_, parent, child, META_CID, DATA_COMMITMENT, samples)
        if self.act(actor, expected, "submitRelay", *args, what=f"submitRelay({kind})"):
            m.submit(address, child, ts)
            assert self.record(child[4:]) == (address, round_, ts, Status.PENDING, 0, child[1])

    # ------------------------------------------------------------------ validators

    @tracked
    def register_validator(self, who: int, stake: str) -> None:
        m = self.model
        assert m is not None
        minimum = m.p.validator_stake
        value = {"below": minimum - 1, "min": minimum, "double": 2 * minimum}[stake]
        address = self.addr[who]
        expected = m.expect_register(address, value)
        if self.act(who, expected, "registerValidator", self.task, value=value):
            m.register(address, value)

    @tracked
    def leave_validator(self, who: int) -> None:
        m = self.model
        assert m is not None
        address = self.addr[who]
        expected = m.expect_leave_validator(address)
        stake = m.vstakes.get(address, 0)
        before = m.withdrawable.get(address, 0)
        if self.act(who, expected, "leaveValidator", self.task):
            m.remove_validator(address)
            assert self.lens.call("withdrawable", address) == before + stake > before

    @rule(
        who=st.sampled_from([AUTO, AUTO, AUTO, *SEAT_SEEKERS]),
        offset=st.sampled_from([*SCORE_OFFSETS, 10_001]),
        wrong_round=st.sampled_from([False] * 5 + [True]),
    )
    @tracked
    def commit(self, who: int | str, offset: int, wrong_round: bool) -> None:
        m = self.model
        assert m is not None
        ts = self.next_timestamp()
        ready = [i for i in SEAT_SEEKERS if not m.expect_commit(self.addr[i], m.round, ts)]
        actor = self.pick(who, ready, SEAT_SEEKERS)
        address = self.addr[actor]
        score = 10_001 if offset == 10_001 else min(max(m.ref + offset, 0), BP)
        round_ = m.round + 1 if wrong_round else m.round
        salt = keccak(text=f"salt:{address}:{round_}:{self.labels}")
        commitment = commitment_for(self.task, round_, score, salt, address)
        expected = m.expect_commit(address, round_, ts)
        if self.act(actor, expected, "commitScore", self.task, round_, commitment):
            m.commit(address, commitment, score, salt)

    @rule(
        who=st.sampled_from([AUTO, AUTO, AUTO, *SEAT_SEEKERS]),
        mode=st.sampled_from(["right"] * 4 + ["wrong_salt", "wrong_score", "wrong_round"]),
    )
    @tracked
    def reveal(self, who: int | str, mode: str) -> None:
        m = self.model
        assert m is not None
        committed = [i for i in SEAT_SEEKERS if self.ballot_of(i) == 1]
        actor = self.pick(who, committed, SEAT_SEEKERS)
        address = self.addr[actor]
        score, salt = m.ballots.get(address, (5000, b"\0" * 32))
        round_ = m.round
        if mode == "wrong_salt":
            salt = keccak(salt)
        elif mode == "wrong_score":
            score = score + 1 if score < BP else score - 1
        elif mode == "wrong_round":
            round_ += 1
        ts = self.next_timestamp()
        expected = m.expect_reveal(self.task, address, round_, score, salt, ts)
        what = f"revealScore({mode})"
        if self.act(actor, expected, "revealScore", self.task, round_, score, salt, what=what):
            m.reveal(address, score)

    # ------------------------------------------------------------------ verdict

    @rule(who=st.sampled_from([AUTO, AUTO, *EVERYONE]))
    @tracked
    def finalize(self, who: int | str) -> None:
        m = self.model
        assert m is not None
        actor = self.pick(who, [KEEPER], EVERYONE)
        ts = self.next_timestamp()
        expected = m.expect_finalize(ts)
        receipt = self.act(actor, expected, "finalize", self.task)
        if receipt is None:
            return
        child = m.lineage[-1]
        event = m.finalize(self.addr[actor], ts)
        OUTCOMES["verdict", Status(event["verdict"]).name.lower()] += 1
        (emitted,) = self.events(receipt, "RoundFinalized")
        emitted = {k: (v if k == "relayer" else int(v)) for k, v in emitted.items()}
        assert emitted == event, f"RoundFinalized {emitted}, model {event}"
        self.finalized.append(emitted)
        assert self.record(child) == m.records[child]

    # ------------------------------------------------------------------ money

    @tracked
    def pay_for_model(self, who: int, value: int) -> None:
        m = self.model
        assert m is not None
        expected = m.expect_pay(value)
        if self.act(who, expected, "payForModel", self.task, value=value):
            m.pay(value)

    @tracked
    def fund(self, who: int, amount: int) -> None:
        m = self.model
        assert m is not None
        expected = m.expect_fund(amount)
        if self.act(who, expected, "fund", self.task, value=amount):
            m.fund(amount)

    @tracked
    def claim_royalties(self, who: int) -> None:
        m = self.model
        assert m is not None
        if self.act(who, set(), "claimRoyalties", self.task):
            m.settle(self.addr[who])

    @tracked
    def withdraw(self, who: int | str) -> None:
        m = self.model
        assert m is not None
        owed = [i for i in EVERYONE if m.withdrawable.get(self.addr[i], 0)]
        self.withdraw_all(self.pick(who, owed, EVERYONE))

    def withdraw_all(self, actor: int) -> None:
        """Withdraw; with a positive balance it must succeed and pay exactly that balance."""
        m = self.model
        assert m is not None
        address = self.addr[actor]
        owed = m.withdrawable.get(address, 0)
        before = int(self.tester.get_balance(address))
        receipt = self.act(actor, m.expect_withdraw(address), "withdraw")
        if receipt is None:
            return
        amount = m.withdraw(address)
        assert amount == owed > 0
        assert int(self.tester.get_balance(address)) == before + owed - gas_cost(receipt)
        (event,) = self.events(receipt, "Withdrawn")
        assert (event["account"], event["amount"]) == (address, owed)

    # ------------------------------------------------------------------ grouped rules
    # One rule per group keeps the rule count low, so that `relay_moves_on` comes up often.

    @rule(
        action=st.sampled_from(["join", "join", "add_stake", "leave"]),
        who=st.sampled_from([AUTO, AUTO, *RELAYERS]),
        stake=STAKE,
        amount=st.sampled_from([0, 1, ETH // 2]),
    )
    @tracked
    def queue_action(self, action: str, who: int | str, stake: str, amount: int) -> None:
        m = self.model
        assert m is not None
        queued = [i for i in RELAYERS if self.addr[i] in m.stakes]
        waiting = [i for i in RELAYERS if i not in queued]
        if action == "join":
            self.join(self.pick(who, waiting, RELAYERS), stake)
        elif action == "add_stake":
            self.add_stake(self.pick(who, queued, RELAYERS), amount)
        else:
            self.leave_relay(who)

    @rule(
        action=st.sampled_from(["register", "register", "leave"]),
        who=st.sampled_from(SEAT_SEEKERS),
        stake=STAKE,
    )
    @tracked
    def seat_action(self, action: str, who: int, stake: str) -> None:
        if action == "register":
            self.register_validator(who, stake)
        else:
            self.leave_validator(who)

    @rule(
        action=st.sampled_from(
            ["pay", "pay", "pay", "fund", "claim", "claim", "withdraw", "withdraw"]
        ),
        who=st.sampled_from([AUTO, AUTO, *EVERYONE]),
        amount=st.sampled_from(["zero", "below", "fee", "more"]),
    )
    @tracked
    def money_action(self, action: str, who: int | str, amount: str) -> None:
        m = self.model
        assert m is not None
        if action == "pay":
            fee = m.p.usage_fee
            value = {"zero": 0, "below": max(fee - 1, 0), "fee": fee, "more": 3 * fee + 7}
            self.pay_for_model(self.pick(who, [CONSUMER], EVERYONE), value[amount])
        elif action == "fund":
            value = {"zero": 0, "below": 1, "fee": ETH // 3, "more": ETH}
            self.fund(self.pick(who, [PUBLISHER], EVERYONE), value[amount])
        elif action == "claim":
            owed = [i for i in EVERYONE if m.pending(self.addr[i])]
            self.claim_royalties(self.pick(who, owed, EVERYONE))
        else:
            self.withdraw(who)

    # ------------------------------------------------------------------ time

    @rule(
        anchor=st.sampled_from(["turn", "commit", "reveal", "raw"]),
        offset=st.sampled_from([-2, -1, 0, 0, 1, 1, 2, 30]),
    )
    @tracked
    def advance(self, anchor: str, offset: int) -> None:
        """Make the next transaction's block land `offset` s from an edge of the current phase
        (the turn deadline, the commit end or the reveal end), or just jump ahead ("raw")."""
        m = self.model
        assert m is not None
        pending = self.next_timestamp()
        edges = {"turn": m.deadline, "commit": m.commit_end, "reveal": m.reveal_end}
        if m.phase == Phase.IDLE or anchor == "raw":
            target = pending + abs(offset) * 7 + 1
        else:
            target = edges[anchor] + offset
        if target > pending:
            self.tester.time_travel(target)
            assert self.next_timestamp() == target

    # ------------------------------------------------------------------ progress
    # Rules drawn at random (and Hypothesis's swarm testing, which turns some rules off for a
    # whole example) rarely line up a whole review: submit, commits, the commit window's end,
    # reveals, finalize. `progress` takes the next step the relay needs, whatever the phase.

    def progress(
        self, offsets: list[int], modes: list[str], late: bool, stall: bool, pay: bool
    ) -> None:
        """The relay's next step: the holder submits (or, `stall`ing, lets its turn run out and
        is skipped, maybe by itself), validators commit `offsets` from ref, reveal by `modes`, the keeper
        finalizes. The clock lands on each window's last second before it moves past it (unless
        `late`), and there the action the edge still forbids is tried first: a skip on the turn's
        deadline, a reveal and a finalize on the commit window's end, a finalize on the reveal
        window's end (with a ballot still unrevealed). Before a submission the consumer may `pay`
        for the model, so that royalties accrue between one contributor's rewards."""
        m = self.model
        assert m is not None
        ts = self.next_timestamp()
        committed = [i for i in SEAT_SEEKERS if self.ballot_of(i) == 1]
        if m.phase == Phase.IDLE:
            waiting = [i for i in RELAYERS if self.addr[i] not in m.stakes]
            self.join(waiting[0] if waiting else RELAYERS[0], "min")
        elif m.phase == Phase.TURN:
            if ts == m.deadline:
                self.skip_turn(KEEPER)
            if ts > m.deadline:  # a stalling holder may skip itself (and earns no bounty)
                holder = self.index_of(m.holder)
                self.skip_turn(holder if stall and holder is not None else KEEPER)
            elif stall:
                self.advance("turn", 1 if late or ts == m.deadline else 0)
            else:
                if pay and m.total_shares:
                    self.pay_for_model(CONSUMER, 3 * m.p.usage_fee + 7)
                self.submit(AUTO, "fresh")
        elif ts <= m.commit_end:
            ready = [i for i in SEAT_SEEKERS if not m.expect_commit(self.addr[i], m.round, ts)]
            for who, offset in zip(ready, offsets * 3, strict=False):
                self.commit(who, offset, False)
            if not ready:
                if ts == m.commit_end:
                    if committed:
                        self.reveal(committed[0], "right")
                    self.finalize(KEEPER)
                self.advance("commit", 1 if late or ts == m.commit_end else 0)
        elif ts <= m.reveal_end and (
            untried := [i for i in committed if (m.round, i) not in self.reveals_tried]
        ):
            for who, mode in zip(untried, modes * 3, strict=False):
                self.reveals_tried.add((m.round, who))
                if mode != "silent":
                    self.reveal(who, mode)
        elif m.expect_finalize(ts):
            if ts == m.reveal_end:
                self.finalize(KEEPER)
            self.advance("reveal", 1 if late or ts == m.reveal_end else 0)
        else:
            self.finalize(KEEPER)

    def relay_moves_on(
        self, offsets: list[int], modes: list[str], late: bool, stall: bool, pay: bool
    ) -> None:
        self.progress(offsets, modes, late, stall, pay)

    # The same rule under PROGRESS_COPIES names: Hypothesis picks among rules uniformly, and its
    # swarm testing turns each name off for whole examples at random.
    for _copy in range(PROGRESS_COPIES):
        locals()[f"relay_moves_on_{_copy}"] = rule(offsets=OFFSETS, modes=MODES, late=st.booleans(), stall=STALL, pay=st.booleans())(relay_moves_on)  # fmt: skip
    del _copy

    # ------------------------------------------------------------------ observation

    @invariant()
    @tracked
    def chain_matches_model(self) -> None:
        m = self.model
        if m is None:
            return
        self.steps += 1
        lens = self.lens
        p = m.p

        # the task's view
        state = lens.task_state(self.task)
        expected_state = (
            m.phase,
            m.round,
            m.holder,
            m.phase_start,
            m.deadline if m.phase == Phase.TURN else m.commit_end if m.phase == Phase.REVIEW else 0,
            m.reveal_end if m.phase == Phase.REVIEW else 0,
            m.pool,
            len(m.queue),
            len(m.lineage),
            m.accepted,
            m.ref,
            m.head_score,
            bytes([1, m.head_codec, 0x12, 0x20]) + m.head,
            sum(seat is not None for seat in m.seats),
            m.total_shares,
            m.acc,
        )
        actual_state = (
            state.phase,
            state.round,
            state.holder,
            state.phase_start,
            state.deadline,
            state.reveal_end,
            state.pool,
            state.queue_length,
            state.submission_count,
            state.accepted_count,
            state.ref,
            state.head_score,
            state.head_cid,
            state.validator_count,
            state.total_shares,
            state.acc_per_share,
        )
        assert actual_state == expected_state, f"taskState {state}\nmodel {expected_state}"

        # every actor's account. Every position is opened by its owner's transaction (stakes,
        # rewards, fees and bounties go to msg.sender, the holder or seated validators), so an
        # actor that never sent one holds nothing: reading the active ones is enough.
        accounts = {}
        for i in sorted(self.active):
            address = self.addr[i]
            account = lens.account(self.task, address)
            accounts[address] = account
            expected_account = (
                m.withdrawable.get(address, 0),
                m.stakes.get(address, 0),
                address in m.stakes,
                m.vstakes.get(address, 0),
                m.seat_of(address),
                m.shares.get(address, 0),
                m.pending(address),
            )
            actual_account = (
                account.withdrawable,
                account.relayer_stake,
                account.queued,
                account.validator_stake,
                account.seat,
                account.shares,
                account.pending_royalties,
            )
            assert actual_account == expected_account, f"account of #{i}: {account}\nmodel {expected_account}"  # fmt: skip
            # no stuck or dangling stake
            assert account.queued == (account.relayer_stake > 0), f"#{i}: {account}"
            if account.queued:
                assert account.relayer_stake >= p.min_stake, f"#{i} queued under minStake"
            assert (account.seat >= 0) == (account.validator_stake > 0), f"#{i}: {account}"
            if account.seat >= 0:
                assert account.validator_stake >= p.validator_stake, f"#{i} seated under stake"

        # the seats
        seats = [tuple(seat) for seat in lens.call("seatsOf", self.task)]
        expected_seats = [
            (s.validator, s.round, s.score, s.ballot) if s else (ZERO_ADDRESS, 0, 0, 0)
            for s in m.seats
        ]
        assert seats == expected_seats

        # the queue: walked in pages of two, then its links in storage
        walk: list[tuple[str, int]] = []
        cursor = ZERO_ADDRESS
        for _ in range(state.queue_length + 2):
            members, stakes, cursor = lens.call("queuePage", self.task, cursor, 2)
            walk.extend(zip(members, stakes, strict=True))
            if cursor == ZERO_ADDRESS:
                break
        assert cursor == ZERO_ADDRESS, "queuePage never reached the end: the links do not close"
        order = [member for member, _ in walk]
        assert len(order) == state.queue_length == len(set(order)), f"queue walk {order}"
        assert walk == [(a, m.stakes[a]) for a in m.queue], f"queue {walk}, model {m.queue}"
        assert {a for a, acc in accounts.items() if acc.queued} == set(order)
        for k, member in enumerate(order):
            word0, word1 = lens.relayer_words(self.env.relayers_slot, self.task, member)
            assert as_address(word0) == order[(k + 1) % len(order)], f"next of {member}"
            assert as_address(word1) == order[k - 1], f"prev of {member}"

        # one holder: the front of the queue, exactly when the relay is not idle
        if state.phase == Phase.IDLE:
            assert state.holder == ZERO_ADDRESS and state.queue_length == 0
        else:
            assert order and state.holder == order[0], f"holder {state.holder}, queue {order}"

        # no reward without an accepted turn; rewards are exactly the royalty shares
        for event in self.finalized:
            if event["reward"]:
                assert event["verdict"] == Status.ACCEPTED, f"reward without acceptance: {event}"
        assert sum(e["reward"] for e in self.finalized) == state.total_shares
        assert sum(a.shares for a in accounts.values()) == state.total_shares

        # money: out <= in, the balance is the difference, and it covers every obligation
        balance = lens.balance()
        assert m.paid_out <= m.paid_in
        assert balance == m.paid_in - m.paid_out
        owed = state.pool + sum(
            a.relayer_stake + a.validator_stake + a.withdrawable + a.pending_royalties
            for a in accounts.values()
        )
        contributors = sum(a.shares > 0 for a in accounts.values())
        bound = (contributors + 1 + state.total_shares // ACC_SCALE) * m.payments
        assert 0 <= balance - owed <= bound, f"balance {balance}, owed {owed}, dust bound {bound}"

    # ------------------------------------------------------------------ the end

    def everyone_leaves(self) -> None:
        """Everyone can get out: finish a review, leave the queue (the holder gives up its new
        turn) and the seats, claim royalties, withdraw. Each step must succeed, and what stays in
        the contract is the pool and the royalty dust."""
        m = self.model
        assert m is not None
        while m.queue:
            if m.phase == Phase.REVIEW:
                if self.next_timestamp() <= m.reveal_end:
                    self.tester.time_travel(m.reveal_end + 1)
                self.finalize(KEEPER)
                assert m.phase != Phase.REVIEW
            elif self.next_timestamp() > m.deadline:
                self.skip_turn(KEEPER)
            else:
                holder = m.holder
                who = self.index_of(holder)
                assert who is not None
                self.leave_relay(who)
                assert holder not in m.stakes
        for address in list(m.vstakes):
            who = self.index_of(address)
            assert who is not None
            self.leave_validator(who)
            assert address not in m.vstakes
        for who in EVERYONE:
            address = self.addr[who]
            if m.pending(address):
                self.claim_royalties(who)
            if m.withdrawable.get(address, 0):
                self.withdraw_all(who)
            assert not m.pending(address) and not m.withdrawable.get(address, 0)
        assert m.phase == Phase.IDLE and not m.stakes and not m.vstakes
        self.chain_matches_model()  # among others: balance - pool is the bounded dust


# ---------------------------------------------------------------------- the tests


def profile(examples: int, steps: int) -> settings:
    examples = int(os.environ.get("DERELAY_HYPOTHESIS_EXAMPLES", examples))
    steps = int(os.environ.get("DERELAY_HYPOTHESIS_STEPS", steps))
    return settings(
        max_examples=examples,
        stateful_step_count=steps,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )


@pytest.fixture
def environment(chain: Chain) -> Environment:
    """The contract deployed, and the storage slot of its queue links found once."""
    decoder = decoder_for()
    accounts = {i: Account.from_key(TEST_KEYS[i]) for i in EVERYONE}
    deployer = ChainClient(chain.w3, accounts[PUBLISHER], decoder)
    relay = DeRelayContract.deploy(deployer)
    snapshot = chain.tester.take_snapshot()
    views = [relay.as_account(ChainClient(chain.w3, accounts[i], decoder)) for i in RELAYERS]
    task = relay.create_task(make_params(), funding=0)
    for view in views:
        view.join_relay(task, ETH)
    lens = Lens(chain.tester, relay.address, relay.abi, deployer.address)
    slot = locate_relayers_slot(lens, task, [v.client.address for v in views])
    chain.tester.revert_to_snapshot(snapshot)
    return Environment(chain, relay.address, relay.abi, decoder, accounts, slot)


def run_machine(environment: Environment, examples: int, steps: int) -> None:
    machine = type("DeRelayMachine", (RelayMachine,), {"env": environment})
    OUTCOMES.clear()
    STEPS.clear()
    started = time.perf_counter()
    run_state_machine_as_test(machine, settings=profile(examples, steps))
    print(
        f"stateful run: {time.perf_counter() - started:.1f} s, {len(STEPS)} examples, "
        f"{sum(STEPS)} steps (at most {max(STEPS, default=0)} in one); outcomes:"
    )
    for (action, outcome), count in sorted(OUTCOMES.items()):
        print(f"  {action:32} {outcome:24} {count}")


def test_relay_state_machine(environment: Environment):
    run_machine(environment, DEFAULT_EXAMPLES, DEFAULT_STEPS)


@pytest.mark.slow
def test_relay_state_machine_long(environment: Environment):
    run_machine(environment, SLOW_EXAMPLES, SLOW_STEPS)


# ---------------------------------------------------------------------- found on the way


def test_a_lone_relayer_can_leave_once_its_turn_is_skipped(chain: Chain, actors: Actors):
    """Found by the state machine's exit check: alone in the queue, a relayer was handed a new
    turn by every skip or verdict, so it could never leave (with slashTimeoutBp == 0 its stake
    was locked for good). A holder may now give up an unused turn before its deadline."""
    # prepare: one relayer in a task without timeout slashes; its turn expired and was skipped
    task = make_task(actors, slash_timeout_bp=0)
    alice = actors.relayers[0]
    alice.join_relay(task, ETH)
    next_tx_at(chain, alice.task_state(task).deadline + 1)
    actors.keeper.skip_turn(task)

    # act: she holds a fresh turn, and gives it up
    alice.leave_relay(task)

    # check: her whole stake is withdrawable and the relay is idle
    assert alice.withdrawable(alice.client.address) == ETH
    state = alice.task_state(task)
    assert (state.phase, state.queue_length, state.holder) == (Phase.IDLE, 0, ZERO_ADDRESS)


def test_stalling_a_whole_turn_is_not_free(chain: Chain, actors: Actors):
    # prepare: a staller holds the turn, an honest relayer waits behind it
    task = make_task(actors)  # slashTimeoutBp 1000: a skipped turn costs 10% of the stake
    staller, honest = actors.relayers[:2]
    staller.join_relay(task, ETH)
    honest.join_relay(task, ETH)

    # act: the staller sits on its turn to the last second, then tries to walk away
    next_tx_at(chain, staller.task_state(task).deadline)
    try:
        staller.leave_relay(task)
    except ContractRevert as exc:  # it cannot: a keeper will skip it and take the slash
        assert exc.name == "DeRelay__HolderCannotLeave", str(exc)
        return

    # check: walking away cost it what a skip would have
    assert staller.withdrawable(staller.client.address) == ETH - ETH * 1000 // 10_000
