"""Complete accept, reject, void and skip cycles with exact balances for every party, and the
balance invariant after every transaction."""

from __future__ import annotations

import pytest

from derelay.trainer.contract import ZERO_ADDRESS, DeRelayContract, Phase, Status
from tests.conftest import Chain
from tests.contracts.conftest import (
    ETH,
    Actors,
    Invariant,
    Vote,
    cid_of,
    digest_of,
    events_in,
    gas_cost,
    make_task,
    next_tx_at,
    play_round,
    seat,
)

FEE = ETH // 100  # validatorFee
FINALIZE_BOUNTY = FEE * 1000 // 10_000  # validatorFee * keeperBountyBp / 10000


def addr(view: DeRelayContract) -> str:
    return view.client.address


def test_accept_cycle(chain: Chain, actors: Actors, invariant: Invariant):
    task = make_task(actors, max_validators=5)
    alice, bob = actors.relayers[:2]
    v = actors.validators
    keeper = actors.keeper
    alice.join_relay(task, 2 * ETH)
    bob.join_relay(task, ETH)
    seat(v[:4], task)
    v[4].register_validator(task, 2 * ETH)  # keeps its seat after a no-reveal slash
    invariant.check()

    # children 5200, 5250, 5300, 5700 against a champion (genesis) each validator measures on its
    # own data: deltas 250, 250, 250, 250. Lower medians: child 5250, champion 5000, delta 250;
    # v3's child score is out of band. v4 commits and stays silent. (Scores ascend in seat order
    # here: see test_validator_fees_follow_each_validators_own_score.)
    votes = [
        Vote(v[0], 5200, champion=4950),
        Vote(v[1], 5250, champion=5000),
        Vote(v[2], 5300, champion=5050),
        Vote(v[3], 5700, champion=5450),
        Vote(v[4], 5400, False),
    ]
    result = play_round(chain, task, alice, "child-1", votes, keeper=keeper, check=invariant.check)

    gain = 5250 - 5000
    reward = ETH // 10 + gain * (ETH // 1000)  # >= minGain: baseReward + rewardPerPoint * gain
    silent_slash = 2 * ETH * 1000 // 10_000
    assert reward == 35 * ETH // 100
    state = keeper.task_state(task)
    assert state.pool == 10 * ETH - reward - 3 * FEE + silent_slash - FINALIZE_BOUNTY
    assert (state.head_cid, state.head_score, state.accepted_count) == (result.child, 5250, 1)
    assert (state.champion_cid, state.champion_score) == (result.child, 5250)  # it beat genesis
    assert (state.total_shares, state.phase, state.round, state.holder) == (
        reward,
        Phase.TURN,
        2,
        addr(bob),
    )
    assert keeper.head(task) == keeper.champion(task) == (result.child, 5250)
    a = alice.account(task, addr(alice))
    assert (a.withdrawable, a.shares, a.relayer_stake, a.queued) == (reward, reward, 2 * ETH, True)
    assert [m for m, _ in keeper.queue(task)] == [addr(bob), addr(alice)]
    for i, paid in enumerate([FEE, FEE, FEE, 0, 0]):
        account = keeper.account(task, addr(v[i]))
        assert account.withdrawable == paid, i
        assert account.validator_stake == (2 * ETH - silent_slash if i == 4 else ETH), i
    assert keeper.account(task, addr(v[4])).seat == 4
    assert keeper.withdrawable(addr(keeper)) == FINALIZE_BOUNTY
    assert keeper.record(task, digest_of(result.child))[3:5] == (Status.ACCEPTED, 5250)
    receipt = result.finalize_receipt
    assert events_in(keeper, receipt, "RoundFinalized") == [
        {
            "taskId": task,
            "round": 1,
            "relayer": addr(alice),
            "verdict": Status.ACCEPTED,
            "childScore": 5250,
            "championScore": 5000,
            "delta": gain,
            "progress": gain,  # the parent is the champion
            "reveals": 4,
            "reward": reward,
        }
    ]
    assert events_in(keeper, receipt, "ChampionCrowned") == [
        {
            "taskId": task,
            "round": 1,
            "relayer": addr(alice),
            "digest": digest_of(result.child),
            "score": 5250,
            "gain": gain,
        }
    ]
    assert [e["validator"] for e in events_in(keeper, receipt, "ValidatorPaid")] == [
        addr(v[0]),
        addr(v[1]),
        addr(v[2]),
    ]
    assert events_in(keeper, receipt, "ValidatorSlashed") == [
        {"taskId": task, "round": 1, "validator": addr(v[4]), "amount": silent_slash, "misses": 1}
    ]
    assert events_in(keeper, receipt, "KeeperPaid") == [
        {"taskId": task, "round": 1, "keeper": addr(keeper), "bounty": FINALIZE_BOUNTY}
    ]

    before = alice.client.balance()
    withdrawal = alice.withdraw()

    assert alice.client.balance() == before + reward - gas_cost(withdrawal)
    assert alice.withdrawable(addr(alice)) == 0
    invariant.check()


