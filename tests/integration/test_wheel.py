"""The wheel, installed in a fresh venv and run outside the repository: a worker's turn, the read
commands, a withdrawal, a licensed model and the dashboard all work from the package alone (its
compiled contracts and static files are package data), and the dev services say what they need."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest
import requests

from derelay.trainer.cid import Cid
from derelay.trainer.contract import Status
from derelay.trainer.keys import dev_account
from derelay.trainer.services import free_port
from tests.support.workers import publish_test_task, run_ok, run_workers_until

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin/ folder of a fresh venv holding only the wheel; its dependencies (torch and the
    rest) are read from this venv's site-packages, without this venv's editable derelay."""
    base = tmp_path_factory.mktemp("wheel")
    source = base / "source"  # a copy, so that the build leaves nothing in the checkout
    shutil.copytree(
        REPO / "derelay", source / "derelay", ignore=shutil.ignore_patterns("__pycache__")
    )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    build = [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir"]
    subprocess.run([*build, str(base / "dist"), str(source)], check=True, timeout=300)
    (wheel,) = (base / "dist").glob("derelay-*.whl")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [*pip, "--python", str(python), "install", "--no-deps", "--no-index", str(wheel)],
        check=True,
        timeout=300,
    )
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True, capture_output=True, text=True,
        ).stdout.strip()
    )  # fmt: skip
    # A path line adds the folder; the .pth files in it (the editable finder) are not run.
    (site / "shared-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv / "bin"


def _env(**extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("DERELAY_")
    }
    return {**env, **extra}


def test_the_wheel_runs_its_own_copy_and_its_dev_services_say_what_they_need(installed, tmp_path):
    # prepare: what each dev service needs from a checkout, which the venv does not have
    needs = {
        ("chain",): "the ganache dev chain comes from the repository's ganache/ folder",
        ("chain", "--engine", "anvil"): "the anvil dev chain comes from the repository's",
        ("ipfs",): "the dev IPFS node comes from the repository's ganache/ folder",
        ("compile",): "derelay compile needs the repository's contracts/ sources",
    }

    # act: all at once (each start of derelay imports torch)
    runs = {
        args: subprocess.Popen(
            [str(installed / "derelay"), *args],
            env=_env(),
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for args in needs
    }
    which = subprocess.run(
        [str(installed / "python"), "-c",
         "import derelay; from derelay.trainer.contract import load_abi; "
         "print(derelay.__file__); print(len(load_abi()))"],
        env=_env(), cwd=tmp_path, capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    outputs = {args: p.communicate(timeout=120) for args, p in runs.items()}

    # check: the package (and its compiled contract) is the venv's, not the checkout's
    where, abi_items = which.stdout.split()
    assert Path(where).is_relative_to(installed.parent)
    assert int(abi_items) > 0
    # each service: one line that names what is missing and how to get it, no traceback
    for args, (_, stderr) in outputs.items():
        assert runs[args].returncode == 1, (args, stderr)
        (line,) = stderr.strip().splitlines()
        assert line.startswith(f"error: {needs[args]}"), line
        assert "make install" in line


def test_a_relay_round_from_the_wheel(installed, chain_node, ipfs_node, tmp_path):
    # prepare: deploy and publish a task with short windows, from the installed derelay
    derelay = str(installed / "derelay")
    env = _env(DERELAY_RPC=chain_node.url, DERELAY_IPFS=ipfs_node.url)
    reader = publish_test_task(derelay, env, tmp_path, chain_node.url)

    # act: a relayer (and keeper) and two validators until the first turn is decided
    worker = ["worker", "--task", "1", "--poll", "0.5"]
    workers = [
        [
            *worker,
            "--dev-account",
            "1",
            "--roles",
            "relayer,keeper",
            "--shard",
            "1/1",
            "--alpha",
            "0",
        ],
        [*worker, "--dev-account", "2", "--roles", "validator", "--holdout-shard", "1/2"],
        [*worker, "--dev-account", "3", "--roles", "validator", "--holdout-shard", "2/2"],
    ]
    exit_codes = run_workers_until(
        derelay,
        workers,
        env,
        tmp_path,
        lambda: bool(reader.events("RoundFinalized", taskId=1)),
        240,
        "decided turn",
    )
    logs = [(tmp_path / f"worker{k}.log").read_text() for k in range(3)]
    assert exit_codes == [0, 0, 0], [log[-2000:] for log in logs]
    assert all("worker stopped" in log for log in logs)

    # check: the read commands agree with the chain
    first = reader.events("RoundFinalized", taskId=1)[0]["args"]
    champion_cid, champion_score = reader.champion(1)
    champion = Cid.from_bytes(champion_cid)
    status = run_ok(derelay, ["status", "1"], env, tmp_path)
    assert f"champion {champion} score {champion_score} bp" in status
    assert "last verdicts:" in status
    lineage = json.loads(run_ok(derelay, ["lineage", "1", "--json"], env, tmp_path))
    assert lineage[1]["round"] == first["round"]
    assert lineage[1]["relayer"] == dev_account(1).address
    assert lineage[1]["status"] == Status(first["verdict"]).name.lower()
    rows = json.loads(run_ok(derelay, ["payouts", "1", "--json"], env, tmp_path))
    owed = {r["address"]: int(r["withdrawable"]) for r in rows}
    assert owed == {r["address"]: reader.withdrawable(r["address"]) for r in rows}

    # the participant owed the most withdraws it all
    index = max((1, 2, 3), key=lambda i: owed.get(dev_account(i).address, 0))
    address = dev_account(index).address
    assert owed[address] > 0
    withdrew = run_ok(derelay, ["withdraw", "--dev-account", str(index)], env, tmp_path)
    assert f"to {address}" in withdrew
    assert reader.withdrawable(address) == 0

    # a consumer licenses the champion
    got = run_ok(
        derelay, ["model", "get", "1", "--dev-account", "7", "--out", "champion.safetensors"],
        env, tmp_path,
    )  # fmt: skip
    assert str(champion) in got
    assert (tmp_path / "champion.safetensors").stat().st_size > 0
    assert len(reader.events("ModelPaid", taskId=1)) == 1

    # the dashboard serves its page (package data) and the task from the chain
    port = free_port()
    server = subprocess.Popen(
        [derelay, "dashboard", "1", "--port", str(port)],
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                page = requests.get(f"{base}/task/1", timeout=5)
                break
            except requests.ConnectionError:
                assert server.poll() is None and time.monotonic() < deadline, "no dashboard"
                time.sleep(0.5)
        snapshot = requests.get(f"{base}/api/task/1", timeout=60)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    assert page.status_code == 200 and "<html" in page.text.lower()
    assert snapshot.status_code == 200
    assert snapshot.json()["pool_check"]["ok"]
