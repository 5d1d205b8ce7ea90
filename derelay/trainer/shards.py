"""Which data each participant holds: the spec's dataset split into a reference held-out part and a
training part, the training part partitioned among relayers (IID or Dirichlet non-IID) and the
held-out part among validators. Deterministic from a seed, so separate processes agree."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from derelay.trainer.data import Dataset, load_dataset, partition, split_holdout
from derelay.trainer.errors import ConfigError
from derelay.trainer.spec import TaskSpec


@dataclass(frozen=True)
class ShardPlan:
    """How the spec's dataset is dealt out."""

    relayers: int  # number of relayer shards of the training part
    validators: int  # number of validator shards of the held-out part
    alpha: float | None = 0.5  # Dirichlet concentration for relayer shards; None: IID
    seed: int = 0  # fixes the held-out split and both partitions


def parse_shard(text: str) -> tuple[int, int]:
    """ "i/N" (1-based i) to (i - 1, N)."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise ConfigError(f"shard {text!r} is not of the form i/N (e.g. 2/5)") from None
    if not 1 <= index <= count:
        raise ConfigError(f"shard {text!r}: i must be between 1 and N")
    return index - 1, count


def split_dataset(spec: TaskSpec, seed: int, path: Path | None = None) -> tuple[Dataset, Dataset]:
    """(training part, held-out part) of the spec's dataset."""
    data = load_dataset(spec, path)
    train_idx, holdout_idx = split_holdout(len(data), spec.eval_fraction, seed)
    return data.subset(train_idx), data.subset(holdout_idx)


def relayer_shards(spec: TaskSpec, plan: ShardPlan, path: Path | None = None) -> list[Dataset]:
    """Every relayer's training shard."""
    train, _ = split_dataset(spec, plan.seed, path)
    scheme = "iid" if plan.alpha is None else "dirichlet"
    parts = partition(
        train.y, plan.relayers, scheme=scheme, alpha=plan.alpha or 1.0, seed=plan.seed
    )
    return [train.subset(p) for p in parts]


def validator_shards(spec: TaskSpec, plan: ShardPlan, path: Path | None = None) -> list[Dataset]:
    """Every validator's held-out shard (IID: validators should agree on what good means)."""
    _, holdout = split_dataset(spec, plan.seed, path)
    parts = partition(holdout.y, plan.validators, scheme="iid", seed=plan.seed)
    return [holdout.subset(p) for p in parts]
