"""The lab of one (alpha, seed): its data, and the scores and children that every scenario and
parameter set of the sweep share."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import torch

from derelay.lab.adversaries import (
    ADVERSARIES,
    make_adversary_child,
    mix_weights,
    split_own_data,
    target_pair,
)
from derelay.lab.metrics import BP
from derelay.lab.scores import SCORE_OF
from derelay.lab.simulate import RELAYER_COUNTS, SimConfig, deal_data, genesis_of, make_child
from derelay.trainer.data import Dataset
from derelay.trainer.errors import WeightsError
from derelay.trainer.models import apply_weights, build_model, load_weights
from derelay.trainer.spec import TaskSpec
from derelay.trainer.training import evaluate

# Where an honest relayer's turn starts (the sweep's --start), as the report says it. The two
# besides the worker's apply only after an accepted dip (the validators measured the head below the
# champion), and are off-chain only: what discarding in-band dips would cost honest relays.
STARTS = {
    "head": "the head, as the worker does",
    "blend": "the mean of the head's and the champion's weights while the validators measured the "
    "head below the champion, else the head (off-chain only)",
    "champion": "the champion while the validators measured the head below it, else the head "
    "(off-chain only)",
}


@dataclass(frozen=True)
class Scores:
    """What one set of weights scores: each validator's held-out shard (bp, as `score_weights`),
    the common test split (bp) and each class's recall on it (bp), and each class's recall on each
    validator's shard (bp; 0 for a class the shard lacks)."""

    holdouts: tuple[int, ...]
    test: int
    recall: tuple[int, ...]
    holdout_recalls: tuple[tuple[int, ...], ...]


@dataclass(frozen=True)
class Relayer:
    """A relayer of a simulation, as `derelay.lab.simulate.Simulation` equips it."""

    behaviour: str
    index: int  # its place in `SimConfig.behaviours()`, which is also its shard's
    data: Dataset  # what it trains on
    estimate: Dataset | None  # an adversary's own held-out part
    pair: tuple[int, int] | None  # a targeted poisoner's (source, dest)


def _digest(weights: bytes) -> bytes:
    return hashlib.sha256(weights).digest()


