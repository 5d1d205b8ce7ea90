"""The event fold on hand-made events: which money each event moves, and why, in chain order."""

from __future__ import annotations

from typing import Any

from derelay.trainer.contract import SlashReason, Status
from derelay.trainer.ledger import MoneyKind, Role, fold_events

ALICE, BOB, KEEPER = "0xA11ce", "0xB0b", "0xKee9"


def event(name: str, block: int, tx: int, **args: Any) -> dict[str, Any]:
    """An event as web3 decodes it, in transaction `tx` of block `block`."""
    return {
        "event": name,
        "args": {"taskId": 1, **args},
        "blockNumber": block,
        "blockHash": bytes([block]) * 32,
        "transactionHash": bytes([tx]) * 32,
        "logIndex": 0,
    }


def test_a_skipped_turn_slashes_the_holder_pays_the_keeper_and_starts_the_next_round():
    # prepare
    events = [
        event("TaskCreated", 1, 1, publisher=ALICE, pool=1000),
        event("TurnStarted", 2, 2, round=1, holder=BOB, deadline=99),
        event("RelayerSlashed", 3, 3, round=1, relayer=BOB, amount=100, reason=SlashReason.TIMEOUT),
        event("KeeperPaid", 3, 3, round=1, keeper=KEEPER, bounty=10),
        event("RelayerLeft", 3, 3, relayer=BOB, refund=900, forced=True),
        event("TurnStarted", 3, 3, round=2, holder=ALICE, deadline=199),
    ]

    # act
    ledger = fold_events(events)

    # check
    moves = [(m.round, m.account, m.kind, m.amount, m.pool_delta) for m in ledger.movements]
    assert moves == [
        (None, ALICE, MoneyKind.CREATED, 1000, 1000),
        (1, BOB, MoneyKind.TIMEOUT, 100, 100),
        (1, KEEPER, MoneyKind.BOUNTY, 10, -10),
    ]
    assert [m.reason for m in ledger.movements] == [
        "task created",
        "round 1 timed out",
        "round 1 keeper bounty",
    ]
    assert [m.headline for m in ledger.movements] == [True, True, False]
    assert ledger.pool() == 1090
    assert ledger.rounds[1].timed_out and ledger.rounds[1].relayer_slashed == 100
    assert ledger.rounds[2].holder == ALICE and not ledger.rounds[2].movements
    (left,) = ledger.departures
    assert (left.account, left.role, left.refund, left.forced) == (BOB, Role.RELAYER, 900, True)


def test_a_finalized_review_books_its_verdict_reward_fees_and_misses():
    # prepare
    verdict = dict(childScore=6000, championScore=5000, delta=1000, progress=1000, reveals=2)
    events = [
        event("ScoreRevealed", 5, 5, round=3, validator=ALICE, childScore=6000,
              championScore=5000, parentScore=5500),
        event("RoundFinalized", 6, 6, round=3, relayer=BOB, verdict=Status.ACCEPTED, reward=70,
              **verdict),
        event("ChampionCrowned", 6, 6, round=3, relayer=BOB),
        event("ValidatorPaid", 6, 6, round=3, validator=ALICE, fee=5),
        event("ValidatorMissed", 6, 6, round=3, validator=KEEPER, amount=20, misses=2),
    ]  # fmt: skip

    # act
    facts = fold_events(events).rounds[3]

    # check
    assert facts.verdict is not None and facts.verdict.status is Status.ACCEPTED
    assert facts.crowned and facts.holder == BOB
    assert [(m.kind, m.pool_delta, m.reason) for m in facts.movements] == [
        (MoneyKind.REWARD, -70, "round 3 accepted"),
        (MoneyKind.FEE, -5, "round 3 validator fee"),
        (MoneyKind.MISSED, 20, "round 3 validator missed its commit"),
    ]
    assert [(r.delta, r.progress) for r in facts.reveals] == [(1000, 500)]
    assert [(m.validator, m.misses) for m in facts.misses] == [(KEEPER, 2)]
