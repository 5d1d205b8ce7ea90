"""The attacks of DESIGN.md section 2.1 against review v2, on the embedded chain.

Each test plays the attacker as measured on the first mechanism and asserts what review v2 makes
of it: where the head and the champion stand, who is paid or slashed to the wei, which seats are
held, and the error where one is due. Validators are modelled as scoring every model at its true
accuracy plus an offset of their own held-out data (harder or easier): the paired differences
cancel the offsets, the medians do not.

Test parameters (conftest.make_params): slashBand 1000, advanceBand 100, minGain 10, baseReward
0.1 ETH, rewardPerPoint 0.001 ETH, validatorFee 0.01 ETH, keeper bounty 10% of it, slashRejectBp
20%, slashNoRevealBp 10%, slashMissBp 5%, maxMisses 3, quorum 2, 3 seats.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from web3.types import TxReceipt

from derelay.trainer.chain import ChainClient
from derelay.trainer.contract import ZERO_ADDRESS, DeRelayContract, Phase, Status
from tests.conftest import Chain
from tests.contracts.conftest import (
    ETH,
    Actors,
    Invariant,
    RoundResult,
    Vote,
    cid_of,
    commit,
    digest_of,
    events_in,
    make_task,
    next_tx_at,
    play_round,
    reveal,
    reverts,
    seat,
    submit,
)

FEE = ETH // 100  # validatorFee
BOUNTY = FEE * 1000 // 10_000  # what finalize pays its caller in a decided review
BASE = ETH // 10  # baseReward
PER_POINT = ETH // 1000  # rewardPerPoint
GENESIS = cid_of("genesis")


def addr(view: DeRelayContract) -> str:
    return view.client.address


def finalized(view: DeRelayContract, receipt: TxReceipt) -> dict[str, Any]:
    (event,) = events_in(view, receipt, "RoundFinalized")
    return event


def reward(gain: int) -> int:
    """The relay reward for beating the champion by `gain` bp (>= minGain)."""
    return BASE + PER_POINT * gain


@dataclass(frozen=True)
class Panel:
    """Validators that measure a model at its true accuracy plus their own data's offset."""

    views: Sequence[DeRelayContract]
    offsets: Sequence[int]

    def votes(self, child: int, champion: int, parent: int) -> list[Vote]:
        return [
            Vote(v, _clamp(child + o), champion=_clamp(champion + o), parent=_clamp(parent + o))
            for v, o in zip(self.views, self.offsets, strict=True)
        ]


def _clamp(score: int) -> int:
    return max(0, min(10_000, score))


class Truth:
    """True accuracy of every model in a task, by CID digest."""

    def __init__(self, genesis: int = 5000) -> None:
        self.scores = {digest_of(GENESIS): genesis}

    def __getitem__(self, cid: bytes) -> int:
        return self.scores[digest_of(cid)]

    def __setitem__(self, cid: bytes, score: int) -> None:
        self.scores[digest_of(cid)] = score

    def head(self, view: DeRelayContract, task: int) -> int:
        return self[view.head(task)[0]]

    def champion(self, view: DeRelayContract, task: int) -> int:
        return self[view.champion(task)[0]]


def holder_of(views: Sequence[DeRelayContract], task: int) -> DeRelayContract:
    holder = views[0].task_state(task).holder
    (view,) = [v for v in views if addr(v) == holder]
    return view


def extra(
    relay: DeRelayContract, clients: list[ChainClient], invariant: Invariant, i: int
) -> DeRelayContract:
    """A funded account beyond the named actors (clients 12..15), counted by the invariant."""
    view = relay.as_account(clients[12 + i])
    invariant.track(addr(view))
    return view


# ---------------------------------------------------------------------- walk-down


