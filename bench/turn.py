"""Where a relay turn's time goes: the real workers, timed phase by phase.

A relay is set up as the demo sets it up (a published task, relayers on Dirichlet shards of the
digits set, validators on held-out shards, a keeper), then each turn is driven by ticking the real
`derelay.trainer.worker.Worker`s: the holder (fetch, verify, load, train, save, add, pin, submit), every
validator (fetch, score, commit; then reveal) and the keeper (finalize). Nothing of the worker is
re-implemented here: the functions it calls are wrapped with `time.perf_counter` timers for the
duration of the benchmark (the store, the contract bindings and the journal through proxies; the
training steps, hashing and data commitment by swapping the module attributes the worker and
`derelay.trainer.steps` call), and every JSON-RPC request is timed by a web3 middleware, so a transaction
splits into gas estimation (or, for the window-bound ones, a preflight call), sending and waiting
for the receipt.

Chains: the embedded eth-tester chain (py-evm, in process) or ganache (a child process mining a
block every second, as `derelay chain` runs it). Stores: `LocalStore` or the dev IPFS node through
`KuboStore`. Models: the demo's digits MLP, or the largest MLP the spec allows (MAX_PARAMS = 10M
float32 parameters: a ~40 MB weights file).

    python -m bench.turn [--model digits|40mb] [--chain embedded|ganache] [--store local|ipfs]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib
import math
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from web3.logs import DISCARD

from bench.common import (
    BenchChain,
    Recorder,
    embedded_chain,
    ganache_chain,
    median,
    ms,
    table,
    time_rpc,
)
from bench.gas import ballots, expect_path
from derelay.deploy.tasks import publish_task
from derelay.lab.harness import send_fixed
from derelay.trainer.cid import Cid
from derelay.trainer.contract import ETHER, Phase, commitment_for
from derelay.trainer.journal import Journal
from derelay.trainer.models import load_weights, save_weights
from derelay.trainer.shards import ShardPlan, relayer_shards, validator_shards
from derelay.trainer.spec import (
    DIGITS_FEATURES,
    MAX_PARAMS,
    MlpArgs,
    TaskSpec,
    TrainConfig,
    digits_mlp_spec,
)
from derelay.trainer.store import ContentStore, KuboStore, LocalStore
from derelay.trainer.worker import Roles, Worker, WorkerConfig

RELAYERS = 5
VALIDATORS = 3
# The demo's parameters, with windows long enough that a slow turn on ganache stays inside them.
TASK_PARAMS: dict[str, Any] = dict(
    min_stake=ETHER // 10,
    validator_stake=ETHER // 10,
    turn_duration=3600,
    commit_window=900,
    reveal_window=900,
    quorum=2,
    max_validators=VALIDATORS,
    max_queue=256,
)
TX_NAMES = {
    "submit_relay": "submitRelay",
    "commit_score": "commitScore",
    "reveal_score": "revealScore",
    "finalize": "finalize",
    "skip_turn": "skipTurn",
    "join_relay": "joinRelay",
    "register_validator": "registerValidator",
}


# ---------------------------------------------------------------------- models


def largest_mlp_width(features: int = DIGITS_FEATURES, classes: int = 10) -> int:
    """The widest two-hidden-layer MLP (equal widths) within MAX_PARAMS parameters."""
    # params = features*w + w + w*w + w + w*classes + classes
    b = features + 2 + classes
    width = int((-b + math.sqrt(b * b + 4 * (MAX_PARAMS - classes))) / 2)
    return min(width, 4096)


def model_spec(name: str) -> TaskSpec:
    """ "digits": the demo's MLP (~19 KB of weights); "40mb": the largest MLP the spec allows."""
    if name == "digits":
        return digits_mlp_spec()
    if name == "40mb":
        width = largest_mlp_width()
        # A smaller step than the demo's keeps 10M parameters from diverging on 8x8 digits.
        return replace(
            digits_mlp_spec(),
            name=f"digits-mlp-{width}x{width}",
            arch_args=MlpArgs(hidden=(width, width)),
            train=TrainConfig(lr=0.01),
        )
    raise ValueError(f"unknown model {name!r}: use digits or 40mb")


def params_of(spec: TaskSpec) -> int:
    return sum(math.prod(shape) for shape in spec.param_shapes().values())


# ---------------------------------------------------------------------- instrumentation


