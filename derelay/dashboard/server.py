"""`derelay dashboard`: a live web page of one task, rebuilt from the chain's events and views.

Nothing is stored off chain: every refresh reads the task's events (`eth_getLogs` filtered by the
contract and the task id, folded by `derelay.trainer.ledger`) and its views (state, parameters,
queue, seats, accounts, and each lineage entry's record; the lineage's order comes from the
submission events), so two dashboards on the same chain show the same numbers, to the wei. The pool's history is derived from the
events alone (creation, funding, model payments, rewards, fees, bounties, slashes and
missed-commit charges), because a node need not keep the state of past blocks; its last value is
checked against the pool the contract holds now.

The page shows the head (what the next turn trains on) next to the champion (the best model
accepted so far: what consumers license and what each review measures the child against), and
every verdict: accepted, held (within the slash band, outside the advance band), rejected, void.

The server is the standard library's `ThreadingHTTPServer` in a daemon thread. It serves a static
page (`derelay/dashboard/static/`, plain HTML, CSS and JavaScript: no build step, nothing loaded
from elsewhere) and a JSON API that the page polls:

- ``GET /api/tasks``: the task count and the task the page shows by default;
- ``GET /api/task/<id>``: everything the page shows for task `<id>`, amounts in wei as strings.

A snapshot is rebuilt only when a new block arrives. Every chain read holds one lock, so the
embedded chain (eth-tester, in process, not thread-safe) may be shared with the code that drives
it: pass that code's lock as `lock`, or take `server.chain_lock` around its own chain calls.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from hexbytes import HexBytes

from derelay.trainer.chain import chain_id, describe_endpoint, with_retries
from derelay.trainer.cid import Cid
from derelay.trainer.contract import DeRelayContract, Phase, Status, TaskState
from derelay.trainer.errors import ConfigError, DeRelayError
from derelay.trainer.ledger import Ledger, MoneyKind, RoundFacts, TaskLogs, fold_events
from derelay.trainer.payouts import ledger_payouts

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_FILES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
_SNAPSHOT_TRIES = 3


def cid_text(raw: bytes) -> str:
    """The base32 text of a binary CID, or its hex when it is not one this project writes."""
    try:
        return str(Cid.from_bytes(bytes(raw)))
    except DeRelayError:
        return "0x" + bytes(raw).hex()


class TaskDashboard:
    """Builds the JSON snapshots of tasks on one contract; every chain read holds `lock`."""

    def __init__(
        self, relay: DeRelayContract, task_id: int | None, lock: threading.Lock | None = None
    ) -> None:
        self.relay = relay
        self.task_id = task_id
        self.lock = lock if lock is not None else threading.RLock()
        self._w3 = relay.client.w3
        self._logs = TaskLogs(relay)
        self._chain_id: int | None = None
        self._created_block: dict[int, int] = {}
        self._timestamps: dict[bytes, int] = {}
        self._cache: dict[int, tuple[bytes, dict[str, Any]]] = {}
        self._cache_lock = threading.Lock()

    # ------------------------------------------------------------------ entry points

    def tasks(self) -> dict[str, Any]:
        """The task count and the task shown by default (the newest, unless one was given)."""
        with self.lock:
            count = self.relay.task_count()
        default = self.task_id if self.task_id is not None else (count or None)
        return {"count": count, "default": default, "contract": self.relay.address}

    def snapshot(self, task_id: int) -> dict[str, Any]:
        """Everything the page shows for `task_id`, as of the latest block (cached per block)."""
        with self.lock:
            count = self.relay.task_count()
            if not 1 <= task_id <= count:
                raise LookupError(
                    f"task {task_id} does not exist: this contract has {count} task(s)"
                )
            latest = with_retries(lambda: self._w3.eth.get_block("latest"))
            key = bytes(latest["hash"])
            with self._cache_lock:
                cached = self._cache.get(task_id)
            if cached is not None and cached[0] == key:
                return cached[1]
            for _ in range(_SNAPSHOT_TRIES):
                data, consistent = self._build(task_id)
                if consistent:
                    break
            with self._cache_lock:
                self._cache[task_id] = (key, data)
            return data

    # ------------------------------------------------------------------ snapshot

    def _build(self, task_id: int) -> tuple[dict[str, Any], bool]:
        """One snapshot; `consistent` is false when the task's state moved while it was read."""
        relay = self.relay
        before = relay.task_state(task_id)
        head = with_retries(lambda: self._w3.eth.get_block("latest"))
        block_number = int(head["number"])
        now = int(head["timestamp"])
        self._timestamps[bytes(head["hash"])] = now
        from_block = self._creation_block(task_id)
        events = self._logs.fetch(task_id, from_block, block_number)
        ledger = fold_events(events)
        params = relay.task_params(task_id)
        lineage = relay.full_lineage(task_id)
        queue = relay.queue(task_id)
        seats = relay.seats(task_id)
        payouts = ledger_payouts(relay, task_id, ledger)
        publisher = relay.publisher_of(task_id)
        after = relay.task_state(task_id)
        if self._chain_id is None:
            self._chain_id = chain_id(self._w3)

        rounds = {n: _round_json(facts, self._time_of) for n, facts in ledger.rounds.items()}
        pool_history = _pool_history(ledger, self._time_of)
        derived_pool = pool_history[-1]["pool"] if pool_history else 0
        state = before
        data: dict[str, Any] = {
            "task_id": task_id,
            "contract": relay.address,
            "chain_id": self._chain_id,
            "endpoint": describe_endpoint(self._w3),
            "block": {"number": block_number, "timestamp": now},
            "publisher": publisher,
            "params": _params_json(params),
            "state": _state_json(state),
            "clock": _clock(state, now),
            "curve": _curve(params.genesis_score, lineage, events, self._time_of),
            "lineage": _lineage_json(lineage, events, self._time_of, state),
            "queue": [
                {
                    "position": i,
                    "address": address,
                    "stake": str(stake),
                    "holder": address == state.holder,
                }
                for i, (address, stake) in enumerate(queue)
            ],
            "validators": [
                {
                    "seat": s.index,
                    "address": s.validator,
                    "round": s.round,
                    "ballot": s.ballot.name.lower(),
                    "misses": s.misses,
                }
                for s in seats
                if int(s.validator, 16) != 0
            ],
            "rounds": [rounds[r] for r in sorted(rounds, reverse=True)],
            "payouts": [p.to_json() for p in payouts],
            "pool_history": [
                {**p, "pool": str(p["pool"]), "delta": str(p["delta"])} for p in pool_history
            ],
            "pool_check": {
                "derived": str(derived_pool),
                "contract": str(state.pool),
                "ok": derived_pool == state.pool,
            },
        }
        return data, before == after

    def _creation_block(self, task_id: int) -> int:
        if task_id not in self._created_block:
            created = self.relay.events("TaskCreated", taskId=task_id)
            self._created_block[task_id] = (
                int(created[0]["blockNumber"]) if created else self.relay.deployed_block
            )
        return self._created_block[task_id]

    def _time_of(self, block_hash: bytes) -> int:
        """The timestamp of the block `block_hash` (cached)."""
        key = bytes(block_hash)
        if key not in self._timestamps:
            block = with_retries(lambda: self._w3.eth.get_block(HexBytes(key)))
            self._timestamps[key] = int(block["timestamp"])
        return self._timestamps[key]


