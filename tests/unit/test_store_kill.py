"""kill -9 in the middle of LocalStore.add, in a real child process: every pack left is whole (its
bytes hash to its name) or absent, `get` returns the original bytes or refuses with a StoreError
(never other bytes), and adding the content again repairs the store."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from derelay.trainer.cid import CHUNK_SIZE, unixfs_cid
from derelay.trainer.errors import CidError, StoreError
from derelay.trainer.store import LocalStore

REPO = Path(__file__).resolve().parents[2]
LEAVES = 48
SIZE = LEAVES * CHUNK_SIZE + 1000  # 49 leaves, written by two threads on a machine of two cores
SEED = 14
CHILD = """
import random, sys
from derelay.trainer.store import LocalStore
store = LocalStore(sys.argv[1])
data = random.Random(int(sys.argv[3])).randbytes(int(sys.argv[2]))
print("adding", flush=True)
store.add(data)
print("added", flush=True)
"""


def content() -> bytes:
    return random.Random(SEED).randbytes(SIZE)


def start_add(root: Path, failpoint: str | None = None) -> subprocess.Popen[str]:
    """A child process that adds `content()` to the LocalStore at `root`; it prints "adding"
    when it starts the add."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("DERELAY_FAILPOINT", None)
    if failpoint:
        env["DERELAY_FAILPOINT"] = failpoint
    args = [sys.executable, "-c", CHILD, str(root), str(SIZE), str(SEED)]
    return subprocess.Popen(args, env=env, cwd=REPO, stdout=subprocess.PIPE, text=True)


def pack_files(root: Path) -> list[Path]:
    return sorted((root / "packs").iterdir())


def assert_whole_or_absent(root: Path, data: bytes) -> None:
    """What every crash must leave: whole packs only, and a get that is right or refuses."""
    assert not (root / "blocks").exists()
    for path in pack_files(root):
        assert str(unixfs_cid(path.read_bytes())) == path.name, f"torn pack {path.name}"
    store = LocalStore(root)
    cid = unixfs_cid(data)
    try:
        got = store.get(cid)
    except CidError as exc:  # a pack that does not hash to its name: exactly what must not be
        pytest.fail(f"get found a damaged pack after the kill: {exc}")
    except StoreError as exc:
        assert "not in the local store" in str(exc)
        assert not store.has(cid)
    else:
        assert got == data
        assert store.has(cid)


def assert_repaired(root: Path, data: bytes) -> None:
    store = LocalStore(root)
    assert list((root / "tmp").iterdir()) == []  # the dead child's temp files are swept
    assert store.add(data) == unixfs_cid(data)
    assert store.get(unixfs_cid(data)) == data
    assert list((root / "tmp").iterdir()) == []


# Each failpoint, and how many packs have their names when the child dies there.
POINTS = {
    "store-open": 0,  # the temp file just created, still empty
    "store-wrote:0": 0,  # the first leaf written, by the caller's thread
    f"store-wrote:{LEAVES // 2}": 0,  # a leaf halfway through, by a pool thread on two cores
    f"store-wrote:{LEAVES}": 0,  # the last leaf written, none synced
    "store-synced": 0,  # the whole pack synced, not named yet
    "store-renamed": 1,  # the pack named, its directory not synced yet
}


def test_killed_at_each_failpoint_of_an_add(tmp_path):
    data = content()
    children = {point: start_add(tmp_path / point, point) for point in POINTS}  # all at once
    for point, child in children.items():
        child.communicate(timeout=60)
        assert child.returncode == -signal.SIGKILL, f"{point} was never reached"
    for point, named in POINTS.items():
        root = tmp_path / point
        # A pack's name appears only once its bytes are synced.
        assert len(pack_files(root)) == named, point
        assert_whole_or_absent(root, data)
        assert_repaired(root, data)


def test_killed_after_random_delays(tmp_path):
    data = content()
    delays = [random.uniform(0, 0.03) for _ in range(6)]  # an add of 12 MB takes ~20 ms
    print("kill delays after the add began (s):", delays)  # shown if the test fails
    children = [start_add(tmp_path / str(attempt)) for attempt in range(len(delays))]
    timers = []
    for child, delay in zip(children, delays, strict=True):
        assert child.stdout is not None and child.stdout.readline() == "adding\n"
        timers.append(threading.Timer(delay, child.kill))
        timers[-1].start()
    for child, timer in zip(children, timers, strict=True):
        child.communicate(timeout=60)
        timer.join()
        assert child.returncode in (0, -signal.SIGKILL)  # killed, or done before the kill
    for attempt in range(len(children)):
        assert_whole_or_absent(tmp_path / str(attempt), data)
        assert_repaired(tmp_path / str(attempt), data)
