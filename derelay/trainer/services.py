"""Start the dev services as child processes: the js-ipfs node and a dev chain (ganache or anvil).

Each runs in its own process group, so `RunningService.stop()` ends it and everything it spawned.
Both listen on 127.0.0.1 only. Tests use these, and so does the CLI.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import requests

from derelay.trainer.errors import ChainError, ConfigError, DeRelayError, StoreError

GANACHE_DIR = Path(__file__).resolve().parents[2] / "ganache"
IPFS_SCRIPT = GANACHE_DIR / "start-ipfs.sh"
GANACHE_CLI = GANACHE_DIR / "node_modules" / "ganache" / "dist" / "node" / "cli.js"
ANVIL_BIN = GANACHE_DIR / "node_modules" / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"
ENGINES = ("ganache", "anvil")
# The chain id each engine runs by default (both are dev chain ids: dev accounts may sign).
ENGINE_CHAIN_IDS = {"ganache": 1337, "anvil": 31337}

_LOG_TAIL = 600


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _needs_checkout(what: str, instead: str, setting: str) -> ConfigError:
    """The error for a dev service run from an installed derelay, which has no ganache/ folder;
    `setting` names where the running service's URL goes instead."""
    return ConfigError(
        f"{what} comes from the repository's ganache/ folder (npm packages and scripts), which "
        f"an installed derelay does not have: clone the DeRelayL repository and run `make install` "
        f"in it, or {instead}",
        setting=setting,
    )


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class RunningService:
    """A dev service running as a child process group; `stop()` (or `with`) ends it."""

    def __init__(
        self, name: str, url: str, process: subprocess.Popen[bytes], log_path: Path, own_log: bool
    ) -> None:
        self.name = name
        self.url = url
        self.process = process
        self.log_path = log_path
        self._own_log = own_log

    def __repr__(self) -> str:
        return f"RunningService({self.name!r}, {self.url!r}, pid={self.pid})"

    @property
    def pid(self) -> int:
        """The process id of the service (also its process group id)."""
        return self.process.pid

    def running(self) -> bool:
        """Whether the main process is still alive."""
        return self.process.poll() is None

    def log_tail(self) -> str:
        """The end of the service's output, on one line."""
        try:
            text = self.log_path.read_bytes()[-_LOG_TAIL:].decode("utf-8", "replace")
        except OSError:
            return ""
        return " ".join(text.split())

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the process group, SIGKILL it after `timeout` s; remove a temporary log."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)
            self.process.wait()
        # Children that outlived the leader belong to the same group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        if self._own_log:
            with contextlib.suppress(OSError):
                self.log_path.unlink()

    def __enter__(self) -> RunningService:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _launch(
    name: str,
    cmd: list[str],
    url: str,
    ready: Callable[[], bool],
    timeout: float,
    log_path: Path | None,
    error: type[DeRelayError],
) -> RunningService:
    """Start `cmd` in a new session, wait until `ready()` is true, stop it on failure."""
    if shutil.which(cmd[0]) is None:
        raise ConfigError(f"`{cmd[0]}` is not on PATH: install it to run the dev {name}")
    own_log = log_path is None
    if log_path is None:
        slug = name.lower().replace(" ", "-")
        fd, tmp = tempfile.mkstemp(prefix=f"derelay-{slug}-", suffix=".log")
        os.close(fd)
        log_path = Path(tmp)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    service = RunningService(name, url, process, log_path, own_log)
    deadline = time.monotonic() + timeout
    try:
        while True:
            if not service.running():
                raise error(
                    f"the dev {name} exited with code {process.returncode} while starting: "
                    f"{service.log_tail() or 'no output'}"
                )
            with contextlib.suppress(requests.RequestException, ValueError, KeyError, TypeError):
                if ready():
                    return service
            if time.monotonic() > deadline:
                raise error(
                    f"the dev {name} did not answer at {url} within {timeout:g} s: "
                    f"{service.log_tail() or 'no output'}"
                )
            time.sleep(0.2)
    except BaseException:
        service.stop()
        raise


def _check_port(port: int, name: str, error: type[DeRelayError]) -> None:
    if not 0 < port < 65536:
        raise ConfigError(f"{port} is not a TCP port: pick one between 1 and 65535")
    if _port_in_use(port):
        raise error(
            f"port {port} on 127.0.0.1 is already in use: pick another port for the dev {name} "
            "or stop what listens there"
        )


def start_ipfs(
    repo_dir: Path,
    port: int | None = None,
    *,
    gateway_port: int | None = None,
    timeout: float = 60.0,
    log_path: Path | None = None,
) -> RunningService:
    """Run the dev IPFS node (js-ipfs, offline) on 127.0.0.1:`port` with its repo in `repo_dir`.

    The repo is created on first use. Returns once /api/v0/version answers; output goes to
    `log_path` (a temporary file if None).
    """
    if not GANACHE_DIR.is_dir():
        raise _needs_checkout(
            "the dev IPFS node", "run a Kubo node (ipfs daemon) and use its API URL", "ipfs"
        )
    if not IPFS_SCRIPT.is_file():
        raise ConfigError(f"{IPFS_SCRIPT} is missing: the checkout is incomplete")
    port = free_port() if port is None else port
    _check_port(port, "IPFS node", StoreError)
    cmd = ["bash", str(IPFS_SCRIPT), str(Path(repo_dir)), str(port)]
    if gateway_port is not None:
        _check_port(gateway_port, "IPFS gateway", StoreError)
        cmd.append(str(gateway_port))
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        resp = requests.post(f"{url}/api/v0/version", timeout=2)
        return resp.status_code == 200 and "Version" in resp.json()

    return _launch("IPFS node", cmd, url, ready, timeout, log_path, StoreError)


