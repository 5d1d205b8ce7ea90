"""Views: parameters, queue and lineage pages, seats, accounts, the current turn, head, records."""

from __future__ import annotations

import pytest

from derelay.trainer.contract import (
    ZERO_ADDRESS,
    Ballot,
    DeRelayContract,
    Phase,
    Status,
    commitment_for,
)
from derelay.trainer.errors import ChainError
from tests.conftest import Chain
from tests.contracts.conftest import (
    ETH,
    Actors,
    Vote,
    cid_of,
    commit,
    digest_of,
    make_params,
    make_task,
    next_tx_at,
    play_round,
    reveal,
    reverts,
    seat,
    submit,
)


def addr(view: DeRelayContract) -> str:
    return view.client.address


def page(
    view: DeRelayContract, task: int, cursor: str, limit: int
) -> tuple[list[str], list[int], str]:
    members, stakes, next_cursor = view._view("queuePage", task, cursor, limit)
    return list(members), list(stakes), next_cursor


def test_task_params_round_trip(chain: Chain, actors: Actors):
    params = make_params(
        spec_cid=cid_of("another spec", 0x70),
        genesis_cid=cid_of("another genesis", 0x70),
        genesis_score=1234,
        min_stake=3 * ETH + 1,
        validator_stake=2 * ETH + 3,
        turn_duration=3601,
        commit_window=601,
        reveal_window=602,
        quorum=3,
        max_validators=7,
        max_queue=99,
        slash_band=1500,
        advance_band=400,
        max_misses=5,
        min_gain=7,
        base_reward=12345,
        reward_per_point=678,
        slash_timeout_bp=111,
        slash_reject_bp=222,
        slash_no_reveal_bp=333,
        slash_miss_bp=777,
        band_bp=444,
        validator_fee=9999,
        keeper_bounty_bp=555,
        royalty_bp=6666,
        usage_fee=4242,
    )

    task = actors.publisher.create_task(params)

    assert actors.keeper.task_params(task) == params


def test_queue_pages(chain: Chain, actors: Actors):
    task = make_task(actors, slash_timeout_bp=0)
    view = actors.keeper
    assert page(view, task, ZERO_ADDRESS, 10) == ([], [], ZERO_ADDRESS)
    r = [addr(x) for x in actors.relayers]
    for i, relayer in enumerate(actors.relayers):
        relayer.join_relay(task, ETH + i)
    stakes = [ETH + i for i in range(4)]

    first = page(view, task, ZERO_ADDRESS, 2)
    second = page(view, task, first[2], 2)

    assert first == (r[:2], stakes[:2], r[2])
    assert second == (r[2:], stakes[2:], ZERO_ADDRESS)
    assert page(view, task, ZERO_ADDRESS, 10) == (r, stakes, ZERO_ADDRESS)
    assert page(view, task, r[1], 10) == (r[1:], stakes[1:], ZERO_ADDRESS)  # no wrap past the tail
    assert page(view, task, r[3], 1) == ([r[3]], [stakes[3]], ZERO_ADDRESS)
    assert page(view, task, ZERO_ADDRESS, 0) == ([], [], r[0])
    assert view.queue(task, page_size=3) == list(zip(r, stakes, strict=True))


def test_paging_stops_on_a_node_whose_pages_never_end(chain: Chain, actors: Actors, monkeypatch):
    task = make_task(actors, slash_timeout_bp=0)
    for relayer in actors.relayers[:3]:
        relayer.join_relay(task, ETH)
    view = actors.keeper
    honest = view._view

    def looping(name, *args):
        """queuePage leads back to the first member; lineage pages hold more than asked."""
        if name == "queuePage":
            members, stakes, _ = honest(name, *args)
            return members, stakes, addr(actors.relayers[0])
        if name == "lineage":
            return honest(name, task, 0, 1) * (args[2] + 1)
        return honest(name, *args)

    monkeypatch.setattr(view, "_view", looping)

    with pytest.raises(ChainError, match=f"malformed page of task {task}'s queue"):
        view.queue(task, page_size=2)
    assert len(view.full_lineage(task, page_size=2)) == view.task_state(task).submission_count == 1


