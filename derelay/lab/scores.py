"""Review scores the lab can replay: accuracy, which the worker's validators commit
(`derelay.trainer.steps.score_weights`), and two Brier scores, the alternatives the review sweep's
`--score` option tries (issue 12). Pure functions of a model's logits and the labels.

- `accuracy`: floor(10000 * correct / n), as `derelay.trainer.training.evaluate`.
- `brier`: the Brier skill over a uniform guess, floor(10000 * (1 - B / (1 - 1/C))) and at least 0,
  where B is the mean of sum_k (p_k - [k = y])^2 at the model's best temperature of
  `TEMPERATURES`: 0 for a model no better than guessing, 10000 for one certain and right.
- `brier-plain`: the same at temperature 1. It pays for confidence alone: the champion's last
  layer multiplied by 2-4 (no new prediction) measured 950-3,950 bp better in the digits relay
  (`tests/integration/test_simulate.py::test_a_champion_made_only_more_confident_is_not_crowned`).

`balanced=True` weighs every class of the labels alike (each class's mean, then their mean): how
an adversary estimates, on its own skewed shard, what IID validators will measure.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

SCORES = ("accuracy", "brier", "brier-plain")
# The temperatures `brier` tries: 1/64 to 64, four steps an octave.
TEMPERATURES = tuple(2.0 ** (k / 4) for k in range(-24, 25))

Score = Callable[[torch.Tensor, torch.Tensor, bool], int]


def _class_weights(labels: torch.Tensor, balanced: bool) -> torch.Tensor:
    """Sample weights summing to 1: equal, or equal per class present."""
    if not balanced:
        return torch.full((len(labels),), 1.0 / len(labels), dtype=torch.float64)
    counts = torch.bincount(labels).double()
    return 1.0 / (counts[labels] * int((counts > 0).sum()))


def accuracy(logits: torch.Tensor, labels: torch.Tensor, balanced: bool = False) -> int:
    """Accuracy in bp (balanced: the mean recall over the classes present)."""
    correct = logits.argmax(dim=1) == labels
    if not balanced:
        return int(correct.sum()) * 10_000 // len(labels)
    recalls = [float(correct[labels == c].double().mean()) for c in labels.unique()]
    return int(10_000 * sum(recalls) / len(recalls))


def brier_skill(
    logits: torch.Tensor,
    labels: torch.Tensor,
    balanced: bool = False,
    temperatures: tuple[float, ...] = TEMPERATURES,
) -> int:
    """The Brier skill over a uniform guess, in bp, at the best of `temperatures`."""
    logits = logits.double()
    onehot = torch.nn.functional.one_hot(labels, logits.shape[1]).double()
    weights = _class_weights(labels, balanced)
    brier = min(
        float((((torch.softmax(logits / t, dim=1) - onehot) ** 2).sum(dim=1) * weights).sum())
        for t in temperatures
    )
    return max(0, int(10_000 * (1 - brier / (1 - 1 / logits.shape[1]))))


def plain_brier_skill(logits: torch.Tensor, labels: torch.Tensor, balanced: bool = False) -> int:
    """`brier_skill` at temperature 1 only."""
    return brier_skill(logits, labels, balanced, temperatures=(1.0,))


SCORE_OF: dict[str, Score] = {
    "accuracy": accuracy,
    "brier": brier_skill,
    "brier-plain": plain_brier_skill,
}