# ---------------------------------------------------------------------- pieces of a snapshot


def _params_json(params: Any) -> dict[str, Any]:
    out = params.to_json_dict()
    out["spec_cid"] = cid_text(params.spec_cid)
    out["genesis_cid"] = cid_text(params.genesis_cid)
    # Amounts in wei overflow JSON numbers in some readers: send every integer as a string.
    return {k: (str(v) if isinstance(v, int) else v) for k, v in out.items()}


def _state_json(state: TaskState) -> dict[str, Any]:
    return {
        "phase": state.phase.name.lower(),
        "round": state.round,
        "holder": state.holder,
        "phase_start": state.phase_start,
        "deadline": state.deadline,
        "reveal_end": state.reveal_end,
        "pool": str(state.pool),
        "queue_length": state.queue_length,
        "submission_count": state.submission_count,
        "accepted_count": state.accepted_count,
        "champion_score": state.champion_score,
        "champion_cid": cid_text(state.champion_cid),
        "head_score": state.head_score,
        "head_cid": cid_text(state.head_cid),
        "head_is_champion": state.head_cid == state.champion_cid,
        "validator_count": state.validator_count,
    }


def _clock(state: TaskState, now: int) -> dict[str, Any]:
    """What the relay waits for and how long is left, in chain time (the latest block's), from
    the deadlines the contract's view reports (in a review, `deadline` ends the commit window)."""
    if state.phase == Phase.TURN:
        what, ends = "turn of the holder", state.deadline
    elif state.phase == Phase.REVIEW:
        if now <= state.deadline:
            what, ends = "commit window", state.deadline
        else:
            what, ends = "reveal window", state.reveal_end
    else:
        what, ends = "idle: the queue is empty", None
    return {
        "now": now,
        "waiting_for": what,
        "ends": ends,
        "time_left": None if ends is None else ends - now,
    }


