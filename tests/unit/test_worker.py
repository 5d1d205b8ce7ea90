"""The worker on the embedded chain: crash safety through the journal, and bad weights.

A "crash" is an exception thrown out of the worker at the named point; the restarted worker is a
new `Worker` over the same journal, store and chain, as after a kill -9 and a restart.
"""

from __future__ import annotations

import pickle
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from derelay.deploy.tasks import publish_task
from derelay.trainer import steps
from derelay.trainer.chain import ChainClient, TxOptions
from derelay.trainer.cid import Cid
from derelay.trainer.contract import DeRelayContract, Phase, Status, commitment_for
from derelay.trainer.errors import CidError
from derelay.trainer.journal import BallotPhase, Journal, TurnPhase
from derelay.trainer.models import init_weights, save_weights
from derelay.trainer.shards import ShardPlan, relayer_shards, validator_shards
from derelay.trainer.spec import digits_mlp_spec
from derelay.trainer.store import LocalStore
from derelay.trainer.worker import Roles, Worker, WorkerConfig

ETH = 10**18
RELAYER = Roles(relayer=True, validator=False, keeper=False)
VALIDATOR = Roles(relayer=False, validator=True, keeper=False)
KEEPER = Roles(relayer=False, validator=False, keeper=True)


class Crash(BaseException):
    """Stands for kill -9: not an Exception, so nothing in the worker catches it."""


class Setup:
    """A published digits task, a store, data shards, and a way to (re)start workers."""

    def __init__(self, chain, relay: DeRelayContract, clients, tmp_path: Path) -> None:
        self.chain = chain
        self.store = LocalStore(tmp_path / "store")
        self.spec = digits_mlp_spec()
        overrides = dict(min_stake=ETH, validator_stake=ETH, quorum=2, max_validators=3)
        self.published = publish_task(relay, self.store, self.spec, 5 * ETH, overrides)
        self.task = self.published.task_id
        plan = ShardPlan(relayers=2, validators=2, alpha=None, seed=0)
        self.shards = relayer_shards(self.spec, plan)
        self.holdouts = validator_shards(self.spec, plan)
        self.relay = relay
        self.clients = clients
        self.tmp = tmp_path

    def worker(self, index: int, roles: Roles, shard: int = 0) -> Worker:
        client = self.clients[index]
        view = self.relay.as_account(client)
        journal = Journal(self.tmp / f"journal-{index}.json")
        config = WorkerConfig(self.task, roles)
        return Worker(
            view,
            self.store,
            self.spec,
            config,
            journal,
            train_data=self.shards[shard] if roles.relayer else None,
            holdout=self.holdouts[shard] if roles.validator else None,
        )

    def state(self):
        return self.relay.task_state(self.task)

    def past_commit_end(self) -> None:
        self.chain.advance(self.state().deadline - self.chain.now() + 1)


@pytest.fixture
def setup(chain, relay, clients, tmp_path) -> Setup:
    return Setup(chain, relay, clients, tmp_path)


def _submissions(setup: Setup) -> list:
    return setup.relay.full_lineage(setup.task)[1:]


def test_a_restarted_relayer_reuses_its_pinned_child(setup, monkeypatch):
    # prepare: the relayer joins, trains, pins, and dies just before sending its submission
    relayer = setup.worker(1, RELAYER)
    relayer.tick()  # joins; the turn starts
    _crash_on(monkeypatch, "prepare", "submitRelay")
    with pytest.raises(Crash):
        relayer.tick()
    monkeypatch.undo()
    pinned = relayer.journal.turn(setup.task, 1)
    assert pinned is not None and setup.store.has(Cid.parse(pinned.child_cid))

    # act: restart; training again would be a bug
    monkeypatch.setattr(
        "derelay.trainer.worker.train_child", lambda *a, **k: pytest.fail("retrained")
    )
    restarted = setup.worker(1, RELAYER)
    restarted.tick()

    # check: exactly one submission, of the pinned child
    (submission,) = _submissions(setup)
    assert str(Cid.from_bytes(submission.cid)) == pinned.child_cid
    assert restarted.journal.turn(setup.task, 1).phase == TurnPhase.SUBMITTED


