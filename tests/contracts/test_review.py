"""Validators: seats, commit and reveal windows, finalize timing, the median verdict."""

from __future__ import annotations

import pytest

from tests.conftest import Chain
from tests.contracts.conftest import (
    ETH,
    Actors,
    Invariant,
    Vote,
    cid_of,
    commit,
    events_in,
    make_task,
    next_tx_at,
    play_round,
    reveal,
    reverts,
    seat,
    submit,
)
from trainer.contract import ZERO_ADDRESS, Phase, Status, TaskState


@pytest.fixture
def review(chain: Chain, actors: Actors, task: int) -> TaskState:
    """Three seated validators; relayer 0 submitted round 1. Returns the review's state."""
    actors.relayers[0].join_relay(task, 2 * ETH)
    actors.relayers[1].join_relay(task, 2 * ETH)
    seat(actors.validators[:3], task)
    submit(actors.relayers[0], task, "child-1")
    return actors.keeper.task_state(task)


# ---------------------------------------------------------------------- seats


def test_register_takes_the_first_free_seat(chain: Chain, actors: Actors, task: int):
    v0, v1 = actors.validators[:2]

    receipt = v0.register_validator(task, ETH)
    v1.register_validator(task, 2 * ETH)

    assert events_in(v0, receipt, "ValidatorRegistered") == [
        {"taskId": task, "validator": v0.client.address, "seat": 0, "stake": ETH}
    ]
    account = v1.account(task, v1.client.address)
    assert (account.seat, account.validator_stake) == (1, 2 * ETH)
    seats = v0.seats(task)
    assert [s.validator for s in seats] == [v0.client.address, v1.client.address, ZERO_ADDRESS]
    assert v0.task_state(task).validator_count == 2


def test_register_below_validator_stake_reverts(chain: Chain, actors: Actors, task: int):
    with reverts("DeRelay__StakeTooLow", ETH - 1, ETH):
        actors.validators[0].register_validator(task, ETH - 1)


def test_register_twice_reverts(chain: Chain, actors: Actors, task: int):
    v0 = actors.validators[0]
    v0.register_validator(task, ETH)

    with reverts("DeRelay__AlreadyValidator", task, v0.client.address):
        v0.register_validator(task, ETH)


def test_register_when_every_seat_is_taken_reverts(chain: Chain, actors: Actors, task: int):
    seat(actors.validators[:3], task)

    with reverts("DeRelay__SeatsFull", task, 3):
        actors.validators[3].register_validator(task, ETH)


def test_leave_frees_the_seat_and_refunds(
    chain: Chain, actors: Actors, task: int, invariant: Invariant
):
    v0, v1, v2 = actors.validators[:3]
    seat([v0, v1], task)

    receipt = v0.leave_validator(task)

    assert events_in(v0, receipt, "ValidatorLeft") == [
        {"taskId": task, "validator": v0.client.address, "refund": ETH, "forced": False}
    ]
    account = v0.account(task, v0.client.address)
    assert (account.seat, account.validator_stake, account.withdrawable) == (-1, 0, ETH)
    v2.register_validator(task, ETH)  # takes the freed seat 0
    assert [s.validator for s in v0.seats(task)] == [
        v2.client.address,
        v1.client.address,
        ZERO_ADDRESS,
    ]
    invariant.check()


def test_leave_without_a_seat_reverts(chain: Chain, actors: Actors, task: int):
    v0 = actors.validators[0]

    with reverts("DeRelay__NotValidator", task, v0.client.address):
        v0.leave_validator(task)


def test_leave_with_an_unrevealed_commitment_reverts(
    chain: Chain, actors: Actors, task: int, review: TaskState
):
    v0 = actors.validators[0]
    commit(v0, task, 1, 5200)

    with reverts("DeRelay__BallotOpen", task, 1):
        v0.leave_validator(task)
    next_tx_at(chain, review.reveal_end + 1)
    with reverts("DeRelay__BallotOpen", task, 1):  # still open until finalized
        v0.leave_validator(task)


def test_a_revealed_validator_cannot_leave_before_finalize(
    chain: Chain, actors: Actors, task: int, review: TaskState
):
    # Leaving after seeing the other reveals would withdraw a vote and could void the round.
    v0, v1 = actors.validators[:2]
    commit(v0, task, 1, 5200)
    commit(v1, task, 1, 5200)
    next_tx_at(chain, review.deadline + 1)
    reveal(v0, task, 1, 5200)
    reveal(v1, task, 1, 5200)

    with reverts("DeRelay__BallotOpen", task, 1):
        v1.leave_validator(task)
    actors.keeper.finalize(task)

    (_, child) = actors.keeper.lineage(task)
    assert child.status == Status.ACCEPTED
    v1.leave_validator(task)


# ---------------------------------------------------------------------- commit


