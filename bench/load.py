"""Load: many workers on one chain for many rounds, with no stuck task.

A dev chain (ganache mining a block every second, as `derelay chain` runs it, or anvil with
`--engine anvil`, mining per transaction or every `--block-time` seconds) carries one DeRelay
contract and several tasks training a cheap model (logistic regression on the digits set: this
measures the protocol, not torch). The workers are the real `derelay.trainer.worker.Worker`s, each with
its own funded dev key and journal, dealt round-robin to the tasks (per task: a few validators,
one pure keeper when there are enough workers, the rest relayers, every other one also a keeper)
and spread over a few OS processes, one thread per worker, so that transactions from different
processes really race on the chain. Weights go through one `LocalStore` directory, or with
`--store ipfs` through the dev IPFS node (js-ipfs, the Kubo RPC API) that every process talks to.

The run ends when every task has finalized `--rounds` rounds (or at the wall-clock cap, or as soon
as a task makes no progress for longer than its bound). Turns, verdicts and turn times come from
the chain's events; transactions and tick failures from counters in every worker process, checked
against the accounts' nonces. A task is *stuck* when no new turn started for longer than
turn duration + commit window + reveal window + slack: the longest a healthy relay can take
between two turns. The exit code is 1 when a task is stuck, a worker crashed or a process died.

    python -m bench.load [--workers 50] [--tasks 5] [--rounds 10] [--processes 5] [--store ipfs]
                         [--engine ganache|anvil|both] [--block-time S] [--out out/load]

With `--engine both` the same run goes on ganache, then on anvil, and a table compares them.

Every field of `LoadConfig` is a flag (--poll, --commit-window, --max-seconds, ...). The report
goes to stdout and to load.json in --out, next to each worker process's log.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import logging
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract.contract import ContractFunction
from web3.middleware import Web3Middleware

from bench.common import REPO, machine_info, machine_line, median, table
from derelay.deploy.tasks import load_spec, publish_task
from derelay.trainer.chain import (
    TRANSPORT_ERRORS,
    ChainClient,
    RevertDecoder,
    SentTx,
    TxStatus,
    connect,
)
from derelay.trainer.contract import ETHER, DeRelayContract, Phase, Status, decoder_for, load_abi
from derelay.trainer.data import Dataset
from derelay.trainer.errors import ChainError, ConfigError, ContractRevert
from derelay.trainer.journal import Journal
from derelay.trainer.keys import dev_account
from derelay.trainer.services import ENGINES, start_chain, start_ipfs
from derelay.trainer.shards import ShardPlan, relayer_shards, validator_shards
from derelay.trainer.spec import DIGITS_CLASSES, DIGITS_FEATURES, TaskSpec
from derelay.trainer.store import open_store
from derelay.trainer.worker import TRANSIENT_ERRORS, Roles, Worker, WorkerConfig

log = logging.getLogger("derelay.load")

LOAD_SPEC = TaskSpec(
    name="load-logreg",
    arch="logreg",
    input_shape=(DIGITS_FEATURES,),
    num_classes=DIGITS_CLASSES,
    dataset="digits",
)
POOL = 10 * ETHER  # each task's reward pool
MIN_BALANCE = ETHER  # what every worker account needs for stakes and gas
STORES = ("local", "ipfs")


@dataclass(frozen=True)
class LoadConfig:
    """What the load run starts and how long it goes on."""

    workers: int = 50
    tasks: int = 5
    rounds: int = 10  # finalized rounds every task must reach
    processes: int = 5
    validators: int = 3  # per task
    poll: float = 2.0  # seconds between a worker's ticks, as `derelay worker` polls
    max_seconds: float = 900.0  # wall-clock cap on the run
    turn_duration: int = 60
    commit_window: int = 20
    reveal_window: int = 20
    slack: int = 30  # seconds on top of the windows before a task counts as stuck
    store: str = "local"  # "local": one shared LocalStore directory; "ipfs": the dev IPFS node
    engine: str = "ganache"  # the dev chain `main` starts: ganache, anvil, or both in turn
    block_time: float = 0.0  # seconds between blocks; 0: the engine's default

    @property
    def stuck_bound(self) -> int:
        """The longest a healthy relay goes without a new turn: a whole turn, then a whole
        review, then a keeper's tick and a block."""
        return self.turn_duration + self.commit_window + self.reveal_window + self.slack

    def task_params(self) -> dict[str, int]:
        """The task parameters every load task is created with."""
        return dict(
            min_stake=ETHER // 10,
            validator_stake=ETHER // 10,
            turn_duration=self.turn_duration,
            commit_window=self.commit_window,
            reveal_window=self.reveal_window,
            quorum=min(2, self.validators),
            max_validators=self.validators,
            max_queue=256,
        )

    def check(self) -> None:
        """Every task needs its validators and at least two relayers, so that turns rotate."""
        if self.tasks < 1 or self.processes < 1 or self.rounds < 1 or self.validators < 1:
            raise ConfigError("tasks, processes, rounds and validators must be at least 1")
        if self.store not in STORES:
            raise ConfigError(f"store must be one of {', '.join(STORES)}, not {self.store!r}")
        if self.engine not in (*ENGINES, "both"):
            raise ConfigError(
                f"engine must be one of {', '.join(ENGINES)} or both, not {self.engine!r}"
            )
        if self.block_time < 0:
            raise ConfigError(f"block time {self.block_time:g} s is negative: pass 0 or more")
        if self.workers // self.tasks < self.validators + 2:
            raise ConfigError(
                f"{self.workers} workers for {self.tasks} tasks leave fewer than "
                f"{self.validators} validators and 2 relayers per task: add workers"
            )