def test_a_submission_sent_before_a_crash_is_not_sent_again(setup, monkeypatch):
    # prepare: the transaction leaves, then the worker dies before it sees the receipt
    relayer = setup.worker(1, RELAYER)
    relayer.tick()
    _crash_on(monkeypatch, "broadcast", "submitRelay")
    with pytest.raises(Crash):
        relayer.tick()
    monkeypatch.undo()
    nonce = setup.chain.w3.eth.get_transaction_count(setup.clients[1].address)

    # act
    restarted = setup.worker(1, RELAYER)
    restarted.tick()

    # check: no second transaction, and the journal knows
    assert setup.chain.w3.eth.get_transaction_count(setup.clients[1].address) == nonce
    assert len(_submissions(setup)) == 1
    assert restarted.journal.turn(setup.task, 1).phase == TurnPhase.SUBMITTED


@pytest.mark.parametrize(
    "restart_late", [False, True], ids=["restart-in-commit-window", "restart-after-it"]
)
def test_a_commitment_sent_before_a_crash_is_still_revealed(setup, monkeypatch, restart_late):
    # prepare: a submission under review; the validator's commit leaves, then it dies
    relayer, other = setup.worker(1, RELAYER), setup.worker(6, VALIDATOR, shard=1)
    validator = setup.worker(5, VALIDATOR)
    validator.tick()  # takes a seat
    other.tick()
    relayer.tick()  # joins
    relayer.tick()  # submits
    _crash_on(monkeypatch, "broadcast", "commitScore")
    with pytest.raises(Crash):
        validator.tick()
    monkeypatch.undo()
    other.tick()
    salt = validator.journal.ballot(setup.task, 1).salt

    # act: restart (in the commit window, or after it); then it must reveal with the journaled salt
    if restart_late:
        setup.past_commit_end()
    restarted = setup.worker(5, VALIDATOR)
    restarted.tick()  # the journal catches up with the chain (and reveals, when late)
    if not restart_late:
        setup.past_commit_end()
        restarted.tick()
    other.tick()
    setup.worker(10, KEEPER).tick()

    # check
    (event,) = setup.relay.events("ScoreRevealed", validator=setup.clients[5].address)
    ballot = restarted.journal.ballot(setup.task, 1)
    assert (event["args"]["childScore"], event["args"]["championScore"]) == (
        ballot.child_score,
        ballot.champion_score,
    )
    assert ballot.salt == salt
    assert _submissions(setup)[0].status == Status.ACCEPTED
    assert setup.relay.events("ValidatorSlashed") == []


def test_a_validator_commits_paired_scores_and_reveals_them_after_a_restart(setup, monkeypatch):
    # prepare: round 1 under review; the validator scores the child and the champion (the
    # genesis), journals them, and dies before its commitment leaves
    relayer, other = setup.worker(1, RELAYER), setup.worker(6, VALIDATOR, shard=1)
    validator = setup.worker(5, VALIDATOR)
    for worker in (validator, other, relayer, relayer):
        worker.tick()  # seats, joins, the submission of round 1
    _crash_on(monkeypatch, "prepare", "commitScore")
    with pytest.raises(Crash):
        validator.tick()
    monkeypatch.undo()
    scored = validator.journal.ballot(setup.task, 1)
    (child,) = _submissions(setup)
    genesis = setup.published.genesis_cid
    holdout = setup.holdouts[0]
    assert scored.phase == BallotPhase.SCORED
    assert (scored.child_cid, scored.champion_cid) == (str(Cid.from_bytes(child.cid)), str(genesis))
    assert scored.parent_cid == str(genesis)  # round 1: the parent is the genesis, the champion
    assert (
        scored.champion_score
        == scored.parent_score
        == steps.score_weights(setup.spec, setup.store.get(genesis), holdout)
    )
    assert scored.child_score == steps.score_weights(
        setup.spec, setup.store.get(Cid.from_bytes(child.cid)), holdout
    )

    # act: restart and commit (scoring again would be a bug: the salt and scores are journaled),
    # then restart once more after the commit window and reveal
    other.tick()
    monkeypatch.setattr(
        "derelay.trainer.worker.score_weights", lambda *a, **k: pytest.fail("rescored")
    )
    setup.worker(5, VALIDATOR).tick()
    setup.past_commit_end()
    restarted = setup.worker(5, VALIDATOR)
    restarted.tick()
    monkeypatch.undo()
    other.tick()
    setup.worker(10, KEEPER).tick()

    # check: the commitment binds both scores; the reveal is the journaled pair
    address = setup.clients[5].address
    (commit,) = setup.relay.events("ScoreCommitted", validator=address)
    assert bytes(commit["args"]["commitment"]) == commitment_for(
        setup.task,
        1,
        scored.child_score,
        scored.champion_score,
        scored.parent_score,
        bytes.fromhex(scored.salt),
        address,
    )
    (reveal,) = setup.relay.events("ScoreRevealed", validator=address)
    assert (reveal["args"]["childScore"], reveal["args"]["championScore"]) == (
        scored.child_score,
        scored.champion_score,
    )
    assert restarted.journal.ballot(setup.task, 1) == replace(scored, phase=BallotPhase.REVEALED)
    (final,) = setup.relay.events("RoundFinalized")
    assert final["args"]["reveals"] == 2 and final["args"]["verdict"] != Status.VOID
    assert setup.relay.events("ValidatorSlashed") == []


