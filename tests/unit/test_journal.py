"""The journal survives restarts and refuses to be silently wrong."""

from __future__ import annotations

import json
from dataclasses import asdict, replace

import pytest

from derelay.trainer.chain import SentTx
from derelay.trainer.errors import JournalError
from derelay.trainer.journal import (
    JOURNAL_VERSION,
    BallotEntry,
    BallotPhase,
    Journal,
    TurnEntry,
    TurnPhase,
)

DEPLOYMENT = "0x" + "d1" * 32  # a deployment id: the deployment block's hash
REDEPLOYMENT = "0x" + "e2" * 32


def _turn(round_: int, phase: TurnPhase = TurnPhase.TRAINED) -> TurnEntry:
    return TurnEntry(round_, "bparent", "bchild", "bcard", 100, "00" * 32, phase)


def _ballot(phase: BallotPhase = BallotPhase.SCORED) -> BallotEntry:
    return BallotEntry(4, "bchild", 8123, "bchampion", 7950, "bparent", 7900, "ab" * 32, phase)


def test_entries_survive_a_reopen(tmp_path):
    # prepare
    path = tmp_path / "journal.json"
    journal = Journal(path)
    journal.record_turn(1, _turn(3))
    journal.record_ballot(1, _ballot())

    # act
    reopened = Journal(path)

    # check: the paired scores and the salt come back as they were written
    assert reopened.turn(1, 3) == _turn(3)
    assert reopened.ballot(1, 4) == _ballot()
    assert (reopened.ballot(1, 4).child_score, reopened.ballot(1, 4).champion_score) == (8123, 7950)
    assert reopened.turn(1, 4) is None
    assert not list(tmp_path.glob("*.tmp"))


def test_advancing_a_phase_is_durable(tmp_path):
    journal = Journal(tmp_path / "j.json")
    journal.advance_turn(7, _turn(1), TurnPhase.SUBMITTED)
    journal.advance_ballot(7, _ballot(), BallotPhase.COMMITTED)
    reopened = Journal(tmp_path / "j.json")
    assert reopened.turn(7, 1).phase is TurnPhase.SUBMITTED
    assert reopened.ballot(7, 4) == _ballot(BallotPhase.COMMITTED)


def test_a_journal_of_plain_phase_strings_loads_and_is_written_back_byte_for_byte(tmp_path):
    # prepare: a journal whose phases are plain strings, as json writes them
    turn = {**asdict(_turn(3)), "phase": "submitting"}
    ballot = {**asdict(_ballot()), "phase": "committed"}
    document = {
        "version": JOURNAL_VERSION, "deployment": DEPLOYMENT, "turns": {"1:3": turn},
        "ballots": {"1:4": ballot}, "txs": {},
    }  # fmt: skip
    path = tmp_path / "j.json"
    path.write_text(json.dumps(document, sort_keys=True))
    written = path.read_bytes()

    # act: read it, and write the turn back unchanged
    journal = Journal(path)
    journal.record_turn(1, journal.turn(1, 3))

    # check
    assert journal.turn(1, 3).phase is TurnPhase.SUBMITTING
    assert journal.ballot(1, 4).phase is BallotPhase.COMMITTED
    assert path.read_bytes() == written


def test_old_rounds_are_pruned(tmp_path):
    journal = Journal(tmp_path / "j.json")
    journal.record_turn(1, _turn(1))
    journal.record_turn(1, _turn(500))
    assert Journal(tmp_path / "j.json").turn(1, 1) is None


def test_a_corrupt_journal_is_refused_with_advice(tmp_path):
    path = tmp_path / "j.json"
    path.write_text("{not json")
    with pytest.raises(JournalError, match="salts"):
        Journal(path)


V = JOURNAL_VERSION
# A version-1 ballot: one score, no champion. Its commitment cannot be revealed to the paired
# review, so such a journal is refused rather than read.
V1_BALLOT = {
    "round": 4,
    "child_cid": "bchild",
    "score": 8123,
    "salt": "ab" * 32,
    "phase": "committed",
}


