"""The two pieces of real work in a relay, as pure functions of bytes and data: train a child from
its parent's weights, and score a model on held-out data. The worker and the simulation both call
these; neither touches the chain or the store."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from derelay.trainer import __version__
from derelay.trainer.data import Dataset
from derelay.trainer.errors import WeightsError
from derelay.trainer.limits import DEFAULT_LIMITS
from derelay.trainer.models import apply_weights, build_model, load_weights, save_weights
from derelay.trainer.spec import TaskSpec, TrainConfig
from derelay.trainer.training import evaluate, train


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


RELAY_CARD_FORMAT = "derelay-relay-card/2"  # 2: the champion the child was measured against


@dataclass(frozen=True)
class ChampionMeasure:
    """The champion at the time of a turn, as its relayer saw it: the model every review measures
    the child against, and what consumers license."""

    cid: str
    score_bp: int  # on chain: its median score in the last decided review (or when crowned)
    local_accuracy_bp: int  # on the relayer's own training data, as the child's is measured


def measure_champion(
    spec: TaskSpec,
    cid: str,
    score_bp: int,
    weights: bytes,
    data: Dataset,
    max_weights_bytes: int = DEFAULT_LIMITS.weights_bytes,
) -> ChampionMeasure:
    """The champion's accuracy on the relayer's own data, next to its on-chain score."""
    local = score_weights(spec, weights, data, max_weights_bytes)
    return ChampionMeasure(cid=cid, score_bp=score_bp, local_accuracy_bp=local)


def relay_card(
    task_id: int,
    round_: int,
    parent_cid: str,
    result: ChildResult,
    cfg: TrainConfig,
    fetch_seconds: float,
    data_commitment: bytes,
    champion: ChampionMeasure | None = None,
) -> dict[str, object]:
    """The relay card: what a turn did, for anyone auditing the lineage. `metrics` holds what the
    relayer measured on its own data: the child's accuracy and, with `champion`, the champion's
    and the child's local gain over it (a relayer's own claim; the validators' paired scores
    decide)."""
    metrics: dict[str, object] = {
        "local_accuracy_bp": result.local_accuracy_bp,
        "final_loss": result.final_loss,
        "champion_local_accuracy_bp": None,
        "local_gain_bp": None,
    }
    if champion is not None:
        metrics["champion_local_accuracy_bp"] = champion.local_accuracy_bp
        metrics["local_gain_bp"] = result.local_accuracy_bp - champion.local_accuracy_bp
    return {
        "format": RELAY_CARD_FORMAT,
        "software": f"derelay {__version__}",
        "task": task_id,
        "round": round_,
        "parent": parent_cid,
        "champion": None
        if champion is None
        else {"cid": champion.cid, "score_bp": champion.score_bp},
        "samples": result.samples,
        "data_commitment": "0x" + data_commitment.hex(),
        "train": asdict(cfg) | {"device": result.device},  # the device it ran on
        "metrics": metrics,
        "timings": {"fetch_s": round(fetch_seconds, 4), "train_s": round(result.train_seconds, 4)},
        "created_at": int(time.time()),
    }
