"""The content store against the real dev IPFS node (js-ipfs speaking the Kubo RPC API)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from derelay.trainer.cid import CHUNK_SIZE, unixfs_cid
from derelay.trainer.errors import CidError, StoreError
from derelay.trainer.services import RunningService, free_port, start_ganache, start_ipfs
from derelay.trainer.store import KuboStore, LocalStore
from tests.unit.test_cid_store import SIZES, VECTORS, data_of

pytestmark = pytest.mark.integration

C = CHUNK_SIZE
EXPLICIT = {"cid-version": "1", "raw-leaves": "true", "chunker": f"size-{C}", "cid-base": "base32"}


def node_add(url: str, data: bytes, params: dict[str, str]) -> str:
    """Add through the node's own importer and return the CID it reports."""
    part = ("blob", data, "application/octet-stream")  # js-ipfs needs the part's content type
    resp = requests.post(
        f"{url}/api/v0/add", params={**params, "pin": "false"}, files={"file": part}, timeout=120
    )
    resp.raise_for_status()
    return resp.json()["Hash"]


@pytest.fixture
def kubo(ipfs_node: RunningService) -> Iterator[KuboStore]:
    store = KuboStore(ipfs_node.url, progress=False)
    yield store
    store.close()


@pytest.mark.parametrize("size", SIZES)
def test_node_and_local_store_agree(ipfs_node, tmp_path, size):
    data = data_of(size)
    assert node_add(ipfs_node.url, data, EXPLICIT) == VECTORS[size]
    assert str(LocalStore(tmp_path).add(data)) == VECTORS[size]


def test_cid_version_1_alone_implies_the_same_settings(ipfs_node):
    # As in Kubo, --cid-version=1 alone turns on raw leaves; the chunker default is 256 KiB.
    size = 175 * C + 7
    assert (
        node_add(ipfs_node.url, data_of(size), {"cid-version": "1", "cid-base": "base32"})
        == (VECTORS[size])
    )


@pytest.mark.parametrize("size", [0, 1, C, C + 1, 175 * C + 7])
def test_kubo_store_roundtrip(kubo, size):
    data = data_of(size)
    cid = kubo.add(data)
    assert str(cid) == VECTORS[size]
    assert kubo.has(cid)
    assert kubo.get(cid) == data
    assert kubo.get(str(cid)) == data
    kubo.pin(cid)
    assert kubo.version()


def test_content_moves_between_backends(kubo, tmp_path):
    local = LocalStore(tmp_path)
    data = data_of(3 * C + 11)
    cid = local.add(data)
    assert kubo.add(local.get(cid)) == cid
    other = LocalStore(tmp_path / "other")
    assert other.add(kubo.get(cid)) == cid


def test_unknown_content(ipfs_node):
    missing = unixfs_cid(b"nobody ever added this")
    store = KuboStore(ipfs_node.url, timeout=2, progress=False)
    assert not store.has(missing)
    with pytest.raises(StoreError, match="did not answer cat within 2 s"):
        store.get(missing)


def test_max_bytes_is_enforced(kubo):
    cid = kubo.add(data_of(2 * C))
    with pytest.raises(StoreError, match=f"more than the limit of {C}"):
        kubo.get(cid, max_bytes=C)


