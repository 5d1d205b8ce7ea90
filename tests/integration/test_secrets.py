"""Secrets stay secret: a worker signing from an encrypted keystore, logging at debug level,
writes its private key and its keystore password nowhere: not to stdout or stderr, its command
line, its journal, the content store (the IPFS node's repo, and what it published as the node
serves it), its home folder, the chain's log, or any other file under its working folder."""

from __future__ import annotations

import json
import os
import secrets
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account

from derelay.trainer.chain import ChainClient, connect
from derelay.trainer.contract import DeRelayContract, Phase, decoder_for
from derelay.trainer.keys import KEY_ENV, PASSWORD_ENV, create_keystore, dev_account
from derelay.trainer.store import KuboStore

pytestmark = pytest.mark.integration
DERELAY = str(Path(sys.executable).parent / "derelay")
ETH = 10**18


def run(args: list[str], env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run(
        [DERELAY, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"derelay {' '.join(args)} failed: {done.stderr}"
    return done.stdout


def files_under(*folders: Path) -> Iterator[Path]:
    for folder in folders:
        if folder.is_file():
            yield folder
        for path in folder.rglob("*"):
            if path.is_file() and not path.is_symlink():
                yield path


def leaks(data: bytes, key: bytes, password: str) -> list[str]:
    """Which forms of the secrets `data` holds: the key as hex (with or without 0x, any case) or
    as raw bytes, the password as given or in lower case."""
    lowered = data.lower()
    found = []
    if key.hex().encode() in lowered:
        found.append("private key (hex)")
    if key in data:
        found.append("private key (raw bytes)")
    if password.encode() in data or password.lower().encode() in lowered:
        found.append("password")
    return found


def test_keystore_file_is_private_and_encrypted(tmp_path):
    password = "pw-" + secrets.token_urlsafe(16)
    path = tmp_path / "keys" / "worker.json"

    address = create_keystore(path, password)

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    document = json.loads(path.read_text())
    assert document["crypto"]["ciphertext"] and document["crypto"]["kdf"] in ("scrypt", "pbkdf2")
    key = bytes(Account.decrypt(document, password))
    assert Account.from_key(key).address == address
    assert leaks(path.read_bytes(), key, password) == []


def test_worker_never_writes_its_key_or_password(chain_node, ipfs_node, tmp_path):
    # prepare: a contract and a task on the dev chain, a funded keystore account
    base_env = {
        k: v for k, v in os.environ.items() if k not in (KEY_ENV, PASSWORD_ENV, "DERELAY_DEV_ACCOUNT", "DERELAY_KEYSTORE")
    }  # fmt: skip
    env = {**base_env, "DERELAY_RPC": chain_node.url, "DERELAY_IPFS": ipfs_node.url}
    run(["deploy", "--dev-account", "0"], env, tmp_path)
    created = run(
        ["task", "create", "--dev-account", "0", "--fund", "1ether",
         "--param", "turn_duration=120", "--param", "commit_window=4", "--param", "reveal_window=4"],
        env, tmp_path,
    )  # fmt: skip
    task_id = int(created.split()[1])
    password = "pw-" + secrets.token_urlsafe(16)
    keystore = tmp_path / "worker-keystore.json"
    address = create_keystore(keystore, password)
    key = bytes(Account.decrypt(json.loads(keystore.read_text()), password))
    w3 = connect(chain_node.url)
    funder = ChainClient(w3, dev_account(9), decoder_for())
    funder.send(
        {
            "to": address,
            "value": 5 * ETH,
            "gas": 21_000,
            "nonce": w3.eth.get_transaction_count(funder.address),
            "chainId": w3.eth.chain_id,
            "gasPrice": w3.eth.gas_price,
        },
        "fund the keystore account",
    )
    deployment = json.loads((tmp_path / "deployments" / f"{w3.eth.chain_id}.json").read_text())
    reader = DeRelayContract(ChainClient(w3, dev_account(9), decoder_for()), deployment["address"])
    home = tmp_path / "home"
    home.mkdir()
    worker_env = {**env, PASSWORD_ENV: password, "HOME": str(home)}
    args = ["-vv", "worker", "--keystore", str(keystore), "--task", str(task_id),
            "--roles", "relayer,keeper", "--shard", "1/2", "--alpha", "0",
            "--journal", "journal.json", "--poll", "0.5"]  # fmt: skip

    # act: run the worker at debug level until it has joined and submitted a turn, then SIGTERM
    stdout_path, stderr_path = tmp_path / "worker.out", tmp_path / "worker.err"
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        worker = subprocess.Popen([DERELAY, *args], env=worker_env, cwd=tmp_path, stdout=out, stderr=err)  # fmt: skip
        try:
            deadline = time.monotonic() + 180
            while reader.task_state(task_id).submission_count < 2:
                assert worker.poll() is None, f"the worker died: {stderr_path.read_text()[-3000:]}"
                assert time.monotonic() < deadline, "the worker did not submit a turn in 180 s"
                time.sleep(0.5)
            time.sleep(2)  # a few more ticks at debug level
            cmdline = Path(f"/proc/{worker.pid}/cmdline").read_bytes()
        finally:
            worker.send_signal(signal.SIGTERM)
            code = worker.wait(timeout=60)

    # check: it ran for real, stopped cleanly, and no secret is anywhere it could have written
    stdout, stderr = stdout_path.read_bytes(), stderr_path.read_bytes()
    assert code == 0, stderr.decode(errors="replace")[-3000:]
    assert b"joined the relay" in stdout + stderr and b"DEBUG" in stderr
    assert reader.account(task_id, address).queued
    assert reader.lineage(task_id, 1, 1)[0].relayer == address
    assert reader.task_state(task_id).phase in (Phase.TURN, Phase.REVIEW)
    turns = list(json.loads((tmp_path / "journal.json").read_text())["turns"].values())
    assert turns, "the journal recorded no turn"
    store = KuboStore(ipfs_node.url)
    for turn in turns:  # what it published, as the network serves it
        for cid in (turn["card_cid"], turn["child_cid"]):
            assert leaks(store.get(cid), key, password) == [], f"published {cid}"
    assert leaks(cmdline, key, password) == []
    assert leaks(stdout, key, password) == [], "stdout"
    assert leaks(stderr, key, password) == [], "stderr"
    scanned = 0
    ipfs_repo = ipfs_node.log_path.parent  # the node's repo and log
    for path in files_under(tmp_path, ipfs_repo, chain_node.log_path):
        found = leaks(path.read_bytes(), key, password)
        assert found == [], f"{path} holds the {', '.join(found)}"
        scanned += 1
    assert scanned > 3  # at least the journal, the logs, the keystore and the node's blocks