def test_validator_fees_follow_each_validators_own_score(
    chain: Chain, actors: Actors, invariant: Invariant
):
    task = make_task(actors, max_validators=4)
    alice = actors.relayers[0]
    v = actors.validators[:4]
    alice.join_relay(task, 2 * ETH)
    seat(v, task)

    # median 5250: v2 (5700) is out of band, v3 (5200) is in band
    votes = [Vote(v[0], 5300), Vote(v[1], 5250), Vote(v[2], 5700), Vote(v[3], 5200)]
    result = play_round(chain, task, alice, "child-1", votes, keeper=actors.keeper)

    paid = [e["validator"] for e in events_in(alice, result.finalize_receipt, "ValidatorPaid")]
    assert paid == [addr(v[0]), addr(v[1]), addr(v[3])]
    assert [alice.withdrawable(addr(x)) for x in v] == [FEE, FEE, 0, FEE]


def test_a_validator_fee_needs_both_its_child_score_and_its_delta_in_band(
    chain: Chain, actors: Actors, invariant: Invariant
):
    task = make_task(actors, max_validators=4)
    alice = actors.relayers[0]
    v = actors.validators[:4]
    alice.join_relay(task, 2 * ETH)
    seat(v, task)

    # medians: child 5250, delta 250 (bandBp 300). v2's child score is in band but its delta
    # (-250) is not; v3's delta (250) is in band but its child score (6000) is not.
    votes = [
        Vote(v[0], 5250, champion=5000),
        Vote(v[1], 5300, champion=5050),
        Vote(v[2], 5250, champion=5500),
        Vote(v[3], 6000, champion=5750),
    ]
    result = play_round(
        chain, task, alice, "child-1", votes, keeper=actors.keeper, check=invariant.check
    )

    (finalized,) = events_in(alice, result.finalize_receipt, "RoundFinalized")
    assert (finalized["childScore"], finalized["delta"]) == (5250, 250)
    paid = [e["validator"] for e in events_in(alice, result.finalize_receipt, "ValidatorPaid")]
    assert paid == [addr(v[0]), addr(v[1])]
    assert [alice.withdrawable(addr(x)) for x in v] == [FEE, FEE, 0, 0]
    reward = ETH // 10 + 250 * (ETH // 1000)
    assert alice.task_state(task).pool == 10 * ETH - reward - 2 * FEE - FINALIZE_BOUNTY