def _curve(
    genesis_score: int, lineage: list[Any], events: list[Any], time_of: Callable[[Any], int]
) -> dict[str, Any]:
    """The head after each accepted round (genesis first), the champion after each decided review
    (its score as re-measured there, or the crowned child's), and the other verdicts."""
    by_digest = {bytes(e.cid[4:]): e for e in lineage}
    genesis = lineage[0]
    genesis_cid = cid_text(genesis.cid)
    start = genesis.submitted_at
    points = [{"round": 0, "score": genesis_score, "cid": genesis_cid, "time": start}]
    champion = [{"round": 0, "score": genesis_score, "cid": genesis_cid, "crowned": True}]
    others = []
    children: dict[int, str] = {}
    crowned: set[int] = set()
    for event in events:
        args = event["args"]
        if event["event"] == "RelaySubmitted":
            children[args["round"]] = cid_text(args["childCid"])
        elif event["event"] == "ChampionCrowned":
            crowned.add(args["round"])
            entry = by_digest.get(bytes(args["digest"]))
            children.setdefault(args["round"], cid_text(entry.cid) if entry else "")
        if event["event"] != "RoundFinalized":
            continue
        verdict = Status(args["verdict"])
        round_ = args["round"]
        if verdict == Status.ACCEPTED:
            points.append(
                {
                    "round": round_,
                    "score": args["childScore"],
                    "cid": children.get(round_, ""),
                    "relayer": args["relayer"],
                    "time": time_of(event["blockHash"]),
                }
            )
        else:
            others.append(
                {
                    "round": round_,
                    "score": args["childScore"],
                    "champion": args["championScore"],
                    "delta": args["delta"],
                    "verdict": verdict.name.lower(),
                    "relayer": args["relayer"],
                }
            )
        if verdict == Status.VOID:
            continue  # nobody measured anything: the champion stands as it was
        if round_ in crowned:
            champion.append(
                {"round": round_, "score": args["childScore"], "cid": children.get(round_, ""),
                 "crowned": True}
            )  # fmt: skip
        else:
            champion.append(
                {"round": round_, "score": args["championScore"], "cid": champion[-1]["cid"],
                 "crowned": False}
            )  # fmt: skip
    return {"points": points, "champion": champion, "others": others}


def _lineage_json(
    lineage: list[Any],
    events: list[Any],
    time_of: Callable[[Any], int],
    state: TaskState,
) -> list[dict[str, Any]]:
    """Every lineage entry with its parent, review outcome and submission details, and whether
    it is the champion or the head now."""
    by_digest = {bytes(e.cid[4:]): e for e in lineage}
    submitted = {}
    finalized = {}
    for event in events:
        if event["event"] == "RelaySubmitted":
            submitted[event["args"]["round"]] = event
        elif event["event"] == "RoundFinalized":
            finalized[event["args"]["round"]] = event
    rows = []
    for e in lineage:
        row: dict[str, Any] = {
            "index": e.index,
            "cid": cid_text(e.cid),
            "relayer": e.relayer,
            "round": e.round,
            "submitted_at": e.submitted_at,
            "status": e.status.name.lower(),
            "score": e.score,
            "champion": e.cid == state.champion_cid,
            "head": e.cid == state.head_cid,
            "parent_index": None,
            "parent_cid": None,
            "metadata_cid": None,
            "samples": None,
            "champion_score": None,
            "delta": None,
            "reveals": None,
            "reward": None,
            "finalized_at": None,
        }
        sub = submitted.get(e.round) if e.index > 0 else None
        if sub is not None:
            parent = by_digest.get(bytes(sub["args"]["parentDigest"]))
            row["parent_index"] = parent.index if parent else None
            row["parent_cid"] = (
                cid_text(parent.cid) if parent else "0x" + bytes(sub["args"]["parentDigest"]).hex()
            )
            row["metadata_cid"] = cid_text(sub["args"]["metadataCid"])
            row["samples"] = sub["args"]["samples"]
        fin = finalized.get(e.round) if e.index > 0 else None
        if fin is not None:
            if e.status != Status.VOID:
                row["champion_score"] = fin["args"]["championScore"]
                row["delta"] = fin["args"]["delta"]
            row["reveals"] = fin["args"]["reveals"]
            row["reward"] = str(fin["args"]["reward"])
            row["finalized_at"] = time_of(fin["blockHash"])
        rows.append(row)
    return rows