def test_commit_records_the_ballot(chain: Chain, actors: Actors, task: int, review: TaskState):
    v1 = actors.validators[1]

    receipt = commit(v1, task, 1, 5300)

    (event,) = events_in(v1, receipt, "ScoreCommitted")
    assert (event["round"], event["validator"]) == (1, v1.client.address)
    assert [(s.round, s.ballot) for s in v1.seats(task)] == [(0, 0), (1, 1), (0, 0)]


def test_commit_at_the_commit_end_is_in_time(
    chain: Chain, actors: Actors, task: int, review: TaskState
):
    next_tx_at(chain, review.deadline)

    commit(actors.validators[0], task, 1, 5300)

    assert actors.keeper.seats(task)[0].ballot == 1


def test_commit_after_the_commit_end_reverts(
    chain: Chain, actors: Actors, task: int, review: TaskState
):
    next_tx_at(chain, review.deadline + 1)

    with reverts("DeRelay__CommitClosed", task, review.deadline):
        commit(actors.validators[0], task, 1, 5300)


def test_commit_outside_review_reverts(chain: Chain, actors: Actors, task: int):
    actors.relayers[0].join_relay(task, ETH)
    seat(actors.validators[:1], task)

    with reverts("DeRelay__WrongPhase", task, Phase.TURN, Phase.REVIEW):
        commit(actors.validators[0], task, 1, 5300)


def test_commit_for_another_round_reverts(
    chain: Chain, actors: Actors, task: int, review: TaskState
):
    with reverts("DeRelay__WrongRound", task, 2, 1):
        commit(actors.validators[0], task, 2, 5300)


def test_commit_without_a_seat_reverts(chain: Chain, actors: Actors, task: int, review: TaskState):
    outsider = actors.validators[4]

    with reverts("DeRelay__NotValidator", task, outsider.client.address):
        commit(outsider, task, 1, 5300)


# ---------------------------------------------------------------------- reveal


def test_reveal_before_the_commit_window_ends_reverts(
    chain: Chain, actors: Actors, task: int, review: TaskState
):
    v0 = actors.validators[0]
    commit(v0, task, 1, 5300)
    next_tx_at(chain, review.deadline)

    with reverts("DeRelay__RevealNotOpen", task, review.deadline):
        reveal(v0, task, 1, 5300)


def test_reveal_inside_the_window_records_the_score(
    chain: Chain, actors: Actors, task: int, review: TaskState
):
    v0, v1 = actors.validators[:2]
    commit(v0, task, 1, 5300)
    commit(v1, task, 1, 5100)
    next_tx_at(chain, review.deadline + 1)

    receipt = reveal(v0, task, 1, 5300)
    next_tx_at(chain, review.reveal_end)  # the last second of the window
    reveal(v1, task, 1, 5100)

    (event,) = events_in(v0, receipt, "ScoreRevealed")
    assert (event["round"], event["validator"], event["score"]) == (1, v0.client.address, 5300)
    assert [(s.round, s.ballot, s.score) for s in v0.seats(task)] == [
        (1, 2, 5300),
        (1, 2, 5100),
        (0, 0, 0),
    ]


def test_reveal_after_the_window_reverts(
    chain: Chain, actors: Actors, task: int, review: TaskState
):
    v0 = actors.validators[0]
    commit(v0, task, 1, 5300)
    next_tx_at(chain, review.reveal_end + 1)

    with reverts("DeRelay__RevealClosed", task, review.reveal_end):
        reveal(v0, task, 1, 5300)


def test_reveal_of_a_score_above_10000_reverts(
    chain: Chain, actors: Actors, task: int, review: TaskState
):
    v0 = actors.validators[0]
    commit(v0, task, 1, 10_001)
    next_tx_at(chain, review.deadline + 1)

    with reverts("DeRelay__ScoreOutOfRange", 10_001):
        reveal(v0, task, 1, 10_001)


def test_reveal_without_a_commitment_reverts(
    chain: Chain, actors: Actors, task: int, review: TaskState
):
    next_tx_at(chain, review.deadline + 1)

    with reverts("DeRelay__NotCommitted", task, 1):
        reveal(actors.validators[0], task, 1, 5300)


def test_reveal_without_a_seat_reverts(chain: Chain, actors: Actors, task: int, review: TaskState):
    next_tx_at(chain, review.deadline + 1)
    outsider = actors.validators[4]

    with reverts("DeRelay__NotValidator", task, outsider.client.address):
        reveal(outsider, task, 1, 5300)


def test_reveal_for_another_round_reverts(
    chain: Chain, actors: Actors, task: int, review: TaskState
):
    commit(actors.validators[0], task, 1, 5300)
    next_tx_at(chain, review.deadline + 1)

    with reverts("DeRelay__WrongRound", task, 0, 1):
        reveal(actors.validators[0], task, 0, 5300)


def test_reveal_outside_review_reverts(chain: Chain, actors: Actors, task: int):
    with reverts("DeRelay__WrongPhase", task, Phase.IDLE, Phase.REVIEW):
        reveal(actors.validators[0], task, 0, 5300)


# ---------------------------------------------------------------------- finalize timing