@pytest.mark.parametrize(("stake", "stays"), [(2 * ETH, True), (ETH, False)])
def test_reject_cycle(
    chain: Chain, actors: Actors, task: int, invariant: Invariant, stake: int, stays: bool
):
    alice, bob = actors.relayers[:2]
    v = actors.validators
    keeper = actors.keeper
    alice.join_relay(task, stake)
    bob.join_relay(task, ETH)
    seat(v[:3], task)
    invariant.check()

    # deltas -1200, -1150, -1300 against the champion (5000): median -1200 < -slashBand (1000)
    votes = [Vote(v[0], 3800), Vote(v[1], 3850), Vote(v[2], 3700)]
    result = play_round(chain, task, alice, "child-1", votes, keeper=keeper, check=invariant.check)

    slash = stake * 2000 // 10_000  # slashRejectBp
    state = keeper.task_state(task)
    assert state.pool == 10 * ETH + slash - 3 * FEE - FINALIZE_BOUNTY
    assert (state.head_cid, state.head_score, state.accepted_count) == (cid_of("genesis"), 5000, 0)
    assert (state.champion_cid, state.champion_score) == (cid_of("genesis"), 5000)
    assert (state.total_shares, state.round, state.holder) == (0, 2, addr(bob))
    a = alice.account(task, addr(alice))
    assert a.shares == 0
    if stays:
        assert (a.relayer_stake, a.queued, a.withdrawable) == (stake - slash, True, 0)
        assert [m for m, _ in keeper.queue(task)] == [addr(bob), addr(alice)]
        assert events_in(keeper, result.finalize_receipt, "RelayerLeft") == []
    else:  # below minStake: out of the queue, the rest withdrawable
        assert (a.relayer_stake, a.queued, a.withdrawable) == (0, False, stake - slash)
        assert [m for m, _ in keeper.queue(task)] == [addr(bob)]
        assert events_in(keeper, result.finalize_receipt, "RelayerLeft") == [
            {"taskId": task, "relayer": addr(alice), "refund": stake - slash, "forced": True}
        ]
    for validator in v[:3]:
        assert keeper.withdrawable(addr(validator)) == FEE
    assert keeper.withdrawable(addr(keeper)) == FINALIZE_BOUNTY
    assert keeper.record(task, digest_of(result.child))[3:5] == (Status.REJECTED, 3800)
    assert events_in(keeper, result.finalize_receipt, "RelayerSlashed") == [
        {"taskId": task, "round": 1, "relayer": addr(alice), "amount": slash, "reason": 1}
    ]
    (finalized,) = events_in(keeper, result.finalize_receipt, "RoundFinalized")
    assert (
        finalized["verdict"],
        finalized["childScore"],
        finalized["championScore"],
        finalized["delta"],
        finalized["reward"],
    ) == (Status.REJECTED, 3800, 5000, -1200, 0)


def test_held_cycle(chain: Chain, actors: Actors, task: int, invariant: Invariant):
    alice, bob = actors.relayers[:2]
    v = actors.validators
    keeper = actors.keeper
    alice.join_relay(task, 2 * ETH)
    bob.join_relay(task, ETH)
    seat(v[:3], task)

    # deltas -200, -150, -300: median -200, inside the slash band (1000), outside the advance
    # band (100): no slash, no reward, the head stays; the validators did their work and are paid
    votes = [Vote(v[0], 4800), Vote(v[1], 4850), Vote(v[2], 4700)]
    result = play_round(chain, task, alice, "child-1", votes, keeper=keeper, check=invariant.check)

    state = keeper.task_state(task)
    assert state.pool == 10 * ETH - 3 * FEE - FINALIZE_BOUNTY
    assert (state.head_cid, state.head_score, state.accepted_count) == (cid_of("genesis"), 5000, 0)
    assert (state.champion_cid, state.champion_score) == (cid_of("genesis"), 5000)
    assert (state.total_shares, state.round, state.holder) == (0, 2, addr(bob))  # turn over
    a = alice.account(task, addr(alice))
    assert (a.relayer_stake, a.queued, a.withdrawable, a.shares) == (2 * ETH, True, 0, 0)
    assert [keeper.withdrawable(addr(x)) for x in v[:3]] == [FEE, FEE, FEE]
    assert keeper.withdrawable(addr(keeper)) == FINALIZE_BOUNTY
    assert keeper.record(task, digest_of(result.child))[3:5] == (Status.HELD, 4800)
    assert events_in(keeper, result.finalize_receipt, "RelayerSlashed") == []
    assert events_in(keeper, result.finalize_receipt, "ChampionCrowned") == []
    (finalized,) = events_in(keeper, result.finalize_receipt, "RoundFinalized")
    assert (finalized["verdict"], finalized["childScore"], finalized["delta"]) == (
        Status.HELD,
        4800,
        -200,
    )