@pytest.mark.parametrize("crash", [False, True], ids=["receipt-seen", "crash-before-receipt"])
def test_a_relayer_whose_review_was_void_submits_the_same_child_again(setup, monkeypatch, crash):
    # prepare: relayer 1 submits round 1 with no validator seated (and, with `crash`, dies before
    # it sees the receipt, its journal left at "submitting"); a keeper finalizes it void
    relayer, second = setup.worker(1, RELAYER), setup.worker(2, RELAYER, shard=1)
    keeper = setup.worker(10, KEEPER)
    relayer.tick()
    second.tick()
    if crash:
        _crash_on(monkeypatch, "broadcast", "submitRelay")
        with pytest.raises(Crash):
            relayer.tick()
        monkeypatch.undo()
        relayer = setup.worker(1, RELAYER)
    else:
        relayer.tick()  # submits round 1
    first = relayer.journal.turn(setup.task, 1)
    assert first.phase == (TurnPhase.SUBMITTING if crash else TurnPhase.SUBMITTED)
    setup.past_commit_end()
    keeper.tick()
    (final,) = setup.relay.events("RoundFinalized")
    assert final["args"]["verdict"] == Status.VOID
    assert (setup.state().round, setup.state().holder) == (2, setup.clients[1].address)

    # act: the holder's next tick, with training forbidden
    monkeypatch.setattr(
        "derelay.trainer.worker.train_child", lambda *a, **k: pytest.fail("retrained")
    )
    actions = relayer.tick()
    second.tick()  # not its turn: nothing

    # check: the same child (and card) again, for round 2, one lineage entry, no new training
    assert actions and "submitted child" in actions[0]
    again = relayer.journal.turn(setup.task, 2)
    assert again == replace(first, round=2, phase=TurnPhase.SUBMITTED)
    (submission,) = _submissions(setup)
    assert (str(Cid.from_bytes(submission.cid)), submission.round) == (first.child_cid, 2)
    assert submission.status == Status.PENDING
    sent = [e["args"] for e in setup.relay.events("RelaySubmitted")]
    assert [(a["round"], str(Cid.from_bytes(a["childCid"]))) for a in sent] == [
        (1, first.child_cid),
        (2, first.child_cid),
    ]
    assert setup.state().phase == Phase.REVIEW


def _nan_weights(spec) -> bytes:
    model = init_weights(spec, 1)
    with torch.no_grad():
        next(model.parameters())[0, 0] = float("nan")
    return save_weights(model)


def _wrong_shape_weights(spec) -> bytes:
    return save_weights(
        init_weights(replace(spec, arch_args=replace(spec.arch_args, hidden=(7,))), 1)
    )


def _pickle_weights(spec) -> bytes:
    return pickle.dumps({"net.0.weight": np.zeros((64, 64))})


