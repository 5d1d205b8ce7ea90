"""Fixtures for the contract tests: named actors and a created task."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pytest

from trainer.chain import ChainClient
from trainer.contract import DeRelayContract, TaskParams

ETH = 10**18


def cid_of(label: str, codec: int = 0x55) -> bytes:
    """A binary CIDv1 for test content named `label`."""
    return bytes([0x01, codec, 0x12, 0x20]) + hashlib.sha256(label.encode()).digest()


def digest_of(cid: bytes) -> bytes:
    return cid[4:]


def make_params(**overrides: object) -> TaskParams:
    """Small, round test parameters; `overrides` replace any of them."""
    values: dict[str, object] = dict(
        spec_cid=cid_of("spec"),
        genesis_cid=cid_of("genesis"),
        genesis_score=5000,
        min_stake=ETH,
        validator_stake=ETH,
        turn_duration=100,
        commit_window=50,
        reveal_window=50,
        quorum=2,
        max_validators=3,
        max_queue=8,
        tolerance=100,
        ema_bp=5000,
        min_gain=10,
        base_reward=ETH // 10,
        reward_per_point=ETH // 1000,
        slash_timeout_bp=1000,
        slash_reject_bp=2000,
        slash_no_reveal_bp=1000,
        band_bp=300,
        validator_fee=ETH // 100,
        keeper_bounty_bp=1000,
        royalty_bp=5000,
        usage_fee=ETH // 100,
    )
    values.update(overrides)
    return TaskParams(**values)  # type: ignore[arg-type]


@dataclass
class Actors:
    """The contract as each role sees it."""

    publisher: DeRelayContract
    relayers: list[DeRelayContract]
    validators: list[DeRelayContract]
    keeper: DeRelayContract
    consumer: DeRelayContract

    @staticmethod
    def address(view: DeRelayContract) -> str:
        return view.client.address


@pytest.fixture
def actors(relay: DeRelayContract, clients: list[ChainClient]) -> Actors:
    views = [relay.as_account(c) for c in clients]
    return Actors(
        publisher=views[0],
        relayers=views[1:5],
        validators=views[5:10],
        keeper=views[10],
        consumer=views[11],
    )


@pytest.fixture
def task(actors: Actors) -> int:
    """A task with a 10 ETH pool and the small test parameters."""
    return actors.publisher.create_task(make_params(), funding=10 * ETH)