def test_void_cycle(chain: Chain, actors: Actors, task: int, invariant: Invariant):
    alice, bob = actors.relayers[:2]
    v = actors.validators
    keeper = actors.keeper
    alice.join_relay(task, 2 * ETH)
    bob.join_relay(task, ETH)
    seat(v[:2], task)
    v[2].register_validator(task, 2 * ETH)  # keeps its seat after one missed commit
    invariant.check()

    # one reveal < quorum 2; v1 commits and stays silent; v2 does not take part
    result = play_round(
        chain,
        task,
        alice,
        "child-1",
        [Vote(v[0], 5600), Vote(v[1], 5600, False)],
        keeper=keeper,
        check=invariant.check,
    )

    silent_slash = ETH * 1000 // 10_000  # slashNoRevealBp
    miss = 2 * ETH * 500 // 10_000  # slashMissBp
    state = keeper.task_state(task)
    # a review that decided nothing pays nothing: no fee for the lone revealer, no keeper bounty
    assert state.pool == 10 * ETH + silent_slash + miss
    assert keeper.withdrawable(addr(v[0])) == 0
    assert keeper.withdrawable(addr(keeper)) == 0
    assert events_in(keeper, result.finalize_receipt, "ValidatorPaid") == []
    assert events_in(keeper, result.finalize_receipt, "KeeperPaid") == []
    assert (state.head_cid, state.champion_cid, state.accepted_count, state.total_shares) == (
        cid_of("genesis"),
        cid_of("genesis"),
        0,
        0,
    )
    # alice keeps the front for the next round; bob still waits
    assert (state.phase, state.round, state.holder, state.validator_count) == (
        Phase.TURN,
        2,
        addr(alice),
        2,
    )
    assert [m for m, _ in keeper.queue(task)] == [addr(alice), addr(bob)]
    assert events_in(keeper, result.finalize_receipt, "TurnStarted") == [
        {"taskId": task, "round": 2, "holder": addr(alice), "deadline": chain.now() + 100}
    ]
    a = alice.account(task, addr(alice))
    assert (a.relayer_stake, a.withdrawable, a.shares) == (2 * ETH, 0, 0)
    # the silent validator fell below validatorStake: seat lost, the rest withdrawable
    silent = keeper.account(task, addr(v[1]))
    assert (silent.seat, silent.validator_stake, silent.withdrawable) == (-1, 0, ETH - silent_slash)
    assert keeper.seats(task)[1].validator == ZERO_ADDRESS
    assert events_in(keeper, result.finalize_receipt, "ValidatorLeft") == [
        {"taskId": task, "validator": addr(v[1]), "refund": ETH - silent_slash, "forced": True}
    ]
    # the absent one paid for its missed commit and keeps its seat
    absent = keeper.account(task, addr(v[2]))
    assert (absent.seat, absent.validator_stake, absent.withdrawable) == (2, 2 * ETH - miss, 0)
    assert events_in(keeper, result.finalize_receipt, "ValidatorMissed") == [
        {"taskId": task, "round": 1, "validator": addr(v[2]), "amount": miss, "misses": 1}
    ]
    assert events_in(keeper, result.finalize_receipt, "RelayerSlashed") == []
    assert keeper.record(task, digest_of(result.child))[3] == Status.VOID
    (finalized,) = events_in(keeper, result.finalize_receipt, "RoundFinalized")
    assert (finalized["verdict"], finalized["reveals"], finalized["reward"]) == (Status.VOID, 1, 0)


def test_a_void_record_has_score_zero(chain: Chain, actors: Actors, task: int):
    alice = actors.relayers[0]
    alice.join_relay(task, 2 * ETH)
    seat(actors.validators[:1], task)

    result = play_round(
        chain, task, alice, "child-1", [Vote(actors.validators[0], 5600)], keeper=actors.keeper
    )

    assert actors.keeper.record(task, digest_of(result.child))[3:5] == (Status.VOID, 0)


def test_skip_cycle(chain: Chain, actors: Actors, task: int, invariant: Invariant):
    alice, bob = actors.relayers[:2]
    keeper = actors.keeper
    alice.join_relay(task, 2 * ETH)
    bob.join_relay(task, ETH)
    invariant.check()
    next_tx_at(chain, keeper.task_state(task).deadline + 1)

    keeper.skip_turn(task)  # a keeper skips alice: bounty from the slash
    invariant.check()
    next_tx_at(chain, keeper.task_state(task).deadline + 1)
    bob.skip_turn(task)  # bob skips himself: no bounty; 0.9 ETH < minStake: out
    invariant.check()

    alice_slash = 2 * ETH // 10
    bob_slash = ETH // 10
    bounty = alice_slash // 10
    state = keeper.task_state(task)
    assert state.pool == 10 * ETH + alice_slash - bounty + bob_slash
    assert (state.round, state.holder, state.queue_length) == (3, addr(alice), 1)
    assert keeper.withdrawable(addr(keeper)) == bounty
    assert alice.account(task, addr(alice)).relayer_stake == 2 * ETH - alice_slash
    b = bob.account(task, addr(bob))
    assert (b.queued, b.relayer_stake, b.withdrawable) == (False, 0, ETH - bob_slash)