@dataclass(frozen=True)
class WorkerPlan:
    """One worker: its dev account, task and roles, and which data shard it holds."""

    account: int  # dev account index
    task_id: int
    roles: str  # as `Roles.parse` reads it
    shard: tuple[int, int] | None = None  # (index, count) of the task's relayer shards
    holdout: tuple[int, int] | None = None  # (index, count) of the task's validator shards

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> WorkerPlan:
        """Inverse of `asdict` through JSON, which turns the pairs into lists."""

        def pair(value: list[int] | None) -> tuple[int, int] | None:
            return (value[0], value[1]) if value else None

        return cls(
            raw["account"], raw["task_id"], raw["roles"], pair(raw["shard"]), pair(raw["holdout"])
        )


def plan_workers(config: LoadConfig, task_ids: list[int]) -> list[WorkerPlan]:
    """Deal dev accounts 1..workers round-robin to the tasks, then give out roles per task."""
    accounts: dict[int, list[int]] = {task: [] for task in task_ids}
    for i in range(config.workers):
        accounts[task_ids[i % len(task_ids)]].append(i + 1)
    plans: list[WorkerPlan] = []
    for task, members in accounts.items():
        validators, rest = members[: config.validators], members[config.validators :]
        plans += [
            WorkerPlan(a, task, "validator", holdout=(k, len(validators)))
            for k, a in enumerate(validators)
        ]
        if len(rest) >= 4:
            plans.append(WorkerPlan(rest[0], task, "keeper"))
            rest = rest[1:]
        plans += [
            WorkerPlan(a, task, "relayer,keeper" if k % 2 == 0 else "relayer", shard=(k, len(rest)))
            for k, a in enumerate(rest)
        ]
    return sorted(plans, key=lambda p: p.account)


# ---------------------------------------------------------------------- counters


@dataclass
class WorkerStats:
    """What one worker did and what went wrong, counted in its own thread."""

    account: int
    address: str
    task_id: int
    roles: str
    ticks: int = 0
    tick_seconds: float = 0.0
    tick_max_seconds: float = 0.0
    actions: int = 0
    sent: int = 0  # transactions the node accepted (eth_sendRawTransaction answered)
    mined: Counter[str] = field(default_factory=Counter)  # successful transactions by function
    refused: Counter[str] = field(default_factory=Counter)  # "function: error": estimate reverted
    failed: Counter[str] = field(default_factory=Counter)  # other transaction failures
    transport_errors: Counter[str] = field(default_factory=Counter)  # "method: error", retried
    rpc_calls: Counter[str] = field(default_factory=Counter)  # JSON-RPC requests by method
    # their total and their longest time by method
    rpc_seconds: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    rpc_max_seconds: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    tick_failures: Counter[str] = field(default_factory=Counter)  # transient: the tick is redone
    crash: str | None = None  # what stopped the worker for good

    def to_json(self) -> dict[str, Any]:
        # Not `asdict`: it would rebuild each Counter from its (key, count) pairs.
        return {f.name: getattr(self, f.name) for f in fields(self)}