@pytest.mark.parametrize("places", [1, 3], ids=["alone", "sybil-places"])
def test_walk_down_keeps_the_head_within_the_advance_band_of_the_champion(
    chain: Chain, actors: Actors, task: int, invariant: Invariant, places: int
):
    # The walker holds every turn (alone in a quiet task, or through several queue places of its
    # own). It reads the head, the champion and the bands from the chain and aims each child at
    # the deepest point it hopes to pass: advanceBand below the champion or below the head, just
    # outside the advance band, or on the slash band.
    walker = actors.relayers[:places]
    for view in walker:
        view.join_relay(task, 2 * ETH)
    panel = Panel(actors.validators[:3], (-40, 0, 60))
    seat(panel.views, task)
    keeper = actors.keeper
    bands = keeper.task_params(task)
    truth = Truth()

    def aim(turn: int, head: int, champion: int) -> int:
        return [
            champion - bands.advance_band,  # on the advance band
            head - bands.advance_band,  # one more step down from the head
            champion - bands.slash_band,  # on the slash band
            champion - bands.advance_band - 1,  # just outside the advance band
        ][turn % 4]

    pool = 10 * ETH
    verdicts: list[Status] = []

    for turn in range(12):
        holder = holder_of(walker, task)
        score = aim(turn, keeper.head(task)[1], keeper.champion(task)[1])
        result = play_round(
            chain,
            task,
            holder,
            f"walk-{turn}",
            panel.votes(score, truth.champion(keeper, task), truth.head(keeper, task)),
            keeper=keeper,
        )
        truth[result.child] = score
        event = finalized(keeper, result.finalize_receipt)
        verdicts.append(event["verdict"])
        pool -= 3 * FEE + BOUNTY

        state = keeper.task_state(task)
        assert (event["reward"], state.champion_cid, state.total_shares) == (0, GENESIS, 0)
        assert events_in(keeper, result.finalize_receipt, "ChampionCrowned") == []
        assert state.head_score - state.champion_score >= -bands.advance_band
        assert truth.head(keeper, task) - truth.champion(keeper, task) >= -bands.advance_band
        assert state.pool == pool
        invariant.check()

    # Only the children aimed at the advance band itself became the head: the walk never gets a
    # second step, so the head stays within 100 bp of the champion, the genesis.
    assert verdicts == [Status.ACCEPTED, Status.HELD, Status.HELD, Status.HELD] * 3
    assert keeper.head(task) == (cid_of("walk-8"), 4900)
    assert keeper.champion(task) == (GENESIS, 5000)

    chance = holder_of(walker, task)
    result = play_round(
        chain, task, chance, "chance-level", panel.votes(1000, 5000, 5000), keeper=keeper
    )

    assert finalized(keeper, result.finalize_receipt)["verdict"] == Status.REJECTED
    assert keeper.head(task) == (cid_of("walk-8"), 4900)
    slash = 2 * ETH * 2000 // 10_000
    assert keeper.task_state(task).pool == pool - 3 * FEE - BOUNTY + slash
    for view in walker:
        account = keeper.account(task, addr(view))
        stake = 2 * ETH - (slash if view is chance else 0)
        assert (account.relayer_stake, account.withdrawable, account.shares) == (stake, 0, 0)
    invariant.check()


# ---------------------------------------------------------------------- within-band poisoner


def test_a_within_band_poisoner_is_held_or_advances_without_pay_and_is_never_licensed(
    chain: Chain, actors: Actors, task: int, invariant: Invariant
):
    alice, mallory = actors.relayers[:2]  # honest, poisoner: their turns alternate
    alice.join_relay(task, 2 * ETH)
    mallory.join_relay(task, 2 * ETH)
    panel = Panel(actors.validators[:3], (-30, 0, 50))
    seat(panel.views, task)
    keeper = actors.keeper
    bands = keeper.task_params(task)
    truth = Truth()
    pool = 10 * ETH
    poisoned: list[bytes] = []

    def turn(view: DeRelayContract, label: str, score: int) -> dict[str, Any]:
        nonlocal pool
        result = play_round(
            chain,
            task,
            view,
            label,
            panel.votes(score, truth.champion(keeper, task), truth.head(keeper, task)),
            keeper=keeper,
        )
        invariant.check()
        truth[result.child] = score
        if view is mallory:
            poisoned.append(result.child)
        event = finalized(keeper, result.finalize_receipt)
        pool -= 3 * FEE + BOUNTY + event["reward"]
        assert keeper.task_state(task).pool == pool
        assert keeper.champion(task)[0] not in poisoned  # what consumers license
        return event

    def aim(below: int) -> int:
        """Mallory's child: `below` under the champion's score as the chain states it."""
        return keeper.champion(task)[1] - below

    assert turn(alice, "a-1", 5600)["reward"] == reward(600)
    honest_head = keeper.head(task)

    held = turn(mallory, "m-1", aim(bands.slash_band))  # just inside the slash band
    assert (held["verdict"], held["delta"], held["reward"]) == (Status.HELD, -1000, 0)
    assert keeper.head(task) == honest_head
    assert turn(alice, "a-2", 5650)["reward"] == reward(50)
    held = turn(mallory, "m-2", aim(bands.advance_band + 1))  # just outside the advance band
    assert (held["verdict"], held["delta"], held["reward"]) == (Status.HELD, -101, 0)
    assert turn(alice, "a-3", 5700)["reward"] == reward(50)
    licensed = keeper.champion(task)
    advanced = turn(mallory, "m-3", aim(bands.advance_band))  # on the advance band
    assert (advanced["verdict"], advanced["delta"], advanced["reward"]) == (
        Status.ACCEPTED,
        -100,
        0,
    )
    assert keeper.head(task) == (cid_of("m-3"), 5600)
    assert keeper.champion(task) == licensed == (cid_of("a-3"), 5700)

    actors.consumer.pay_for_model(task, ETH)  # licenses a-3; the royalty goes by shares
    pool += ETH // 2
    assert turn(alice, "a-4", 5750)["reward"] == reward(50)  # from the poisoned head: it recovers

    m = keeper.account(task, addr(mallory))
    assert (m.relayer_stake, m.withdrawable, m.shares, m.pending_royalties) == (2 * ETH, 0, 0, 0)
    a = keeper.account(task, addr(alice))
    assert a.shares == keeper.task_state(task).total_shares == reward(600) + 3 * reward(50)
    assert a.withdrawable == a.shares + ETH // 2  # all of the royalty: exact, 1 ETH of shares
    assert [keeper.record(task, digest_of(c))[3] for c in poisoned] == [
        Status.HELD,
        Status.HELD,
        Status.ACCEPTED,
    ]
    invariant.check()


