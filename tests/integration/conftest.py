"""Real dev services for integration tests: one js-ipfs node per session, and dev chains on both
engines (ganache, and anvil mining per transaction or on a 2 s clock like an L2)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from derelay.trainer.services import RunningService, start_anvil, start_ganache, start_ipfs


@pytest.fixture(scope="session")
def ipfs_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    """The dev IPFS node (js-ipfs, offline) with a fresh repo; stopped after the session."""
    base = tmp_path_factory.mktemp("ipfs")
    service = start_ipfs(base / "repo", log_path=base / "daemon.log")
    yield service
    service.stop()


@pytest.fixture(scope="session")
def ganache_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    """The dev chain (ganache, in memory, chain id 1337); stopped after the session."""
    base = tmp_path_factory.mktemp("ganache")
    service = start_ganache(None, log_path=base / "ganache.log")
    yield service
    service.stop()


@pytest.fixture(scope="session")
def anvil_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    """The dev chain on anvil (in memory, chain id 31337, a block per transaction, the project's
    dev accounts); stopped after the session."""
    base = tmp_path_factory.mktemp("anvil")
    service = start_anvil(None, log_path=base / "anvil.log")
    yield service
    service.stop()


@pytest.fixture
def anvil_2s(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    """A fresh anvil mining a block every 2 s, as an L2 does (its own chain: reorgs and fee
    spikes in one test do not reach another); stopped after the test."""
    base = tmp_path_factory.mktemp("anvil2s")
    service = start_anvil(None, block_time=2, log_path=base / "anvil.log")
    yield service
    service.stop()


@pytest.fixture(scope="session")
def chain_node(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningService]:
    """The session's dev chain on the engine `--engine` names (ganache unless told): `make test`
    runs the suite on ganache, `make test-all` on both. anvil mines a block a second here, as a
    real chain does: mining only per transaction, its clock would stand still while workers wait
    for a window to close."""
    if request.config.getoption("--engine") == "ganache":
        yield request.getfixturevalue("ganache_node")
        return
    base = tmp_path_factory.mktemp("anvil-clock")
    service = start_anvil(None, block_time=1, log_path=base / "anvil.log")
    yield service
    service.stop()


@pytest.fixture(params=["ganache", "anvil"])
def dev_chain(request: pytest.FixtureRequest) -> RunningService:
    """The session's dev chain on each engine in turn."""
    return request.getfixturevalue(f"{request.param}_node")
