"""Shared fixtures: the in-process chain, funded accounts, a deployed contract and a task."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from eth_account import Account

from derelay.lab.harness import EmbeddedChain as Chain
from derelay.lab.harness import clients_for, start_chain
from derelay.trainer.chain import ChainClient
from derelay.trainer.contract import DeRelayContract

ETH = 10**18
# Fixed keys: tests read as prepare, act, check against known addresses.
TEST_KEYS = [f"0x{i:064x}" for i in range(0x1001, 0x1001 + 16)]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--slow", action="store_true", help="also run tests marked slow")
    parser.addoption(
        "--engine",
        choices=["ganache", "anvil"],
        default=os.environ.get("DERELAY_ENGINE", "ganache"),
        help="the dev chain the integration tests run on (default: $DERELAY_ENGINE or ganache)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--slow") or os.environ.get("DERELAY_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow: run with --slow or DERELAY_SLOW=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


# A test that measures the size of its own campaign (calls, cases, seed) reports it with
# `record_property(CI_FIGURE, "...")`; the figures travel from xdist workers in the reports and
# are printed once at the end of the run, so a CI log shows what ran and how to replay it.
CI_FIGURE = "ci_figure"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    figures = [
        value
        for report in terminalreporter.getreports("passed") + terminalreporter.getreports("failed")
        for key, value in report.user_properties
        if key == CI_FIGURE
    ]
    if figures:
        terminalreporter.section("campaign sizes")
        for figure in figures:
            terminalreporter.write_line(str(figure))


@pytest.fixture(scope="session")
def session_chain() -> Chain:
    return start_chain([Account.from_key(key) for key in TEST_KEYS])


@pytest.fixture
def chain(session_chain: Chain) -> Iterator[Chain]:
    """The session chain, reverted to its state before the test when the test ends."""
    snapshot = session_chain.tester.take_snapshot()
    yield session_chain
    session_chain.tester.revert_to_snapshot(snapshot)


@pytest.fixture
def clients(chain: Chain) -> list[ChainClient]:
    return clients_for(chain.w3, [Account.from_key(k) for k in TEST_KEYS])


@pytest.fixture
def relay(clients: list[ChainClient]) -> DeRelayContract:
    """A freshly deployed DeRelay contract, seen by the publisher (clients[0])."""
    return DeRelayContract.deploy(clients[0])