# Stats of each worker's Web3, found by the middleware through the Web3 it is attached to.
_STATS: dict[int, WorkerStats] = {}


class CountingMiddleware(Web3Middleware):
    """Times every request; counts transactions the node accepted and requests that failed in
    transport."""

    def wrap_make_request(self, make_request: Callable[..., Any]) -> Callable[..., Any]:
        def middleware(method: str, params: Any) -> Any:
            stats = _STATS[id(self._w3)]
            started = time.perf_counter()
            try:
                response = make_request(method, params)
            except TRANSPORT_ERRORS as exc:
                stats.transport_errors[f"{method}: {_error_key(exc)}"] += 1
                raise
            finally:
                seconds = time.perf_counter() - started
                stats.rpc_calls[method] += 1
                stats.rpc_seconds[method] += seconds
                stats.rpc_max_seconds[method] = max(stats.rpc_max_seconds[method], seconds)
            if method == "eth_sendRawTransaction" and "result" in response:
                stats.sent += 1
            return response

        return middleware


class CountingClient(ChainClient):
    """A `ChainClient` that counts the outcome of every transaction in `stats`: refused when
    its check reverts (nothing is sent), then mined, refused on chain or failed when it is done."""

    def __init__(
        self, w3: Web3, account: LocalAccount, decoder: RevertDecoder, stats: WorkerStats
    ) -> None:
        super().__init__(w3, account, decoder)
        self.stats = stats
        _STATS[id(w3)] = stats
        w3.middleware_onion.add(CountingMiddleware, "derelay_load_counting")

    def prepare(
        self,
        fn: ContractFunction,
        action: str,
        key: str,
        value: int = 0,
        gas: int | None = None,
    ) -> SentTx:
        try:
            return super().prepare(fn, action, key, value, gas)
        except ContractRevert as exc:
            self.stats.refused[f"{action}: {exc.name or 'unknown'}"] += 1
            raise

    def poll(self, tx: SentTx) -> TxStatus:
        status = super().poll(tx)
        if status.state == "confirmed":
            self.stats.mined[tx.action] += 1
        elif isinstance(status.error, ContractRevert):
            self.stats.refused[f"{tx.action}: {status.error.name or 'unknown'}"] += 1
        elif status.state != "pending":
            self.stats.failed[_error_key(status.error or ChainError(status.note))] += 1
        return status


def _error_key(exc: BaseException) -> str:
    """An error's first line without hashes and numbers, so that alike failures count together."""
    first = (str(exc).splitlines() or [""])[0]
    return f"{type(exc).__name__}: " + re.sub(r"0x[0-9a-fA-F]+|\d+", "#", first)[:120]


# ---------------------------------------------------------------------- worker processes


def _drive(worker: Worker, stats: WorkerStats, stop: threading.Event, poll: float) -> None:
    """Tick `worker` every `poll` seconds until `stop`, as `run_scheduled` does: a transient
    failure is counted and the next tick tries again; anything else stops this worker."""
    while not stop.is_set():
        started = time.monotonic()
        try:
            stats.actions += len(worker.tick())
        except TRANSIENT_ERRORS as exc:
            stats.tick_failures[_error_key(exc)] += 1
            log.warning("worker %s: tick failed, retrying: %s", stats.address, exc)
        except Exception as exc:
            stats.crash = f"{type(exc).__name__}: {exc}"
            log.exception("worker %s crashed", stats.address)
            return
        seconds = time.monotonic() - started
        stats.ticks += 1
        stats.tick_seconds += seconds
        stats.tick_max_seconds = max(stats.tick_max_seconds, seconds)
        stop.wait(max(0.0, poll - seconds))


