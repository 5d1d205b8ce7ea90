"""submitRelay and skipTurn: who may submit what, when; the turn deadline from both sides."""

from __future__ import annotations

import pytest

from derelay.trainer.contract import Phase, Status
from derelay.trainer.errors import ChainError
from tests.conftest import Chain
from tests.contracts.conftest import (
    DATA_COMMITMENT,
    ETH,
    META_CID,
    Actors,
    Invariant,
    cid_of,
    digest_of,
    events_in,
    make_task,
    next_tx_at,
    reverts,
    simulate,
    submit,
)

GENESIS = digest_of(cid_of("genesis"))


@pytest.fixture
def turn(chain: Chain, actors: Actors, task: int) -> int:
    """Relayers 0 and 1 queued; relayer 0 holds round 1. Returns the round's deadline."""
    actors.relayers[0].join_relay(task, 2 * ETH)
    actors.relayers[1].join_relay(task, 2 * ETH)
    return actors.keeper.task_state(task).deadline


def test_holder_submits_and_review_begins(chain: Chain, actors: Actors, task: int, turn: int):
    holder = actors.relayers[0]
    child = cid_of("child-1", 0x70)

    receipt = holder.submit_relay(task, 1, GENESIS, child, META_CID, DATA_COMMITMENT, 640)

    now = chain.now()
    (event,) = events_in(holder, receipt, "RelaySubmitted")
    assert event == {
        "taskId": task,
        "round": 1,
        "relayer": holder.client.address,
        "parentDigest": GENESIS,
        "childCid": child,
        "metadataCid": META_CID,
        "dataCommitment": DATA_COMMITMENT,
        "samples": 640,
    }
    state = holder.task_state(task)
    assert (state.phase, state.round, state.holder, state.phase_start) == (
        Phase.REVIEW,
        1,
        holder.client.address,
        now,
    )
    assert (state.deadline, state.reveal_end, state.submission_count) == (now + 50, now + 100, 2)
    assert state.head_cid == cid_of("genesis")  # the head moves only on acceptance
    assert holder.record(task, digest_of(child)) == (
        holder.client.address,
        1,
        now,
        Status.PENDING,
        0,
        0x70,
    )


def test_submit_at_the_deadline_is_in_time(chain: Chain, actors: Actors, task: int, turn: int):
    next_tx_at(chain, turn)

    submit(actors.relayers[0], task, "child-1")

    assert actors.keeper.task_state(task).phase == Phase.REVIEW


def test_submit_after_the_deadline_reverts(chain: Chain, actors: Actors, task: int, turn: int):
    next_tx_at(chain, turn + 1)

    with reverts("DeRelay__TurnExpired", task, turn):
        submit(actors.relayers[0], task, "child-1")

    assert actors.keeper.task_state(task).phase == Phase.TURN


def test_submit_when_idle_reverts(chain: Chain, actors: Actors, task: int):
    with reverts("DeRelay__WrongPhase", task, Phase.IDLE, Phase.TURN):
        actors.relayers[0].submit_relay(task, 0, GENESIS, cid_of("c"), META_CID, DATA_COMMITMENT, 1)


def test_submit_twice_reverts_while_under_review(
    chain: Chain, actors: Actors, task: int, turn: int
):
    holder = actors.relayers[0]
    submit(holder, task, "child-1")

    with reverts("DeRelay__WrongPhase", task, Phase.REVIEW, Phase.TURN):
        holder.submit_relay(task, 1, GENESIS, cid_of("child-2"), META_CID, DATA_COMMITMENT, 1)


def test_queued_member_out_of_turn_cannot_submit(
    chain: Chain, actors: Actors, task: int, turn: int
):
    waiting = actors.relayers[1]

    with reverts(
        "DeRelay__NotHolder", task, waiting.client.address, actors.relayers[0].client.address
    ):
        submit(waiting, task, "child-1")


