"""`derelay chain --engine anvil --block-time S` as a user runs it, and `derelay task create`
warning about windows too short for the chain's blocks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from derelay.trainer.chain import connect, observed_block_time
from derelay.trainer.keys import dev_account
from derelay.trainer.services import free_port

pytestmark = pytest.mark.integration
DERELAY = str(Path(sys.executable).parent / "derelay")


def _derelay(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [DERELAY, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_derelay_chain_runs_anvil_on_a_clock_with_the_dev_accounts(tmp_path):
    # prepare
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    chain = subprocess.Popen(
        [DERELAY, "chain", "--engine", "anvil", "--block-time", "1", "--port", str(port),
         "--db", str(tmp_path / "anvil")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            assert chain.poll() is None, chain.stderr.read()
            try:
                w3 = connect(url)
                break
            except Exception:
                assert time.monotonic() < deadline, "anvil did not answer"
                time.sleep(0.2)

        # act: let it mine a few blocks
        time.sleep(3.5)
        block_time = observed_block_time(w3, blocks=3)
        balance = w3.eth.get_balance(dev_account(3).address)
        chain_id = w3.eth.chain_id
    finally:
        chain.send_signal(signal.SIGTERM)
        code = chain.wait(timeout=30)

    # check: a block a second, the project's dev accounts funded, a clean stop that saved state
    assert chain_id == 31337
    assert block_time is not None and 0.5 <= block_time <= 1.5
    assert balance == 1000 * 10**18
    assert code == 0
    assert "dev chain (anvil, chain id 31337, a block every 1 s)" in chain.stdout.read()
    assert (tmp_path / "anvil" / "anvil-state.json").stat().st_size > 0
    with pytest.raises(requests.ConnectionError):
        requests.post(url, json={}, timeout=1)


def test_task_create_warns_in_one_line_when_a_window_is_a_few_blocks(anvil_2s, tmp_path):
    # prepare: a deployment on a chain of 2 s blocks that has mined a few
    env = {**os.environ, "DERELAY_RPC": anvil_2s.url}
    env.pop("DERELAY_IPFS", None)
    assert _derelay(["deploy", "--dev-account", "0"], env, tmp_path).returncode == 0
    time.sleep(6)

    # act
    short = _derelay(
        ["task", "create", "--dev-account", "0", "--param", "commit_window=6",
         "--param", "reveal_window=30"],
        env, tmp_path,
    )  # fmt: skip
    fine = _derelay(
        ["task", "create", "--dev-account", "0", "--param", "commit_window=20",
         "--param", "reveal_window=20"],
        env, tmp_path,
    )  # fmt: skip

    # check: one warning line naming the short window and a length that fits; still created
    assert short.returncode == 0 and "task 1 created" in short.stdout
    (line,) = short.stderr.splitlines()
    assert line.startswith("warning: commit_window=6 s: shorter than 5 blocks")
    assert "at least 10 s" in line
    assert fine.returncode == 0 and fine.stderr == ""
