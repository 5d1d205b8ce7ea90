"""Bad input at the command line: one line on stderr that says what to do, exit status 1,
no traceback, nothing written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from derelay.trainer.chain import chain_id, connect
from derelay.trainer.keys import create_keystore, dev_account
from derelay.trainer.services import free_port, start_ganache

pytestmark = pytest.mark.integration
DERELAY = str(Path(sys.executable).parent / "derelay")


def fails(args: list[str], cwd: Path, **env: str) -> str:
    """Run derelay, expect a user error; return its one line."""
    done = subprocess.run(
        [DERELAY, *args],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert "Traceback" not in done.stderr
    return lines[0]


def test_unreachable_rpc(tmp_path):
    line = fails(["status", "--rpc", f"http://127.0.0.1:{free_port()}"], tmp_path)
    assert "unreachable" in line and "start a chain there or check the RPC URL" in line


def test_chain_without_deployment(chain_node, tmp_path):
    chain = chain_id(connect(chain_node.url))
    line = fails(["status", "--rpc", chain_node.url], tmp_path)
    assert f"no deployment for chain {chain} " in line and "derelay deploy" in line


def test_wrong_keystore_password(chain_node, tmp_path):
    create_keystore(tmp_path / "me.json", "right")
    line = fails(
        ["deploy", "--rpc", chain_node.url, "--keystore", "me.json"],
        tmp_path,
        DERELAY_KEYSTORE_PASSWORD="wrong",
    )
    assert "wrong password" in line
    assert not (tmp_path / "deployments").exists()


def test_insufficient_funds(chain_node, tmp_path):
    address = create_keystore(tmp_path / "empty.json", "pw")
    line = fails(
        ["deploy", "--rpc", chain_node.url, "--keystore", "empty.json"],
        tmp_path,
        DERELAY_KEYSTORE_PASSWORD="pw",
    )
    assert "insufficient funds" in line and address in line


def test_dev_accounts_are_refused_on_a_non_dev_chain(tmp_path):
    with start_ganache(None, chain_id=5) as node:
        line = fails(["deploy", "--rpc", node.url, "--dev-account", "0"], tmp_path)
    assert "dev chains" in line


def test_bad_amount_and_nothing_to_withdraw(chain_node, tmp_path):
    env = {"DERELAY_RPC": chain_node.url}
    done = subprocess.run(
        [DERELAY, "deploy", "--dev-account", "0"], cwd=tmp_path, env={**os.environ, **env},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "not an amount" in fails(
        ["task", "fund", "1", "lots", "--dev-account", "0"], tmp_path, **env
    )
    assert "UnknownTask" in fails(
        ["task", "fund", "7", "1ether", "--dev-account", "0"], tmp_path, **env
    )
    line = fails(["withdraw", "--dev-account", "8"], tmp_path, **env)
    assert "NothingToWithdraw" in line and "nothing is owed" in line


def test_missing_dataset_file_for_a_worker(chain_node, ipfs_node, tmp_path):
    env = {"DERELAY_RPC": chain_node.url, "DERELAY_IPFS": ipfs_node.url}
    for args in (["deploy", "--dev-account", "0"], ["task", "create", "--dev-account", "0"]):
        done = subprocess.run(
            [DERELAY, *args],
            cwd=tmp_path,
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
    line = fails(
        ["worker", "--dev-account", "1", "--task", "1", "--roles", "relayer", "--data", "nope.npz"],
        tmp_path,
        **env,
    )
    assert "nope.npz" in line
    assert not list(tmp_path.glob(".derelay/journal-*"))

    # a journal named by an earlier version for no deployment is not taken for this one's
    legacy = tmp_path / ".derelay" / f"journal-{dev_account(1).address}.json"
    legacy.parent.mkdir(exist_ok=True)
    legacy.write_text("{}")
    line = fails(
        ["worker", "--dev-account", "1", "--task", "1", "--roles", "relayer", "--shard", "1/3"],
        tmp_path,
        **env,
    )
    assert f"pass --journal .derelay/journal-{dev_account(1).address}.json if it belongs" in line
    assert legacy.read_text() == "{}" and len(list(legacy.parent.glob("journal-*"))) == 1


def test_bad_task_parameters(chain_node, tmp_path):
    env = {"DERELAY_RPC": chain_node.url}
    done = subprocess.run(
        [DERELAY, "deploy", "--dev-account", "0"], cwd=tmp_path, env={**os.environ, **env},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    create = ["task", "create", "--dev-account", "0", "--param"]

    # a parameter of the first review, gone: the line names the ones there are now
    line = fails([*create, "tolerance=1500"], tmp_path, **env)
    assert "tolerance" in line and "slash_band" in line and "advance_band" in line

    # an advance band wider than the slash band, and one that does not fit its field
    line = fails([*create, "advance_band=3500"], tmp_path, **env)
    assert (
        "InvalidParameter" in line and "advanceBand" in line and "fix that task parameter" in line
    )
    line = fails([*create, "max_misses=300"], tmp_path, **env)
    assert "max_misses is a uint8 on chain, at most 255" in line