def child_main(config_path: Path) -> None:
    """One worker process: build its workers, tick each in a thread until SIGTERM, write stats."""
    import torch

    torch.set_num_threads(1)  # many small models in one process on a few cores
    cfg = json.loads(config_path.read_text())
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(threadName)s %(message)s")
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    abi = load_abi()
    decoder = decoder_for(abi)
    store = open_store(cfg["ipfs"], Path(cfg["store"]))
    specs: dict[int, TaskSpec] = {}
    shards: dict[tuple[str, int, int], list[Dataset]] = {}
    threads: list[threading.Thread] = []
    runs: list[WorkerStats] = []
    for raw in cfg["workers"]:
        plan = WorkerPlan.from_json(raw)
        account = dev_account(plan.account)
        stats = WorkerStats(plan.account, account.address, plan.task_id, plan.roles)
        client = CountingClient(connect(cfg["rpc"]), account, decoder, stats)
        relay = DeRelayContract(client, cfg["contract"], abi)
        if plan.task_id not in specs:
            specs[plan.task_id] = load_spec(store, relay.task_params(plan.task_id).spec_cid)
        spec = specs[plan.task_id]
        data: dict[str, Dataset] = {}
        for kind, part in (("train_data", plan.shard), ("holdout", plan.holdout)):
            if part is not None:
                key = (kind, plan.task_id, part[1])
                if key not in shards:
                    deal = relayer_shards if kind == "train_data" else validator_shards
                    # IID shards; each call reads only its own count of the plan
                    shards[key] = deal(spec, ShardPlan(part[1], part[1], alpha=None))
                data[kind] = shards[key][part[0]]
        config = WorkerConfig(plan.task_id, Roles.parse(plan.roles), seed=plan.account)
        journal = Journal(Path(cfg["journals"]) / f"{account.address}.json")
        worker = Worker(relay, store, spec, config, journal, **data)  # type: ignore[arg-type]
        runs.append(stats)
        threads.append(
            threading.Thread(
                target=_drive,
                args=(worker, stats, stop, cfg["poll"]),
                name=f"w{plan.account}",
                daemon=True,
            )
        )
    for thread in threads:
        thread.start()
    while not stop.is_set() and any(t.is_alive() for t in threads):
        stop.wait(0.5)
    stop.set()
    # A tick stuck in retries is not waited for long: the counts so far are written anyway.
    deadline = time.monotonic() + 30
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    Path(cfg["stats"]).write_text(json.dumps([s.to_json() for s in runs], indent=1) + "\n")


# ---------------------------------------------------------------------- the run


def _watch(
    relay: DeRelayContract,
    config: LoadConfig,
    task_ids: list[int],
    children: list[subprocess.Popen[bytes]],
    echo: Callable[[str], None],
    estimates: list[float],
) -> str:
    """Wait until every task has finalized `config.rounds` rounds; return why the run ended.
    Every 2 s, time one gas estimate (a pool top-up) into `estimates`: what any transaction
    that asks the loaded node for one waits."""
    started = time.monotonic()
    w3 = relay.client.w3
    finalized: Counter[int] = Counter()
    rounds = dict.fromkeys(task_ids, 0)
    moved_at = dict.fromkeys(task_ids, started)  # when each task's round last changed
    next_block = int(w3.eth.block_number)
    next_echo = started + 15
    probe = relay.contract.functions.fund(task_ids[0])
    while True:
        time.sleep(2)
        asked = time.perf_counter()
        with contextlib.suppress(*TRANSPORT_ERRORS):
            probe.estimate_gas({"from": relay.client.address, "value": 1})
            estimates.append(time.perf_counter() - asked)
        now = time.monotonic()
        latest = int(w3.eth.block_number)
        if latest >= next_block:  # anvil refuses a range that starts past its latest block
            for event in relay.events("RoundFinalized", next_block, latest):
                finalized[event["args"]["taskId"]] += 1
            next_block = latest + 1
        for task in task_ids:
            round_ = relay.task_state(task).round
            if round_ != rounds[task]:
                rounds[task], moved_at[task] = round_, now
        if now >= next_echo:
            done = ", ".join(f"task {t}: {finalized[t]}" for t in task_ids)
            echo(f"load: {now - started:.0f} s, finalized rounds {done}")
            next_echo = now + 15
        if all(finalized[t] >= config.rounds for t in task_ids):
            return "every task reached its rounds"
        dead = [c for c in children if c.poll() is not None]
        if dead:
            return f"worker process {dead[0].pid} exited early with code {dead[0].returncode}"
        stalled = [t for t in task_ids if now - moved_at[t] > config.stuck_bound]
        if stalled:
            return f"tasks {stalled} made no progress for {config.stuck_bound} s"
        if now - started > config.max_seconds:
            return f"wall-clock cap of {config.max_seconds:.0f} s"


