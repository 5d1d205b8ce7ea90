"""The content store: where weights and task specs live, named by their CIDs.

Two backends share one interface. `LocalStore` keeps files in a directory; `KuboStore` talks to
an IPFS node over the Kubo RPC API. Both name content exactly as `ipfs add --cid-version=1` does
(see `derelay.trainer.cid`), and both re-hash what they return: bytes that do not produce the CID asked
for raise `CidError`, so nothing downstream ever sees content the chain did not name.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import itertools
import os
import re
import sys
import tempfile
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

import requests
from tqdm import tqdm

from derelay.trainer.cid import (
    CHUNK_SIZE,
    DAG_PB,
    RAW,
    Cid,
    decode_file_node,
    unixfs_cid,
    unixfs_root,
)
from derelay.trainer.errors import CidError, ConfigError, StoreError, one_line
from derelay.trainer.failpoints import failpoint
from derelay.trainer.limits import DEFAULT_LIMITS, loads_json, read_reply

PROGRESS_MIN_BYTES = 4 * 1024 * 1024
DEFAULT_IPFS_URL = "http://127.0.0.1:5001"

_MAX_DEPTH = 16  # a 512 MiB file is 3 levels deep; anything this deep is not ours
_TRANSFER_CHUNK = 1024 * 1024
_HAS_TIMEOUT = 5.0  # seconds
_REPLY_BYTES = 64 * 1024  # most a node may say in answer to anything but `cat`
_TMP_PREFIX = ".tmp-"
_SYNC_FILE_RANGE_WRITE = 2
_WRITEBACK_BYTES = 1024 * 1024
# Kubo's defaults for `ipfs add --cid-version=1`, spelled out so that any node (js-ipfs too)
# builds the same DAG; `cid-base` only changes how the node writes the CID back.
_ADD_PARAMS = {
    "cid-version": "1",
    "raw-leaves": "true",
    "chunker": f"size-{CHUNK_SIZE}",
    "hash": "sha2-256",
    "trickle": "false",
    "cid-base": "base32",
    "pin": "false",
}


def as_cid(cid: Cid | str) -> Cid:
    """Return `cid` as a Cid, parsing it strictly if it is a string."""
    return cid if isinstance(cid, Cid) else Cid.parse(cid)


def _too_large(cid: Cid, size: int, limit: int) -> StoreError:
    return StoreError(
        f"{cid} holds {size} bytes, more than the limit of {limit}: "
        "raise the size limit only if you trust whoever named this CID"
    )


def _progress(total: int | None, desc: str, enabled: bool | None) -> tqdm:
    """A byte progress bar, shown when enabled (default: stderr is a TTY) unless known small."""
    show = sys.stderr.isatty() if enabled is None else enabled
    big = total is None or total >= PROGRESS_MIN_BYTES
    return tqdm(
        total=total,
        desc=desc,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        leave=False,
        disable=not (show and big),
    )


class ContentStore(ABC):
    """Content-addressed storage: add bytes, get them back verified by CID, pin, test presence."""

    max_bytes: int = DEFAULT_LIMITS.content_bytes

    @abstractmethod
    def add(self, data: bytes) -> Cid:
        """Store `data` and return its CID (the one `ipfs add --cid-version=1` gives)."""

    @abstractmethod
    def get(self, cid: Cid | str, max_bytes: int | None = None) -> bytes:
        """Return the bytes named by `cid`, verified; refuse content over `max_bytes`."""

    @abstractmethod
    def pin(self, cid: Cid | str) -> None:
        """Keep the content named by `cid` from being collected."""

    @abstractmethod
    def has(self, cid: Cid | str) -> bool:
        """Whether the content named by `cid` is held here, without fetching it."""


# --- LocalStore ---------------------------------------------------------------------------------

# Threads that write and hash the leaves of an add, or hash those of a get: one run of leaves a
# usable core, the first on the caller's thread. hashlib and file I/O release the GIL.
_THREADS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
_serial = itertools.count()
_pool_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None


def _threads() -> ThreadPoolExecutor:
    """The store's thread pool, shared by every LocalStore of this process and started lazily."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(_THREADS, thread_name_prefix="derelay-store")
        return _pool


