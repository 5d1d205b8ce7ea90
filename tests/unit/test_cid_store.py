"""CIDs, the UnixFS DAG builder and LocalStore, checked against CIDs from a real IPFS node."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from derelay.trainer.cid import (
    CHUNK_SIZE,
    DAG_PB,
    MAX_LINKS,
    RAW,
    Cid,
    decode_file_node,
    unixfs_cid,
    unixfs_dag,
    unixfs_root,
)
from derelay.trainer.errors import CidError, ConfigError, StoreError
from derelay.trainer.store import KuboStore, LocalStore

C = CHUNK_SIZE
SIZES = [0, 1, C - 1, C, C + 1, 174 * C, 174 * C + 1, 175 * C + 7]
_DATA = hashlib.shake_256(b"derelay-cid-vector").digest(max(SIZES))


def data_of(size: int) -> bytes:
    """The test file of `size` bytes: the first `size` bytes of SHAKE-256("derelay-cid-vector")."""
    return _DATA[:size]


# Expected CIDs of data_of(size). They came from the dev IPFS node (npm `ipfs` 0.66.1, js-ipfs
# core 0.18.1) via `POST /api/v0/add?cid-version=1&raw-leaves=true&chunker=size-262144`, i.e.
# Kubo's defaults for `ipfs add --cid-version=1`; tests/integration/test_ipfs_node.py re-checks
# them against a live node. The empty file gives the raw CID of no bytes, as Kubo does.
VECTORS = {
    0: "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",
    1: "bafkreih74z43xay4sw3h3qlydhddyueq2iq2vrxuy67vgd2zjk2d2ip2dy",
    C - 1: "bafkreigcrc3y6osserqtbk5bt4vr7bwvx5cjcuh2sg4rbretuy4q6sbc4m",
    C: "bafkreido4qsmy6sgtdqgkuyu6mjnuu6s4wvpfmefddbthccnvtir47x2wi",
    C + 1: "bafybeiceh4nbdhqq4wk2jgvak3yxk42zaupsovzgfn7ozc3yznh6pv475y",
    174 * C: "bafybeigd4shzattptjjp6gwwa53o4nzj5bjgl5bwowhyxyloszqwjusrli",
    174 * C + 1: "bafybeicu5hx4j7ldfb236ghnp3klwdn3epp3vpnxiwauei53by6s7gqog4",
    175 * C + 7: "bafybeia3dy3zxcicf5rdn7bu6jgokjy43p5umygwy26q4l44okr6nix7lu",
}


def b32(raw: bytes) -> str:
    return "b" + base64.b32encode(raw).decode().rstrip("=").lower()


# --- CIDs ---------------------------------------------------------------------------------------


def test_cid_text_roundtrip_and_onchain_form():
    for text in VECTORS.values():
        cid = Cid.parse(text)
        assert str(cid) == text
        assert Cid.from_bytes(cid.to_bytes()) == cid
        digest, codec = cid.to_onchain()
        assert len(digest) == 32 and codec in (RAW, DAG_PB)
        assert Cid.from_onchain(digest, codec) == cid
    assert Cid.parse(VECTORS[1]).codec == RAW
    assert Cid.parse(VECTORS[C + 1]).codec == DAG_PB
    assert Cid.of(RAW, b"") == Cid.parse(VECTORS[0])


GOOD = Cid.parse(VECTORS[C + 1])


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty CID"),
        ("QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG", "CIDv0"),
        ("z" + "b2rhe79p26y8hFWtSrp9GrvvD2MPPH7cxfjyRPmNDJhadwms", "base58btc"),
        (str(GOOD).upper(), "base32 upper case"),
        ("x" * 59, "not a CID"),
        ("b" * 300, "300 characters"),
        (str(GOOD)[:-1] + "1", "a-z and 2-7"),
        (str(GOOD) + " ", "a-z and 2-7"),
        (str(GOOD)[:21], "digest is not 32 bytes"),
        (str(GOOD)[:-1], "cut short"),
        (str(GOOD)[:-1] + "z", "not a CID in canonical form"),
        (b32(bytes((0x81, 0x00, 0x55, 0x12, 0x20)) + bytes(32)), "canonical form"),
        (b32(bytes((1, 0x71, 0x12, 0x20)) + bytes(32)), "codec 0x71"),
        (b32(bytes((1, 0x55, 0x13, 0x40)) + bytes(64)), "0x13 (sha2-512) is not supported"),
        (b32(bytes((1, 0x55, 0xA0, 0xE4, 0x02, 0x20)) + bytes(32)), "0xb220 (blake2b-256)"),
        (b32(bytes((1, 0x55, 0x12, 0x1F)) + bytes(31)), "digest is not 32 bytes"),
        (b32(bytes((2, 0x55, 0x12, 0x20)) + bytes(32)), "version 2"),
    ],
)
def test_parse_refuses_clearly(text, fragment):
    with pytest.raises(CidError) as info:
        Cid.parse(text)
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message and len(message) < 400


def test_parse_refuses_non_strings_and_cid_checks_fields():
    with pytest.raises(CidError, match="must be a string"):
        Cid.parse(b"bafy")  # type: ignore[arg-type]
    with pytest.raises(CidError, match="codec 0x71"):
        Cid(0x71, bytes(32))
    with pytest.raises(CidError, match="32 bytes"):
        Cid(RAW, bytes(31))


# --- the UnixFS DAG -----------------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
def test_cid_matches_ipfs_node(size):
    assert str(unixfs_cid(data_of(size))) == VECTORS[size]


def test_dag_shape_and_blocks():
    size = 175 * C + 7
    root, blocks = unixfs_dag(data_of(size))
    assert str(root) == VECTORS[size]
    for cid, block in blocks.items():
        assert Cid.of(cid.codec, block) == cid
    # 176 leaves, two nodes above them (174 + 2 links), and the root above those.
    assert sum(cid.codec == RAW for cid in blocks) == 176
    top = decode_file_node(blocks[root])
    assert top.filesize == size and len(top.links) == 2
    first, second = (decode_file_node(blocks[link.cid]) for link in top.links)
    assert len(first.links) == MAX_LINKS and len(second.links) == 2
    assert top.blocksizes == (MAX_LINKS * C, C + 7)
    assert top.links[0].tsize == len(blocks[top.links[0].cid]) + MAX_LINKS * C


@pytest.mark.parametrize("size", SIZES)
def test_root_of_the_leaves_is_the_cid_of_the_file(size):
    data = data_of(size)
    offsets = range(0, max(size, 1), C)
    leaves = [(Cid.of(RAW, data[o : o + C]), len(data[o : o + C])) for o in offsets]
    assert str(unixfs_root(leaves)) == VECTORS[size]


def test_single_chunk_is_one_raw_block():
    root, blocks = unixfs_dag(data_of(C))
    assert root.codec == RAW and blocks == {root: data_of(C)}


# --- LocalStore ---------------------------------------------------------------------------------


def pack_files(store: LocalStore) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in (store.root / "packs").iterdir()}


def old_store(root: Path, data: bytes) -> Cid:
    """Write `data` the way the store did before packs: each block of its DAG a file in `blocks`."""
    (root / "blocks").mkdir(parents=True, exist_ok=True)
    cid, blocks = unixfs_dag(data)
    for name, block in blocks.items():
        (root / "blocks" / str(name)).write_bytes(block)
    return cid


@pytest.mark.parametrize("size", [0, 1, C - 1, C, C + 1, 175 * C + 7])
def test_local_store_roundtrip(tmp_path, size):
    store = LocalStore(tmp_path)
    cid = store.add(data_of(size))
    assert str(cid) == VECTORS[size]
    assert store.has(cid) and store.has(str(cid))
    assert store.get(cid) == data_of(size)
    assert store.get(str(cid)) == data_of(size)
    assert store.add(data_of(size)) == cid  # adding again is harmless


def test_local_store_pins(tmp_path):
    store = LocalStore(tmp_path)
    a, b = store.add(b"a"), store.add(data_of(C + 1))
    assert store.pinned() == []
    store.pin(b)
    store.pin(str(a))
    store.pin(a)
    assert store.pinned() == sorted([a, b], key=str)
    assert LocalStore(tmp_path).pinned() == store.pinned()  # pins persist
    with pytest.raises(StoreError, match="cannot pin .* add or fetch it first"):
        store.pin(unixfs_cid(b"never added"))


def test_local_store_missing_content(tmp_path):
    store = LocalStore(tmp_path)
    missing = unixfs_cid(b"never added")
    assert not store.has(missing)
    with pytest.raises(StoreError, match="not in the local store") as info:
        store.get(missing)
    assert not isinstance(info.value, CidError)
    cid = store.add(data_of(2 * C))
    (tmp_path / "packs" / str(cid)).unlink()
    assert not store.has(cid)
    with pytest.raises(StoreError, match=f"cannot get {cid}: it is not in the local store"):
        store.get(cid)


@pytest.mark.parametrize("size", [1, C + 1, 3 * C])
@pytest.mark.parametrize("damage", ["flip", "cut", "grow"])
def test_a_damaged_pack_is_refused_and_adding_again_repairs_it(tmp_path, size, damage):
    store = LocalStore(tmp_path)
    data = data_of(size)
    cid = store.add(data)
    pack = tmp_path / "packs" / str(cid)
    damaged = {
        "flip": data[:-1] + bytes([data[-1] ^ 1]),
        "cut": data[: size // 2],
        "grow": data + b"!",
    }
    pack.write_bytes(damaged[damage])
    with pytest.raises(CidError, match="does not hash to its CID: the file was altered on disk"):
        store.get(cid)
    assert store.add(data) == cid
    assert store.get(cid) == data and pack.read_bytes() == data


def test_max_bytes_is_enforced(tmp_path):
    store = LocalStore(tmp_path)
    big = store.add(data_of(3 * C))
    small = store.add(data_of(100))
    with pytest.raises(StoreError, match=f"{big} holds {3 * C} bytes, more than the limit of {C}"):
        store.get(big, max_bytes=C)
    with pytest.raises(StoreError, match="more than the limit of 99"):
        store.get(small, max_bytes=99)
    assert store.get(small, max_bytes=100) == data_of(100)
    limited = LocalStore(tmp_path, max_bytes=2 * C)
    with pytest.raises(StoreError, match="more than the limit"):
        limited.get(big)


def test_writes_are_atomic(tmp_path, monkeypatch):
    store = LocalStore(tmp_path)
    cid = store.add(data_of(2 * C + 5))
    store.pin(cid)
    names = [p.name for d in ("packs", "pins") for p in (tmp_path / d).iterdir()]
    assert names and not [n for n in names if n.startswith(".tmp-")]
    assert list((tmp_path / "tmp").iterdir()) == []
    before = pack_files(store)
    written = []
    pwrite = os.pwrite

    def disk_full_at_the_third_leaf(fd: int, data: memoryview, offset: int) -> int:
        written.append(offset)
        if len(written) == 3:
            raise OSError(28, "No space left on device")
        return pwrite(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", disk_full_at_the_third_leaf)
    with pytest.raises(StoreError, match="No space left on device; free some disk space"):
        store.add(data_of(9 * C + 9))
    assert len(written) >= 3
    assert pack_files(store) == before  # a failed add names no pack
    assert list((tmp_path / "tmp").iterdir()) == []  # and its temp file is gone


@pytest.mark.parametrize(("call", "named"), [("fdatasync", 0), ("fsync", 1)])
def test_a_failed_sync_leaves_only_whole_packs(tmp_path, monkeypatch, call, named):
    # A failed data sync names nothing; a failed directory sync comes after the rename.
    store = LocalStore(tmp_path)

    def io_error(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, call, io_error)
    with pytest.raises(StoreError, match="Input/output error"):
        store.add(data_of(3 * C))
    packs = pack_files(store)
    assert len(packs) == named
    assert all(str(unixfs_cid(pack)) == name for name, pack in packs.items())
    assert list((tmp_path / "tmp").iterdir()) == []


@pytest.mark.parametrize("size", [0, C, 3 * C + 1, 175 * C + 7])
def test_add_writes_one_pack_holding_exactly_the_file(tmp_path, size):
    store = LocalStore(tmp_path)
    assert store.add(data_of(size)) == unixfs_cid(data_of(size))
    assert pack_files(store) == {str(unixfs_cid(data_of(size))): data_of(size)}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["packs", "pins", "tmp"]
    assert list((tmp_path / "tmp").iterdir()) == []


def test_files_sharing_leaves_and_content_added_twice(tmp_path):
    store = LocalStore(tmp_path)
    shared = data_of(3 * C)
    first, second = shared + b"first", shared + b"second"
    one, two = store.add(first), store.add(second)
    assert store.add(first) == one  # the same content again
    single = store.add(shared[:C])  # a leaf of both files, added on its own
    assert len({one, two, single}) == 3 and len(pack_files(store)) == 3
    assert (store.get(one), store.get(two), store.get(single)) == (first, second, shared[:C])
    (tmp_path / "packs" / str(one)).unlink()
    assert store.get(two) == second  # each file's pack stands alone


def test_blocks_of_an_older_store_are_still_read(tmp_path):
    data = data_of(175 * C + 7)
    cid = old_store(tmp_path, data)
    store = LocalStore(tmp_path)
    assert store.has(cid) and store.get(cid) == data
    store.pin(cid)
    assert store.pinned() == [cid]
    with pytest.raises(StoreError, match="more than the limit of 100"):
        store.get(cid, max_bytes=100)
    assert store.add(data) == cid and pack_files(store) == {str(cid): data}
    assert store.get(cid) == data


def test_an_older_store_missing_or_damaged_block_is_refused(tmp_path):
    data = data_of(12 * C)
    cid = old_store(tmp_path, data)
    store = LocalStore(tmp_path)
    leaves = [c for c in unixfs_dag(data)[1] if c.codec == RAW]
    (tmp_path / "blocks" / str(leaves[7])).unlink()
    assert not store.has(cid)
    with pytest.raises(StoreError, match=f"its block {leaves[7]} is not in the local store"):
        store.get(cid)
    second = tmp_path / "blocks" / str(leaves[1])
    second.write_bytes(b"x" + second.read_bytes()[1:])
    with pytest.raises(CidError, match=f"block {second} does not hash to its CID"):
        store.get(cid)  # the first bad leaf in file order
    root = tmp_path / "blocks" / str(cid)
    root.write_bytes(root.read_bytes()[:-1] + b"!")
    assert not store.has(cid)
    with pytest.raises(CidError, match="altered on disk"):
        store.get(cid)
    assert store.add(data) == cid and store.get(cid) == data  # adding again writes a pack


def test_temp_files_of_dead_processes_are_swept(tmp_path):
    LocalStore(tmp_path)
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    dead, alive = int(done.stdout), os.getpid()
    for name in (f"{dead}.0", f"{dead}.1", f"{alive}.7", "notes"):
        (tmp_path / "tmp" / name).write_bytes(b"partial")
    LocalStore(tmp_path)
    assert sorted(p.name for p in (tmp_path / "tmp").iterdir()) == [f"{alive}.7", "notes"]


def test_store_dir_must_be_writable(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="cannot create the local store"):
        LocalStore(tmp_path / "file" / "store")


# --- KuboStore, without a node ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "url"),
    [
        ("http://127.0.0.1:5001/", "http://127.0.0.1:5001"),
        ("http://localhost:5001/api/v0", "http://localhost:5001"),
        ("/ip4/127.0.0.1/tcp/5001", "http://127.0.0.1:5001"),
        ("/ip6/::1/tcp/5001/http", "http://[::1]:5001"),
        ("https://ipfs.example.org", "https://ipfs.example.org"),
    ],
)
def test_kubo_url_forms(given, url):
    assert KuboStore(given).url == url


def test_kubo_bad_url_is_a_config_error():
    with pytest.raises(ConfigError, match="not an IPFS RPC address"):
        KuboStore("127.0.0.1:5001")


def test_kubo_unreachable_node_is_one_clear_line(unused_port):
    store = KuboStore(f"http://127.0.0.1:{unused_port}", tries=2, backoff=0.01)
    with pytest.raises(StoreError) as info:
        store.get(unixfs_cid(b"x"))
    assert str(info.value) == (
        f"IPFS node at http://127.0.0.1:{unused_port} is unreachable (Connection refused): "
        "start an IPFS node there or check the IPFS URL"
    )
    assert info.value.setting == "ipfs"


@pytest.fixture
def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class FakeNode:
    """A stand-in RPC API: `replies` maps an endpoint to (status, headers, body)."""

    def __init__(self) -> None:
        self.replies: dict[str, tuple[int, dict[str, str], bytes]] = {}
        self.trickle = 0.0  # seconds between bytes of a body; 0: all at once
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                endpoint = self.path.split("?")[0].removeprefix("/api/v0/")
                status, headers, body = fake.replies[endpoint]
                self.send_response(status)
                for name, value in {"Content-Length": str(len(body)), **headers}.items():
                    self.send_header(name, value)
                self.end_headers()
                if not fake.trickle:
                    self.wfile.write(body)
                for byte in body if fake.trickle else b"":
                    time.sleep(fake.trickle)
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.store = KuboStore(f"http://127.0.0.1:{self.server.server_address[1]}", progress=False)
        serve = self.server.serve_forever
        threading.Thread(target=serve, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake() -> Iterator[FakeNode]:
    node = FakeNode()
    yield node
    node.close()


@pytest.mark.parametrize("size", [5, C + 1])
def test_kubo_get_verifies_the_bytes(fake, size):
    data = data_of(size)
    cid = unixfs_cid(data)
    fake.replies["cat"] = (200, {}, data)
    assert fake.store.get(cid) == data
    fake.replies["cat"] = (200, {}, data[:-1] + b"?")
    with pytest.raises(CidError) as info:
        fake.store.get(cid)
    assert str(info.value).startswith(
        f"bytes from {fake.store.url} do not hash to {cid}; the node or a proxy altered them: "
    )
    fake.replies["cat"] = (200, {"X-Content-Length": str(size + 1)}, data)
    with pytest.raises(StoreError, match=f"sent {size} of the {size + 1} bytes"):
        fake.store.get(cid)
    with pytest.raises(StoreError, match="more than the limit of 4"):
        fake.store.get(cid, max_bytes=4)


def test_kubo_add_checks_the_node_cid(fake):
    data = data_of(C + 1)
    reply = {"Name": "blob", "Hash": str(unixfs_cid(data)), "Size": str(C + 1)}
    fake.replies["add"] = (200, {}, json.dumps(reply).encode() + b"\n")
    assert fake.store.add(data) == unixfs_cid(data)
    reply["Hash"] = VECTORS[1]
    fake.replies["add"] = (200, {}, json.dumps(reply).encode())
    with pytest.raises(CidError, match=f"named the bytes {VECTORS[1]}, but"):
        fake.store.add(data)
    reply["Hash"] = "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG"
    fake.replies["add"] = (200, {}, json.dumps(reply).encode())
    with pytest.raises(StoreError, match="answered add with a bad CID: .* is a CIDv0"):
        fake.store.add(data)


def test_kubo_node_errors_are_one_line(fake):
    error = {"Message": "pin: merkledag: not found", "Code": 0, "Type": "error"}
    fake.replies["pin/add"] = (500, {}, json.dumps(error).encode())
    with pytest.raises(StoreError) as info:
        fake.store.pin(VECTORS[1])
    assert str(info.value) == (
        f"IPFS node at {fake.store.url} refused pin/add (HTTP 500): pin: merkledag: not found"
    )
    fake.replies["block/stat"] = (500, {}, json.dumps(error).encode())
    assert not fake.store.has(VECTORS[1])
    fake.replies["block/stat"] = (200, {}, b'{"Key": "x", "Size": 1}')
    assert fake.store.has(VECTORS[1])
    fake.replies["version"] = (404, {}, b"404 page not found\n")
    with pytest.raises(StoreError, match=r"refused version \(HTTP 404\): 404 page not found$"):
        fake.store.version()


def test_kubo_replies_are_bounded_in_size_and_time(fake):
    too_long = 70 * 1024
    fake.replies["version"] = (200, {}, b'{"Version": "' + b"9" * too_long + b'"}')
    with pytest.raises(StoreError, match="said more than 65536 bytes in answer to version: "):
        fake.store.version()
    fake.replies["add"] = (200, {}, b"\n" * too_long)
    with pytest.raises(StoreError, match="said more than 65536 bytes in answer to add: "):
        fake.store.add(b"data")
    fake.replies["pin/add"] = (500, {}, b"e" * 8 * 1024 * 1024)
    with pytest.raises(StoreError, match="said more than 65536 bytes in answer to pin/add: "):
        fake.store.pin(VECTORS[1])
    fake.replies["version"] = (200, {}, b'{"Version": "' + b"9" * 300 + b'"}')
    fake.trickle, fake.store.timeout = 0.01, 0.5  # the whole body takes over 3 s to trickle in
    started = time.monotonic()
    with pytest.raises(StoreError, match=r"took over 0.5 s to answer version: "):
        fake.store.version()
    assert time.monotonic() - started < 2.5  # refused at the deadline, not after the whole body
