"""The dashboard against real chains: ganache over JSON-RPC with headless Chromium reading the page,
and the embedded chain in process (the API alone).

The browser test runs accepted, rejected and void rounds and a model payment on ganache, opens the
page, checks that the chart, the lineage, the rounds, the queue and the payouts show what the chain
holds, then accepts one more round and waits for the page to show it. It needs Debian's chromium
(`apt-get install -y chromium`) and the `playwright` Python package (driving the system browser;
`playwright install` is never run). Set DERELAY_DASHBOARD_SCREENSHOT=<path> to keep a screenshot.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from eth_tester import EthereumTester, PyEVMBackend
from web3 import EthereumTesterProvider, Web3

from deploy.dashboard import open_dashboard, serve_dashboard
from deploy.deployer import deploy_contract
from deploy.payouts import task_payouts
from trainer.chain import ChainClient, connect
from trainer.cid import Cid
from trainer.contract import (
    ETHER,
    DeRelayContract,
    Status,
    TaskParams,
    commitment_for,
    decoder_for,
)
from trainer.errors import ConfigError
from trainer.keys import dev_account

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PARAMS = dict(quorum=2, max_validators=3, commit_window=60, reveal_window=60, turn_duration=600)


def _cid(label: str) -> bytes:
    return bytes([0x01, 0x55, 0x12, 0x20]) + hashlib.sha256(label.encode()).digest()


class Relay:
    """A task on a chain and the accounts that play it: two relayers, two validators, a keeper."""

    def __init__(
        self, publisher: DeRelayContract, views: list[DeRelayContract], advance, parallel: bool
    ) -> None:
        self.publisher = publisher
        self.relayers = views[0:2]
        self.validators = views[2:4]
        self.keeper = views[4]
        self.consumer = views[5]
        self.advance = advance
        self.parallel = parallel  # eth-tester is not thread-safe: one transaction at a time there
        self.params = TaskParams(
            spec_cid=_cid("spec"), genesis_cid=_cid("genesis"), genesis_score=5000, **PARAMS
        )
        self.task = publisher.create_task(self.params, funding=2 * ETHER)
        stake = 2 * self.params.min_stake  # survives one rejection's slash
        self._parallel(
            lambda v: v.register_validator(self.task, 2 * self.params.validator_stake),
            self.validators,
        )
        for relayer in self.relayers:  # join in a known order
            relayer.join_relay(self.task, stake)

    def _parallel(self, fn, items) -> None:
        if not self.parallel:
            for item in items:
                fn(item)
            return
        with ThreadPoolExecutor(len(items)) as pool:
            list(pool.map(fn, items))

    def round(self, scores: tuple[int | None, int], label: str) -> None:
        """The holder submits; the validators commit and reveal `scores` (None: never reveals)."""
        state = self.publisher.task_state(self.task)
        holder = next(r for r in self.relayers if r.client.address == state.holder)
        holder.submit_relay(
            self.task, state.round, state.head_cid[4:], _cid(label), _cid(label + "/card"),
            bytes(32), 500,
        )  # fmt: skip
        ballots = [
            (v, score, os.urandom(32)) for v, score in zip(self.validators, scores, strict=True)
        ]
        self._parallel(
            lambda b: b[0].commit_score(
                self.task,
                state.round,
                commitment_for(self.task, state.round, b[1] or 0, b[2], b[0].client.address),
            ),
            ballots,
        )
        self.advance(self.params.commit_window + 1)
        revealing = [b for b in ballots if b[1] is not None]
        self._parallel(lambda b: b[0].reveal_score(self.task, state.round, b[1], b[2]), revealing)
        if len(revealing) < len(ballots):
            self.advance(self.params.reveal_window + 1)
        self.keeper.finalize(self.task)


def _get_json(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=30) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _chain_rounds(relay: DeRelayContract, task: int) -> dict[int, tuple[int, int]]:
    commits = Counter(e["args"]["round"] for e in relay.events("ScoreCommitted", taskId=task))
    reveals = Counter(e["args"]["round"] for e in relay.events("ScoreRevealed", taskId=task))
    return {r: (commits[r], reveals[r]) for r in set(commits) | set(reveals)}


def _page_state(page) -> dict:
    return page.evaluate(
        """() => ({
        block: document.body.dataset.block,
        accepted: [...document.querySelectorAll('#accuracy-chart circle.pt.accepted')]
            .map(c => Number(c.dataset.round)),
        genesis: document.querySelectorAll('#accuracy-chart circle.pt.genesis').length,
        rejected: [...document.querySelectorAll('#accuracy-chart g.mark.rejected')]
            .map(g => Number(g.dataset.round)),
        void: [...document.querySelectorAll('#accuracy-chart g.mark.void')]
            .map(g => Number(g.dataset.round)),
        lineage: [...document.querySelectorAll('#lineage tbody tr[data-index]')].map(r => ({
            index: Number(r.dataset.index), status: r.dataset.status, cid: r.dataset.cid,
            relayer: r.dataset.relayer})),
        payouts: [...document.querySelectorAll('#payouts tbody tr[data-address]')]
            .map(r => [r.dataset.address, r.dataset.earned]),
        rounds: Object.fromEntries([...document.querySelectorAll('#rounds tbody tr[data-round]')]
            .map(r => [r.dataset.round, [Number(r.dataset.commits), Number(r.dataset.reveals),
                                         r.dataset.outcome]])),
        holder: [...document.querySelectorAll('#queue tbody tr.holder')]
            .map(r => [r.dataset.address, r.innerText]),
        queue: [...document.querySelectorAll('#queue tbody tr[data-address]')]
            .map(r => r.dataset.address),
        poolCheck: document.getElementById('pool-check').innerText,
        poolPoints: document.querySelectorAll('#pool-chart circle.pt').length,
        error: document.getElementById('error').hidden ? null
            : document.getElementById('error').innerText,
    })"""
    )


def _check_page_matches_chain(page, relay: DeRelayContract, task: int) -> dict:
    shown = _page_state(page)
    assert shown["error"] is None
    lineage = relay.full_lineage(task)
    accepted = [e.round for e in lineage if e.status == Status.ACCEPTED]
    assert shown["accepted"] == accepted  # one point per accepted round, in order
    assert shown["genesis"] == 1
    assert shown["rejected"] == [e.round for e in lineage if e.status == Status.REJECTED]
    assert shown["void"] == [e.round for e in lineage if e.status == Status.VOID]
    assert sorted(shown["lineage"], key=lambda r: r["index"]) == [
        {
            "index": e.index,
            "status": e.status.name.lower(),
            "cid": str(Cid.from_bytes(e.cid)),
            "relayer": e.relayer,
        }
        for e in lineage
    ]
    payouts = task_payouts(relay, task)
    assert shown["payouts"] == [[p.address, str(p.earned)] for p in payouts]
    for number, (commits, reveals) in _chain_rounds(relay, task).items():
        assert shown["rounds"][str(number)][:2] == [commits, reveals]
    state = relay.task_state(task)
    assert shown["queue"] == [address for address, _ in relay.queue(task)]
    ((holder, holder_text),) = shown["holder"]
    assert holder == state.holder and "left" in holder_text
    assert "events add up to it" in shown["poolCheck"]
    return shown


def test_dashboard_in_chromium_follows_ganache(ganache_node, tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"chromium is not installed at {CHROMIUM}: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright  # the driver of the system chromium

    started = time.monotonic()

    # prepare: a task with two relayers, two validators, a keeper, and four finalized rounds
    def advance(seconds: int) -> None:
        w3.provider.make_request("evm_increaseTime", [seconds])
        w3.provider.make_request("evm_mine", [])

    w3 = connect(ganache_node.url)
    decoder = decoder_for()
    clients = [ChainClient(connect(ganache_node.url), dev_account(i), decoder) for i in range(7)]
    publisher, _ = deploy_contract(clients[0], tmp_path / "deployments")
    views = [DeRelayContract(c, publisher.address, publisher.abi) for c in clients[1:]]
    relay = Relay(publisher, views, advance, parallel=True)
    relay.round((5600, 5400), "r1")  # relayer A: accepted
    relay.round((2000, 2100), "r2")  # relayer B: rejected, slashed
    relay.round((5900, None), "r3")  # relayer A: void (one reveal), the silent validator slashed
    relay.round((6000, 5900), "r4")  # relayer B: accepted
    relay.consumer.pay_for_model(relay.task, relay.params.usage_fee)

    # the dashboard reads through its own connection and a throwaway account, as the CLI does
    with pytest.raises(ConfigError, match="task 9 does not exist"):
        open_dashboard(ganache_node.url, tmp_path / "deployments", 9)
    server, url = open_dashboard(ganache_node.url, tmp_path / "deployments", None)
    reader = server.dashboard.relay
    try:
        with sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                str(tmp_path / "chromium-profile"),  # a fresh --user-data-dir
                executable_path=CHROMIUM,
                headless=True,
                args=CHROMIUM_FLAGS,
                viewport={"width": 1440, "height": 1000},
            )
            try:
                page = context.new_page()
                page_errors: list[str] = []
                page.on("pageerror", lambda exc: page_errors.append(str(exc)))
                page.goto(url)
                page.wait_for_function("document.body.dataset.block !== undefined", timeout=15_000)

                # check: the page shows what the chain holds
                shown = _check_page_matches_chain(page, reader, relay.task)
                assert shown["accepted"] == [1, 4] and shown["rejected"] == [2]
                assert shown["void"] == [3]
                assert shown["rounds"]["3"] == [2, 1, "void"]
                assert shown["poolPoints"] == 6  # created, four finalizes, the model payment
                assert "task 1" in page.title()

                # act: one more accepted round while the page is open
                relay.round((6400, 6300), "r5")
                page.wait_for_function(
                    "document.querySelectorAll('#accuracy-chart circle.pt.accepted').length === 3",
                    timeout=20_000,
                )
                shown = _check_page_matches_chain(page, reader, relay.task)
                assert shown["accepted"] == [1, 4, 5]
                page.wait_for_timeout(700)  # let the new rows' highlight fade a little
                shot = tmp_path / "dashboard.png"
                page.screenshot(path=str(shot), full_page=True)
                assert shot.stat().st_size > 10_000
                if target := os.environ.get("DERELAY_DASHBOARD_SCREENSHOT"):
                    Path(target).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(shot, target)
                assert page_errors == []
            finally:
                context.close()
    finally:
        server.stop()
    assert time.monotonic() - started < 90


def test_dashboard_api_on_the_embedded_chain():
    # prepare: the embedded chain, funded dev accounts, one accepted and one rejected round
    tester = EthereumTester(PyEVMBackend())
    w3 = Web3(EthereumTesterProvider(tester))
    funder = tester.get_accounts()[0]
    decoder = decoder_for()
    clients = []
    for i in range(7):
        account = dev_account(i)
        tester.send_transaction(
            {"from": funder, "to": account.address, "value": 10 * ETHER, "gas": 21_000}
        )
        clients.append(ChainClient(w3, account, decoder))
    publisher = DeRelayContract.deploy(clients[0])
    views = [publisher.as_account(c) for c in clients[1:]]

    def advance(seconds: int) -> None:
        tester.time_travel(int(w3.eth.get_block("latest")["timestamp"]) + seconds)

    lock = threading.Lock()
    with lock:
        relay = Relay(publisher, views, advance, parallel=False)
        relay.round((5600, 5400), "e1")
        relay.round((2000, 2100), "e2")
    server, url = serve_dashboard(publisher, relay.task, lock=lock)
    try:
        base = url.rsplit("/task/", 1)[0]
        # act: read the API while the chain is written under the same lock
        writer = threading.Thread(
            target=lambda: [lock.acquire(), relay.round((5800, 5700), "e3"), lock.release()]
        )
        writer.start()
        status, first = _get_json(f"{base}/api/task/{relay.task}")
        writer.join()
        status2, data = _get_json(f"{base}/api/task/{relay.task}")

        # check: the snapshot matches the chain, and errors are JSON with a status
        assert status == status2 == 200
        assert first["block"]["number"] <= data["block"]["number"]
        assert data["pool_check"]["ok"], data["pool_check"]
        assert data["pool_check"]["contract"] == str(publisher.task_state(relay.task).pool)
        assert [p["round"] for p in data["curve"]["points"]] == [0, 1, 3]
        assert [(o["round"], o["verdict"]) for o in data["curve"]["others"]] == [(2, "rejected")]
        lineage = publisher.full_lineage(relay.task)
        assert [(e["cid"], e["status"]) for e in data["lineage"]] == [
            (str(Cid.from_bytes(e.cid)), e.status.name.lower()) for e in lineage
        ]
        assert data["lineage"][3]["parent_index"] == 1  # round 3 trained on round 1's model
        assert data["payouts"] == [p.to_json() for p in task_payouts(publisher, relay.task)]
        assert _get_json(f"{base}/api/tasks")[1]["default"] == relay.task
        assert _get_json(f"{base}/api/task/99")[0] == 404
        assert _get_json(f"{base}/nowhere")[0] == 404
        with urllib.request.urlopen(url, timeout=10) as page:
            assert b'<svg id="accuracy-chart"' in page.read()
        with urllib.request.urlopen(f"{base}/static/app.js", timeout=10) as script:
            assert script.headers["Content-Type"].startswith("text/javascript")
    finally:
        server.stop()
