"""A small load run: worker processes sharing one ganache finish their rounds, nothing is stuck,
and the report agrees with the chain."""

from __future__ import annotations

import json

import pytest

from bench.load import LoadConfig, render, run_load
from derelay.trainer.chain import ChainClient, connect
from derelay.trainer.contract import DeRelayContract, decoder_for
from derelay.trainer.keys import dev_account

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("store", ["local", "ipfs"])
def test_small_load_run_finishes_and_matches_the_chain(store, chain_node, tmp_path, request):
    # prepare: 8 workers (chain_node funds dev accounts 0..9) on 2 tasks in 2 processes, with
    # windows short enough for a quick test and long enough for 8 workers on 2 cores; the weights
    # go through a shared directory or through the dev IPFS node
    ipfs = request.getfixturevalue("ipfs_node").url if store == "ipfs" else None
    config = LoadConfig(
        store=store,
        workers=8,
        tasks=2,
        rounds=3,
        processes=2,
        validators=2,
        poll=1.0,
        commit_window=8,
        reveal_window=8,
        max_seconds=150,
    )

    # act
    report = run_load(config, chain_node.url, tmp_path, echo=lambda line: None, ipfs=ipfs)

    # check: every task reached its rounds, none stuck, nothing failed beyond handled reverts
    assert report["ok"], render(report)
    assert report["stuck_tasks"] == 0
    assert report["workers"] == 8
    assert [t["finalized"] >= 3 for t in report["tasks"]] == [True, True]
    assert report["failures"]["crashes"] == {}
    assert report["failures"]["tick_failures"] == {}
    assert report["transactions"]["failed"] == {}
    assert report["turns"]["per_minute"] > 0
    # the report agrees with the chain
    w3 = connect(chain_node.url)
    reader = DeRelayContract(ChainClient(w3, dev_account(9), decoder_for()), report["contract"])
    for task in report["tasks"]:
        state = reader.task_state(task["task_id"])
        finalized = reader.events("RoundFinalized", taskId=task["task_id"])
        assert task["round"] == state.round
        assert task["finalized"] == len(finalized)
        assert task["accepted"] == state.accepted_count
        assert task["finalized"] + task["skipped"] == state.round - 1
    transactions = report["transactions"]
    assert transactions["sent"] == transactions["nonces"]  # every counted send was mined
    assert transactions["sent"] == sum(transactions["mined"].values())
    json.dumps(report)  # the report is plain JSON
