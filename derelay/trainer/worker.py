"""The worker: relayer, validator and keeper of one task, in one loop.

Each `tick` reads the chain and does what is due, journaling before every irreversible step:
- relayer: join the queue; on its turn fetch the head (verified), train, add and pin the child and
  its relay card, submit;
- validator: take a seat; score each open submission on its own held-out data, commit, then
  reveal in the reveal window;
- keeper: skip an expired turn, finalize a review that is due.
No tick waits on the chain for more than a few seconds: each transaction is journaled before it
leaves, and one not yet done is polled by the next ticks (re-sent with its nonce if the node lost
it, its fees raised if they fell behind), while the roles it belongs to wait. A submission, commit
or reveal that a reorg undid is seen on the chain and sent again while its window is open.
`run_scheduled` drives ticks with APScheduler and stops cleanly on SIGINT/SIGTERM.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from types import FrameType

import requests
from apscheduler.schedulers.background import BackgroundScheduler

from derelay.trainer.chain import SentTx, rpc_int
from derelay.trainer.cid import Cid
from derelay.trainer.contract import (
    Ballot,
    DeRelayContract,
    Phase,
    Status,
    TaskState,
    commitment_for,
    finalize_gas,
)
from derelay.trainer.data import Dataset, data_commitment
from derelay.trainer.errors import (
    ChainError,
    ContractRevert,
    DeRelayError,
    Revert,
    StoreError,
    TxLost,
    TxPending,
)
from derelay.trainer.failpoints import failpoint
from derelay.trainer.journal import BallotEntry, BallotPhase, Journal, TurnEntry, TurnPhase
from derelay.trainer.limits import DEFAULT_LIMITS
from derelay.trainer.spec import TaskSpec, TrainConfig
from derelay.trainer.steps import measure_champion, relay_card, score_weights, train_child
from derelay.trainer.store import ContentStore

log = logging.getLogger("derelay.worker")

# What a tick may fail with and the next tick retry: a node that went away mid-tick, whichever
# call noticed it first.
TRANSIENT_ERRORS = (ChainError, StoreError, requests.RequestException, OSError)

# Reverts that mean "someone else already moved the relay on": a keeper lost a race.
RACE_ERRORS = frozenset({Revert.WRONG_PHASE, Revert.TURN_NOT_EXPIRED, Revert.REVIEW_OPEN})

# Reverts of a submission that mean the turn is lost: the head moved, the round or the turn ended
# (a keeper may have skipped it while it was being sent), or the child was seen before.
TURN_LOST = frozenset(
    {
        Revert.STALE_PARENT,
        Revert.WRONG_ROUND,
        Revert.TURN_EXPIRED,
        Revert.NOT_HOLDER,
        Revert.CHILD_SEEN,
    }
)


@dataclass(frozen=True)
class BallotStep:
    """A validator's transaction (commit or reveal) and what becomes of its journaled ballot:
    `done` is its phase once the transaction landed, or once a revert in `already` says it had;
    a revert in `missed` means its window passed, or the review ended, while it was sent."""

    done: BallotPhase
    already: frozenset[Revert]
    missed: frozenset[Revert]
    failpoint: str
    line: str  # the line it logs, formatted with the ballot's fields


BALLOT_STEPS = {
    "commitScore": BallotStep(
        BallotPhase.COMMITTED,
        frozenset({Revert.ALREADY_COMMITTED}),
        frozenset(
            {Revert.COMMIT_CLOSED, Revert.WRONG_PHASE, Revert.WRONG_ROUND, Revert.SELF_REVIEW}
        ),
        "after-commit",
        "committed scores for {child_cid}, the champion {champion_cid} and the parent {parent_cid}",
    ),
    "revealScore": BallotStep(
        BallotPhase.REVEALED,
        frozenset({Revert.ALREADY_REVEALED, Revert.NOT_COMMITTED}),
        frozenset(
            {Revert.REVEAL_CLOSED, Revert.WRONG_PHASE, Revert.WRONG_ROUND, Revert.REVEAL_NOT_OPEN}
        ),
        "after-reveal",
        "revealed scores {child_score} (child), {champion_score} (champion), "
        "{parent_score} (parent)",
    ),
}

# The transactions of each role: while one of them is in flight, that role waits for it.
ROLE_ACTIONS = {
    "relayer": frozenset({"joinRelay", "submitRelay"}),
    "validator": frozenset({"registerValidator", "commitScore", "revealScore"}),
    "keeper": frozenset({"skipTurn", "finalize"}),
}


@dataclass(frozen=True)
class Roles:
    """Which roles this worker plays."""

    relayer: bool = True
    validator: bool = True
    keeper: bool = True

    @classmethod
    def parse(cls, text: str) -> Roles:
        """From a comma-separated list such as "relayer,keeper"."""
        names = {part.strip() for part in text.split(",") if part.strip()}
        unknown = names - {"relayer", "validator", "keeper"}
        if unknown or not names:
            raise DeRelayError(
                f"unknown roles {sorted(unknown) or '(none)'}: use relayer, validator and/or keeper"
            )
        return cls("relayer" in names, "validator" in names, "keeper" in names)


@dataclass(frozen=True)
class WorkerConfig:
    """How one worker behaves."""

    task_id: int
    roles: Roles = Roles()
    relayer_stake: int | None = None  # wei to stake when joining; None: the task's minStake
    validator_stake: int | None = None  # wei to stake for a seat; None: the task's validatorStake
    seed: int = 0  # training seed; each turn adds its round number
    device: str = "cpu"  # where training runs: cpu, cuda or auto
    poll_seconds: float = 2.0  # time between ticks under the scheduler
    progress: bool = False  # progress bars for training
    weights_bytes: int = DEFAULT_LIMITS.weights_bytes  # largest head or child weights file loaded


def chain_now(relay: DeRelayContract) -> int:
    """The earliest timestamp the next block can carry: after the latest block, and not before
    the wall clock (a chain whose clock was moved ahead, like the demo's, stays ahead)."""
    latest = rpc_int(lambda: relay.client.w3.eth.get_block("latest")["timestamp"], "block time")
    return max(latest + 1, int(time.time()))


class Worker:
    """One account's worker for one task."""

    def __init__(
        self,
        relay: DeRelayContract,
        store: ContentStore,
        spec: TaskSpec,
        config: WorkerConfig,
        journal: Journal,
        train_data: Dataset | None = None,
        holdout: Dataset | None = None,
        clock: Callable[[DeRelayContract], int] = chain_now,
    ) -> None:
        if config.roles.relayer and train_data is None:
            raise DeRelayError("a relayer needs training data", setting="train_data")
        if config.roles.validator and holdout is None:
            raise DeRelayError("a validator needs held-out data", setting="holdout")
        self.relay = relay
        self.store = store
        self.spec = spec
        self.config = config
        self.journal = journal
        self.train_data = train_data
        self.holdout = holdout
        self.clock = clock
        self.address = relay.client.address
        self.task_id = config.task_id
        self._params = relay.task_params(config.task_id)
        moved = journal.bind(relay.deployment_id())
        if moved is not None:
            log.warning(
                "journal %s was written for an earlier deployment at %s (was the chain wiped?): "
                "moved it to %s and started a fresh one",
                journal.path, relay.address, moved,
            )  # fmt: skip
        self._round = 0  # the round whose transaction goes out next (`tx_key`)
        relay.client.tracker = self

    # ------------------------------------------------------------------ loop

    def tick(self) -> list[str]:
        """Do whatever is due now; return a line per action taken."""
        actions = self._poll_sent()
        busy = {tx.action for tx in self.journal.txs(self.task_id)}
        state = self.relay.task_state(self.task_id)
        now = self.clock(self.relay)
        if self.config.roles.relayer and not busy & ROLE_ACTIONS["relayer"]:
            actions += self._relayer(state, now)
        if self.config.roles.validator and not busy & ROLE_ACTIONS["validator"]:
            actions += self._validator(state, now)
        if self.config.roles.keeper and not busy & ROLE_ACTIONS["keeper"]:
            actions += self._keeper(self.relay.task_state(self.task_id), self.clock(self.relay))
        for line in actions:
            log.info("%s", line)
        return actions

    # ------------------------------------------------------------------ transactions
    # The worker is its client's `TxTracker`: each transaction is in the journal before it
    # leaves, under the intended action "name:round" of the round being acted on.

    def tx_key(self, action: str) -> str:
        """The intended action of an `action` transaction sent now."""
        return f"{action}:{self._round}"

    def tx_sent(self, tx: SentTx) -> None:
        """Journal `tx` (before it leaves, and after each resend)."""
        self.journal.record_tx(self.task_id, tx, _round_of(tx))

    def tx_done(self, tx: SentTx) -> None:
        """Forget `tx`: done, or lost."""
        self.journal.drop_tx(self.task_id, tx, _round_of(tx))

    def _act(
        self,
        round_: int,
        action: str,
        send: Callable[[], object],
        outcome: Callable[[int, ContractRevert | None, str], list[str]],
    ) -> list[str]:
        """Send one transaction of round `round_` and hand what became of it to `outcome`; one
        not done within `wait_seconds` is left to later ticks (`_poll_sent`)."""
        self._round = round_
        try:
            send()
        except TxPending:
            return []
        except TxLost as exc:
            return [f"round {round_}: {exc}: deciding it again"]
        except ContractRevert as exc:
            return outcome(round_, exc, action)
        return outcome(round_, None, action)

    def _poll_sent(self) -> list[str]:
        """Poll every journaled transaction not yet done, and act on those that now are."""
        lines: list[str] = []
        for tx in self.journal.txs(self.task_id):
            status = self.relay.client.poll(tx)
            round_ = _round_of(tx)
            if status.state == "pending":
                self.tx_sent(status.tx)
                if status.note:
                    lines.append(f"round {round_}: {tx.action} {status.note}")
                continue
            self.tx_done(status.tx)
            if status.state == "lost":
                # Never skipped: the role decides again from the chain on this or a later tick.
                lines.append(
                    f"round {round_}: {tx.action} not mined ({status.note}): deciding it again"
                )
                continue
            error = status.error
            if error is not None and not isinstance(error, ContractRevert):
                raise error
            outcome = {
                "submitRelay": self._submit_outcome,
                "commitScore": self._ballot_outcome,
                "revealScore": self._ballot_outcome,
            }.get(tx.action, self._other_outcome)
            lines += outcome(round_, error, tx.action)
        return lines

    def _other_outcome(self, round_: int, error: ContractRevert | None, action: str) -> list[str]:
        if error is None:
            return [
                {
                    "joinRelay": f"joined the relay of task {self.task_id}",
                    "registerValidator": f"took a validator seat in task {self.task_id}",
                    "skipTurn": f"round {round_}: skipped the expired turn",
                    "finalize": f"round {round_}: finalized the review",
                }.get(action, f"round {round_}: {action} done")
            ]
        if error.name in RACE_ERRORS | {Revert.SEATS_FULL, Revert.ALREADY_QUEUED}:
            return []
        raise error

    # ------------------------------------------------------------------ relayer

    def _relayer(self, state: TaskState, now: int) -> list[str]:
        account = self.relay.account(self.task_id, self.address)
        if not account.queued:
            stake = self.config.relayer_stake or self._params.min_stake
            log.info("joining the relay of task %d with stake %d wei", self.task_id, stake)
            return self._act(
                state.round,
                "joinRelay",
                lambda: self.relay.join_relay(self.task_id, stake),
                self._other_outcome,
            )
        entry = self.journal.turn(self.task_id, state.round)
        if (
            entry is not None
            and entry.phase == TurnPhase.SUBMITTING
            and self._already_submitted(entry)
        ):
            # Sent before a crash, and it landed: never send it again.
            self.journal.advance_turn(self.task_id, entry, TurnPhase.SUBMITTED)
            return [
                f"round {state.round}: submission {entry.child_cid} had landed before a restart"
            ]
        if state.phase != Phase.TURN or state.holder != self.address or now > state.deadline:
            return []
        return self._turn(state, entry)

    def _turn(self, state: TaskState, entry: TurnEntry | None) -> list[str]:
        head = Cid.from_bytes(state.head_cid)
        if entry is not None and entry.phase == TurnPhase.ABANDONED:
            return []
        if entry is not None and entry.phase == TurnPhase.SUBMITTED:
            # Still our turn on chain after a submission that was done: a reorg took it back.
            if self._already_submitted(entry):
                return []
            log.warning(
                "round %d: the chain lost the submission (a reorg?): sending it again", state.round
            )
        if entry is None or entry.parent_cid != str(head):
            entry = self._void_retry(state.round, head) or self._train(state, head)
        entry = self.journal.advance_turn(self.task_id, entry, TurnPhase.SUBMITTING)
        return self._act(
            state.round,
            "submitRelay",
            lambda: self.relay.submit_relay(
                self.task_id,
                state.round,
                head.digest,
                Cid.parse(entry.child_cid).to_bytes(),
                Cid.parse(entry.card_cid).to_bytes(),
                bytes.fromhex(entry.data_commitment),
                entry.samples,
            ),
            self._submit_outcome,
        )

    def _submit_outcome(self, round_: int, error: ContractRevert | None, action: str) -> list[str]:
        entry = self.journal.turn(self.task_id, round_)
        assert entry is not None  # journaled "submitting" before it was sent
        if error is None:
            self.journal.advance_turn(self.task_id, entry, TurnPhase.SUBMITTED)
            return [f"round {round_}: submitted child {entry.child_cid} ({entry.samples} samples)"]
        if error.name == Revert.CHILD_SEEN and self._already_submitted(entry):
            self.journal.advance_turn(self.task_id, entry, TurnPhase.SUBMITTED)
            return [f"round {round_}: submission had already landed"]
        if error.name in TURN_LOST:
            self.journal.advance_turn(self.task_id, entry, TurnPhase.ABANDONED)
            return [f"round {round_}: turn abandoned: {error}"]
        raise error

    def _void_retry(self, round_: int, head: Cid) -> TurnEntry | None:
        """After a void review the holder keeps the turn: its child of the previous round, when the
        chain says that review was void, goes in again (nobody else may take it). A submission
        still "submitting" (a crash before its receipt) counts: the chain's record says it landed."""
        previous = self.journal.turn(self.task_id, round_ - 1)
        sent = previous is not None and previous.phase in (
            TurnPhase.SUBMITTING,
            TurnPhase.SUBMITTED,
        )
        if previous is None or not sent or previous.parent_cid != str(head):
            return None
        relayer, _, _, status, _, _ = self.relay.record(
            self.task_id, Cid.parse(previous.child_cid).digest
        )
        if relayer != self.address or status != Status.VOID:
            return None
        entry = replace(previous, round=round_, phase=TurnPhase.TRAINED)
        self.journal.record_turn(self.task_id, entry)
        return entry

    def _train(self, state: TaskState, head: Cid) -> TurnEntry:
        assert self.train_data is not None
        round_ = state.round
        started = time.perf_counter()
        parent = self.store.get(head)
        champion_cid = Cid.from_bytes(state.champion_cid)
        champion_weights = parent if champion_cid == head else self.store.get(champion_cid)
        fetch_seconds = time.perf_counter() - started
        failpoint("after-download")
        cfg = TrainConfig.from_spec(
            self.spec, seed=self.config.seed + round_, device=self.config.device
        )
        failpoint("before-training")
        result = train_child(
            self.spec,
            parent,
            self.train_data,
            cfg,
            progress=self.config.progress,
            max_weights_bytes=self.config.weights_bytes,
        )
        commitment = data_commitment(self.train_data.X, self.train_data.y)
        child = self.store.add(result.weights)
        self.store.pin(child)
        champion = measure_champion(
            self.spec,
            str(champion_cid),
            state.champion_score,
            champion_weights,
            self.train_data,
            self.config.weights_bytes,
        )
        card = relay_card(
            self.task_id, round_, str(head), result, cfg, fetch_seconds, commitment, champion
        )
        card_cid = self.store.add(json.dumps(card, sort_keys=True).encode())
        self.store.pin(card_cid)
        entry = TurnEntry(
            round=round_,
            parent_cid=str(head),
            child_cid=str(child),
            card_cid=str(card_cid),
            samples=result.samples,
            data_commitment=commitment.hex(),
            phase=TurnPhase.TRAINED,
        )
        self.journal.record_turn(self.task_id, entry)
        failpoint("after-pin")
        return entry

    def _already_submitted(self, entry: TurnEntry) -> bool:
        relayer, round_, *_ = self.relay.record(self.task_id, Cid.parse(entry.child_cid).digest)
        return relayer == self.address and round_ == entry.round

    # ------------------------------------------------------------------ validator

    def _validator(self, state: TaskState, now: int) -> list[str]:
        account = self.relay.account(self.task_id, self.address)
        if account.seat < 0:
            stake = self.config.validator_stake or self._params.validator_stake
            log.info("taking a validator seat in task %d with stake %d wei", self.task_id, stake)
            return self._act(
                state.round,
                "registerValidator",
                lambda: self.relay.register_validator(self.task_id, stake),
                self._other_outcome,
            )
        if state.phase != Phase.REVIEW or state.holder == self.address:
            return []
        entry = self.journal.ballot(self.task_id, state.round)
        if entry is not None:
            entry = self._reconcile(state, now, entry, account.seat)
        if now <= state.deadline and (entry is None or entry.phase == BallotPhase.SCORED):
            return self._commit(state, entry)
        if (
            state.deadline < now <= state.reveal_end
            and entry is not None
            and entry.phase == BallotPhase.COMMITTED
        ):
            return self._reveal(state, entry)
        return []

    def _reconcile(self, state: TaskState, now: int, entry: BallotEntry, seat: int) -> BallotEntry:
        """The journaled ballot moved to where the chain stands while its window is open: a
        commitment that landed before a crash counts as committed (the reveal follows); one that
        a reorg took back, or a reveal it took back, goes out again."""
        in_commit = now <= state.deadline
        in_reveal = state.deadline < now <= state.reveal_end
        if not (
            entry.phase == BallotPhase.SCORED
            or (entry.phase == BallotPhase.COMMITTED and in_commit)
            or (entry.phase == BallotPhase.REVEALED and in_reveal)
        ):
            return entry
        ballot = self._ballot_on_chain(state, seat)
        if entry.phase == BallotPhase.SCORED and ballot != Ballot.NONE:
            return self.journal.advance_ballot(self.task_id, entry, BallotPhase.COMMITTED)
        if entry.phase == BallotPhase.COMMITTED and in_commit and ballot == Ballot.NONE:
            log.warning(
                "round %d: the chain lost the commitment (a reorg?): sending it again", state.round
            )
            return self.journal.advance_ballot(self.task_id, entry, BallotPhase.SCORED)
        if entry.phase == BallotPhase.REVEALED and ballot == Ballot.COMMITTED:
            log.warning(
                "round %d: the chain lost the reveal (a reorg?): sending it again", state.round
            )
            return self.journal.advance_ballot(self.task_id, entry, BallotPhase.COMMITTED)
        return entry

    def _ballot_on_chain(self, state: TaskState, seat: int) -> Ballot:
        ballot = self.relay.seats(self.task_id)[seat]
        return ballot.ballot if ballot.round == state.round else Ballot.NONE

    def _score(self, cid: Cid) -> int:
        assert self.holdout is not None
        weights = self.store.get(cid)
        return score_weights(self.spec, weights, self.holdout, self.config.weights_bytes)

    def _commit(self, state: TaskState, entry: BallotEntry | None) -> list[str]:
        if entry is None:
            child_entry = self.relay.latest_submission(self.task_id)
            child = Cid.from_bytes(child_entry.cid)
            champion = Cid.from_bytes(state.champion_cid)
            parent = Cid.from_bytes(state.head_cid)  # the head until this review ends
            try:
                # All on the same held-out data: the review decides on the differences, so what
                # is hard about this validator's data cancels out.
                child_score = self._score(child)
                champion_score = self._score(champion)
                parent_score = champion_score if parent == champion else self._score(parent)
            except StoreError as exc:
                log.warning("round %d: cannot fetch the models yet: %s", state.round, exc)
                return []
            # The salt is on disk before the commitment leaves: a crash cannot lose the reveal.
            entry = BallotEntry(
                state.round,
                str(child),
                child_score,
                str(champion),
                champion_score,
                str(parent),
                parent_score,
                os.urandom(32).hex(),
                BallotPhase.SCORED,
            )
            self.journal.record_ballot(self.task_id, entry)
        commitment = commitment_for(
            self.task_id,
            state.round,
            entry.child_score,
            entry.champion_score,
            entry.parent_score,
            bytes.fromhex(entry.salt),
            self.address,
        )
        return self._act(
            state.round,
            "commitScore",
            lambda: self.relay.commit_score(self.task_id, state.round, commitment),
            self._ballot_outcome,
        )

    def _reveal(self, state: TaskState, entry: BallotEntry) -> list[str]:
        return self._act(
            state.round,
            "revealScore",
            lambda: self.relay.reveal_score(
                self.task_id,
                state.round,
                entry.child_score,
                entry.champion_score,
                entry.parent_score,
                bytes.fromhex(entry.salt),
            ),
            self._ballot_outcome,
        )

    def _ballot_outcome(self, round_: int, error: ContractRevert | None, action: str) -> list[str]:
        step = BALLOT_STEPS[action]
        entry = self.journal.ballot(self.task_id, round_)
        assert entry is not None  # journaled before it was sent
        if error is None:
            failpoint(step.failpoint)
            self.journal.advance_ballot(self.task_id, entry, step.done)
            return [f"round {round_}: " + step.line.format(**asdict(entry))]
        if error.name in step.already:
            self.journal.advance_ballot(self.task_id, entry, step.done)
            return []
        if error.name in step.missed:
            return []
        raise error

    # ------------------------------------------------------------------ keeper

    def _keeper(self, state: TaskState, now: int) -> list[str]:
        if state.phase == Phase.TURN and now > state.deadline:
            log.info("round %d: skipping the expired turn of %s", state.round, state.holder)
            return self._act(
                state.round,
                "skipTurn",
                lambda: self.relay.skip_turn(self.task_id),
                self._other_outcome,
            )
        if state.phase == Phase.REVIEW and self._finalizable(state, now):
            gas = finalize_gas(self._params.max_validators)
            return self._act(
                state.round,
                "finalize",
                lambda: self.relay.finalize(self.task_id, gas),
                self._other_outcome,
            )
        return []

    def _finalizable(self, state: TaskState, now: int) -> bool:
        if now > state.reveal_end:
            return True
        if now <= state.deadline:
            return False
        seats = self.relay.seats(self.task_id)
        return not any(s.round == state.round and s.ballot == Ballot.COMMITTED for s in seats)


def _round_of(tx: SentTx) -> int:
    return int(tx.key.rsplit(":", 1)[1])


def run_scheduled(worker: Worker, stop_after: Callable[[], bool] | None = None) -> None:
    """Tick every `poll_seconds` under APScheduler until SIGINT/SIGTERM (or `stop_after()`).

    A tick in progress finishes before the process exits; a transient failure is logged and the
    next tick tries again, while a mistake the user must fix stops the worker with its message.
    """
    stopped = threading.Event()
    fatal: list[BaseException] = []

    def tick() -> None:
        try:
            worker.tick()
        except TRANSIENT_ERRORS as exc:
            log.warning("tick failed, retrying next tick: %s", exc)
        except BaseException as exc:  # anything else stops the worker, with its message
            fatal.append(exc)
            stopped.set()
        if stop_after is not None and stop_after():
            stopped.set()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: stopping after the current tick", signum)
        stopped.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    scheduler = BackgroundScheduler()
    scheduler.add_job(
        tick,
        "interval",
        seconds=worker.config.poll_seconds,
        max_instances=1,
        coalesce=True,
        next_run_time=datetime.now(UTC),
    )
    scheduler.start()
    try:
        stopped.wait()
    finally:
        scheduler.shutdown(wait=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if fatal:
        raise fatal[0]