# ---------------------------------------------------------------------- dip-and-recover


def test_dip_and_recover_earns_nothing_and_only_gain_over_the_champion_pays(
    chain: Chain, actors: Actors, task: int, invariant: Invariant
):
    dipper = actors.relayers[0]  # alone: every turn is its own
    dipper.join_relay(task, 2 * ETH)
    panel = Panel(actors.validators[:3], (-30, 0, 50))
    seat(panel.views, task)
    keeper = actors.keeper
    truth = Truth()
    pool = 10 * ETH

    def turn(label: str, score: int) -> dict[str, Any]:
        nonlocal pool
        result = play_round(
            chain,
            task,
            dipper,
            label,
            panel.votes(score, truth.champion(keeper, task), truth.head(keeper, task)),
            keeper=keeper,
        )
        invariant.check()
        truth[result.child] = score
        pool -= 3 * FEE + BOUNTY
        return finalized(keeper, result.finalize_receipt)

    for cycle in range(3):
        dip = turn(f"dip-{cycle}", 4900)
        # the old champion's weights re-encoded: a new CID that scores what the champion scores
        recovery = turn(f"genesis-reencoded-{cycle}", 5000)

        assert (dip["verdict"], dip["delta"], dip["reward"]) == (Status.ACCEPTED, -100, 0)
        assert (recovery["verdict"], recovery["delta"], recovery["reward"]) == (
            Status.ACCEPTED,
            0,
            0,
        )
        assert keeper.head(task) == (cid_of(f"genesis-reencoded-{cycle}"), 5000)
        assert keeper.champion(task) == (GENESIS, 5000)
        account = keeper.account(task, addr(dipper))
        assert (account.shares, account.withdrawable) == (0, 0)
        assert keeper.task_state(task).total_shares == 0
        assert keeper.task_state(task).pool == pool
    assert keeper.events("ChampionCrowned") == []

    turn("dip-3", 4900)
    better = turn("real-gain", 5037)  # 137 over the head it came from, 37 over the champion

    assert (better["verdict"], better["delta"], better["reward"]) == (
        Status.ACCEPTED,
        37,
        reward(37),
    )
    assert keeper.champion(task) == (cid_of("real-gain"), 5037)
    account = keeper.account(task, addr(dipper))
    assert (account.shares, account.withdrawable, account.relayer_stake) == (
        reward(37),
        reward(37),
        2 * ETH,
    )
    assert keeper.task_state(task).pool == pool - reward(37)
    invariant.check()


def test_a_near_copy_of_an_uncrowned_head_that_noise_crowns_is_not_paid(
    chain: Chain, actors: Actors, task: int, invariant: Invariant
):
    # prepare: an honest child 9 over the champion, under minGain 10: the head, not the champion
    alice, mallory = actors.relayers[:2]
    alice.join_relay(task, 2 * ETH)
    mallory.join_relay(task, 2 * ETH)
    validators = actors.validators[:3]
    seat(validators, task)
    keeper = actors.keeper
    honest = play_round(
        chain, task, alice, "honest", [Vote(v, 5009) for v in validators], keeper=keeper
    )
    assert keeper.champion(task) == (GENESIS, 5000)
    assert keeper.head(task) == (honest.child, 5009)

    # act: mallory resubmits the head nudged by a hair. On each validator's data it scores what
    # its parent scores, give or take one flipped sample; against the champion (another model)
    # the same flips push the median delta to minGain.
    ballots = [(5012, 5000, 5009), (5011, 5000, 5011), (5009, 5000, 5009)]
    copy = play_round(
        chain,
        task,
        mallory,
        "near-copy",
        [
            Vote(v, c, champion=h, parent=p)
            for v, (c, h, p) in zip(validators, ballots, strict=True)
        ],
        keeper=keeper,
        check=invariant.check,
    )

    # check: crowned (the champion moves to what the head already was), progress 0: unpaid
    event = finalized(keeper, copy.finalize_receipt)
    assert (event["verdict"], event["delta"], event["progress"], event["reward"]) == (
        Status.ACCEPTED,
        11,
        0,
        0,
    )
    assert keeper.champion(task) == (copy.child, 5011)
    account = keeper.account(task, addr(mallory))
    assert (account.shares, account.withdrawable, account.relayer_stake) == (0, 0, 2 * ETH)


# ---------------------------------------------------------------------- seat squatting


