"""Off-chain baselines on the same honest shards and sample budget: the all-honest relay,
centralized training, FedAvg and local-only training."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import torch

from derelay.lab.metrics import (
    fedavg,
    review,
)
from derelay.lab.simulate.behaviours import make_child
from derelay.lab.simulate.config import SimConfig
from derelay.lab.simulate.records import Curve, ReferenceTurn
from derelay.trainer.contract import (
    TaskParams,
)
from derelay.trainer.data import Dataset
from derelay.trainer.models import (
    apply_weights,
    build_model,
    load_weights,
)
from derelay.trainer.spec import TaskSpec, TrainConfig
from derelay.trainer.steps import (
    score_weights,
)
from derelay.trainer.training import evaluate, train


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


def _continuing(spec: TaskSpec, seed: int) -> TrainConfig:
    """The spec's training for a model that goes on from where it stopped, not from another's
    weights: distillation, which keeps a parent's predictions, is off."""
    return replace(TrainConfig.from_spec(spec, seed=seed), distill=0.0)


def centralized_curve(
    spec: TaskSpec, genesis: bytes, shards: Sequence[Dataset], test: Dataset, budget: int, seed: int
) -> Curve:
    """One model trained on the pooled shards, a turn-sized chunk at a time (one epoch over each
    chunk, as a relay turn does), epoch after epoch of the pooled data, until `budget` samples.
    Without distillation (`_continuing`): one model going on with its own training has no parent
    whose view of other data to keep."""
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
        train(model, part.X, part.y, _continuing(spec, seed * 100_003 + step))
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
    """Local-only: each client trains on its own shard alone, an epoch at a time (without
    distillation, as `centralized_curve`); the curve is the clients' mean test accuracy against the
    samples all of them processed together."""
    models = [_model_from(spec, genesis) for _ in shards]
    xs, ys = [0], [evaluate(models[0], test.X, test.y)]
    epoch = 0
    while xs[-1] < budget:
        epoch += 1
        accs = []
        for i, (model, shard) in enumerate(zip(models, shards, strict=True)):
            train(model, shard.X, shard.y, _continuing(spec, seed * 100_003 + 1000 * epoch + i))
            accs.append(evaluate(model, test.X, test.y))
        xs.append(xs[-1] + sum(len(s) for s in shards))
        ys.append(round(statistics.fmean(accs)))
    return Curve("local", xs, ys)