def _stop(children: list[subprocess.Popen[bytes]]) -> list[int | None]:
    """SIGTERM every worker process (each finishes its ticks), SIGKILL what outlives 60 s."""
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    codes: list[int | None] = []
    for child in children:
        try:
            codes.append(child.wait(60))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
            codes.append(None)
    return codes


def run_load(
    config: LoadConfig,
    rpc: str,
    work: Path,
    echo: Callable[[str], None] = print,
    ipfs: str | None = None,
) -> dict[str, Any]:
    """Deploy, publish the tasks, run the worker processes against `rpc` (whose dev accounts
    0..workers must be funded) and, when `ipfs` is given, that IPFS node; stop them, and return
    the report."""
    config.check()
    if (config.store == "ipfs") != (ipfs is not None):
        raise ConfigError(
            f"store {config.store!r} with IPFS node {ipfs}: give a node for ipfs only"
        )
    work.mkdir(parents=True, exist_ok=True)
    w3 = connect(rpc)
    publisher = DeRelayContract.deploy(ChainClient(w3, dev_account(0), decoder_for()))
    addresses = [dev_account(i + 1).address for i in range(config.workers)]
    poor = [a for a in addresses if w3.eth.get_balance(a) < MIN_BALANCE]
    if poor:
        raise ConfigError(
            f"{len(poor)} worker accounts hold less than 1 ether (first {poor[0]}): start ganache "
            f"with at least {config.workers + 1} accounts"
        )
    store = open_store(ipfs, work / "store")
    task_ids = [
        publish_task(
            publisher, store, LOAD_SPEC, POOL, overrides=config.task_params(), genesis_seed=k
        ).task_id
        for k in range(config.tasks)
    ]
    plans = plan_workers(config, task_ids)
    nonces = {a: w3.eth.get_transaction_count(a) for a in addresses}
    echo(
        f"load: {config.workers} workers on tasks {task_ids} in {config.processes} processes, "
        f"{config.rounds} rounds each; contract {publisher.address}"
    )
    children: list[subprocess.Popen[bytes]] = []
    estimates: list[float] = []
    started = time.monotonic()
    try:
        for k in range(config.processes):
            children.append(
                _spawn(
                    k, plans[k :: config.processes], rpc, ipfs, publisher.address, work, config.poll
                )
            )
        reason = _watch(publisher, config, task_ids, children, echo, estimates)
    finally:
        run_seconds = time.monotonic() - started
        codes = _stop(children)
    echo(f"load: stopped after {run_seconds:.0f} s: {reason}")
    stats = [s for k in range(len(children)) for s in _read_stats(work / f"stats-{k}.json")]
    end = int(w3.eth.get_block("latest")["timestamp"])
    tasks = [_task_report(publisher, config, t, plans, end) for t in task_ids]
    report: dict[str, Any] = {
        "config": {**asdict(config), "stuck_bound_s": config.stuck_bound},
        "machine": machine_info(),
        "contract": publisher.address,
        "ended": reason,
        "estimate_probe_ms": {
            "n": len(estimates),
            "median": round(1000 * median(estimates), 1),
            "max": round(1000 * max(estimates, default=0.0), 1),
        },
        "run_s": round(run_seconds, 1),
        "exit_codes": codes,
        "tasks": tasks,
        **_totals(tasks, stats, end),
    }
    report["transactions"]["nonces"] = sum(
        w3.eth.get_transaction_count(a) - n for a, n in nonces.items()
    )
    report["ok"] = (
        report["stuck_tasks"] == 0
        and not report["failures"]["crashes"]
        and codes == [0] * len(codes)
        and all(t["finalized"] >= config.rounds for t in tasks)
    )
    return report