@pytest.mark.parametrize("make_bad", [_nan_weights, _wrong_shape_weights, _pickle_weights])
def test_invalid_child_weights_score_zero_and_are_rejected(setup, make_bad):
    # prepare: a relayer submits garbage by hand
    validators = [setup.worker(5, VALIDATOR), setup.worker(6, VALIDATOR, shard=1)]
    for v in validators:
        v.tick()
    holder = setup.relay.as_account(setup.clients[1])
    holder.join_relay(setup.task, ETH)
    bad = setup.store.add(make_bad(setup.spec))
    card = setup.store.add(b"{}")
    state = setup.state()
    holder.submit_relay(
        setup.task, 1, state.head_cid[4:], bad.to_bytes(), card.to_bytes(), bytes(32), 1
    )

    # act: the validators review it, a keeper finalizes
    for v in validators:
        v.tick()
    setup.past_commit_end()
    for v in validators:
        v.tick()
    setup.worker(10, KEEPER).tick()

    # check: scored 0 by both, next to the genesis's real score, rejected, the relayer slashed;
    # the head did not move
    reveals = [e["args"] for e in setup.relay.events("ScoreRevealed")]
    assert [r["childScore"] for r in reveals] == [0, 0]
    assert all(r["championScore"] > 0 for r in reveals)
    assert _submissions(setup)[0].status == Status.REJECTED
    assert setup.relay.events("RelayerSlashed")[0]["args"]["amount"] > 0
    assert setup.state().head_cid == setup.published.genesis_cid.to_bytes()


def test_a_tampered_head_is_never_trained_on(setup, monkeypatch):
    # prepare: the genesis pack on disk no longer matches its CID
    relayer = setup.worker(1, RELAYER)
    relayer.tick()
    block = setup.store.root / "packs" / str(setup.published.genesis_cid)
    data = bytearray(block.read_bytes())
    data[100] ^= 0xFF
    block.write_bytes(bytes(data))
    monkeypatch.setattr(steps, "train", lambda *a, **k: pytest.fail("trained on tampered bytes"))

    # act / check
    with pytest.raises(CidError):
        relayer.tick()
    assert relayer.journal.turn(setup.task, 1) is None
    assert _submissions(setup) == []
    assert setup.state().phase == Phase.TURN


def _crash_on(monkeypatch, step: str, action: str) -> None:
    """Die as by kill -9 in `ChainClient.<step>` of `action`: before anything is built and sent
    ("prepare"), or right after the transaction left ("broadcast")."""
    original = getattr(ChainClient, step)

    def crash(self, *args, **kwargs):
        if step == "prepare" and args[1] == action:
            raise Crash()
        result = original(self, *args, **kwargs)
        if step == "broadcast" and args[0].action == action:
            raise Crash()
        return result

    monkeypatch.setattr(ChainClient, step, crash)


def _send_late(monkeypatch, action: str, move_on) -> None:
    """Make the `action` transaction leave only after `move_on()` has moved the relay on, as when
    gas estimation stalls on a loaded node while other workers act (seen under load)."""
    original = ChainClient.prepare

    def late(self, fn, name, *args, **kwargs):
        if name == action:
            move_on()
        return original(self, fn, name, *args, **kwargs)

    monkeypatch.setattr(ChainClient, "prepare", late)


def _past(setup: Setup, timestamp: int) -> None:
    setup.chain.advance(timestamp - setup.chain.now() + 1)


def test_a_submission_sent_after_its_turn_was_skipped_is_abandoned(setup, monkeypatch):
    # prepare: two relayers queued; while the holder's submission is on its way, a keeper skips
    holder, next_ = setup.worker(1, RELAYER), setup.worker(2, RELAYER, shard=1)
    holder.tick()
    next_.tick()
    keeper = setup.worker(10, KEEPER)
    _send_late(
        monkeypatch,
        "submitRelay",
        lambda: (_past(setup, setup.state().deadline), keeper.tick()),
    )

    # act
    actions = holder.tick()

    # check: the lost turn is abandoned in the journal, not a failed tick
    assert actions and "turn abandoned" in actions[0] and "NotHolder" in actions[0]
    assert holder.journal.turn(setup.task, 1).phase == TurnPhase.ABANDONED
    assert setup.state().round == 2 and _submissions(setup) == []


