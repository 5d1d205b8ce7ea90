"""The event fold (derelay.trainer.ledger) against the contract's own books, on real events: every
verdict, slash, miss, skip, payment and settlement of a short relay."""

from __future__ import annotations

from collections import Counter

import pytest

from derelay.trainer.contract import DeRelayContract, Status, block_pages
from derelay.trainer.errors import ChainError
from derelay.trainer.ledger import MoneyKind, Role, TaskLogs, fold_events, task_ledger
from derelay.trainer.payouts import task_payouts
from tests.conftest import Chain
from tests.contracts.conftest import (
    ETH,
    Actors,
    Vote,
    make_task,
    next_tx_at,
    play_round,
    seat,
)


def play_relay(chain: Chain, actors: Actors) -> int:
    """A task that sees every verdict and every way to move money; return its id.

    Round 1 accepted and crowned (v2 misses its commit and loses its seat), round 2 rejected (v3
    takes the seat and passes the child the others reject: the holder and v3 lose their places,
    v3 outvoted), round 3
    skipped (the holder times out and leaves), round 4 held, round 5 void (v1 does not reveal);
    then a model payment, a royalty claim and a funding.
    """
    task = make_task(actors)
    r, v, keeper = actors.relayers, actors.validators, actors.keeper
    seat(v[:3], task)
    for relayer in r[:3]:
        relayer.join_relay(task, ETH)
    play_round(chain, task, r[0], "c1", [Vote(v[0], 6000), Vote(v[1], 6000)], keeper=keeper)
    seat(v[3:4], task)
    votes = [Vote(v[0], 3000), Vote(v[1], 3000), Vote(v[3], 6000)]
    play_round(chain, task, r[1], "c2", votes, keeper=keeper)
    next_tx_at(chain, keeper.task_state(task).deadline + 1)
    keeper.skip_turn(task)
    play_round(chain, task, r[0], "c4", [Vote(v[0], 5800), Vote(v[1], 5800)], keeper=keeper)
    votes = [Vote(v[0], 6100), Vote(v[1], 6100, reveal=False)]
    play_round(chain, task, r[0], "c5", votes, keeper=keeper)
    actors.consumer.pay_for_model(task, ETH)
    r[0].claim_royalties(task)
    actors.publisher.fund(task, ETH)
    return task


@pytest.fixture
def played(chain: Chain, actors: Actors) -> int:
    return play_relay(chain, actors)


def test_the_fold_sees_every_verdict_and_move(relay: DeRelayContract, actors: Actors, played: int):
    # act
    ledger = task_ledger(relay, played)

    # check
    verdicts = {n: f.verdict.status for n, f in ledger.rounds.items() if f.verdict is not None}
    assert verdicts == {
        1: Status.ACCEPTED,
        2: Status.REJECTED,
        4: Status.HELD,
        5: Status.VOID,
    }
    assert [n for n, f in ledger.rounds.items() if f.crowned] == [1]
    assert ledger.rounds[3].timed_out and ledger.rounds[3].verdict is None
    assert ledger.rounds[2].relayer_slashed == ETH // 5
    kinds = Counter(m.kind for m in ledger.movements)
    assert set(kinds) == set(MoneyKind)
    forced = {(d.role, d.account) for d in ledger.departures if d.forced}
    addr = Actors.address
    assert forced == {
        (Role.RELAYER, addr(actors.relayers[1])),
        (Role.RELAYER, addr(actors.relayers[2])),
        (Role.VALIDATOR, addr(actors.validators[1])),
        (Role.VALIDATOR, addr(actors.validators[2])),
        (Role.VALIDATOR, addr(actors.validators[3])),
    }