def test_queue_pages_follow_the_rotation(chain: Chain, actors: Actors):
    task = make_task(actors, slash_timeout_bp=0)
    r = [addr(x) for x in actors.relayers[:3]]
    for relayer in actors.relayers[:3]:
        relayer.join_relay(task, ETH)
    next_tx_at(chain, actors.keeper.task_state(task).deadline + 1)

    actors.keeper.skip_turn(task)

    assert page(actors.keeper, task, ZERO_ADDRESS, 2) == ([r[1], r[2]], [ETH, ETH], r[0])
    assert page(actors.keeper, task, r[0], 2) == ([r[0]], [ETH], ZERO_ADDRESS)


def test_queue_page_from_a_non_member_reverts(chain: Chain, actors: Actors, task: int):
    actors.relayers[0].join_relay(task, ETH)
    stranger = addr(actors.consumer)

    with reverts("DeRelay__NotQueued", task, stranger):
        page(actors.keeper, task, stranger, 10)


def test_lineage_pages_with_statuses(chain: Chain, actors: Actors, task: int):
    a, b = actors.relayers[:2]
    v = actors.validators[:2]
    a.join_relay(task, 2 * ETH)
    b.join_relay(task, 2 * ETH)
    seat(v, task, 2 * ETH)  # survives the missed commits of the void round
    times = []
    for holder, label, votes in [
        (a, "a-1", [Vote(x, 5300) for x in v]),
        (b, "b-1", [Vote(x, 1000) for x in v]),
        (a, "a-2", []),  # void: a keeps the turn
        (a, "a-3", [Vote(x, 5000) for x in v]),  # 300 below the champion: held
    ]:
        result = play_round(chain, task, holder, label, votes, keeper=actors.keeper)
        times.append(result.commit_end - 50)  # submitted one commit window before commit end
    submit(b, task, "b-2")
    times.append(chain.now())
    view = actors.keeper

    entries = view.lineage(task, 0, 10)

    assert [(e.index, e.cid, e.relayer, e.round, e.status, e.score) for e in entries] == [
        (0, cid_of("genesis"), addr(actors.publisher), 0, Status.GENESIS, 5000),
        (1, cid_of("a-1"), addr(a), 1, Status.ACCEPTED, 5300),
        (2, cid_of("b-1"), addr(b), 2, Status.REJECTED, 1000),
        (3, cid_of("a-2"), addr(a), 3, Status.VOID, 0),
        (4, cid_of("a-3"), addr(a), 4, Status.HELD, 5000),
        (5, cid_of("b-2"), addr(b), 5, Status.PENDING, 0),
    ]
    assert [e.submitted_at for e in entries[1:]] == times
    assert [e.index for e in view.lineage(task, 1, 2)] == [1, 2]
    assert [e.cid for e in view.lineage(task, 4, 2)] == [cid_of("a-3"), cid_of("b-2")]
    assert view.lineage(task, 5, 0) == []
    assert view.lineage(task, 6, 10) == []
    assert view.lineage(task, 99, 10) == []
    assert view.full_lineage(task, page_size=2) == entries
    assert view.latest_submission(task) == entries[-1]  # the one entry the contract keeps
    assert view.task_state(task).submission_count == 6


def test_seats_list_every_seat(chain: Chain, actors: Actors):
    task = make_task(actors, max_validators=4)
    alice = actors.relayers[0]
    v0, v1, v2 = actors.validators[:3]
    alice.join_relay(task, ETH)
    v0.register_validator(task, ETH)
    v1.register_validator(task, ETH)
    v2.register_validator(task, 2 * ETH)
    v0.leave_validator(task)
    submit(alice, task, "child-1")
    commit(v1, task, 1, 5200, champion=4900)
    next_tx_at(chain, actors.keeper.task_state(task).deadline + 1)
    reveal(v1, task, 1, 5200, champion=4900)
    next_tx_at(chain, actors.keeper.task_state(task).reveal_end + 1)
    actors.keeper.finalize(task)  # void; v2 missed its commit

    seats = actors.keeper.seats(task)

    assert [
        (s.index, s.validator, s.round, s.child_score, s.champion_score, s.ballot, s.misses)
        for s in seats
    ] == [
        (0, ZERO_ADDRESS, 0, 0, 0, Ballot.NONE, 0),
        (1, addr(v1), 1, 5200, 4900, Ballot.REVEALED, 0),
        (2, addr(v2), 0, 0, 0, Ballot.NONE, 1),
        (3, ZERO_ADDRESS, 0, 0, 0, Ballot.NONE, 0),
    ]
    assert actors.keeper.task_state(task).validator_count == 2


