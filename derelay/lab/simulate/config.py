"""What a simulation runs: `SimConfig` (participants, rounds, seeds, money, task overrides), read
from TOML or a mapping and checked."""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from derelay.deploy.tasks import parse_amount
from derelay.lab.adversaries import (
    ADVERSARIES,
    DEFAULT_MARGIN,
)
from derelay.trainer.contract import (
    ETHER,
    TaskParams,
)
from derelay.trainer.errors import ConfigError
from derelay.trainer.spec import BUILTIN_TASKS

RELAYER_BEHAVIOURS = ("honest", "free_rider", "poisoner", "staller", *ADVERSARIES)
VALIDATOR_BEHAVIOURS = ("validator", "lazy_validator", "parrot", "squatter")
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
POISON_MODES = ("label_flip", "random", "alternate")
DEFAULT_SEED = 0
# TaskParams fields a simulation may override (the CIDs and genesis score come from publishing).
OVERRIDABLE = tuple(
    name
    for name in TaskParams.field_names()
    if name not in ("spec_cid", "genesis_cid", "genesis_score")
)
AMOUNT_FIELDS = ("compute_cost", "pool", "relayer_stake", "consumer_payment", "gas_price")
COUNT_FIELDS = (
    *RELAYER_COUNTS.values(), "validators", "lazy_validators", "parrots", "squatters"
)  # fmt: skip


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
    parrots: int = 1  # reveal the last review's published medians, never score
    squatters: int = 1  # take a seat, never commit
    rounds: int = 60
    task: str = "digits"  # the task relayed (`BUILTIN_TASKS`): the demo's digits MLP, or MNIST
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
        if self.seats > 16:
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
        if self.task not in BUILTIN_TASKS:
            raise ConfigError(f"simulation: task must be one of {', '.join(BUILTIN_TASKS)}")
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

    @property
    def seats(self) -> int:
        """Validators of every behaviour: one seat each."""
        return self.validators + self.lazy_validators + self.parrots + self.squatters

    def overrides(self) -> dict[str, int]:
        """TaskParams overrides, with enough validator seats for every validator."""
        out = dict(self.params)
        default_seats = TaskParams.__dataclass_fields__["max_validators"].default
        out.setdefault("max_validators", max(default_seats, self.seats))
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