def test_the_folded_pool_and_withdrawable_match_the_contract_to_the_wei(
    relay: DeRelayContract, played: int
):
    # act
    ledger = task_ledger(relay, played)
    payouts = task_payouts(relay, played)

    # check: the pool from the events alone, and every withdrawable balance as the events built it
    assert ledger.pool() == relay.task_state(played).pool
    refunds = Counter[str]()
    for departure in ledger.departures:
        refunds[departure.account] += departure.refund
    for p in payouts:
        settled = p.earned - p.royalties_pending
        assert p.withdrawable == settled + refunds[p.address], p.address
    lost = sum(p.stake_lost for p in payouts)
    assert lost == sum(m.amount for m in ledger.movements if m.kind.stake_lost) > 0


def test_a_receipt_folds_like_the_logs(relay: DeRelayContract, actors: Actors, played: int):
    # prepare
    logs = TaskLogs(relay)
    state = relay.task_state(played)

    # act: a payment's receipt, and the same block's logs fetched
    receipt = actors.consumer.pay_for_model(played, ETH)
    block = int(receipt["blockNumber"])
    from_receipt = fold_events(logs.of_receipt(receipt))
    fetched = fold_events(logs.fetch(played, block, block))

    # check
    assert from_receipt == fetched
    (paid,) = from_receipt.movements
    assert paid.kind is MoneyKind.MODEL_PAID and paid.amount == ETH
    assert relay.task_state(played).pool == state.pool + paid.pool_delta


@pytest.mark.parametrize("page", [7, 10_000])
def test_fetching_pages_the_block_range(relay: DeRelayContract, played: int, page: int):
    # prepare
    logs = TaskLogs(relay)
    latest = relay.client.w3.eth.block_number
    calls = Counter[str]()
    get_logs = relay.client.w3.eth.get_logs

    def counted(query):  # type: ignore[no-untyped-def]
        calls["get_logs"] += 1
        assert query["toBlock"] - query["fromBlock"] < page
        return get_logs(query)

    relay.client.w3.eth.get_logs = counted  # type: ignore[method-assign]

    # act
    try:
        events = logs.fetch(played, 0, latest, page=page)
    finally:
        relay.client.w3.eth.get_logs = get_logs  # type: ignore[method-assign]

    # check: the same events in the same order whatever the page, one call per page
    assert calls["get_logs"] == -(-(latest + 1) // page)
    assert fold_events(events) == task_ledger(relay, played)


def test_block_pages_cover_the_range_once():
    # check: consecutive, inclusive, at most `page` blocks each, nothing past the end
    assert list(block_pages(5, 5, 3)) == [(5, 5)]
    assert list(block_pages(0, 9, 4)) == [(0, 3), (4, 7), (8, 9)]
    assert list(block_pages(10, 9, 4)) == []


def test_an_absurd_height_is_refused_before_any_call():
    # act, check: a node claiming block 2**70 is not scanned page by page (nor listed in memory)
    with pytest.raises(
        ChainError, match=r"blocks past 0, too many to scan for events: check the RPC endpoint"
    ):
        next(block_pages(0, 2**70))


def test_event_scans_start_at_the_deployment(relay: DeRelayContract, played: int):
    # prepare: the same contract as a reader who knows its deployment block (a deployment record)
    deployed = int(relay.deploy_receipt["blockNumber"])
    reader = DeRelayContract(relay.client, relay.address, relay.abi, deployed_block=deployed)
    starts: list[int] = []
    get_logs = relay.client.w3.eth.get_logs

    def recorded(query):  # type: ignore[no-untyped-def]
        starts.append(int(query["fromBlock"]))
        return get_logs(query)

    relay.client.w3.eth.get_logs = recorded  # type: ignore[method-assign]

    # act
    try:
        created = reader.events("TaskCreated", taskId=played)
        ledger = task_ledger(reader, played)
    finally:
        relay.client.w3.eth.get_logs = get_logs  # type: ignore[method-assign]

    # check: nothing before the deployment is asked for, and nothing is missed
    assert deployed > 0 and min(starts) == deployed
    assert len(created) == 1
    assert ledger == task_ledger(relay, played, from_block=0)