class TamperingProxy:
    """Forwards the RPC API to a node, flipping one byte in `cat` replies or in `add` uploads."""

    def __init__(self, target: str, endpoint: str) -> None:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                tamper = self.path.startswith(f"/api/v0/{endpoint}")
                if tamper and endpoint == "add":
                    body = proxy.flip(body)
                headers = {"Content-Type": self.headers.get("Content-Type", "")}
                resp = requests.post(target + self.path, data=body, headers=headers, timeout=60)
                content = resp.content
                if tamper and endpoint == "cat":
                    content = proxy.flip(content)
                self.send_response(resp.status_code)
                for name in ("Content-Type", "X-Content-Length"):
                    if name in resp.headers:
                        self.send_header(name, resp.headers[name])
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.flipped = 0
        serve = self.server.serve_forever
        self.thread = threading.Thread(target=serve, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def flip(self, data: bytes) -> bytes:
        if not data:
            return data
        self.flipped += 1
        middle = len(data) // 2
        return data[:middle] + bytes([data[middle] ^ 0x01]) + data[middle + 1 :]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.mark.parametrize("size", [1000, 3 * C + 5])
def test_tampered_cat_is_refused(kubo, ipfs_node, size):
    cid = kubo.add(data_of(size))
    proxy = TamperingProxy(ipfs_node.url, "cat")
    try:
        with pytest.raises(CidError) as info:
            KuboStore(proxy.url, progress=False).get(cid)
    finally:
        proxy.close()
    assert proxy.flipped == 1
    assert str(info.value).startswith(
        f"bytes from {proxy.url} do not hash to {cid}; the node or a proxy altered them: "
    )


def test_tampered_add_is_refused(ipfs_node):
    proxy = TamperingProxy(ipfs_node.url, "add")
    data = data_of(2 * C + 3)
    try:
        with pytest.raises(CidError, match=f"named the bytes .* gives {unixfs_cid(data)}"):
            KuboStore(proxy.url, progress=False).add(data)
    finally:
        proxy.close()
    assert proxy.flipped == 1


def test_stopped_node_is_a_clear_error_and_restart_keeps_content(tmp_path):
    repo, port = tmp_path / "repo", free_port()
    node = start_ipfs(repo, port)
    try:
        store = KuboStore(node.url, tries=2, backoff=0.05, progress=False)
        cid = store.add(data_of(C + 1))
    finally:
        node.stop()
    assert not node.running()
    with pytest.raises(ProcessLookupError):
        os.killpg(node.pid, 0)  # the whole process group is gone
    unreachable = (
        f"IPFS node at {node.url} is unreachable (Connection refused): "
        "start an IPFS node there or check the IPFS URL"
    )
    for call in (lambda: store.get(cid), lambda: store.add(b"x"), lambda: store.has(cid)):
        with pytest.raises(StoreError) as info:
            call()
        assert str(info.value) == unreachable
    with start_ipfs(repo, port) as again:
        assert KuboStore(again.url, progress=False).get(cid) == data_of(C + 1)


def test_start_refuses_a_busy_port_and_reports_a_failed_start(ipfs_node, tmp_path):
    busy = int(ipfs_node.url.rsplit(":", 1)[1])
    with pytest.raises(StoreError, match=f"port {busy} on 127.0.0.1 is already in use"):
        start_ipfs(tmp_path / "repo", busy)
    (tmp_path / "not-a-dir").write_text("x")
    with pytest.raises(StoreError, match="exited with code 1 while starting"):
        start_ipfs(tmp_path / "not-a-dir", timeout=20)


def rpc(url: str, method: str) -> object:
    payload = {"jsonrpc": "2.0", "id": 1, "method": method, "params": []}
    return requests.post(url, json=payload, timeout=10).json()["result"]


def test_the_dev_chain_answers_with_its_chain_id(chain_node, request):
    expected = {"ganache": 1337, "anvil": 31337}[request.config.getoption("--engine")]
    assert int(str(rpc(chain_node.url, "eth_chainId")), 16) == expected
    assert len(rpc(chain_node.url, "eth_accounts")) == 10  # type: ignore[arg-type]


def test_persistent_ganache_keeps_its_chain(tmp_path):
    db: Path = tmp_path / "chain"
    with start_ganache(db, chain_id=4242, accounts=2) as chain:
        rpc(chain.url, "evm_mine")
        assert int(str(rpc(chain.url, "eth_blockNumber")), 16) == 1
    assert not chain.running()
    with start_ganache(db, chain_id=4242, accounts=2) as chain:
        assert int(str(rpc(chain.url, "eth_blockNumber")), 16) == 1