def _round_json(facts: RoundFacts, time_of: Callable[[bytes], int]) -> dict[str, Any]:
    """A round: its turn, submission, commits, paired reveals, verdict, the money it moved and
    the validators that missed its commit."""
    verdict, sub = facts.verdict, facts.submission
    if facts.timed_out:
        outcome = "timed out"
    elif verdict is not None:
        outcome = verdict.status.name.lower()
    else:
        outcome = "review" if sub is not None else "turn"
    scored = verdict if verdict is not None and verdict.status != Status.VOID else None
    return {
        "round": facts.round,
        "holder": facts.holder,
        "turn_deadline": facts.turn_deadline,
        "started_at": time_of(facts.started.block_hash) if facts.started else None,
        "submission": None
        if sub is None
        else {
            "cid": cid_text(sub.child_cid),
            "metadata_cid": cid_text(sub.metadata_cid),
            "samples": sub.samples,
            "at": time_of(sub.place.block_hash),
        },
        "commits": [
            {
                "validator": c.validator,
                "commitment": "0x" + c.commitment.hex(),
                "at": time_of(c.place.block_hash),
            }
            for c in facts.commits
        ],
        "reveals": [
            {
                "validator": r.validator,
                "child": r.child,
                "champion": r.champion,
                "parent": r.parent,
                "delta": r.delta,
                "progress": r.progress,
                "at": time_of(r.place.block_hash),
            }
            for r in facts.reveals
        ],
        "outcome": outcome,
        "child_score": scored.child_score if scored else None,
        "champion_score": scored.champion_score if scored else None,
        "delta": scored.delta if scored else None,
        "progress": scored.progress if scored else None,
        "reveal_count": verdict.reveals if verdict is not None else None,
        "crowned": facts.crowned,
        "reward": str(verdict.reward) if verdict is not None else None,
        "validator_fees": [
            {"validator": m.account, "fee": str(m.amount)} for m in facts.paid(MoneyKind.FEE)
        ],
        "slashes": [
            {"address": m.account, "amount": str(m.amount), "why": m.kind.value}
            for m in facts.movements
            if m.kind in _SLASHES
        ],
        "misses": [
            {"validator": m.validator, "amount": str(m.amount), "misses": m.misses}
            for m in facts.misses
        ],
        "keeper_bounties": [
            {"keeper": m.account, "bounty": str(m.amount)} for m in facts.paid(MoneyKind.BOUNTY)
        ],
    }


_SLASHES = (MoneyKind.NO_REVEAL, MoneyKind.OUTVOTED, MoneyKind.TIMEOUT, MoneyKind.REJECTED)


def _pool_history(ledger: Ledger, time_of: Callable[[bytes], int]) -> list[dict[str, Any]]:
    """The pool after each transaction that moved it, from the events alone.

    Each point names the transaction's main move (a verdict, a timeout, a funding) in `why` and
    lists every move in `parts`.
    """
    history: list[dict[str, Any]] = []
    pool = 0
    last_tx: bytes | None = None
    for movement in ledger.movements:
        if movement.kind is MoneyKind.ROYALTY:
            continue
        delta, why = movement.pool_delta, movement.reason
        pool += delta
        if not history or movement.place.tx != last_tx:
            last_tx = movement.place.tx
            history.append(
                {
                    "block": movement.place.block,
                    "time": time_of(movement.place.block_hash),
                    "pool": 0,
                    "delta": 0,
                    "why": why,
                    "parts": [],
                }
            )
        point = history[-1]
        point["pool"] = pool
        point["delta"] += delta
        if delta:
            point["parts"].append({"why": why, "delta": str(delta)})
        if movement.headline:
            point["why"] = why
    return history


# ---------------------------------------------------------------------- HTTP