def test_several_rounds_then_everyone_withdraws(chain: Chain, actors: Actors, invariant: Invariant):
    task = make_task(actors, max_validators=4)
    alice, bob, carol = actors.relayers[:3]
    v = actors.validators[:4]
    keeper = actors.keeper
    check = invariant.check
    for relayer in (alice, bob, carol):
        relayer.join_relay(task, 2 * ETH)
        check()
    seat(v, task, 2 * ETH)  # enough stake to survive a missed commit or two
    check()
    milli = ETH // 1000

    def play(holder: DeRelayContract, label: str, votes: list[Vote], by: DeRelayContract) -> None:
        play_round(chain, task, holder, label, votes, keeper=by, check=check)

    play(alice, "a-1", [Vote(x, 5400) for x in v], keeper)  # crowned: gain 400
    pool = 10 * ETH - (100 + 400) * milli - 4 * FEE - FINALIZE_BOUNTY
    assert keeper.task_state(task).pool == pool
    play(bob, "b-1", [Vote(x, 3000) for x in v[:2]], bob)  # rejected; v2, v3 miss
    pool += 2 * ETH // 5 + 2 * (2 * ETH // 20) - 2 * FEE - FINALIZE_BOUNTY
    assert keeper.task_state(task).pool == pool
    next_tx_at(chain, keeper.task_state(task).deadline + 1)
    keeper.skip_turn(task)  # carol
    check()
    pool += 2 * ETH // 10 - 2 * ETH // 100
    play(alice, "a-2", [Vote(v[0], 5600)], carol)  # void: alice keeps the turn; v1, v2, v3 miss
    pool += 2 * ETH // 20 + 2 * (19 * ETH // 10 // 20)
    assert keeper.task_state(task).pool == pool  # a void review moved nothing out of the pool
    play(alice, "a-2", [Vote(x, 5500) for x in v], keeper)  # her void child, decided: gain 100
    pool -= (100 + 100) * milli + 4 * FEE + FINALIZE_BOUNTY
    play(bob, "b-2", [Vote(x, 5450) for x in v], keeper)  # head, not champion: -50, no reward
    pool -= 4 * FEE + FINALIZE_BOUNTY
    assert keeper.task_state(task).pool == pool
    actors.consumer.pay_for_model(task, ETH)
    check()
    for relayer in (alice, bob):
        relayer.claim_royalties(task)
        check()

    everyone = [alice, bob, carol, *v, keeper]
    owed = {addr(x): keeper.withdrawable(addr(x)) for x in everyone}
    shares = 700 * milli  # alice's rewards: the only shares, so all of the royalty, floored
    assert owed[addr(alice)] == shares + shares * (ETH // 2 * 10**18 // shares) // 10**18
    assert owed[addr(bob)] == FINALIZE_BOUNTY  # he finalized his own b-1
    assert owed[addr(carol)] == 0  # she finalized the void review: no bounty
    assert owed[addr(keeper)] == 3 * FINALIZE_BOUNTY + 2 * ETH // 100  # and carol's skip
    assert [owed[addr(x)] for x in v] == [4 * FEE, 4 * FEE, 3 * FEE, 3 * FEE]
    for x in everyone:
        if owed[addr(x)]:
            before = x.client.balance()
            receipt = x.withdraw()
            assert x.client.balance() == before + owed[addr(x)] - gas_cost(receipt)
            check()

    state = keeper.task_state(task)
    assert state.pool == pool + ETH // 2
    relayer_stakes = 2 * ETH + (2 * ETH - 2 * ETH // 5) + (2 * ETH - 2 * ETH // 10)
    missed_twice = 2 * ETH - 2 * ETH // 20 - 19 * ETH // 10 // 20
    validator_stakes = 2 * ETH + (2 * ETH - 2 * ETH // 20) + 2 * missed_twice
    assert [keeper.account(task, addr(x)).validator_stake for x in v] == [
        2 * ETH,
        2 * ETH - 2 * ETH // 20,
        missed_twice,
        missed_twice,
    ]
    stakes = relayer_stakes + validator_stakes
    assert keeper.client.balance(keeper.address) == state.pool + stakes + check()
    assert [(e.status, e.round) for e in keeper.lineage(task)] == [
        (Status.GENESIS, 0),
        (Status.ACCEPTED, 1),
        (Status.REJECTED, 2),
        (Status.ACCEPTED, 5),  # void in round 4, resubmitted by alice in round 5
        (Status.ACCEPTED, 6),
    ]
    assert keeper.champion(task) == (cid_of("a-2"), 5500)
    assert keeper.head(task) == (cid_of("b-2"), 5450)
