"""kill -9 at each phase of a turn and of a review, then a restart: no double submission, the
paired reveal (child and champion) still happens in its window, and nobody is slashed who the
rules would not slash."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from trainer.chain import ChainClient, connect
from trainer.contract import DeRelayContract, Status, decoder_for
from trainer.keys import dev_account

pytestmark = [pytest.mark.integration, pytest.mark.slow]
DERELAY = str(Path(sys.executable).parent / "derelay")
RELAYER, VALIDATORS, KEEPER = 1, (2, 3), 4


@pytest.fixture(scope="module")
def deployment(ganache_node, ipfs_node, tmp_path_factory):
    base = tmp_path_factory.mktemp("kill")
    env = {**os.environ, "DERELAY_RPC": ganache_node.url, "DERELAY_IPFS": ipfs_node.url}
    done = subprocess.run(
        [DERELAY, "deploy", "--dev-account", "0"], env=env, cwd=base, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    address = json.loads((base / "deployments" / "1337.json").read_text())["address"]
    reader = DeRelayContract(
        ChainClient(connect(ganache_node.url), dev_account(9), decoder_for()), address
    )
    return base, env, reader


def _worker(
    base: Path,
    env: dict[str, str],
    account: int,
    task: int,
    roles: list[str],
    failpoint: str | None,
):
    args = [DERELAY, "-v", "worker", "--dev-account", str(account), "--task", str(task), "--poll", "0.5",
            "--journal", f"journal-{task}-{account}.json", *roles]  # fmt: skip
    log = (base / f"worker-{task}-{account}.log").open("a")
    extra = {"DERELAY_FAILPOINT": failpoint} if failpoint else {}
    return subprocess.Popen(
        args, env={**env, **extra}, cwd=base, stdout=log, stderr=subprocess.STDOUT
    )


@pytest.mark.parametrize(
    ("point", "victim"),
    [
        ("after-download", RELAYER),
        ("before-training", RELAYER),
        ("after-pin", RELAYER),
        ("after-send:submitRelay", RELAYER),
        ("after-commit", VALIDATORS[0]),
    ],
)
def test_killed_then_restarted(deployment, point, victim):
    base, env, reader = deployment
    create = [DERELAY, "task", "create", "--dev-account", "0", "--param", "turn_duration=120",
              "--param", "commit_window=6", "--param", "reveal_window=40"]  # fmt: skip
    done = subprocess.run(create, env=env, cwd=base, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    task = reader.task_count()
    roles = {
        RELAYER: ["--roles", "relayer", "--shard", "1/1", "--alpha", "0"],
        VALIDATORS[0]: ["--roles", "validator", "--holdout-shard", "1/2"],
        VALIDATORS[1]: ["--roles", "validator", "--holdout-shard", "2/2"],
        KEEPER: ["--roles", "keeper"],
    }
    processes = {
        a: _worker(base, env, a, task, r, point if a == victim else None) for a, r in roles.items()
    }
    try:
        # the victim dies by SIGKILL at the failpoint
        assert processes[victim].wait(timeout=120) == -signal.SIGKILL
        processes[victim] = _worker(base, env, victim, task, roles[victim], None)
        deadline = time.monotonic() + 150
        while reader.task_state(task).accepted_count < 1:
            assert time.monotonic() < deadline, (
                f"round 1 of task {task} was not accepted after the restart"
            )
            time.sleep(1)
    finally:
        for p in processes.values():
            p.send_signal(signal.SIGTERM)
        for p in processes.values():
            p.wait(timeout=60)

    # check: the first child went out once per round (again only after a void review, which
    # keeps the holder's turn), was accepted, and both validators revealed paired scores for it
    first = reader.full_lineage(task)[1]
    assert first.status == Status.ACCEPTED
    sent = [e["args"]["round"] for e in reader.events("RelaySubmitted", taskId=task)]
    assert len(sent) == len(set(sent))
    assert reader.events("RelayerSlashed", taskId=task) == []
    assert reader.events("ValidatorSlashed", taskId=task) == []
    reveals = [
        e["args"]
        for e in reader.events("ScoreRevealed", taskId=task)
        if e["args"]["round"] == first.round
    ]
    assert {r["validator"] for r in reveals} == {dev_account(v).address for v in VALIDATORS}
    assert all(r["childScore"] > 0 and r["championScore"] > 0 for r in reveals)
