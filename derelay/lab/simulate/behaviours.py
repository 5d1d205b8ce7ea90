"""What each participant kind does: the data each holds, and the child a relayer of each
behaviour submits (the adaptive adversaries' children come from `derelay.lab.adversaries`)."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from derelay.lab.simulate.config import SimConfig
from derelay.trainer.data import Dataset, partition, split_holdout
from derelay.trainer.models import (
    apply_weights,
    build_model,
    init_weights,
    load_weights,
    save_weights,
)
from derelay.trainer.shards import split_dataset
from derelay.trainer.spec import TaskSpec, TrainConfig
from derelay.trainer.steps import (
    ChildResult,
    score_weights,
    train_child,
)

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
    "parrot": "reveals the champion's last published median as all three scores, never scores",
    "squatter": "takes a seat, never commits (takes one again when it loses it)",
    "keeper": "finalizes and skips",
}
FREE_RIDER_NOISE = 1e-6
SQUATTER_STAKE = 2  # squatters stake this many validatorStakes: enough to sit out maxMisses misses


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
    cfg = replace(cfg.without_safeguards(), epochs=config.poison_epochs)
    result = train_child(spec, parent, flipped, cfg)
    return ChildWork(result.weights, result, cfg)
