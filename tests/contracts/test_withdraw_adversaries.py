"""Money out (pull payments only) and adversaries: re-entrancy, a reverting receiver, and relayers
or validators who try to cheat the relay or the review."""

from __future__ import annotations

import json

import pytest

from derelay.trainer.chain import ChainClient
from derelay.trainer.contract import ARTIFACTS_DIR, DeRelayContract, Phase, Status, commitment_for
from derelay.trainer.errors import ChainError
from tests.conftest import Chain
from tests.contracts.conftest import (
    ETH,
    Actors,
    Invariant,
    Vote,
    cid_of,
    commit,
    digest_of,
    events_in,
    gas_cost,
    make_params,
    next_tx_at,
    play_round,
    reveal,
    reverts,
    salt_of,
    seat,
    submit,
)


def addr(view: DeRelayContract) -> str:
    return view.client.address


def deploy(client: ChainClient, name: str, relay: DeRelayContract):
    """Deploy test contract `name` aimed at `relay`; return it as a web3 contract."""
    artifact = json.loads((ARTIFACTS_DIR / f"{name}.json").read_text())
    address, _ = client.deploy(artifact["abi"], artifact["bytecode"], relay.address)
    return client.w3.eth.contract(address=address, abi=artifact["abi"])


# ---------------------------------------------------------------------- withdraw


def test_withdraw_sends_the_whole_balance(
    chain: Chain, actors: Actors, task: int, invariant: Invariant
):
    a, b = actors.relayers[:2]
    a.join_relay(task, ETH)
    b.join_relay(task, 3 * ETH)
    b.leave_relay(task)
    contract_before = b.client.balance(b.address)
    before = b.client.balance()

    receipt = b.withdraw()

    assert b.client.balance() == before + 3 * ETH - gas_cost(receipt)
    assert b.client.balance(b.address) == contract_before - 3 * ETH
    assert b.withdrawable(addr(b)) == 0
    assert events_in(b, receipt, "Withdrawn") == [{"account": addr(b), "amount": 3 * ETH}]
    invariant.check()


def test_withdraw_with_nothing_owed_reverts(chain: Chain, actors: Actors, task: int):
    a, b = actors.relayers[:2]
    a.join_relay(task, ETH)
    b.join_relay(task, ETH)
    b.leave_relay(task)
    b.withdraw()

    with reverts("DeRelay__NothingToWithdraw", addr(b)):
        b.withdraw()
    with reverts("DeRelay__NothingToWithdraw", addr(actors.consumer)):
        actors.consumer.withdraw()


def test_withdraw_pays_credits_from_every_task_at_once(
    chain: Chain, actors: Actors, invariant: Invariant
):
    first = actors.publisher.create_task(make_params(), funding=ETH)
    second = actors.publisher.create_task(make_params(), funding=ETH)
    a, b = actors.relayers[:2]
    for task in (first, second):
        a.join_relay(task, ETH)
        b.join_relay(task, 2 * ETH)
        b.leave_relay(task)
    invariant.check()
    before = b.client.balance()

    receipt = b.withdraw()

    assert b.client.balance() == before + 4 * ETH - gas_cost(receipt)
    invariant.check()


def test_reentrant_withdraw_fails_and_leaves_balances_intact(
    chain: Chain, actors: Actors, task: int, invariant: Invariant
):
    actors.relayers[0].join_relay(task, ETH)  # holds the turn, so the attacker can leave again
    owner = actors.keeper.client
    attacker = deploy(owner, "ReentrantWithdrawer", actors.keeper)
    invariant.track(attacker.address)
    owner.transact(attacker.functions.joinAndLeave(task), "joinAndLeave", value=ETH)
    assert actors.keeper.withdrawable(attacker.address) == ETH
    held = owner.balance(actors.keeper.address)

    with reverts("ReentrancyGuardReentrantCall"):
        owner.transact(attacker.functions.attack(), "attack")
    nonce = owner.w3.eth.get_transaction_count(owner.address)
    tx = attacker.functions.attack().build_transaction(
        {"from": owner.address, "gas": 500_000, "nonce": nonce}
    )
    with pytest.raises(ChainError):  # sent anyway, with gas enough: it reverts on chain
        owner.send(tx, "attack")

    assert actors.keeper.withdrawable(attacker.address) == ETH
    assert owner.balance(actors.keeper.address) == held
    assert owner.balance(attacker.address) == 0
    assert attacker.functions.reentries().call() == 0
    invariant.check()