@pytest.mark.parametrize(
    "document",
    [
        [1],
        {"version": 1, "turns": {}, "ballots": {"1:4": V1_BALLOT}},
        {"version": V, "txs": {}, "turns": {}, "ballots": {"1:4": V1_BALLOT}},
        {"version": V, "txs": {}, "turns": [], "ballots": {}},
        {"version": V, "txs": {}, "turns": {"1:x": {}}, "ballots": {}},
        {
            "version": V,
            "txs": {},
            "turns": {"1:3": {**asdict(_turn(3)), "round": "3"}},
            "ballots": {},
        },
        {
            "version": V,
            "txs": {},
            "turns": {"1:3": {**asdict(_turn(3)), "round": True}},
            "ballots": {},
        },
        {"version": V, "txs": {}, "turns": {"1:4": asdict(_turn(3))}, "ballots": {}},
        {
            "version": V,
            "txs": {},
            "turns": {"1:3": {**asdict(_turn(3)), "phase": "exploded"}},
            "ballots": {},
        },
        {
            "version": V,
            "txs": {},
            "turns": {},
            "ballots": {"1:4": {**asdict(_ballot()), "salt": "zz"}},
        },
        {
            "version": V,
            "txs": {},
            "turns": {},
            "ballots": {"1:4": {**asdict(_ballot()), "extra": 1}},
        },
        {
            "version": V,
            "txs": {},
            "turns": {},
            "ballots": {"1:4": {**asdict(_ballot()), "champion_score": "1"}},
        },
    ],
)
def test_a_journal_of_the_wrong_shape_is_refused_with_advice(tmp_path, document):
    # These used to escape as AttributeError, or to load and fail later in the worker.
    path = tmp_path / "j.json"
    path.write_text(json.dumps(document))
    with pytest.raises(JournalError, match="unreadable .* salts"):
        Journal(path)


def _tx(key: str = "submitRelay:3", nonce: int = 7) -> SentTx:
    return SentTx(
        key=key,
        action=key.split(":")[0],
        nonce=nonce,
        to="0x" + "5a" * 20,
        data="0xcafe",
        value=0,
        gas=200_000,
        max_fee=3_000_000_000,
        tip=1_000_000_000,
        hashes=("0x" + "ab" * 32, "0x" + "cd" * 32),
        sent_at=1234.5,
    )


def test_transactions_in_flight_survive_a_reopen_until_dropped(tmp_path):
    # prepare: two transactions of task 1 in flight, one of task 2
    path = tmp_path / "j.json"
    journal = Journal(path)
    journal.record_tx(1, _tx("commitScore:3", nonce=9), 3)
    journal.record_tx(1, _tx(), 3)
    journal.record_tx(2, _tx("finalize:1", nonce=1), 1)

    # act
    reopened = Journal(path)
    reopened.drop_tx(1, _tx(), 3)

    # check: nonce order, the task's own only, each field as written; the dropped one gone
    assert Journal(path).txs(1) == [_tx("commitScore:3", nonce=9)]
    assert reopened.txs(2) == [_tx("finalize:1", nonce=1)]


def test_a_poll_that_changed_nothing_writes_nothing(tmp_path):
    # prepare: a transaction in flight, journaled
    path = tmp_path / "j.json"
    journal = Journal(path)
    journal.record_tx(1, _tx(), 3)
    path.write_text("a marker no journal write would leave")

    # act: the same transaction again, as a poll that found it still pending returns it
    journal.record_tx(1, _tx(), 3)
    unchanged = path.read_text()
    bumped = replace(_tx(), max_fee=4_000_000_000, hashes=(*_tx().hashes, "0x" + "ef" * 32))
    journal.record_tx(1, bumped, 3)

    # check: no write for the unchanged one; the fee bump is durable
    assert unchanged == "a marker no journal write would leave"
    assert Journal(path).txs(1) == [bumped]


