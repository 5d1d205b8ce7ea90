"""Stateful property tests: a Hypothesis state machine drives DeRelay (review v2) on the embedded
chain.

Relayers, validators (one relayer validates too), a keeper and a consumer do every action in
random order, with random arguments (fresh, stale, repeated, re-encoded and malformed submissions;
right and wrong reveals; stakes below, at and above the minimum), and the clock jumps to just
before, on and just after each window's edge. A Python model of the contract (DESIGN.md sections 2
and 2.1, with the verdict and reward arithmetic of derelay/lab/metrics.py) predicts every outcome:

- an action the model says must succeed succeeds, with exactly the model's effects and events
  (the verdict, the champion crowned, validator fees, the keeper bounty, no-reveal and
  missed-commit slashes, seats lost);
- an action that reverts reverts with one of the custom errors the model says apply (a revert is
  an expected outcome, never a failure by itself; a panic or an unexplained error is a failure).

Behind the ballots is a small world: every model has a true quality (accuracy in bp) and every
validator a bias (how hard its held-out data is), so an honest validator scores a model at
quality + bias: the child, the champion and the child's parent (the head it was trained from),
all three on the same data. Children are drawn to improve on the champion (by less than, exactly
and more than minGain), to creep up from the head by half of minGain, to copy the champion
(re-encoded), to dip within the advance band and recover, to walk the head down by the whole
advance band, to land held, on the slash band's edge or below it, or to be junk (score 0); a
relayer may instead follow a plan every turn (walk the head down, dip then recover, aim at the
advance band's edge, creep up in steps below minGain), and a relayer whose review went void may
resubmit its child. Validators are honest, boosters (vouch for any child), sinkers (vote every
child down), lazy (three equal guesses), silent (commit, never reveal) or squatters (never
commit); their data all get harder or easier at once, and they come and go.

After every step the whole observable state (task view with head and champion, every actor's
account, the seats with their ballots and missed-commit counts, the queue walked page by page,
the queue's next/prev links in storage, the contract's balance) must equal the model, and these
invariants must hold:

- balance: the contract holds pools + stakes + withdrawable + unsettled royalties + bounded dust;
  everything ever paid out <= everything paid in, and the balance is the difference;
- one holder: Idle iff the queue is empty iff nobody holds the turn; the holder is the front;
- queue integrity: the walk's length is queueLength, no member twice, next/prev form one cycle;
- head and champion: the head is the champion, or it was accepted (against the same champion)
  with a median delta >= -advanceBand; when an honest majority decided it, its true quality is
  no more than advanceBand below the champion's, as the current validators measure; a champion
  is only ever replaced by a child with delta >= minGain (and, decided honestly, truly better by
  that much);
- shares only grow with crowned children, by exactly the reward
  `min(pool, (gain >= minGain ? baseReward : 0) + rewardPerPoint * gain)` for
  `gain = min(delta, progress)` (nothing when progress <= 0), `progress` the median of child -
  parent; a crowned child decided honestly is paid for what it truly added itself, which is less
  than its delta when its parent is an uncrowned head above the champion;
- a void round moves no money out of the pool (no fees, no bounty, no reward: the pool only
  gains the validators' slashes); the holder keeps the turn once in a row;
- no reachable state rejects every honest child forever: with honest validators in every seat
  that is free or will be freed (squatters, silent), a child that beats the champion by minGain
  on each validator's data is crowned by the model's verdict, unless liars outvote them (a
  colluding majority wins any vote: the documented bound). At the end of each example the same
  is played on chain: honest newcomers take free seats and the holder's honest child must be
  crowned within the rounds that squatters and silent validators take to lose their seats (a
  holder whose own seat keeps its reviews from a quorum has them void twice, then the turn
  passes on);
- no stuck stake; withdraw pays exactly the balance.

Each example takes a chain snapshot (the contract deployed, no task), creates a task from drawn
parameters (quorum, seats, queue cap, bands, missed-commit limit and slash, reward, slashes, fees,
bounties, royalty share, pool) and reverts to the snapshot in teardown. Its last acts are the
honest-child probe above (in a snapshot of its own) and moving everyone out: finish any review,
leave the queue (the holder gives up its fresh turn) and the seats, claim royalties and withdraw,
each of which must succeed; what stays is the pool and the royalty dust.

Transactions skip the bindings' gas estimate (a binary search of a dozen EVM runs): an eth_call
on the pending block decodes a revert, else the signed transaction goes straight to eth-tester.
Reads for the checks also go straight to eth-tester. Both make a step about twice as cheap.

Profiles: the default suite runs `DEFAULT_EXAMPLES` x `DEFAULT_STEPS`; `--slow` or DERELAY_SLOW=1
adds a larger one (`SLOW_EXAMPLES` x `SLOW_STEPS`). DERELAY_HYPOTHESIS_EXAMPLES and
DERELAY_HYPOTHESIS_STEPS override the numbers of either. Each run draws a fresh seed, printed in the
"campaign sizes" section and on a failure; DERELAY_HYPOTHESIS_SEED=<seed> replays that run (no
example database: the seed alone decides what runs).
"""

from __future__ import annotations

import copy
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
from hypothesis import HealthCheck, seed, settings
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

from derelay.lab.metrics import Review, outvoted, paid_in_band, relay_reward, review
from derelay.trainer.chain import ChainClient, RevertDecoder, revert_data
from derelay.trainer.contract import (
    ZERO_ADDRESS,
    AccountState,
    Ballot,
    DeRelayContract,
    Phase,
    Status,
    TaskParams,
    TaskState,
    commitment_for,
    decoder_for,
)
from derelay.trainer.errors import ContractRevert
from tests.conftest import CI_FIGURE, TEST_KEYS, Chain
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

ETH = 10**18
BP = 10_000
ACC_SCALE = 10**18

DEFAULT_EXAMPLES, DEFAULT_STEPS = 50, 40
SLOW_EXAMPLES, SLOW_STEPS = 100, 50

# Roles, as indices into tests.conftest.TEST_KEYS.
PUBLISHER = 0
RELAYERS = (1, 2, 3)
VALIDATORS = (5, 6, 7, 8)  # one more than the seats: turnover
DUAL = 1  # a relayer that also takes a validator seat (self-review must be refused)
SEAT_SEEKERS = (*VALIDATORS, DUAL)
KEEPER = 10
CONSUMER = 11
NEWCOMERS = (4, 9, 12, 13)  # honest validators that take free seats in the end-of-example probe
EVERYONE = (PUBLISHER, *RELAYERS, *VALIDATORS, KEEPER, CONSUMER)

F = TypeVar("F", bound=Callable[..., Any])

# Outcomes seen by the last run (action: "ok" or the revert's name; verdicts; probe results),
# printed at its end: the quickest way to see what a profile reaches (`pytest -s`).
OUTCOMES: Counter[tuple[str, str]] = Counter()
STEPS: list[int] = []  # steps of each example of the last run

VERDICTS = {
    "void": Status.VOID,
    "rejected": Status.REJECTED,
    "held": Status.HELD,
    "accepted": Status.ACCEPTED,
}


# ---------------------------------------------------------------------- the model


