"""What the benchmarks share: the machine they ran on, markdown tables, the chains they run on
(the embedded chain of `derelay.lab.harness` and ganache) and a phase timer."""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from web3 import Web3
from web3.middleware import Web3Middleware

from derelay.lab.harness import clients_for, start_relay
from derelay.trainer.chain import ChainClient, connect
from derelay.trainer.contract import DeRelayContract
from derelay.trainer.keys import dev_account
from derelay.trainer.services import RunningService, start_ganache

REPO = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------------- the machine


def machine_info() -> dict[str, Any]:
    """CPU model, cores, memory, Python and library versions, and the commit measured."""
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_gib: float | None = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = round(int(line.split()[1]) / 1024**2, 1)
    info: dict[str, Any] = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_gib": mem_gib,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
    }
    for name in ("torch", "web3", "eth_tester", "eth"):
        with contextlib.suppress(ImportError, AttributeError):
            module = __import__(name)
            version = getattr(module, "__version__", None)
            if version is None:
                from importlib.metadata import version as dist_version

                version = dist_version({"eth": "py-evm", "eth_tester": "eth-tester"}[name])
            info[name if name != "eth" else "py_evm"] = str(version)
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
        info["commit"] = head + ("+dirty" if dirty else "")
    return info


def machine_line(info: dict[str, Any]) -> str:
    """One line naming the machine, for the top of a report."""
    return (
        f"{info['cpu']}, {info['usable_cores']} of {info['cores']} cores, "
        f"{info.get('memory_gib')} GiB; Python {info['python']}, torch {info.get('torch', '?')}; "
        f"commit {info.get('commit', '?')}"
    )


# ---------------------------------------------------------------------- markdown


def table(header: Sequence[str], rows: Sequence[Sequence[object]], align: str = "") -> str:
    """A markdown table; `align` gives one character per column, l or r (default: l then r)."""
    align = align or "l" + "r" * (len(header) - 1)
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|",
    ]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def ms(seconds: float | None) -> str:
    """Seconds as milliseconds for a table cell."""
    if seconds is None:
        return ""
    return f"{seconds * 1000:.1f}" if seconds < 10 else f"{seconds * 1000:.0f}"


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else 0.0


# ---------------------------------------------------------------------- phase timing


@dataclass
class Recorder:
    """Wall time per named phase, nested: a phase entered inside another is recorded as
    "outer/inner" and still counts in the outer one. `take()` returns and clears the totals."""

    totals: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    stack: list[str] = field(default_factory=list)

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        key = f"{self.stack[-1]}/{name}" if self.stack else name
        # A phase re-entered inside itself (a wrapped function calling another wrapped one of
        # the same phase) is timed once, by the outermost entry.
        if self.stack and (self.stack[-1] == key or self.stack[-1].endswith("/" + name)):
            yield
            return
        self.stack.append(key)
        started = time.perf_counter()
        try:
            yield
        finally:
            self.totals[key] += time.perf_counter() - started
            self.counts[key] += 1
            self.stack.pop()

    def take(self) -> dict[str, float]:
        out = dict(self.totals)
        self.totals.clear()
        self.counts.clear()
        return out


class TimingMiddleware(Web3Middleware):
    """Times every JSON-RPC request as a phase "rpc <method>" of the recorder in `RECORDERS`."""

    def wrap_make_request(self, make_request: Callable[..., Any]) -> Callable[..., Any]:
        def middleware(method: str, params: Any) -> Any:
            recorder = RECORDERS.get(id(self._w3))
            if recorder is None:
                return make_request(method, params)
            with recorder.phase(f"rpc {method}"):
                return make_request(method, params)

        return middleware


RECORDERS: dict[int, Recorder] = {}


def time_rpc(w3: Web3, recorder: Recorder) -> None:
    """Record every RPC request `w3` makes in `recorder` (outermost middleware), and the whole
    wait for each receipt, polling sleeps included, as the phase "wait receipt"."""
    RECORDERS[id(w3)] = recorder
    if "derelay_bench_timing" not in w3.middleware_onion:
        w3.middleware_onion.add(TimingMiddleware, "derelay_bench_timing")
    eth = w3.eth
    if not getattr(eth.wait_for_transaction_receipt, "_bench_timed", False):
        wait = eth.wait_for_transaction_receipt

        def timed_wait(*args: Any, **kwargs: Any) -> Any:
            with recorder.phase("wait receipt"):
                return wait(*args, **kwargs)

        timed_wait._bench_timed = True  # type: ignore[attr-defined]
        eth.wait_for_transaction_receipt = timed_wait  # type: ignore[method-assign]


# ---------------------------------------------------------------------- chains


@dataclass
class BenchChain:
    """A chain with funded dev accounts, a deployed contract and a way to move its clock."""

    name: str  # "embedded" or "ganache"
    w3: Web3
    clients: list[ChainClient]
    relay: DeRelayContract  # seen by clients[0], the publisher
    advance_to: Callable[[int], None]  # make the next block's timestamp at least this
    service: RunningService | None = None

    def now(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def close(self) -> None:
        if self.service is not None:
            self.service.stop()
            self.service = None


def embedded_chain(accounts: int, ether_each: int = 1_000) -> BenchChain:
    """The in-process eth-tester chain (py-evm), `accounts` dev accounts funded, DeRelay deployed."""
    embedded = start_relay([dev_account(i) for i in range(accounts)], ether_each)
    chain = embedded.chain
    return BenchChain("embedded", chain.w3, embedded.clients, embedded.relay, chain.advance_to)


def ganache_chain(accounts: int, db_dir: Path) -> BenchChain:
    """ganache (a child process, mining every second, its database in `db_dir`), DeRelay deployed."""
    service = start_ganache(db_dir, accounts=accounts, log_path=db_dir.parent / "ganache.log")
    try:
        w3 = connect(service.url)
        clients = clients_for(w3, [dev_account(i) for i in range(accounts)])
        relay = DeRelayContract.deploy(clients[0])
    except BaseException:
        service.stop()
        raise

    def advance_to(timestamp: int) -> None:
        latest = int(w3.eth.get_block("latest")["timestamp"])
        if timestamp > latest:
            w3.provider.make_request("evm_increaseTime", [timestamp - latest])  # type: ignore[arg-type]
        w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]

    return BenchChain("ganache", w3, clients, relay, advance_to, service)
