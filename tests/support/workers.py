"""`derelay` as a user runs it, in processes: a deployed contract with a task whose windows suit a
test, and worker processes, each logging to a file, stopped with SIGTERM once the chain shows what
the test waits for."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from derelay.trainer.chain import ChainClient, connect
from derelay.trainer.contract import DeRelayContract, decoder_for
from derelay.trainer.keys import dev_account


def run_ok(derelay: str, args: list[str], env: dict[str, str], cwd: Path) -> str:
    """The output of `derelay args`, which must succeed."""
    done = subprocess.run(
        [derelay, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"derelay {' '.join(args)} failed: {done.stderr}"
    return done.stdout


def publish_test_task(derelay: str, env: dict[str, str], cwd: Path, rpc: str) -> DeRelayContract:
    """Deploy (dev account 0) and publish task 1, a digits MLP with 3 ether and windows short
    enough for a test; the contract seen by a read-only dev account."""
    run_ok(derelay, ["deploy", "--dev-account", "0"], env, cwd)
    created = run_ok(
        derelay,
        ["task", "create", "--dev-account", "0", "--fund", "3ether",
         "--param", "turn_duration=120", "--param", "commit_window=6", "--param", "reveal_window=8"],
        env, cwd,
    )  # fmt: skip
    assert "task 1 created" in created
    w3 = connect(rpc)
    record = json.loads((cwd / "deployments" / f"{w3.eth.chain_id}.json").read_text())
    return DeRelayContract(ChainClient(w3, dev_account(9), decoder_for()), record["address"])


def run_workers_until(
    derelay: str,
    workers: list[list[str]],
    env: dict[str, str],
    cwd: Path,
    done: Callable[[], bool],
    timeout: float,
    what: str,
) -> list[int]:
    """Start `derelay -v` with each argument list (output in cwd/worker<k>.log), wait until
    `done()` (failing after `timeout` s, or when a worker dies), SIGTERM them all and return their
    exit codes."""
    processes = []
    for k, args in enumerate(workers):
        with (cwd / f"worker{k}.log").open("w") as log:
            processes.append(
                subprocess.Popen(
                    [derelay, "-v", *args], env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT
                )
            )
    try:
        deadline = time.monotonic() + timeout
        while not done():
            assert time.monotonic() < deadline, f"no {what} in {timeout:g} s: see worker*.log"
            assert all(p.poll() is None for p in processes), "a worker died: see worker*.log"
            time.sleep(1)
    finally:
        for p in processes:
            p.send_signal(signal.SIGTERM)
        exit_codes = [p.wait(timeout=60) for p in processes]
    return exit_codes