@pytest.mark.parametrize("round_", [0, 2])
def test_submit_for_another_round_reverts(
    chain: Chain, actors: Actors, task: int, turn: int, round_
):
    with reverts("DeRelay__WrongRound", task, round_, 1):
        submit(actors.relayers[0], task, "child-1", round_=round_)


def test_submit_from_an_unknown_parent_reverts(chain: Chain, actors: Actors, task: int, turn: int):
    fork = digest_of(cid_of("somebody else's model"))

    with reverts("DeRelay__StaleParent", task, fork, GENESIS):
        submit(actors.relayers[0], task, "child-1", parent=fork)


@pytest.mark.parametrize("which", ["child", "metadata"])
def test_submit_with_an_invalid_cid_reverts(
    chain: Chain, actors: Actors, task: int, turn: int, which
):
    holder = actors.relayers[0]
    bad = cid_of("x")[:-1]
    child, meta = (bad, META_CID) if which == "child" else (cid_of("child-1"), bad)
    args = (task, 1, GENESIS, child, meta, DATA_COMMITMENT, 1)

    with pytest.raises(ChainError):
        holder.submit_relay(*args)

    assert holder.task_state(task).phase == Phase.TURN
    with reverts("DeRelay__InvalidCid", bad):
        simulate(holder, "submitRelay", *args)


def test_submit_with_zero_samples_reverts(chain: Chain, actors: Actors, task: int, turn: int):
    with reverts("DeRelay__ZeroSamples"):
        submit(actors.relayers[0], task, "child-1", samples=0)


def void_review(chain: Chain, actors: Actors, task: int, label: str) -> bytes:
    """Relayer 0, the holder, submits `label`; with no validator seated the review goes void."""
    child = submit(actors.relayers[0], task, label)
    next_tx_at(chain, actors.keeper.task_state(task).deadline + 1)
    actors.keeper.finalize(task)
    return child


def test_after_a_void_review_the_holder_may_resubmit_its_child(
    chain: Chain, actors: Actors, task: int, turn: int, invariant: Invariant
):
    holder = actors.relayers[0]
    child = void_review(chain, actors, task, "child-1")
    assert holder.task_state(task).round == 2  # the holder kept the turn

    receipt = holder.submit_relay(task, 2, GENESIS, child, META_CID, DATA_COMMITMENT, 640)

    now = chain.now()
    (event,) = events_in(holder, receipt, "RelaySubmitted")
    assert (event["round"], event["relayer"], event["childCid"]) == (
        2,
        holder.client.address,
        child,
    )
    state = holder.task_state(task)
    assert (state.phase, state.round, state.submission_count) == (Phase.REVIEW, 2, 2)
    assert holder.record(task, digest_of(child)) == (
        holder.client.address,
        2,
        now,
        Status.PENDING,
        0,
        0x55,
    )
    assert [e.cid for e in holder.lineage(task)] == [cid_of("genesis"), child]  # one entry
    invariant.check()


def test_a_void_child_may_be_resubmitted_only_while_it_is_the_latest(
    chain: Chain, actors: Actors, task: int, turn: int
):
    holder, other = actors.relayers[:2]
    first = void_review(chain, actors, task, "child-1")
    second = void_review(chain, actors, task, "child-2")  # the kept turn: another child, void too
    assert holder.task_state(task).holder == other.client.address  # kept once, then the tail
    with reverts("DeRelay__ChildSeen", task, digest_of(second)):
        submit(other, task, "child-2", child=second)  # nobody takes another's void child
    next_tx_at(chain, holder.task_state(task).deadline + 1)
    actors.keeper.skip_turn(task)
    assert holder.task_state(task).holder == holder.client.address

    with reverts("DeRelay__ChildSeen", task, digest_of(first)):
        submit(holder, task, "child-1")

    submit(holder, task, "child-2", child=second)
    assert holder.task_state(task).phase == Phase.REVIEW


# ---------------------------------------------------------------------- skipTurn


