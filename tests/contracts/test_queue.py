"""The relay queue: join, leave, addStake, rotation, caps, idle and restart."""

from __future__ import annotations

from derelay.trainer.contract import ZERO_ADDRESS, DeRelayContract, Phase
from tests.conftest import Chain
from tests.contracts.conftest import (
    ETH,
    Actors,
    Invariant,
    events_in,
    make_task,
    next_tx_at,
    reverts,
    submit,
)


def addr(view: DeRelayContract) -> str:
    return view.client.address


def order(view: DeRelayContract, task: int) -> list[str]:
    return [member for member, _ in view.queue(task)]


def expire_and_skip(chain: Chain, keeper: DeRelayContract, task: int) -> None:
    next_tx_at(chain, keeper.task_state(task).deadline + 1)
    keeper.skip_turn(task)


def test_first_joiner_takes_the_turn_at_once(chain: Chain, actors: Actors, task: int):
    alice = actors.relayers[0]

    receipt = alice.join_relay(task, ETH)

    now = chain.now()
    state = alice.task_state(task)
    assert (state.phase, state.round, state.holder) == (Phase.TURN, 1, addr(alice))
    assert (state.phase_start, state.deadline, state.queue_length) == (now, now + 100, 1)
    (joined,) = events_in(alice, receipt, "RelayerJoined")
    assert (joined["relayer"], joined["stake"], joined["queueLength"]) == (
        addr(alice),
        ETH,
        1,
    )
    (started,) = events_in(alice, receipt, "TurnStarted")
    assert (started["round"], started["holder"], started["deadline"]) == (
        1,
        addr(alice),
        now + 100,
    )
    account = alice.account(task, addr(alice))
    assert (account.relayer_stake, account.queued, account.withdrawable) == (ETH, True, 0)


def test_later_joiners_queue_at_the_tail_in_order(chain: Chain, actors: Actors, task: int):
    a, b, c = actors.relayers[:3]
    a.join_relay(task, ETH)

    b.join_relay(task, 2 * ETH)
    c.join_relay(task, 3 * ETH)

    assert a.queue(task) == [(addr(a), ETH), (addr(b), 2 * ETH), (addr(c), 3 * ETH)]
    state = a.task_state(task)
    assert (state.holder, state.round, state.queue_length) == (addr(a), 1, 3)


def test_join_below_min_stake_reverts(chain: Chain, actors: Actors, task: int):
    with reverts("DeRelay__StakeTooLow", ETH - 1, ETH):
        actors.relayers[0].join_relay(task, ETH - 1)


def test_join_twice_reverts(chain: Chain, actors: Actors, task: int):
    a, b = actors.relayers[:2]
    a.join_relay(task, ETH)
    b.join_relay(task, ETH)

    with reverts("DeRelay__AlreadyQueued", task, addr(b)):
        b.join_relay(task, ETH)
    with reverts("DeRelay__AlreadyQueued", task, addr(a)):
        a.join_relay(task, ETH)


def test_join_a_full_queue_reverts(chain: Chain, actors: Actors):
    task = make_task(actors, max_queue=2)
    a, b, c, _ = actors.relayers
    a.join_relay(task, ETH)
    b.join_relay(task, ETH)

    with reverts("DeRelay__QueueFull", task, 2):
        c.join_relay(task, ETH)

    b.leave_relay(task)
    c.join_relay(task, ETH)
    assert order(a, task) == [addr(a), addr(c)]


