"""Relay rewards (gain over the champion, minGain, pool cap), validator fees while the pool lasts,
and royalties."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from derelay.trainer.contract import DeRelayContract, Status
from tests.conftest import Chain
from tests.contracts.conftest import (
    ETH,
    Actors,
    Invariant,
    RoundResult,
    Vote,
    cid_of,
    events_in,
    make_task,
    play_round,
    reverts,
    seat,
)

ACC = 10**18  # accPerShare scale


def addr(view: DeRelayContract) -> str:
    return view.client.address


def unanimous(
    chain: Chain,
    actors: Actors,
    task: int,
    holder: DeRelayContract,
    label: str,
    score: int,
    **kw: object,
) -> RoundResult:
    """A round in which the first two validators both reveal `score`."""
    votes = [Vote(v, score) for v in actors.validators[:2]]
    return play_round(chain, task, holder, label, votes, keeper=actors.keeper, **kw)  # type: ignore[arg-type]


def reward_of(view: DeRelayContract, result: RoundResult) -> int:
    (event,) = events_in(view, result.finalize_receipt, "RoundFinalized")
    return int(event["reward"])


# ---------------------------------------------------------------------- relay rewards


@pytest.mark.parametrize(
    ("median", "reward"),
    [
        (5009, 0),  # gain 9 < minGain 10: the head, not crowned, no reward
        (5010, ETH // 10 + 10 * ETH // 1000),  # gain 10: crowned, baseReward + rewardPerPoint
        (5000, 0),  # as good as the champion: the head, no reward
        (4950, 0),  # accepted within the advance band, no gain: nothing
    ],
)
def test_reward_follows_gain_over_the_champion(
    chain: Chain, actors: Actors, task: int, median: int, reward: int
):
    alice = actors.relayers[0]
    alice.join_relay(task, ETH)
    seat(actors.validators[:2], task)

    result = unanimous(chain, actors, task, alice, "child-1", median)

    assert reward_of(alice, result) == reward
    account = alice.account(task, addr(alice))
    assert (account.shares, account.withdrawable) == (reward, reward)
    assert alice.task_state(task).total_shares == reward


@pytest.mark.parametrize(
    ("child", "parent", "reward"),
    [
        (5050, 5009, ETH // 10 + 41 * ETH // 1000),  # 41 over its parent: paid for 41, not 50
        (5050, 5045, 5 * ETH // 1000),  # 5 over its parent: under minGain, no baseReward
        (5012, 5012, 0),  # a copy of the head that noise put over minGain: crowned, not paid
        (5012, 5013, 0),  # worse than its parent: crowned, not paid
    ],
)
def test_a_crowned_child_is_paid_only_for_its_gain_over_its_parent_too(
    chain: Chain,
    actors: Actors,
    task: int,
    invariant: Invariant,
    child: int,
    parent: int,
    reward: int,
):
    # prepare: an uncrowned head, 9 over the champion (minGain 10)
    alice, bob = actors.relayers[:2]
    alice.join_relay(task, ETH)
    bob.join_relay(task, ETH)
    seat(actors.validators[:2], task)
    unanimous(chain, actors, task, alice, "uncrowned", 5009)
    assert alice.task_state(task).champion_score == 5000

    # act: the next child, 50 (or 12) over the champion, `parent` the head as the validators
    # measure it on the same data
    votes = [Vote(v, child, champion=5000, parent=parent) for v in actors.validators[:2]]
    result = play_round(
        chain, task, bob, "next", votes, keeper=actors.keeper, check=invariant.check
    )

    # check: crowned (delta >= minGain) and paid for min(delta, progress)
    (event,) = events_in(bob, result.finalize_receipt, "RoundFinalized")
    assert (event["delta"], event["progress"]) == (child - 5000, child - parent)
    assert actors.keeper.champion(task) == (result.child, child)
    assert int(event["reward"]) == reward
    assert bob.account(task, addr(bob)).shares == reward


@pytest.mark.parametrize(("median", "reward"), [(5001, ETH // 10 + ETH // 1000), (5000, 0)])
def test_with_min_gain_one_any_gain_over_the_champion_earns_the_base_reward(
    chain: Chain, actors: Actors, median: int, reward: int
):
    # minGain is at least 1: a turn that only matches the champion is never paid
    task = make_task(actors, min_gain=1)
    alice = actors.relayers[0]
    alice.join_relay(task, ETH)
    seat(actors.validators[:2], task)

    result = unanimous(chain, actors, task, alice, "child-1", median)

    assert reward_of(alice, result) == reward
    assert alice.account(task, addr(alice)).shares == reward


def test_reward_fees_and_bounty_are_capped_by_the_pool(
    chain: Chain, actors: Actors, invariant: Invariant
):
    task = make_task(actors, funding=ETH // 20)
    alice = actors.relayers[0]
    alice.join_relay(task, ETH)
    seat(actors.validators[:2], task)

    result = unanimous(chain, actors, task, alice, "child-1", 5300, check=invariant.check)

    assert reward_of(alice, result) == ETH // 20  # 0.4 ETH asked, the whole pool paid
    assert alice.task_state(task).pool == 0
    assert [alice.withdrawable(addr(v)) for v in actors.validators[:2]] == [0, 0]
    assert alice.withdrawable(addr(actors.keeper)) == 0
    assert events_in(alice, result.finalize_receipt, "ValidatorPaid") == []
    assert events_in(alice, result.finalize_receipt, "KeeperPaid") == []


def test_validator_fees_are_paid_in_seat_order_while_the_pool_lasts(
    chain: Chain, actors: Actors, invariant: Invariant
):
    task = make_task(actors, funding=15 * ETH // 1000, base_reward=0, reward_per_point=0)
    alice = actors.relayers[0]
    v = actors.validators[:3]
    alice.join_relay(task, ETH)
    seat(v, task)

    result = play_round(
        chain,
        task,
        alice,
        "child-1",
        [Vote(x, 5300) for x in v],
        keeper=actors.keeper,
        check=invariant.check,
    )

    fee = ETH // 100
    assert [alice.withdrawable(addr(x)) for x in v] == [fee, 0, 0]
    bounty = fee * 1000 // 10_000  # 0.001 ETH still fits in the 0.005 ETH left
    assert alice.withdrawable(addr(actors.keeper)) == bounty
    assert alice.task_state(task).pool == 15 * ETH // 1000 - fee - bounty
    assert reward_of(alice, result) == 0


def test_the_champion_is_a_high_water_mark(
    chain: Chain, actors: Actors, task: int, invariant: Invariant
):
    alice = actors.relayers[0]
    alice.join_relay(task, 2 * ETH)
    seat(actors.validators[:2], task)
    heads, champions, rewards = [], [], []

    for label, median in [("c1", 5301), ("c2", 5100), ("c3", 5250), ("c4", 3000), ("c5", 5350)]:
        result = unanimous(chain, actors, task, alice, label, median, check=invariant.check)
        heads.append(alice.head(task))
        champions.append(alice.champion(task))
        rewards.append(reward_of(alice, result))

    # c1 beats genesis; c2 (-201) is held; c3 (-51) advances the head only; c4 is rejected;
    # c5 beats c1 by 49 and is paid for those 49 points, not for the 100 over the head.
    c1, c3, c5 = (cid_of(label) for label in ("c1", "c3", "c5"))
    assert heads == [(c1, 5301), (c1, 5301), (c3, 5250), (c3, 5250), (c5, 5350)]
    assert champions == [(c1, 5301), (c1, 5301), (c1, 5301), (c1, 5301), (c5, 5350)]
    milli = ETH // 1000
    assert rewards == [100 * milli + 301 * milli, 0, 0, 0, 100 * milli + 49 * milli]
    assert [e.status for e in alice.lineage(task)[1:]] == [
        Status.ACCEPTED,
        Status.HELD,
        Status.ACCEPTED,
        Status.REJECTED,
        Status.ACCEPTED,
    ]
    state = alice.task_state(task)
    assert state.accepted_count == 3
    assert state.total_shares == sum(rewards) == alice.account(task, addr(alice)).shares
    assert alice.account(task, addr(alice)).relayer_stake == 2 * ETH - 2 * ETH // 5  # c4
    fees = 5 * (2 * (ETH // 100) + ETH // 1000)
    assert state.pool == 10 * ETH - sum(rewards) - fees + 2 * ETH // 5


# ---------------------------------------------------------------------- royalties


@dataclass
class RoyaltyModel:
    """The contract's royalty arithmetic, floor for floor."""

    royalty_bp: int
    acc: int = 0
    total: int = 0
    shares: dict[str, int] = field(default_factory=dict)
    paid: dict[str, int] = field(default_factory=dict)
    settled: dict[str, int] = field(default_factory=dict)

    def pending(self, who: str) -> int:
        return self.shares.get(who, 0) * (self.acc - self.paid.get(who, 0)) // ACC

    def settle(self, who: str) -> None:
        self.settled[who] = self.settled.get(who, 0) + self.pending(who)
        self.paid[who] = self.acc

    def reward(self, who: str, amount: int) -> None:
        self.settle(who)
        self.shares[who] = self.shares.get(who, 0) + amount
        self.total += amount

    def pay(self, fee: int) -> int:
        """Record a payment; return what goes to contributors."""
        if self.total == 0:
            return 0
        royalty = fee * self.royalty_bp // 10_000
        self.acc += royalty * ACC // self.total
        return royalty