def test_a_seat_squatter_pays_for_every_missed_review_and_loses_its_seats(
    chain: Chain,
    actors: Actors,
    task: int,
    invariant: Invariant,
    relay: DeRelayContract,
    clients: list[ChainClient],
):
    squatter = actors.validators[:3]  # one party, every seat, never commits
    honest = actors.validators[3:5]
    seat(squatter, task, 2 * ETH)
    alice = actors.relayers[0]
    alice.join_relay(task, 2 * ETH)
    keeper = actors.keeper
    with reverts("DeRelay__SeatsFull", task, 3):
        honest[0].register_validator(task, ETH)
    stake, pool = 2 * ETH, 10 * ETH
    child = cid_of("child-1")

    for round_ in (1, 2, 3):
        submit(alice, task, "child-1")  # rounds 2 and 3: her own void child again
        review = keeper.task_state(task)
        with reverts("DeRelay__BallotOpen", task, round_):
            squatter[0].leave_validator(task)  # no dodging the charge
        with reverts("DeRelay__SeatsFull", task, 3):
            honest[0].register_validator(task, ETH)
        next_tx_at(chain, review.deadline + 1)

        receipt = keeper.finalize(task)

        miss = stake * 500 // 10_000
        stake -= miss
        pool += 3 * miss  # a void review pays nothing out: no fee, no bounty
        assert finalized(keeper, receipt)["verdict"] == Status.VOID
        assert events_in(keeper, receipt, "ValidatorMissed") == [
            {
                "taskId": task,
                "round": round_,
                "validator": addr(v),
                "amount": miss,
                "misses": round_,
            }
            for v in squatter
        ]
        assert events_in(keeper, receipt, "TurnStarted")[0]["holder"] == addr(alice)
        assert keeper.task_state(task).pool == pool
        assert keeper.withdrawable(addr(keeper)) == 0
        invariant.check()

    # maxMisses (3) in a row: every seat lost, the rest of the stake withdrawable
    assert stake == 2 * ETH * 95**3 // 100**3
    assert events_in(keeper, receipt, "ValidatorLeft") == [
        {"taskId": task, "validator": addr(v), "refund": stake, "forced": True} for v in squatter
    ]
    for v in squatter:
        account = keeper.account(task, addr(v))
        assert (account.seat, account.validator_stake, account.withdrawable) == (-1, 0, stake)
    assert [s.validator for s in keeper.seats(task)] == [ZERO_ADDRESS] * 3

    honest[0].register_validator(task, ETH)  # no SeatsFull any more
    submit(alice, task, "child-1", child=child)
    honest[1].register_validator(task, ETH)  # seated during the review: may still commit
    late = extra(relay, clients, invariant, 0)
    review = keeper.task_state(task)
    for v in honest:
        commit(v, task, 4, 5200)
    next_tx_at(chain, review.deadline + 1)
    late.register_validator(task, ETH)  # seated after the commit window closed: excused
    for v in honest:
        reveal(v, task, 4, 5200)
    receipt = keeper.finalize(task)

    event = finalized(keeper, receipt)
    assert (event["round"], event["verdict"], event["reward"]) == (4, Status.ACCEPTED, reward(200))
    assert keeper.champion(task) == (child, 5200)
    assert events_in(keeper, receipt, "ValidatorMissed") == []
    assert keeper.account(task, addr(late)).validator_stake == ETH
    assert keeper.task_state(task).pool == pool - reward(200) - 2 * FEE - BOUNTY
    assert keeper.withdrawable(addr(alice)) == reward(200)
    invariant.check()


def test_a_squatter_committing_without_revealing_loses_its_seats_after_max_misses_whatever_its_stake(
    chain: Chain, actors: Actors, task: int, invariant: Invariant
):
    # Twenty validatorStakes a seat, a commit in reviews 1 and 3 (never revealed), none in review
    # 2: a commit does not clear the count of reviews without a reveal, so the seats go at the
    # third review (maxMisses) and not when the stake runs out (the 29th review of 5% and 10%).
    squatter = actors.validators[:3]
    seat(squatter, task, 20 * ETH)
    alice = actors.relayers[0]
    alice.join_relay(task, 2 * ETH)
    keeper = actors.keeper
    stake, pool, round_ = 20 * ETH, 10 * ETH, 0

    while keeper.task_state(task).validator_count:
        round_ += 1
        submit(alice, task, "child-1")  # her void child each time: she keeps the turn
        review = keeper.task_state(task)
        live = round_ != 2
        if live:
            for v in squatter:
                commit(v, task, round_, 9999)
        next_tx_at(chain, (review.reveal_end if live else review.deadline) + 1)
        receipt = keeper.finalize(task)
        slash = stake * (1000 if live else 500) // 10_000
        stake -= slash
        pool += 3 * slash
        assert finalized(keeper, receipt)["verdict"] == Status.VOID
        assert keeper.task_state(task).pool == pool
        name = "ValidatorSlashed" if live else "ValidatorMissed"
        assert events_in(keeper, receipt, name) == [
            {
                "taskId": task,
                "round": round_,
                "validator": addr(v),
                "amount": slash,
                "misses": round_,
            }
            for v in squatter
        ]
        seats = [(s.validator, s.misses) for s in keeper.seats(task)]
        if seats[0][0] != ZERO_ADDRESS:
            assert seats == [(addr(v), round_) for v in squatter]
        invariant.check()

    assert round_ == 3
    assert events_in(keeper, receipt, "ValidatorLeft") == [
        {"taskId": task, "validator": addr(v), "refund": stake, "forced": True} for v in squatter
    ]
    assert [keeper.withdrawable(addr(v)) for v in squatter] == [stake] * 3
    assert pool == 10 * ETH + 3 * (20 * ETH - stake)
    actors.validators[3].register_validator(task, ETH)