def test_add_stake_tops_up(chain: Chain, actors: Actors, task: int, invariant: Invariant):
    a, b = actors.relayers[:2]
    a.join_relay(task, ETH)
    b.join_relay(task, ETH)

    receipt = b.add_stake(task, ETH // 2)

    assert b.account(task, addr(b)).relayer_stake == 3 * ETH // 2
    (event,) = events_in(b, receipt, "StakeAdded")
    assert (event["amount"], event["stake"]) == (ETH // 2, 3 * ETH // 2)
    a.add_stake(task, 1)  # the holder may top up too
    assert a.account(task, addr(a)).relayer_stake == ETH + 1
    invariant.check()


def test_add_stake_zero_or_unqueued_reverts(chain: Chain, actors: Actors, task: int):
    a, b = actors.relayers[:2]
    a.join_relay(task, ETH)

    with reverts("DeRelay__ZeroAmount"):
        a.add_stake(task, 0)
    with reverts("DeRelay__NotQueued", task, addr(b)):
        b.add_stake(task, ETH)


def test_leave_refunds_the_stake_and_relinks(
    chain: Chain, actors: Actors, task: int, invariant: Invariant
):
    a, b, c, d = actors.relayers
    for view in (a, b, c, d):
        view.join_relay(task, ETH + 7)

    receipt = c.leave_relay(task)

    assert order(a, task) == [addr(a), addr(b), addr(d)]
    account = c.account(task, addr(c))
    assert (account.queued, account.relayer_stake, account.withdrawable) == (False, 0, ETH + 7)
    (event,) = events_in(c, receipt, "RelayerLeft")
    assert (event["relayer"], event["refund"], event["forced"]) == (
        addr(c),
        ETH + 7,
        False,
    )
    d.leave_relay(task)  # the tail leaves: the ring closes on b
    assert order(a, task) == [addr(a), addr(b)]
    assert a.task_state(task).queue_length == 2
    invariant.check()


def test_leave_when_not_queued_reverts(chain: Chain, actors: Actors, task: int):
    a, b = actors.relayers[:2]
    a.join_relay(task, ETH)
    b.join_relay(task, ETH)
    b.leave_relay(task)

    with reverts("DeRelay__NotQueued", task, addr(b)):
        b.leave_relay(task)


def test_holder_may_give_up_an_unused_turn_before_its_deadline(
    chain: Chain, actors: Actors, task: int
):
    a, b = actors.relayers[:2]
    a.join_relay(task, ETH)
    b.join_relay(task, ETH)

    a.leave_relay(task)

    state = a.task_state(task)
    assert (state.holder, state.round, state.phase) == (addr(b), 2, Phase.TURN)
    assert order(a, task) == [addr(b)]
    assert a.withdrawable(addr(a)) == ETH - ETH * 1000 // 10_000  # b waited: a skip's slash


def test_a_lone_holder_leaving_makes_the_relay_idle(chain: Chain, actors: Actors, task: int):
    a = actors.relayers[0]
    a.join_relay(task, ETH)

    a.leave_relay(task)

    state = a.task_state(task)
    assert (state.holder, state.phase, state.queue_length) == (ZERO_ADDRESS, Phase.IDLE, 0)


def test_holder_cannot_leave_past_its_deadline_or_under_review(
    chain: Chain, actors: Actors, task: int
):
    a, b = actors.relayers[:2]
    a.join_relay(task, 2 * ETH)  # stays above minStake after the timeout slash
    b.join_relay(task, ETH)
    next_tx_at(chain, a.task_state(task).deadline + 1)
    with reverts("DeRelay__HolderCannotLeave", task, addr(a)):
        a.leave_relay(task)  # it must be skipped, and slashed, instead
    actors.keeper.skip_turn(task)
    submit(b, task, "child-1")

    with reverts("DeRelay__HolderCannotLeave", task, addr(b)):
        b.leave_relay(task)

    assert order(a, task) == [addr(b), addr(a)]


def test_rotation_order_over_several_rounds(chain: Chain, actors: Actors):
    task = make_task(actors, slash_timeout_bp=0)
    a, b, c, d = actors.relayers
    for view in (a, b, c):
        view.join_relay(task, ETH)
    holders = []

    for _ in range(3):
        holders.append(actors.keeper.task_state(task).holder)
        expire_and_skip(chain, actors.keeper, task)
    d.join_relay(task, ETH)  # joins behind c, the member before the holder a
    for _ in range(4):
        holders.append(actors.keeper.task_state(task).holder)
        expire_and_skip(chain, actors.keeper, task)
    b.leave_relay(task)
    for _ in range(3):
        holders.append(actors.keeper.task_state(task).holder)
        expire_and_skip(chain, actors.keeper, task)

    A, B, C, D = map(addr, (a, b, c, d))
    assert holders == [A, B, C, A, B, C, D, A, C, D]
    state = actors.keeper.task_state(task)
    assert (state.round, state.holder, state.queue_length) == (11, A, 3)
    assert order(a, task) == [A, C, D]


def test_a_void_review_keeps_the_holder_at_the_front(
    chain: Chain, actors: Actors, invariant: Invariant
):
    task = make_task(actors, slash_timeout_bp=0)
    a, b, c = actors.relayers[:3]
    for view in (a, b, c):
        view.join_relay(task, ETH)
    submit(a, task, "child-1")  # no validators: the review decides nothing
    next_tx_at(chain, a.task_state(task).deadline + 1)

    receipt = actors.keeper.finalize(task)

    state = a.task_state(task)
    assert (state.phase, state.round, state.holder) == (Phase.TURN, 2, addr(a))
    assert order(a, task) == [addr(a), addr(b), addr(c)]
    assert events_in(a, receipt, "TurnStarted") == [
        {"taskId": task, "round": 2, "holder": addr(a), "deadline": chain.now() + 100}
    ]
    expire_and_skip(chain, actors.keeper, task)  # a kept a turn, not a right to stall
    assert a.task_state(task).holder == addr(b)
    assert order(a, task) == [addr(b), addr(c), addr(a)]
    invariant.check()


def test_a_second_void_review_in_a_row_sends_the_holder_to_the_tail(
    chain: Chain, actors: Actors, invariant: Invariant
):
    # A holder that also holds a seat (or validators that never reach a quorum) would otherwise
    # keep the turn for good: each review void, each void keeping the turn.
    task = make_task(actors, slash_timeout_bp=0)
    a, b = actors.relayers[:2]
    for view in (a, b):
        view.join_relay(task, ETH)
    for label in ("child-1", "child-2"):
        submit(a, task, label)
        next_tx_at(chain, a.task_state(task).deadline + 1)
        actors.keeper.finalize(task)

    state = a.task_state(task)
    assert (state.phase, state.round, state.holder) == (Phase.TURN, 3, addr(b))
    assert order(a, task) == [addr(b), addr(a)]
    submit(b, task, "child-3")  # b's own child voids: b keeps the front once, like a did
    next_tx_at(chain, b.task_state(task).deadline + 1)
    actors.keeper.finalize(task)
    assert b.task_state(task).holder == addr(b)
    invariant.check()


def test_a_queue_of_one_keeps_the_turn(chain: Chain, actors: Actors):
    task = make_task(actors, slash_timeout_bp=0)
    a = actors.relayers[0]
    a.join_relay(task, ETH)

    expire_and_skip(chain, actors.keeper, task)

    state = a.task_state(task)
    assert (state.phase, state.round, state.holder) == (Phase.TURN, 2, addr(a))
    assert state.deadline == chain.now() + 100
    assert a.queue(task) == [(addr(a), ETH)]


def test_idle_when_the_last_member_is_forced_out_and_a_join_restarts(
    chain: Chain, actors: Actors, task: int, invariant: Invariant
):
    a, b = actors.relayers[:2]
    a.join_relay(task, ETH)  # exactly minStake: a timeout slash drops it below

    expire_and_skip(chain, actors.keeper, task)

    state = a.task_state(task)
    assert (state.phase, state.holder, state.queue_length, state.round) == (
        Phase.IDLE,
        ZERO_ADDRESS,
        0,
        1,
    )
    assert a.queue(task) == []
    assert a.account(task, addr(a)).withdrawable == ETH - ETH // 10
    invariant.check()

    b.join_relay(task, ETH)

    state = a.task_state(task)
    assert (state.phase, state.holder, state.round, state.queue_length) == (
        Phase.TURN,
        addr(b),
        2,
        1,
    )
    assert state.deadline == chain.now() + 100
    invariant.check()


def test_a_member_who_left_can_rejoin_at_the_tail(chain: Chain, actors: Actors, task: int):
    a, b, c = actors.relayers[:3]
    for view in (a, b, c):
        view.join_relay(task, ETH)
    b.leave_relay(task)

    b.join_relay(task, 2 * ETH)

    assert a.queue(task) == [(addr(a), ETH), (addr(c), ETH), (addr(b), 2 * ETH)]
    assert b.account(task, addr(b)).withdrawable == ETH  # the first stake stays withdrawable
