"""One full round over JSON-RPC, on ganache and on anvil: deploy, join, submit, commit, reveal,
finalize, withdraw, each a signed transaction from its own account."""

from __future__ import annotations

import hashlib
import os

import pytest

from derelay.deploy.deployer import deploy_contract, load_deployment
from derelay.trainer.chain import ChainClient, connect
from derelay.trainer.contract import (
    DeRelayContract,
    Phase,
    Status,
    TaskParams,
    commitment_for,
    decoder_for,
)
from derelay.trainer.keys import dev_account

pytestmark = pytest.mark.integration
ETH = 10**18


def _cid(label: str) -> bytes:
    return bytes([0x01, 0x55, 0x12, 0x20]) + hashlib.sha256(label.encode()).digest()


def _advance(w3, seconds: int) -> None:
    w3.provider.make_request("evm_increaseTime", [seconds])
    w3.provider.make_request("evm_mine", [])


def test_one_round_over_json_rpc(dev_chain, tmp_path):
    # prepare: separate signing accounts for publisher, relayer, two validators and a keeper
    w3 = connect(dev_chain.url)
    decoder = decoder_for()
    publisher, relayer, v1, v2, keeper = (
        ChainClient(w3, dev_account(i), decoder) for i in range(5)
    )
    deployed, record = deploy_contract(publisher, tmp_path / "deployments")
    assert (
        load_deployment(w3, tmp_path / "deployments").address == deployed.address == record.address
    )
    params = TaskParams(
        spec_cid=_cid("spec"),
        genesis_cid=_cid("genesis"),
        genesis_score=5000,
        quorum=2,
        max_validators=3,
    )
    task = deployed.create_task(params, funding=2 * ETH)
    views = {name: DeRelayContract(c, record.address) for name, c in
             [("relayer", relayer), ("v1", v1), ("v2", v2), ("keeper", keeper)]}  # fmt: skip

    # act: a whole accepted round
    views["v1"].register_validator(task, params.validator_stake)
    views["v2"].register_validator(task, params.validator_stake)
    views["relayer"].join_relay(task, params.min_stake)
    state = deployed.task_state(task)
    assert (state.phase, state.holder) == (Phase.TURN, relayer.address)
    views["relayer"].submit_relay(
        task, state.round, state.head_cid[4:], _cid("child"), _cid("card"), bytes(32), 500
    )
    # each validator scores the child and the champion, the genesis and the child's parent too, on
    # its own held-out data
    ballots = {"v1": (5600, 5000, os.urandom(32)), "v2": (5400, 4900, os.urandom(32))}
    for name, (child, champion, salt) in ballots.items():
        view = views[name]
        view.commit_score(
            task,
            state.round,
            commitment_for(task, state.round, child, champion, champion, salt, view.client.address),
        )
    _advance(w3, params.commit_window + 1)
    for name, (child, champion, salt) in ballots.items():
        views[name].reveal_score(task, state.round, child, champion, champion, salt)
    views["keeper"].finalize(task)

    # check: verdict, the child crowned head and champion, reward for the median paired gain
    # (lower median of 600 and 500), fees, bounty, and ether out
    entry = deployed.lineage(task, 1, 1)[0]
    assert (entry.status, entry.score, entry.relayer) == (Status.ACCEPTED, 5400, relayer.address)
    (final,) = deployed.events("RoundFinalized", taskId=task)
    assert (final["args"]["childScore"], final["args"]["championScore"]) == (5400, 4900)
    assert final["args"]["delta"] == 500
    assert deployed.champion(task) == deployed.head(task) == (_cid("child"), 5400)
    (crowned,) = deployed.events("ChampionCrowned", taskId=task)
    assert (crowned["args"]["score"], crowned["args"]["gain"]) == (5400, 500)
    gain = 500
    reward = params.base_reward + params.reward_per_point * gain
    assert final["args"]["reward"] == reward
    assert deployed.withdrawable(relayer.address) == reward
    assert deployed.withdrawable(v1.address) == deployed.withdrawable(v2.address)
    assert deployed.withdrawable(v1.address) == params.validator_fee
    assert (
        deployed.withdrawable(keeper.address)
        == params.validator_fee * params.keeper_bounty_bp // 10_000
    )
    before = relayer.balance()
    receipt = views["relayer"].withdraw()
    gas_cost = receipt["gasUsed"] * receipt["effectiveGasPrice"]
    assert relayer.balance() == before + reward - gas_cost
    assert deployed.withdrawable(relayer.address) == 0