class _Timed:
    """A proxy that times the named methods of `target` as recorder phases; `phases` maps a
    method name to its phase (a callable default names the rest, or None to pass them through)."""

    def __init__(
        self,
        target: Any,
        recorder: Recorder,
        phases: dict[str, str],
        default: Callable[[str], str | None] = lambda name: None,
        on_result: Callable[[str, Any], None] | None = None,
    ) -> None:
        self._target = target
        self._recorder = recorder
        self._phases = phases
        self._default = default
        self._on_result = on_result

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        phase = self._phases.get(name) or (self._default(name) if callable(attr) else None)
        if phase is None or not callable(attr):
            return attr

        def timed(*args: Any, **kwargs: Any) -> Any:
            with self._recorder.phase(phase):
                result = attr(*args, **kwargs)
            if self._on_result is not None:
                self._on_result(name, result)
            return result

        return timed


class _TimedHashlib:
    """Stands in for the `hashlib` module inside `derelay.trainer.cid`: sha256 calls become a phase."""

    def __init__(self, recorder: Recorder) -> None:
        self._recorder = recorder

    def sha256(self, data: Any = b"") -> Any:
        with self._recorder.phase("sha256"):
            return hashlib.sha256(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(hashlib, name)


# (module, attribute, phase): what the worker calls, timed where it is looked up.
_PATCHES = [
    ("derelay.trainer.steps", "build_model", "load weights"),
    ("derelay.trainer.steps", "load_weights", "load weights"),
    ("derelay.trainer.steps", "apply_weights", "load weights"),
    ("derelay.trainer.steps", "train", "train"),
    ("derelay.trainer.steps", "evaluate", "evaluate"),
    ("derelay.trainer.steps", "save_weights", "save weights"),
    ("derelay.trainer.worker", "data_commitment", "data commitment"),
    ("derelay.trainer.worker", "score_weights", "score"),
    ("derelay.trainer.worker", "relay_card", "relay card"),
]


@contextlib.contextmanager
def instrumented(recorder: Recorder) -> Iterator[None]:
    """Wrap the worker's steps and hashing in timers for the duration; restore them after."""
    saved: list[tuple[Any, str, Any]] = []
    try:
        for module_name, attr, phase in _PATCHES:
            module = importlib.import_module(module_name)
            original = getattr(module, attr)  # fails loudly if the worker's code was renamed
            saved.append((module, attr, original))
            setattr(module, attr, _wrap(original, recorder, phase))
        cid_module = importlib.import_module("derelay.trainer.cid")
        saved.append((cid_module, "hashlib", cid_module.hashlib))
        cid_module.hashlib = _TimedHashlib(recorder)  # type: ignore[assignment]
        yield
    finally:
        for module, attr, original in reversed(saved):
            setattr(module, attr, original)


def _wrap(fn: Callable[..., Any], recorder: Recorder, phase: str) -> Callable[..., Any]:
    def timed(*args: Any, **kwargs: Any) -> Any:
        with recorder.phase(phase):
            return fn(*args, **kwargs)

    return timed


# ---------------------------------------------------------------------- the relay


@dataclass
class TurnSample:
    """One measured turn: phase seconds ("scope/phase/..."), gas per transaction, the verdict."""

    round: int
    phases: dict[str, float]
    gas: dict[str, int]  # the first transaction of each function in the turn
    gas_total: int  # every transaction of the turn
    verdict: str
    holder: str
    shares_earned: int = 0  # royalty shares the holder gained: 0 for a turn without gain
    fees_paid: int = 0  # validators paid a fee (their reveal was within the band)


@dataclass
class BenchRelay:
    """A published task with real workers on `chain` and `store`, driven turn by turn."""

    chain: BenchChain
    store: ContentStore
    spec: TaskSpec
    work_dir: Path
    relayers: int = RELAYERS
    validators: int = VALIDATORS
    recorder: Recorder = field(default_factory=Recorder)
    params: dict[str, Any] = field(default_factory=lambda: dict(TASK_PARAMS))
    task_id: int = 0
    relayer_workers: dict[str, Worker] = field(default_factory=dict)
    validator_workers: list[Worker] = field(default_factory=list)
    keeper: Worker | None = None
    _gas: dict[str, int] = field(default_factory=dict)
    _gas_total: int = 0
    _fees_paid: int = 0

    def setup(self, data_seed: int = 0) -> None:
        """Publish the task; create the workers; relayers join and validators take seats."""
        need = 2 + self.relayers + self.validators
        if len(self.chain.clients) < need:
            raise ValueError(f"the chain has {len(self.chain.clients)} accounts, {need} needed")
        time_rpc(self.chain.w3, self.recorder)
        publisher = self.chain.relay
        params = {**self.params, "max_queue": max(self.params["max_queue"], self.relayers + 1)}
        published = publish_task(
            publisher, self.store, self.spec, 50 * ETHER, overrides=params, data_seed=data_seed
        )
        self.task_id = published.task_id
        # As many shards as the demo's relayers; with more relayers, shards are reused.
        plan = ShardPlan(
            relayers=min(self.relayers, RELAYERS), validators=self.validators, seed=data_seed
        )
        shards = relayer_shards(self.spec, plan)
        holdouts = validator_shards(self.spec, plan)
        journals = self.work_dir / "journals"
        clients = self.chain.clients
        for i in range(self.relayers):
            client = clients[2 + i]
            config = WorkerConfig(self.task_id, Roles(True, False, False), seed=data_seed + i)
            self.relayer_workers[client.address] = self._worker(
                client, config, journals, train_data=shards[i % len(shards)]
            )
        for i in range(self.validators):
            client = clients[2 + self.relayers + i]
            config = WorkerConfig(self.task_id, Roles(False, True, False))
            self.validator_workers.append(
                self._worker(client, config, journals, holdout=holdouts[i])
            )
        self.keeper = self._worker(
            clients[1], WorkerConfig(self.task_id, Roles(False, False, True)), journals
        )
        for worker in [*self.relayer_workers.values(), *self.validator_workers]:
            actions = worker.tick()
            if not actions:
                raise RuntimeError(f"worker {worker.address} neither joined nor took a seat")
        self.recorder.take()

    def _worker(self, client: Any, config: WorkerConfig, journals: Path, **data: Any) -> Worker:
        relay = self.chain.relay.as_account(client)
        timed_relay = _Timed(
            relay,
            self.recorder,
            {name: f"tx {tx}" for name, tx in TX_NAMES.items()},
            default=lambda name: None if name.startswith("_") else "chain reads",
            on_result=self._on_result,
        )
        timed_store = _Timed(
            self.store, self.recorder, {"get": "fetch+verify", "add": "add", "pin": "pin"}
        )
        journal = _Timed(
            Journal(journals / f"{client.address}.json"),
            self.recorder,
            {},
            default=lambda name: None if name.startswith("_") else "journal",
        )
        return Worker(timed_relay, timed_store, self.spec, config, journal, **data)  # type: ignore[arg-type]

    def _on_result(self, name: str, result: Any) -> None:
        if name in TX_NAMES:
            self._gas.setdefault(TX_NAMES[name], int(result["gasUsed"]))
            self._gas_total += int(result["gasUsed"])
        if name == "finalize":
            events = self.chain.relay.contract.events.ValidatorPaid().process_receipt(
                result, errors=DISCARD
            )
            self._fees_paid = len(events)

    def state(self) -> Any:
        return self.chain.relay.task_state(self.task_id)

    def turn(self) -> TurnSample:
        """One whole turn through the workers; raise if any step did not happen."""
        assert self.keeper is not None
        state = self.state()
        if state.phase != Phase.TURN:
            raise RuntimeError(f"round {state.round}: the relay is in phase {state.phase.name}")
        holder = self.relayer_workers[state.holder]
        shares_before = self.chain.relay.account(self.task_id, state.holder).shares
        self.recorder.take()
        self._gas = {}
        self._gas_total = 0
        self._fees_paid = 0
        with instrumented(self.recorder):
            with self.recorder.phase("relayer"):
                _expect(holder.tick(), "submitted", state.round)
            for validator in self.validator_workers:
                with self.recorder.phase("commit"):
                    _expect(validator.tick(), "committed", state.round)
            review = self.state()
            self.chain.advance_to(review.deadline + 1)
            for validator in self.validator_workers:
                with self.recorder.phase("reveal"):
                    _expect(validator.tick(), "revealed", state.round)
            with self.recorder.phase("finalize"):
                _expect(self.keeper.tick(), "finalized", state.round)
        phases = self.recorder.take()
        entry = self.chain.relay.latest_submission(self.task_id)
        shares = self.chain.relay.account(self.task_id, state.holder).shares
        return TurnSample(
            state.round,
            phases,
            dict(self._gas),
            self._gas_total,
            entry.status.name.lower(),
            state.holder,
            shares - shares_before,
            self._fees_paid,
        )

    def fast_forward(self, rounds: int) -> None:
        """Move the relay on by `rounds` crowned rounds of scripted transactions, no training:
        each holder submits its parent with one float nudged (new bytes, the same quality,
        added to the store so the next real turn can fetch it); every validator commits and
        reveals the champion's score for the champion and 1 bp more for the child (crowned with a
        minimal gain, so every holder earns royalty shares and no seat is charged for a miss)."""
        relay = self.chain.relay
        views = {a: relay.as_account(w.relay.client) for a, w in self.relayer_workers.items()}
        vals = [relay.as_account(w.relay.client) for w in self.validator_workers]
        keeper = relay.as_account(self.keeper.relay.client)  # type: ignore[union-attr]
        params = relay.task_params(self.task_id)
        head = self.store.get(Cid.from_bytes(self.state().head_cid))
        tensors = load_weights(head, self.spec)
        bias = sorted(name for name in tensors if name.endswith("bias"))[-1]
        for _ in range(rounds):
            state = self.state()
            tensors[bias][0] += 1e-6
            child = self.store.add(_save(tensors))
            self.store.pin(child)
            send_fixed(
                views[state.holder], "submitRelay", self.task_id, state.round,
                state.head_cid[4:], child.to_bytes(), child.to_bytes(), bytes(32), 1,
            )  # fmt: skip
            pairs = ballots("crowned", state.champion_score, params, len(vals))
            salts = [
                hashlib.sha256(f"{v.client.address}{state.round}".encode()).digest() for v in vals
            ]
            for v, (child_score, champion, parent), salt in zip(vals, pairs, salts, strict=True):
                commitment = commitment_for(
                    self.task_id, state.round, child_score, champion, parent, salt, v.client.address
                )
                send_fixed(v, "commitScore", self.task_id, state.round, commitment)
            self.chain.advance_to(self.state().deadline + 1)
            for v, (child_score, champion, parent), salt in zip(vals, pairs, salts, strict=True):
                send_fixed(
                    v, "revealScore", self.task_id, state.round, child_score, champion, parent, salt
                )
            expect_path(relay, send_fixed(keeper, "finalize", self.task_id), "crowned")
        self.recorder.take()


def _save(tensors: dict[str, Any]) -> bytes:
    """Weights bytes for `tensors`, through the same writer the workers use."""
    from torch import nn

    module = nn.Module()
    for name, tensor in tensors.items():
        parts = name.split(".")
        owner = module
        for part in parts[:-1]:
            if not hasattr(owner, part):
                owner.add_module(part, nn.Module())
            owner = getattr(owner, part)
        owner.register_buffer(parts[-1], tensor)
    return save_weights(module)


def _expect(actions: list[str], word: str, round_: int) -> None:
    if not any(word in line for line in actions):
        raise RuntimeError(f"round {round_}: expected the worker to have {word}, got {actions}")


# ---------------------------------------------------------------------- breakdown


# (label, key, scope): how a turn's phases are shown. A key under "relayer" is per turn; under
# "commit"/"reveal" it is divided by the number of validators (per validator).
ROWS: list[tuple[str, str]] = [
    ("**relayer turn** (holder's tick)", "relayer"),
    ("fetch + verify parent (store.get)", "relayer/fetch+verify"),
    ("  of which sha256 (verify)", "relayer/fetch+verify/sha256"),
    ("load parent weights", "relayer/load weights"),
    ("train", "relayer/train"),
    ("evaluate on own data", "relayer/evaluate"),
    ("save child weights", "relayer/save weights"),
    ("data commitment", "relayer/data commitment"),
    ("add child + card", "relayer/add"),
    ("  of which sha256 (naming)", "relayer/add/sha256"),
    ("pin child + card", "relayer/pin"),
    ("journal", "relayer/journal"),
    ("submitRelay tx", "relayer/tx submitRelay"),
    ("  preflight call (no gas estimate)", "relayer/tx submitRelay/rpc eth_call"),
    ("  send", "relayer/tx submitRelay/rpc eth_sendRawTransaction"),
    ("  wait for receipt", "relayer/tx submitRelay/wait receipt"),
    ("  sign, nonce, fees", "relayer/tx submitRelay/@rest"),
    ("chain reads", "relayer/@reads"),
    ("other (worker code)", "relayer/@other"),
    ("relayer overhead: all but train", "relayer/@overhead"),
    ("**review, per validator** (commit tick)", "commit"),
    ("fetch + verify child", "commit/fetch+verify"),
    ("score (load + evaluate)", "commit/score"),
    ("commitScore tx", "commit/tx commitScore"),
    ("  preflight call (no gas estimate)", "commit/tx commitScore/rpc eth_call"),
    ("  wait for receipt", "commit/tx commitScore/wait receipt"),
    ("chain reads + journal", "commit/@reads+journal"),
    ("**reveal, per validator** (reveal tick)", "reveal"),
    ("revealScore tx", "reveal/tx revealScore"),
    ("  wait for receipt", "reveal/tx revealScore/wait receipt"),
    ("**finalize** (keeper's tick)", "finalize"),
    ("finalize tx", "finalize/tx finalize"),
    ("  wait for receipt", "finalize/tx finalize/wait receipt"),
    ("**whole turn**, run one after another", "@total"),
]


def derived(phases: dict[str, float], validators: int) -> dict[str, float]:
    """Phase seconds plus the derived rows: per-validator review, reads, other, totals."""
    out = dict(phases)
    for scope in ("commit", "reveal"):
        for key in [k for k in phases if k == scope or k.startswith(scope + "/")]:
            out[key] = phases[key] / validators
    for scope in ("relayer", "commit", "reveal", "finalize"):
        top = {k: v for k, v in out.items() if k.startswith(scope + "/") and k.count("/") == 1}
        reads = sum(v for k, v in top.items() if k.endswith("chain reads") or "/rpc " in k)
        out[f"{scope}/@reads"] = reads
        out[f"{scope}/@reads+journal"] = reads + top.get(f"{scope}/journal", 0.0)
        out[f"{scope}/@other"] = out.get(scope, 0.0) - sum(top.values())
    for key in [k for k in out if "/tx " in k and k.count("/") == 1]:
        parts = (
            "rpc eth_estimateGas",
            "rpc eth_call",
            "rpc eth_sendRawTransaction",
            "wait receipt",
        )
        out[f"{key}/@rest"] = out[key] - sum(out.get(f"{key}/{p}", 0.0) for p in parts)
    out["relayer/@overhead"] = out.get("relayer", 0.0) - out.get("relayer/train", 0.0)
    out["@total"] = phases.get("relayer", 0.0) + sum(
        phases.get(s, 0.0) for s in ("commit", "reveal", "finalize")
    )
    return out


def summarize(samples: list[TurnSample], validators: int) -> dict[str, Any]:
    """Median seconds per row and gas per transaction over the measured turns."""
    rows = [derived(s.phases, validators) for s in samples]
    keys = sorted({k for r in rows for k in r})
    seconds = {k: median([r.get(k, 0.0) for r in rows]) for k in keys}
    gas_names = sorted({k for s in samples for k in s.gas})
    gas = {k: int(median([s.gas[k] for s in samples if k in s.gas])) for k in gas_names}
    verdicts: dict[str, int] = {}
    for s in samples:
        paid = "reward" if s.shares_earned > 0 else "no reward"
        verdict = f"{s.verdict} ({paid}, {s.fees_paid} fees)"
        verdicts[verdict] = verdicts.get(verdict, 0) + 1
    gas_total = int(median([s.gas_total for s in samples]))
    return {
        "turns": len(samples),
        "rounds": [s.round for s in samples],
        "seconds": seconds,
        "gas": gas,
        "gas_total": gas_total,
        "verdicts": verdicts,
    }


# ---------------------------------------------------------------------- a configuration


@dataclass(frozen=True)
class TurnCase:
    model: str  # "digits" or "40mb"
    chain: str  # "embedded" or "ganache"
    store: str  # "local" or "ipfs"

    @property
    def label(self) -> str:
        model = "digits MLP" if self.model == "digits" else "40 MB MLP"
        store = "LocalStore" if self.store == "local" else "IPFS node"
        return f"{model}, {self.chain}, {store}"


@contextlib.contextmanager
def bench_relay(
    case: TurnCase,
    work_dir: Path,
    relayers: int = RELAYERS,
    validators: int = VALIDATORS,
    ipfs_url: str | None = None,
) -> Iterator[BenchRelay]:
    """A set-up relay for `case`, its chain and store stopped and removed on exit."""
    base = Path(tempfile.mkdtemp(prefix="derelay-bench-turn-", dir=work_dir))
    chain: BenchChain | None = None
    node = None
    store: ContentStore | None = None
    try:
        accounts = 2 + relayers + validators
        if case.chain == "embedded":
            chain = embedded_chain(accounts)
        else:
            chain = ganache_chain(accounts, base / "ganache-db")
        if case.store == "local":
            store = LocalStore(base / "store")
        else:
            if ipfs_url is None:
                from derelay.trainer.services import start_ipfs

                node = start_ipfs(base / "ipfs-repo", log_path=base / "ipfs.log")
                ipfs_url = node.url
            store = KuboStore(ipfs_url, progress=False, timeout=300)
        relay = BenchRelay(chain, store, model_spec(case.model), base, relayers, validators)
        relay.setup()
        yield relay
    finally:
        if isinstance(store, KuboStore):
            store.close()
        if node is not None:
            node.stop()
        if chain is not None:
            chain.close()
        shutil.rmtree(base, ignore_errors=True)


def measure_case(
    case: TurnCase, turns: int = 3, work_dir: Path | None = None, ipfs_url: str | None = None
) -> dict[str, Any]:
    """Set the relay up, run one warm-up turn, then `turns` measured turns; summarize them."""
    with bench_relay(case, work_dir or Path(tempfile.gettempdir()), ipfs_url=ipfs_url) as relay:
        relay.turn()  # warm-up: first imports, first allocations, the first holder's new slots
        samples = [relay.turn() for _ in range(turns)]
        spec = relay.spec
    summary = summarize(samples, VALIDATORS)
    weights = 8 + params_of(spec) * 4  # header aside
    return {
        "case": case.label,
        "model": case.model,
        "chain": case.chain,
        "store": case.store,
        "params": params_of(spec),
        "weights_bytes_approx": weights,
        **summary,
    }


def render(results: list[dict[str, Any]]) -> str:
    """One column per configuration, one row per phase (median ms over the measured turns)."""
    header = ["phase (median ms per turn)"] + [r["case"] for r in results]
    rows: list[list[object]] = []
    for label, key in ROWS:
        values = [r["seconds"].get(key) for r in results]
        if all(v is None or v == 0.0 for v in values) and not label.startswith("**"):
            continue
        rows.append([label] + [ms(v) if v is not None else "" for v in values])
    rows.append(
        ["relayer overhead / relayer turn"]
        + [_share(r["seconds"], "relayer/@overhead", "relayer") for r in results]
    )
    rows.append(
        ["training / whole turn"]
        + [_share(r["seconds"], "relayer/train", "@total") for r in results]
    )
    for name in ("submitRelay", "commitScore", "revealScore", "finalize"):
        rows.append([f"gas {name}"] + [r["gas"].get(name, "") for r in results])
    rows.append(
        ["weights file"] + [f"{r['weights_bytes_approx'] / 1024**2:.2f} MB" for r in results]
    )
    rows.append(["turns measured (verdicts)"] + [verdicts_cell(r) for r in results])
    return table(header, rows)


def _share(seconds: dict[str, float], part: str, whole: str) -> str:
    total = seconds.get(whole, 0.0)
    return f"{seconds.get(part, 0.0) / total:.0%}" if total else ""


def verdicts_cell(r: dict[str, Any]) -> str:
    """ "3: 2x accepted (reward, 3 fees); 1x ..." for a table cell."""
    kinds = "; ".join(f"{n}x {v}" for v, n in sorted(r["verdicts"].items()))
    return f"{r['turns']}: {kinds}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=["digits", "40mb"], default="digits")
    parser.add_argument("--chain", choices=["embedded", "ganache"], default="embedded")
    parser.add_argument("--store", choices=["local", "ipfs"], default="local")
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--ipfs", help="RPC URL of a running IPFS node (else one is started)")
    args = parser.parse_args()
    case = TurnCase(args.model, args.chain, args.store)
    print(render([measure_case(case, args.turns, ipfs_url=args.ipfs)]))


if __name__ == "__main__":
    main()