def _forget_pool() -> None:
    """In a forked child the parent's threads are gone: start a pool of its own when needed."""
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_pool)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see either nothing or all of it."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_TMP_PREFIX)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def _settle(futures: Iterable[Future[Any]]) -> None:
    """Cancel what has not started and wait for the rest, so no thread runs on after we return."""
    running = [f for f in futures if not f.cancel()]
    wait(running)


def _writeback() -> Callable[[int, int, int], object]:
    """Linux's sync_file_range(fd, offset, count, SYNC_FILE_RANGE_WRITE): start writing a range
    to disk without waiting for it. Where libc lacks it, nothing: the fdatasync that ends an add
    makes the pack durable either way, only later."""
    try:
        call = ctypes.CDLL(None, use_errno=True).sync_file_range
    except AttributeError:
        return lambda fd, offset, count: None
    call.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    return lambda fd, offset, count: call(fd, offset, count, _SYNC_FILE_RANGE_WRITE)


_start_writeback = _writeback()


# Takes the leaves of a view that begin in [start, stop) and returns their CIDs and sizes.
_Leaves = Callable[[memoryview, int, int], list[tuple[Cid, int]]]


def _hash_leaves(view: memoryview, start: int, stop: int) -> list[tuple[Cid, int]]:
    """The CIDs and sizes of the leaves of `view` that begin in [start, stop). Each is copied
    into a scratch buffer the size of a leaf and hashed there: a copy and then a hash from the
    cache beat a hash straight from memory (35 against 45 ms for 50 MB on the bench machine)."""
    scratch = memoryview(bytearray(CHUNK_SIZE))
    leaves = []
    for offset in range(start, stop, CHUNK_SIZE):
        size = len(leaf := view[offset : offset + CHUNK_SIZE])
        scratch[:size] = leaf
        leaves.append((Cid.of(RAW, scratch[:size]), size))
    return leaves


def _write_leaves(fd: int, view: memoryview, start: int, stop: int) -> list[tuple[Cid, int]]:
    """Write the leaves of `view` that begin in [start, stop) to `fd` at their offsets, starting
    their writeback a MiB at a time so that the disk works while the rest is hashed, and return
    their CIDs and sizes: each is hashed just after its write, which leaves it in the cache."""
    leaves = []
    unsent = start  # the first byte written whose writeback has not been started
    for offset in range(start, stop, CHUNK_SIZE):
        size = len(leaf := view[offset : offset + CHUNK_SIZE])
        written = 0
        while written < size:
            written += os.pwrite(fd, leaf[written:], offset + written)
        if offset + size - unsent >= _WRITEBACK_BYTES or offset + CHUNK_SIZE >= stop:
            _start_writeback(fd, unsent, offset + size - unsent)
            unsent = offset + size
        failpoint(f"store-wrote:{offset // CHUNK_SIZE}")
        leaves.append((Cid.of(RAW, leaf), size))
    return leaves