@dataclass
class SeatModel:
    validator: str
    round: int = 0  # the round of the ballot below (a seat taken during a review: that review)
    child: int = 0
    champion: int = 0
    parent: int = 0
    ballot: Ballot = Ballot.NONE
    misses: int = 0  # reviews in a row it could have committed to and did not

    def view(self) -> tuple[str, int, int, int, int, int, int]:
        """The seat as `seatsOf` returns it (the parent's score after the ballot, as the struct
        packs it)."""
        return (
            self.validator,
            self.round,
            self.child,
            self.champion,
            self.ballot,
            self.parent,
            self.misses,
        )


@dataclass
class Finalized:
    """What one finalize must do, event by event (each list in emission order)."""

    outcome: Review
    event: dict[str, Any]  # RoundFinalized
    crowned: list[tuple[str, bytes, int, int]]  # ChampionCrowned: relayer, digest, score, gain
    relayer_slashed: list[tuple[str, int]]  # RelayerSlashed (rejected): relayer, amount
    fees: list[tuple[str, int]]  # ValidatorPaid: validator, fee
    bounty: list[tuple[str, int]]  # KeeperPaid: keeper, bounty
    silent: list[tuple[str, int, int]]  # ValidatorSlashed: validator, amount, misses
    outvoted: list[tuple[str, int]]  # ValidatorOutvoted: validator, amount
    missed: list[tuple[str, int, int]]  # ValidatorMissed: validator, amount, misses
    unseated: list[tuple[str, int, bool]]  # ValidatorLeft: validator, refund, forced

    @property
    def charged(self) -> int:
        """Validator stake moved to the pool."""
        return sum(a for _, a in self.outvoted) + sum(a for _, a, _ in self.silent + self.missed)


