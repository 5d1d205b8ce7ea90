"""A fee spike on anvil (`anvil_setNextBlockBaseFeePerGas`) just as a relayer submits: within its
fee ceiling (--max-fee) the submission goes out with higher fees at once; past the ceiling the
worker says so in one warning line, keeps ticking, and submits once the base fee falls."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import replace

import pytest

from derelay.deploy.tasks import publish_task
from derelay.trainer.chain import GWEI, ChainClient, connect
from derelay.trainer.contract import DeRelayContract, Phase, decoder_for
from derelay.trainer.journal import Journal
from derelay.trainer.keys import dev_account
from derelay.trainer.services import RunningService, start_anvil
from derelay.trainer.shards import ShardPlan, relayer_shards
from derelay.trainer.spec import digits_mlp_spec
from derelay.trainer.store import LocalStore
from derelay.trainer.worker import Roles, Worker, WorkerConfig

pytestmark = pytest.mark.integration
ETH = 10**18


@pytest.fixture
def relayer(tmp_path) -> Iterator[Worker]:
    """A relayer whose turn has begun, on an anvil that mines a block a second."""
    service: RunningService = start_anvil(None, block_time=1)
    try:
        w3 = connect(service.url)
        relay = DeRelayContract.deploy(ChainClient(w3, dev_account(0), decoder_for()))
        store = LocalStore(tmp_path / "store")
        spec = digits_mlp_spec()
        overrides = dict(min_stake=ETH, validator_stake=ETH, quorum=1, max_validators=1)
        task = publish_task(relay, store, spec, 5 * ETH, overrides).task_id
        client = ChainClient(w3, dev_account(1), decoder_for())
        worker = Worker(
            DeRelayContract(client, relay.address),
            store,
            spec,
            WorkerConfig(task, Roles(relayer=True, validator=False, keeper=False)),
            Journal(tmp_path / "journal.json"),
            relayer_shards(spec, ShardPlan(relayers=1, validators=1, alpha=None))[0],
        )
        worker.tick()  # joins: the turn begins
        assert worker.relay.task_state(task).holder == client.address
        yield worker
    finally:
        service.stop()


def _spike_then_tick(worker: Worker, base_fee: int) -> tuple[list[float], dict]:
    """Raise the next block's base fee to `base_fee`, then tick until the submission is on
    chain; return the durations of those ticks and the submission transaction."""
    w3 = worker.relay.client.w3
    w3.provider.make_request("anvil_setNextBlockBaseFeePerGas", [hex(base_fee)])
    durations = []
    deadline = time.monotonic() + 60
    while worker.relay.task_state(worker.task_id).phase != Phase.REVIEW:
        assert time.monotonic() < deadline, "no submission 60 s after the spike"
        started = time.monotonic()
        worker.tick()
        durations.append(time.monotonic() - started)
        time.sleep(0.2)
    worker.tick()  # the journal catches up with a submission mined between two ticks
    (event,) = worker.relay.events("RelaySubmitted", taskId=worker.task_id)
    return durations, dict(w3.eth.get_transaction(event["transactionHash"]))


def test_a_fee_spike_within_the_ceiling_does_not_stall_the_submission(relayer, caplog):
    # prepare: a ceiling of 500 gwei (the default); the base fee jumps from 1 to 300 gwei

    # act
    with caplog.at_level(logging.WARNING, logger="derelay.chain"):
        durations, tx = _spike_then_tick(relayer, 300 * GWEI)

    # check: submitted in the first tick (training included), fees raised to meet the spike
    assert len(durations) == 1
    assert 300 * GWEI <= tx["maxFeePerGas"] <= 500 * GWEI
    assert caplog.records == []
    assert relayer.journal.turn(relayer.task_id, 1).phase == "submitted"


def test_a_fee_spike_past_the_ceiling_is_one_warning_line_then_a_submission(relayer, caplog):
    # prepare: a ceiling of 50 gwei; the base fee jumps to 150 gwei and falls 12.5% a block
    client = relayer.relay.client
    client.options = replace(client.options, max_fee_wei=50 * GWEI)

    # act
    with caplog.at_level(logging.WARNING, logger="derelay.chain"):
        durations, tx = _spike_then_tick(relayer, 150 * GWEI)

    # check: ticks kept coming back (no blind wait), one line said why and what to do, and the
    # submission went out within the ceiling once the base fee fell under it
    assert len(durations) > 3 and max(durations[1:]) < 5
    (line,) = [r.getMessage() for r in caplog.records]
    assert "submitRelay waits" in line and "fee ceiling of 50 gwei" in line
    assert "raise the ceiling" in line and "\n" not in line
    assert tx["maxFeePerGas"] <= 50 * GWEI
    assert relayer.journal.turn(relayer.task_id, 1).phase == "submitted"
