"""Content-store throughput: the CID alone, add, and add then a verified get, against plain
sha256 of the same bytes.

Every figure is a ratio measured side by side in one run: `hashlib.sha256` over the same bytes is
timed between the store's operations, on the same machine, in the same process. A ratio is
throughput over sha256 throughput, i.e. sha256's seconds over the operation's seconds. The targets
(issue 13): add >= 0.5 and add + verified get >= 0.4 of sha256, on 1 MB and 50 MB.

Note the ceiling: an add names every block (one sha256 pass) and a verified get re-hashes every
block (another), so on one core an add-then-get round trip cannot pass 0.5 of one sha256 pass.
LocalStore hashes leaves on a thread pool, so free cores raise that ceiling; the figures depend
on how busy the machine is, which is why the load average is printed with them.

    python -m bench.store [--ipfs URL | --start-ipfs] [--sizes 1,50] [--repeats N]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import median, table
from derelay.trainer.cid import CHUNK_SIZE, unixfs_cid
from derelay.trainer.store import ContentStore, KuboStore, LocalStore

MB = 1024 * 1024
ADD_TARGET = 0.5  # add / sha256
TARGET = 0.4  # (add + verified get) / sha256


def _variant(base: bytes, tag: int) -> bytes:
    """`base` with `tag` stamped at the start of every chunk: new blocks, the same size, so that
    no store can answer from content it already holds."""
    out = bytearray(base)
    stamp = tag.to_bytes(8, "little")
    for offset in range(0, len(out), CHUNK_SIZE):
        out[offset : offset + 8] = stamp[: len(out) - offset]
    return bytes(out)


def _sha256_seconds(data: bytes) -> float:
    started = time.perf_counter()
    hashlib.sha256(data).digest()
    return time.perf_counter() - started


def _cid_seconds(data: bytes) -> float:
    started = time.perf_counter()
    unixfs_cid(data)
    return time.perf_counter() - started


def _file_seconds(directory: Path, data: bytes) -> tuple[float, float]:
    """Seconds to write `data` to one new file and fsync it, and to read it back: the floor the
    operating system and disk set for any store that keeps bytes in files."""
    path = directory / f"plain-{os.getpid()}-{time.monotonic_ns()}"
    started = time.perf_counter()
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    written = time.perf_counter() - started
    started = time.perf_counter()
    with open(path, "rb") as f:
        back = f.read()
    read = time.perf_counter() - started
    path.unlink()
    assert len(back) == len(data)
    return written, read


def measure_store(
    make_store: Callable[[], ContentStore],
    size: int,
    repeats: int = 3,
    pin: bool = False,
    plain_dir: Path | None = None,
) -> dict[str, Any]:
    """Median seconds of sha256, the CID alone, add, (pin) and verified get over `size` fresh
    random bytes; with `plain_dir`, also of a plain file write+fsync and read of the same bytes
    there."""
    base = os.urandom(size)
    runs: dict[str, list[float]] = {
        "sha256": [], "cid": [], "add": [], "pin": [], "get": [], "write": [], "read": []
    }  # fmt: skip
    for tag in range(repeats):
        data = _variant(base, tag + 1)
        store = make_store()
        os.sync()  # no write-back left over from the previous repeat (not timed)
        runs["sha256"].append(_sha256_seconds(data))
        runs["cid"].append(_cid_seconds(data))
        started = time.perf_counter()
        cid = store.add(data)
        runs["add"].append(time.perf_counter() - started)
        if pin:
            started = time.perf_counter()
            store.pin(cid)
            runs["pin"].append(time.perf_counter() - started)
        started = time.perf_counter()
        back = store.get(cid)
        runs["get"].append(time.perf_counter() - started)
        runs["sha256"].append(_sha256_seconds(data))
        if plain_dir is not None:
            written, read = _file_seconds(plain_dir, data)
            runs["write"].append(written)
            runs["read"].append(read)
        if back != data:
            raise AssertionError(f"{store!r} returned other bytes for {cid}")
    sha, cid_only = median(runs["sha256"]), median(runs["cid"])
    add, get = median(runs["add"]), median(runs["get"])
    pinned = median(runs["pin"]) if pin else 0.0
    plain = (
        {"file_write_fsync_mb_s": size / MB / median(runs["write"]),
         "file_read_mb_s": size / MB / median(runs["read"])}
        if plain_dir is not None else {}
    )  # fmt: skip
    return {
        "size_bytes": size,
        "repeats": repeats,
        "sha256_s": sha,
        "cid_s": cid_only,
        "add_s": add,
        "pin_s": pinned if pin else None,
        "get_s": get,
        "sha256_mb_s": size / MB / sha,
        "add_mb_s": size / MB / add,
        "get_mb_s": size / MB / get,
        "cid_ratio": sha / cid_only,
        "add_ratio": sha / add,
        "get_ratio": sha / get,
        # The headline: add (and pin, for a node), then a verified get, against one sha256 pass.
        "roundtrip_ratio": sha / (add + pinned + get),
        **plain,
    }


def run(
    sizes_mb: tuple[int, ...] = (1, 50),
    repeats: int = 3,
    ipfs_url: str | None = None,
    start_ipfs_node: bool = False,
    work_dir: Path | None = None,
) -> list[dict[str, Any]]:
    """LocalStore (in a temporary directory on the working disk) and, if asked, the IPFS node."""
    base = Path(tempfile.mkdtemp(prefix="derelay-bench-store-", dir=work_dir))
    results: list[dict[str, Any]] = []
    node = None
    try:
        counter = iter(range(10**6))

        def local() -> ContentStore:
            return LocalStore(base / f"local-{next(counter)}")

        for size in sizes_mb:
            row = measure_store(local, size * MB, repeats, plain_dir=base)
            results.append({"store": "LocalStore", **row})
        if start_ipfs_node and ipfs_url is None:
            from derelay.trainer.services import start_ipfs

            node = start_ipfs(base / "ipfs-repo", log_path=base / "ipfs.log")
            ipfs_url = node.url
        if ipfs_url is not None:
            kubo = KuboStore(ipfs_url, progress=False)
            try:
                for size in sizes_mb:
                    row = measure_store(lambda: kubo, size * MB, repeats, pin=True)
                    results.append({"store": "KuboStore (dev js-ipfs)", **row})
            finally:
                kubo.close()
    finally:
        if node is not None:
            node.stop()
        shutil.rmtree(base, ignore_errors=True)
    return results


def _rate(value: float | None) -> str:
    return "" if value is None else f"{value:.0f}"


def _meets(ratio: float, target: float) -> str:
    return "yes" if ratio >= target else "no"


def render(results: list[dict[str, Any]]) -> str:
    """The results as a markdown table: ratios to sha256, each target's verdict beside its ratio."""
    rows = [
        [
            r["store"],
            f"{r['size_bytes'] // MB} MB",
            f"{r['sha256_mb_s']:.0f}",
            f"{r['cid_ratio']:.2f}",
            f"{r['add_ratio']:.2f}",
            _meets(r["add_ratio"], ADD_TARGET),
            f"{r['roundtrip_ratio']:.2f}",
            _meets(r["roundtrip_ratio"], TARGET),
            f"{r['get_ratio']:.2f}",
            f"{r['add_mb_s']:.0f}",
            f"{r['get_mb_s']:.0f}",
            _rate(r.get("file_write_fsync_mb_s")),
            _rate(r.get("file_read_mb_s")),
        ]
        for r in results
    ]
    return table(
        [
            "store",
            "size",
            "sha256 MB/s",
            "CID only / sha256",
            "add / sha256",
            f"add >= {ADD_TARGET}",
            "add+get / sha256",
            f"add+get >= {TARGET}",
            "verified get / sha256",
            "add MB/s",
            "verified get MB/s",
            "plain file write+fsync MB/s",
            "plain file read MB/s",
        ],
        rows,
    )


def conditions() -> str:
    """How many cores there are and how busy they were: the ratios depend on free cores."""
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    return f"{len(os.sched_getaffinity(0))} usable cores, load average (1, 5, 15 min) {load}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1,50", help="sizes in MB, comma-separated")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ipfs", help="RPC URL of an IPFS node to measure as well")
    parser.add_argument("--start-ipfs", action="store_true", help="start the dev IPFS node")
    args = parser.parse_args()
    sizes = tuple(int(s) for s in args.sizes.split(","))
    before = conditions()
    print(render(run(sizes, args.repeats, args.ipfs, args.start_ipfs)))
    print(f"\nBefore: {before}\nAfter: {conditions()}")


if __name__ == "__main__":
    main()