def test_a_relayer_with_a_seat_is_excused_only_from_the_review_of_its_own_child(
    chain: Chain, actors: Actors, task: int, invariant: Invariant
):
    alice, bob = actors.relayers[:2]
    alice.join_relay(task, 2 * ETH)
    bob.join_relay(task, 2 * ETH)
    alice.register_validator(task, 2 * ETH)  # seat 0; she cannot commit to her own child
    v = actors.validators[:2]
    seat(v, task)
    keeper = actors.keeper

    own = play_round(chain, task, alice, "a-1", [Vote(x, 5000) for x in v], keeper=keeper)
    other = play_round(chain, task, bob, "b-1", [Vote(x, 5000) for x in v], keeper=keeper)

    assert events_in(keeper, own.finalize_receipt, "ValidatorMissed") == []
    miss = 2 * ETH * 500 // 10_000
    assert events_in(keeper, other.finalize_receipt, "ValidatorMissed") == [
        {"taskId": task, "round": 2, "validator": addr(alice), "amount": miss, "misses": 1}
    ]
    account = keeper.account(task, addr(alice))
    assert (account.seat, account.validator_stake) == (0, 2 * ETH - miss)
    invariant.check()


# ---------------------------------------------------------------------- frozen reference


def test_validators_with_harder_data_still_accept_honest_children(
    chain: Chain, actors: Actors, task: int, invariant: Invariant
):
    alice, bob = actors.relayers[:2]
    alice.join_relay(task, 2 * ETH)
    bob.join_relay(task, 2 * ETH)
    first = Panel(actors.validators[:3], (-20, 0, 30))
    seat(first.views, task)
    keeper = actors.keeper
    truth = Truth()
    pool = 10 * ETH

    def turn(view: DeRelayContract, label: str, score: int, panel: Panel) -> dict[str, Any]:
        nonlocal pool
        result = play_round(
            chain,
            task,
            view,
            label,
            panel.votes(score, truth.champion(keeper, task), truth.head(keeper, task)),
            keeper=keeper,
            check=invariant.check,
        )
        truth[result.child] = score
        event = finalized(keeper, result.finalize_receipt)
        pool -= len(panel.views) * FEE + BOUNTY + event["reward"]
        assert keeper.task_state(task).pool == pool
        return event

    turn(alice, "a-1", 5500, first)
    for v in first.views:
        v.leave_validator(task)
    # the new validators' held-out data is harder: every model scores 2000 bp lower on it
    harder = Panel(actors.validators[3:5], (-2000, -2000))
    seat(harder.views, task)

    events = [
        turn(bob, "b-1", 5600, harder),  # 3600 against the champion's 3500: it beats it
        turn(alice, "a-2", 5550, harder),  # a weaker honest turn: the head, not slashed
        turn(bob, "b-2", 5500, harder),  # on the advance band
    ]

    # On the first mechanism ref stayed at 5500 and each of these (3500..3600) was slashed.
    assert [(e["verdict"], e["childScore"], e["delta"]) for e in events] == [
        (Status.ACCEPTED, 3600, 100),
        (Status.ACCEPTED, 3550, -50),
        (Status.ACCEPTED, 3500, -100),
    ]
    assert [e["reward"] for e in events] == [reward(100), 0, 0]
    assert keeper.champion(task) == (cid_of("b-1"), 3600)  # as the current validators measure
    assert keeper.head(task) == (cid_of("b-2"), 3500)
    for view in (alice, bob):
        assert keeper.account(task, addr(view)).relayer_stake == 2 * ETH
    invariant.check()


def test_after_a_colluding_majority_crowns_a_bad_child_honest_children_win_again(
    chain: Chain, actors: Actors, invariant: Invariant
):
    task = make_task(actors, max_validators=5)
    mallory, alice = actors.relayers[:2]
    mallory.join_relay(task, 2 * ETH)
    alice.join_relay(task, 2 * ETH)
    colluders = actors.validators[:2]
    honest = actors.validators[2:5]
    seat([*colluders, honest[0]], task)
    keeper = actors.keeper

    # one round won by the colluding majority: a bad child (true 3000) crowned at 9000
    bad = play_round(
        chain,
        task,
        mallory,
        "bad",
        [Vote(v, 9000, champion=5000) for v in colluders] + [Vote(honest[0], 3000, champion=5000)],
        keeper=keeper,
        check=invariant.check,
    )
    won = finalized(keeper, bad.finalize_receipt)
    assert (won["verdict"], won["delta"], won["reward"]) == (Status.ACCEPTED, 4000, reward(4000))
    assert keeper.champion(task) == (bad.child, 9000)

    # honest validators join; the colluders stay and now defend their champion
    seat(honest[1:], task)
    good = play_round(
        chain,
        task,
        alice,
        "good",
        [Vote(v, 0, champion=9000) for v in colluders]
        + [Vote(v, 5200, champion=3000, parent=3000) for v in honest],
        keeper=keeper,
        check=invariant.check,
    )

    # child 5200, 3400 below the champion's stored score: an honest child is not rejected for it
    event = finalized(keeper, good.finalize_receipt)
    assert (event["verdict"], event["childScore"], event["delta"], event["reward"]) == (
        Status.ACCEPTED,
        5200,
        2200,
        reward(2200),
    )
    assert keeper.champion(task) == keeper.head(task) == (good.child, 5200)
    pool = 10 * ETH - reward(4000) - 2 * FEE - BOUNTY - reward(2200) - 3 * FEE - BOUNTY
    assert keeper.task_state(task).pool == pool
    assert [keeper.withdrawable(addr(v)) for v in [*colluders, *honest]] == [
        FEE,  # in band in the round they won
        FEE,
        FEE,  # out of band when outvoted, in band after
        FEE,
        FEE,
    ]
    invariant.check()