def test_payment_without_contributors_goes_to_the_pool(
    chain: Chain, actors: Actors, task: int, invariant: Invariant
):
    receipt = actors.consumer.pay_for_model(task, ETH)

    state = actors.consumer.task_state(task)
    assert (state.pool, state.acc_per_share, state.total_shares) == (11 * ETH, 0, 0)
    assert events_in(actors.consumer, receipt, "ModelPaid") == [
        {"taskId": task, "payer": addr(actors.consumer), "amount": ETH, "toContributors": 0}
    ]
    invariant.check()


def test_payment_below_the_usage_fee_reverts(chain: Chain, actors: Actors, task: int):
    with reverts("DeRelay__FeeTooLow", ETH // 100 - 1, ETH // 100):
        actors.consumer.pay_for_model(task, ETH // 100 - 1)

    actors.consumer.pay_for_model(task, ETH // 100)  # exactly the fee is enough

    assert actors.consumer.task_state(task).pool == 10 * ETH + ETH // 100


def test_a_free_model_still_needs_a_payment(chain: Chain, actors: Actors):
    task = make_task(actors, usage_fee=0)

    with reverts("DeRelay__FeeTooLow", 0, 0):
        actors.consumer.pay_for_model(task, 0)

    actors.consumer.pay_for_model(task, 1)
    assert actors.consumer.task_state(task).pool == 10 * ETH + 1


@pytest.mark.parametrize("royalty_bp", [0, 10_000])
def test_royalty_share_bounds(chain: Chain, actors: Actors, invariant: Invariant, royalty_bp: int):
    task = make_task(actors, royalty_bp=royalty_bp)
    alice = actors.relayers[0]
    alice.join_relay(task, ETH)
    seat(actors.validators[:2], task)
    reward = reward_of(alice, unanimous(chain, actors, task, alice, "child-1", 5300))
    pool = alice.task_state(task).pool

    actors.consumer.pay_for_model(task, ETH)

    owed = ETH * royalty_bp // 10_000  # the only contributor: exact here (1e18 * 1e18 / 0.4e18)
    assert alice.account(task, addr(alice)).pending_royalties == owed
    assert alice.task_state(task).pool == pool + ETH - owed
    assert reward == 4 * ETH // 10
    invariant.check()


def test_royalties_split_by_shares_over_several_payments(
    chain: Chain, actors: Actors, invariant: Invariant
):
    task = make_task(actors, max_validators=2)
    a, b, c = actors.relayers[:3]
    consumer = actors.consumer
    for relayer in (a, b, c):
        relayer.join_relay(task, ETH)
    seat(actors.validators[:2], task)
    model = RoyaltyModel(royalty_bp=5000)
    names = {addr(x): x for x in (a, b, c)}

    def pay(fee: int) -> None:
        pool = consumer.task_state(task).pool
        receipt = consumer.pay_for_model(task, fee)
        to_contributors = model.pay(fee)
        (event,) = events_in(consumer, receipt, "ModelPaid")
        assert event["toContributors"] == to_contributors
        assert consumer.task_state(task).pool == pool + fee - to_contributors
        assert consumer.task_state(task).acc_per_share == model.acc
        expect_positions()
        invariant.check()

    def expect_positions() -> None:
        for who in names:
            account = consumer.account(task, who)
            assert account.pending_royalties == model.pending(who), who
            assert account.shares == model.shares.get(who, 0), who
        assert consumer.task_state(task).total_shares == model.total

    earned = {who: 0 for who in names}  # relay rewards so far

    def expect_withdrawable() -> None:
        for who in names:
            assert consumer.withdrawable(who) == earned[who] + model.settled.get(who, 0), who

    def turn(holder: DeRelayContract, label: str, median: int, reward: int) -> None:
        result = unanimous(chain, actors, task, holder, label, median, check=invariant.check)
        assert reward_of(holder, result) == reward
        model.reward(addr(holder), reward)  # settles the holder's royalties, then adds shares
        earned[addr(holder)] += reward
        expect_positions()
        expect_withdrawable()

    milli = ETH // 1000
    turn(a, "a-1", 5300, 400 * milli)  # champion 5000 -> 5300
    pay(ETH)  # all of the royalty to a
    assert model.pending(addr(a)) == ETH // 2
    turn(b, "b-1", 5400, 200 * milli)  # 100 over the champion; b missed the payment
    assert consumer.account(task, addr(b)).pending_royalties == 0
    pay(3 * ETH // 10)  # a : b = 2 : 1

    receipt = b.claim_royalties(task)
    owed = model.pending(addr(b))
    model.settle(addr(b))
    assert events_in(b, receipt, "RoyaltiesSettled") == [
        {"taskId": task, "account": addr(b), "amount": owed}
    ]
    assert b.withdrawable(addr(b)) == 200 * milli + owed
    assert events_in(b, b.claim_royalties(task), "RoyaltiesSettled") == []  # nothing more owed
    invariant.check()

    turn(c, "c-1", 5433, 133 * milli)  # 33 over the champion
    pay(777 * ETH // 1000)
    turn(a, "a-2", 5517, 184 * milli)  # 84 over; a's share change settles its royalties first
    assert model.settled[addr(a)] > 0
    assert a.account(task, addr(a)).pending_royalties == 0
    pay(ETH // 100 + 7)

    for relayer in (a, b, c):
        relayer.claim_royalties(task)
        model.settle(addr(relayer))
        expect_withdrawable()
        invariant.check()
    assert earned == {addr(a): 584 * milli, addr(b): 200 * milli, addr(c): 133 * milli}
    assert all(consumer.account(task, who).pending_royalties == 0 for who in names)
    assert all(model.settled[who] > 0 for who in names)


def test_rounding_dust_never_goes_negative(
    chain: Chain, actors: Actors, task: int, invariant: Invariant
):
    alice = actors.relayers[0]
    alice.join_relay(task, ETH)
    seat(actors.validators[:2], task)
    unanimous(chain, actors, task, alice, "child-1", 5030)  # reward 0.13 ETH: the only shares
    assert alice.task_state(task).total_shares == 13 * ETH // 100

    actors.consumer.pay_for_model(task, ETH // 100)
    invariant.check()
    actors.consumer.pay_for_model(task, ETH // 100)

    invariant.check()  # dust is -1 wei: alice is owed 1 wei more than the contract set aside


def test_a_copy_of_the_champion_earns_nothing(
    chain: Chain, actors: Actors, task: int, invariant: Invariant
):
    # A free-rider that resubmits the champion (with noise, so the CID is new) scores what the
    # champion scores: it may become the head, but it earns nothing and mints no shares.
    alice, bob = actors.relayers[:2]
    alice.join_relay(task, 2 * ETH)
    bob.join_relay(task, 2 * ETH)
    seat(actors.validators[:2], task)
    big = unanimous(chain, actors, task, alice, "big-gain", 6000)
    pool = bob.task_state(task).pool

    copy = unanimous(chain, actors, task, bob, "copy-of-head", 6000, check=invariant.check)

    assert reward_of(bob, copy) == 0
    assert events_in(bob, copy.finalize_receipt, "ChampionCrowned") == []
    assert bob.head(task) == (copy.child, 6000)
    assert bob.champion(task) == (big.child, 6000)
    b = bob.account(task, addr(bob))
    assert (b.shares, b.withdrawable, b.relayer_stake) == (0, 0, 2 * ETH)
    assert bob.task_state(task).total_shares == reward_of(alice, big)
    assert bob.task_state(task).pool == pool - 2 * (ETH // 100) - ETH // 1000