def test_a_reverting_receiver_cannot_block_anyone_else(
    chain: Chain, actors: Actors, task: int, invariant: Invariant
):
    a, b = actors.relayers[:2]
    a.join_relay(task, ETH)
    b.join_relay(task, ETH)
    owner = actors.keeper.client
    receiver = deploy(owner, "RevertingReceiver", actors.keeper)
    invariant.track(receiver.address)
    owner.transact(receiver.functions.join(task), "join", value=2 * ETH)
    owner.transact(receiver.functions.leave(task), "leave")
    b.leave_relay(task)

    # sendValue bubbles up the receiver's own revert reason
    with pytest.raises(ChainError, match="RevertingReceiver: no thanks"):
        owner.transact(receiver.functions.withdraw(), "withdraw")

    assert actors.keeper.withdrawable(receiver.address) == 2 * ETH
    before = b.client.balance()
    receipt = b.withdraw()
    assert b.client.balance() == before + ETH - gas_cost(receipt)
    assert (
        b.client.balance(b.address) == 10 * ETH + ETH + 2 * ETH
    )  # pool, a's stake, the receiver's credit
    invariant.check()


# ---------------------------------------------------------------------- cheating relayers


def test_an_outsider_cannot_submit(chain: Chain, actors: Actors, task: int, invariant: Invariant):
    holder = actors.relayers[0]
    holder.join_relay(task, ETH)
    outsider = actors.relayers[3]

    with reverts("DeRelay__NotHolder", task, addr(outsider), addr(holder)):
        submit(outsider, task, "stolen-turn")

    assert actors.keeper.task_state(task).phase == Phase.TURN
    invariant.check()


def test_a_late_holder_cannot_submit_and_is_skipped(
    chain: Chain, actors: Actors, task: int, invariant: Invariant
):
    late, next_up = actors.relayers[:2]
    late.join_relay(task, 2 * ETH)
    next_up.join_relay(task, ETH)
    deadline = late.task_state(task).deadline
    next_tx_at(chain, deadline + 5)

    with reverts("DeRelay__TurnExpired", task, deadline):
        submit(late, task, "too-late")
    next_up.skip_turn(task)  # the next in line moves the relay on and earns the bounty

    assert late.account(task, addr(late)).relayer_stake == 2 * ETH - 2 * ETH // 10
    assert next_up.withdrawable(addr(next_up)) == 2 * ETH // 10 // 10
    assert late.task_state(task).holder == addr(next_up)
    invariant.check()


@pytest.fixture
def history(chain: Chain, actors: Actors, task: int) -> dict[str, bytes]:
    """Five finalized rounds: a-1 accepted, b-1 rejected, a-2 void (a keeps the turn), a-3 held,
    b-2 accepted (the head and the champion)."""
    a, b = actors.relayers[:2]
    v = actors.validators[:2]
    a.join_relay(task, 2 * ETH)
    b.join_relay(task, 2 * ETH)
    seat(v, task, 2 * ETH)  # v1 survives its missed commit
    children = {}
    for holder, label, votes in [
        (a, "a-1", [Vote(x, 5300) for x in v]),
        (b, "b-1", [Vote(x, 1000) for x in v]),
        (a, "a-2", [Vote(v[0], 5300)]),
        (a, "a-3", [Vote(x, 5000) for x in v]),
        (b, "b-2", [Vote(x, 5400) for x in v]),
    ]:
        children[label] = play_round(chain, task, holder, label, votes, keeper=actors.keeper).child
    statuses = [e.status for e in actors.keeper.lineage(task)]
    assert statuses == [
        Status.GENESIS,
        Status.ACCEPTED,
        Status.REJECTED,
        Status.VOID,
        Status.HELD,
        Status.ACCEPTED,
    ]
    return children


def test_a_stale_parent_is_refused(
    chain: Chain, actors: Actors, task: int, history, invariant: Invariant
):
    a = actors.relayers[0]
    head = digest_of(history["b-2"])

    for parent in (digest_of(cid_of("genesis")), digest_of(history["a-1"])):
        with reverts("DeRelay__StaleParent", task, parent, head):
            submit(a, task, "a-4", parent=parent)

    submit(a, task, "a-4")  # from the head it goes through
    invariant.check()


def test_a_repeated_child_is_refused(
    chain: Chain, actors: Actors, task: int, history, invariant: Invariant
):
    a = actors.relayers[0]
    pool = a.task_state(task).pool
    seen = {
        "genesis": cid_of("genesis"),
        "earlier accepted": history["a-1"],
        "rejected": history["b-1"],
        "own void, since superseded": history["a-2"],
        "held": history["a-3"],
        "parent (the head)": history["b-2"],
        "parent's digest under another codec": cid_of("b-2", 0x70),
    }

    for what, child in seen.items():
        with reverts("DeRelay__ChildSeen", task, digest_of(child)):
            submit(a, task, what, child=child)

    state = a.task_state(task)
    assert (state.phase, state.submission_count, state.pool) == (Phase.TURN, 6, pool)
    invariant.check()
    submit(a, task, "a-4")  # a new child goes through
    assert a.task_state(task).phase == Phase.REVIEW


# ---------------------------------------------------------------------- cheating validators


@pytest.fixture
def review(chain: Chain, actors: Actors, task: int):
    """Relayer 0 submitted round 1; validators 0..2 seated."""
    actors.relayers[0].join_relay(task, 2 * ETH)
    seat(actors.validators[:3], task)
    submit(actors.relayers[0], task, "child-1")
    return actors.keeper.task_state(task)


