"""Adaptive adversaries of the review (issue 12): pure functions of weights, data and public facts.

Each behaviour uses only what a real attacker has: the head's and the champion's weights (public,
on the store), the task's advance band (public, on chain) and its own data, part of which it may
hold out to estimate how the validators will score its child. The validators score child and
champion on the same data and the contract decides on their difference, so the attacker aims its
own paired estimate (child minus champion on its data), not the champion's on-chain score.
Nothing here touches the chain or the store, so the on-chain simulation (`derelay.lab.simulate`) and
the off-chain review sweep (`derelay.lab.review_sweep`) submit the very same children.

Behaviours (`make_adversary_child`):
- `walker`: mixes the head toward chance-level weights so that its child's paired estimate (child
  minus champion, on its own data) sits at the edge of the advance band; with several queue places
  (Sybils) it takes consecutive turns to walk the head down.
- `subtle`: mixes the head toward a label-flipped model; the mix is the largest share of poison
  whose paired estimate (child minus champion, both on its own held-out data) stays `margin` inside
  the advance band. Binary search on the mixing coefficient.
- `targeted`: the same aim, with a poison that sends one class (`source`) to another (`dest`) and
  leaves the others alone (`redirected_weights`, an edit of the classifier layer, no training), so
  its own data, where `source` is its most common class, sees all the damage there is: the
  overall score stays inside the band while that class's recall falls. (A poison trained on
  relabelled data also erases the classes its shard lacks, where its estimate cannot see: under
  label skew it was rejected at every turn.)
- `dipper`: on odd turns a worse child (the champion mixed toward chance, aimed inside the advance
  band, so it becomes the head); on even turns the champion's weights re-encoded under a new CID
  (`reencode`: same tensors, other bytes), to be paid for regaining the lost ground.

Estimates are the review's score (accuracy, or the `--score` of the review sweep: see
`derelay.lab.scores`), class-balanced (mean over the classes the estimate data holds), since the
validators' shards are IID while an attacker's own shard may be skewed.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch

from derelay.lab.scores import SCORE_OF
from derelay.trainer.data import Dataset
from derelay.trainer.models import (
    apply_weights,
    build_model,
    init_weights,
    load_weights,
    save_weights,
)
from derelay.trainer.spec import TaskSpec, TrainConfig
from derelay.trainer.training import train

ADVERSARIES = ("walker", "subtle", "targeted", "dipper")
SEARCH_STEPS = 12  # binary-search steps on the mixing coefficient (resolution 1/4096)
DEFAULT_MARGIN = 100  # bp the adaptive attackers keep inside the advance band for estimate noise
REDIRECT_DROP = 100.0  # logit the targeted attacker takes off its source class: never predicted

Tensors = dict[str, torch.Tensor]


@dataclass(frozen=True)
class AdversaryChild:
    """What an adversary submits, and how it chose it."""

    weights: bytes
    samples: int  # samples it trained on (0: nothing trained, no compute spent)
    kind: str  # walk, subtle, targeted, dip, recover
    mix: float  # share of the bad model in the child (0: the base model itself)
    estimate: int  # its estimate of child minus champion on its own data (bp)
    aim: int  # the least estimate it accepted (bp)


# ---------------------------------------------------------------------- weights


def _tensors(spec: TaskSpec, weights: bytes) -> Tensors:
    return load_weights(weights, spec)


def _mixed(base: Tensors, other: Tensors, t: float) -> Tensors:
    return {k: (1.0 - t) * base[k] + t * other[k] for k in base}


def _save(spec: TaskSpec, tensors: Tensors) -> bytes:
    model = build_model(spec)
    apply_weights(model, tensors)
    return save_weights(model)


def mix_weights(spec: TaskSpec, base: bytes, other: bytes, t: float) -> bytes:
    """`base`'s tensors moved a share `t` of the way to `other`'s."""
    return _save(spec, _mixed(_tensors(spec, base), _tensors(spec, other), t))


def reencode(weights: bytes, nonce: int) -> bytes:
    """The same tensors under other bytes (hence another CID): a `nonce` entry in the safetensors
    metadata and the tensors stored in reverse name order. `load_weights` accepts both: it checks
    names, shapes, dtypes and values, not the layout."""
    (size,) = struct.unpack("<Q", weights[:8])
    header = json.loads(weights[8 : 8 + size])
    blobs = weights[8 + size :]
    metadata = dict(header.pop("__metadata__", {}))
    metadata["nonce"] = str(nonce)
    out: dict[str, object] = {"__metadata__": metadata}
    parts, offset = [], 0
    for name in sorted(header, reverse=True):
        start, end = header[name]["data_offsets"]
        parts.append(blobs[start:end])
        out[name] = {**header[name], "data_offsets": [offset, offset + end - start]}
        offset += end - start
    text = json.dumps(out, separators=(",", ":")).encode("ascii")
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(parts)


def chance_weights(spec: TaskSpec, seed: int) -> bytes:
    """Freshly initialised weights: a chance-level model."""
    return save_weights(init_weights(spec, 1 + seed % (2**31)))


def relabelled(data: Dataset, mapping: dict[int, int] | None, num_classes: int) -> Dataset:
    """`data` with labels sent through `mapping` (class -> class); None flips every label
    (y -> num_classes - 1 - y)."""
    if mapping is None:
        return Dataset(data.X, (num_classes - 1 - data.y).astype(np.int64))
    y = data.y.copy()
    for source, dest in mapping.items():
        y[data.y == source] = dest
    return Dataset(data.X, y)


def poisoned_weights(
    spec: TaskSpec,
    parent: bytes,
    data: Dataset,
    cfg: TrainConfig,
    mapping: dict[int, int] | None,
    safeguards: bool = False,
) -> tuple[bytes, int]:
    """(weights, samples) of training from `parent` on relabelled data (`relabelled`). Without
    `safeguards` the spec's proximal term, logit adjustment and distillation are off; with them
    on, a skewed shard does not also erase the classes it lacks, so the damage stays where the
    attacker put it (and where its own estimate can see it)."""
    model = build_model(spec)
    apply_weights(model, _tensors(spec, parent))
    bad = relabelled(data, mapping, spec.num_classes)
    if not safeguards:
        cfg = cfg.without_safeguards()
    report = train(model, bad.X, bad.y, cfg)
    return save_weights(model), report.samples


def redirected_weights(spec: TaskSpec, weights: bytes, source: int, dest: int) -> bytes:
    """The model with class `source` read as `dest`, every other class as it was: in the final
    linear layer (`out`), dest's row and bias move halfway to source's, and source's bias drops by
    `REDIRECT_DROP`, so an input the model took for source now scores highest as dest, while an
    input of any third class keeps its answer. No training: the damage lands on source only."""
    tensors = {k: t.clone() for k, t in _tensors(spec, weights).items()}
    w, b = tensors["out.weight"], tensors["out.bias"]
    w[dest] = (w[dest] + w[source]) / 2
    b[dest] = (b[dest] + b[source]) / 2
    b[source] -= REDIRECT_DROP
    return _save(spec, tensors)


# ---------------------------------------------------------------------- estimates


def split_own_data(data: Dataset, fraction: float, seed: int) -> tuple[Dataset, Dataset]:
    """(train, estimate): the attacker holds `fraction` of its shard out, stratified by class so a
    skewed shard keeps each of its classes on both sides where it can (one sample stays in
    train)."""
    rng = np.random.default_rng(seed)
    held: list[int] = []
    for cls in np.unique(data.y):
        idx = rng.permutation(np.flatnonzero(data.y == cls))
        take = min(len(idx) - 1, int(round(len(idx) * fraction)))
        held.extend(idx[:take].tolist())
    mask = np.zeros(len(data), dtype=bool)
    mask[held] = True
    if mask.all() or not mask.any():
        return data, data
    return data.subset(np.flatnonzero(~mask)), data.subset(np.flatnonzero(mask))


def _predict(spec: TaskSpec, tensors: Tensors, X: np.ndarray) -> np.ndarray:
    return _logits(spec, tensors, X).argmax(dim=1).numpy()


@torch.no_grad()
def _logits(spec: TaskSpec, tensors: Tensors, X: np.ndarray) -> torch.Tensor:
    model = build_model(spec)
    apply_weights(model, tensors)
    model.eval()
    return model(torch.as_tensor(X, dtype=torch.float32))


def class_recall(spec: TaskSpec, weights: bytes, data: Dataset, cls: int) -> int | None:
    """Recall of class `cls` on `data` in bp (None when `data` holds none of it)."""
    mask = data.y == cls
    if not mask.any():
        return None
    predicted = _predict(spec, _tensors(spec, weights), data.X[mask])
    return int(10_000 * float((predicted == cls).mean()))


def target_pair(data: Dataset, num_classes: int) -> tuple[int, int]:
    """(source, dest) for a class-targeted attack on this shard: its most common class, sent to its
    second most common one (or the next class when it holds only one)."""
    counts = np.bincount(data.y, minlength=num_classes)
    order = np.argsort(-counts, kind="stable")
    source = int(order[0])
    dest = int(order[1]) if counts[order[1]] > 0 else (source + 1) % num_classes
    return source, dest


def aim_mix(
    spec: TaskSpec,
    base: bytes,
    bad: bytes,
    score: Callable[[Tensors], int],
    aim: int,
    steps: int = SEARCH_STEPS,
) -> tuple[bytes, float, int]:
    """The child (1 - t) * base + t * bad with the largest t whose `score(tensors)` stays >= `aim`,
    by binary search (the score falls roughly monotonically with t). When even a sliver of `bad`
    scores below `aim`, that sliver (t = 2**-steps): a child that differs from `base`, near it.
    Returns (weights, t, score)."""
    b, p = _tensors(spec, base), _tensors(spec, bad)
    top = score(p)
    if top >= aim:
        return _save(spec, p), 1.0, top
    lo, hi = 0.0, 1.0
    best_t, best_score = 2.0**-steps, None
    for _ in range(steps):
        mid = (lo + hi) / 2
        s = score(_mixed(b, p, mid))
        if s >= aim:
            lo, best_t, best_score = mid, mid, s
        else:
            hi = mid
    chosen = _mixed(b, p, best_t)
    return _save(spec, chosen), best_t, score(chosen) if best_score is None else best_score


# ---------------------------------------------------------------------- behaviours


def make_adversary_child(
    behaviour: str,
    spec: TaskSpec,
    head_weights: bytes,
    champion_weights: bytes,
    data: Dataset,
    estimate_data: Dataset,
    seed: int,
    round_: int,
    turn: int,
    *,
    advance_band: int,
    margin: int = DEFAULT_MARGIN,
    poison_epochs: int = 5,
    pair: tuple[int, int] | None = None,
    score: str = "accuracy",
) -> AdversaryChild:
    """The child an adversary of `behaviour` submits in `round_`, its `turn`-th turn (from 1).

    `data` is what it trains on, `estimate_data` what it estimates scores on (its own held-out
    part; the whole shard for the behaviours that train nothing). `seed` and `round_` fix every
    random draw. `advance_band` is the task's (on chain); `margin` is how far inside it the
    subtle, targeted and dipping children aim (the walker aims at the edge itself); `pair`
    (targeted) is (source, dest), by default `target_pair(data)`; `score` is the review's (one of
    `derelay.lab.scores.SCORES`), which it estimates.
    """
    draw = seed * 100_003 + round_  # the simulation's training seed of this round
    cfg = TrainConfig.from_spec(spec, seed=draw)
    est = estimate_data
    champion = _tensors(spec, champion_weights)
    labels = torch.as_tensor(est.y, dtype=torch.int64)

    def estimate(tensors: Tensors) -> int:
        return SCORE_OF[score](_logits(spec, tensors, est.X), labels, True)

    champion_est = estimate(champion)

    def paired(tensors: Tensors) -> int:
        return estimate(tensors) - champion_est

    if behaviour == "walker":
        # Right at the edge of the advance band, toward chance level: no margin, no poison needed.
        weights, t, s = aim_mix(
            spec, head_weights, chance_weights(spec, draw), paired, -advance_band
        )
        return AdversaryChild(weights, 0, "walk", t, s, -advance_band)
    if behaviour == "subtle":
        bad, samples = poisoned_weights(
            spec, head_weights, data, replace(cfg, epochs=poison_epochs), None
        )
        aim = -advance_band + margin
        weights, t, s = aim_mix(spec, head_weights, bad, paired, aim)
        return AdversaryChild(weights, samples, "subtle", t, s, aim)
    if behaviour == "targeted":
        source, dest = pair or target_pair(data, spec.num_classes)
        bad = redirected_weights(spec, head_weights, source, dest)
        aim = -advance_band + margin
        weights, t, s = aim_mix(spec, head_weights, bad, paired, aim)
        return AdversaryChild(weights, 0, "targeted", t, s, aim)
    if behaviour == "dipper":
        if turn % 2 == 0:  # recover: the champion itself, under a new CID
            return AdversaryChild(reencode(champion_weights, draw), 0, "recover", 0.0, 0, 0)
        aim = -advance_band + margin
        weights, t, s = aim_mix(spec, champion_weights, chance_weights(spec, draw), paired, aim)
        return AdversaryChild(weights, 0, "dip", t, s, aim)
    raise ValueError(f"unknown adversary {behaviour!r}; use one of {', '.join(ADVERSARIES)}")


__all__ = [
    "ADVERSARIES",
    "AdversaryChild",
    "aim_mix",
    "chance_weights",
    "class_recall",
    "make_adversary_child",
    "poisoned_weights",
    "redirected_weights",
    "reencode",
    "relabelled",
    "split_own_data",
    "target_pair",
]
