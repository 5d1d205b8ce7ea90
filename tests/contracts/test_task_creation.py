"""createTask: every parameter checked with a clear error; fund; unknown task ids."""

from __future__ import annotations

import pytest

from derelay.trainer.contract import Phase, Status
from derelay.trainer.errors import ChainError, ContractRevert
from tests.contracts.conftest import (
    ETH,
    Actors,
    cid_of,
    digest_of,
    events_in,
    make_params,
    reverts,
    simulate,
)

DAY = 24 * 3600
MAX_WINDOW = 30 * DAY


def test_create_task_records_params_pool_and_genesis(chain, actors: Actors):
    params = make_params(genesis_score=4321)

    task = actors.publisher.create_task(params, funding=3 * ETH)

    assert task == 1
    assert actors.publisher.task_count() == 1
    assert actors.publisher.publisher_of(task) == actors.publisher.client.address
    (event,) = [e["args"] for e in actors.publisher.events("TaskCreated")]
    assert event["taskId"] == 1
    assert event["publisher"] == actors.publisher.client.address
    assert event["specCid"] == params.spec_cid
    assert event["genesisCid"] == params.genesis_cid
    assert event["genesisScore"] == 4321
    assert event["pool"] == 3 * ETH
    state = actors.publisher.task_state(task)
    assert (state.phase, state.round, state.pool) == (Phase.IDLE, 0, 3 * ETH)
    assert (state.head_score, state.head_cid) == (4321, params.genesis_cid)
    assert (state.champion_score, state.champion_cid) == (4321, params.genesis_cid)
    assert actors.publisher.champion(task) == actors.publisher.head(task)
    assert (state.submission_count, state.accepted_count, state.queue_length) == (1, 0, 0)
    relayer, round_, _, status, score, codec = actors.publisher.record(
        task, digest_of(params.genesis_cid)
    )
    assert (relayer, round_, status, score, codec) == (
        actors.publisher.client.address,
        0,
        Status.GENESIS,
        4321,
        0x55,
    )
    assert actors.publisher.client.balance(actors.publisher.address) == 3 * ETH


def test_tasks_are_numbered_from_one_and_kept_apart(chain, actors: Actors):
    first = actors.publisher.create_task(make_params(), funding=ETH)

    second = actors.keeper.create_task(make_params(genesis_score=100), funding=0)

    assert (first, second) == (1, 2)
    assert actors.publisher.publisher_of(second) == actors.keeper.client.address
    assert actors.publisher.task_state(first).pool == ETH
    assert actors.publisher.task_state(second).pool == 0
    assert actors.publisher.champion(second) == (cid_of("genesis"), 100)


# One invalid value per validated parameter (and both ends where there are two).
INVALID = [
    ("min_stake", 0, "minStake"),
    ("validator_stake", 0, "validatorStake"),
    ("turn_duration", 0, "turnDuration"),
    ("turn_duration", MAX_WINDOW + 1, "turnDuration"),
    ("commit_window", 0, "commitWindow"),
    ("commit_window", MAX_WINDOW + 1, "commitWindow"),
    ("reveal_window", 0, "revealWindow"),
    ("reveal_window", MAX_WINDOW + 1, "revealWindow"),
    ("max_validators", 0, "maxValidators"),
    ("max_validators", 17, "maxValidators"),
    ("quorum", 0, "quorum"),
    ("quorum", 4, "quorum"),  # > maxValidators (3)
    ("max_queue", 0, "maxQueue"),
    ("slash_band", 10_001, "slashBand"),
    ("advance_band", 1001, "advanceBand"),  # > slashBand (1000): would advance what it holds
    ("max_misses", 0, "maxMisses"),
    ("min_gain", 0, "minGain"),  # a child that only matches the champion is never paid
    ("min_gain", 10_001, "minGain"),
    ("slash_timeout_bp", 10_001, "slashTimeoutBp"),
    ("slash_reject_bp", 10_001, "slashRejectBp"),
    ("slash_no_reveal_bp", 10_001, "slashNoRevealBp"),
    ("slash_miss_bp", 10_001, "slashMissBp"),
    ("band_bp", 10_001, "bandBp"),
    ("keeper_bounty_bp", 10_001, "keeperBountyBp"),
    ("royalty_bp", 10_001, "royaltyBp"),
    ("genesis_score", 10_001, "genesisScore"),
]


@pytest.mark.parametrize(
    ("field", "value", "name"), INVALID, ids=[f"{f}={v}" for f, v, _ in INVALID]
)
def test_create_task_rejects_invalid_parameter(chain, actors: Actors, field, value, name):
    params = make_params(**{field: value})

    with pytest.raises(ChainError):
        actors.publisher.create_task(params, funding=ETH)

    assert actors.publisher.task_count() == 0
    with reverts("DeRelay__InvalidParameter", name, value):
        simulate(actors.publisher, "createTask", params.as_tuple())


def test_create_task_accepts_every_bound(chain, actors: Actors):
    params = make_params(
        turn_duration=MAX_WINDOW,
        commit_window=MAX_WINDOW,
        reveal_window=MAX_WINDOW,
        max_validators=16,
        quorum=16,
        max_queue=1,
        slash_band=10_000,
        advance_band=10_000,
        max_misses=255,
        min_gain=10_000,
        slash_timeout_bp=10_000,
        slash_reject_bp=10_000,
        slash_no_reveal_bp=10_000,
        slash_miss_bp=10_000,
        band_bp=10_000,
        keeper_bounty_bp=10_000,
        royalty_bp=10_000,
        genesis_score=10_000,
        min_stake=1,
        validator_stake=1,
        base_reward=0,
        reward_per_point=0,
        validator_fee=0,
        usage_fee=0,
    )

    task = actors.publisher.create_task(params)

    assert actors.publisher.task_params(task) == params