def test_a_version_2_journal_is_read_with_no_transaction_in_flight(tmp_path):
    path = tmp_path / "j.json"
    turns = {"1:3": asdict(_turn(3))}
    path.write_text(json.dumps({"version": 2, "turns": turns, "ballots": {}}))
    journal = Journal(path)
    assert journal.turn(1, 3) == _turn(3) and journal.txs(1) == []


@pytest.mark.parametrize(
    "entry",
    [
        {**_tx().to_json(), "nonce": "7"},
        {**_tx().to_json(), "hashes": ["0x12"]},
        {**_tx().to_json(), "data": "cafe"},
        {**_tx().to_json(), "key": "commitScore:3"},  # not the key it is filed under
        {k: v for k, v in _tx().to_json().items() if k != "tip"},
    ],
)
def test_a_malformed_transaction_in_flight_is_refused(tmp_path, entry):
    path = tmp_path / "j.json"
    document = {"version": V, "turns": {}, "ballots": {}, "txs": {"1:submitRelay:3": entry}}
    path.write_text(json.dumps(document))
    with pytest.raises(JournalError, match="unreadable .*transaction"):
        Journal(path)


def test_a_deeply_nested_journal_is_refused(tmp_path):
    path = tmp_path / "j.json"
    path.write_bytes(b"[" * 200_000)
    with pytest.raises(JournalError, match="nested deeper"):
        Journal(path)


def test_a_journal_is_bound_to_the_first_deployment_it_is_used_for(tmp_path):
    # prepare: a journal written before deployments were recorded (version 3)
    path = tmp_path / "j.json"
    document = {"version": 3, "turns": {"1:3": asdict(_turn(3))}, "ballots": {}, "txs": {}}
    path.write_text(json.dumps(document))

    # act
    moved = Journal(path).bind(DEPLOYMENT)

    # check: taken as this deployment's, and the binding is durable
    assert moved is None
    reopened = Journal(path)
    assert reopened.turn(1, 3) == _turn(3)
    assert reopened.bind(DEPLOYMENT) is None
    assert json.loads(path.read_text())["deployment"] == DEPLOYMENT


def test_a_journal_of_an_earlier_deployment_is_moved_aside_whole(tmp_path):
    # prepare: a journal of a deployment whose chain was wiped, holding a salt
    path = tmp_path / "j.json"
    journal = Journal(path)
    journal.bind(DEPLOYMENT)
    journal.record_turn(1, _turn(3))
    journal.record_ballot(1, _ballot(BallotPhase.COMMITTED))
    journal.record_tx(1, _tx(), 3)
    written = path.read_bytes()

    # act: the contract deployed again at the same address
    moved = Journal(path).bind(REDEPLOYMENT)

    # check: the old journal is kept byte for byte; the new one knows nothing of it
    assert moved is not None and moved.read_bytes() == written
    assert moved.name == "j.json.d1d1d1d1d1d1.stale"
    fresh = Journal(path)
    assert fresh.turn(1, 3) is None and fresh.ballot(1, 4) is None and fresh.txs(1) == []
    assert fresh.bind(REDEPLOYMENT) is None

    # act: bound back and forth again
    Journal(path).bind(DEPLOYMENT)
    again = Journal(path).bind(REDEPLOYMENT)

    # check: an earlier stale journal is never overwritten
    assert again is not None and again.name == "j.json.d1d1d1d1d1d1.stale2"
    assert moved.read_bytes() == written


@pytest.mark.parametrize("deployment", ["0x12", "d1" * 32, 7, "0x" + "D1" * 32])
def test_a_journal_with_a_malformed_deployment_is_refused(tmp_path, deployment):
    path = tmp_path / "j.json"
    document = {"version": V, "deployment": deployment, "turns": {}, "ballots": {}, "txs": {}}
    path.write_text(json.dumps(document))
    with pytest.raises(JournalError, match="unreadable .*not a block hash"):
        Journal(path)