def test_the_holder_cannot_review_its_own_child(chain: Chain, actors: Actors, invariant: Invariant):
    task = actors.publisher.create_task(make_params(), funding=ETH)
    holder = actors.relayers[0]
    holder.join_relay(task, ETH)
    holder.register_validator(task, ETH)  # a relayer may also hold a seat
    submit(holder, task, "child-1")

    with reverts("DeRelay__SelfReview", task, addr(holder)):
        commit(holder, task, 1, 10_000)

    assert holder.seats(task)[0].ballot == 0
    invariant.check()


def test_a_validator_cannot_commit_twice(
    chain: Chain, actors: Actors, task: int, review, invariant: Invariant
):
    v0 = actors.validators[0]
    commit(v0, task, 1, 5300)

    with reverts("DeRelay__AlreadyCommitted", task, 1):
        commit(v0, task, 1, 9000)

    next_tx_at(chain, review.deadline + 1)
    reveal(v0, task, 1, 5300)  # the first commitment stands
    assert v0.seats(task)[0].child_score == 5300
    invariant.check()


@pytest.mark.parametrize("lie", ["child", "champion", "swapped", "salt"])
def test_a_reveal_that_differs_from_the_commitment_reverts(
    chain: Chain, actors: Actors, task: int, review, lie
):
    v0 = actors.validators[0]
    commit(v0, task, 1, 5300, champion=5000)
    next_tx_at(chain, review.deadline + 1)
    child, champion, salt = {
        "child": (9000, 5000, None),
        "champion": (5300, 4000, None),  # a lower champion score would raise the delta
        "swapped": (5000, 5300, None),
        "salt": (5300, 5000, b"\x01" * 32),
    }[lie]

    with reverts("DeRelay__RevealMismatch", task, 1):
        reveal(v0, task, 1, child, salt, champion=champion)

    assert v0.seats(task)[0].ballot == 1


def test_a_copied_commitment_cannot_be_revealed(chain: Chain, actors: Actors, task: int, review):
    v0, v1 = actors.validators[:2]
    honest = commitment_for(task, 1, 5300, 5000, 5000, salt_of(v0, 1), addr(v0))
    v0.commit_score(task, 1, honest)
    v1.commit_score(task, 1, honest)  # copies v0's hash without knowing the score
    next_tx_at(chain, review.deadline + 1)
    reveal(v0, task, 1, 5300)

    with reverts("DeRelay__RevealMismatch", task, 1):
        v1.reveal_score(task, 1, 5300, 5000, 5000, salt_of(v0, 1))  # the hash binds the address


def test_a_second_reveal_reverts(chain: Chain, actors: Actors, task: int, review):
    v0 = actors.validators[0]
    commit(v0, task, 1, 5300)
    next_tx_at(chain, review.deadline + 1)
    reveal(v0, task, 1, 5300)

    with reverts("DeRelay__AlreadyRevealed", task, 1):
        reveal(v0, task, 1, 5300)


def test_a_late_reveal_is_refused_and_the_silence_slashed(
    chain: Chain, actors: Actors, task: int, review, invariant: Invariant
):
    v0, v1, v2 = actors.validators[:3]
    for v in (v0, v1, v2):
        commit(v, task, 1, 5300)
    next_tx_at(chain, review.deadline + 1)
    reveal(v0, task, 1, 5300)
    reveal(v1, task, 1, 5300)
    next_tx_at(chain, review.reveal_end + 1)

    with reverts("DeRelay__RevealClosed", task, review.reveal_end):
        reveal(v2, task, 1, 5300)
    actors.keeper.finalize(task)

    silent = v2.account(task, addr(v2))
    assert (silent.seat, silent.validator_stake, silent.withdrawable) == (-1, 0, ETH - ETH // 10)
    invariant.check()


def test_a_lazy_validator_revealing_equal_guesses_earns_no_fee(
    chain: Chain, actors: Actors, task: int, invariant: Invariant
):
    # Skipping the work and revealing the same number for child and champion lands on a median
    # delta near 0, but a fee also needs the child's score within bandBp of its median.
    alice = actors.relayers[0]
    v0, v1, lazy = actors.validators[:3]
    alice.join_relay(task, ETH)
    seat([v0, v1, lazy], task)

    result = play_round(
        chain,
        task,
        alice,
        "child-1",
        [Vote(v0, 6030, champion=6000), Vote(v1, 6030, champion=6000), Vote(lazy, 7000, 7000)],
        keeper=actors.keeper,
        check=invariant.check,
    )

    (finalized,) = events_in(alice, result.finalize_receipt, "RoundFinalized")
    assert (finalized["childScore"], finalized["delta"]) == (6030, 30)
    assert [alice.withdrawable(addr(x)) for x in (v0, v1, lazy)] == [ETH // 100, ETH // 100, 0]
