"""A real relay across processes: a dev chain (ganache, and anvil mining every 2 s like an L2) and
the dev IPFS node, `derelay` commands as a user types them, 3 relayer and 2 validator worker
processes with their own keys and data shards."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from derelay.trainer.cid import Cid
from derelay.trainer.contract import DeRelayContract, Status
from derelay.trainer.keys import dev_account
from derelay.trainer.store import open_store
from tests.support.workers import publish_test_task, run_ok, run_workers_until

pytestmark = pytest.mark.integration
DERELAY = str(Path(sys.executable).parent / "derelay")
ACCEPTED_ROUNDS = 4


def _rotated(reader: DeRelayContract) -> bool:
    accepted = [e for e in reader.full_lineage(1)[1:] if e.status == Status.ACCEPTED]
    return len(accepted) >= ACCEPTED_ROUNDS and len({e.relayer for e in accepted}) >= 2


@pytest.mark.parametrize("engine", ["ganache_node", "anvil_2s"])
def test_relay_across_processes(engine, ipfs_node, tmp_path, request):
    # prepare: deploy and publish a digits-MLP task with short windows
    node = request.getfixturevalue(engine)
    env = {**os.environ, "DERELAY_RPC": node.url, "DERELAY_IPFS": ipfs_node.url}
    reader = publish_test_task(DERELAY, env, tmp_path, node.url)
    w3 = reader.client.w3
    genesis_score = reader.task_state(1).head_score

    # act: five worker processes until four turns are accepted, from two relayers at least (one
    # that starts first holds every turn alone until another process has loaded and joined)
    workers = []
    for i in range(3):
        args = ["worker", "--dev-account", str(i + 1), "--task", "1", "--roles", "relayer,keeper",
                "--shard", f"{i + 1}/3", "--alpha", "0", "--journal", f"relayer{i}.json", "--poll", "0.5"]  # fmt: skip
        workers.append(args)
    for i in range(2):
        args = ["worker", "--dev-account", str(i + 4), "--task", "1", "--roles", "validator",
                "--holdout-shard", f"{i + 1}/2", "--journal", f"validator{i}.json", "--poll", "0.5"]  # fmt: skip
        workers.append(args)
    exit_codes = run_workers_until(
        DERELAY, workers, env, tmp_path, lambda: _rotated(reader), 240, "4 turns from 2 relayers"
    )

    # check: clean stops, a better head and champion, payouts that match the chain to the wei
    assert exit_codes == [0] * 5, [
        (tmp_path / f"worker{k}.log").read_text()[-2000:] for k in range(5)
    ]
    state = reader.task_state(1)
    assert state.head_score > genesis_score
    assert state.champion_score > genesis_score
    champion_cid, champion_score = reader.champion(1)
    champion, head = Cid.from_bytes(champion_cid), Cid.from_bytes(state.head_cid)
    lineage = json.loads(run_ok(DERELAY, ["lineage", "1", "--json"], env, tmp_path))
    assert sum(e["status"] == "accepted" for e in lineage) == state.accepted_count
    relayers = {e["relayer"] for e in lineage if e["status"] == "accepted"}
    assert len(relayers) >= 2  # turns rotate between processes
    assert [e["cid"] for e in lineage if e["champion"]] == [str(champion)]
    assert [e["cid"] for e in lineage if e["head"]] == [str(head)]
    for e in lineage[1:]:
        if e["status"] in ("accepted", "held", "rejected"):
            assert e["delta"] is not None and e["champion_score"] is not None

    # status and lineage in words: head and champion, the verdicts, the champion marked
    status = run_ok(DERELAY, ["status", "1"], env, tmp_path)
    assert f"champion {champion} score {champion_score} bp" in status
    assert f"head     {head} score {state.head_score} bp" in status
    assert "last verdicts:" in status
    text = run_ok(DERELAY, ["lineage", "1"], env, tmp_path)
    (marked,) = [line for line in text.splitlines() if "<- champion" in line]
    assert str(champion) in marked

    rows = json.loads(run_ok(DERELAY, ["payouts", "1", "--json"], env, tmp_path))
    by_address = {r["address"]: r for r in rows}
    refunds: dict[str, int] = {}
    for name, key in (("RelayerLeft", "relayer"), ("ValidatorLeft", "validator")):
        for event in reader.events(name, taskId=1):
            address = event["args"][key]
            refunds[address] = refunds.get(address, 0) + event["args"]["refund"]
    credited = 0
    for r in rows:
        settled = sum(
            int(r[k])
            for k in ("relayer_rewards", "validator_fees", "keeper_bounties", "royalties_settled")
        )
        # nobody withdrew yet: every credit is still there, with the stake of any forced out
        assert int(r["withdrawable"]) == settled + refunds.get(r["address"], 0), r
        credited += settled
    rewards = sum(e["args"]["reward"] for e in reader.events("RoundFinalized", taskId=1))
    assert sum(int(r["relayer_rewards"]) for r in rows) == rewards
    crowned = reader.events("ChampionCrowned", taskId=1)
    assert sum(r["crowned_turns"] for r in rows) == len(crowned) >= 1
    lost = sum(int(r["stake_lost"]) for r in rows)
    assert state.pool == 3 * 10**18 + lost - credited  # the pool paid exactly what was credited

    # a consumer licenses the champion: the bytes it wrote are the champion's, and it paid
    got = run_ok(
        DERELAY,
        ["model", "get", "1", "--dev-account", "7", "--out", "champion.safetensors"],
        env,
        tmp_path,
    )
    assert "wrote the champion of task 1 to champion.safetensors" in got and str(champion) in got
    store = open_store(ipfs_node.url, tmp_path / "unused-store")
    assert (tmp_path / "champion.safetensors").read_bytes() == store.get(champion)
    (paid,) = reader.events("ModelPaid", taskId=1)
    assert paid["args"]["payer"] == dev_account(7).address

    # the relayer owed the most withdraws (which relayer earned depends on who got which turn)
    index = max(
        (1, 2, 3),
        key=lambda i: int(by_address.get(dev_account(i).address, {}).get("withdrawable", 0)),
    )
    relayer = dev_account(index).address
    owed = reader.withdrawable(relayer) + reader.account(1, relayer).pending_royalties
    assert owed > 0
    before = w3.eth.get_balance(relayer)
    out = run_ok(DERELAY, ["withdraw", "--dev-account", str(index), "--task", "1"], env, tmp_path)
    assert "withdrew" in out
    after = w3.eth.get_balance(relayer)
    assert before + owed - 10**16 < after <= before + owed  # the ether moved, less gas
    assert reader.withdrawable(relayer) == 0
    assert all(e["status"] in {s.name.lower() for s in Status} for e in lineage)
