"""The gas benchmark's scripted reviews take the path they are named after, and say so when not."""

from __future__ import annotations

import hashlib

import pytest
from eth_utils import keccak

from bench.gas import PATHS, ballots, expect_path
from derelay.lab.metrics import paid_in_band, review
from derelay.trainer.contract import ETHER, TaskParams, commitment_for, finalize_gas

PARAMS = TaskParams(
    spec_cid=bytes([1, 0x55, 0x12, 0x20]) + bytes(range(32)),
    genesis_cid=bytes([1, 0x55, 0x12, 0x20]) + bytes(range(1, 33)),
    genesis_score=5000,
    min_stake=ETHER,
    validator_stake=ETHER,
    max_validators=3,
    slash_band=1000,
    advance_band=100,
    min_gain=10,
)
DECIDED = {
    "crowned": ("accepted", True),
    "accepted": ("accepted", False),
    "held": ("held", False),
    "rejected": ("rejected", False),
}


@pytest.mark.parametrize("voters", [1, 2, 3, 4, 16])
@pytest.mark.parametrize("path", sorted(DECIDED))
def test_scripted_ballots_decide_as_their_path_says(path, voters):
    # act
    pairs = ballots(path, 6000, PARAMS, voters, gain=25)
    outcome = review(pairs, 1, PARAMS.slash_band, PARAMS.advance_band, PARAMS.min_gain)

    # check: the contract's arithmetic (its Python mirror) takes the named path, measured
    # against the champion's score on chain, and every ballot is in band (fees are paid)
    assert (outcome.verdict, outcome.crowned) == DECIDED[path]
    assert outcome.champion_score == 6000
    assert outcome.delta == {"crowned": 25, "accepted": 0, "held": -550, "rejected": -1100}[path]
    assert all(paid_in_band(pair, outcome, PARAMS.band_bp) for pair in pairs)


def test_impossible_paths_are_refused():
    with pytest.raises(ValueError, match="outside 0..10000"):
        ballots("crowned", 9990, PARAMS, 3, gain=25)
    with pytest.raises(ValueError, match="no held path"):
        ballots("held", 6000, TaskParams(b"", b"", 0, slash_band=100, advance_band=100), 3)
    with pytest.raises(ValueError, match="gain of minGain or more"):
        ballots("crowned", 6000, PARAMS, 3, gain=PARAMS.min_gain - 1)
    assert set(PATHS) == {*DECIDED, "void"}


def test_a_finalize_is_checked_against_the_path_it_was_scripted_for(chain, clients, relay):
    # prepare: one crowned round, scripted by `ballots`
    holder, keeper, *vals = (relay.as_account(c) for c in clients[1:5])
    task = relay.create_task(PARAMS, funding=10 * ETHER)
    for v in vals:
        v.register_validator(task, ETHER)
    holder.join_relay(task, ETHER)
    state = relay.task_state(task)
    child = bytes([1, 0x55, 0x12, 0x20]) + hashlib.sha256(b"child").digest()
    holder.submit_relay(task, state.round, state.head_cid[4:], child, child, bytes(32), 1)
    pairs = ballots("crowned", state.champion_score, PARAMS, len(vals), gain=25)
    for v, (child_score, champion_score, parent_score) in zip(vals, pairs, strict=True):
        salt = keccak(text=v.client.address)
        commitment = commitment_for(
            task, state.round, child_score, champion_score, parent_score, salt, v.client.address
        )
        v.commit_score(task, state.round, commitment)
    chain.advance(PARAMS.commit_window + 1)
    for v, (child_score, champion_score, parent_score) in zip(vals, pairs, strict=True):
        v.reveal_score(
            task,
            state.round,
            child_score,
            champion_score,
            parent_score,
            keccak(text=v.client.address),
        )

    # act
    receipt = keeper.finalize(task, finalize_gas(PARAMS.max_validators))

    # check
    expect_path(relay, receipt, "crowned")
    for other in ("accepted", "held", "rejected", "void"):
        with pytest.raises(RuntimeError, match=f"scripted {other} and finalized ACCEPTED"):
            expect_path(relay, receipt, other)
    assert relay.task_state(task).champion_score == 5025
