"""`derelay simulate`: many participants and behaviours on the real contract, with real training.

Each seed runs one task on a fresh embedded chain (eth-tester, the compiled DeRelay contract) with a
`LocalStore` for weights. The simulation drives every actor directly rather than polling workers:
per round it reads the task state once, lets the holder act according to its behaviour, lets the
validators commit and reveal, moves the chain clock past each window, and has a keeper finalize or
skip. Everything that moves money happens on chain; the simulation decodes the events of its own
receipts, and at the end checks its books against `derelay.trainer.payouts.task_payouts` to the wei. Every
transaction's gas (gasUsed times its effective price, or `gas_price`) is a cost of its sender.

Behaviours (relayers): honest (one local epoch on its shard), free_rider (the parent plus noise of
1e-6: the contract refuses an identical CID), poisoner (label-flipped training or random weights),
staller (never submits: skipped and slashed by the keeper), and the adaptive adversaries of
`derelay.lab.adversaries`: walker (aims at the edge of the advance band; several walkers hold
consecutive queue places, one party's Sybils), subtle (a label-flipped mix aimed just inside the
advance band by its own paired estimate), targeted (one class sent to another, overall score inside
the band), dipper (a worse child, then the champion re-encoded under a new CID). Validators score
the child and the champion on their held-out shard (paired ballot): honest, lazy (commit, never
reveal: slashed) or squatter (takes a seat and never commits: charged per missed commit, seat lost
after maxMisses; it takes a seat again when it can).

Beside the relay, off-chain baselines train on the same honest shards with the same number of
samples: centralized training, FedAvg, local-only training, and the all-honest relay (the same
honest turns with the adversaries' turns left out, reviewed by the contract's rule). Outputs: CSV,
PNG plots and a markdown report (efficacy, what each behaviour tried and got, head against
champion, sustainability, fairness).
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import random
import statistics
import tempfile
import time
import tomllib
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from itertools import accumulate
from pathlib import Path
from typing import Any

import numpy as np
import torch
from eth_tester import EthereumTester, PyEVMBackend
from web3 import EthereumTesterProvider, Web3
from web3.logs import DISCARD
from web3.types import TxReceipt

from derelay.deploy.tasks import parse_amount, publish_task
from derelay.lab.adversaries import (
    ADVERSARIES,
    DEFAULT_MARGIN,
    class_recall,
    make_adversary_child,
    split_own_data,
    target_pair,
)
from derelay.lab.metrics import (
    RoyaltyBook,
    cumulative_profit,
    fedavg,
    first_reaching,
    gini,
    jain_index,
    lower_median,
    profit_of,
    review,
    value_at,
)
from derelay.trainer.chain import ChainClient
from derelay.trainer.cid import Cid, unixfs_cid
from derelay.trainer.contract import (
    ETHER,
    DeRelayContract,
    Phase,
    Status,
    TaskParams,
    TaskState,
    commitment_for,
    decoder_for,
)
from derelay.trainer.data import Dataset, data_commitment, partition, split_holdout
from derelay.trainer.errors import ConfigError, ContractRevert
from derelay.trainer.keys import dev_account
from derelay.trainer.models import (
    apply_weights,
    build_model,
    init_weights,
    load_weights,
    save_weights,
)
from derelay.trainer.payouts import Payout, task_payouts
from derelay.trainer.shards import split_dataset
from derelay.trainer.spec import TaskSpec, TrainConfig, digits_mlp_spec
from derelay.trainer.steps import (
    RELAY_CARD_FORMAT,
    ChildResult,
    relay_card,
    score_weights,
    train_child,
)
from derelay.trainer.store import LocalStore
from derelay.trainer.training import evaluate, train

RELAYER_BEHAVIOURS = ("honest", "free_rider", "poisoner", "staller", *ADVERSARIES)
VALIDATOR_BEHAVIOURS = ("validator", "lazy_validator", "squatter")
# SimConfig count field of each relayer behaviour, in join order.
RELAYER_COUNTS = {
    "honest": "honest",
    "free_rider": "free_riders",
    "poisoner": "poisoners",
    "staller": "stallers",
    "walker": "walkers",
    "subtle": "subtle_poisoners",
    "targeted": "targeted_poisoners",
    "dipper": "dippers",
}
# What each behaviour tries, for the report.
TRIES = {
    "honest": "one local epoch on its shard",
    "free_rider": "resubmits its parent plus noise of 1e-6 (no training)",
    "poisoner": "label-flipped training or random weights",
    "staller": "never submits (turn skipped by the keeper)",
    "walker": "mixes the head toward chance, aimed at the advance band's edge (Sybil places: "
    "consecutive turns)",
    "subtle": "label-flipped mix aimed just inside the advance band by its paired estimate",
    "targeted": "sends one class to another, overall score aimed inside the advance band",
    "dipper": "a worse child, then the champion re-encoded under a new CID",
    "validator": "scores child and champion on its held-out shard",
    "lazy_validator": "commits, never reveals",
    "squatter": "takes a seat, never commits (takes one again when it loses it)",
    "keeper": "finalizes and skips",
}
POISON_MODES = ("label_flip", "random", "alternate")
FREE_RIDER_NOISE = 1e-6
SQUATTER_STAKE = 2  # squatters stake this many validatorStakes: enough to sit out maxMisses misses
DEFAULT_SEED = 0
# TaskParams fields a simulation may override (the CIDs and genesis score come from publishing).
OVERRIDABLE = tuple(
    name
    for name in TaskParams.field_names()
    if name not in ("spec_cid", "genesis_cid", "genesis_score")
)
AMOUNT_FIELDS = ("compute_cost", "pool", "relayer_stake", "consumer_payment", "gas_price")
COUNT_FIELDS = (*RELAYER_COUNTS.values(), "validators", "lazy_validators", "squatters")


# ---------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class SimConfig:
    """One simulation: who takes part, how they behave, and the task's parameters.

    Relayers are every behaviour's count added up (K, `participants`). Honest relayers alone hold
    the queue for the first `warmup` rounds; the others join after it in `RELAYER_COUNTS` order,
    so several walkers hold consecutive places (a poisoner at genesis cannot be told from an honest
    turn: the model is at chance either way).
    """

    honest: int = 5
    free_riders: int = 1
    poisoners: int = 1
    stallers: int = 1
    walkers: int = 1  # one party: several walkers are Sybil places, consecutive in the queue
    subtle_poisoners: int = 1
    targeted_poisoners: int = 1
    dippers: int = 1
    validators: int = 3  # honest validators
    lazy_validators: int = 1  # commit, never reveal
    squatters: int = 1  # take a seat, never commit
    rounds: int = 60
    alpha: float | None = 0.5  # Dirichlet concentration of relayer shards; None: IID
    seeds: tuple[int, ...] = (DEFAULT_SEED,)
    warmup: int = 10  # rounds with honest relayers only
    compute_cost: int = ETHER // 1000  # wei a participant spends per epoch it trains in a turn
    churn_after: int | None = 5  # unprofitable after this many turns (or reviews): leave
    poison: str = "alternate"  # label_flip, random, or alternate between the two
    poison_epochs: int = 5  # local epochs of poisoned training (one barely hurts a good model)
    margin: int = DEFAULT_MARGIN  # bp subtle, targeted and dipping children aim inside the band
    estimate_fraction: float = 0.5  # share of a training adversary's shard held out to estimate
    relayer_stake: int | None = None  # None: twice the task's minStake
    consumer_payment: int | None = None  # wei a consumer pays each round; None: the usage fee
    gas_price: int | None = None  # wei per gas charged to senders; None: each receipt's price
    pool: int = 5 * ETHER  # the publisher's initial funding
    test_fraction: float = 0.5  # share of the held-out split kept as the common test split
    params: tuple[tuple[str, int], ...] = ()  # TaskParams overrides, (name, value) pairs
    baselines: bool = True  # also run centralized, FedAvg, local-only and all-honest training

    def __post_init__(self) -> None:
        for name in COUNT_FIELDS:
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ConfigError(f"simulation: {name} must be a whole number >= 0, got {value!r}")
        if self.honest < 1:
            raise ConfigError("simulation: at least one honest relayer is needed")
        if self.validators + self.lazy_validators + self.squatters > 16:
            raise ConfigError("simulation: at most 16 validators (the contract's seat limit)")
        if not isinstance(self.rounds, int) or self.rounds < 1:
            raise ConfigError(f"simulation: rounds must be >= 1, got {self.rounds!r}")
        if self.alpha is not None and not (math.isfinite(self.alpha) and self.alpha > 0):
            raise ConfigError(f"simulation: alpha must be > 0 or iid, got {self.alpha!r}")
        if not self.seeds or any(not isinstance(s, int) or s < 0 for s in self.seeds):
            raise ConfigError(f"simulation: seeds must be whole numbers >= 0, got {self.seeds!r}")
        if self.poison_epochs < 1:
            raise ConfigError("simulation: poison_epochs must be >= 1")
        if self.warmup < 0 or self.compute_cost < 0 or self.pool < 0 or self.margin < 0:
            raise ConfigError("simulation: warmup, compute_cost, pool and margin must be >= 0")
        if self.gas_price is not None and self.gas_price < 0:
            raise ConfigError("simulation: gas_price must be >= 0 (or none)")
        if self.churn_after is not None and self.churn_after < 1:
            raise ConfigError("simulation: churn_after must be >= 1 (or none)")
        if self.poison not in POISON_MODES:
            raise ConfigError(f"simulation: poison must be one of {', '.join(POISON_MODES)}")
        if not 0 < self.test_fraction < 1:
            raise ConfigError("simulation: test_fraction must be in (0, 1)")
        if not 0 < self.estimate_fraction < 1:
            raise ConfigError("simulation: estimate_fraction must be in (0, 1)")
        for name, _ in self.params:
            if name not in OVERRIDABLE:
                raise ConfigError(
                    f"simulation: unknown task parameter {name!r}; use one of {', '.join(OVERRIDABLE)}"
                )
        quorum = self.overrides().get("quorum", TaskParams.__dataclass_fields__["quorum"].default)
        if self.validators < quorum:
            raise ConfigError(
                f"simulation: {self.validators} honest validator(s) cannot reach quorum {quorum}"
            )

    @property
    def participants(self) -> int:
        """K: the number of relayers."""
        return sum(getattr(self, name) for name in RELAYER_COUNTS.values())

    def overrides(self) -> dict[str, int]:
        """TaskParams overrides, with enough validator seats for every validator."""
        out = dict(self.params)
        seats = self.validators + self.lazy_validators + self.squatters
        default_seats = TaskParams.__dataclass_fields__["max_validators"].default
        out.setdefault("max_validators", max(default_seats, seats))
        return out

    def behaviours(self) -> list[str]:
        """Every relayer's behaviour, in join order: honest first, the others after warm-up."""
        return [b for b, name in RELAYER_COUNTS.items() for _ in range(getattr(self, name))]

    @classmethod
    def from_mapping(cls, doc: Mapping[str, Any]) -> SimConfig:
        """From plain values (a TOML document or CLI flags). `participants` = K sets `honest` to
        K minus the other relayers; `alpha` may be "iid"; amounts may carry ether/gwei units;
        `seed` is one seed, `seeds` a list; `params` is a table of TaskParams overrides."""
        known = {f.name for f in fields(cls)} | {"participants", "seed"}
        unknown = set(doc) - known
        if unknown:
            raise ConfigError(
                f"simulation config: unknown keys {', '.join(sorted(unknown))}; "
                f"use {', '.join(sorted(known))}"
            )
        values: dict[str, Any] = {k: v for k, v in doc.items() if k not in ("participants", "seed")}
        for name in AMOUNT_FIELDS:
            if values.get(name) is not None:
                values[name] = _amount(values[name], name)
        if "alpha" in values:
            values["alpha"] = _alpha(values["alpha"])
        if doc.get("seed") is not None:
            values["seeds"] = (int(doc["seed"]),)
        if "seeds" in values:
            seeds = values["seeds"]
            values["seeds"] = tuple(
                int(s) for s in (seeds if isinstance(seeds, list | tuple) else [seeds])
            )
        if "churn_after" in values and values["churn_after"] in (0, "none", "off"):
            values["churn_after"] = None
        if "params" in values:
            params = values["params"]
            if not isinstance(params, Mapping):
                raise ConfigError("simulation config: params must be a table of name = value")
            values["params"] = tuple(
                sorted(
                    (str(k).replace("-", "_"), _amount(v, f"params.{k}")) for k, v in params.items()
                )
            )
        if doc.get("participants") is not None:
            k = int(doc["participants"])
            others = sum(
                int(values.get(n, cls.__dataclass_fields__[n].default))
                for n in RELAYER_COUNTS.values()
                if n != "honest"
            )
            if k - others < 1:
                raise ConfigError(
                    f"simulation: {k} participants leave no honest relayer beside "
                    f"{others} other relayers"
                )
            values["honest"] = k - others
        try:
            return cls(**values)
        except TypeError as exc:
            raise ConfigError(f"simulation config: {exc}") from None

    @classmethod
    def from_toml(cls, path: Path, extra: Mapping[str, Any] | None = None) -> SimConfig:
        """A config from a TOML file, with `extra` (e.g. command-line flags) taking precedence."""
        try:
            doc = tomllib.loads(path.read_text())
        except OSError as exc:
            raise ConfigError(f"cannot read simulation config {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"simulation config {path} is not valid TOML: {exc}") from None
        extra = dict(extra or {})
        if isinstance(doc.get("params"), dict) and "params" in extra:
            extra["params"] = {**doc["params"], **extra["params"]}
        doc.update(extra)
        return cls.from_mapping(doc)

    def to_json_dict(self) -> dict[str, Any]:
        """Plain JSON values (amounts as strings of wei)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in AMOUNT_FIELDS and value is not None:
                value = str(value)
            elif f.name == "params":
                value = dict(value)
            elif f.name == "seeds":
                value = list(value)
            out[f.name] = value
        out["participants"] = self.participants
        return out


def _amount(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"simulation: {name} must be an amount, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        return parse_amount(value)
    raise ConfigError(f"simulation: {name} must be wei or a string like '0.01ether', got {value!r}")


def _alpha(value: Any) -> float | None:
    if value is None or (isinstance(value, str) and value.lower() in ("iid", "none", "0")):
        return None
    try:
        alpha = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"simulation: alpha must be a number or 'iid', got {value!r}") from None
    return None if alpha == 0 else alpha


# ---------------------------------------------------------------------- results


@dataclass
class RoundRow:
    """One round as rounds.csv shows it. Scores are the validators' (bp, on their held-out shards);
    accuracies are on the common test split that nobody trains or reviews on."""

    round: int
    relayer: str
    behaviour: str
    verdict: str  # accepted, held, rejected, void, skipped
    crowned: bool  # accepted with delta >= min_gain: the child became the champion
    child_score: int  # lower median of the revealed child scores; 0 when skipped or void
    champion_score: int  # lower median of the revealed champion scores; 0 when skipped or void
    delta: int  # lower median of the paired differences (child - champion), which decides
    progress: int  # lower median of the paired differences (child - parent), which bounds pay
    reveals: int
    ballots: str  # revealed (child/champion/parent) triples, "c/h/p;c/h/p"
    champion_before: int  # on-chain champion score when the round started
    champion_after: int  # on-chain champion score after the round
    head_score: int  # on-chain head score after the round (bp)
    head_before: int  # head's test accuracy before the round (bp)
    head_accuracy: int  # head's test accuracy after the round (bp)
    head_gap: int  # after the round: lower median over honest validators of head - champion (bp)
    champion_accuracy: int  # champion's test accuracy after the round (bp)
    child_accuracy: int | None  # the submission's test accuracy (bp)
    gain: int  # child accuracy minus the champion's before, crowned turns (bp)
    samples: int  # samples actually trained on in this turn
    honest_samples: int  # cumulative samples trained by honest relayers
    reward: int  # wei
    slashed: int  # wei the relayer lost this round
    gas: int  # wei the relayer spent on gas this round
    pool: int  # wei in the pool after the round
    attack: str  # an adversary's kind of child (walk, subtle, targeted, dip, recover), else ""
    mix: float | None  # share of the bad model in an adversary's child
    estimate: int | None  # the adversary's own paired estimate of its child (bp)


@dataclass
class Participant:
    """One account of the simulation and what happened to it."""

    name: str
    role: str  # relayer, validator, keeper
    behaviour: str  # a RELAYER_BEHAVIOURS or VALIDATOR_BEHAVIOURS entry, or keeper
    address: str
    relay: DeRelayContract
    data: Dataset | None = None  # what it trains on (relayers) or scores on (validators)
    estimate: Dataset | None = None  # an adversary's own held-out part, for its estimates
    pair: tuple[int, int] | None = None  # a targeted poisoner's (source, dest) classes
    commitment: bytes = b""
    turns: int = 0
    accepted: int = 0
    rejected: int = 0
    skipped: int = 0
    reviews: int = 0
    seats: int = 0  # times it took a seat (validators)
    seats_lost: int = 0  # times the contract took its seat away (validators)
    seated: bool = False
    queued: bool = False
    left_round: int | None = None
    left_reason: str = ""
    contribution: int = 0  # crowned turns: sum of min(gain over champion, over parent) > 0 (bp)
    samples: int = 0  # samples it trained on


@dataclass
class Curve:
    """Accuracy of one method against samples processed (and rounds, where it has rounds)."""

    method: str
    samples: list[int]
    accuracy: list[int]  # bp on the common test split
    rounds: list[int] | None = None


@dataclass(frozen=True)
class ReferenceTurn:
    """One round of the all-honest relay (`honest_reference`)."""

    round: int
    verdict: str
    head_accuracy: int  # test accuracy (bp)
    champion_accuracy: int  # test accuracy (bp)
    champion: bytes  # the champion's weights after the round


@dataclass
class SeedResult:
    """Everything one seed's run produced."""

    seed: int
    out_dir: Path
    task_id: int
    genesis_score: int
    genesis_accuracy: int
    rows: list[RoundRow]
    participants: list[Participant]
    flows: list[tuple[int, str, str, int]]  # (round, address, kind, wei); kinds of FLOW_KINDS
    gas: list[tuple[int, str, int]]  # (round, address, wei) of every transaction sent
    payouts: list[Payout]
    curves: dict[str, Curve]
    params: TaskParams
    seconds: float
    spec: TaskSpec = field(default_factory=digits_mlp_spec)
    champions: list[bytes] = field(default_factory=list)  # champion weights after each round
    test: Dataset | None = None  # the common test split
    reference: list[ReferenceTurn] = field(
        default_factory=list
    )  # the all-honest relay, round by round
    timings: dict[str, float] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------- the run


class ReceiptCachingBackend(PyEVMBackend):
    """eth-tester's py-evm backend finds a transaction by scanning blocks back from the head, which
    makes every `get_logs` quadratic in the chain's length (minutes for a few hundred rounds).
    A mined receipt never changes while the chain is not reverted, so this backend keeps them by
    hash, and forgets them all on a revert or reset."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._receipts: dict[bytes, Any] = {}
        super().__init__(*args, **kwargs)

    def get_transaction_receipt(self, transaction_hash: bytes) -> Any:
        cached = self._receipts.get(transaction_hash)
        if cached is not None:
            return cached
        receipt = super().get_transaction_receipt(transaction_hash)
        if receipt.get("block_number") is not None:
            self._receipts[transaction_hash] = receipt
        return receipt

    def revert_to_snapshot(self, snapshot: Any) -> None:
        self._receipts.clear()
        super().revert_to_snapshot(snapshot)

    def reset_to_genesis(self, *args: Any, **kwargs: Any) -> None:
        self._receipts.clear()
        super().reset_to_genesis(*args, **kwargs)


class FixedGasClient(ChainClient):
    """A `ChainClient` for the embedded chain that skips the gas estimate: py-evm estimates by a
    binary search that runs each transaction a dozen times, two thirds of a simulation's time.
    One preflight call stands in for it, so a revert is decoded before anything is sent, exactly
    as `ChainClient` decodes one found while estimating; the transaction then goes out with a
    fixed, ample gas limit. Every mined transaction's gas cost goes to `on_gas(address, wei)`:
    gasUsed times `gas_price`, or times the receipt's effective price when that is None."""

    GAS_LIMIT = 3_000_000

    def __init__(
        self,
        *args: Any,
        on_gas: Callable[[str, int], None] | None = None,
        gas_price: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.on_gas = on_gas
        self.gas_price = gas_price

    def transact(self, fn: Any, action: str, value: int = 0, gas: int | None = None) -> TxReceipt:
        return super().transact(fn, action, value, gas or self.GAS_LIMIT)

    def send(self, tx: dict[str, Any], action: str) -> TxReceipt:
        receipt = super().send(tx, action)
        if self.on_gas is not None:
            price = self.gas_price
            if price is None:
                price = int(receipt["effectiveGasPrice"])
            self.on_gas(self.address, int(receipt["gasUsed"]) * price)
        return receipt


EVENT_NAMES = (
    "RoundFinalized",
    "ChampionCrowned",
    "ValidatorPaid",
    "ValidatorSlashed",
    "ValidatorMissed",
    "RelayerSlashed",
    "KeeperPaid",
    "RelayerLeft",
    "ValidatorLeft",
    "ModelPaid",
)


def _events(relay: DeRelayContract, receipt: TxReceipt) -> list[tuple[str, dict[str, Any]]]:
    """The contract's events in a receipt, in log order."""
    found: list[tuple[int, str, dict[str, Any]]] = []
    for name in EVENT_NAMES:
        for event in getattr(relay.contract.events, name)().process_receipt(
            receipt, errors=DISCARD
        ):
            found.append((int(event["logIndex"]), name, dict(event["args"])))
    return [(name, args) for _, name, args in sorted(found, key=lambda item: item[0])]


@dataclass(frozen=True)
class Deal:
    """Who holds which data: relayer shards of the training part (IID or Dirichlet), validator
    shards and the common test split, both of the held-out part (nobody trains on either, and
    nobody reviews on the test split)."""

    shards: list[Dataset]
    holdouts: list[Dataset]
    test: Dataset


def deal_data(spec: TaskSpec, config: SimConfig, seed: int) -> Deal:
    """The data of one seed, deterministic from it."""
    train_part, holdout = split_dataset(spec, seed)
    review_idx, test_idx = split_holdout(len(holdout), config.test_fraction, seed + 1)
    review = holdout.subset(review_idx)
    scheme = "iid" if config.alpha is None else "dirichlet"
    parts = partition(
        train_part.y, config.participants, scheme=scheme, alpha=config.alpha or 1.0, seed=seed
    )
    # only honest validators score: lazy ones guess, squatters never commit
    vparts = partition(review.y, config.validators, scheme="iid", seed=seed)
    return Deal(
        shards=[train_part.subset(p) for p in parts],
        holdouts=[review.subset(p) for p in vparts],
        test=holdout.subset(test_idx),
    )


def genesis_of(spec: TaskSpec, seed: int) -> tuple[bytes, int]:
    """The genesis weights and score that `publish_task` puts on chain for this seed."""
    genesis = save_weights(init_weights(spec, 0))
    _, holdout = split_dataset(spec, seed)
    return genesis, score_weights(spec, genesis, holdout)


@dataclass(frozen=True)
class ChildWork:
    """A relayer's child: its weights, and the training behind it (None when nothing trained)."""

    weights: bytes
    result: ChildResult | None
    cfg: TrainConfig


def turn_seed(seed: int, round_: int) -> int:
    """The training seed of round `round_`: every behaviour and every replay uses this one."""
    return seed * 100_003 + round_


def make_child(
    spec: TaskSpec,
    config: SimConfig,
    behaviour: str,
    parent: bytes,
    data: Dataset,
    seed: int,
    round_: int,
    turn: int,
) -> ChildWork:
    """What a relayer of `behaviour` submits in `round_` (its `turn`-th turn, from 1):
    honest: one local epoch on its shard; free_rider: the parent plus noise of 1e-6;
    poisoner: label-flipped training (`poison_epochs` epochs) or fresh random weights."""
    cfg = TrainConfig.from_spec(spec, seed=turn_seed(seed, round_))
    if behaviour == "honest":
        result = train_child(spec, parent, data, cfg)
        return ChildWork(result.weights, result, cfg)
    if behaviour == "free_rider":
        tensors = load_weights(parent, spec)
        gen = torch.Generator().manual_seed(turn_seed(seed, round_))
        model = build_model(spec)
        noisy = {
            k: t + FREE_RIDER_NOISE * torch.randn(t.shape, generator=gen)
            for k, t in tensors.items()
        }
        apply_weights(model, noisy)
        return ChildWork(save_weights(model), None, cfg)
    if behaviour != "poisoner":
        raise ValueError(f"a {behaviour} submits nothing")
    mode = config.poison
    if mode == "alternate":
        mode = "random" if turn % 2 == 1 else "label_flip"
    if mode == "random":
        weights = save_weights(init_weights(spec, 1 + turn_seed(seed, round_) % (2**31)))
        return ChildWork(weights, None, cfg)
    flipped = Dataset(data.X, (spec.num_classes - 1 - data.y).astype(np.int64))
    cfg = replace(cfg, epochs=config.poison_epochs, prox_mu=0.0, logit_adjust=0.0)  # no safeguard
    result = train_child(spec, parent, flipped, cfg)
    return ChildWork(result.weights, result, cfg)


class Simulation:
    """One seed of a simulation on a fresh embedded chain."""

    def __init__(
        self,
        config: SimConfig,
        seed: int,
        out_dir: Path,
        store_dir: Path,
        echo: Callable[[str], None] = print,
        spec: TaskSpec | None = None,
    ) -> None:
        self.config = config
        self.seed = seed
        self.out_dir = out_dir
        self.echo = echo
        self.spec = spec or digits_mlp_spec()
        self.rng = random.Random(seed)
        self.tester = EthereumTester(ReceiptCachingBackend())
        self.w3 = Web3(EthereumTesterProvider(self.tester))
        self.store = LocalStore(store_dir)
        self.flows: list[tuple[int, str, str, int]] = []
        self.gas: list[tuple[int, str, int]] = []
        self.rows: list[RoundRow] = []
        self.champions: list[bytes] = []
        self._round_now = 0
        self._test_cache: dict[bytes, int] = {}
        self._score_cache: dict[tuple[bytes, str], int] = {}
        self._void_child: tuple[str, bytes, bytes, int] | None = (
            None  # holder, child, card, claimed
        )

        behaviours = config.behaviours()
        n_validators = config.validators + config.lazy_validators + config.squatters
        accounts = [dev_account(i) for i in range(3 + len(behaviours) + n_validators)]
        funder = self.tester.get_accounts()[0]
        for acct in accounts:
            self.tester.send_transaction(
                {"from": funder, "to": acct.address, "value": 1_000 * ETHER, "gas": 21_000}
            )
        decoder = decoder_for()
        clients = [
            FixedGasClient(
                self.w3, acct, decoder, on_gas=self._book_gas, gas_price=config.gas_price
            )
            for acct in accounts
        ]
        self.publisher = DeRelayContract.deploy(clients[0])
        published = publish_task(
            self.publisher,
            self.store,
            self.spec,
            funding=config.pool,
            overrides=config.overrides(),
            data_seed=seed,
        )
        self.task_id = published.task_id
        self.genesis_cid = published.genesis_cid
        self.genesis_score = published.genesis_score
        self.params = self.publisher.task_params(self.task_id)
        self.head_bytes = self.store.get(published.genesis_cid)
        self.champion_bytes = self.head_bytes

        deal = deal_data(self.spec, config, seed)
        self.test = deal.test
        shards, holdouts = deal.shards, deal.holdouts
        self.genesis_accuracy = self._test_accuracy(self.head_bytes)
        self.head_accuracy = self.genesis_accuracy
        self.champion_accuracy = self.genesis_accuracy

        self.keeper = Participant(
            "keeper", "keeper", "keeper", clients[1].address, self.publisher.as_account(clients[1])
        )
        self.consumer = self.publisher.as_account(clients[2])
        self.relayers: list[Participant] = []
        counters: dict[str, int] = defaultdict(int)
        for i, behaviour in enumerate(behaviours):
            counters[behaviour] += 1
            client = clients[3 + i]
            shard, estimate, pair = shards[i], None, None
            if behaviour in ("subtle", "targeted"):  # trains on part, estimates on the rest
                shard, estimate = split_own_data(shards[i], config.estimate_fraction, seed + i)
            elif behaviour in ADVERSARIES:  # trains nothing: estimates on the whole shard
                estimate = shard
            if behaviour == "targeted":
                pair = target_pair(shard, self.spec.num_classes)
            self.relayers.append(
                Participant(
                    f"{behaviour}-{counters[behaviour]}",
                    "relayer",
                    behaviour,
                    client.address,
                    self.publisher.as_account(client),
                    data=shard,
                    estimate=estimate,
                    pair=pair,
                    commitment=data_commitment(shard.X, shard.y),
                )
            )
        self.validators: list[Participant] = []
        kinds = (
            ["validator"] * config.validators
            + ["lazy_validator"] * config.lazy_validators
            + ["squatter"] * config.squatters
        )
        counters.clear()
        for j, kind in enumerate(kinds):
            counters[kind] += 1
            client = clients[3 + len(behaviours) + j]
            self.validators.append(
                Participant(
                    f"{'lazy' if kind == 'lazy_validator' else kind}-{counters[kind]}",
                    "validator",
                    kind,
                    client.address,
                    self.publisher.as_account(client),
                    data=holdouts[j] if j < config.validators else None,
                )
            )
        self.everyone = [*self.relayers, *self.validators, self.keeper]
        self.by_address = {p.address: p for p in self.everyone}
        self.book = RoyaltyBook(self.params.royalty_bp)
        self._royalty_seen: dict[str, int] = defaultdict(int)
        self.stake = config.relayer_stake or 2 * self.params.min_stake
        self.payment = (
            self.params.usage_fee if config.consumer_payment is None else config.consumer_payment
        )

    # -------------------------------------------------------------- helpers

    def _now(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def _travel(self, timestamp: int) -> None:
        self.tester.time_travel(max(timestamp, self._now() + 1))

    def _test_accuracy(self, weights: bytes) -> int:
        key = hashlib.sha256(weights).digest()
        if key not in self._test_cache:
            self._test_cache[key] = score_weights(self.spec, weights, self.test)
        return self._test_cache[key]

    def _score(self, v: Participant, weights: bytes) -> int:
        """Validator `v`'s score of `weights` on its held-out shard (cached: the champion is
        scored again in every review it stays champion)."""
        assert v.data is not None
        key = (hashlib.sha256(weights).digest(), v.name)
        if key not in self._score_cache:
            self._score_cache[key] = score_weights(self.spec, weights, v.data)
        return self._score_cache[key]

    def _flow(self, round_: int, address: str, kind: str, amount: int) -> None:
        if amount:
            self.flows.append((round_, address, kind, amount))

    def _book_gas(self, address: str, wei: int) -> None:
        if wei:
            self.gas.append((self._round_now, address, wei))

    def _net_profit(self, address: str) -> int:
        """Profit with gas counted (`derelay.lab.metrics.Profit` leaves gas out)."""
        profit = profit_of((k, a) for _, who, k, a in self.flows if who == address).profit
        return profit - sum(w for _, who, w in self.gas if who == address)

    def _apply_events(self, round_: int, receipt: TxReceipt) -> dict[str, Any]:
        """Book the money a receipt moved; return the round's verdict facts."""
        facts: dict[str, Any] = {}
        for name, args in _events(self.publisher, receipt):
            if name == "RoundFinalized":
                facts.update(
                    verdict=Status(args["verdict"]).name.lower(),
                    child_score=args["childScore"],
                    champion_score=args["championScore"],
                    delta=args["delta"],
                    progress=args["progress"],
                    reveals=args["reveals"],
                    reward=args["reward"],
                )
                self._flow(round_, args["relayer"], "reward", args["reward"])
                self.book.add_shares(args["relayer"], args["reward"])
            elif name == "ChampionCrowned":
                facts["crowned"] = True
            elif name == "ValidatorPaid":
                self._flow(round_, args["validator"], "fee", args["fee"])
            elif name == "KeeperPaid":
                self._flow(round_, args["keeper"], "bounty", args["bounty"])
            elif name in ("RelayerSlashed", "ValidatorSlashed", "ValidatorMissed"):
                who = args["relayer"] if name == "RelayerSlashed" else args["validator"]
                self._flow(round_, who, "slashed", args["amount"])
                if name == "RelayerSlashed":
                    facts["slashed"] = facts.get("slashed", 0) + args["amount"]
            elif name == "RelayerLeft" and args["forced"]:
                p = self.by_address[args["relayer"]]
                p.queued, p.left_round, p.left_reason = False, round_, "stake below minStake"
            elif name == "ValidatorLeft" and args["forced"]:
                v = self.by_address[args["validator"]]
                v.seated = False
                v.seats_lost += 1
            elif name == "ModelPaid":
                mirrored = self.book.pay(args["amount"])
                if mirrored != args["toContributors"]:
                    raise AssertionError(
                        f"royalty mirror disagrees with the chain: {mirrored} != {args['toContributors']}"
                    )
        return facts

    def _book_royalties(self, round_: int) -> None:
        for p in self.everyone:
            owed = self.book.owed(p.address)
            self._flow(round_, p.address, "royalty", owed - self._royalty_seen[p.address])
            self._royalty_seen[p.address] = owed

    # -------------------------------------------------------------- behaviours

    def _make_child(
        self, p: Participant, round_: int
    ) -> tuple[bytes, int, int, dict[str, Any], Any]:
        """(child weights, samples trained, samples claimed, relay card, the adversary's choice or
        None) of a submitting relayer."""
        assert p.data is not None
        if p.behaviour in ADVERSARIES:
            assert p.estimate is not None
            child = make_adversary_child(
                p.behaviour, self.spec, self.head_bytes, self.champion_bytes, p.data, p.estimate,
                self.seed, round_, p.turns, advance_band=self.params.advance_band,
                margin=self.config.margin, poison_epochs=self.config.poison_epochs, pair=p.pair,
            )  # fmt: skip
            card = {"format": RELAY_CARD_FORMAT}
            return child.weights, child.samples, max(child.samples, len(p.data)), card, child
        work = make_child(
            self.spec, self.config, p.behaviour, self.head_bytes, p.data, self.seed, round_, p.turns
        )
        if work.result is None:  # nothing trained: a card that says little
            return work.weights, 0, len(p.data), {"format": RELAY_CARD_FORMAT}, None
        card = relay_card(
            self.task_id, round_, str(unixfs_cid(self.head_bytes)), work.result, work.cfg, 0.0,
            p.commitment,
        )  # fmt: skip
        return work.weights, work.result.samples, work.result.samples, card, None

    # -------------------------------------------------------------- rounds

    def _join(self, behaviours: Sequence[str]) -> None:
        for p in self.relayers:
            if p.behaviour in behaviours and not p.queued and p.left_round is None:
                p.relay.join_relay(self.task_id, self.stake)
                p.queued = True

    def _seat_validators(self) -> None:
        """Seat every validator without a seat that has not left; a squatter over-stakes, so that
        it keeps its seat through maxMisses missed commits, and takes a seat again after it."""
        for v in self.validators:
            if v.seated or v.left_round is not None:
                continue
            factor = SQUATTER_STAKE if v.behaviour == "squatter" else 1
            try:
                v.relay.register_validator(self.task_id, factor * self.params.validator_stake)
            except ContractRevert as exc:
                if exc.name != "DeRelay__SeatsFull":
                    raise
                continue
            v.seated = True
            v.seats += 1

    def run(self) -> SeedResult:
        started = time.perf_counter()
        cfg = self.config
        self._seat_validators()
        self._join(["honest"])
        if cfg.warmup == 0:
            self._join(RELAYER_BEHAVIOURS)
        state = self.publisher.task_state(self.task_id)
        honest_samples = 0
        counts = ", ".join(
            f"{b} {cfg.behaviours().count(b)}" for b in RELAYER_BEHAVIOURS if b in cfg.behaviours()
        )
        self.echo(
            f"seed {self.seed}: task {self.task_id}, genesis {self.genesis_score} bp "
            f"({self.genesis_accuracy} bp on the test split); {cfg.participants} relayers "
            f"({counts}), {cfg.validators} validators + {cfg.lazy_validators} lazy + "
            f"{cfg.squatters} squatters, alpha {cfg.alpha if cfg.alpha is not None else 'iid'}"
        )
        for _ in range(cfg.rounds):
            if state.phase == Phase.IDLE:
                self.echo(f"round {state.round}: the queue is empty; the relay stopped")
                break
            self._round_now = state.round
            row = self._round(state)
            if row.behaviour == "honest":
                honest_samples += row.samples
            row.honest_samples = honest_samples
            if cfg.warmup and row.round == cfg.warmup:
                self._join([b for b in RELAYER_BEHAVIOURS if b != "honest"])
            self._churn(row)
            self._seat_validators()
            state = self.publisher.task_state(self.task_id)
            row.pool = state.pool
            row.head_score = state.head_score
            row.champion_after = state.champion_score
            if state.champion_cid != unixfs_cid(self.champion_bytes).to_bytes():
                raise AssertionError(f"round {row.round}: the chain's champion is not ours")
            self.champions.append(self.champion_bytes)
            self.rows.append(row)
            self.echo(
                f"  round {row.round:3} {row.behaviour:10} {row.verdict:8} child {row.child_score:5} "
                f"delta {row.delta:+5} champion {row.champion_after:5} head acc "
                f"{row.head_accuracy:5} champion acc {row.champion_accuracy:5} "
                f"reward {row.reward / ETHER:.4f} pool {row.pool / ETHER:.3f}"
            )
        relay_done = time.perf_counter()
        payouts = task_payouts(self.publisher, self.task_id)
        self._check_books(payouts)
        curves = self._curves()
        reference = self._reference()
        timings = {
            "relay_s": relay_done - started,
            "baselines_s": time.perf_counter() - relay_done,
        }
        return SeedResult(
            seed=self.seed,
            out_dir=self.out_dir,
            task_id=self.task_id,
            genesis_score=self.genesis_score,
            genesis_accuracy=self.genesis_accuracy,
            rows=self.rows,
            participants=self.everyone,
            flows=self.flows,
            gas=self.gas,
            payouts=payouts,
            curves=curves,
            params=self.params,
            seconds=time.perf_counter() - started,
            spec=self.spec,
            champions=self.champions,
            test=self.test,
            reference=reference,
            timings=timings,
        )

    def _round(self, state: TaskState) -> RoundRow:
        round_ = state.round
        holder = self.by_address[state.holder]
        holder.turns += 1
        row = RoundRow(
            round=round_,
            relayer=holder.name,
            behaviour=holder.behaviour,
            verdict="skipped",
            crowned=False,
            child_score=0,
            champion_score=0,
            delta=0,
            progress=0,
            reveals=0,
            ballots="",
            champion_before=state.champion_score,
            champion_after=state.champion_score,
            head_score=state.head_score,
            head_before=self.head_accuracy,
            head_accuracy=self.head_accuracy,
            head_gap=0,
            champion_accuracy=self.champion_accuracy,
            child_accuracy=None,
            gain=0,
            samples=0,
            honest_samples=0,
            reward=0,
            slashed=0,
            gas=0,
            pool=state.pool,
            attack="",
            mix=None,
            estimate=None,
        )
        gas_mark = len(self.gas)
        if holder.behaviour == "staller":
            self._travel(state.deadline + 1)
            facts = self._apply_events(round_, self.keeper.relay.skip_turn(self.task_id))
            holder.skipped += 1
            row.slashed = facts.get("slashed", 0)
        else:
            self._review(holder, state, row)
        row.gas = sum(w for _, who, w in self.gas[gas_mark:] if who == holder.address)
        row.head_accuracy = self.head_accuracy
        row.champion_accuracy = self.champion_accuracy
        honest = [v for v in self.validators if v.behaviour == "validator" and v.seated]
        row.head_gap = lower_median(
            [self._score(v, self.head_bytes) - self._score(v, self.champion_bytes) for v in honest]
        )
        if self.payment:
            self._apply_events(round_, self.consumer.pay_for_model(self.task_id, self.payment))
        self._book_royalties(round_)
        return row

    def _review(self, holder: Participant, state: TaskState, row: RoundRow) -> None:
        """The holder submits (after a void review, the same child again), the validators commit
        and reveal paired scores, the keeper finalizes; `row` gets the outcome."""
        round_ = state.round
        if self._void_child is not None and self._void_child[0] == holder.address:
            _, child, card_bytes, claimed = self._void_child
            trained = 0
        else:
            child, trained, claimed, card, attack = self._make_child(holder, round_)
            card_bytes = json.dumps(card, sort_keys=True).encode()
            if attack is not None:
                row.attack, row.mix, row.estimate = attack.kind, attack.mix, attack.estimate
            if trained:  # compute_cost per epoch over the relayer's shard
                assert holder.data is not None
                epochs = max(1, round(trained / len(holder.data)))
                self._flow(round_, holder.address, "compute", self.config.compute_cost * epochs)
        self._void_child = None
        holder.samples += trained
        row.samples = trained
        child_cid = self.store.add(child)
        card_cid = self.store.add(card_bytes)
        receipt = holder.relay.submit_relay(
            self.task_id,
            round_,
            Cid.from_bytes(state.head_cid).digest,
            child_cid.to_bytes(),
            card_cid.to_bytes(),
            holder.commitment,
            max(1, claimed),
        )
        commit_end = (
            int(self.w3.eth.get_block(receipt["blockNumber"])["timestamp"])
            + self.params.commit_window
        )
        ballots = []
        for v in self.validators:
            if not v.seated or v.behaviour == "squatter":
                continue
            lazy = v.behaviour == "lazy_validator"
            if lazy:
                scores = tuple(self.rng.randrange(0, 10_001) for _ in range(3))
            else:
                scores = (
                    self._score(v, child),
                    self._score(v, self.champion_bytes),
                    self._score(v, self.head_bytes),  # the parent: the head until finalized
                )
            salt = self.rng.randbytes(32)
            v.relay.commit_score(
                self.task_id, round_, commitment_for(self.task_id, round_, *scores, salt, v.address)
            )
            v.reviews += 1
            ballots.append((v, scores, salt, lazy))
        self._travel(commit_end + 1)
        for v, scores, salt, lazy in ballots:
            if not lazy:
                v.relay.reveal_score(self.task_id, round_, *scores, salt)
        if any(lazy for *_, lazy in ballots):
            self._travel(commit_end + self.params.reveal_window + 1)
        facts = self._apply_events(round_, self.keeper.relay.finalize(self.task_id))
        row.verdict = facts["verdict"]
        row.crowned = facts.get("crowned", False)
        row.child_score, row.champion_score = facts["child_score"], facts["champion_score"]
        row.delta, row.progress = facts["delta"], facts["progress"]
        row.reveals, row.reward = facts["reveals"], facts["reward"]
        row.ballots = ";".join("/".join(map(str, s)) for _, s, _, lazy in ballots if not lazy)
        row.slashed = facts.get("slashed", 0)
        row.child_accuracy = self._test_accuracy(child)
        if row.verdict == "accepted":
            holder.accepted += 1
            progress = row.child_accuracy - self.head_accuracy
            self.head_bytes = child
            self.head_accuracy = row.child_accuracy
            if row.crowned:
                row.gain = row.child_accuracy - self.champion_accuracy
                holder.contribution += max(0, min(row.gain, progress))
                self.champion_bytes = child
                self.champion_accuracy = row.child_accuracy
        elif row.verdict == "rejected":
            holder.rejected += 1
        elif row.verdict == "void":
            self._void_child = (holder.address, child, card_bytes, claimed)

    def _churn(self, row: RoundRow) -> None:
        """Participants still unprofitable (gas counted) after `churn_after` turns (reviews) leave.
        Squatters never review, so never leave: they stay to squat."""
        k = self.config.churn_after
        if k is None:
            return
        for p in self.relayers:
            if p.queued and p.turns >= k and self._net_profit(p.address) < 0:
                try:
                    p.relay.leave_relay(self.task_id)
                except ContractRevert as exc:  # a lone relayer holds the next turn: not yet
                    if exc.name != "DeRelay__HolderCannotLeave":
                        raise
                    continue
                p.queued, p.left_round, p.left_reason = False, row.round, "unprofitable"
                if self._void_child is not None and self._void_child[0] == p.address:
                    self._void_child = None
        for v in self.validators:
            if v.left_round is None and v.reviews >= k and self._net_profit(v.address) < 0:
                if v.seated:
                    v.relay.leave_validator(self.task_id)
                v.seated, v.left_round, v.left_reason = False, row.round, "unprofitable"

    def _check_books(self, payouts: list[Payout]) -> None:
        """The simulation's books must equal what the chain's events say, to the wei."""
        for payout in payouts:
            mine = profit_of((k, a) for _, who, k, a in self.flows if who == payout.address)
            chain = (
                payout.relayer_rewards,
                payout.validator_fees,
                payout.keeper_bounties,
                payout.royalties_settled + payout.royalties_pending,
                payout.stake_lost,
            )
            ours = (mine.rewards, mine.fees, mine.bounties, mine.royalties, mine.stake_lost)
            if chain != ours:
                raise AssertionError(
                    f"books disagree for {payout.address}: chain {chain}, simulation {ours}"
                )

    # -------------------------------------------------------------- baselines

    def _curves(self) -> dict[str, Curve]:
        relay = Curve(
            "relay",
            [0] + [r.honest_samples for r in self.rows],
            [self.genesis_accuracy] + [r.head_accuracy for r in self.rows],
            [0] + [r.round for r in self.rows],
        )
        curves = {"relay": relay}
        budget = relay.samples[-1]
        if not self.config.baselines or budget == 0:
            return curves
        honest = [p.data for p in self.relayers if p.behaviour == "honest" and p.data is not None]
        genesis = self.head_bytes_genesis()
        curves["centralized"] = centralized_curve(
            self.spec, genesis, honest, self.test, budget, self.seed
        )
        curves["fedavg"] = fedavg_curve(self.spec, genesis, honest, self.test, budget, self.seed)
        curves["local"] = local_curve(self.spec, genesis, honest, self.test, budget, self.seed)
        return curves

    def _reference(self) -> list[ReferenceTurn]:
        """The all-honest relay of this run (with `baselines`): its honest turns only."""
        if not self.config.baselines:
            return []
        by_name = {p.name: p.data for p in self.relayers if p.data is not None}
        turns = [(r.round, by_name[r.relayer]) for r in self.rows if r.behaviour == "honest"]
        holdouts = [v.data for v in self.validators if v.behaviour == "validator" and v.data]
        return honest_reference(
            self.spec, self.config, self.params, self.head_bytes_genesis(), turns, holdouts,
            self.test, self.seed,
        )  # fmt: skip

    def head_bytes_genesis(self) -> bytes:
        return self.store.get(self.genesis_cid)


# ---------------------------------------------------------------------- baselines (off-chain)


def _model_from(spec: TaskSpec, weights: bytes) -> torch.nn.Module:
    model = build_model(spec)
    apply_weights(model, load_weights(weights, spec))
    return model


def honest_reference(
    spec: TaskSpec,
    config: SimConfig,
    params: TaskParams,
    genesis: bytes,
    turns: Sequence[tuple[int, Dataset]],
    holdouts: Sequence[Dataset],
    test: Dataset,
    seed: int,
) -> list[ReferenceTurn]:
    """The all-honest relay: the honest turns of a run, `(round, shard)` in order, with every other
    turn left out, each child reviewed by the contract's rule (`derelay.lab.metrics.review`) on paired
    scores of `holdouts`, the honest validators' shards. Same rounds, same training seeds."""
    head = champion = genesis
    head_acc = champion_acc = score_weights(spec, genesis, test)
    out = []
    for round_, shard in turns:
        child = make_child(spec, config, "honest", head, shard, seed, round_, 1).weights
        champion_scores = [score_weights(spec, champion, h) for h in holdouts]
        head_scores = (
            champion_scores
            if head is champion
            else [score_weights(spec, head, h) for h in holdouts]
        )
        ballots = [
            (score_weights(spec, child, h), c, p)
            for h, c, p in zip(holdouts, champion_scores, head_scores, strict=True)
        ]
        outcome = review(
            ballots, params.quorum, params.slash_band, params.advance_band, params.min_gain
        )
        if outcome.verdict == "accepted":
            head, head_acc = child, score_weights(spec, child, test)
            if outcome.crowned:
                champion, champion_acc = child, head_acc
        out.append(ReferenceTurn(round_, outcome.verdict, head_acc, champion_acc, champion))
    return out


def centralized_curve(
    spec: TaskSpec, genesis: bytes, shards: Sequence[Dataset], test: Dataset, budget: int, seed: int
) -> Curve:
    """One model trained on the pooled shards, a turn-sized chunk at a time (one epoch over each
    chunk, as a relay turn does), epoch after epoch of the pooled data, until `budget` samples."""
    pooled = Dataset(np.concatenate([s.X for s in shards]), np.concatenate([s.y for s in shards]))
    chunk = max(1, round(len(pooled) / len(shards)))
    model = _model_from(spec, genesis)
    rng = np.random.default_rng(seed)
    xs, ys = [0], [evaluate(model, test.X, test.y)]
    order = np.empty(0, dtype=np.int64)
    step = 0
    while xs[-1] < budget:
        if len(order) < chunk:
            order = np.concatenate([order, rng.permutation(len(pooled))])
        take, order = order[:chunk], order[chunk:]
        part = pooled.subset(np.sort(take))
        step += 1
        train(model, part.X, part.y, TrainConfig.from_spec(spec, seed=seed * 100_003 + step))
        xs.append(xs[-1] + len(part))
        ys.append(evaluate(model, test.X, test.y))
    return Curve("centralized", xs, ys)


def fedavg_curve(
    spec: TaskSpec, genesis: bytes, shards: Sequence[Dataset], test: Dataset, budget: int, seed: int
) -> Curve:
    """FedAvg: each round every client trains one local epoch from the global model; the global
    model becomes their average weighted by sample counts. Until `budget` samples."""
    global_model = _model_from(spec, genesis)
    xs, ys, rounds = [0], [evaluate(global_model, test.X, test.y)], [0]
    while xs[-1] < budget:
        states, weights = [], []
        for i, shard in enumerate(shards):
            client = build_model(spec)
            client.load_state_dict(global_model.state_dict())
            cfg = TrainConfig.from_spec(spec, seed=seed * 100_003 + 1000 * len(rounds) + i)
            train(client, shard.X, shard.y, cfg)
            states.append({k: v.detach().numpy() for k, v in client.state_dict().items()})
            weights.append(len(shard))
        average = fedavg(states, weights)
        global_model.load_state_dict({k: torch.from_numpy(v) for k, v in average.items()})
        xs.append(xs[-1] + sum(len(s) for s in shards))
        ys.append(evaluate(global_model, test.X, test.y))
        rounds.append(len(rounds))
    return Curve("fedavg", xs, ys, rounds)


def local_curve(
    spec: TaskSpec, genesis: bytes, shards: Sequence[Dataset], test: Dataset, budget: int, seed: int
) -> Curve:
    """Local-only: each client trains on its own shard alone, an epoch at a time; the curve is the
    clients' mean test accuracy against the samples all of them processed together."""
    models = [_model_from(spec, genesis) for _ in shards]
    xs, ys = [0], [evaluate(models[0], test.X, test.y)]
    epoch = 0
    while xs[-1] < budget:
        epoch += 1
        accs = []
        for i, (model, shard) in enumerate(zip(models, shards, strict=True)):
            train(
                model,
                shard.X,
                shard.y,
                TrainConfig.from_spec(spec, seed=seed * 100_003 + 1000 * epoch + i),
            )
            accs.append(evaluate(model, test.X, test.y))
        xs.append(xs[-1] + sum(len(s) for s in shards))
        ys.append(round(statistics.fmean(accs)))
    return Curve("local", xs, ys)


# ---------------------------------------------------------------------- analysis


VERDICTS = ("accepted", "held", "rejected", "void", "skipped")


def _step(rounds: Sequence[int], values: Sequence[float], start: float, at: int) -> float:
    """A per-round series' value at round `at`: that of its last round <= `at` (`start` before)."""
    return value_at([0, *rounds], [start, *values], at)


def _recall_series(
    spec: TaskSpec, models: Sequence[bytes], test: Dataset, cls: int
) -> list[int | None]:
    cache: dict[bytes, int | None] = {}
    out = []
    for weights in models:
        key = hashlib.sha256(weights).digest()
        if key not in cache:
            cache[key] = class_recall(spec, weights, test, cls)
        out.append(cache[key])
    return out


def _mean(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.fmean(present) if present else None


def summarize(result: SeedResult, config: SimConfig) -> dict[str, Any]:
    """The figures of one seed: efficacy, what each behaviour tried and got (gas counted), head
    against champion, the targeted class, sustainability, fairness."""
    rows = result.rows
    relay = result.curves["relay"]
    budget = relay.samples[-1]
    out: dict[str, Any] = {"seed": result.seed, "rounds": len(rows), "honest_samples": budget}
    finals = {name: value_at(c.samples, c.accuracy, budget) for name, c in result.curves.items()}
    finals["relay"] = relay.accuracy[-1]
    finals["champion"] = rows[-1].champion_accuracy if rows else result.genesis_accuracy
    window = relay.accuracy[-config.participants :]
    out["relay_last_k_mean"] = statistics.fmean(window) if rows else relay.accuracy[0]
    out["final_accuracy"] = finals
    out["genesis_accuracy"] = result.genesis_accuracy
    if "centralized" in finals:
        target = 0.9 * finals["centralized"]
        out["target_90"] = target
        reached = first_reaching(relay.rounds or [], relay.accuracy, target)
        out["relay_rounds_to_90"] = reached
        out["samples_to_90"] = {
            name: first_reaching(c.samples, c.accuracy, target) for name, c in result.curves.items()
        }
        fed = result.curves["fedavg"]
        out["fedavg_rounds_to_90"] = first_reaching(fed.rounds or [], fed.accuracy, target)

    def share(behaviour: str, verdict: str) -> tuple[int, int]:
        turns = [r for r in rows if r.behaviour == behaviour and r.verdict != "skipped"]
        return sum(r.verdict == verdict for r in turns), len(turns)

    out["honest_accepted"] = share("honest", "accepted")
    honest_rejected, honest_turns = share("honest", "rejected")
    out["honest_not_slashed"] = (honest_turns - honest_rejected, honest_turns)
    out["poisoned_rejected"] = share("poisoner", "rejected")
    out["free_rider_accepted"] = share("free_rider", "accepted")
    stalls = [r for r in rows if r.behaviour == "staller"]
    out["stalls_slashed"] = (sum(r.slashed > 0 for r in stalls), len(stalls))

    gas: dict[str, int] = defaultdict(int)
    for _, who, wei in result.gas:
        gas[who] += wei
    profits: dict[str, Any] = {}
    net: dict[str, int] = {}
    by_behaviour: dict[str, list[Participant]] = defaultdict(list)
    for p in result.participants:
        profits[p.name] = profit_of((k, a) for _, who, k, a in result.flows if who == p.address)
        net[p.name] = profits[p.name].profit - gas[p.address]
        by_behaviour[p.behaviour].append(p)
    out["profit_by_behaviour"] = {b: sum(net[p.name] for p in ps) for b, ps in by_behaviour.items()}
    out["mean_profit_by_behaviour"] = {
        b: statistics.fmean(net[p.name] for p in ps) for b, ps in by_behaviour.items()
    }
    out["gas_by_behaviour"] = {b: sum(gas[p.address] for p in ps) for b, ps in by_behaviour.items()}
    out["behaviours"] = {}
    for b, ps in by_behaviour.items():
        mine = [r for r in rows if r.behaviour == b]
        damage = [r.head_before - r.head_accuracy for r in mine]
        money = [profits[p.name] for p in ps]
        out["behaviours"][b] = {
            "members": len(ps),
            "turns": len(mine),
            "verdicts": {v: sum(r.verdict == v for r in mine) for v in VERDICTS},
            "crowned": sum(r.crowned for r in mine),
            "damage_per_turn": _mean(damage),  # head test accuracy lost per turn (bp)
            "worst_damage": max(damage, default=None),
            "rewards": sum(m.rewards for m in money),
            "fees": sum(m.fees for m in money),
            "royalties": sum(m.royalties for m in money),
            "slashed": sum(m.stake_lost for m in money),
            "compute": sum(m.compute for m in money),
            "gas": sum(gas[p.address] for p in ps),
            "net": sum(net[p.name] for p in ps),
            "max_net": max(net[p.name] for p in ps),
            "reviews": sum(p.reviews for p in ps),
            "seats": sum(p.seats for p in ps),
            "seats_lost": sum(p.seats_lost for p in ps),
        }
    honest = by_behaviour.get("honest", [])
    out["honest_in_profit"] = (sum(net[p.name] > 0 for p in honest), len(honest))

    advance = result.params.advance_band
    out["head_vs_champion"] = {
        "min_test_gap": min((r.head_accuracy - r.champion_accuracy for r in rows), default=0),
        "min_validator_gap": min((r.head_gap for r in rows), default=0),
        "accepted_below_band": sum(r.verdict == "accepted" and r.delta < -advance for r in rows),
    }
    ref = result.reference
    ref_rounds = [t.round for t in ref]
    last = rows[-1].round if rows else 0
    window_rows = [r for r in rows if r.round > last - 2 * config.participants]
    reference_champion = (
        _mean(
            [
                _step(
                    ref_rounds, [t.champion_accuracy for t in ref], result.genesis_accuracy, r.round
                )
                for r in window_rows
            ]
        )
        if ref
        else None
    )
    out["last_two_passes"] = {
        "from_round": window_rows[0].round if window_rows else 0,
        "champion": _mean([r.champion_accuracy for r in window_rows]),
        "head": _mean([r.head_accuracy for r in window_rows]),
        "reference_champion": reference_champion,
    }
    out["targeted"] = []
    if result.test is not None:
        for p in result.participants:
            if p.behaviour != "targeted" or p.pair is None:
                continue
            source, dest = p.pair
            recall = _recall_series(result.spec, result.champions, result.test, source)
            entry: dict[str, Any] = {
                "name": p.name,
                "source": source,
                "dest": dest,
                "champion_recall_end": recall[-1] if recall else None,
                "champion_recall_last2": _mean(recall[len(rows) - len(window_rows) :]),
                "reference_recall_end": None,
                "reference_recall_last2": None,
            }
            if ref:
                ref_recall = _recall_series(
                    result.spec, [t.champion for t in ref], result.test, source
                )
                genesis = class_recall(result.spec, result.champions[0], result.test, source)
                entry["reference_recall_end"] = ref_recall[-1]
                entry["reference_recall_last2"] = _mean(
                    [
                        _step(ref_rounds, [x or 0 for x in ref_recall], genesis or 0, r.round)
                        for r in window_rows
                    ]
                )
            out["targeted"].append(entry)

    out["churn"] = {
        p.name: (p.left_round, p.left_reason)
        for p in result.participants
        if p.left_round is not None
    }
    pools = [r.pool for r in rows]
    out["pool"] = {
        "start": config.pool,
        "end": pools[-1] if pools else config.pool,
        "min": min(pools, default=config.pool),
    }

    per_gain = [profits[p.name].rewards / p.contribution for p in honest if p.contribution > 0]
    per_sample = [profits[p.name].rewards / p.samples for p in honest if p.samples > 0]
    out["jain_reward_per_gain"] = jain_index(per_gain)
    out["jain_reward_per_sample"] = jain_index(per_sample)
    out["jain_n"] = len(per_gain)
    relayer_rewards = [profits[p.name].rewards for p in result.participants if p.role == "relayer"]
    out["gini_rewards_relayers"] = gini(relayer_rewards)
    out["gini_rewards_honest"] = gini([profits[p.name].rewards for p in honest])

    out["rewards_by_behaviour"] = {
        b: sum(r.reward for r in rows if r.behaviour == b) for b in RELAYER_BEHAVIOURS
    }
    out["seconds"] = result.seconds
    out["timings"] = result.timings
    result.summary = out
    return out


# ---------------------------------------------------------------------- outputs


def write_outputs(result: SeedResult, config: SimConfig) -> None:
    """rounds.csv, participants.csv, curves.csv, head_champion.csv, summary.json and the plots of
    one seed."""
    from derelay.deploy import plots

    out = result.out_dir
    out.mkdir(parents=True, exist_ok=True)
    with (out / "rounds.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        names = [f.name for f in fields(RoundRow)]
        writer.writerow(names)
        for r in result.rows:
            writer.writerow(["" if getattr(r, n) is None else getattr(r, n) for n in names])
    gas: dict[str, int] = defaultdict(int)
    for _, who, wei in result.gas:
        gas[who] += wei
    with (out / "participants.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "name", "address", "role", "behaviour", "turns", "accepted", "rejected",
                "skipped", "reviews", "seats", "seats_lost", "samples", "contribution_bp",
                "rewards_wei", "fees_wei", "bounties_wei", "royalties_wei", "stake_lost_wei",
                "compute_wei", "profit_wei", "gas_wei", "net_profit_wei", "left_round",
                "left_reason",
            ]
        )  # fmt: skip
        for p in result.participants:
            pr = profit_of((k, a) for _, who, k, a in result.flows if who == p.address)
            writer.writerow(
                [
                    p.name, p.address, p.role, p.behaviour, p.turns, p.accepted, p.rejected,
                    p.skipped, p.reviews, p.seats, p.seats_lost, p.samples, p.contribution,
                    pr.rewards, pr.fees, pr.bounties, pr.royalties, pr.stake_lost, pr.compute,
                    pr.profit, gas[p.address], pr.profit - gas[p.address],
                    "" if p.left_round is None else p.left_round, p.left_reason,
                ]
            )  # fmt: skip
    with (out / "curves.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["method", "round", "samples", "accuracy_bp"])
        for curve in result.curves.values():
            for i, (x, y) in enumerate(zip(curve.samples, curve.accuracy, strict=True)):
                writer.writerow([curve.method, curve.rounds[i] if curve.rounds else "", x, y])
    rounds = [r.round for r in result.rows]
    ref_rounds = [t.round for t in result.reference]
    reference = [
        _step(
            ref_rounds, [t.champion_accuracy for t in result.reference], result.genesis_accuracy, x
        )
        for x in rounds
    ]
    with (out / "head_champion.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "round", "behaviour", "verdict", "delta", "head_score", "champion_score",
                "head_accuracy", "champion_accuracy", "all_honest_champion_accuracy",
            ]
        )  # fmt: skip
        for i, r in enumerate(result.rows):
            writer.writerow(
                [
                    r.round, r.behaviour, r.verdict, r.delta, r.head_score, r.champion_after,
                    r.head_accuracy, r.champion_accuracy,
                    round(reference[i]) if result.reference else "",
                ]
            )  # fmt: skip
    (out / "summary.json").write_text(json.dumps(_jsonable(result.summary), indent=2) + "\n")

    relay = result.curves["relay"]
    by_rounds = {
        name: [value_at(c.samples, c.accuracy, s) for s in relay.samples]
        for name, c in result.curves.items()
        if name != "relay"
    }
    plots.plot_efficacy(
        out / "accuracy.png",
        relay.rounds or [],
        relay.accuracy,
        by_rounds,
        {name: (c.samples, c.accuracy) for name, c in result.curves.items()},
        title=f"accuracy on the common test split (seed {result.seed})",
    )
    series = {
        "head": [r.head_accuracy / 100 for r in result.rows],
        "champion": [r.champion_accuracy / 100 for r in result.rows],
    }
    if result.reference:
        series["champion, all-honest relay"] = [x / 100 for x in reference]
    plots.plot_series(
        out / "head_champion.png",
        rounds,
        series,
        xlabel="round",
        ylabel="test accuracy (%)",
        title=f"head and champion over rounds (seed {result.seed})",
    )
    groups = {p.address: p.behaviour for p in result.participants}
    last = rounds[-1] if rounds else 0
    cumulative = cumulative_profit(result.flows, last, groups)
    spent: dict[str, list[int]] = {g: [0] * (last + 1) for g in cumulative}
    for round_, who, wei in result.gas:  # gas is a cost of its sender
        if who in groups and 0 <= round_ <= last:
            spent[groups[who]][round_] += wei
    for g, values in cumulative.items():
        cumulative[g] = [v - c for v, c in zip(values, accumulate(spent[g]), strict=True)]
    members = {b: sum(1 for g in groups.values() if g == b) for b in cumulative}
    plots.plot_series(
        out / "profit.png",
        list(range(last + 1)),
        {
            f"{b} (x{members[b]})": [v / members[b] / ETHER for v in values]
            for b, values in cumulative.items()
        },
        xlabel="round",
        ylabel="cumulative net profit per participant (ETH)",
        title=f"cumulative profit per behaviour, gas counted, mean per participant (seed {result.seed})",
    )
    plots.plot_series(
        out / "pool.png",
        [0] + rounds,
        {"pool": [config.pool / ETHER] + [r.pool / ETHER for r in result.rows]},
        xlabel="round",
        ylabel="pool balance (ETH)",
        title=f"pool balance (seed {result.seed})",
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, np.generic):
        return value.item()
    if hasattr(value, "__dataclass_fields__"):
        return _jsonable({f.name: getattr(value, f.name) for f in fields(value)})
    return value


def _pct(bp: float | None) -> str:
    return "n/a" if bp is None or math.isnan(bp) else f"{bp / 100:.1f}%"


def _ratio(pair: tuple[int, int]) -> str:
    done, total = pair
    return f"{done}/{total}" + (f" ({100 * done / total:.0f}%)" if total else "")


def _eth(wei: float) -> str:
    return f"{wei / ETHER:+.4f}"


def _points(bp: float | None) -> str:
    return "n/a" if bp is None else f"{bp / 100:+.1f}"


def _behaviour_rows(results: Sequence[SeedResult]) -> list[str]:
    """One row per behaviour, over every seed: what it tried and what it got."""
    lines = [
        "| behaviour (per seed) | tried | turns | accepted / crowned / held / rejected / void / "
        "skipped | head lost per turn, mean (worst), points | rewards | slashed | gas | net "
        "profit, total (best-off participant, range over seeds) | net <= 0 in seeds | seats taken "
        "/ lost |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    names = sorted(
        {b for r in results for b in r.summary["behaviours"]},
        key=lambda b: [*RELAYER_BEHAVIOURS, *VALIDATOR_BEHAVIOURS, "keeper"].index(b),
    )
    for b in names:
        rows = [r.summary["behaviours"][b] for r in results if b in r.summary["behaviours"]]

        def total(key: str, rows: list[dict[str, Any]] = rows) -> int:
            return sum(x[key] for x in rows)

        counts = [sum(x["verdicts"][v] for x in rows) for v in VERDICTS]
        verdicts = " / ".join(str(n) for n in [counts[0], total("crowned"), *counts[1:]])
        damages = [x["damage_per_turn"] for x in rows if x["damage_per_turn"] is not None]
        worst = [x["worst_damage"] for x in rows if x["worst_damage"] is not None]
        damage = (
            f"{statistics.fmean(damages) / 100:.2f} ({max(worst) / 100:.1f})" if damages else "-"
        )
        seats = f"{total('seats')} / {total('seats_lost')}" if total("seats") else "-"
        lines.append(
            f"| {b} (x{rows[0]['members']}) | {TRIES.get(b, '')} | {total('turns')} | {verdicts} | "
            f"{damage} | {total('rewards') / ETHER:.4f} | {total('slashed') / ETHER:.4f} | "
            f"{total('gas') / ETHER:.4f} | {_eth(total('net'))} ({_eth(min(x['max_net'] for x in rows))}"
            f"..{_eth(max(x['max_net'] for x in rows))}) | "
            f"{sum(x['max_net'] <= 0 for x in rows)}/{len(rows)} | {seats} |"
        )
    return lines


def write_report(out_dir: Path, config: SimConfig, results: Sequence[SeedResult]) -> Path:
    """report.md over every seed, and summary.csv with one row per seed."""
    train = digits_mlp_spec().train
    counts = ", ".join(
        f"{b.replace('_', '-')} {getattr(config, name)}" for b, name in RELAYER_COUNTS.items()
    )
    payment = (
        "the usage fee"
        if config.consumer_payment is None
        else f"{config.consumer_payment / ETHER:g} ETH"
    )
    gas_price = (
        "each receipt's effective price"
        if config.gas_price is None
        else f"{config.gas_price / 10**9:g} gwei"
    )
    lines = [
        "# DeRelayL simulation report",
        "",
        f"Seeds: {', '.join(str(r.seed) for r in results)} (default seed {DEFAULT_SEED}). "
        "The real DeRelay contract on the embedded chain (eth-tester), real training of the "
        f"digits MLP: an honest turn trains {train.epochs} local "
        f"epoch{'' if train.epochs == 1 else 's'} of {train.optimizer} (lr "
        f"{train.lr:g}, proximal term {train.prox_mu:g}, logit adjustment {train.logit_adjust:g}), "
        "a poisoner trains without either safeguard.",
        "",
        f"- relayers K = {config.participants}: {counts} (poison {config.poison}); adversaries "
        f"join after round {config.warmup}; adaptive ones aim {config.margin} bp inside the "
        f"advance band and hold out {config.estimate_fraction:g} of their shard to estimate",
        f"- validators {config.validators} honest + {config.lazy_validators} lazy + "
        f"{config.squatters} squatters; rounds {config.rounds}; "
        f"alpha {config.alpha if config.alpha is not None else 'IID'}; "
        f"compute cost {config.compute_cost / ETHER:g} ETH per trained epoch; gas at {gas_price}; "
        f"churn after {config.churn_after} unprofitable turns; consumer pays {payment} each round",
    ]
    if results:
        p = results[0].params
        lines.append(
            f"- task: slashBand {p.slash_band} bp, advanceBand {p.advance_band} bp, minGain "
            f"{p.min_gain} bp, baseReward {p.base_reward / ETHER:g} ETH, rewardPerPoint "
            f"{p.reward_per_point / ETHER:g} ETH, slashReject {p.slash_reject_bp} bp, slashTimeout "
            f"{p.slash_timeout_bp} bp, quorum {p.quorum}, validatorFee {p.validator_fee / ETHER:g} "
            f"ETH, slashMiss {p.slash_miss_bp} bp, maxMisses {p.max_misses}, royalty {p.royalty_bp} bp"
        )
    lines += [
        "",
        "Baselines train on the honest relayers' shards only (the data the relay can learn from), "
        "with as many samples as the honest relayers processed; accuracy is on a common test split "
        "that neither training nor review sees. The all-honest relay replays the run's honest "
        "turns (same rounds, same training seeds) with every other turn left out, each child "
        "reviewed by the contract's rule on the honest validators' paired scores.",
        "",
        "## Efficacy",
        "",
        "Final test accuracy at the samples the honest relayers processed (relay: the head after the "
        "last round, and its mean over the last K rounds, which smooths the swings of label skew; "
        "champion: what consumers license); rounds and samples to reach 90% of centralized's final "
        "accuracy.",
        "",
        "| seed | relay head | relay champion | head, last-K mean | centralized | FedAvg | local-only | relay rounds to 90% | samples to 90% (relay / central / FedAvg / local) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        s = r.summary
        f = s["final_accuracy"]
        to90 = s.get("samples_to_90", {})
        lines.append(
            f"| {r.seed} | {_pct(f.get('relay'))} | {_pct(f.get('champion'))} | "
            f"{_pct(s['relay_last_k_mean'])} | {_pct(f.get('centralized'))} | "
            f"{_pct(f.get('fedavg'))} | {_pct(f.get('local'))} | "
            f"{s.get('relay_rounds_to_90') or 'not reached'} | "
            + " / ".join(
                str(to90.get(m) or "-") for m in ("relay", "centralized", "fedavg", "local")
            )
            + " |"
        )
    if len(results) > 1:
        means = {
            m: statistics.fmean(r.summary["final_accuracy"].get(m, math.nan) for r in results)
            for m in ("relay", "champion", "centralized", "fedavg", "local")
        }
        tail = statistics.fmean(r.summary["relay_last_k_mean"] for r in results)
        lines.append(
            f"| mean | {_pct(means['relay'])} | {_pct(means['champion'])} | {_pct(tail)} | "
            f"{_pct(means['centralized'])} | {_pct(means['fedavg'])} | {_pct(means['local'])} | | |"
        )
    lines += [
        "",
        "## What each behaviour tried and got",
        "",
        "Over every seed. Head lost per turn: the head's test accuracy before the turn minus after "
        "it (positive is damage), averaged over the behaviour's turns. Amounts in ETH; net profit = "
        "rewards + fees + bounties + royalties - stake slashed - compute - gas, for the behaviour in "
        "total and (in brackets) the range over seeds of its best-off participant; 'net <= 0 in "
        "seeds' counts the seeds where no participant of the behaviour ended above zero.",
        "",
        *_behaviour_rows(results),
        "",
        "| seed | honest not slashed | honest accepted | poisoned rejected | free-rider copies accepted | stalls slashed |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        s = r.summary
        lines.append(
            f"| {r.seed} | {_ratio(s['honest_not_slashed'])} | {_ratio(s['honest_accepted'])} | "
            f"{_ratio(s['poisoned_rejected'])} | {_ratio(s['free_rider_accepted'])} | "
            f"{_ratio(s['stalls_slashed'])} |"
        )
    lines += [
        "",
        "## Head and champion",
        "",
        "The head is what the next relayer trains from; the champion, the best model accepted so "
        "far as the validators measure it, is what consumers license and what rewards are measured "
        "against. Per seed: the lowest head-minus-champion gap over the rounds (on the test split, "
        "and as the honest validators measure it: the lower median of their paired differences), accepted children more than the advance band below the champion by the "
        "validators' median delta (the contract's bound: must be 0), and the mean test accuracy of "
        "champion and head over the last two passes (2K rounds) beside the all-honest relay's "
        "champion. Per round: `seed-*/head_champion.csv` and `seed-*/head_champion.png`.",
        "",
        "| seed | lowest head - champion, test (validators) | accepted below the band | last two passes from round | champion | head | all-honest champion | champion - all-honest |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        hc, l2 = r.summary["head_vs_champion"], r.summary["last_two_passes"]
        diff = (
            None
            if l2["reference_champion"] is None or l2["champion"] is None
            else l2["champion"] - l2["reference_champion"]
        )
        lines.append(
            f"| {r.seed} | {_points(hc['min_test_gap'])} ({_points(hc['min_validator_gap'])}) | "
            f"{hc['accepted_below_band']} | {l2['from_round']} | {_pct(l2['champion'])} | "
            f"{_pct(l2['head'])} | {_pct(l2['reference_champion'])} | {_points(diff)} |"
        )
    targeted = [(r.seed, t) for r in results for t in r.summary["targeted"]]
    if targeted:
        lines += [
            "",
            "## The targeted class",
            "",
            "Recall of the targeted poisoner's source class (on the test split) by the champion, at "
            "the end and averaged over the last two passes, beside the all-honest relay's champion.",
            "",
            "| seed | attacker | class sent | champion recall, end (last two passes) | all-honest, end (last two passes) | ratio, last two passes |",
            "|---|---|---|---|---|---|",
        ]
        for seed, t in targeted:
            ratio = (
                f"{t['champion_recall_last2'] / t['reference_recall_last2']:.2f}"
                if t["reference_recall_last2"] and t["champion_recall_last2"] is not None
                else "n/a"
            )
            lines.append(
                f"| {seed} | {t['name']} | {t['source']} -> {t['dest']} | "
                f"{_pct(t['champion_recall_end'])} ({_pct(t['champion_recall_last2'])}) | "
                f"{_pct(t['reference_recall_end'])} ({_pct(t['reference_recall_last2'])}) | {ratio} |"
            )
    behaviours = sorted({p.behaviour for r in results for p in r.participants})
    lines += [
        "",
        "## Sustainability",
        "",
        "Net profit = relay rewards + validator fees + keeper bounties + royalties - stake lost - "
        "compute cost - gas, in ETH, per behaviour in total and per participant (stakes come back "
        "except what is slashed).",
        "",
        "| seed | "
        + " | ".join(behaviours)
        + " | honest in profit | pool start -> end (min) | churn |",
        "|---|" + "---|" * len(behaviours) + "---|---|---|",
    ]
    for r in results:
        s = r.summary
        cells = [
            f"{_eth(s['profit_by_behaviour'].get(b, 0))} ({_eth(s['mean_profit_by_behaviour'].get(b, 0))} each)"
            for b in behaviours
        ]
        pool = s["pool"]
        churn = ", ".join(f"{n} @{rd} ({why})" for n, (rd, why) in s["churn"].items()) or "none"
        lines.append(
            f"| {r.seed} | " + " | ".join(cells) + f" | {_ratio(s['honest_in_profit'])} | "
            f"{pool['start'] / ETHER:.3f} -> {pool['end'] / ETHER:.3f} ({pool['min'] / ETHER:.3f}) | {churn} |"
        )
    lines += [
        "",
        "Per participant: `seed-*/participants.csv`; over time: `seed-*/profit.png`, `seed-*/pool.png`.",
        "",
        "## Fairness",
        "",
        "Jain's index of reward per unit of contribution among honest relayers (contribution: the "
        "sum over a relayer's crowned turns of its test-accuracy gain over the champion or over "
        "its parent, whichever is less, as the contract pays; also per sample trained), Gini of "
        "relay rewards.",
        "",
        "| seed | Jain (per gain) | Jain (per sample) | Gini (all relayers) | Gini (honest) |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        s = r.summary
        lines.append(
            f"| {r.seed} | {s['jain_reward_per_gain']:.3f} (n={s['jain_n']}) | "
            f"{s['jain_reward_per_sample']:.3f} | {s['gini_rewards_relayers']:.3f} | "
            f"{s['gini_rewards_honest']:.3f} |"
        )
    present = [b for b in RELAYER_BEHAVIOURS if b in config.behaviours()]
    lines += [
        "",
        "## Rewards by behaviour",
        "",
        "The contract pays only for a crowned child, one whose `delta` (the validators' median of "
        "child minus champion on the same held-out data) reaches minGain, and only for what it "
        "added itself: for gain = min(delta, progress), progress the median of child minus its "
        "parent, baseReward once gain reaches minGain plus rewardPerPoint per bp. A child at or "
        "below the champion earns nothing, and neither does a copy of the head or a recovery of "
        "lost ground. Rewards per behaviour (ETH):",
        "",
        "| seed | " + " | ".join(present) + " |",
        "|---|" + "---|" * len(present),
    ]
    for r in results:
        s = r.summary
        cells = [f"{s['rewards_by_behaviour'].get(b, 0) / ETHER:.4f}" for b in present]
        lines.append(f"| {r.seed} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Wall time: " + ", ".join(f"seed {r.seed} {r.seconds:.1f} s" for r in results) + ".",
        "",
        "Files per seed: `rounds.csv`, `participants.csv`, `curves.csv`, `head_champion.csv`, "
        "`summary.json`, `accuracy.png`, `head_champion.png`, `profit.png`, `pool.png`. Every "
        "amount in the CSVs is checked against the chain's events (`derelay.trainer.payouts.task_payouts`) to "
        "the wei before it is written; gas is each receipt's gasUsed.",
        "",
    ]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines))
    with (out_dir / "summary.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "seed", "relay_bp", "champion_bp", "centralized_bp", "fedavg_bp", "local_bp",
                "relay_rounds_to_90", "honest_accepted", "honest_turns", "poisoned_rejected",
                "poisoned_turns", "champion_last2_bp", "all_honest_champion_last2_bp",
                "jain_per_gain", "gini_relayers", "seconds",
            ]
        )  # fmt: skip
        for r in results:
            s = r.summary
            f = s["final_accuracy"]
            l2 = s["last_two_passes"]
            writer.writerow(
                [
                    r.seed, f.get("relay"), f.get("champion"), f.get("centralized"),
                    f.get("fedavg"), f.get("local"), s.get("relay_rounds_to_90"),
                    *s["honest_accepted"], *s["poisoned_rejected"],
                    "" if l2["champion"] is None else round(l2["champion"]),
                    "" if l2["reference_champion"] is None else round(l2["reference_champion"]),
                    f"{s['jain_reward_per_gain']:.4f}", f"{s['gini_rewards_relayers']:.4f}",
                    f"{r.seconds:.1f}",
                ]
            )  # fmt: skip
    return path


# ---------------------------------------------------------------------- entry point


def simulate(
    config: SimConfig, out_dir: Path, echo: Callable[[str], None] = print
) -> list[SeedResult]:
    """Run every seed of `config`; write per-seed outputs under out_dir/seed-<s>/ and report.md."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.json").write_text(json.dumps(config.to_json_dict(), indent=2) + "\n")
    results = []
    for seed in config.seeds:
        with tempfile.TemporaryDirectory(prefix="derelay-sim-") as store_dir:
            sim = Simulation(config, seed, out_dir / f"seed-{seed}", Path(store_dir), echo=echo)
            result = sim.run()
        summarize(result, config)
        write_outputs(result, config)
        results.append(result)
    report = write_report(out_dir, config, results)
    echo(f"report: {report}")
    return results


__all__ = [
    "SimConfig",
    "SeedResult",
    "Simulation",
    "simulate",
    "summarize",
    "centralized_curve",
    "fedavg_curve",
    "local_curve",
]
