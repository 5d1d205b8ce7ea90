"""Real dev services for integration tests: one js-ipfs node and one ganache chain per session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from trainer.services import RunningService, start_ganache, start_ipfs


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