class Lab:
    """One (alpha, seed): its data, and the scores and children that every scenario and parameter
    set share (a relayer that takes the same turn from the same head and champion makes the same
    child, so it is made once)."""

    def __init__(
        self,
        spec: TaskSpec,
        alpha: float | None,
        seed: int,
        validators: int = 3,
        score: str = "accuracy",
        start: str = "head",
    ):
        if start not in STARTS:
            raise ValueError(f"start must be one of {', '.join(STARTS)}")
        self.spec, self.alpha, self.seed, self.validators = spec, alpha, seed, validators
        self.score = (
            score  # what the validators commit (`derelay.lab.scores`); the chain's: accuracy
        )
        self.start = start  # where honest turns start (`STARTS`); the chain's: head
        self.test_fraction = SimConfig.__dataclass_fields__["test_fraction"].default
        self.genesis, self.genesis_score = genesis_of(spec, seed)
        # The validators' shards and the test split do not depend on the relayers.
        probe = deal_data(spec, self._data_config(1), seed)
        self.holdouts, self.test = probe.holdouts, probe.test
        self._shards: dict[int, list[Dataset]] = {}
        self._scores: dict[bytes, Scores] = {}
        self._children: dict[tuple[Any, ...], tuple[bytes, int, float | None]] = {}

    def _data_config(self, participants: int) -> SimConfig:
        counts = {name: 0 for name in RELAYER_COUNTS.values()} | {"honest": participants}
        return SimConfig(
            **counts, validators=self.validators, lazy_validators=0, parrots=0, squatters=0,
            alpha=self.alpha, test_fraction=self.test_fraction,
        )  # fmt: skip

    def relayers(self, config: SimConfig) -> list[Relayer]:
        """Every relayer of `config` with its data, as the simulation deals it."""
        n = config.participants
        if n not in self._shards:
            self._shards[n] = deal_data(self.spec, self._data_config(n), self.seed).shards
        out = []
        for i, behaviour in enumerate(config.behaviours()):
            data, estimate, pair = self._shards[n][i], None, None
            if behaviour in ("subtle", "targeted"):
                data, estimate = split_own_data(data, config.estimate_fraction, self.seed + i)
            elif behaviour in ADVERSARIES:
                estimate = data
            if behaviour == "targeted":
                pair = target_pair(data, self.spec.num_classes)
            out.append(Relayer(behaviour, i, data, estimate, pair))
        return out

    def start_of(self, head: bytes, champion: bytes, head_gap: int) -> bytes:
        """The weights an honest relayer trains from under `self.start`, given the validators'
        head - champion (`head_gap`, bp)."""
        if self.start == "head" or head_gap >= 0:
            return head
        if self.start == "champion":
            return champion
        return mix_weights(self.spec, head, champion, 0.5)

    def scores(self, weights: bytes) -> Scores:
        key = _digest(weights)
        if key not in self._scores:
            self._scores[key] = self._score(weights)
        return self._scores[key]

    def _score(self, weights: bytes) -> Scores:
        try:
            tensors = load_weights(weights, self.spec)
        except WeightsError:  # unusable weights score 0 everywhere, as `score_weights`
            zeros = (0,) * self.spec.num_classes
            return Scores((0,) * len(self.holdouts), 0, zeros, (zeros,) * len(self.holdouts))
        model = build_model(self.spec)
        apply_weights(model, tensors)
        shard_logits = [self._logits(model, h) for h in self.holdouts]  # one forward pass each
        holdouts = tuple(
            self._commit(logits, h) for logits, h in zip(shard_logits, self.holdouts, strict=True)
        )
        recalls = tuple(
            self._recall(logits, h) for logits, h in zip(shard_logits, self.holdouts, strict=True)
        )
        test = evaluate(model, self.test.X, self.test.y)
        return Scores(
            holdouts, test, self._recall(self._logits(model, self.test), self.test), recalls
        )

    @staticmethod
    @torch.no_grad()
    def _logits(model: torch.nn.Module, data: Dataset) -> torch.Tensor:
        return model(torch.as_tensor(data.X, dtype=torch.float32))

    def _commit(self, logits: torch.Tensor, data: Dataset) -> int:
        """The lab's `score` of `logits` on `data`: what a validator holding `data` commits."""
        return SCORE_OF[self.score](logits, torch.as_tensor(data.y, dtype=torch.int64), False)

    def _recall(self, logits: torch.Tensor, data: Dataset) -> tuple[int, ...]:
        """Each class's recall of `logits` on `data` (bp; 0 for a class `data` lacks)."""
        predicted, y = logits.argmax(dim=1).numpy(), data.y
        return tuple(
            int(BP * float((predicted[y == c] == c).mean())) if (y == c).any() else 0
            for c in range(self.spec.num_classes)
        )

    def review_score(self, model: torch.nn.Module, data: Dataset) -> int:
        """What a validator holding `data` commits for `model`: the lab's `score`."""
        return self._commit(self._logits(model, data), data)

    def child(
        self,
        config: SimConfig,
        who: Relayer,
        round_: int,
        turn: int,
        parent: bytes,
        champion: bytes,
        advance_band: int,
    ) -> tuple[bytes, int, float | None]:
        """(weights, samples trained, share of the bad model mixed in) of `who`'s turn from
        `parent` (the head; an honest relayer's `start_of`), made as the simulation makes it."""
        key: tuple[Any, ...] = (
            who.behaviour, config.participants, who.index, round_, turn, _digest(parent),
        )  # fmt: skip
        if who.behaviour in ADVERSARIES:
            key += (_digest(champion), advance_band, config.margin, config.poison_epochs)
        elif who.behaviour == "poisoner":
            key += (config.poison, config.poison_epochs)
        if key not in self._children:
            if who.behaviour in ADVERSARIES:
                assert who.estimate is not None
                made = make_adversary_child(
                    who.behaviour, self.spec, parent, champion, who.data, who.estimate, self.seed,
                    round_, turn, advance_band=advance_band, margin=config.margin,
                    poison_epochs=config.poison_epochs, pair=who.pair, score=self.score,
                )  # fmt: skip
                self._children[key] = (made.weights, made.samples, made.mix)
            else:
                work = make_child(
                    self.spec, config, who.behaviour, parent, who.data, self.seed, round_, turn
                )
                self._children[key] = (
                    work.weights,
                    work.result.samples if work.result else 0,
                    None,
                )
        return self._children[key]