def test_create_task_accepts_every_lower_bound(chain, actors: Actors):
    # zero basis points everywhere, except minGain and maxMisses, which start at 1
    params = make_params(
        slash_band=0,
        advance_band=0,
        max_misses=1,
        min_gain=1,
        slash_timeout_bp=0,
        slash_reject_bp=0,
        slash_no_reveal_bp=0,
        slash_miss_bp=0,
        band_bp=0,
        keeper_bounty_bp=0,
        royalty_bp=0,
        genesis_score=0,
        quorum=1,
        max_validators=1,
    )

    task = actors.publisher.create_task(params)

    assert actors.publisher.task_params(task) == params


GOOD = cid_of("content")
BAD_CIDS = {
    "empty": b"",
    "too short": GOOD[:-1],
    "too long": GOOD + b"\x00",
    "CIDv0 version byte": b"\x00" + GOOD[1:],
    "dag-cbor codec": GOOD[:1] + b"\x71" + GOOD[2:],
    "sha2-512 hash function": GOOD[:2] + b"\x13" + GOOD[3:],
    "wrong digest length": GOOD[:3] + b"\x1f" + GOOD[4:],
}


@pytest.mark.parametrize("which", ["spec_cid", "genesis_cid"])
@pytest.mark.parametrize("bad", list(BAD_CIDS.values()), ids=list(BAD_CIDS))
def test_create_task_rejects_invalid_cid(chain, actors: Actors, which, bad):
    params = make_params(**{which: bad})

    with pytest.raises(ChainError):
        actors.publisher.create_task(params)

    assert actors.publisher.task_count() == 0
    with reverts("DeRelay__InvalidCid", bad):
        simulate(actors.publisher, "createTask", params.as_tuple())


def test_transaction_reverts_with_dynamic_arguments_are_decoded(chain, actors: Actors):
    with pytest.raises(ContractRevert) as exc:
        actors.publisher.create_task(make_params(min_stake=0))

    assert exc.value.name == "DeRelay__InvalidParameter"


def test_dag_pb_cids_are_accepted_and_kept(chain, actors: Actors):
    params = make_params(spec_cid=cid_of("spec", 0x70), genesis_cid=cid_of("genesis", 0x70))

    task = actors.publisher.create_task(params)

    assert actors.publisher.task_params(task).spec_cid == cid_of("spec", 0x70)
    assert actors.publisher.head(task) == (cid_of("genesis", 0x70), params.genesis_score)


def test_fund_adds_to_the_pool(chain, actors: Actors, task: int):
    receipt = actors.consumer.fund(task, 2 * ETH)

    assert actors.publisher.task_state(task).pool == 12 * ETH
    (event,) = events_in(actors.publisher, receipt, "PoolFunded")
    assert event["funder"] == actors.consumer.client.address
    assert (event["amount"], event["pool"]) == (2 * ETH, 12 * ETH)


def test_fund_rejects_zero(chain, actors: Actors, task: int):
    with reverts("DeRelay__ZeroAmount"):
        actors.consumer.fund(task, 0)


@pytest.mark.parametrize("task_id", [0, 2])
def test_fund_rejects_unknown_task(chain, actors: Actors, task: int, task_id: int):
    with reverts("DeRelay__UnknownTask", task_id):
        actors.consumer.fund(task_id, ETH)


def _call(view, name):
    """Every entry point that takes a task id, called for task 7 (unknown)."""
    t = 7
    zero = "0x" + "00" * 20
    calls = {
        "fund": lambda: view.fund(t, 1),
        "payForModel": lambda: view.pay_for_model(t, ETH),
        "joinRelay": lambda: view.join_relay(t, ETH),
        "addStake": lambda: view.add_stake(t, 1),
        "leaveRelay": lambda: view.leave_relay(t),
        "skipTurn": lambda: view.skip_turn(t),
        "submitRelay": lambda: view.submit_relay(t, 1, b"\0" * 32, GOOD, GOOD, b"\0" * 32, 1),
        "registerValidator": lambda: view.register_validator(t, ETH),
        "leaveValidator": lambda: view.leave_validator(t),
        "commitScore": lambda: view.commit_score(t, 1, b"\0" * 32),
        "revealScore": lambda: view.reveal_score(t, 1, 1, 1, 1, b"\0" * 32),
        "finalize": lambda: view.finalize(t),
        "claimRoyalties": lambda: view.claim_royalties(t),
        "taskParams": lambda: view.task_params(t),
        "publisherOf": lambda: view.publisher_of(t),
        "taskState": lambda: view.task_state(t),
        "head": lambda: view.head(t),
        "champion": lambda: view.champion(t),
        "queuePage": lambda: view._view("queuePage", t, zero, 10),
        "latestSubmission": lambda: view._view("latestSubmission", t),
        "recordOf": lambda: view.record(t, b"\0" * 32),
        "seatsOf": lambda: view.seats(t),
        "accountOf": lambda: view.account(t, zero),
    }
    return calls[name]


ENTRY_POINTS = [
    "fund",
    "payForModel",
    "joinRelay",
    "addStake",
    "leaveRelay",
    "skipTurn",
    "submitRelay",
    "registerValidator",
    "leaveValidator",
    "commitScore",
    "revealScore",
    "finalize",
    "claimRoyalties",
    "taskParams",
    "publisherOf",
    "taskState",
    "head",
    "champion",
    "queuePage",
    "latestSubmission",
    "recordOf",
    "seatsOf",
    "accountOf",
]


@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_every_entry_point_rejects_an_unknown_task(chain, actors: Actors, task: int, name: str):
    call = _call(actors.keeper, name)

    with reverts("DeRelay__UnknownTask", 7):
        call()