# ---------------------------------------------------------------------- void rounds


def test_a_void_round_moves_nothing_out_of_the_pool_and_the_holder_keeps_its_child(
    chain: Chain, actors: Actors, task: int, invariant: Invariant
):
    alice, bob = actors.relayers[:2]
    alice.join_relay(task, 2 * ETH)
    bob.join_relay(task, 2 * ETH)
    v = actors.validators[:3]
    seat(v, task, 2 * ETH)
    keeper = actors.keeper

    # one reveal (< quorum 2), one silent commit, one missed commit
    void = play_round(
        chain,
        task,
        alice,
        "child-1",
        [Vote(v[0], 5300), Vote(v[1], 5300, reveal=False)],
        keeper=keeper,
        check=invariant.check,
    )

    silent, miss = 2 * ETH // 10, 2 * ETH // 20
    pool = 10 * ETH + silent + miss  # it can only grow, by slashes
    assert finalized(keeper, void.finalize_receipt)["verdict"] == Status.VOID
    assert keeper.task_state(task).pool == pool
    assert [keeper.withdrawable(addr(x)) for x in (*v, keeper)] == [0, 0, 0, 0]
    assert events_in(keeper, void.finalize_receipt, "ValidatorPaid") == []
    assert events_in(keeper, void.finalize_receipt, "KeeperPaid") == []
    assert events_in(keeper, void.finalize_receipt, "TurnStarted") == [
        {"taskId": task, "round": 2, "holder": addr(alice), "deadline": chain.now() + 100}
    ]
    with reverts("DeRelay__NotHolder", task, addr(bob), addr(alice)):
        submit(bob, task, "copy-of-child-1")

    decided = play_round(chain, task, alice, "child-1", [Vote(x, 5300) for x in v], keeper=keeper)

    event = finalized(keeper, decided.finalize_receipt)
    assert (event["round"], event["verdict"], event["reward"]) == (2, Status.ACCEPTED, reward(300))
    assert decided.child == void.child
    assert keeper.record(task, digest_of(void.child))[:4] == (
        addr(alice),
        2,
        decided.commit_end - 50,
        Status.ACCEPTED,
    )
    assert keeper.task_state(task).submission_count == 2
    account = keeper.account(task, addr(alice))
    assert (account.withdrawable, account.shares, account.relayer_stake) == (
        reward(300),
        reward(300),
        2 * ETH,
    )
    assert keeper.task_state(task).pool == pool - reward(300) - 3 * FEE - BOUNTY
    invariant.check()


def test_nobody_else_can_take_a_void_child(
    chain: Chain, actors: Actors, task: int, invariant: Invariant
):
    alice, bob = actors.relayers[:2]
    alice.join_relay(task, 2 * ETH)
    bob.join_relay(task, 2 * ETH)
    v = actors.validators[:2]
    seat(v, task, 2 * ETH)
    keeper = actors.keeper
    pool = 10 * ETH

    def void(holder: DeRelayContract, label: str, misses: int) -> bytes:
        """`holder` submits `label`, nobody commits, the review goes void."""
        nonlocal pool
        child = submit(holder, task, label)
        next_tx_at(chain, keeper.task_state(task).deadline + 1)
        receipt = keeper.finalize(task)
        assert finalized(keeper, receipt)["verdict"] == Status.VOID
        pool += sum(e["amount"] for e in events_in(keeper, receipt, "ValidatorMissed"))
        assert [e["misses"] for e in events_in(keeper, receipt, "ValidatorMissed")] == [misses] * 2
        assert keeper.task_state(task).holder == addr(holder)
        return child

    def expire() -> None:
        """The holder lets its kept turn run out and a keeper skips it."""
        nonlocal pool
        next_tx_at(chain, keeper.task_state(task).deadline + 1)
        keeper.skip_turn(task)
        pool += 2 * ETH // 10 - 2 * ETH // 100  # the timeout slash less the keeper's bounty

    a = void(alice, "a-1", 1)
    expire()
    with reverts("DeRelay__ChildSeen", task, digest_of(a)):
        submit(bob, task, "a-1")  # the next holder cannot take alice's void child
    b = void(bob, "b-1", 2)
    expire()
    with reverts("DeRelay__ChildSeen", task, digest_of(b)):
        submit(alice, task, "b-1")  # nor can a holder take someone else's
    with reverts("DeRelay__ChildSeen", task, digest_of(a)):
        submit(alice, task, "a-1")  # her own, once another submission came after it
    assert keeper.task_state(task).pool == pool
    result = play_round(chain, task, alice, "a-2", [Vote(x, 5100) for x in v], keeper=keeper)

    assert finalized(keeper, result.finalize_receipt)["reward"] == reward(100)
    assert [keeper.record(task, digest_of(c))[3] for c in (a, b)] == [Status.VOID, Status.VOID]
    assert keeper.task_state(task).pool == pool - reward(100) - 2 * FEE - BOUNTY
    invariant.check()