def test_account_of_a_stranger_and_of_a_member(chain: Chain, actors: Actors, task: int):
    a = actors.relayers[0]
    stranger = actors.keeper.account(task, addr(actors.consumer))
    assert (stranger.withdrawable, stranger.relayer_stake, stranger.queued) == (0, 0, False)
    assert (
        stranger.validator_stake,
        stranger.seat,
        stranger.shares,
        stranger.pending_royalties,
    ) == (0, -1, 0, 0)

    a.join_relay(task, 2 * ETH)
    a.register_validator(task, 3 * ETH)

    account = actors.keeper.account(task, addr(a))
    assert (account.relayer_stake, account.queued, account.validator_stake, account.seat) == (
        2 * ETH,
        True,
        3 * ETH,
        0,
    )


def test_task_state_in_every_phase(chain: Chain, actors: Actors, task: int):
    view = actors.keeper
    holder = actors.relayers[0]
    state = view.task_state(task)
    assert (state.phase, state.round, state.holder, state.deadline) == (
        Phase.IDLE,
        0,
        ZERO_ADDRESS,
        0,
    )

    holder.join_relay(task, ETH)
    started = chain.now()
    state = view.task_state(task)
    assert (state.phase, state.round, state.holder) == (Phase.TURN, 1, addr(holder))
    assert (state.phase_start, state.deadline, state.reveal_end) == (started, started + 100, 0)

    submit(holder, task, "child-1")
    submitted = chain.now()
    state = view.task_state(task)
    assert (state.round, state.holder) == (1, addr(holder))
    assert (state.phase, state.phase_start, state.deadline, state.reveal_end) == (
        Phase.REVIEW,
        submitted,
        submitted + 50,
        submitted + 100,
    )


def test_head_and_records(chain: Chain, actors: Actors, task: int):
    holder = actors.relayers[0]
    holder.join_relay(task, ETH)
    seat(actors.validators[:2], task)
    assert actors.keeper.head(task) == actors.keeper.champion(task) == (cid_of("genesis"), 5000)

    result = play_round(
        chain,
        task,
        holder,
        "child-1",
        [Vote(v, 5400) for v in actors.validators[:2]],
        keeper=actors.keeper,
    )
    crowned = actors.keeper.champion(task)
    follower = play_round(
        chain,
        task,
        holder,
        "child-2",
        [Vote(v, 5350, champion=5450) for v in actors.validators[:2]],  # -100: head only
        keeper=actors.keeper,
    )

    assert crowned == (result.child, 5400)
    assert actors.keeper.head(task) == (follower.child, 5350)
    # the champion's score follows what the validators measured it at in the last review
    assert actors.keeper.champion(task) == (result.child, 5450)
    state = actors.keeper.task_state(task)
    assert (state.head_cid, state.head_score) == (follower.child, 5350)
    assert (state.champion_cid, state.champion_score) == (result.child, 5450)
    relayer, round_, submitted_at, status, score, codec = actors.keeper.record(
        task, digest_of(result.child)
    )
    assert (relayer, round_, submitted_at, status, score, codec) == (
        addr(holder),
        1,
        result.commit_end - 50,
        Status.ACCEPTED,
        5400,
        0x55,
    )
    assert actors.keeper.record(task, digest_of(cid_of("never submitted"))) == (
        ZERO_ADDRESS,
        0,
        0,
        Status.NONE,
        0,
        0,
    )


def test_commitment_view_matches_the_python_helper(chain: Chain, actors: Actors):
    salt = b"\x5a" * 32
    validator = addr(actors.validators[0])

    onchain = actors.keeper._view("commitmentFor", 3, 7, 6543, 6000, 5900, salt, validator)

    assert onchain == commitment_for(3, 7, 6543, 6000, 5900, salt, validator)
    assert onchain != commitment_for(3, 7, 6544, 6000, 5900, salt, validator)
    assert onchain != commitment_for(3, 7, 6543, 6001, 5900, salt, validator)
    assert onchain != commitment_for(3, 7, 6543, 6000, 5901, salt, validator)
    assert onchain != commitment_for(3, 7, 6000, 6543, 5900, salt, validator)  # the order binds
    assert onchain != commitment_for(3, 7, 6543, 5900, 6000, salt, validator)


@pytest.mark.parametrize(
    ("name", "value"), [("BP", 10_000), ("MAX_VALIDATORS", 16), ("MAX_WINDOW", 30 * 86400)]
)
def test_constants(chain: Chain, actors: Actors, name: str, value: int):
    assert actors.keeper._view(name) == value