class DashboardServer(ThreadingHTTPServer):
    """The dashboard's HTTP server; `stop()` ends it and closes its socket."""

    daemon_threads = True
    dashboard: TaskDashboard
    thread: threading.Thread

    @property
    def chain_lock(self) -> threading.Lock:
        """The lock every chain read of the dashboard holds."""
        return self.dashboard.lock  # type: ignore[return-value]

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A browser that went away mid-reply is no error worth a traceback."""
        import sys

        if isinstance(sys.exc_info()[1], ConnectionError):
            log.debug("dashboard: client %s went away", client_address)
            return
        super().handle_error(request, client_address)

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.shutdown()
        self.server_close()
        self.thread.join(5)


_TASK_PAGE = re.compile(r"^/task/(\d+)/?$")
_TASK_API = re.compile(r"^/api/task/(\d+)$")


class _Handler(BaseHTTPRequestHandler):
    server: DashboardServer
    server_version = "derelay-dashboard"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib signature)
        log.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:  # noqa: N802 (stdlib name)
        path = self.path.split("?", 1)[0]
        if path in ("/", "/index.html") or _TASK_PAGE.match(path):
            self._static("index.html")
        elif path.startswith("/static/") and path[len("/static/") :] in STATIC_FILES:
            self._static(path[len("/static/") :])
        elif path == "/api/tasks":
            self._api(self.server.dashboard.tasks)
        elif (match := _TASK_API.match(path)) is not None:
            task_id = int(match.group(1))
            self._api(lambda: self.server.dashboard.snapshot(task_id))
        elif path == "/favicon.ico":
            self.send_response(HTTPStatus.NO_CONTENT)
            self.end_headers()
        else:
            self._json({"error": f"no such page: {path}"}, HTTPStatus.NOT_FOUND)

    def _static(self, name: str) -> None:
        body = (STATIC_DIR / name).read_bytes()
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", STATIC_FILES[name])
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        self.wfile.write(body)

    def _api(self, build: Callable[[], dict[str, Any]]) -> None:
        try:
            data = build()
        except LookupError as exc:
            self._json({"error": str(exc)}, HTTPStatus.NOT_FOUND)
            return
        except Exception as exc:  # a chain that went away: the page shows it and keeps polling
            log.warning("dashboard: %s", exc)
            self._json({"error": f"{type(exc).__name__}: {exc}"}, HTTPStatus.BAD_GATEWAY)
            return
        self._json(data, HTTPStatus.OK)

    def _json(self, data: dict[str, Any], status: HTTPStatus) -> None:
        body = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)


def serve_dashboard(
    relay: DeRelayContract,
    task_id: int | None,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    lock: threading.Lock | None = None,
) -> tuple[DashboardServer, str]:
    """Serve the dashboard of `task_id` (the newest task when None) in a daemon thread.

    `port` 0 takes a free port. Returns the server (``server.stop()`` ends it) and the page's URL.
    On the embedded chain, pass the lock that the code driving the chain holds, so that the
    dashboard never reads the chain while that code writes it.
    """
    server = DashboardServer((host, port), _Handler)
    server.dashboard = TaskDashboard(relay, task_id, lock)
    server.thread = threading.Thread(
        target=server.serve_forever, name="derelay-dashboard", daemon=True
    )
    server.thread.start()
    bound_host, bound_port = str(server.server_address[0]), int(server.server_address[1])
    shown = "127.0.0.1" if bound_host in ("0.0.0.0", "") else bound_host
    path = f"/task/{task_id}" if task_id is not None else "/"
    return server, f"http://{shown}:{bound_port}{path}"


def open_dashboard(
    rpc: str, deployments: Path, task: int | None, port: int = 0, host: str = "127.0.0.1"
) -> tuple[DashboardServer, str]:
    """Serve the dashboard of `task` (the newest when None) on the contract deployed at `rpc`."""
    from eth_account import Account

    from derelay.deploy.deployer import load_deployment
    from derelay.trainer.chain import ChainClient, connect
    from derelay.trainer.contract import decoder_for

    w3 = connect(rpc)
    # The dashboard signs nothing: a throwaway account only fills `from` in calls.
    client = ChainClient(w3, Account.create(), decoder_for())
    record = load_deployment(w3, deployments)
    relay = DeRelayContract(client, record.address, deployed_block=record.block)
    count = relay.task_count()
    if task is not None and not 1 <= task <= count:
        raise ConfigError(
            f"task {task} does not exist on {describe_endpoint(w3)} ({count} task(s)): "
            "check the id with `derelay status`"
        )
    try:
        return serve_dashboard(relay, task, host, port)
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on {host}:{port} ({exc.strerror}): pick another --port"
        ) from exc


def run_dashboard(
    rpc: str,
    deployments: Path,
    task: int | None,
    port: int,
    host: str = "127.0.0.1",
    echo: Callable[[str], None] = print,
) -> None:
    """`derelay dashboard`: serve the page of `task` on the deployed contract until Ctrl-C."""
    server, url = open_dashboard(rpc, deployments, task, port, host)
    which = f"task {task}" if task is not None else "the newest task"
    echo(f"dashboard of {which} at {url} (Ctrl-C stops)")
    try:
        while server.thread.is_alive():
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


__all__ = [
    "DashboardServer",
    "TaskDashboard",
    "cid_text",
    "open_dashboard",
    "run_dashboard",
    "serve_dashboard",
]