def _root(view: memoryview, leaves: _Leaves) -> Cid:
    """The UnixFS root CID of `view`, whose `leaves` (`_hash_leaves` or `_write_leaves`) are
    taken in one run a usable core: the first on the caller's thread, the rest on the pool."""
    count = max(1, -(-len(view) // CHUNK_SIZE))  # an empty file is one empty leaf
    runs = min(_THREADS, count)
    bounds = [count * run // runs * CHUNK_SIZE for run in range(runs)] + [max(len(view), 1)]
    first, *rest = itertools.pairwise(bounds)
    futures = [_threads().submit(leaves, view, *span) for span in rest]
    try:
        named = leaves(view, *first)
        return unixfs_root(named + [leaf for future in futures for leaf in future.result()])
    finally:
        _settle(futures)


def _read_pack(path: Path, cid: Cid, limit: int) -> bytes:
    """The whole of the pack at `path` as one bytes object (one read: no join, no copy), unless
    it holds more than `limit` bytes."""
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        if size > limit:
            raise _too_large(cid, size, limit)
        data = os.read(fd, size)
        while len(data) < size and (more := os.read(fd, size - len(data))):
            data += more  # only past 2 GiB, which Linux reads in pieces
        return data
    finally:
        os.close(fd)


class LocalStore(ContentStore):
    """Each file added as one pack, `root/packs/<root CID>`, holding exactly the file's bytes;
    pins as empty files under `root/pins`.

    The leaves of a UnixFS DAG are raw, so a file's bytes are its leaves end to end, and its
    inner nodes follow from the leaves' CIDs: a pack needs no index. `get` reads a pack in one
    piece, hashes its leaves on every core and rebuilds the DAG up to the root CID it is named
    by; the bytes it returns are the ones it hashed.
    Only roots are names here: the leaves and inner nodes of a pack are not served on their own,
    and two files that share leaves each keep a whole pack.

    An add writes the bytes to a new file under `root/tmp`, each leaf hashed just after it is
    written and its writeback started (on every core, see `_root`), then fdatasyncs the file,
    renames it to its root CID under `packs` and fsyncs that directory: one data sync, one
    rename and one directory sync a file, whatever its size. A pack's name only ever
    points at synced bytes, so after a kill -9 or a power cut at any point each pack is whole or
    absent, and once add returns both the bytes and the name are on disk. Adding the content
    again writes the pack anew, which repairs a damaged one. Temp files of a process that died
    are removed when the store is next opened.

    Stores from before packs kept each block as a file under `root/blocks`; `get` and `has`
    still read those, verifying every block, but nothing new is written there.
    """

    def __init__(self, root: str | Path, *, max_bytes: int = DEFAULT_LIMITS.content_bytes) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes
        self._packs = self.root / "packs"
        self._blocks = self.root / "blocks"
        self._pins = self.root / "pins"
        self._tmp = self.root / "tmp"
        try:
            new = not self._packs.is_dir()
            for folder in (self._packs, self._pins, self._tmp):
                folder.mkdir(parents=True, exist_ok=True)
            if new:
                _fsync_dir(self.root)  # a pack's name is only as durable as its folder's
            self._sweep()
        except OSError as exc:
            raise StoreError(
                f"cannot create the local store at {self.root}: {exc.strerror}; "
                "choose a writable directory"
            ) from None

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    def add(self, data: bytes) -> Cid:
        """Store `data` as one pack, durably; return its root CID."""
        temp = self._tmp / f"{os.getpid()}.{next(_serial)}"
        try:
            try:
                fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                try:
                    failpoint("store-open")
                    root = _root(memoryview(data).cast("B"), functools.partial(_write_leaves, fd))
                    os.fdatasync(fd)
                finally:
                    os.close(fd)
                failpoint("store-synced")
                os.replace(temp, self._pack(root))
                failpoint("store-renamed")
                _fsync_dir(self._packs)
            except BaseException:
                with contextlib.suppress(OSError):
                    temp.unlink()
                raise
        except OSError as exc:
            raise StoreError(
                f"cannot write to the local store at {self.root}: {exc.strerror}; "
                "free some disk space or choose another directory"
            ) from None
        return root

    def get(self, cid: Cid | str, max_bytes: int | None = None) -> bytes:
        """The file named by `cid`: its pack, verified, or else its blocks from an older store."""
        root = as_cid(cid)
        limit = self.max_bytes if max_bytes is None else max_bytes
        path = self._pack(root)
        try:
            data = _read_pack(path, root, limit)
        except FileNotFoundError:
            return self._get_blocks(root, limit)
        except OSError as exc:
            raise StoreError(f"cannot read {path}: {exc.strerror}") from None
        if _root(memoryview(data), _hash_leaves) != root:
            raise CidError(
                f"pack {path} does not hash to its CID: the file was altered on disk; "
                "add or fetch the content again to replace it"
            )
        return data

    def has(self, cid: Cid | str) -> bool:
        """Whether the content is here, without reading it whole: its pack, or every block of an
        older store's DAG (inner blocks verified, leaves not)."""
        cid = as_cid(cid)
        if self._pack(cid).is_file():
            return True
        try:
            return self._complete(cid, 0)
        except (CidError, OSError):
            return False

    def pin(self, cid: Cid | str) -> None:
        """Record a pin for `cid`, whose content must already be here."""
        cid = as_cid(cid)
        if not self.has(cid):
            raise StoreError(
                f"cannot pin {cid}: it is not (completely) in the local store at {self.root}; "
                "add or fetch it first"
            )
        path = self._pins / str(cid)
        if path.exists():
            return
        try:
            _write_atomic(path, b"")
            _fsync_dir(self._pins)
        except OSError as exc:
            raise StoreError(f"cannot record a pin in {self._pins}: {exc.strerror}") from None

    def pinned(self) -> list[Cid]:
        """The pinned CIDs, sorted by their text."""
        names = sorted(p.name for p in self._pins.iterdir() if not p.name.startswith(_TMP_PREFIX))
        return [Cid.parse(name) for name in names]

    def _pack(self, cid: Cid) -> Path:
        return self._packs / str(cid)

    def _block(self, cid: Cid) -> Path:
        return self._blocks / str(cid)

    def _sweep(self) -> None:
        """Remove the temp files (named `<pid>.<serial>`) of adds whose process has died. A live
        adder's files are never removed; a dead one's pid reused only leaves its files for later."""
        for entry in os.scandir(self._tmp):
            pid = entry.name.partition(".")[0]
            if pid.isdigit() and not _alive(int(pid)):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)

    def _get_blocks(self, root: Cid, limit: int) -> bytes:
        """Reassemble the file named by `root` from an older store's blocks, verifying each."""
        pieces: list[bytes] = []
        self._plan(root, root, None, limit, pieces, 0, 0)
        return b"".join(pieces)

    def _read(self, cid: Cid, root: Cid) -> bytes:
        path = self._block(cid)
        try:
            block = path.read_bytes()
        except FileNotFoundError:
            what = "it is" if cid == root else f"its block {cid} is"
            raise StoreError(
                f"cannot get {root}: {what} not in the local store at {self.root}; "
                "add the content or fetch it from IPFS"
            ) from None
        except OSError as exc:
            raise StoreError(f"cannot read {path}: {exc.strerror}") from None
        if Cid.of(cid.codec, block) != cid:
            raise CidError(
                f"block {path} does not hash to its CID: the file was altered on disk; "
                "delete it and add or fetch the content again"
            )
        return block

    def _plan(
        self,
        cid: Cid,
        root: Cid,
        size: int | None,
        limit: int,
        pieces: list[bytes],
        depth: int,
        total: int,
    ) -> int:
        """Append to `pieces` the file data under `cid`, in order, each block read and verified.
        `size` is what the parent says `cid` holds, `total` the bytes before it; return the
        bytes up to the end of `cid`, refusing the DAG before a block that passes `limit`."""
        if depth > _MAX_DEPTH:
            raise CidError(f"{root} is a DAG deeper than {_MAX_DEPTH} levels; refusing it")
        if cid.codec == RAW and size is not None:
            if total + size > limit:
                raise _too_large(root, total + size, limit)
            block = self._read(cid, root)
            if len(block) != size:
                raise CidError(
                    f"{root}: leaf {cid} holds {len(block)} bytes, its parent says {size}"
                )
            pieces.append(block)
            return total + size
        block = self._read(cid, root)
        if cid.codec == RAW:
            if len(block) > limit:
                raise _too_large(root, len(block), limit)
            pieces.append(block)
            return len(block)
        try:
            node = decode_file_node(block)
        except CidError as exc:
            raise CidError(f"{root} is not a UnixFS file: {exc}") from None
        if size is not None and node.filesize != size:
            raise CidError(
                f"{root}: node {cid} holds {node.filesize} bytes, its parent says {size}"
            )
        if total + node.filesize > limit:
            raise _too_large(root, total + node.filesize, limit)
        pieces.append(node.data)
        total += len(node.data)
        for link, child_size in zip(node.links, node.blocksizes, strict=True):
            total = self._plan(link.cid, root, child_size, limit, pieces, depth + 1, total)
        return total

    def _complete(self, cid: Cid, depth: int) -> bool:
        if cid.codec == RAW:
            return self._block(cid).is_file()
        if depth > _MAX_DEPTH:
            return False
        block = self._block(cid).read_bytes()
        if Cid.of(DAG_PB, block) != cid:
            return False
        return all(self._complete(link.cid, depth + 1) for link in decode_file_node(block).links)


# --- KuboStore ----------------------------------------------------------------------------------

_MULTIADDR = re.compile(r"/(ip4|ip6|dns|dns4|dns6)/([^/]+)/tcp/(\d+)(/http)?/?")


def _normalise_url(url: str) -> str:
    """Turn an RPC address (http URL or multiaddr such as /ip4/127.0.0.1/tcp/5001) into a URL."""
    url = url.strip()
    if m := _MULTIADDR.fullmatch(url):
        host = f"[{m[2]}]" if m[1] == "ip6" else m[2]
        return f"http://{host}:{m[3]}"
    url = url.rstrip("/").removesuffix("/api/v0")
    if not re.fullmatch(r"https?://[^/\s]+", url):
        raise ConfigError(
            f"{url!r} is not an IPFS RPC address: pass one like http://127.0.0.1:5001 "
            "or /ip4/127.0.0.1/tcp/5001"
        )
    return url


def _connection_reason(exc: requests.ConnectionError) -> str:
    """The OS-level reason inside requests' long connection error, e.g. 'Connection refused'."""
    m = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", str(exc))
    return m[1].strip() if m else one_line(str(exc), 120)


class _MultipartBody:
    """A multipart/form-data body holding one file, sent in chunks with a progress bar.

    Requests sends it with a Content-Length (from `__len__`) and iterates it afresh on each try.
    """

    def __init__(self, data: bytes, progress: bool | None, desc: str) -> None:
        boundary = uuid.uuid4().hex
        self.content_type = f"multipart/form-data; boundary={boundary}"
        self._head = (
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="file"; filename="blob"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        self._tail = f"\r\n--{boundary}--\r\n".encode()
        self._data = memoryview(data).cast("B")
        self._progress = progress
        self._desc = desc

    def __len__(self) -> int:
        return len(self._head) + len(self._data) + len(self._tail)

    def __iter__(self) -> Iterator[bytes]:
        yield self._head
        with _progress(len(self._data), self._desc, self._progress) as bar:
            for start in range(0, len(self._data), _TRANSFER_CHUNK):
                chunk = self._data[start : start + _TRANSFER_CHUNK]
                yield bytes(chunk)
                bar.update(len(chunk))
        yield self._tail


class KuboStore(ContentStore):
    """An IPFS node reached over the Kubo RPC API (kubo, or js-ipfs which speaks the same API)."""

    def __init__(
        self,
        url: str = DEFAULT_IPFS_URL,
        *,
        timeout: float = 60.0,
        connect_timeout: float = 5.0,
        tries: int = 3,
        backoff: float = 0.5,
        max_bytes: int = DEFAULT_LIMITS.content_bytes,
        progress: bool | None = None,
    ) -> None:
        """`timeout` bounds each wait for the node; connection failures are tried `tries` times
        with exponential `backoff`; `progress` None shows bars only on a terminal."""
        self.url = _normalise_url(url)
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.tries = max(1, tries)
        self.backoff = backoff
        self.max_bytes = max_bytes
        self.progress = progress
        self._session = requests.Session()

    def __repr__(self) -> str:
        return f"KuboStore({self.url!r})"

    def close(self) -> None:
        """Close pooled connections."""
        self._session.close()

    def version(self) -> str:
        """The node's version string; a cheap check that the node is up."""
        with self._call("version", {}) as resp:
            return str(self._json(resp, "version").get("Version", "unknown"))

    def add(self, data: bytes) -> Cid:
        """Upload `data`; refuse (CidError) if the node names it other than we compute."""
        expected = unixfs_cid(data)
        body = _MultipartBody(data, self.progress, f"add {str(expected)[:16]}…")
        headers = {"Content-Type": body.content_type}
        with self._call("add", _ADD_PARAMS, data=body, headers=headers) as resp:
            lines = [line for line in self._body(resp, "add").splitlines() if line.strip()]
        try:
            reply = loads_json(lines[-1])
            got = Cid.parse(reply["Hash"])
        except (IndexError, ValueError, KeyError, TypeError) as exc:
            raise StoreError(
                f"IPFS node at {self.url} gave an unreadable answer to add: {one_line(str(exc))}"
            ) from None
        except CidError as exc:
            raise StoreError(
                f"IPFS node at {self.url} answered add with a bad CID: {exc}"
            ) from None
        if got != expected:
            raise CidError(
                f"IPFS node at {self.url} named the bytes {got}, but `ipfs add --cid-version=1` "
                f"gives {expected}: the node imports with other settings (chunker, raw leaves, "
                "layout) or altered the bytes; use a node with Kubo's defaults"
            )
        return expected

    def get(self, cid: Cid | str, max_bytes: int | None = None) -> bytes:
        """Fetch with `cat`, streaming; re-hash the bytes and refuse them unless they give `cid`."""
        cid = as_cid(cid)
        limit = self.max_bytes if max_bytes is None else max_bytes
        chunks: list[bytes] = []
        received = 0
        with self._call("cat", {"arg": str(cid)}) as resp:
            header = resp.headers.get("X-Content-Length", "")
            announced = int(header) if header.isdigit() else None
            if announced is not None and announced > limit:
                raise _too_large(cid, announced, limit)
            try:
                with _progress(announced, f"get {str(cid)[:16]}…", self.progress) as bar:
                    for chunk in resp.iter_content(_TRANSFER_CHUNK):
                        received += len(chunk)
                        if received > limit:
                            raise _too_large(cid, received, limit)
                        chunks.append(chunk)
                        bar.update(len(chunk))
            except requests.RequestException as exc:
                raise StoreError(
                    f"IPFS node at {self.url} broke off sending {cid} after {received} bytes "
                    f"({one_line(str(exc), 120)}): check that it is running and try again"
                ) from None
        if announced is not None and received != announced:
            raise StoreError(
                f"IPFS node at {self.url} sent {received} of the {announced} bytes of {cid}: "
                "it may be short of the content or failing; try again"
            )
        data = b"".join(chunks)
        del chunks
        actual = Cid.of(RAW, data) if cid.codec == RAW else unixfs_cid(data)
        if actual != cid:
            raise CidError(
                f"bytes from {self.url} do not hash to {cid}; the node or a proxy altered them: "
                f"refusing them (they hash to {actual}; content imported with settings other "
                "than `ipfs add --cid-version=1` defaults cannot be verified either)"
            )
        return data

    def pin(self, cid: Cid | str) -> None:
        """Pin `cid` recursively on the node (it fetches what it lacks)."""
        with self._call("pin/add", {"arg": str(as_cid(cid)), "recursive": "true"}):
            pass

    def has(self, cid: Cid | str) -> bool:
        """Whether the node holds the root block of `cid` locally (it is not fetched)."""
        # Kubo answers at once with offline=true; js-ipfs ignores it and looks until `timeout`.
        wait = min(_HAS_TIMEOUT, self.timeout / 2)
        params = {"arg": str(as_cid(cid)), "offline": "true", "timeout": f"{wait:g}s"}
        with self._call("block/stat", params, missing_ok=True) as resp:
            return resp.status_code == 200

    def _body(self, resp: requests.Response, endpoint: str) -> bytes:
        """The reply's body: at most `_REPLY_BYTES`, whole within `timeout`, or a StoreError (a
        node that streams without end or trickles a byte at a time must not hold a worker)."""
        try:
            body = read_reply(resp, _REPLY_BYTES, time.monotonic() + self.timeout)
        except requests.Timeout:
            raise StoreError(
                f"IPFS node at {self.url} took over {self.timeout:g} s to answer "
                f"{endpoint}: it may be overloaded; try again"
            ) from None
        except requests.RequestException as exc:
            raise StoreError(
                f"IPFS node at {self.url} broke off its answer to {endpoint} "
                f"({one_line(str(exc), 120)}): check that it is running and try again"
            ) from None
        if len(body) > _REPLY_BYTES:
            raise StoreError(
                f"IPFS node at {self.url} said more than {_REPLY_BYTES} bytes in answer "
                f"to {endpoint}: is this URL an IPFS RPC API (usually port 5001)?"
            )
        return body

    def _json(self, resp: requests.Response, endpoint: str) -> dict[str, object]:
        try:
            reply = loads_json(self._body(resp, endpoint))
        except ValueError:
            reply = None
        if not isinstance(reply, dict):
            raise StoreError(
                f"IPFS node at {self.url} gave an unreadable answer to {endpoint}: "
                "is this URL an IPFS RPC API (usually port 5001)?"
            )
        return reply

    def _call(
        self,
        endpoint: str,
        params: dict[str, str],
        *,
        data: _MultipartBody | None = None,
        headers: dict[str, str] | None = None,
        missing_ok: bool = False,
    ) -> requests.Response:
        """POST to /api/v0/<endpoint>, trying again on connection failures; raise StoreError.
        The reply streams: read it with `_body` (bounded) unless it is `cat`'s content.

        With `missing_ok`, a 500 (how Kubo reports "not found") is returned instead of raised.
        """
        url = f"{self.url}/api/v0/{endpoint}"
        for attempt in range(self.tries):
            try:
                resp = self._session.post(
                    url,
                    params=params,
                    data=data,
                    headers=headers,
                    stream=True,
                    timeout=(self.connect_timeout, self.timeout),
                )
                break
            except requests.ConnectionError as exc:
                if attempt + 1 == self.tries:
                    reason = _connection_reason(exc)
                    raise StoreError(
                        f"IPFS node at {self.url} is unreachable ({reason}): "
                        "start an IPFS node there or check the IPFS URL",
                        setting="ipfs",
                    ) from None
                time.sleep(self.backoff * 2**attempt)
            except requests.Timeout:
                raise StoreError(
                    f"IPFS node at {self.url} did not answer {endpoint} within {self.timeout:g} s: "
                    "it may be overloaded or looking for content it does not have"
                ) from None
            except requests.RequestException as exc:
                raise StoreError(
                    f"IPFS request {endpoint} to {self.url} failed: {one_line(str(exc))}"
                ) from None
        if resp.status_code == 200 or (missing_ok and resp.status_code == 500):
            return resp
        with resp:
            body = self._body(resp, endpoint)
            try:
                message = str(loads_json(body).get("Message", ""))
            except (ValueError, AttributeError):
                message = body.decode("utf-8", "replace")
        raise StoreError(
            f"IPFS node at {self.url} refused {endpoint} (HTTP {resp.status_code}): "
            f"{one_line(message) or 'no reason given'}"
        )


def open_store(
    ipfs: str | None, directory: Path, max_bytes: int = DEFAULT_LIMITS.content_bytes
) -> ContentStore:
    """The IPFS node at the RPC URL `ipfs`, or else the LocalStore in `directory`."""
    return (
        KuboStore(ipfs, max_bytes=max_bytes) if ipfs else LocalStore(directory, max_bytes=max_bytes)
    )