def test_skip_at_the_deadline_reverts(chain: Chain, actors: Actors, task: int, turn: int):
    next_tx_at(chain, turn)

    with reverts("DeRelay__TurnNotExpired", task, turn):
        actors.keeper.skip_turn(task)


def test_keeper_skips_an_expired_turn(
    chain: Chain, actors: Actors, task: int, turn: int, invariant: Invariant
):
    holder, keeper = actors.relayers[0], actors.keeper
    next_tx_at(chain, turn + 1)

    receipt = keeper.skip_turn(task)

    slash = 2 * ETH * 1000 // 10_000  # slashTimeoutBp of the stake
    bounty = slash * 1000 // 10_000  # keeperBountyBp of the slash
    assert holder.account(task, holder.client.address).relayer_stake == 2 * ETH - slash
    assert keeper.withdrawable(keeper.client.address) == bounty
    assert keeper.task_state(task).pool == 10 * ETH + slash - bounty
    assert events_in(keeper, receipt, "RelayerSlashed") == [
        {"taskId": task, "round": 1, "relayer": holder.client.address, "amount": slash, "reason": 0}
    ]
    assert events_in(keeper, receipt, "KeeperPaid") == [
        {"taskId": task, "round": 1, "keeper": keeper.client.address, "bounty": bounty}
    ]
    state = keeper.task_state(task)
    assert (state.phase, state.round, state.holder) == (
        Phase.TURN,
        2,
        actors.relayers[1].client.address,
    )
    assert [m for m, _ in keeper.queue(task)] == [
        actors.relayers[1].client.address,
        holder.client.address,
    ]
    invariant.check()


def test_holder_skipping_itself_earns_no_bounty(
    chain: Chain, actors: Actors, task: int, turn: int, invariant: Invariant
):
    holder = actors.relayers[0]
    next_tx_at(chain, turn + 1)

    receipt = holder.skip_turn(task)

    slash = 2 * ETH // 10
    assert holder.account(task, holder.client.address).relayer_stake == 2 * ETH - slash
    assert holder.withdrawable(holder.client.address) == 0
    assert holder.task_state(task).pool == 10 * ETH + slash
    assert events_in(holder, receipt, "KeeperPaid") == []
    invariant.check()


def test_skip_below_min_stake_forces_the_holder_out(
    chain: Chain, actors: Actors, invariant: Invariant
):
    task = make_task(actors, slash_timeout_bp=2500)
    holder, other = actors.relayers[:2]
    holder.join_relay(task, ETH + ETH // 10)  # 1.1 ETH: a 25% slash leaves 0.825 < minStake
    other.join_relay(task, ETH)
    next_tx_at(chain, actors.keeper.task_state(task).deadline + 1)

    receipt = actors.keeper.skip_turn(task)

    slash = (ETH + ETH // 10) * 2500 // 10_000
    left = ETH + ETH // 10 - slash
    assert events_in(holder, receipt, "RelayerLeft") == [
        {"taskId": task, "relayer": holder.client.address, "refund": left, "forced": True}
    ]
    account = holder.account(task, holder.client.address)
    assert (account.queued, account.relayer_stake, account.withdrawable) == (False, 0, left)
    assert holder.queue(task) == [(other.client.address, ETH)]
    state = holder.task_state(task)
    assert (state.holder, state.round, state.queue_length) == (other.client.address, 2, 1)
    invariant.check()


def test_skip_during_review_reverts(chain: Chain, actors: Actors, task: int, turn: int):
    submit(actors.relayers[0], task, "child-1")
    next_tx_at(chain, turn + 1)

    with reverts("DeRelay__WrongPhase", task, Phase.REVIEW, Phase.TURN):
        actors.keeper.skip_turn(task)


def test_skip_when_idle_reverts(chain: Chain, actors: Actors, task: int):
    with reverts("DeRelay__WrongPhase", task, Phase.IDLE, Phase.TURN):
        actors.keeper.skip_turn(task)