def test_finalize_outside_review_reverts(chain: Chain, actors: Actors, task: int):
    actors.relayers[0].join_relay(task, ETH)

    with reverts("DeRelay__WrongPhase", task, Phase.TURN, Phase.REVIEW):
        actors.keeper.finalize(task)


def test_finalize_early_once_every_committed_validator_revealed(
    chain: Chain, actors: Actors, task: int, review: TaskState
):
    v0, v1 = actors.validators[:2]  # v2 never commits
    commit(v0, task, 1, 5300)
    commit(v1, task, 1, 5300)
    next_tx_at(chain, review.deadline + 1)
    reveal(v0, task, 1, 5300)
    reveal(v1, task, 1, 5300)

    actors.keeper.finalize(task)

    assert chain.now() < review.reveal_end
    assert actors.keeper.task_state(task).accepted_count == 1


def test_finalize_during_the_commit_window_reverts(
    chain: Chain, actors: Actors, task: int, review: TaskState
):
    next_tx_at(chain, review.deadline)  # nobody committed, but commits are still open

    with reverts("DeRelay__ReviewOpen", task, review.reveal_end):
        actors.keeper.finalize(task)


def test_finalize_with_no_commitments_right_after_the_commit_window(
    chain: Chain, actors: Actors, task: int, review: TaskState
):
    next_tx_at(chain, review.deadline + 1)

    actors.keeper.finalize(task)

    (_, child) = actors.keeper.lineage(task)
    assert (child.status, child.score) == (Status.VOID, 0)


def test_finalize_waits_for_the_reveal_window_while_a_commitment_is_unrevealed(
    chain: Chain, actors: Actors, task: int, review: TaskState
):
    v0, v1, v2 = actors.validators[:3]
    for v in (v0, v1, v2):
        commit(v, task, 1, 5300)
    next_tx_at(chain, review.deadline + 1)
    reveal(v0, task, 1, 5300)
    reveal(v1, task, 1, 5300)

    with reverts("DeRelay__ReviewOpen", task, review.reveal_end):
        actors.keeper.finalize(task)
    next_tx_at(chain, review.reveal_end)
    with reverts("DeRelay__ReviewOpen", task, review.reveal_end):
        actors.keeper.finalize(task)
    next_tx_at(chain, review.reveal_end + 1)
    actors.keeper.finalize(task)

    assert actors.keeper.task_state(task).phase == Phase.TURN


# ---------------------------------------------------------------------- the verdict


def test_the_verdict_takes_the_lower_median_of_an_even_count(chain: Chain, actors: Actors):
    task = make_task(actors, max_validators=5, tolerance=0)
    holder = actors.relayers[0]
    holder.join_relay(task, ETH)
    seat(actors.validators[:4], task)
    v = actors.validators

    # sorted 4990, 5000, 5200, 9000: lower median 5000 == ref (accepted; the upper, 5200, would gain)
    result = play_round(
        chain,
        task,
        holder,
        "child-1",
        [Vote(v[0], 9000), Vote(v[1], 4990), Vote(v[2], 5200), Vote(v[3], 5000)],
        keeper=actors.keeper,
    )

    (event,) = events_in(holder, result.finalize_receipt, "RoundFinalized")
    assert (event["verdict"], event["median"], event["reveals"], event["reward"]) == (
        Status.ACCEPTED,
        5000,
        4,
        0,
    )


@pytest.mark.parametrize(("median", "verdict"), [(4900, Status.ACCEPTED), (4899, Status.REJECTED)])
def test_the_verdict_accepts_within_tolerance_of_ref(
    chain: Chain, actors: Actors, task: int, median, verdict
):
    holder = actors.relayers[0]
    holder.join_relay(task, 2 * ETH)
    seat(actors.validators[:2], task)

    result = play_round(
        chain,
        task,
        holder,
        "child-1",
        [Vote(v, median) for v in actors.validators[:2]],
        keeper=actors.keeper,
    )

    (event,) = events_in(holder, result.finalize_receipt, "RoundFinalized")
    assert (event["verdict"], event["median"]) == (verdict, median)  # ref 5000, tolerance 100
    assert holder.record(task, result.child[4:])[3] == verdict


def test_a_median_of_zero_is_never_accepted_whatever_the_tolerance(chain: Chain, actors: Actors):
    # Validators score unusable weights (not loadable, wrong shape, NaN) as 0: such a head would
    # stop the relay, so even a tolerance wider than ref cannot let it in.
    task = make_task(actors, genesis_score=800, tolerance=10_000)
    holder = actors.relayers[0]
    holder.join_relay(task, 2 * ETH)
    seat(actors.validators[:2], task)

    result = play_round(
        chain,
        task,
        holder,
        "garbage",
        [Vote(v, 0) for v in actors.validators[:2]],
        keeper=actors.keeper,
    )

    (finalized,) = events_in(actors.keeper, result.finalize_receipt, "RoundFinalized")
    assert finalized["verdict"] == Status.REJECTED
    assert actors.keeper.head(task) == (cid_of("genesis"), 800)
