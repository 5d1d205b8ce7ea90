"""Validators: seats, commit and reveal windows, finalize timing, the median verdict."""

from __future__ import annotations

import random

import pytest
from web3.types import TxReceipt

from derelay.lab import metrics
from derelay.trainer.contract import ZERO_ADDRESS, Ballot, Phase, Status, TaskState
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


def test_a_validator_without_a_ballot_cannot_leave_a_review_to_dodge_its_miss(
    chain: Chain, actors: Actors, task: int, review: TaskState, invariant: Invariant
):
    v0, v1, v2 = actors.validators[:3]

    with reverts("DeRelay__BallotOpen", task, 1):
        v2.leave_validator(task)
    for v in (v0, v1):
        commit(v, task, 1, 5000)
    next_tx_at(chain, review.deadline + 1)
    for v in (v0, v1):
        reveal(v, task, 1, 5000)
    receipt = actors.keeper.finalize(task)

    miss = ETH * 500 // 10_000  # slashMissBp of its stake
    assert events_in(v2, receipt, "ValidatorMissed") == [
        {"taskId": task, "round": 1, "validator": v2.client.address, "amount": miss, "misses": 1}
    ]
    # below validatorStake after the miss: out, the rest withdrawable
    assert events_in(v2, receipt, "ValidatorLeft") == [
        {"taskId": task, "validator": v2.client.address, "refund": ETH - miss, "forced": True}
    ]
    account = v2.account(task, v2.client.address)
    assert (account.seat, account.validator_stake, account.withdrawable) == (-1, 0, ETH - miss)
    fees = 2 * (ETH // 100) + ETH // 1000  # two in-band reveals and the keeper bounty
    assert v2.task_state(task).pool == 10 * ETH - fees + miss
    invariant.check()


def test_a_validator_seated_after_the_commit_window_is_excused_and_may_leave(
    chain: Chain, actors: Actors, invariant: Invariant
):
    task = make_task(actors, max_validators=4)
    actors.relayers[0].join_relay(task, ETH)
    v0, v1, late, later = actors.validators[:4]
    seat([v0, v1], task)
    submit(actors.relayers[0], task, "child-1")
    review = actors.keeper.task_state(task)
    for v in (v0, v1):
        commit(v, task, 1, 5000)
    next_tx_at(chain, review.deadline + 1)
    late.register_validator(task, ETH)  # too late to commit: not asked to
    later.register_validator(task, ETH)

    later.leave_validator(task)  # no ballot in a review it was not asked to: free to go
    for v in (v0, v1):
        reveal(v, task, 1, 5000)
    receipt = actors.keeper.finalize(task)

    assert events_in(late, receipt, "ValidatorMissed") == []
    account = late.account(task, late.client.address)
    assert (account.seat, account.validator_stake, account.withdrawable) == (2, ETH, 0)
    assert late.seats(task)[2].misses == 0
    assert later.withdrawable(later.client.address) == ETH
    invariant.check()


def test_a_validator_seated_while_the_commit_window_is_open_must_commit(
    chain: Chain, actors: Actors, invariant: Invariant
):
    # Otherwise a squatter could leave between reviews and take the seats back after each
    # submission for free.
    task = make_task(actors, max_validators=3)
    actors.relayers[0].join_relay(task, ETH)
    v0, v1, joiner = actors.validators[:3]
    seat([v0, v1], task)
    submit(actors.relayers[0], task, "child-1")
    joiner.register_validator(task, 2 * ETH)

    with reverts("DeRelay__BallotOpen", task, 1):
        joiner.leave_validator(task)
    review = actors.keeper.task_state(task)
    for v in (v0, v1):
        commit(v, task, 1, 5000)
    next_tx_at(chain, review.deadline + 1)
    for v in (v0, v1):
        reveal(v, task, 1, 5000)
    receipt = actors.keeper.finalize(task)

    miss = 2 * ETH * 500 // 10_000
    assert events_in(joiner, receipt, "ValidatorMissed") == [
        {
            "taskId": task,
            "round": 1,
            "validator": joiner.client.address,
            "amount": miss,
            "misses": 1,
        }
    ]
    assert joiner.account(task, joiner.client.address).validator_stake == 2 * ETH - miss
    invariant.check()


def test_the_holder_is_never_charged_for_its_own_review_and_may_leave_its_seat(
    chain: Chain, actors: Actors, invariant: Invariant
):
    task = make_task(actors, max_validators=3)
    holder = actors.relayers[0]
    holder.join_relay(task, ETH)
    holder.register_validator(task, ETH)  # seat 0: it cannot commit to its own child
    v0, v1 = actors.validators[:2]
    seat([v0, v1], task)

    result = play_round(
        chain, task, holder, "child-1", [Vote(v0, 5000), Vote(v1, 5000)], keeper=actors.keeper
    )
    submit(holder, task, "child-2")
    holder.leave_validator(task)

    assert events_in(holder, result.finalize_receipt, "ValidatorMissed") == []
    account = holder.account(task, holder.client.address)
    assert (account.seat, account.validator_stake, account.withdrawable) == (-1, 0, ETH)
    invariant.check()


def test_a_reveal_clears_the_misses_and_max_misses_in_a_row_cost_the_seat(
    chain: Chain, actors: Actors, invariant: Invariant
):
    task = make_task(actors, max_validators=3)
    alice = actors.relayers[0]  # alone: she holds every turn
    alice.join_relay(task, ETH)
    v0, v1, lazy = actors.validators[:3]
    seat([v0, v1], task)
    lazy.register_validator(task, 4 * ETH)  # enough stake that only the miss count removes it
    honest = [Vote(v0, 5000), Vote(v1, 5000)]
    stake, pool = 4 * ETH, 10 * ETH
    misses: list[list[int]] = []

    def turn(label: str, votes: list[Vote]) -> TxReceipt:
        nonlocal stake, pool
        result = play_round(chain, task, alice, label, votes, keeper=actors.keeper)
        missed = events_in(lazy, result.finalize_receipt, "ValidatorMissed")
        for event in missed:
            assert event["amount"] == stake * 500 // 10_000
            stake -= event["amount"]
            pool += event["amount"]
        pool -= len(votes) * (ETH // 100) + ETH // 1000  # in-band reveals, keeper bounty
        misses.append([e["misses"] for e in missed])
        assert lazy.task_state(task).pool == pool
        invariant.check()
        return result.finalize_receipt

    turn("c-1", honest)
    turn("c-2", honest)
    assert lazy.seats(task)[2].misses == 2
    turn("c-3", [*honest, Vote(lazy, 5000)])  # one reveal clears the count (and earns)
    assert lazy.seats(task)[2].misses == 0
    turn("c-4", honest)
    turn("c-5", honest)
    assert (lazy.seats(task)[2].misses, lazy.account(task, lazy.client.address).seat) == (2, 2)
    last = turn("c-6", honest)

    assert misses == [[1], [2], [], [1], [2], [3]]
    assert events_in(lazy, last, "ValidatorLeft") == [
        {"taskId": task, "validator": lazy.client.address, "refund": stake, "forced": True}
    ]
    account = lazy.account(task, lazy.client.address)
    assert stake == 4 * ETH * 95**5 // 100**5  # five misses of 5% each, exact here
    assert (account.seat, account.validator_stake, account.withdrawable) == (
        -1,
        0,
        stake + ETH // 100,  # with its fee of c-3
    )
    assert lazy.task_state(task).validator_count == 2


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


def test_reveal_inside_the_window_records_both_scores(
    chain: Chain, actors: Actors, task: int, review: TaskState
):
    v0, v1 = actors.validators[:2]
    commit(v0, task, 1, 5300, champion=5100)
    commit(v1, task, 1, 5100)
    next_tx_at(chain, review.deadline + 1)

    receipt = reveal(v0, task, 1, 5300, champion=5100)
    next_tx_at(chain, review.reveal_end)  # the last second of the window
    reveal(v1, task, 1, 5100)

    (event,) = events_in(v0, receipt, "ScoreRevealed")
    assert (event["round"], event["validator"], event["childScore"], event["championScore"]) == (
        1,
        v0.client.address,
        5300,
        5100,
    )
    assert [(s.round, s.ballot, s.child_score, s.champion_score) for s in v0.seats(task)] == [
        (1, Ballot.REVEALED, 5300, 5100),
        (1, Ballot.REVEALED, 5100, 5000),  # the champion's score on chain, by default
        (0, Ballot.NONE, 0, 0),
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


def test_reveal_of_a_champion_score_above_10000_reverts(
    chain: Chain, actors: Actors, task: int, review: TaskState
):
    v0 = actors.validators[0]
    commit(v0, task, 1, 5300, champion=10_001)
    next_tx_at(chain, review.deadline + 1)

    with reverts("DeRelay__ScoreOutOfRange", 10_001):
        reveal(v0, task, 1, 5300, champion=10_001)


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


def test_the_verdict_takes_the_lower_median_of_each_even_count(chain: Chain, actors: Actors):
    task = make_task(actors, max_validators=5)
    holder = actors.relayers[0]
    holder.join_relay(task, ETH)
    seat(actors.validators[:4], task)
    v = actors.validators

    # child 4990, 5000, 5200, 9000 -> 5000; champion 4000, 5000, 5000, 5000 -> 5000;
    # paired deltas -10, 200, 1000, 4000 -> 200, which decides: the difference of the two medians
    # (0) would not crown the child, the upper median delta (1000) would pay five times as much.
    result = play_round(
        chain,
        task,
        holder,
        "child-1",
        [
            Vote(v[0], 9000, champion=5000),
            Vote(v[1], 4990, champion=5000),
            Vote(v[2], 5200, champion=5000),
            Vote(v[3], 5000, champion=4000),
        ],
        keeper=actors.keeper,
    )

    (event,) = events_in(holder, result.finalize_receipt, "RoundFinalized")
    reward = ETH // 10 + 200 * (ETH // 1000)
    assert (
        event["verdict"],
        event["childScore"],
        event["championScore"],
        event["delta"],
        event["reveals"],
        event["reward"],
    ) == (Status.ACCEPTED, 5000, 5000, 200, 4, reward)
    assert actors.keeper.champion(task) == (result.child, 5000)


def _ballots(case: int) -> list[tuple[int, int]]:
    """3 to 5 (child, champion) reveals around a drawn median delta, some far from it, and a
    champion measured a little differently on each validator's data."""
    rng = random.Random(case)
    centre = rng.choice([-6000, -3000, -1200, -200, 300])
    out = []
    for _ in range(rng.choice([3, 4, 5])):
        champion = 5000 + rng.randrange(-300, 301)
        delta = centre + rng.randrange(-400, 401)
        if rng.random() < 0.35:  # a liar, a parrot or a harsh one
            delta = rng.choice([0, 500, -9000, centre + 1001, centre - 1001])
        out.append((min(max(champion + delta, 0), 10_000), champion))
    return out


@pytest.mark.parametrize("case", range(12))
def test_outvoted_reveals_and_their_charges_match_the_mirror(
    chain: Chain, actors: Actors, invariant: Invariant, case: int
):
    # prepare: slashBand 1000; validators staked twice the least, so a charge keeps the seat
    task = make_task(actors, max_validators=5)
    holder = actors.relayers[0]
    holder.join_relay(task, 2 * ETH)
    ballots = _ballots(case)
    validators = actors.validators[: len(ballots)]
    seat(validators, task, stake=2 * ETH)
    votes = [
        Vote(v, c, champion=h, parent=h) for v, (c, h) in zip(validators, ballots, strict=True)
    ]

    # act
    result = play_round(
        chain, task, holder, "child", votes, keeper=actors.keeper, check=invariant.check
    )

    # check: the chain's verdict and outvoted reveals are the mirror's, each charged 10% of 2 ETH
    p = actors.keeper.task_params(task)
    mirrored = [(c, h, h) for c, h in ballots]
    outcome = metrics.review(mirrored, p.quorum, p.slash_band, p.advance_band, p.min_gain)
    (event,) = events_in(holder, result.finalize_receipt, "RoundFinalized")
    assert (Status(event["verdict"]).name.lower(), event["delta"]) == (
        outcome.verdict,
        outcome.delta,
    )
    expected = [
        (validators[i].client.address, 2 * ETH // 10)
        for i in metrics.outvoted(mirrored, outcome, p.slash_band)
    ]
    charged = events_in(holder, result.finalize_receipt, "ValidatorOutvoted")
    assert [(e["validator"], e["amount"]) for e in charged] == expected


# Test bands: slashBand 1000, advanceBand 100; the champion (genesis) scores 5000.
@pytest.mark.parametrize(
    ("delta", "verdict"),
    [
        (10, Status.ACCEPTED),  # beats the champion by minGain: head and champion
        (9, Status.ACCEPTED),  # beats it by less: head only
        (0, Status.ACCEPTED),  # as good as the champion: head only
        (-100, Status.ACCEPTED),  # on the advance band: head only
        (-101, Status.HELD),  # just outside the advance band: nothing moves
        (-1000, Status.HELD),  # on the slash band: still not slashed
        (-1001, Status.REJECTED),  # outside the slash band: slashed
    ],
)
def test_the_verdict_splits_at_the_two_bands(
    chain: Chain, actors: Actors, task: int, invariant: Invariant, delta: int, verdict: Status
):
    holder = actors.relayers[0]
    holder.join_relay(task, 2 * ETH)
    seat(actors.validators[:2], task)

    # the validators measure the champion at 4000 on their data: only the paired delta counts
    result = play_round(
        chain,
        task,
        holder,
        "child-1",
        [Vote(v, 4000 + delta, champion=4000) for v in actors.validators[:2]],
        keeper=actors.keeper,
    )

    (event,) = events_in(holder, result.finalize_receipt, "RoundFinalized")
    assert (event["verdict"], event["childScore"], event["championScore"], event["delta"]) == (
        verdict,
        4000 + delta,
        4000,
        delta,
    )
    assert holder.record(task, result.child[4:])[3:5] == (verdict, 4000 + delta)
    head = (result.child, 4000 + delta) if verdict == Status.ACCEPTED else (cid_of("genesis"), 5000)
    assert actors.keeper.head(task) == head
    crowned = delta >= 10  # minGain
    champion = (result.child, 4000 + delta) if crowned else (cid_of("genesis"), 4000)
    assert actors.keeper.champion(task) == champion  # the score follows the current validators
    slash = 2 * ETH * 2000 // 10_000 if verdict == Status.REJECTED else 0
    reward = ETH // 10 + 10 * (ETH // 1000) if crowned else 0  # baseReward + rewardPerPoint
    account = holder.account(task, holder.client.address)
    assert (account.relayer_stake, account.withdrawable, account.shares) == (
        2 * ETH - slash,
        reward,
        reward,
    )
    assert actors.keeper.task_state(task).pool == (
        10 * ETH + slash - reward - 2 * (ETH // 100) - ETH // 1000  # two fees, keeper bounty
    )
    invariant.check()


@pytest.mark.parametrize("champion", [0, 800])
def test_a_child_median_of_zero_is_never_accepted_whatever_the_bands(
    chain: Chain, actors: Actors, invariant: Invariant, champion: int
):
    # Validators score unusable weights (not loadable, wrong shape, NaN) as 0: such a head would
    # stop the relay, so even bands as wide as the scale, or a champion the validators also score
    # 0 (delta 0), cannot let it in.
    task = make_task(actors, genesis_score=800, slash_band=10_000, advance_band=10_000)
    holder = actors.relayers[0]
    holder.join_relay(task, 2 * ETH)
    seat(actors.validators[:2], task)

    result = play_round(
        chain,
        task,
        holder,
        "garbage",
        [Vote(v, 0, champion=champion) for v in actors.validators[:2]],
        keeper=actors.keeper,
    )

    (finalized,) = events_in(actors.keeper, result.finalize_receipt, "RoundFinalized")
    assert (finalized["verdict"], finalized["childScore"], finalized["delta"]) == (
        Status.REJECTED,
        0,
        -champion,
    )
    assert actors.keeper.head(task) == (cid_of("genesis"), 800)
    assert actors.keeper.champion(task) == (cid_of("genesis"), champion)
    assert holder.account(task, holder.client.address).relayer_stake == 2 * ETH - 2 * ETH // 5
    invariant.check()
