"""Service faults in the middle of a task: the chain (persistent database) and the IPFS node are
stopped and restarted under running workers; the workers reconnect and the relay goes on, with
nothing submitted twice and nothing lost."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from derelay.trainer.chain import ChainClient, connect
from derelay.trainer.contract import DeRelayContract, decoder_for
from derelay.trainer.keys import dev_account
from derelay.trainer.services import free_port, start_ganache, start_ipfs

pytestmark = pytest.mark.integration
DERELAY = str(Path(sys.executable).parent / "derelay")


def _run(args: list[str], env: dict[str, str], cwd: Path) -> None:
    done = subprocess.run(
        [DERELAY, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr


def _wait_accepted(
    chain_url: str, address: str, count: int, processes: list, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        assert all(p.poll() is None for p in processes), "a worker died: see worker*.log"
        try:
            reader = DeRelayContract(
                ChainClient(connect(chain_url), dev_account(9), decoder_for()), address
            )
            if reader.task_state(1).accepted_count >= count:
                return
        except Exception:  # the chain is down on purpose part of the time
            pass
        assert time.monotonic() < deadline, f"fewer than {count} accepted turns after {timeout} s"
        time.sleep(1)


def test_chain_and_ipfs_restarts_under_running_workers(tmp_path):
    # prepare: our own services (restarted below), a task, four worker processes
    chain_port, ipfs_port = free_port(), free_port()
    chain = start_ganache(tmp_path / "chaindb", port=chain_port, log_path=tmp_path / "ganache.log")
    ipfs = start_ipfs(tmp_path / "ipfs", port=ipfs_port, log_path=tmp_path / "ipfs.log")
    env = {
        **os.environ,
        "DERELAY_RPC": chain.url,
        "DERELAY_IPFS": ipfs.url,
        "DERELAY_RECEIPT_TIMEOUT": "10",
    }
    processes: list[subprocess.Popen[bytes]] = []
    try:
        _run(["deploy", "--dev-account", "0"], env, tmp_path)
        _run(
            ["task", "create", "--dev-account", "0", "--param", "turn_duration=90",
             "--param", "commit_window=5", "--param", "reveal_window=8"],
            env, tmp_path,
        )  # fmt: skip
        address = json.loads((tmp_path / "deployments" / "1337.json").read_text())["address"]
        roles = [
            ["--roles", "relayer,keeper", "--shard", "1/2", "--alpha", "0"],
            ["--roles", "relayer,keeper", "--shard", "2/2", "--alpha", "0"],
            ["--roles", "validator", "--holdout-shard", "1/2"],
            ["--roles", "validator", "--holdout-shard", "2/2"],
        ]
        for k, extra in enumerate(roles):
            args = ["-v", "worker", "--dev-account", str(k + 1), "--task", "1", "--poll", "0.5",
                    "--journal", f"journal{k}.json", *extra]  # fmt: skip
            log = (tmp_path / f"worker{k}.log").open("w")
            processes.append(
                subprocess.Popen(
                    [DERELAY, *args], env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT
                )
            )
        _wait_accepted(chain.url, address, 1, processes, 120)

        # act 1: the chain goes away and comes back with its database
        chain.stop()
        time.sleep(3)
        chain = start_ganache(
            tmp_path / "chaindb", port=chain_port, log_path=tmp_path / "ganache2.log"
        )
        _wait_accepted(chain.url, address, 3, processes, 150)

        # act 2: the IPFS node goes away and comes back with its repo
        ipfs.stop()
        time.sleep(3)
        ipfs = start_ipfs(tmp_path / "ipfs", port=ipfs_port, log_path=tmp_path / "ipfs2.log")
        _wait_accepted(chain.url, address, 5, processes, 150)
    finally:
        for p in processes:
            p.send_signal(signal.SIGTERM)
        codes = [p.wait(timeout=60) for p in processes]
        chain.stop()
        ipfs.stop()

    # check: clean stops, no round with two submissions, the relay made progress throughout
    assert codes == [0, 0, 0, 0], [
        (tmp_path / f"worker{k}.log").read_text()[-1500:] for k in range(4)
    ]
    logs = "".join((tmp_path / f"worker{k}.log").read_text() for k in range(4))
    assert "tick failed, retrying next tick" in logs  # the outages were seen, and survived
    with start_ganache(tmp_path / "chaindb", port=chain_port) as node:
        reader = DeRelayContract(
            ChainClient(connect(node.url), dev_account(9), decoder_for()), address
        )
        entries = reader.full_lineage(1)[1:]
        assert len({e.round for e in entries}) == len(entries)
        assert reader.task_state(1).accepted_count >= 5