@dataclass
class Model:
    """The contract for one task, in Python: what the chain must show after each action."""

    p: TaskParams
    pool: int
    head: bytes  # digest of the head's CID
    head_codec: int
    head_score: int
    champion: bytes  # digest of the champion's CID
    champion_codec: int
    champion_score: int
    head_delta: int = 0  # median delta the head was accepted with (0 for the genesis)
    kept: bool = False  # this turn is the holder's second try after a void review
    phase: Phase = Phase.IDLE
    round: int = 0
    phase_start: int = 0
    queue: list[str] = field(default_factory=list)  # turn order; queue[0] holds the turn
    stakes: dict[str, int] = field(default_factory=dict)  # queued relayers only
    vstakes: dict[str, int] = field(default_factory=dict)  # seated validators only
    seats: list[SeatModel | None] = field(default_factory=list)
    commitments: dict[int, bytes] = field(default_factory=dict)  # by seat index
    ballots: dict[str, tuple[int, int, int, bytes]] = field(
        default_factory=dict
    )  # child, champion, parent, salt
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
            self.kept = False
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
            self.kept = False
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
        self._end_turn(ts, voided=False)

    def _start_turn(self, ts: int) -> None:
        self.phase_start = ts
        if not self.queue:
            self.phase = Phase.IDLE
            return
        self.round += 1
        self.phase = Phase.TURN
        self.ballots = {}

    def _end_turn(self, ts: int, voided: bool) -> None:
        """The holder goes to the tail (or leaves, under minStake); after a void review it keeps
        the front for one more round, once in a row."""
        holder = self.queue[0]
        keep = voided and not self.kept and self.stakes[holder] >= self.p.min_stake
        if self.stakes[holder] < self.p.min_stake:
            self.queue.pop(0)
            self.credit(holder, self.stakes.pop(holder))
        elif not keep:
            self.queue.append(self.queue.pop(0))
        self.kept = keep
        self._start_turn(ts)

    # ------------------------------------------------------------------ submission

    def can_resubmit(self, who: str, digest: bytes) -> bool:
        """Only the holder's own child of the latest, void review may be submitted again."""
        record = self.records.get(digest)
        return (
            record is not None
            and record[3] == Status.VOID
            and record[0] == who
            and self.lineage[-1] == digest
        )

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
        if child[4:] in self.records and not self.can_resubmit(who, child[4:]):
            errors.add("DeRelay__ChildSeen")
        return errors

    def submit(self, who: str, child: bytes, ts: int) -> None:
        digest = child[4:]
        if digest not in self.records:
            self.lineage.append(digest)
        self.records[digest] = (who, self.round, ts, Status.PENDING, 0, child[1])
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

    def register(self, who: str, value: int, ts: int) -> None:
        self.paid_in += value
        # seated after a review's commit window closed: excused from that review
        round_ = self.round if self.phase == Phase.REVIEW and ts > self.commit_end else 0
        self.seats[self.seats.index(None)] = SeatModel(who, round_)
        self.vstakes[who] = value

    def expect_leave_validator(self, who: str) -> set[str]:
        index = self.seat_of(who)
        if index < 0:
            return {"DeRelay__NotValidator"}
        seat = self.seats[index]
        assert seat is not None
        seated_now = seat.round == self.round and seat.ballot == Ballot.NONE
        if self.phase == Phase.REVIEW and who != self.holder and not seated_now:
            return {"DeRelay__BallotOpen"}
        return set()

    def remove_validator(self, who: str) -> int:
        """Free `who`'s seat and credit its stake; return the stake."""
        self.seats[self.seat_of(who)] = None
        stake = self.vstakes.pop(who)
        self.credit(who, stake)
        return stake

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
            if seat.round == round_ and seat.ballot != Ballot.NONE:
                errors.add("DeRelay__AlreadyCommitted")
        return errors

    def commit(
        self, who: str, commitment: bytes, ballot: tuple[int, int, int], salt: bytes
    ) -> None:
        index = self.seat_of(who)
        misses = self.seats[index].misses  # a commit alone does not clear them: a reveal does
        self.seats[index] = SeatModel(who, self.round, 0, 0, 0, Ballot.COMMITTED, misses)
        self.commitments[index] = commitment
        self.ballots[who] = (*ballot, salt)

    def expect_reveal(
        self,
        task: int,
        who: str,
        round_: int,
        ballot: tuple[int, int, int],
        salt: bytes,
        ts: int,
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
        if max(ballot) > BP:  # any of the three
            errors.add("DeRelay__ScoreOutOfRange")
        index = self.seat_of(who)
        if index < 0:
            errors.add("DeRelay__NotValidator")
        else:
            seat = self.seats[index]
            assert seat is not None
            if seat.round != round_ or seat.ballot == Ballot.NONE:
                errors.add("DeRelay__NotCommitted")
            if seat.ballot == Ballot.REVEALED:
                errors.add("DeRelay__AlreadyRevealed")
            if commitment_for(task, round_, *ballot, salt, who) != self.commitments.get(index):
                errors.add("DeRelay__RevealMismatch")
        return errors

    def reveal(self, who: str, ballot: tuple[int, int, int]) -> None:
        seat = self.seats[self.seat_of(who)]
        assert seat is not None
        seat.child, seat.champion, seat.parent = ballot
        seat.ballot = Ballot.REVEALED
        seat.misses = 0

    # ------------------------------------------------------------------ verdict

    def tally(self) -> tuple[list[tuple[str, int, int, int, int]], list[int], list[int]]:
        """This review's reveals (validator, child, champion, parent, seat) in seat order, the
        seats that committed and did not reveal, and the seats that could have committed and did
        not (occupied, not the holder, not seated during this review)."""
        reveals: list[tuple[str, int, int, int, int]] = []
        silent: list[int] = []
        missed: list[int] = []
        for i, seat in enumerate(self.seats):
            if seat is None or seat.validator == self.holder:
                continue
            if seat.round != self.round:
                missed.append(i)
            elif seat.ballot == Ballot.REVEALED:
                reveals.append((seat.validator, seat.child, seat.champion, seat.parent, i))
            elif seat.ballot == Ballot.COMMITTED:
                silent.append(i)
        return reveals, silent, missed

    def expect_finalize(self, ts: int) -> set[str]:
        if self.phase != Phase.REVIEW:
            return {"DeRelay__WrongPhase"}
        _, silent, _ = self.tally()
        if ts <= self.reveal_end and (silent or ts <= self.commit_end):
            return {"DeRelay__ReviewOpen"}
        return set()

    def finalize(self, caller: str, ts: int) -> Finalized:
        """Apply a finalize; return what it must emit."""
        p = self.p
        holder = self.holder
        reveals, silent, missed = self.tally()
        ballots = [(c, h, q) for _, c, h, q, _ in reveals]
        outcome = review(ballots, p.quorum, p.slash_band, p.advance_band, p.min_gain)
        child = self.lineage[-1]
        relayer, round_, submitted, _, _, codec = self.records[child]
        reward = 0
        done = Finalized(outcome, {}, [], [], [], [], [], [], [], [])
        if outcome.verdict != "void":
            self.champion_score = outcome.champion_score  # as this review's validators measure it
        if outcome.verdict == "accepted":
            self.past_heads.append(self.head)
            self.head, self.head_codec, self.head_score = child, codec, outcome.child_score
            self.head_delta = outcome.delta
            self.accepted += 1
            if outcome.crowned:  # delta >= minGain; the reward needs progress over the parent too
                self.champion, self.champion_codec = child, codec
                self.champion_score = outcome.child_score
                done.crowned.append((holder, child, outcome.child_score, outcome.delta))
                reward = relay_reward(
                    outcome.delta,
                    outcome.progress,
                    p.min_gain,
                    p.base_reward,
                    p.reward_per_point,
                    self.pool,
                )
                if reward:
                    self.pool -= reward
                    self.settle(holder)
                    self.shares[holder] = self.shares.get(holder, 0) + reward
                    self.total_shares += reward
                    self.credit(holder, reward)
        elif outcome.verdict == "rejected":
            slash = self.stakes[holder] * p.slash_reject_bp // BP
            self.stakes[holder] -= slash
            self.pool += slash
            done.relayer_slashed.append((holder, slash))
        verdict = VERDICTS[outcome.verdict]
        self.records[child] = (relayer, round_, submitted, verdict, outcome.child_score, codec)
        done.event = {
            "taskId": 1,
            "round": self.round,
            "relayer": holder,
            "verdict": int(verdict),
            "childScore": outcome.child_score,
            "championScore": outcome.champion_score,
            "delta": outcome.delta,
            "progress": outcome.progress,
            "reveals": outcome.reveals,
            "reward": reward,
        }
        if outcome.verdict != "void":  # a void review pays nothing from the pool
            fee = p.validator_fee
            for validator, c, h, q, _ in reveals if fee else []:  # seat order, while the pool lasts
                if fee > self.pool:
                    break
                if paid_in_band((c, h, q), outcome, p.band_bp):
                    self.pool -= fee
                    self.credit(validator, fee)
                    done.fees.append((validator, fee))
            bounty = min(fee * p.keeper_bounty_bp // BP, self.pool)
            if bounty:
                self.pool -= bounty
                self.credit(caller, bounty)
                done.bounty.append((caller, bounty))
        outliers = [reveals[n][4] for n in outvoted(ballots, outcome, p.slash_band)]
        for i in sorted(silent + missed + outliers):  # every review, void included
            seat = self.seats[i]
            assert seat is not None
            who = seat.validator
            bp = p.slash_miss_bp if i in missed else p.slash_no_reveal_bp
            slash = self.vstakes[who] * bp // BP
            self.vstakes[who] -= slash
            self.pool += slash
            if i in outliers:
                done.outvoted.append((who, slash))
            else:  # no reveal, committed or not: a miss
                seat.misses += 1
                if i in missed:
                    done.missed.append((who, slash, seat.misses))
                else:
                    seat.ballot = Ballot.NONE
                    done.silent.append((who, slash, seat.misses))
            if self.vstakes[who] < p.validator_stake or seat.misses >= p.max_misses:
                done.unseated.append((who, self.remove_validator(who), True))
        self._end_turn(ts, voided=outcome.verdict == "void")
        return done

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
        return TaskState(Phase(v[0]), *v[1:12], bytes(v[12]), bytes(v[13]), *v[14:])

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
        "slash_band": st.sampled_from([300, 1000]),
        "advance_band": st.sampled_from([0, 100, 300]),
        "max_misses": st.sampled_from([1, 2, 3, 3]),
        "min_gain": st.sampled_from([1, 10]),
        "slash_timeout_bp": st.sampled_from([0, 1000, 5000]),
        "slash_reject_bp": st.sampled_from([0, 2000, 10_000]),
        "slash_no_reveal_bp": st.sampled_from([1000, 10_000]),
        "slash_miss_bp": st.sampled_from([0, 500, 500, 5000]),
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

# The world behind the ballots. True qualities stay in [QMIN, QMAX] and biases in
# [BIAS_MIN, BIAS_MAX], so an honest score (quality + bias) never clamps at 0 or 10000: every
# honest validator measures a child's delta to the champion, and its progress over its parent, as
# the difference of true qualities.
QMIN, QMAX = 1500, 8000
BIAS_MIN, BIAS_MAX = -1000, 500
GUESS = 5000  # a lazy validator's three equal guesses
LIARS = ("booster", "sinker", "lazy")  # reveal something other than what they measured
ABSENT = ("silent", "squatter")  # commit and never reveal; never commit
BEHAVIOUR = st.sampled_from(["honest"] * 10 + [*LIARS, *ABSENT, "squatter"])  # 5 in 8 honest
BIAS = st.sampled_from([-300, 0, 200])
# What a child is, relative to the champion (or the head, for `walk` and `creep`): see
# `child_quality`.
QUALITY = st.sampled_from(
    ["gain", "gain", "min_gain", "small_gain", "creep", "copy", "recover", "dip", "edge", "walk"]
    + ["walk", "held", "slash_edge", "rejected", "junk"]
)
# What a relayer submits in `progress`: the drawn quality, or a plan every turn: walk the head
# down, dip and then recover to the head's parent, aim at the advance band's edge, or creep up
# from the head in steps below minGain (uncrowned heads above the champion, then a child crowned
# over one: its reward is for its own step, min(delta, progress), not for the uncrowned one's).
PROGRAM = st.sampled_from(["any", "any", "walker", "dipper", "poisoner", "creeper"])
PROGRESS_COPIES = 4  # rules that take the relay one step on
ROUND_COPIES = 3  # rules that play a whole round
STALL = st.sampled_from([False, False, False, True])  # the holder lets its turn run out
ABSENT_ONCE = st.sampled_from([False] * 5 + [True])  # one validator skips this review
MODES = st.lists(st.sampled_from(["right"] * 8 + ["silent", "wrong_salt"]), min_size=1, max_size=3)
# State of the machine that the end-of-example probe changes and gives back.
PROBE_STATE = (
    "model", "nonces", "active", "finalized", "quality", "kind_of", "honest", "behaviour", "bias",
    "labels", "reveals_tried", "shares_seen", "rewards_since",
)  # fmt: skip


def measured(quality: int | None, bias: int) -> int:
    """What an honest validator whose data is `bias` harder or easier scores a model at."""
    if quality is None:  # junk: weights that do not load score 0
        return 0
    score = quality + bias
    assert 0 <= score <= BP, f"harness: quality {quality} with bias {bias} leaves the score range"
    return score


def vote(kind: str, child: int, champion: int, parent: int) -> tuple[int, int, int]:
    """The ballot a validator of `kind` commits when it measured (child, champion, parent)."""
    if kind == "booster":  # vouches for any child: 500 over the champion and over its parent
        boosted = min(champion + 500, BP)
        return boosted, champion, boosted - 500
    if kind == "sinker":  # votes every child down: 2000 below what it measured, and its parent
        sunk = max(child - 2000, 0)
        return sunk, champion, min(sunk + 2000, BP)
    if kind == "lazy":  # skips the work
        return GUESS, GUESS, GUESS
    return child, champion, parent


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
        # the world
        self.quality: dict[bytes, int | None] = {}  # true quality of every model (None: junk)
        self.kind_of: dict[bytes, str] = {}  # what each child was drawn to be
        self.honest: dict[bytes, bool] = {}  # accepted models: decided as honest ballots would
        self.behaviour: dict[int, str] = dict.fromkeys(NEWCOMERS, "honest")
        self.program: dict[int, str] = {}  # relayers'
        self.bias: dict[int, int] = dict.fromkeys(NEWCOMERS, 0)
        # shares seen by the last check, and rewards paid since
        self.shares_seen: dict[str, int] = {}
        self.rewards_since: Counter[str] = Counter()
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
                self.honest_child_is_crowned_on_chain()
                self.everyone_leaves()
        finally:
            self.tester.revert_to_snapshot(self.snapshot)

    # ------------------------------------------------------------------ transactions

    def next_timestamp(self) -> int:
        return int(self.tester.get_block_by_number("pending")["timestamp"])

    def travel_to(self, timestamp: int) -> None:
        """Make the next block carry `timestamp`, unless the clock is already past it."""
        if timestamp > self.next_timestamp():
            self.tester.time_travel(timestamp)

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

    def expect_events(
        self, receipt: TxReceipt, name: str, keys: tuple[str, ...], expected: list[tuple[Any, ...]]
    ) -> None:
        """The `name` events of `receipt`, as tuples of `keys`, are exactly `expected`."""

        def plain(value: Any) -> Any:
            return value if isinstance(value, str) else bytes(value) if isinstance(value, bytes) else int(value)  # fmt: skip

        emitted = [tuple(plain(e[k]) for k in keys) for e in self.events(receipt, name)]
        assert emitted == expected, f"{name}: chain {emitted}, model {expected}"

    # ------------------------------------------------------------------ helpers

    def pick(self, choice: int | str, candidates: Iterable[int], fallback: Iterable[int]) -> int:
        """`choice` itself, or for AUTO the first candidate (else the first fallback)."""
        if choice != AUTO:
            return int(choice)
        return next(iter(candidates), next(iter(fallback)))

    def ballot_of(self, who: int) -> Ballot:
        """`who`'s ballot in the current round (NONE without a seat)."""
        m = self.model
        assert m is not None
        index = m.seat_of(self.addr[who])
        seat = m.seats[index] if index >= 0 else None
        return seat.ballot if seat is not None and seat.round == m.round else Ballot.NONE

    def index_of(self, address: str) -> int | None:
        return next((i for i, a in self.addr.items() if a == address), None)

    def record(self, digest: bytes) -> tuple[Any, ...]:
        r = self.lens.call("recordOf", self.task, digest)
        return (r[0], r[1], r[2], Status(r[3]), r[4], r[5])

    # ------------------------------------------------------------------ the world

    def quality_of(self, digest: bytes) -> int:
        """A model's true quality, junk counted as the floor (children are drawn relative to it)."""
        quality = self.quality[digest]
        return QMIN if quality is None else quality

    def child_quality(self, kind: str) -> int | None:
        """The true quality of a new child of `kind`: a gain over the champion below, at or above
        minGain; a re-encoded copy of the champion; a recovery to the head's parent; a dip within
        the advance band; a child on its edge; a walk one advance band down from the head; a
        creep half of minGain up from the head; held; on the slash band's edge; below it; junk;
        or (`probe`) an honest improvement of minGain."""
        m = self.model
        assert m is not None
        p = m.p
        champion = self.quality_of(m.champion)
        if kind == "junk":
            return None
        if kind == "probe":  # champion + minGain; any real model beats junk
            return QMIN if self.quality[m.champion] is None else champion + p.min_gain
        target = {
            "gain": champion + 250,
            "min_gain": champion + p.min_gain,
            "small_gain": champion + p.min_gain - 1,
            "copy": champion,
            "recover": self.quality_of(m.past_heads[-1]) if m.past_heads else champion,
            "dip": champion - max(p.advance_band // 2, 1),
            "edge": champion - p.advance_band,
            "walk": self.quality_of(m.head) - p.advance_band,
            "creep": self.quality_of(m.head) + max(p.min_gain // 2, 1),
            "held": champion - p.advance_band - 1,
            "slash_edge": champion - p.slash_band,
            "rejected": champion - p.slash_band - 1,
        }[kind]
        return min(max(target, QMIN), QMAX)

    def measured_ballot(self, who: int) -> tuple[int, int, int]:
        """What `who` measures on its data: the child under review, the champion and the child's
        parent, which is the head for as long as the review lasts (a submission names the head
        as its parent, and only a finalize moves the head)."""
        m = self.model
        assert m is not None
        bias = self.bias[who]
        return (
            measured(self.quality[m.lineage[-1]], bias),
            measured(self.quality[m.champion], bias),
            measured(self.quality[m.head], bias),
        )

    def ballot_for(self, who: int, kind: str) -> tuple[int, int, int]:
        """The scores `who` commits: by its behaviour (`own`), as another behaviour, or with one
        of the three scores out of range."""
        scores = self.measured_ballot(who)
        if kind == "out_of_range":
            out = list(scores)
            out[self.labels % 3] = BP + 1
            return out[0], out[1], out[2]
        return vote(self.behaviour[who] if kind == "own" else kind, *scores)

    # ------------------------------------------------------------------ set-up

    @initialize(params=PARAMS, funding=FUNDING, relayers=st.lists(st.sampled_from(RELAYERS), unique=True, min_size=1), validators=st.lists(st.sampled_from(SEAT_SEEKERS), unique=True, min_size=2, max_size=3), behaviours=st.fixed_dictionaries(dict.fromkeys(SEAT_SEEKERS, BEHAVIOUR)), biases=st.fixed_dictionaries(dict.fromkeys(SEAT_SEEKERS, BIAS)), programs=st.fixed_dictionaries(dict.fromkeys(RELAYERS, PROGRAM)))  # fmt: skip
    @tracked
    def create_task(
        self,
        params: dict[str, Any],
        funding: int,
        relayers: list[int],
        validators: list[int],
        behaviours: dict[int, str],
        biases: dict[int, int],
        programs: dict[int, str],
    ) -> None:
        params["quorum"] = min(params["quorum"], params["max_validators"])
        params["advance_band"] = min(params["advance_band"], params["slash_band"])
        p = make_params(**params)
        ts = self.next_timestamp()
        receipt = self.act(PUBLISHER, set(), "createTask", p.as_tuple(), value=funding)
        assert receipt is not None
        (created,) = self.events(receipt, "TaskCreated")
        self.task = int(created["taskId"])
        assert self.task == 1
        genesis, codec = p.genesis_cid[4:], p.genesis_cid[1]
        m = Model(
            p=p,
            pool=funding,
            head=genesis,
            head_codec=codec,
            head_score=p.genesis_score,
            champion=genesis,
            champion_codec=codec,
            champion_score=p.genesis_score,
            seats=[None] * p.max_validators,
            paid_in=funding,
        )
        m.records[genesis] = (self.addr[PUBLISHER], 0, ts, Status.GENESIS, p.genesis_score, codec)
        m.lineage.append(genesis)
        self.model = m
        self.quality[genesis] = p.genesis_score
        self.honest[genesis] = True
        self.behaviour.update(behaviours)
        self.bias.update(biases)
        self.program = programs
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
            + ["void_retry", "stale_parent", "seen_child", "head_child", "recoded_child"]
            + ["wrong_round", "zero_samples", "bad_cid"]
        ),
        quality=QUALITY,
    )
    @tracked
    def submit(self, who: int | str, kind: str, quality: str) -> None:
        """Submit a child: a fresh one of `quality`, the latest submission again (its relayer's
        own void child may come back), or a malformed or refused one."""
        m = self.model
        assert m is not None
        holder = self.index_of(m.holder)
        actor = self.pick(who, [holder] if holder is not None else [], RELAYERS)
        self.labels += 1
        round_ = m.round
        parent = m.head
        samples = 100
        child = cid_of(f"child-{self.labels}", 0x55 if self.labels % 2 else 0x70)
        latest = m.lineage[-1]
        if kind == "void_retry":  # the latest submission, as it was sent
            child = bytes([1, m.records[latest][5], 0x12, 0x20]) + latest
        elif kind == "stale_parent":
            parent = m.past_heads[-1] if m.past_heads else keccak(b"no such parent")
        elif kind == "seen_child":  # the genesis or any earlier submission
            child = bytes([1, 0x55, 0x12, 0x20]) + m.lineage[self.labels % len(m.lineage)]
        elif kind == "head_child":
            child = bytes([1, m.head_codec, 0x12, 0x20]) + m.head
        elif kind == "recoded_child":  # the latest digest under the other codec: still that child
            child = bytes([1, 0x70 if m.records[latest][5] == 0x55 else 0x55, 0x12, 0x20]) + latest
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
        what = f"submitRelay({quality if kind == 'fresh' else kind})"
        if self.act(actor, expected, "submitRelay", *args, what=what):
            digest = child[4:]
            m.submit(address, child, ts)
            if digest not in self.quality:
                self.quality[digest] = self.child_quality(quality)
                self.kind_of[digest] = quality
            assert self.record(digest) == (address, round_, ts, Status.PENDING, 0, child[1])

    # ------------------------------------------------------------------ validators

    @tracked
    def register_validator(self, who: int, stake: str) -> None:
        m = self.model
        assert m is not None
        minimum = m.p.validator_stake
        value = {"below": minimum - 1, "min": minimum, "double": 2 * minimum}[stake]
        address = self.addr[who]
        ts = self.next_timestamp()
        expected = m.expect_register(address, value)
        if self.act(who, expected, "registerValidator", self.task, value=value):
            m.register(address, value, ts)

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
        ballot=st.sampled_from(["own"] * 4 + ["honest", *LIARS, "out_of_range"]),
        wrong_round=st.sampled_from([False] * 5 + [True]),
    )
    @tracked
    def commit(self, who: int | str, ballot: str, wrong_round: bool) -> None:
        m = self.model
        assert m is not None
        ts = self.next_timestamp()
        ready = [i for i in SEAT_SEEKERS if not m.expect_commit(self.addr[i], m.round, ts)]
        actor = self.pick(who, ready, SEAT_SEEKERS)
        address = self.addr[actor]
        scores = self.ballot_for(actor, ballot)
        round_ = m.round + 1 if wrong_round else m.round
        salt = keccak(text=f"salt:{address}:{round_}:{self.labels}")
        commitment = commitment_for(self.task, round_, *scores, salt, address)
        expected = m.expect_commit(address, round_, ts)
        if self.act(actor, expected, "commitScore", self.task, round_, commitment):
            m.commit(address, commitment, scores, salt)

    @rule(
        who=st.sampled_from([AUTO, AUTO, AUTO, *SEAT_SEEKERS]),
        mode=st.sampled_from(
            ["right"] * 4
            + ["wrong_salt", "wrong_child", "wrong_champion", "wrong_parent", "wrong_round"]
        ),
    )
    @tracked
    def reveal(self, who: int | str, mode: str) -> None:
        m = self.model
        assert m is not None
        committed = [i for i in SEAT_SEEKERS if self.ballot_of(i) == Ballot.COMMITTED]
        actor = self.pick(who, committed, SEAT_SEEKERS)
        address = self.addr[actor]
        child, champion, parent, salt = m.ballots.get(address, (5000, 5000, 5000, b"\0" * 32))
        round_ = m.round
        if mode == "wrong_salt":
            salt = keccak(salt)
        elif mode == "wrong_child":
            child = child + 1 if child < BP else child - 1
        elif mode == "wrong_champion":
            champion = champion + 1 if champion < BP else champion - 1
        elif mode == "wrong_parent":  # the commitment binds the parent's score too
            parent = parent + 1 if parent < BP else parent - 1
        elif mode == "wrong_round":
            round_ += 1
        ts = self.next_timestamp()
        ballot = (child, champion, parent)
        expected = m.expect_reveal(self.task, address, round_, ballot, salt, ts)
        what = f"revealScore({mode})"
        receipt = self.act(actor, expected, "revealScore", self.task, round_, *ballot, salt, what=what)  # fmt: skip
        if receipt:
            m.reveal(address, ballot)
            keys = ("validator", "childScore", "championScore", "parentScore")
            self.expect_events(receipt, "ScoreRevealed", keys, [(address, *ballot)])

    # ------------------------------------------------------------------ verdict

    @rule(who=st.sampled_from([AUTO, AUTO, *EVERYONE]))
    @tracked
    def finalize(self, who: int | str) -> None:
        """Finalize; besides the model's effects and events: a void review moves no money out of
        the pool and the holder keeps the turn; a crowned child beat the champion by minGain; a
        review decided as honest ballots would have decided it measured true qualities, and a
        crowned child so decided is paid for what it truly added itself: min(delta, progress),
        less than its delta when its parent is an uncrowned head above the champion."""
        m = self.model
        assert m is not None
        p = m.p
        actor = self.pick(who, [KEEPER], EVERYONE)
        ts = self.next_timestamp()
        child, champion, holder, round_, pool = m.lineage[-1], m.champion, m.holder, m.round, m.pool
        parent = m.head  # the head the child was submitted on (only a finalize moves it)
        kept = m.kept
        reveals, _, _ = m.tally()
        revealers = [self.index_of(validator) for validator, *_ in reveals]
        honest_ballots = [self.measured_ballot(i) for i in revealers if i is not None]
        honest = review(honest_ballots, p.quorum, p.slash_band, p.advance_band, p.min_gain)
        receipt = self.act(actor, m.expect_finalize(ts), "finalize", self.task)
        if receipt is None:
            return
        done = m.finalize(self.addr[actor], ts)
        outcome = done.outcome

        (emitted,) = self.events(receipt, "RoundFinalized")
        emitted = {k: (v if k == "relayer" else int(v)) for k, v in emitted.items()}
        assert emitted == done.event, f"RoundFinalized {emitted}, model {done.event}"
        self.expect_events(receipt, "ChampionCrowned", ("relayer", "digest", "score", "gain"), done.crowned)  # fmt: skip
        self.expect_events(receipt, "RelayerSlashed", ("relayer", "amount"), done.relayer_slashed)
        self.expect_events(receipt, "ValidatorPaid", ("validator", "fee"), done.fees)
        self.expect_events(receipt, "KeeperPaid", ("keeper", "bounty"), done.bounty)
        self.expect_events(receipt, "ValidatorSlashed", ("validator", "amount", "misses"), done.silent)  # fmt: skip
        self.expect_events(receipt, "ValidatorOutvoted", ("validator", "amount"), done.outvoted)
        self.expect_events(receipt, "ValidatorMissed", ("validator", "amount", "misses"), done.missed)  # fmt: skip
        self.expect_events(receipt, "ValidatorLeft", ("validator", "refund", "forced"), done.unseated)  # fmt: skip
        assert self.record(child) == m.records[child]
        self.finalized.append(emitted)
        self.rewards_since[holder] += emitted["reward"]
        OUTCOMES["verdict", outcome.verdict] += 1
        OUTCOMES[f"verdict on {self.kind_of.get(child, '?')}", outcome.verdict] += 1
        OUTCOMES.update(("validator", f"missed ({misses} in a row)") for *_, misses in done.missed)
        OUTCOMES.update(("validator", f"silent ({misses} in a row)") for *_, misses in done.silent)
        OUTCOMES.update(("validator", "outvoted") for _ in done.outvoted)
        for validator, _, _ in done.unseated:
            gone = any(
                v == validator and k >= p.max_misses for v, _, k in done.missed + done.silent
            )
            OUTCOMES["validator", "unseated: missed maxMisses" if gone else "unseated: stake"] += 1

        if outcome.verdict == "void":
            state = self.lens.task_state(self.task)
            assert state.pool == pool + done.charged, "a void review moved money out of the pool"
            assert not done.fees and not done.bounty and not emitted["reward"]
            assert state.round == round_ + 1 and m.kept != kept  # kept once, then passed on
            if m.kept:
                assert (state.phase, state.holder) == (Phase.TURN, holder)
        elif emitted["reward"]:
            assert outcome.crowned
        decided_honestly = (honest.verdict, honest.delta) == (outcome.verdict, outcome.delta)
        if outcome.verdict == "accepted":
            assert outcome.delta >= -p.advance_band
            self.honest[child] = decided_honestly
        if outcome.crowned:
            assert outcome.delta >= p.min_gain and m.champion == child != champion
            old, new, base = self.quality[champion], self.quality[child], self.quality[parent]
            if decided_honestly and old is not None and new is not None:
                assert new - old == outcome.delta >= p.min_gain, f"crowned {new} over {old}"
            # Paid for its own step: over the champion and over its parent, whichever is less.
            # An uncrowned head above the champion (a step below minGain, or a lazy quorum's
            # acceptance) is ground the child did not gain itself; a copy of it gains nothing.
            # Computed here from true qualities, not from the model's mirror.
            paid_honestly = decided_honestly and honest.progress == outcome.progress
            if paid_honestly and None not in (old, new, base):
                assert outcome.progress == new - base, f"progress {outcome.progress}: {new - base}"
                own = min(new - old, new - base)
                paid = 0
                if own > 0:
                    paid = (p.base_reward if own >= p.min_gain else 0) + p.reward_per_point * own
                assert emitted["reward"] == min(pool, paid), (own, emitted, pool)
                if parent != champion:
                    why = "nothing" if own <= 0 else "progress" if own < new - old else "delta"
                    OUTCOMES["crowned over an uncrowned head", f"paid for {why}"] += 1
        else:
            assert m.champion == champion

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
        action=st.sampled_from(["harder", "harder", "easier", "become"]),
        who=st.sampled_from(SEAT_SEEKERS),
        behaviour=BEHAVIOUR,
    )
    @tracked
    def world_action(self, action: str, who: int, behaviour: str) -> None:
        """Every validator's held-out data gets harder (or easier) at once, as when the validator
        set changes; or one validator changes its ways."""
        if action == "become":
            self.behaviour[who] = behaviour
            return
        shift = -700 if action == "harder" else 300
        for i, bias in self.bias.items():
            self.bias[i] = min(max(bias + shift, BIAS_MIN), BIAS_MAX)

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
        self,
        quality: str,
        retry: bool,
        absent: bool,
        modes: list[str],
        late: bool,
        stall: bool,
        pay: bool,
    ) -> None:
        """The relay's next step: the holder submits a child of `quality` (or its own void child
        again, when `retry`; or, `stall`ing, lets its turn run out and is skipped, maybe by
        itself), the seated validators commit what their behaviour says (squatters never do,
        and with `absent` one of them skips this review), reveal by `modes` (silent ones never
        do), the keeper finalizes. The clock lands on each window's last second before it moves
        past it (unless `late`), and there the action the edge still forbids is tried first: a
        skip on the turn's deadline, a reveal and a finalize on the commit window's end, a
        finalize on the reveal window's end (with a ballot still unrevealed). Before a
        submission the consumer may `pay` for the model, so that royalties accrue between one
        contributor's rewards."""
        m = self.model
        assert m is not None
        ts = self.next_timestamp()
        committed = [i for i in SEAT_SEEKERS if self.ballot_of(i) == Ballot.COMMITTED]
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
                self.seat_a_quorum()
                retry = retry and m.can_resubmit(m.holder, m.lineage[-1])
                self.submit(AUTO, "void_retry" if retry else "fresh", self.plan(quality))
        elif ts <= m.commit_end:
            ready = [i for i in SEAT_SEEKERS if not m.expect_commit(self.addr[i], m.round, ts)]
            voters = [i for i in ready if self.behaviour[i] != "squatter"][int(absent) :]
            for who in voters:
                self.commit(who, "own", False)
            if not voters:
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
                if mode != "silent" and self.behaviour[who] != "silent":
                    self.reveal(who, mode)
        elif m.expect_finalize(ts):
            if ts == m.reveal_end:
                self.finalize(KEEPER)
            self.advance("reveal", 1 if late or ts == m.reveal_end else 0)
        else:
            self.finalize(KEEPER)

    def plan(self, quality: str) -> str:
        """The holder's next child: `quality`, or what its attack program says."""
        m = self.model
        assert m is not None
        holder = self.index_of(m.holder)
        program = self.program.get(holder, "any") if holder is not None else "any"
        if program == "walker":
            return "walk"
        if program == "dipper":
            return "dip" if m.head == m.champion else "recover"
        if program == "poisoner":
            return "edge"
        if program == "creeper":
            return "creep"
        return quality

    def seat_a_quorum(self) -> None:
        """Validators take free seats while those who could review the holder's child are fewer
        than a quorum (behaviours as drawn: squatters and liars too)."""
        m = self.model
        assert m is not None
        reviewers = [s for s in m.seats if s is not None and s.validator != m.holder]
        waiting = [i for i in VALIDATORS if m.seat_of(self.addr[i]) < 0]
        for who in waiting[: max(m.p.quorum - len(reviewers), 0)]:
            if None in m.seats:
                self.register_validator(who, "min")

    def relay_moves_on(
        self,
        quality: str,
        retry: bool,
        absent: bool,
        modes: list[str],
        late: bool,
        stall: bool,
        pay: bool,
    ) -> None:
        self.progress(quality, retry, absent, modes, late, stall, pay)

    def relay_plays_a_round(
        self,
        quality: str,
        retry: bool,
        absent: bool,
        modes: list[str],
        late: bool,
        stall: bool,
        pay: bool,
    ) -> None:
        """`progress` until the round ends: a whole review (or a skipped turn) in one step, so
        that an example reaches the attacks that take several rounds (walks, dip and recover,
        missed commits in a row) while the invariants are checked once."""
        m = self.model
        assert m is not None
        round_ = m.round
        for _ in range(16):  # a round takes at most a dozen steps
            self.progress(quality, retry, absent, modes, late, stall, pay)
            if m.round != round_ or m.phase == Phase.IDLE:
                return
        raise AssertionError(f"round {round_} did not end: {m.phase}")

    # The same rules under several names: Hypothesis picks among rules uniformly, and its swarm
    # testing turns each name off for whole examples at random.
    for _copy in range(PROGRESS_COPIES):
        locals()[f"relay_moves_on_{_copy}"] = rule(quality=QUALITY, retry=st.booleans(), absent=ABSENT_ONCE, modes=MODES, late=st.booleans(), stall=STALL, pay=st.booleans())(relay_moves_on)  # fmt: skip
    for _copy in range(ROUND_COPIES):
        locals()[f"relay_plays_a_round_{_copy}"] = rule(quality=QUALITY, retry=st.booleans(), absent=ABSENT_ONCE, modes=MODES, late=st.booleans(), stall=STALL, pay=st.booleans())(relay_plays_a_round)  # fmt: skip
    del _copy

    # ------------------------------------------------------------------ observation

    @invariant()
    @tracked
    def chain_matches_model(self) -> None:
        m = self.model
        if m is None:
            return
        self.steps += self.depth == 1  # not the checks the probe and the exit make
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
            m.champion_score,
            m.head_score,
            bytes([1, m.head_codec, 0x12, 0x20]) + m.head,
            bytes([1, m.champion_codec, 0x12, 0x20]) + m.champion,
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
            state.champion_score,
            state.head_score,
            state.head_cid,
            state.champion_cid,
            state.validator_count,
            state.total_shares,
            state.acc_per_share,
        )
        assert actual_state == expected_state, f"taskState {state}\nmodel {expected_state}"

        # head and champion: models the relay accepted (or the genesis); the head is the champion
        # or was accepted against it within the advance band
        assert lens.call("champion", self.task) == (state.champion_cid, state.champion_score)
        for digest in {m.head, m.champion}:
            assert self.record(digest)[3] in (Status.GENESIS, Status.ACCEPTED), digest.hex()
        if m.head != m.champion:
            assert m.head_delta >= -p.advance_band, f"head accepted at delta {m.head_delta}"

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

        # shares only grow with crowned children, each by exactly its reward
        assert set(self.rewards_since) <= set(accounts)
        for address, account in accounts.items():
            grown = account.shares - self.shares_seen.get(address, 0)
            assert grown == self.rewards_since[address], f"shares of {address} grew by {grown}"
            self.shares_seen[address] = account.shares
        self.rewards_since.clear()

        # the seats, with their ballots and missed-commit counts
        seats = [tuple(seat) for seat in lens.call("seatsOf", self.task)]
        expected_seats = [s.view() if s else (ZERO_ADDRESS, 0, 0, 0, 0, 0, 0) for s in m.seats]
        assert seats == expected_seats, f"seats {seats}\nmodel {expected_seats}"
        for seat in m.seats:
            assert seat is None or seat.misses < p.max_misses, f"{seat} kept its seat"

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

        # no reward without a crowned child that also progressed on its parent; rewards are
        # exactly the royalty shares
        for event in self.finalized:
            if event["reward"]:
                assert event["verdict"] == Status.ACCEPTED and event["delta"] >= p.min_gain, event
                assert event["progress"] > 0, event
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

    @invariant()
    @tracked
    def the_head_stays_near_the_champion(self) -> None:
        """A head decided by an honest majority is truly no more than advanceBand below the
        champion, as every current honest validator (and unbiased data) measures it."""
        m = self.model
        if m is None or m.head == m.champion or not self.honest[m.head]:
            return
        seated = [i for i in self.bias if m.seat_of(self.addr[i]) >= 0]
        biases = [0] + [self.bias[i] for i in seated if self.behaviour[i] == "honest"]
        head, champion = self.quality[m.head], self.quality[m.champion]
        for bias in biases:
            gap = measured(head, bias) - measured(champion, bias)
            assert gap >= -m.p.advance_band, f"head {gap} bp below the champion"

    @invariant()
    @tracked
    def honest_child_would_be_crowned(self) -> None:
        """No reachable state rejects every honest child forever: with honest validators in every
        seat that is free or will be freed (a squatter's or a silent one's after maxMisses reviews
        without a reveal), and the others voting as they do, the model's verdict crowns a child
        that beats the champion by minGain on each validator's data, unless liars outvote the
        honest (the documented bound)."""
        m = self.model
        if m is None:
            return
        p = m.p
        holder = m.holder
        if m.seat_of(holder) >= 0 and p.max_validators - 1 < p.quorum:
            # Its own seat keeps the holder's reviews from a quorum: after at most two void ones
            # (a void review keeps the turn once in a row) the next relayer's turn comes, or that
            # of a relayer without a seat that joins.
            holder = next((a for a in m.queue if m.seat_of(a) < 0), ZERO_ADDRESS)
            OUTCOMES["honest child (model)", "after the seated holder's turn"] += 1
        child = self.child_quality("probe")
        champion, head = self.quality[m.champion], self.quality[m.head]  # the head: its parent
        ballots = []
        liars = 0
        for seat in m.seats:
            if seat is not None and seat.validator == holder:
                continue  # the holder's own seat is excused from its review
            who = None if seat is None else self.index_of(seat.validator)
            kind = "honest" if who is None else self.behaviour[who]
            kind = "honest" if kind in ABSENT else kind
            bias = 0 if who is None else self.bias[who]
            scores = measured(child, bias), measured(champion, bias), measured(head, bias)
            ballots.append(vote(kind, *scores))
            liars += kind in LIARS
        assert len(ballots) >= p.quorum, f"{len(ballots)} seats for a quorum of {p.quorum}"
        if liars > (len(ballots) - 1) // 2:
            OUTCOMES["honest child (model)", "outvoted by liars"] += 1
            return
        outcome = review(ballots, p.quorum, p.slash_band, p.advance_band, p.min_gain)
        assert outcome.crowned, f"an honest child would be {outcome}"
        assert champion is None or outcome.delta == p.min_gain, outcome
        # and measured against its parent as the honest do (paid for that step, when positive)
        assert None in (champion, head) or outcome.progress == child - head, outcome

    # ------------------------------------------------------------------ the end

    def honest_child_is_crowned_on_chain(self) -> None:
        """The honest-child check played on chain from the example's last state, in a snapshot
        that is then rolled back (with the machine's own state)."""
        saved = copy.deepcopy({name: getattr(self, name) for name in PROBE_STATE})
        snapshot = self.tester.take_snapshot()
        try:
            OUTCOMES["honest child (chain)", self.play_honest_rounds()] += 1
        finally:
            self.tester.revert_to_snapshot(snapshot)
            for name, value in saved.items():
                setattr(self, name, value)

    def reach_a_turn(self, margin: int) -> None:
        """Finish any review, fill an idle queue, skip a turn that expires within `margin`
        seconds: a holder may submit after `margin` more transactions."""
        m = self.model
        assert m is not None
        while True:
            ts = self.next_timestamp()
            if m.phase == Phase.REVIEW:
                self.travel_to(m.reveal_end + 1)
                self.finalize(KEEPER)
            elif m.phase == Phase.IDLE:
                self.join(next(i for i in RELAYERS if self.addr[i] not in m.stakes), "min")
            elif ts + margin > m.deadline:
                self.travel_to(m.deadline + 1)
                self.skip_turn(KEEPER)
            else:
                return

    def play_honest_rounds(self) -> str:
        """Honest newcomers take every free seat and the holders submit honest children, until
        one is crowned; only liars outvoting the honest may prevent it. Rounds are void while
        squatters and silent validators hold seats; they lose them after maxMisses reviews without
        a reveal, whatever their stake. A holder whose own seat keeps its reviews from a quorum has
        two void ones (not misses: it may not review its own child), then the turn passes on."""
        m = self.model
        assert m is not None
        p = m.p
        rounds = p.max_misses + 8 + 2
        for _ in range(rounds):
            self.reach_a_turn(margin=len(NEWCOMERS))
            if all(m.seat_of(a) >= 0 for a in m.queue):  # a relayer without a seat joins
                self.join(next(i for i in RELAYERS if i != DUAL and self.addr[i] not in m.stakes), "min")  # fmt: skip
            for who in NEWCOMERS:
                if None in m.seats and m.seat_of(self.addr[who]) < 0:
                    self.behaviour[who], self.bias[who] = "honest", 0
                    self.register_validator(who, "min")
            self.submit(AUTO, "fresh", "probe")
            assert m.phase == Phase.REVIEW
            seated = [i for i in (*SEAT_SEEKERS, *NEWCOMERS) if m.seat_of(self.addr[i]) >= 0]
            voters = [
                i for i in seated if self.addr[i] != m.holder and self.behaviour[i] != "squatter"
            ]
            for who in voters:
                self.commit(who, "own", False)
            self.travel_to(m.commit_end + 1)
            revealers = [i for i in voters if self.behaviour[i] != "silent"]
            for who in revealers:
                self.reveal(who, "right")
            if len(revealers) < len(voters):
                self.travel_to(m.reveal_end + 1)
            child, champion, head = (self.quality[d] for d in (m.lineage[-1], m.champion, m.head))
            self.finalize(KEEPER)  # among others: a crowned child is paid for min(delta, progress)
            self.chain_matches_model()
            event = self.finalized[-1]
            if event["verdict"] == Status.VOID:
                continue
            if sum(self.behaviour[i] in LIARS for i in revealers) > (len(revealers) - 1) // 2:
                return "outvoted by liars"
            assert event["verdict"] == Status.ACCEPTED and event["delta"] >= p.min_gain, event
            assert champion is None or event["delta"] == p.min_gain, event
            assert None in (champion, head, child) or event["progress"] == child - head, event
            return "crowned"
        raise AssertionError(f"no honest child crowned in {rounds} rounds")

    def everyone_leaves(self) -> None:
        """Everyone can get out: finish a review, leave the queue (the holder gives up its new
        turn) and the seats, claim royalties, withdraw. Each step must succeed, and what stays in
        the contract is the pool and the royalty dust."""
        m = self.model
        assert m is not None
        while m.queue:
            if m.phase == Phase.REVIEW:
                self.travel_to(m.reveal_end + 1)
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
        database=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )


