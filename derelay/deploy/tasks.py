"""Publishing a task: the spec and genesis weights go to the store, the task to the chain."""

from __future__ import annotations

import re
from dataclasses import dataclass, fields, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from derelay.trainer.cid import Cid
from derelay.trainer.contract import DeRelayContract, TaskParams, load_abi
from derelay.trainer.errors import ConfigError, SpecError
from derelay.trainer.limits import DEFAULT_LIMITS, Limits, read_prefix
from derelay.trainer.spec import TaskSpec
from derelay.trainer.store import ContentStore


@dataclass(frozen=True)
class PublishedTask:
    """A created task and what went into it."""

    task_id: int
    spec_cid: Cid
    genesis_cid: Cid
    genesis_score: int


def load_spec(store: ContentStore, cid_bytes: bytes, limits: Limits = DEFAULT_LIMITS) -> TaskSpec:
    """Fetch (verified, at most `limits.spec_bytes`) and parse a task's spec."""
    data = store.get(Cid.from_bytes(cid_bytes), max_bytes=limits.spec_bytes)
    return TaskSpec.from_json(data, limits.spec_bytes)


def read_spec_file(path: Path, max_bytes: int = DEFAULT_LIMITS.spec_bytes) -> TaskSpec:
    """A spec from a local JSON file."""
    try:
        data = read_prefix(path, max_bytes)
    except OSError as exc:
        raise SpecError(f"cannot read spec file {path}: {exc.strerror}; check the path") from exc
    return TaskSpec.from_json(data, max_bytes)


def parse_param_overrides(items: list[str]) -> dict[str, int]:
    """ "name=value" pairs (wei amounts accept an ether/gwei suffix) for TaskParams fields, each
    checked to fit its field on chain (the contract checks the ranges it cares about)."""
    allowed = {f.name for f in fields(TaskParams)} - {"spec_cid", "genesis_cid", "genesis_score"}
    bits = param_bits()
    overrides: dict[str, int] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or name not in allowed:
            raise ConfigError(
                f"--param {item!r}: expected name=value with name one of {', '.join(sorted(allowed))}"
            )
        amount = parse_amount(value)
        if amount >= 2 ** bits[name]:
            raise ConfigError(
                f"--param {item!r}: {name} is a uint{bits[name]} on chain, at most "
                f"{2 ** bits[name] - 1}"
            )
        overrides[name] = amount
    return overrides


def param_bits() -> dict[str, int]:
    """The width in bits of each integer task parameter, from the contract's `createTask` ABI."""
    (create,) = [item for item in load_abi() if item.get("name") == "createTask"]
    return {
        re.sub(r"(?<!^)([A-Z])", r"_\1", c["name"]).lower(): int(c["type"].removeprefix("uint"))
        for c in create["inputs"][0]["components"]
        if c["type"].startswith("uint")
    }


UNITS = (("ether", 10**18), ("eth", 10**18), ("gwei", 10**9), ("wei", 1))


def parse_amount(text: str) -> int:
    """Wei from "123", "0.5ether", "20gwei"."""
    value = text.strip().lower()
    number, scale = value, 1
    for unit, unit_scale in UNITS:
        if value.endswith(unit):
            number, scale = value[: -len(unit)].strip(), unit_scale
            break
    try:
        amount = Decimal(number) * scale
    except InvalidOperation:
        raise ConfigError(
            f"{text!r} is not an amount: use wei, or a number with ether or gwei"
        ) from None
    if amount < 0 or amount != amount.to_integral_value():
        raise ConfigError(f"{text!r} is not a whole, non-negative number of wei")
    return int(amount)


def publish_task(
    relay: DeRelayContract,
    store: ContentStore,
    spec: TaskSpec,
    funding: int,
    overrides: dict[str, Any] | None = None,
    genesis_seed: int = 0,
    data_seed: int = 0,
    data_path: Path | None = None,
) -> PublishedTask:
    """Put the spec and seeded genesis weights on the store, score the genesis on the reference
    held-out split, and create the task on chain."""
    # torch and the datasets load here, not at import: every CLI command imports this module.
    from derelay.trainer.models import init_weights, save_weights
    from derelay.trainer.shards import split_dataset
    from derelay.trainer.steps import score_weights

    genesis = save_weights(init_weights(spec, genesis_seed))
    _, holdout = split_dataset(spec, data_seed, data_path)
    genesis_score = score_weights(spec, genesis, holdout)
    spec_cid = store.add(spec.to_json())
    store.pin(spec_cid)
    genesis_cid = store.add(genesis)
    store.pin(genesis_cid)
    params = TaskParams(
        spec_cid=spec_cid.to_bytes(),
        genesis_cid=genesis_cid.to_bytes(),
        genesis_score=genesis_score,
    )
    if overrides:
        params = replace(params, **overrides)
    task_id = relay.create_task(params, funding)
    return PublishedTask(task_id, spec_cid, genesis_cid, genesis_score)
