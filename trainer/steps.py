"""The two pieces of real work in a relay, as pure functions of bytes and data: train a child from
its parent's weights, and score a model on held-out data. The worker and the simulation both call
these; neither touches the chain or the store."""

from __future__ import annotations

import time
from dataclasses import dataclass

from trainer import __version__
from trainer.data import Dataset
from trainer.errors import WeightsError
from trainer.limits import DEFAULT_LIMITS
from trainer.models import apply_weights, build_model, load_weights, save_weights
from trainer.spec import TaskSpec
from trainer.training import TrainConfig, evaluate, train


@dataclass(frozen=True)
class ChildResult:
    """A trained child and what its relay card reports."""

    weights: bytes
    samples: int
    train_seconds: float
    local_accuracy_bp: int  # on the relayer's own training data
    final_loss: float
    device: str


def train_child(
    spec: TaskSpec,
    parent: bytes,
    data: Dataset,
    cfg: TrainConfig,
    progress: bool = False,
    max_weights_bytes: int = DEFAULT_LIMITS.weights_bytes,
) -> ChildResult:
    """Load the parent's weights (checked against the spec), train on `data`, save the child."""
    model = build_model(spec)
    apply_weights(model, load_weights(parent, spec, max_weights_bytes))
    report = train(model, data.X, data.y, cfg, progress=progress)
    return ChildResult(
        weights=save_weights(model),
        samples=report.samples,
        train_seconds=report.seconds,
        local_accuracy_bp=evaluate(model, data.X, data.y),
        final_loss=report.final_loss,
        device=report.device,
    )


def score_weights(
    spec: TaskSpec,
    weights: bytes,
    holdout: Dataset,
    max_weights_bytes: int = DEFAULT_LIMITS.weights_bytes,
) -> int:
    """Accuracy in bp of `weights` on `holdout`; weights that fail validation score 0.

    A child that is not safetensors, does not fit the spec or holds NaN is garbage: scoring it 0
    gets it rejected, and its relayer slashed, instead of stalling the review.
    """
    try:
        tensors = load_weights(weights, spec, max_weights_bytes)
    except WeightsError:
        return 0
    model = build_model(spec)
    apply_weights(model, tensors)
    return evaluate(model, holdout.X, holdout.y)


def relay_card(
    task_id: int,
    round_: int,
    parent_cid: str,
    result: ChildResult,
    cfg: TrainConfig,
    fetch_seconds: float,
    data_commitment: bytes,
) -> dict[str, object]:
    """The relay card: what a turn did, for anyone auditing the lineage."""
    return {
        "format": "derelay-relay-card/1",
        "software": f"derelay {__version__}",
        "task": task_id,
        "round": round_,
        "parent": parent_cid,
        "samples": result.samples,
        "data_commitment": "0x" + data_commitment.hex(),
        "train": {
            "epochs": cfg.epochs,
            "batch_size": cfg.batch_size,
            "lr": cfg.lr,
            "optimizer": cfg.optimizer,
            "momentum": cfg.momentum,
            "weight_decay": cfg.weight_decay,
            "prox_mu": cfg.prox_mu,
            "logit_adjust": cfg.logit_adjust,
            "seed": cfg.seed,
            "device": result.device,
        },
        "metrics": {"local_accuracy_bp": result.local_accuracy_bp, "final_loss": result.final_loss},
        "timings": {"fetch_s": round(fetch_seconds, 4), "train_s": round(result.train_seconds, 4)},
        "created_at": int(time.time()),
    }
