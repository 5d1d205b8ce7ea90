"""Complete accept, reject, void and skip cycles with exact balances for every party, and the
balance invariant after every transaction."""

from __future__ import annotations

import pytest

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
from trainer.contract import ZERO_ADDRESS, DeRelayContract, Phase, Status

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

    # reveals 5200, 5250, 5300, 5700: lower median 5250, v3 out of band; v4 commits, stays silent
    # (scores ascend in seat order here: see test_validator_fees_follow_each_validators_own_score)
    votes = [
        Vote(v[0], 5200),
        Vote(v[1], 5250),
        Vote(v[2], 5300),
        Vote(v[3], 5700),
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
    assert state.ref == 5000 + gain * 5000 // 10_000
    assert (state.total_shares, state.phase, state.round, state.holder) == (
        reward,
        Phase.TURN,
        2,
        addr(bob),
    )
    assert keeper.head(task) == (result.child, 5250)
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
            "median": 5250,
            "reveals": 4,
            "ref": 5125,
            "reward": reward,
        }
    ]
    assert [e["validator"] for e in events_in(keeper, receipt, "ValidatorPaid")] == [
        addr(v[0]),
        addr(v[1]),
        addr(v[2]),
    ]
    assert events_in(keeper, receipt, "ValidatorSlashed") == [
        {"taskId": task, "round": 1, "validator": addr(v[4]), "amount": silent_slash}
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

    # median 4800: 4800 + tolerance 100 < ref 5000
    votes = [Vote(v[0], 4800), Vote(v[1], 4850), Vote(v[2], 4700)]
    result = play_round(chain, task, alice, "child-1", votes, keeper=keeper, check=invariant.check)

    slash = stake * 2000 // 10_000  # slashRejectBp
    state = keeper.task_state(task)
    assert state.pool == 10 * ETH + slash - 3 * FEE - FINALIZE_BOUNTY
    assert (state.head_cid, state.head_score, state.ref, state.accepted_count) == (
        cid_of("genesis"),
        5000,
        5000,
        0,
    )
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
    assert keeper.record(task, digest_of(result.child))[3:5] == (Status.REJECTED, 4800)
    assert events_in(keeper, result.finalize_receipt, "RelayerSlashed") == [
        {"taskId": task, "round": 1, "relayer": addr(alice), "amount": slash, "reason": 1}
    ]
    (finalized,) = events_in(keeper, result.finalize_receipt, "RoundFinalized")
    assert (finalized["verdict"], finalized["median"], finalized["ref"], finalized["reward"]) == (
        Status.REJECTED,
        4800,
        5000,
        0,
    )


def test_void_cycle(chain: Chain, actors: Actors, task: int, invariant: Invariant):
    alice = actors.relayers[0]
    v = actors.validators
    keeper = actors.keeper
    alice.join_relay(task, 2 * ETH)
    seat(v[:3], task)
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

    silent_slash = ETH * 1000 // 10_000
    state = keeper.task_state(task)
    # the lone revealer is within bandBp of the median (its own score) and earns its fee
    assert state.pool == 10 * ETH - FEE + silent_slash - FINALIZE_BOUNTY
    assert (state.head_cid, state.ref, state.accepted_count, state.total_shares) == (
        cid_of("genesis"),
        5000,
        0,
        0,
    )
    assert (state.round, state.holder, state.validator_count) == (2, addr(alice), 2)
    a = alice.account(task, addr(alice))
    assert (a.relayer_stake, a.withdrawable, a.shares) == (2 * ETH, 0, 0)
    assert keeper.withdrawable(addr(v[0])) == FEE
    assert keeper.withdrawable(addr(keeper)) == FINALIZE_BOUNTY
    # the silent validator fell below validatorStake: seat lost, the rest withdrawable
    silent = keeper.account(task, addr(v[1]))
    assert (silent.seat, silent.validator_stake, silent.withdrawable) == (-1, 0, ETH - silent_slash)
    assert keeper.seats(task)[1].validator == ZERO_ADDRESS
    assert events_in(keeper, result.finalize_receipt, "ValidatorLeft") == [
        {"taskId": task, "validator": addr(v[1]), "refund": ETH - silent_slash, "forced": True}
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
    seat(v, task)
    check()

    play_round(chain, task, alice, "a-1", [Vote(x, 5400) for x in v], keeper=keeper, check=check)
    play_round(chain, task, bob, "b-1", [Vote(x, 3000) for x in v[:2]], keeper=bob, check=check)
    next_tx_at(chain, keeper.task_state(task).deadline + 1)
    keeper.skip_turn(task)  # carol
    check()
    play_round(chain, task, alice, "a-2", [Vote(v[0], 5600)], keeper=carol, check=check)  # void
    play_round(chain, task, bob, "b-2", [Vote(x, 5500) for x in v[1:]], keeper=keeper, check=check)
    actors.consumer.pay_for_model(task, ETH)
    check()
    for relayer in (alice, bob):
        relayer.claim_royalties(task)
        check()

    everyone = [alice, bob, carol, *v, keeper]
    owed = {addr(x): keeper.withdrawable(addr(x)) for x in everyone}
    for x in everyone:
        if owed[addr(x)]:
            before = x.client.balance()
            receipt = x.withdraw()
            assert x.client.balance() == before + owed[addr(x)] - gas_cost(receipt)
            check()

    state = keeper.task_state(task)
    stakes = 2 * ETH + (2 * ETH - 2 * ETH // 5) + (2 * ETH - 2 * ETH // 10) + 4 * ETH
    assert keeper.client.balance(keeper.address) == state.pool + stakes + check()
    assert [e.status for e in keeper.lineage(task)] == [
        Status.GENESIS,
        Status.ACCEPTED,
        Status.REJECTED,
        Status.VOID,
        Status.ACCEPTED,
    ]
