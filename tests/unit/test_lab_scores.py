import numpy as np
import torch

from derelay.lab.scores import SCORE_OF, accuracy, brier_skill, plain_brier_skill
from derelay.trainer.data import load_dataset, split_holdout
from derelay.trainer.models import init_weights
from derelay.trainer.spec import digits_mlp_spec
from derelay.trainer.training import evaluate


def _logits(rows: list[list[float]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64)


def test_accuracy_is_the_workers_score_and_balanced_is_the_mean_recall():
    # prepare: an untrained digits model on held-out digits, and a skewed toy
    spec = digits_mlp_spec()
    data = load_dataset(spec)
    _, hold_idx = split_holdout(len(data), 0.2, seed=0)
    hold = data.subset(hold_idx)
    model = init_weights(spec, 3).eval()
    with torch.no_grad():
        logits = model(torch.as_tensor(hold.X))
    toy = _logits([[1, 0], [1, 0], [1, 0], [0, 1]])

    # act, check
    assert accuracy(logits, torch.as_tensor(hold.y)) == evaluate(model, hold.X, hold.y)
    assert accuracy(toy, torch.tensor([0, 0, 1, 1])) == 7500  # 3 of 4
    assert accuracy(toy, torch.tensor([1, 0, 1, 1]), balanced=True) == 6666  # (1 + 1/3) / 2
    assert accuracy(toy, torch.tensor([0, 0, 0, 1]), balanced=True) == 10000


def test_brier_skill_is_zero_for_a_guess_and_full_for_certainty():
    uniform = _logits([[0, 0, 0]] * 3)
    separating = _logits([[1, 0, -9], [0, 1, -9], [1, 0, -9]])
    labels = torch.tensor([0, 1, 0])

    assert brier_skill(uniform, labels) == plain_brier_skill(uniform, labels) == 0
    assert brier_skill(separating, labels) >= 9999  # at its best temperature: sharpened
    assert brier_skill(separating, torch.tensor([2, 2, 2])) == 0  # worse than a guess: floored
    assert 0 < plain_brier_skill(separating, labels) < 9999  # temperature 1 only


def test_only_the_plain_brier_score_pays_for_confidence_alone():
    rng = np.random.default_rng(0)
    logits = torch.as_tensor(rng.normal(size=(60, 10)))
    labels = torch.as_tensor(np.where(rng.random(60) < 0.8, logits.argmax(1).numpy(), 0))

    for name, score in SCORE_OF.items():
        gains = [score(logits * s, labels, False) - score(logits, labels, False) for s in (2, 4)]
        if name == "brier-plain":
            assert max(gains) > 100, name
        else:
            assert all(abs(g) <= 10 for g in gains), (name, gains)