def start_ganache(
    db_dir: Path | None,
    port: int | None = None,
    chain_id: int = 1337,
    accounts: int = 10,
    *,
    block_time: int = 1,
    timeout: float = 60.0,
    log_path: Path | None = None,
) -> RunningService:
    """Run the dev chain (ganache, deterministic accounts) on 127.0.0.1:`port`.

    It mines a block every `block_time` seconds, like a real chain, so that block time follows
    the clock even when nobody transacts: a deadline that passed is seen as passed by calls and
    gas estimates. (With `block_time` 0 it mines only on transactions, and the latest block's
    timestamp can lag the clock indefinitely.)

    With `db_dir` the chain persists there; without it, it lives in memory. Returns once
    eth_chainId answers with `chain_id`.
    """
    if not GANACHE_DIR.is_dir():
        raise _needs_checkout("the ganache dev chain", "use the URL of a running chain", "rpc")
    if not GANACHE_CLI.is_file():
        raise ConfigError(f"ganache is not installed: run `npm ci` in {GANACHE_DIR}")
    port = free_port() if port is None else port
    _check_port(port, "chain", ChainError)
    cmd = [
        "node",
        str(GANACHE_CLI),
        "--wallet.deterministic",
        "--chain.chainId",
        str(chain_id),
        "--logging.quiet",
        "--server.host",
        "127.0.0.1",
        "--server.port",
        str(port),
        "--miner.blockTime",
        str(block_time),
        "--chain.hardfork",
        "shanghai",
        "--wallet.totalAccounts",
        str(accounts),
        "--wallet.defaultBalance",
        "1000",
    ]
    if db_dir is not None:
        Path(db_dir).mkdir(parents=True, exist_ok=True)
        cmd += ["--database.dbPath", str(db_dir)]
    url = f"http://127.0.0.1:{port}"
    return _launch(
        "chain", cmd, url, _answers_chain_id(url, chain_id), timeout, log_path, ChainError
    )


def _answers_chain_id(url: str, chain_id: int) -> Callable[[], bool]:
    def ready() -> bool:
        payload = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
        resp = requests.post(url, json=payload, timeout=2)
        return int(resp.json()["result"], 16) == chain_id

    return ready


def start_anvil(
    state_dir: Path | None,
    port: int | None = None,
    chain_id: int = 31337,
    accounts: int = 10,
    *,
    block_time: float = 0,
    timeout: float = 30.0,
    log_path: Path | None = None,
) -> RunningService:
    """Run the dev chain on anvil (Foundry) on 127.0.0.1:`port`, with the project's dev accounts.

    anvil derives its accounts from the project's dev mnemonic (ganache's), each with 1000 ether,
    so `--dev-account N` is the same address on both engines. With `block_time` > 0 it mines on
    a clock like a public chain; with 0 it mines a block per transaction (and keeps block time
    with the clock on its own). EIP-1559 fees as on mainnet, the Shanghai EVM the contract targets.
    With `state_dir` the chain is saved there on exit and loaded on the next start.
    """
    from derelay.trainer.keys import DEV_MNEMONIC

    if not GANACHE_DIR.is_dir():
        raise _needs_checkout("the anvil dev chain", "use the URL of a running chain", "rpc")
    if not ANVIL_BIN.is_file():
        raise ConfigError(f"anvil is not installed: run `npm ci` in {GANACHE_DIR}")
    if block_time < 0:
        raise ConfigError(
            f"block time {block_time:g} s is negative: pass 0 (mine per transaction) or more",
            setting="block_time",
        )
    port = free_port() if port is None else port
    _check_port(port, "chain", ChainError)
    cmd = [
        str(ANVIL_BIN),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--chain-id",
        str(chain_id),
        "--mnemonic",
        DEV_MNEMONIC,
        "--accounts",
        str(accounts),
        "--balance",
        "1000",
        "--hardfork",
        "shanghai",
    ]
    if block_time > 0:
        cmd += ["--block-time", f"{block_time:g}"]
    if state_dir is not None:
        Path(state_dir).mkdir(parents=True, exist_ok=True)
        cmd += ["--state", str(Path(state_dir) / "anvil-state.json")]
    url = f"http://127.0.0.1:{port}"
    return _launch(
        "chain", cmd, url, _answers_chain_id(url, chain_id), timeout, log_path, ChainError
    )


def start_chain(
    engine: str,
    data_dir: Path | None,
    port: int | None = None,
    *,
    block_time: float | None = None,
    accounts: int = 10,
    log_path: Path | None = None,
) -> RunningService:
    """The dev chain on `engine` ("ganache" or "anvil"), at its own chain id (1337 or 31337).

    `block_time` None is each engine's default: a block a second on ganache (so that its block
    time follows the clock), a block per transaction on anvil.
    """
    if engine == "ganache":
        seconds = 1 if block_time is None else block_time
        if seconds != int(seconds):
            raise ConfigError(
                f"ganache mines every whole second: a block time of {seconds:g} s is not one",
                setting="block_time",
            )
        return start_ganache(
            data_dir, port, accounts=accounts, block_time=int(seconds), log_path=log_path
        )
    if engine == "anvil":
        return start_anvil(
            data_dir, port, accounts=accounts, block_time=block_time or 0, log_path=log_path
        )
    raise ConfigError(f"unknown chain engine {engine!r}: use one of {', '.join(ENGINES)}")