# ---------------------------------------------------------------------- collusion


@pytest.mark.parametrize(
    ("child", "lie", "verdict", "delta"),
    [
        (4850, (10_000, 0), Status.HELD, -150),  # inflates a worse child
        (5200, (0, 10_000), Status.ACCEPTED, 200),  # sinks a better one
    ],
    ids=["inflate", "sink"],
)
def test_a_lying_minority_is_outvoted(
    chain: Chain,
    actors: Actors,
    task: int,
    invariant: Invariant,
    child: int,
    lie: tuple[int, int],
    verdict: Status,
    delta: int,
):
    alice = actors.relayers[0]
    alice.join_relay(task, 2 * ETH)
    liar, *honest = actors.validators[:3]
    seat([liar, *honest], task)

    result = play_round(
        chain,
        task,
        alice,
        "child-1",
        [Vote(liar, lie[0], champion=lie[1])] + [Vote(v, child, champion=5000) for v in honest],
        keeper=actors.keeper,
        check=invariant.check,
    )

    event = finalized(alice, result.finalize_receipt)
    paid = reward(delta) if delta > 0 else 0
    assert (event["verdict"], event["childScore"], event["delta"], event["reward"]) == (
        verdict,
        child,
        delta,
        paid,
    )
    assert [alice.withdrawable(addr(v)) for v in (liar, *honest)] == [0, FEE, FEE]
    assert alice.task_state(task).pool == 10 * ETH - paid - 2 * FEE - BOUNTY
    assert alice.account(task, addr(alice)).relayer_stake == 2 * ETH


def test_a_colluding_majority_decides_the_known_bound(
    chain: Chain, actors: Actors, task: int, invariant: Invariant
):
    # Documented limit (README, DESIGN 2.1): a majority of the revealed validators decides any
    # review. Here two of three sink a better honest child: it is rejected and its relayer
    # slashed, and the honest validator, which passed the child they rejected, is charged as a
    # parrot would be and, at the least stake, unseated.
    alice = actors.relayers[0]
    alice.join_relay(task, 2 * ETH)
    *colluders, honest = actors.validators[:3]
    seat([*colluders, honest], task)

    result = play_round(
        chain,
        task,
        alice,
        "good-child",
        [Vote(v, 0, champion=5000) for v in colluders] + [Vote(honest, 5200, champion=5000)],
        keeper=actors.keeper,
        check=invariant.check,
    )

    event = finalized(alice, result.finalize_receipt)
    assert (event["verdict"], event["childScore"], event["delta"]) == (Status.REJECTED, 0, -5000)
    slash = 2 * ETH // 5
    assert alice.account(task, addr(alice)).relayer_stake == 2 * ETH - slash
    outvoted = ETH // 10
    (charged,) = alice.events("ValidatorOutvoted")
    assert (charged["args"]["validator"], charged["args"]["amount"]) == (addr(honest), outvoted)
    assert alice.account(task, addr(honest)).seat == -1
    assert [alice.withdrawable(addr(v)) for v in (*colluders, honest)] == [
        FEE,
        FEE,
        ETH - outvoted,  # the rest of its stake, back with its seat
    ]
    assert alice.task_state(task).pool == 10 * ETH + slash + outvoted - 2 * FEE - BOUNTY
    assert alice.head(task) == (GENESIS, 5000)


def test_a_parrot_is_paid_for_passing_good_children_and_charged_for_passing_a_rejected_one(
    chain: Chain, actors: Actors, task: int, invariant: Invariant
):
    # A parrot never scores: it reveals the champion's last published median as the child's, the
    # champion's and the parent's score (delta 0). Near an honest child that is in band and paid
    # like the work it skipped; it is caught only by a child bad enough to be rejected.
    alice, bob = actors.relayers[:2]
    alice.join_relay(task, 2 * ETH)
    bob.join_relay(task, 2 * ETH)
    parrot, *honest = actors.validators[:3]
    seat([parrot, *honest], task, stake=2 * ETH)

    def review(holder: DeRelayContract, label: str, published: int, child: int) -> RoundResult:
        """The parrot reveals `published` three times; the honest measure `child` against it."""
        votes = [Vote(parrot, published, champion=published)]
        votes += [Vote(v, child, champion=published) for v in honest]
        return play_round(
            chain, task, holder, label, votes, keeper=actors.keeper, check=invariant.check
        )

    good = review(alice, "good", 5000, 5050)
    assert finalized(alice, good.finalize_receipt)["verdict"] == Status.ACCEPTED
    assert alice.withdrawable(addr(parrot)) == FEE  # paid for work it did not do

    pool = alice.task_state(task).pool
    bad = review(bob, "poisoned", 5050, 1000)

    event = finalized(bob, bad.finalize_receipt)
    assert (event["verdict"], event["delta"]) == (Status.REJECTED, -4050)
    outvoted = 2 * ETH // 10
    (charged,) = bob.events("ValidatorOutvoted")
    assert (charged["args"]["validator"], charged["args"]["amount"]) == (addr(parrot), outvoted)
    assert bob.account(task, addr(parrot)).validator_stake == 2 * ETH - outvoted
    assert [bob.withdrawable(addr(v)) for v in (parrot, *honest)] == [FEE, 2 * FEE, 2 * FEE]
    relayer_slash = 2 * ETH // 5
    assert bob.task_state(task).pool == pool + relayer_slash + outvoted - 2 * FEE - BOUNTY


