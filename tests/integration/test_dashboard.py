"""The dashboard against real chains: ganache over JSON-RPC with headless Chromium reading the page,
and the embedded chain in process (the API alone).

The browser test runs accepted (crowned), rejected, void and held rounds, a validator that misses
its commits, and a model payment on ganache, opens the page, checks that the chart (head, champion,
every verdict), the lineage (champion and head marked), the rounds, the queue, the validators and
the payouts show what the chain holds, then accepts one more round that moves the head and not the
champion and waits for the page to show it. It needs Debian's chromium
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

from derelay.cli.query import lineage_rows, render_lineage, status_lines
from derelay.dashboard.server import open_dashboard, serve_dashboard
from derelay.deploy.deployer import deploy_contract
from derelay.trainer.chain import ChainClient, connect
from derelay.trainer.cid import Cid
from derelay.trainer.contract import (
    ETHER,
    DeRelayContract,
    Status,
    TaskParams,
    commitment_for,
    decoder_for,
)
from derelay.trainer.errors import ConfigError
from derelay.trainer.keys import dev_account
from derelay.trainer.payouts import task_payouts

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


Ballot = tuple[int, int, int] | None  # child, champion, parent scores of a validator; None: silent


class Relay:
    """A task on a chain and the accounts that play it: two relayers, two validators, a keeper, a
    consumer, and a lazy validator that takes a seat when told and never commits."""

    def __init__(
        self, publisher: DeRelayContract, views: list[DeRelayContract], advance, parallel: bool
    ) -> None:
        self.publisher = publisher
        self.relayers = views[0:2]
        self.validators = views[2:4]
        self.keeper = views[4]
        self.consumer = views[5]
        self.lazy = views[6]
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

    def seat_lazy(self) -> None:
        """The lazy validator takes a seat: it misses every review from the next one on."""
        self.lazy.register_validator(self.task, 2 * self.params.validator_stake)

    def _parallel(self, fn, items) -> None:
        if not self.parallel:
            for item in items:
                fn(item)
            return
        with ThreadPoolExecutor(len(items)) as pool:
            list(pool.map(fn, items))

    def round(self, ballots: tuple[Ballot, Ballot], label: str) -> None:
        """The holder submits; the validators commit and reveal their paired scores (None: commits
        and never reveals)."""
        state = self.publisher.task_state(self.task)
        holder = next(r for r in self.relayers if r.client.address == state.holder)
        holder.submit_relay(
            self.task, state.round, state.head_cid[4:], _cid(label), _cid(label + "/card"),
            bytes(32), 500,
        )  # fmt: skip
        salted = [
            (v, ballot or (0, 0, 0), ballot is not None, os.urandom(32))
            for v, ballot in zip(self.validators, ballots, strict=True)
        ]
        self._parallel(
            lambda b: b[0].commit_score(
                self.task,
                state.round,
                commitment_for(self.task, state.round, *b[1], b[3], b[0].client.address),
            ),
            salted,
        )
        self.advance(self.params.commit_window + 1)
        revealing = [b for b in salted if b[2]]
        self._parallel(lambda b: b[0].reveal_score(self.task, state.round, *b[1], b[3]), revealing)
        if len(revealing) < len(salted):
            self.advance(self.params.reveal_window + 1)
        self.keeper.finalize(self.task)


# One round of each verdict, champion first at the genesis's 5000 (bands: slash 1500, advance 500).
ACCEPTED_1 = ((5600, 5000, 5000), (5400, 4900, 4900))  # deltas 600, 500: accepted, crowned at 5400
REJECTED_2 = ((2000, 5400, 5400), (2100, 5300, 5300))  # deltas -3400, -3200: rejected, slashed
VOID_3 = ((5900, 5400, 5400), None)  # one reveal: void, the silent validator slashed, the turn kept
HELD_4 = ((4700, 5400, 5400), (4800, 5350, 5350))  # deltas -700, -550: held, the head stays
ACCEPTED_5 = ((6000, 5400, 5400), (5900, 5350, 5350))  # deltas 600, 550: accepted, crowned at 5900
ADVANCED_6 = (
    (5800, 5900, 5900),
    (5750, 5900, 5900),
)  # deltas -100, -150: the head, not the champion


def _get_json(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=30) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _chain_rounds(relay: DeRelayContract, task: int) -> dict[int, tuple[int, int, int]]:
    """Commits, reveals and missed commits of each round, from the events."""
    counts = [
        Counter(e["args"]["round"] for e in relay.events(name, taskId=task))
        for name in ("ScoreCommitted", "ScoreRevealed", "ValidatorMissed")
    ]
    rounds = set().union(*counts)
    return {r: tuple(c[r] for c in counts) for r in rounds}


def _verdicts(relay: DeRelayContract, task: int, verdict: Status) -> list[int]:
    """The rounds finalized with `verdict`, from the events (a void child resubmitted moves its
    lineage entry to the later round, so the lineage alone does not list every void round)."""
    return [
        e["args"]["round"]
        for e in relay.events("RoundFinalized", taskId=task)
        if e["args"]["verdict"] == verdict
    ]


def _page_state(page) -> dict:
    return page.evaluate(
        """() => ({
        block: document.body.dataset.block,
        accepted: [...document.querySelectorAll('#accuracy-chart circle.pt.accepted')]
            .map(c => Number(c.dataset.round)),
        crowned: [...document.querySelectorAll('#accuracy-chart circle.pt.crowned')]
            .map(c => Number(c.dataset.round)),
        genesis: document.querySelectorAll('#accuracy-chart circle.pt.genesis').length,
        championLine: document.querySelectorAll('#accuracy-chart path.champion').length,
        rejected: [...document.querySelectorAll('#accuracy-chart g.mark.rejected')]
            .map(g => Number(g.dataset.round)),
        held: [...document.querySelectorAll('#accuracy-chart g.mark.held')]
            .map(g => Number(g.dataset.round)),
        void: [...document.querySelectorAll('#accuracy-chart g.mark.void')]
            .map(g => Number(g.dataset.round)),
        championCard: document.getElementById('champion-card').dataset.cid,
        headCard: document.getElementById('head-card').dataset.cid,
        lineage: [...document.querySelectorAll('#lineage tbody tr[data-index]')].map(r => ({
            index: Number(r.dataset.index), status: r.dataset.status, cid: r.dataset.cid,
            relayer: r.dataset.relayer, champion: r.dataset.champion === '1',
            head: r.dataset.head === '1'})),
        payouts: [...document.querySelectorAll('#payouts tbody tr[data-address]')]
            .map(r => [r.dataset.address, r.dataset.earned, r.dataset.lost]),
        rounds: Object.fromEntries([...document.querySelectorAll('#rounds tbody tr[data-round]')]
            .map(r => [r.dataset.round, [Number(r.dataset.commits), Number(r.dataset.reveals),
                                         Number(r.dataset.misses), r.dataset.outcome]])),
        validators: Object.fromEntries(
            [...document.querySelectorAll('#validators tbody tr[data-address]')]
            .map(r => [r.dataset.address, Number(r.dataset.misses)])),
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
    state = relay.task_state(task)
    assert shown["accepted"] == _verdicts(relay, task, Status.ACCEPTED)  # one point each, in order
    assert shown["crowned"] == [e["args"]["round"] for e in relay.events("ChampionCrowned")]
    assert shown["genesis"] == 1 and shown["championLine"] == 1
    for verdict in (Status.REJECTED, Status.HELD, Status.VOID):
        assert shown[verdict.name.lower()] == _verdicts(relay, task, verdict)
    assert shown["championCard"] == str(Cid.from_bytes(state.champion_cid))
    assert shown["headCard"] == str(Cid.from_bytes(state.head_cid))
    assert sorted(shown["lineage"], key=lambda r: r["index"]) == [
        {
            "index": e.index,
            "status": e.status.name.lower(),
            "cid": str(Cid.from_bytes(e.cid)),
            "relayer": e.relayer,
            "champion": e.cid == state.champion_cid,
            "head": e.cid == state.head_cid,
        }
        for e in lineage
    ]
    payouts = task_payouts(relay, task)
    assert shown["payouts"] == [[p.address, str(p.earned), str(p.stake_lost)] for p in payouts]
    for number, counts in _chain_rounds(relay, task).items():
        assert shown["rounds"][str(number)][:3] == list(counts)
    assert shown["validators"] == {
        s.validator: s.misses for s in relay.seats(task) if int(s.validator, 16)
    }
    assert shown["queue"] == [address for address, _ in relay.queue(task)]
    ((holder, holder_text),) = shown["holder"]
    assert holder == state.holder and "left" in holder_text
    assert "events add up to it" in shown["poolCheck"]
    return shown


def test_dashboard_in_chromium_follows_ganache(chain_node, tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"chromium is not installed at {CHROMIUM}: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright  # the driver of the system chromium

    started = time.monotonic()

    # prepare: a task with two relayers, two validators, a keeper, and four finalized rounds
    def advance(seconds: int) -> None:
        w3.provider.make_request("evm_increaseTime", [seconds])
        w3.provider.make_request("evm_mine", [])

    w3 = connect(chain_node.url)
    decoder = decoder_for()
    clients = [ChainClient(connect(chain_node.url), dev_account(i), decoder) for i in range(8)]
    publisher, _ = deploy_contract(clients[0], tmp_path / "deployments")
    views = [DeRelayContract(c, publisher.address, publisher.abi) for c in clients[1:]]
    relay = Relay(publisher, views, advance, parallel=True)
    relay.round(ACCEPTED_1, "r1")  # relayer A
    relay.round(REJECTED_2, "r2")  # relayer B
    relay.round(VOID_3, "r3")  # relayer A, who keeps the turn
    relay.round(HELD_4, "r4")  # relayer A again
    relay.seat_lazy()  # misses rounds 5 and 6
    relay.round(ACCEPTED_5, "r5")  # relayer B
    relay.consumer.pay_for_model(relay.task, relay.params.usage_fee)

    # the dashboard reads through its own connection and a throwaway account, as the CLI does
    with pytest.raises(ConfigError, match="task 9 does not exist"):
        open_dashboard(chain_node.url, tmp_path / "deployments", 9)
    server, url = open_dashboard(chain_node.url, tmp_path / "deployments", None)
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
                assert shown["accepted"] == [1, 5] and shown["crowned"] == [1, 5]
                assert (shown["rejected"], shown["held"], shown["void"]) == ([2], [4], [3])
                assert shown["rounds"]["3"] == [2, 1, 0, "void"]
                assert shown["rounds"]["5"] == [2, 2, 1, "accepted"]
                assert shown["championCard"] == shown["headCard"]  # round 5's child is both
                # created; finalizes of rounds 1 to 5 (void 3 moves the silent one's slash); paid
                assert shown["poolPoints"] == 7
                assert "task 1" in page.title()

                # act: one more accepted round, not better than the champion, while the page is
                # open: the head moves on, the champion stays
                relay.round(ADVANCED_6, "r6")
                page.wait_for_function(
                    "document.querySelectorAll('#accuracy-chart circle.pt.accepted').length === 3",
                    timeout=20_000,
                )
                shown = _check_page_matches_chain(page, reader, relay.task)
                assert shown["accepted"] == [1, 5, 6] and shown["crowned"] == [1, 5]
                assert shown["championCard"] == str(Cid.from_bytes(_cid("r5")))
                assert shown["headCard"] == str(Cid.from_bytes(_cid("r6")))
                assert shown["validators"][relay.lazy.client.address] == 2
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
    # prepare: the embedded chain, funded dev accounts, a round of each verdict, then a lazy
    # validator seated
    tester = EthereumTester(PyEVMBackend())
    w3 = Web3(EthereumTesterProvider(tester))
    funder = tester.get_accounts()[0]
    decoder = decoder_for()
    clients = []
    for i in range(8):
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
        for ballots, label in (
            (ACCEPTED_1, "e1"),
            (REJECTED_2, "e2"),
            (VOID_3, "e3"),
            (HELD_4, "e4"),
        ):
            relay.round(ballots, label)
        relay.seat_lazy()
    server, url = serve_dashboard(publisher, relay.task, lock=lock)
    try:
        base = url.rsplit("/task/", 1)[0]
        # act: read the API while the chain is written under the same lock, then once more after
        # a round that moves the head and not the champion
        writer = threading.Thread(
            target=lambda: [lock.acquire(), relay.round(ACCEPTED_5, "e5"), lock.release()]
        )
        writer.start()
        status, first = _get_json(f"{base}/api/task/{relay.task}")
        writer.join()
        with lock:
            relay.round(ADVANCED_6, "e6")
        status2, data = _get_json(f"{base}/api/task/{relay.task}")

        # check: the snapshot matches the chain, and errors are JSON with a status
        assert status == status2 == 200
        assert first["block"]["number"] <= data["block"]["number"]
        assert data["pool_check"]["ok"], data["pool_check"]
        state = publisher.task_state(relay.task)
        assert data["pool_check"]["contract"] == str(state.pool)
        whys = {part["why"] for point in data["pool_history"] for part in point["parts"]}
        assert "round 5 validator missed its commit" in whys

        # the head after each accepted round; the champion crowned, or re-measured by each
        # decided review (lower medians of the champion scores), and not moved by the void one
        curve = data["curve"]
        assert [(p["round"], p["score"]) for p in curve["points"]] == [
            (0, 5000), (1, 5400), (5, 5900), (6, 5750),
        ]  # fmt: skip
        assert [(c["round"], c["score"], c["crowned"]) for c in curve["champion"]] == [
            (0, 5000, True), (1, 5400, True), (2, 5300, False), (4, 5350, False),
            (5, 5900, True), (6, 5900, False),
        ]  # fmt: skip
        assert curve["champion"][-1]["score"] == state.champion_score
        assert curve["champion"][-1]["cid"] == str(Cid.from_bytes(_cid("e5")))
        assert [(o["round"], o["verdict"], o["delta"]) for o in curve["others"]] == [
            (2, "rejected", -3400), (3, "void", 0), (4, "held", -700),
        ]  # fmt: skip

        # head and champion apart, each marked in the lineage
        assert data["state"]["champion_cid"] == str(Cid.from_bytes(_cid("e5")))
        assert data["state"]["head_cid"] == str(Cid.from_bytes(_cid("e6")))
        assert not data["state"]["head_is_champion"]
        lineage = publisher.full_lineage(relay.task)
        assert [(e["cid"], e["status"]) for e in data["lineage"]] == [
            (str(Cid.from_bytes(e.cid)), e.status.name.lower()) for e in lineage
        ]
        assert [(e["round"], e["champion"], e["head"]) for e in data["lineage"]] == [
            (0, False, False), (1, False, False), (2, False, False), (3, False, False),
            (4, False, False), (5, True, False), (6, False, True),
        ]  # fmt: skip
        held = data["lineage"][4]
        assert (held["status"], held["score"], held["champion_score"], held["delta"]) == (
            "held", 4700, 5350, -700,
        )  # fmt: skip
        assert data["lineage"][3]["delta"] is None  # void: nothing measured
        assert data["lineage"][5]["parent_index"] == 1  # round 5 trained on round 1's model

        # each round: paired reveals, medians, misses
        rounds = {r["round"]: r for r in data["rounds"]}
        assert [(v["child"], v["champion"], v["delta"]) for v in rounds[4]["reveals"]] == [
            (4700, 5400, -700), (4800, 5350, -550),
        ]  # fmt: skip
        assert (rounds[3]["outcome"], rounds[3]["child_score"], rounds[3]["reward"]) == (
            "void", None, "0",
        )  # fmt: skip
        assert rounds[3]["validator_fees"] == rounds[3]["keeper_bounties"] == []
        assert rounds[5]["crowned"] and not rounds[6]["crowned"]
        lazy = relay.lazy.client.address
        assert [(r, m["validator"], m["misses"]) for r in (5, 6) for m in rounds[r]["misses"]] == [
            (5, lazy, 1), (6, lazy, 2),
        ]  # fmt: skip
        assert {v["address"]: v["misses"] for v in data["validators"]}[lazy] == 2

        # the payouts as `task_payouts` folds them: verdicts, crowns and misses counted
        assert data["payouts"] == [p.to_json() for p in task_payouts(publisher, relay.task)]
        by_address = {p["address"]: p for p in data["payouts"]}
        first_relayer, second_relayer = (r.client.address for r in relay.relayers)
        turns = ("accepted_turns", "crowned_turns", "held_turns", "rejected_turns", "void_turns")
        assert [by_address[first_relayer][k] for k in turns] == [2, 1, 1, 0, 1]
        assert [by_address[second_relayer][k] for k in turns] == [1, 1, 0, 1, 0]
        assert by_address[lazy]["missed_reviews"] == 2
        assert int(by_address[lazy]["missed_charges"]) > 0 == int(by_address[lazy]["earned"])

        # the command line reads the same chain the same way
        status = status_lines(publisher, relay.task)
        assert f"  champion {data['state']['champion_cid']} score 5900 bp" in status[1]
        assert f"  head     {data['state']['head_cid']} score 5750 bp" in status[2]
        verdicts = [line.split()[2] for line in status[status.index("  last verdicts:") + 1 :]]
        assert verdicts[:5] == ["accepted", "accepted", "held", "void", "rejected"]
        assert any(
            f"validator {lazy} (seat 2) revealed in none of its last 2" in line for line in status
        )
        rows = lineage_rows(publisher, relay.task)
        assert [(r["champion"], r["head"], r["delta"]) for r in rows] == [
            (e["champion"], e["head"], e["delta"]) for e in data["lineage"]
        ]
        assert render_lineage(rows).splitlines()[5].endswith("<- champion")

        assert _get_json(f"{base}/api/tasks")[1]["default"] == relay.task
        assert _get_json(f"{base}/api/task/99")[0] == 404
        assert _get_json(f"{base}/nowhere")[0] == 404
        with urllib.request.urlopen(url, timeout=10) as page:
            assert b'<svg id="accuracy-chart"' in page.read()
        with urllib.request.urlopen(f"{base}/static/app.js", timeout=10) as script:
            assert script.headers["Content-Type"].startswith("text/javascript")
    finally:
        server.stop()