def test_a_commit_sent_after_the_review_ended_is_a_lost_race(setup, monkeypatch):
    # prepare: round 1 under review, one validator committed; the other's commit is slow
    holder, next_ = setup.worker(1, RELAYER), setup.worker(2, RELAYER, shard=1)
    late, other = setup.worker(5, VALIDATOR), setup.worker(6, VALIDATOR, shard=1)
    keeper = setup.worker(10, KEEPER)
    for worker in (late, other, holder, next_, holder, other):
        worker.tick()  # seats, joins, the submission of round 1, one commitment

    def review_ends_and_another_begins() -> None:
        _past(setup, setup.state().deadline)
        other.tick()  # reveals
        keeper.tick()  # finalizes round 1: void, one reveal; the holder keeps the turn
        holder.tick()  # submits its child again for round 2

    _send_late(monkeypatch, "commitScore", review_ends_and_another_begins)

    # act
    actions = late.tick()

    # check
    assert actions == []
    assert (setup.state().round, setup.state().phase) == (2, Phase.REVIEW)


def test_a_reveal_sent_after_the_review_ended_is_a_lost_race(setup, monkeypatch):
    # prepare: round 1 in its reveal window, both validators committed, one revealed
    holder, next_ = setup.worker(1, RELAYER), setup.worker(2, RELAYER, shard=1)
    late, other = setup.worker(5, VALIDATOR), setup.worker(6, VALIDATOR, shard=1)
    keeper = setup.worker(10, KEEPER)
    for worker in (late, other, holder, next_, holder, late, other):
        worker.tick()  # seats, joins, the submission of round 1, both commitments
    setup.past_commit_end()
    other.tick()

    def review_ends_and_another_begins() -> None:
        _past(setup, setup.state().reveal_end)
        keeper.tick()  # finalizes round 1: void, one reveal; the holder keeps the turn
        holder.tick()  # submits its child again for round 2

    _send_late(monkeypatch, "revealScore", review_ends_and_another_begins)

    # act
    actions = late.tick()

    # check
    assert actions == []
    assert (setup.state().round, setup.state().phase) == (2, Phase.REVIEW)


def test_a_tick_never_waits_on_a_transaction_that_is_not_mined(setup):
    # prepare: a node that mines only when told; the worker gives a receipt 0.2 s per tick
    relayer = setup.worker(1, RELAYER)
    relayer.relay.client.options = TxOptions(wait_seconds=0.2)
    setup.chain.tester.disable_auto_mine_transactions()
    try:
        # act: two ticks while the join waits in the mempool, then one after it is mined
        started = time.monotonic()
        first = relayer.tick()
        second = relayer.tick()
        waited = time.monotonic() - started
        (pending,) = relayer.journal.txs(setup.task)
        setup.chain.tester.mine_blocks()
        third = relayer.tick()
        mined = setup.chain.w3.eth.get_transaction_count(relayer.address)
    finally:
        setup.chain.tester.enable_auto_mine_transactions()

    # check: the ticks came back at once, the join went out once and counted once mined; the
    # submission of the turn that began is in flight, not waited on
    assert waited < 2 and first == second == []
    assert pending.action == "joinRelay" and len(pending.hashes) == 1
    assert third[0] == f"joined the relay of task {setup.task}"
    assert [tx.action for tx in relayer.journal.txs(setup.task)] == ["submitRelay"]
    assert setup.relay.account(setup.task, relayer.address).queued
    assert mined == 1


def test_a_submission_a_reorg_took_back_is_sent_again_in_its_turn(setup, monkeypatch):
    # prepare: the relayer submits round 1; then the chain returns to the block before it (what
    # a reorg that drops the submission's block leaves)
    relayer = setup.worker(1, RELAYER)
    relayer.tick()  # joins; the turn starts
    before = setup.chain.tester.take_snapshot()
    relayer.tick()  # submits
    sent = relayer.journal.turn(setup.task, 1)
    assert sent.phase == TurnPhase.SUBMITTED
    setup.chain.tester.revert_to_snapshot(before)
    assert _submissions(setup) == []

    # act: the next tick; training again would be a bug
    monkeypatch.setattr(
        "derelay.trainer.worker.train_child", lambda *a, **k: pytest.fail("retrained")
    )
    actions = relayer.tick()

    # check: the same child is under review, submitted once
    (submission,) = _submissions(setup)
    assert str(Cid.from_bytes(submission.cid)) == sent.child_cid
    assert setup.state().phase == Phase.REVIEW
    assert actions and "submitted child" in actions[-1]
    assert relayer.journal.turn(setup.task, 1) == sent