def run_seed() -> int:
    """DERELAY_HYPOTHESIS_SEED to replay a run, else a fresh seed."""
    return int(os.environ.get("DERELAY_HYPOTHESIS_SEED") or int.from_bytes(os.urandom(8)))


@pytest.fixture
def environment(chain: Chain) -> Environment:
    """The contract deployed, and the storage slot of its queue links found once."""
    decoder = decoder_for()
    accounts = {i: Account.from_key(TEST_KEYS[i]) for i in (*EVERYONE, *NEWCOMERS)}
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


def run_machine(
    environment: Environment, examples: int, steps: int, request: pytest.FixtureRequest
) -> None:
    """Run the machine under the profile with a seed of its own; report its size and the seed."""
    run = run_seed()
    machine = seed(run)(type("DeRelayMachine", (RelayMachine,), {"env": environment}))
    replay = f"DERELAY_HYPOTHESIS_SEED={run} pytest {request.node.nodeid}"
    OUTCOMES.clear()
    STEPS.clear()
    started = time.perf_counter()
    try:
        run_state_machine_as_test(machine, settings=profile(examples, steps))
    except BaseException as exc:
        exc.add_note(f"Hypothesis seed {run}; replay: {replay}")
        raise
    finally:
        request.node.user_properties.append(
            (
                CI_FIGURE,
                f"Hypothesis machine: {len(STEPS)} examples, {sum(STEPS)} steps, "
                f"{time.perf_counter() - started:.0f} s, seed {run} (replay: {replay})",
            )
        )
    print(
        f"stateful run: {time.perf_counter() - started:.1f} s, {len(STEPS)} examples, "
        f"{sum(STEPS)} steps (at most {max(STEPS, default=0)} in one); outcomes:"
    )
    for (action, outcome), count in sorted(OUTCOMES.items()):
        print(f"  {action:32} {outcome:24} {count}")


def test_relay_state_machine(environment: Environment, request: pytest.FixtureRequest):
    run_machine(environment, DEFAULT_EXAMPLES, DEFAULT_STEPS, request)


@pytest.mark.slow
def test_relay_state_machine_long(environment: Environment, request: pytest.FixtureRequest):
    run_machine(environment, SLOW_EXAMPLES, SLOW_STEPS, request)


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