def _spawn(
    k: int,
    plans: list[WorkerPlan],
    rpc: str,
    ipfs: str | None,
    contract: str,
    work: Path,
    poll: float,
) -> subprocess.Popen[bytes]:
    config_path = work / f"process-{k}.json"
    config_path.write_text(
        json.dumps(
            {
                "rpc": rpc,
                "contract": contract,
                "store": str(work / "store"),
                "ipfs": ipfs,
                "journals": str(work / "journals"),
                "poll": poll,
                "stats": str(work / f"stats-{k}.json"),
                "workers": [asdict(p) for p in plans],
            }
        )
    )
    with open(work / f"process-{k}.log", "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "bench.load", "--child", str(config_path)],
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _read_stats(path: Path) -> list[dict[str, Any]]:
    with contextlib.suppress(OSError, ValueError):
        return list(json.loads(path.read_text()))
    return []


# ---------------------------------------------------------------------- the report


def _task_report(
    relay: DeRelayContract, config: LoadConfig, task_id: int, plans: list[WorkerPlan], end: int
) -> dict[str, Any]:
    """One task's turns and verdicts from the chain's events; its longest wait for a new turn."""
    w3 = relay.client.w3
    state = relay.task_state(task_id)
    starts = {
        e["args"]["round"]: e["args"]["deadline"] - config.turn_duration
        for e in relay.events("TurnStarted", taskId=task_id)
    }
    finals = relay.events("RoundFinalized", taskId=task_id)
    verdicts = Counter(Status(e["args"]["verdict"]).name.lower() for e in finals)
    turn_seconds = [
        int(w3.eth.get_block(e["blockNumber"])["timestamp"]) - starts[e["args"]["round"]]
        for e in finals
    ]
    ended = state.round if state.phase == Phase.IDLE else state.round - 1
    times = sorted(starts.values()) + [end]
    gap = max(b - a for a, b in itertools.pairwise(times)) if starts else None
    members = [Roles.parse(p.roles) for p in plans if p.task_id == task_id]
    return {
        "task_id": task_id,
        "relayers": sum(r.relayer for r in members),
        "validators": sum(r.validator for r in members),
        "keepers": sum(r.keeper for r in members),
        "round": state.round,
        "phase": state.phase.name.lower(),
        "finalized": len(finals),
        **{v: verdicts[v] for v in ("accepted", "held", "rejected", "void")},
        "skipped": ended - len(finals),
        **{
            key: len(relay.events(event, taskId=task_id))
            for key, event in (
                ("commits", "ScoreCommitted"),
                ("reveals", "ScoreRevealed"),
                ("validators_slashed", "ValidatorSlashed"),
                ("validators_outvoted", "ValidatorOutvoted"),
                ("commits_missed", "ValidatorMissed"),
            )
        },
        "head_score": state.head_score,
        "champion_score": state.champion_score,
        "first_turn_at": min(starts.values(), default=None),
        "turn_seconds": turn_seconds,
        "max_gap_s": gap,
        "stuck": gap is None or gap > config.stuck_bound,
    }


def _totals(tasks: list[dict[str, Any]], stats: list[dict[str, Any]], end: int) -> dict[str, Any]:
    """Turns and throughput over every task; transactions and failures over every worker."""
    turns: dict[str, Any] = {
        k: sum(t[k] for t in tasks)
        for k in (
            "finalized",
            "accepted",
            "held",
            "rejected",
            "void",
            "skipped",
            "commits",
            "reveals",
        )
    }
    seconds = [s for t in tasks for s in t["turn_seconds"]]
    turns["start_to_finalize_s"] = {
        "median": median(seconds),
        "p95": round(float(np.percentile(seconds, 95)), 1) if seconds else 0.0,
    }
    first = min((t["first_turn_at"] for t in tasks if t["first_turn_at"]), default=end)
    minutes = max(end - first, 1) / 60
    turns["per_minute"] = round((turns["finalized"] + turns["skipped"]) / minutes, 2)
    turns["chain_minutes"] = round(minutes, 2)

    def counted(name: str) -> dict[str, int]:
        return dict(sum((Counter(s[name]) for s in stats), Counter()).most_common())

    calls, rpc_seconds = counted("rpc_calls"), counted("rpc_seconds")
    rpc = {
        method: {
            "calls": n,
            "mean_ms": round(1000 * rpc_seconds[method] / n, 1),
            "max_ms": round(1000 * max(s["rpc_max_seconds"].get(method, 0) for s in stats)),
        }
        for method, n in calls.items()
    }
    ticks = sum(s["ticks"] for s in stats)

    return {
        "workers": len(stats),
        "turns": turns,
        "transactions": {
            "sent": sum(s["sent"] for s in stats),
            "mined": counted("mined"),
            "refused": counted("refused"),
            "failed": counted("failed"),
            "transport_errors": counted("transport_errors"),
        },
        "rpc": rpc,
        "failures": {
            "ticks": ticks,
            "tick_mean_s": round(sum(s["tick_seconds"] for s in stats) / max(ticks, 1), 2),
            "tick_max_s": round(max((s["tick_max_seconds"] for s in stats), default=0), 1),
            "tick_failures": counted("tick_failures"),
            "crashes": {s["address"]: s["crash"] for s in stats if s["crash"]},
        },
        "stuck_tasks": sum(t["stuck"] for t in tasks),
    }


def render(report: dict[str, Any]) -> str:
    """The report as markdown: a row per task, then the totals."""
    cfg, turns, tx, fail = (
        report["config"],
        report["turns"],
        report["transactions"],
        report["failures"],
    )
    rows = [
        [
            t["task_id"],
            f"{t['relayers']}/{t['validators']}/{t['keepers']}",
            t["finalized"],
            t["accepted"],
            t["held"],
            t["rejected"],
            t["void"],
            t["skipped"],
            t["commits"],
            t["reveals"],
            t["validators_slashed"],
            t["commits_missed"],
            median(t["turn_seconds"]),
            t["max_gap_s"],
            "STUCK" if t["stuck"] else "no",
        ]
        for t in report["tasks"]
    ]
    header = ["task", "relayers/validators/keepers", "finalized", "accepted", "held", "rejected"]
    header += ["void", "skipped", "commits", "reveals", "validators slashed"]
    header += ["commits missed", "median turn s"]
    header += ["longest gap s", "stuck"]
    lines = [
        f"# Load: {report['workers']} workers, {len(report['tasks'])} tasks, "
        f"{cfg['processes']} processes, store {cfg['store']}",
        "",
        f"- machine: {machine_line(report['machine'])}",
        f"- run: {report['run_s']:.0f} s wall; ended: {report['ended']}",
        f"- turns: {turns['finalized']} finalized ({turns['accepted']} accepted, "
        f"{turns['held']} held, {turns['rejected']} rejected, {turns['void']} void), {turns['skipped']} skipped; "
        f"**{turns['per_minute']:.1f} turns per minute** over {turns['chain_minutes']:.1f} min",
        f"- turn start to finalize: median {turns['start_to_finalize_s']['median']:.1f} s, "
        f"p95 {turns['start_to_finalize_s']['p95']:.1f} s (commit window "
        f"{cfg['commit_window']} s, reveal window {cfg['reveal_window']} s)",
        f"- transactions: {tx['sent']} sent ({tx['nonces']} by the accounts' nonces), "
        f"{sum(tx['mined'].values())} succeeded, {sum(tx['refused'].values())} refused at gas "
        f"estimation (nothing sent), {sum(tx['failed'].values())} failed; "
        f"{sum(tx['transport_errors'].values())} requests failed in transport and were retried",
        f"- ticks: {fail['ticks']} (mean {fail['tick_mean_s']:.2f} s, longest "
        f"{fail['tick_max_s']:.1f} s), {sum(fail['tick_failures'].values())} failed and retried; "
        f"crashed workers: {len(fail['crashes'])}",
        f"- gas estimate of a pool top-up, asked every 2 s: median "
        f"{report['estimate_probe_ms']['median']} ms, longest {report['estimate_probe_ms']['max']} ms "
        f"({report['estimate_probe_ms']['n']} asked)",
        f"- **stuck tasks: {report['stuck_tasks']}** (bound {cfg['stuck_bound_s']} s without a "
        "new turn)",
        "",
        table(header, rows),
        "",
        "JSON-RPC requests from the workers:",
        "",
        table(
            ["method", "calls", "mean ms", "max ms"],
            [[m, r["calls"], r["mean_ms"], r["max_ms"]] for m, r in report["rpc"].items()],
        ),
    ]
    for title, counts in (
        ("Refused at gas estimation (handled by the worker)", tx["refused"]),
        ("Failed transactions", tx["failed"]),
        ("Requests retried after a transport error", tx["transport_errors"]),
        ("Failed ticks", fail["tick_failures"]),
        ("Crashed workers", fail["crashes"]),
    ):
        if counts:
            lines += ["", f"{title}:", ""] + [f"- {k}: {v}" for k, v in counts.items()]
    return "\n".join(lines) + "\n"


def run_on_engine(config: LoadConfig, engine: str, out: Path) -> dict[str, Any]:
    """Start a fresh dev chain on `engine` (and the dev IPFS node for `--store ipfs`), run the
    load on it into `out`, stop everything; return the report, with the engine named."""
    # journals and content of an earlier chain would mislead the workers
    for stale in ("journals", "store", "ipfs-repo"):
        shutil.rmtree(out / stale, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as services:
        chain = start_chain(
            engine,
            None,
            block_time=config.block_time or None,
            accounts=config.workers + 1,
            log_path=out / f"{engine}.log",
        )
        services.callback(chain.stop)
        ipfs = None
        if config.store == "ipfs":
            node = start_ipfs(out / "ipfs-repo", log_path=out / "ipfs.log")
            services.callback(node.stop)
            ipfs = node.url
        report = run_load(config, chain.url, out, ipfs=ipfs)
    report["engine"] = engine
    (out / "load.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def _mean_ms(report: dict[str, Any], methods: tuple[str, ...] | None = None) -> str:
    """Mean latency over the RPC calls of `methods` (all when None), or "-" when none was made."""
    rows = [r for m, r in report["rpc"].items() if methods is None or m in methods]
    calls = sum(r["calls"] for r in rows)
    if not calls:
        return "-"
    return f"{sum(r['mean_ms'] * r['calls'] for r in rows) / calls:.1f}"


def render_side_by_side(reports: list[dict[str, Any]]) -> str:
    """The figures that tell the engines apart, a column per engine."""
    rows = [
        ["turns per minute", *(f"{r['turns']['per_minute']:.1f}" for r in reports)],
        ["finalized rounds (void)", *(f"{r['turns']['finalized']} ({r['turns']['void']})" for r in reports)],
        ["turn start to finalize, median s", *(f"{r['turns']['start_to_finalize_s']['median']:.1f}" for r in reports)],
        ["RPC latency, mean ms (all calls)", *(_mean_ms(r) for r in reports)],
        ["eth_call, mean ms", *(_mean_ms(r, ("eth_call",)) for r in reports)],
        ["eth_sendRawTransaction, mean ms", *(_mean_ms(r, ("eth_sendRawTransaction",)) for r in reports)],
        ["eth_estimateGas by workers, mean ms", *(_mean_ms(r, ("eth_estimateGas",)) for r in reports)],
        ["gas estimate probe, median ms (max)", *(f"{r['estimate_probe_ms']['median']} ({r['estimate_probe_ms']['max']})" for r in reports)],
        ["tick, mean s (longest)", *(f"{r['failures']['tick_mean_s']:.2f} ({r['failures']['tick_max_s']:.1f})" for r in reports)],
        ["failed ticks", *(str(sum(r["failures"]["tick_failures"].values())) for r in reports)],
        ["stuck tasks", *(str(r["stuck_tasks"]) for r in reports)],
    ]  # fmt: skip
    return table(["", *(r["engine"] for r in reports)], rows) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    defaults = LoadConfig()
    for option in fields(LoadConfig):  # every field is a flag: --workers, --commit-window, ...
        default = getattr(defaults, option.name)
        flag = "--" + option.name.replace("_", "-")
        parser.add_argument(flag, type=type(default), default=default)
    parser.add_argument("--out", type=Path, default=Path("out/load"))
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child_main(args.child)
        return
    config = LoadConfig(
        **{option.name: getattr(args, option.name) for option in fields(LoadConfig)}
    )
    config.check()
    if config.engine == "both":
        reports = [run_on_engine(config, e, args.out / e) for e in ENGINES]
        for report in reports:
            print(f"## {report['engine']}\n\n{render(report)}")
        print(render_side_by_side(reports))
    else:
        reports = [run_on_engine(config, config.engine, args.out)]
        print(render(reports[0]))
    sys.exit(0 if all(r["ok"] for r in reports) else 1)


if __name__ == "__main__":
    main()