def test_a_commitment_and_a_reveal_a_reorg_took_back_are_sent_again_unchanged(setup, monkeypatch):
    # prepare: round 1 under review, the other validator committed
    relayer, other = setup.worker(1, RELAYER), setup.worker(6, VALIDATOR, shard=1)
    validator = setup.worker(5, VALIDATOR)
    for worker in (validator, other, relayer, relayer, other):
        worker.tick()  # seats, joins, the submission of round 1, one commitment
    before_commit = setup.chain.tester.take_snapshot()
    validator.tick()
    ballot = validator.journal.ballot(setup.task, 1)
    assert ballot.phase == BallotPhase.COMMITTED
    setup.chain.tester.revert_to_snapshot(before_commit)
    monkeypatch.setattr(
        "derelay.trainer.worker.score_weights", lambda *a, **k: pytest.fail("rescored")
    )

    # act: a tick in the commit window, then one in the reveal window whose reveal is undone too
    validator.tick()
    committed_again = setup.relay.seats(setup.task)
    setup.past_commit_end()
    other.tick()
    before_reveal = setup.chain.tester.take_snapshot()
    validator.tick()
    setup.chain.tester.revert_to_snapshot(before_reveal)
    validator.tick()

    # check: the same commitment (same salt), one reveal that matches it, nobody slashed
    address = setup.clients[5].address
    (commit,) = setup.relay.events("ScoreCommitted", validator=address)
    salt = bytes.fromhex(ballot.salt)
    scores = (ballot.child_score, ballot.champion_score, ballot.parent_score)
    assert bytes(commit["args"]["commitment"]) == commitment_for(
        setup.task, 1, *scores, salt, address
    )
    assert any(s.validator == address and s.round == 1 for s in committed_again)
    (reveal,) = setup.relay.events("ScoreRevealed", validator=address)
    assert reveal["args"]["childScore"] == ballot.child_score
    assert validator.journal.ballot(setup.task, 1) == replace(ballot, phase=BallotPhase.REVEALED)
    setup.worker(10, KEEPER).tick()
    (final,) = setup.relay.events("RoundFinalized")
    assert final["args"]["reveals"] == 2
    assert setup.relay.events("ValidatorSlashed") == []


def test_a_journal_of_a_wiped_chain_is_moved_aside_and_its_review_goes_on(chain, clients, tmp_path):
    # prepare: round 1 reviewed on a dev chain, which is then wiped; the contract deployed again
    # by the same account lands at the same address on the same chain id
    wiped = chain.tester.take_snapshot()
    first = Setup(chain, DeRelayContract.deploy(clients[0]), clients, tmp_path)
    validators = [first.worker(5, VALIDATOR), first.worker(6, VALIDATOR, shard=1)]
    relayer = first.worker(1, RELAYER)
    for worker in (*validators, relayer, relayer, *validators):
        worker.tick()  # seats, joins, the submission of round 1, the commitments
    assert validators[0].journal.ballot(first.task, 1).phase == BallotPhase.COMMITTED
    written = validators[0].journal.path.read_bytes()
    ended = chain.now()
    chain.tester.revert_to_snapshot(wiped)
    chain.advance_to(ended + 60)  # the new chain's blocks, and so their hashes, differ
    second = Setup(chain, DeRelayContract.deploy(clients[0]), clients, tmp_path)
    assert (second.relay.address, second.task) == (first.relay.address, first.task)

    # act: the same workers, with the same journals, on the new deployment
    validators = [second.worker(5, VALIDATOR), second.worker(6, VALIDATOR, shard=1)]
    relayer = second.worker(1, RELAYER)
    for worker in (*validators, relayer, relayer, *validators):
        worker.tick()

    # check: each validator committed to the new round 1 instead of taking the old commitment
    # for it, and the old journal is kept whole beside the new one
    address = clients[5].address
    (commit,) = second.relay.events("ScoreCommitted", validator=address)
    assert commit["args"]["round"] == 1
    assert len(second.relay.events("ScoreCommitted")) == 2
    (stale,) = tmp_path.glob("journal-5.json.*.stale")
    assert stale.read_bytes() == written
    assert validators[0].journal.ballot(second.task, 1).phase == BallotPhase.COMMITTED