@pytest.mark.parametrize(
    "votes, verdict, charged",
    [
        ([(1000, 5000), (1000, 5000), (5000, 5000)], Status.REJECTED, [2]),  # passed it alone
        ([(3000, 5000), (4500, 5000), (5000, 5000)], Status.HELD, []),  # held, not rejected
        ([(1000, 5000), (3000, 5000), (6000, 5000)], Status.REJECTED, []),  # no majority agrees
        ([(1000, 5000), (1000, 5000), (0, 5000)], Status.REJECTED, []),  # harsher, not passing
    ],
    ids=["passed-a-rejected-child", "held", "no-majority", "harsher"],
)
def test_only_a_reveal_that_passed_a_child_a_majority_rejected_is_outvoted(
    chain: Chain,
    actors: Actors,
    invariant: Invariant,
    votes: list[tuple[int, int]],
    verdict: Status,
    charged: list[int],
):
    task = make_task(actors, slash_band=1500, advance_band=100)
    alice = actors.relayers[0]
    alice.join_relay(task, 2 * ETH)
    validators = actors.validators[:3]
    seat(validators, task, stake=2 * ETH)

    result = play_round(
        chain,
        task,
        alice,
        "child",
        [Vote(v, c, champion=h) for v, (c, h) in zip(validators, votes, strict=True)],
        keeper=actors.keeper,
        check=invariant.check,
    )

    assert finalized(alice, result.finalize_receipt)["verdict"] == verdict
    outvoted = [e["args"]["validator"] for e in alice.events("ValidatorOutvoted")]
    assert outvoted == [addr(validators[i]) for i in charged]


# ---------------------------------------------------------------------- unusable weights


def test_a_child_median_of_zero_is_rejected_even_with_its_delta_inside_the_bands(
    chain: Chain, actors: Actors, invariant: Invariant
):
    # Two of three validators cannot load the child (score 0) on data where the champion scores
    # 50: the median delta (-50) is inside the advance band, the child's median is 0. The third,
    # which passed the child at 9000, is charged for it.
    task = make_task(actors, genesis_score=50)
    alice = actors.relayers[0]
    alice.join_relay(task, 2 * ETH)
    v = actors.validators[:3]
    seat(v, task)

    result = play_round(
        chain,
        task,
        alice,
        "unloadable",
        [Vote(v[0], 0, champion=50), Vote(v[1], 0, champion=50), Vote(v[2], 9000, champion=50)],
        keeper=actors.keeper,
        check=invariant.check,
    )

    event = finalized(alice, result.finalize_receipt)
    assert (event["verdict"], event["childScore"], event["delta"]) == (Status.REJECTED, 0, -50)
    assert alice.head(task) == (GENESIS, 50)
    slash = 2 * ETH // 5
    assert alice.account(task, addr(alice)).relayer_stake == 2 * ETH - slash
    (charged,) = alice.events("ValidatorOutvoted")
    assert (charged["args"]["validator"], charged["args"]["amount"]) == (addr(v[2]), ETH // 10)
    assert alice.task_state(task).pool == 10 * ETH + slash + ETH // 10 - 2 * FEE - BOUNTY
    assert alice.task_state(task).phase == Phase.TURN


def test_a_squatter_that_retakes_the_seats_after_each_submission_still_pays(
    chain: Chain, actors: Actors, task: int, invariant: Invariant
):
    # Between reviews a validator may leave with its whole stake. A squatter that sees the
    # holder's submission coming leaves just before it and takes every seat again just after (a
    # bundle around the holder's transaction). Seated while the commit window is open, it is
    # expected to commit: each review it squats costs it a miss, so squatting is never free.
    squatter = actors.validators[:3]
    seat(squatter, task, 2 * ETH)
    alice = actors.relayers[0]
    alice.join_relay(task, 2 * ETH)
    keeper = actors.keeper
    pool = 10 * ETH

    for round_ in (1, 2, 3):
        for v in squatter:
            v.leave_validator(task)
        submit(alice, task, "child-1")
        seat(squatter, task, 2 * ETH)
        with reverts("DeRelay__SeatsFull", task, 3):
            actors.validators[3].register_validator(task, ETH)
        next_tx_at(chain, keeper.task_state(task).deadline + 1)

        receipt = keeper.finalize(task)

        assert finalized(keeper, receipt)["verdict"] == Status.VOID
        miss = 2 * ETH * 500 // 10_000  # fresh seats: slashMissBp of the new stake
        pool += 3 * miss
        # the squatter could have committed (it held the seat for the whole commit window)
        assert events_in(keeper, receipt, "ValidatorMissed") == [
            {"taskId": task, "round": round_, "validator": addr(v), "amount": miss, "misses": 1}
            for v in squatter
        ]
        assert keeper.task_state(task).pool == pool
        invariant.check()
