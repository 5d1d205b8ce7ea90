"""The worker: relayer, validator and keeper of one task, in one loop.

Each `tick` reads the chain and does what is due, journaling before every irreversible step:
- relayer: join the queue; on its turn fetch the head (verified), train, add and pin the child and
  its relay card, submit;
- validator: take a seat; score each open submission on its own held-out data, commit, then
  reveal in the reveal window;
- keeper: skip an expired turn, finalize a review that is due.
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
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from types import FrameType

import requests
from apscheduler.schedulers.background import BackgroundScheduler

from trainer.chain import rpc_int
from trainer.cid import Cid
from trainer.contract import (
    Ballot,
    DeRelayContract,
    Phase,
    Status,
    TaskState,
    commitment_for,
    finalize_gas,
)
from trainer.data import Dataset, data_commitment
from trainer.errors import ChainError, ContractRevert, DeRelayError, StoreError
from trainer.failpoints import failpoint
from trainer.journal import BallotEntry, Journal, TurnEntry
from trainer.limits import DEFAULT_LIMITS
from trainer.spec import TaskSpec
from trainer.steps import measure_champion, relay_card, score_weights, train_child
from trainer.store import ContentStore
from trainer.training import TrainConfig

log = logging.getLogger("derelay.worker")

# What a tick may fail with and the next tick retry: a node that went away mid-tick, whichever
# call noticed it first.
TRANSIENT_ERRORS = (ChainError, StoreError, requests.RequestException, OSError)

# Reverts that mean "someone else already moved the relay on": a keeper lost a race.
RACE_ERRORS = frozenset({"DeRelay__WrongPhase", "DeRelay__TurnNotExpired", "DeRelay__ReviewOpen"})


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
            raise DeRelayError("a relayer needs training data: pass --data or --shard")
        if config.roles.validator and holdout is None:
            raise DeRelayError("a validator needs held-out data: pass --holdout-shard")
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

    # ------------------------------------------------------------------ loop

    def tick(self) -> list[str]:
        """Do whatever is due now; return a line per action taken."""
        actions: list[str] = []
        state = self.relay.task_state(self.task_id)
        now = self.clock(self.relay)
        if self.config.roles.relayer:
            actions += self._relayer(state, now)
        if self.config.roles.validator:
            actions += self._validator(state, now)
        if self.config.roles.keeper:
            actions += self._keeper(self.relay.task_state(self.task_id), self.clock(self.relay))
        for line in actions:
            log.info("%s", line)
        return actions

    # ------------------------------------------------------------------ relayer

    def _relayer(self, state: TaskState, now: int) -> list[str]:
        account = self.relay.account(self.task_id, self.address)
        if not account.queued:
            stake = self.config.relayer_stake or self._params.min_stake
            self.relay.join_relay(self.task_id, stake)
            return [f"joined the relay of task {self.task_id} with stake {stake} wei"]
        entry = self.journal.turn(self.task_id, state.round)
        if entry is not None and entry.phase == "submitting" and self._already_submitted(entry):
            # Sent before a crash, and it landed: never send it again.
            self.journal.advance_turn(self.task_id, entry, "submitted")
            return [
                f"round {state.round}: submission {entry.child_cid} had landed before a restart"
            ]
        if state.phase != Phase.TURN or state.holder != self.address or now > state.deadline:
            return []
        return self._turn(state, entry)

    def _turn(self, state: TaskState, entry: TurnEntry | None) -> list[str]:
        head = Cid.from_bytes(state.head_cid)
        if entry is not None and entry.phase in ("submitted", "abandoned"):
            return []
        if entry is None or entry.parent_cid != str(head):
            entry = self._void_retry(state.round, head) or self._train(state, head)
        entry = self.journal.advance_turn(self.task_id, entry, "submitting")
        try:
            self.relay.submit_relay(
                self.task_id,
                state.round,
                head.digest,
                Cid.parse(entry.child_cid).to_bytes(),
                Cid.parse(entry.card_cid).to_bytes(),
                bytes.fromhex(entry.data_commitment),
                entry.samples,
            )
        except ContractRevert as exc:
            if exc.name == "DeRelay__ChildSeen" and self._already_submitted(entry):
                self.journal.advance_turn(self.task_id, entry, "submitted")
                return [f"round {state.round}: submission had already landed"]
            if exc.name in (
                "DeRelay__StaleParent",
                "DeRelay__WrongRound",
                "DeRelay__TurnExpired",
                "DeRelay__NotHolder",  # a keeper skipped the turn while it was being sent
                "DeRelay__ChildSeen",
            ):
                self.journal.advance_turn(self.task_id, entry, "abandoned")
                return [f"round {state.round}: turn abandoned: {exc}"]
            raise
        self.journal.advance_turn(self.task_id, entry, "submitted")
        return [f"round {state.round}: submitted child {entry.child_cid} ({entry.samples} samples)"]

    def _void_retry(self, round_: int, head: Cid) -> TurnEntry | None:
        """After a void review the holder keeps the turn: its child of the previous round, when the
        chain says that review was void, goes in again (nobody else may take it). A submission
        still "submitting" (a crash before its receipt) counts: the chain's record says it landed."""
        previous = self.journal.turn(self.task_id, round_ - 1)
        sent = previous is not None and previous.phase in ("submitting", "submitted")
        if previous is None or not sent or previous.parent_cid != str(head):
            return None
        relayer, _, _, status, _, _ = self.relay.record(
            self.task_id, Cid.parse(previous.child_cid).digest
        )
        if relayer != self.address or status != Status.VOID:
            return None
        entry = replace(previous, round=round_, phase="trained")
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
            phase="trained",
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
            try:
                self.relay.register_validator(self.task_id, stake)
            except ContractRevert as exc:
                if exc.name == "DeRelay__SeatsFull":
                    return []
                raise
            return [f"took a validator seat in task {self.task_id} with stake {stake} wei"]
        if state.phase != Phase.REVIEW or state.holder == self.address:
            return []
        entry = self.journal.ballot(self.task_id, state.round)
        if (
            entry is not None
            and entry.phase == "scored"
            and self._committed_on_chain(state, account.seat)
        ):
            # The commitment landed before a crash: the journal catches up, the reveal follows.
            entry = self.journal.advance_ballot(self.task_id, entry, "committed")
        if now <= state.deadline and (entry is None or entry.phase == "scored"):
            return self._commit(state, entry)
        if (
            state.deadline < now <= state.reveal_end
            and entry is not None
            and entry.phase == "committed"
        ):
            return self._reveal(state, entry)
        return []

    def _committed_on_chain(self, state: TaskState, seat: int) -> bool:
        ballot = self.relay.seats(self.task_id)[seat]
        return ballot.round == state.round and ballot.ballot != Ballot.NONE

    def _score(self, cid: Cid) -> int:
        assert self.holdout is not None
        weights = self.store.get(cid)
        return score_weights(self.spec, weights, self.holdout, self.config.weights_bytes)

    def _commit(self, state: TaskState, entry: BallotEntry | None) -> list[str]:
        if entry is None:
            child_entry = self.relay.lineage(self.task_id, state.submission_count - 1, 1)[0]
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
                "scored",
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
        try:
            self.relay.commit_score(self.task_id, state.round, commitment)
        except ContractRevert as exc:
            if exc.name == "DeRelay__AlreadyCommitted":
                self.journal.advance_ballot(self.task_id, entry, "committed")
                return []
            if exc.name in (
                "DeRelay__CommitClosed",
                "DeRelay__WrongPhase",
                "DeRelay__WrongRound",  # the review ended (and another began) while it was sent
                "DeRelay__SelfReview",
            ):
                return []
            raise
        failpoint("after-commit")
        self.journal.advance_ballot(self.task_id, entry, "committed")
        return [
            f"round {state.round}: committed scores for {entry.child_cid}, the champion "
            f"{entry.champion_cid} and the parent {entry.parent_cid}"
        ]

    def _reveal(self, state: TaskState, entry: BallotEntry) -> list[str]:
        try:
            self.relay.reveal_score(
                self.task_id,
                state.round,
                entry.child_score,
                entry.champion_score,
                entry.parent_score,
                bytes.fromhex(entry.salt),
            )
        except ContractRevert as exc:
            if exc.name in ("DeRelay__AlreadyRevealed", "DeRelay__NotCommitted"):
                self.journal.advance_ballot(self.task_id, entry, "revealed")
                return []
            if exc.name in (
                "DeRelay__RevealClosed",
                "DeRelay__WrongPhase",
                "DeRelay__WrongRound",  # the review ended (and another began) while it was sent
                "DeRelay__RevealNotOpen",
            ):
                return []
            raise
        self.journal.advance_ballot(self.task_id, entry, "revealed")
        return [
            f"round {state.round}: revealed scores {entry.child_score} (child), "
            f"{entry.champion_score} (champion), {entry.parent_score} (parent)"
        ]

    # ------------------------------------------------------------------ keeper

    def _keeper(self, state: TaskState, now: int) -> list[str]:
        try:
            if state.phase == Phase.TURN and now > state.deadline:
                self.relay.skip_turn(self.task_id)
                return [f"round {state.round}: skipped the expired turn of {state.holder}"]
            if state.phase == Phase.REVIEW and self._finalizable(state, now):
                self.relay.finalize(self.task_id, finalize_gas(self._params.max_validators))
                return [f"round {state.round}: finalized the review"]
        except ContractRevert as exc:
            if exc.name in RACE_ERRORS:
                return []
            raise
        return []

    def _finalizable(self, state: TaskState, now: int) -> bool:
        if now > state.reveal_end:
            return True
        if now <= state.deadline:
            return False
        seats = self.relay.seats(self.task_id)
        return not any(s.round == state.round and s.ballot == 1 for s in seats)


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
