"""The review-defaults experiment (review v2, issue 12): which `slashBand`, `advanceBand` and
`minGain` keep honest turns unslashed and advancing under label skew while adaptive adversaries
(`derelay.lab.adversaries`) gain almost nothing.

Two layers:
- `mirror_relay` replays a relay off-chain: the data, turn order and training seeds of
  `derelay.lab.simulate`, the adversaries' very children, every validator scoring the child and the
  champion on its own held-out shard, and the contract's verdict and reward arithmetic
  (`derelay.lab.metrics.review`, `relay_reward`): void/rejected/held/accepted, head and champion apart,
  slashes and forced leaves. Children and scores are cached, so parameter sets that lead a relay
  through the same turns train each turn once; the whole grid costs a few parameter sets' time.
- `confirm_on_chain` runs the recommended parameters through the real contract
  (`derelay.lab.simulate.Simulation`) and compares every turn with the mirror's; where they agree, the
  mirror's figures are the chain's.

`python -m derelay.lab.review_sweep --out out/review` runs the experiment and writes review.md.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import math
import shlex
import statistics
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from derelay.lab.adversaries import ADVERSARIES, make_adversary_child, split_own_data, target_pair
from derelay.lab.metrics import BP, first_reaching, lower_median, paid_in_band, relay_reward, review
from derelay.lab.scores import SCORE_OF, SCORES
from derelay.lab.simulate import (
    RELAYER_COUNTS,
    SimConfig,
    Simulation,
    centralized_curve,
    deal_data,
    genesis_of,
    make_child,
)
from derelay.trainer.contract import TaskParams
from derelay.trainer.data import Dataset
from derelay.trainer.errors import WeightsError
from derelay.trainer.models import apply_weights, build_model, load_weights
from derelay.trainer.spec import TaskSpec, digits_mlp_spec
from derelay.trainer.training import evaluate

DEFAULTS = {f: TaskParams.__dataclass_fields__[f].default for f in TaskParams.field_names()[3:]}
SWEPT = ("slash_band", "advance_band", "min_gain")
# What relayer K-1 does in each scenario ("honest": K honest relayers).
SCENARIOS = ("honest", "subtle", "targeted", "walker", "dipper", "poisoner")
WALKER_PLACES = 3  # the walker's consecutive queue places (Sybils): three turns in a row per pass
LOTTERY_NOISE = 0.05  # a lottery ticket's noise, in standard deviations of each tensor
LOTTERY_TICKETS = 20  # tickets drawn on the final champion of each all-honest relay


# ---------------------------------------------------------------------- scores and children


@dataclass(frozen=True)
class Scores:
    """What one set of weights scores: each validator's held-out shard (bp, as `score_weights`),
    the common test split (bp) and each class's recall on it (bp)."""

    holdouts: tuple[int, ...]
    test: int
    recall: tuple[int, ...]


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
    ):
        self.spec, self.alpha, self.seed, self.validators = spec, alpha, seed, validators
        self.score = (
            score  # what the validators commit (`derelay.lab.scores`); the chain's: accuracy
        )
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
            **counts, validators=self.validators, lazy_validators=0, squatters=0, alpha=self.alpha,
            test_fraction=self.test_fraction,
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

    def scores(self, weights: bytes) -> Scores:
        key = _digest(weights)
        if key not in self._scores:
            self._scores[key] = self._score(weights)
        return self._scores[key]

    def _score(self, weights: bytes) -> Scores:
        classes = range(self.spec.num_classes)
        try:
            tensors = load_weights(weights, self.spec)
        except WeightsError:  # unusable weights score 0 everywhere, as `score_weights`
            return Scores((0,) * len(self.holdouts), 0, (0,) * len(classes))
        model = build_model(self.spec)
        apply_weights(model, tensors)
        holdouts = tuple(self.review_score(model, h) for h in self.holdouts)
        with torch.no_grad():
            predicted = model(torch.as_tensor(self.test.X)).argmax(dim=1).numpy()
        y = self.test.y
        recall = tuple(
            int(BP * float((predicted[y == c] == c).mean())) if (y == c).any() else 0
            for c in classes
        )
        return Scores(holdouts, evaluate(model, self.test.X, y), recall)

    @torch.no_grad()
    def review_score(self, model: torch.nn.Module, data: Dataset) -> int:
        """What a validator holding `data` commits for `model`: the lab's `score`."""
        logits = model(torch.as_tensor(data.X, dtype=torch.float32))
        return SCORE_OF[self.score](logits, torch.as_tensor(data.y, dtype=torch.int64), False)

    def child(
        self,
        config: SimConfig,
        who: Relayer,
        round_: int,
        turn: int,
        head: bytes,
        champion: bytes,
        advance_band: int,
    ) -> tuple[bytes, int, float | None]:
        """(weights, samples trained, share of the bad model mixed in) of `who`'s turn, made as
        the simulation makes it."""
        key: tuple[Any, ...] = (
            who.behaviour, config.participants, who.index, round_, turn, _digest(head),
        )  # fmt: skip
        if who.behaviour in ADVERSARIES:
            key += (_digest(champion), advance_band, config.margin, config.poison_epochs)
        elif who.behaviour == "poisoner":
            key += (config.poison, config.poison_epochs)
        if key not in self._children:
            if who.behaviour in ADVERSARIES:
                assert who.estimate is not None
                made = make_adversary_child(
                    who.behaviour, self.spec, head, champion, who.data, who.estimate, self.seed,
                    round_, turn, advance_band=advance_band, margin=config.margin,
                    poison_epochs=config.poison_epochs, pair=who.pair, score=self.score,
                )  # fmt: skip
                self._children[key] = (made.weights, made.samples, made.mix)
            else:
                work = make_child(
                    self.spec, config, who.behaviour, head, who.data, self.seed, round_, turn
                )
                self._children[key] = (
                    work.weights,
                    work.result.samples if work.result else 0,
                    None,
                )
        return self._children[key]


# ---------------------------------------------------------------------- the mirrored relay


@dataclass(frozen=True)
class Turn:
    """One turn of a mirrored relay; accuracies are on the common test split, after the turn."""

    round: int
    relayer: int  # index in `SimConfig.behaviours()`
    behaviour: str
    verdict: str  # accepted, held, rejected or skipped (no void: every validator reveals)
    child_score: int  # lower median of the validators' child scores (bp)
    champion_score: int
    delta: int  # lower median of the paired differences (bp): what decides
    crowned: bool  # accepted with delta >= min_gain: the child became the champion
    reward: int  # wei
    slashed: int  # wei
    samples: int
    mix: float | None  # an adversary's share of the bad model (None: not one)
    head_accuracy: int
    champion_accuracy: int
    head_gap: int  # lower median over validators of head - champion, after the turn (bp)
    champion_recall: tuple[int, ...]  # per class, on the test split (bp)


@dataclass(frozen=True)
class Relay:
    """A mirrored relay: its configuration, parameters and turns."""

    config: SimConfig
    params: dict[str, int]
    genesis: Scores
    turns: list[Turn]
    champion: bytes  # the champion's weights at the end


def mirror_relay(lab: Lab, config: SimConfig, idle: bool = False) -> Relay:
    """The relay `derelay.lab.simulate` runs for `config` (one seed, the lab's), off-chain: the same
    relayers, data, queue order and children; every validator scores the child and the champion on
    its own shard, `derelay.lab.metrics.review` decides and `relay_reward` pays as the contract does; a
    rejected relayer is slashed (a staller too) and leaves once under minStake. Honest validators
    only, no churn and no consumer payments (what the mirror cannot replay).

    `idle`: every turn but the honest relayers' passes and changes nothing ("skipped", no slash):
    the relay as it would have gone had the others done nothing, the same honest turns in the same
    rounds (the all-honest reference that `derelay.lab.simulate` also draws)."""
    if (config.alpha, config.seeds) != (lab.alpha, (lab.seed,)):
        raise ValueError("the lab holds another alpha's or seed's data")
    if config.lazy_validators or config.squatters or config.validators != lab.validators:
        raise ValueError("the mirror replays the lab's honest validators only")
    if config.test_fraction != lab.test_fraction:
        raise ValueError("the lab holds another split of the held-out data")
    if config.churn_after is not None or config.consumer_payment != 0:
        raise ValueError("the mirror replays no churn and no consumer payments")
    p = {**DEFAULTS, **config.overrides()}
    relayers = lab.relayers(config)
    stakes = [config.relayer_stake or 2 * p["min_stake"]] * len(relayers)
    turns_of = [0] * len(relayers)
    queue = deque(r.index for r in relayers if r.behaviour == "honest")
    late = [r.index for r in relayers if r.behaviour != "honest"]
    if config.warmup == 0:
        queue.extend(late)
        late = []
    pool = config.pool
    head = champion = lab.genesis
    genesis = lab.scores(lab.genesis)
    head_gap = 0
    out: list[Turn] = []
    for round_ in range(1, config.rounds + 1):
        if not queue:
            break
        who = relayers[queue.popleft()]
        turns_of[who.index] += 1
        verdict, samples, mix, reward, slashed = "skipped", 0, None, 0, 0
        child_score = champion_score = delta = 0
        crowned = False
        acts = not idle or who.behaviour == "honest"
        if acts and who.behaviour == "staller":
            slashed = stakes[who.index] * p["slash_timeout_bp"] // BP
            pool += slashed - slashed * p["keeper_bounty_bp"] // BP
        elif acts:
            child, samples, mix = lab.child(
                config, who, round_, turns_of[who.index], head, champion, p["advance_band"]
            )
            c, h, parent = lab.scores(child), lab.scores(champion), lab.scores(head)
            ballots = list(zip(c.holdouts, h.holdouts, parent.holdouts, strict=True))
            outcome = review(
                ballots, p["quorum"], p["slash_band"], p["advance_band"], p["min_gain"]
            )
            verdict, delta, crowned = outcome.verdict, outcome.delta, outcome.crowned
            child_score, champion_score = outcome.child_score, outcome.champion_score
            if verdict == "accepted":
                head, head_gap = child, min(delta, 0)
                if crowned:
                    champion = child
                    reward = relay_reward(
                        delta,
                        outcome.progress,
                        p["min_gain"],
                        p["base_reward"],
                        p["reward_per_point"],
                        pool,
                    )
                    pool -= reward
            elif verdict == "rejected":
                slashed = stakes[who.index] * p["slash_reject_bp"] // BP
                pool += slashed
            for ballot in ballots:
                if paid_in_band(ballot, outcome, p["band_bp"]) and pool >= p["validator_fee"]:
                    pool -= p["validator_fee"]
            pool -= min(pool, p["validator_fee"] * p["keeper_bounty_bp"] // BP)
        stakes[who.index] -= slashed
        if stakes[who.index] >= p["min_stake"]:
            queue.append(who.index)
        if round_ == config.warmup:
            queue.extend(late)
        hs, cs = lab.scores(head), lab.scores(champion)
        out.append(
            Turn(
                round_, who.index, who.behaviour, verdict, child_score, champion_score, delta,
                crowned, reward, slashed, samples, mix, hs.test, cs.test, head_gap, cs.recall,
            )
        )  # fmt: skip
    return Relay(config, p, genesis, out, champion)


def scenario_config(
    k: int,
    alpha: float | None,
    seed: int,
    scenario: str,
    rounds_per_k: int,
    warmup_per_k: int,
    params: dict[str, int] | None = None,
) -> SimConfig:
    """The sweep's relay of `scenario` for one cell: K honest relayers ("honest"), or K-1 and one
    adversary of that behaviour joining after warm-up (the walker with WALKER_PLACES consecutive
    places, Sybils with a shard each); three honest validators."""
    if scenario not in SCENARIOS:
        raise ValueError(f"scenario must be one of {SCENARIOS}")
    counts = {name: 0 for name in RELAYER_COUNTS.values()}
    counts["honest"] = k if scenario == "honest" else k - 1
    if scenario != "honest":
        counts[RELAYER_COUNTS[scenario]] = WALKER_PLACES if scenario == "walker" else 1
    return SimConfig(
        **counts, validators=3, lazy_validators=0, squatters=0, rounds=rounds_per_k * k,
        warmup=warmup_per_k * k, alpha=alpha, seeds=(seed,), churn_after=None,
        consumer_payment=0, baselines=False, params=tuple(sorted((params or {}).items())),
    )  # fmt: skip


# ---------------------------------------------------------------------- one cell


@dataclass(frozen=True)
class CellResult:
    """One (K, alpha, seed) under one parameter set: every scenario's figures. "reference": the
    same relay with the adversary's turns doing nothing (`mirror_relay(idle=True)`)."""

    k: int
    alpha: float
    seed: int
    honest: dict[str, list[int]]  # per scenario: honest [turns, not slashed, advanced]
    honest_deltas: list[int]  # paired deltas of the all-honest relay's turns after warm-up (bp)
    honest_beat_deltas: list[int]  # deltas of accepted honest turns over the champion (bp)
    subtle_loss: float  # mean head test accuracy lost per subtle turn (points)
    champion_gap: float  # reference minus subtle champion, last two passes (points)
    target_class: int
    targeted_recall: float  # champion's recall of the target class, last two passes (points)
    reference_recall: float  # the same in the reference relay
    walker_gap: int  # least head - champion over the walker's relay, as the validators measure
    walker_gap_test: float  # the same on the test split (points)
    target: float  # 95% of centralized accuracy (points)
    passes_central: float | None
    passes_honest: float | None  # K honest relayers: rounds / K until the head reaches `target`
    passes_subtle: float | None  # K-1 and a subtle poisoner, all from round 1
    adversaries: dict[str, dict[str, float]] = field(default_factory=dict)  # per scenario
    lottery: list[int] = field(default_factory=list)  # `lottery_deltas` of the final champion
    adversary_beat_deltas: list[int] = field(default_factory=list)  # every adversary's


def _beat(turn: Turn) -> bool:
    """An accepted turn over the champion: one that minGain 1 would crown."""
    return turn.verdict == "accepted" and turn.delta > 0


def _tail(turns: Sequence[Turn], k: int, passes: int = 2) -> list[Turn]:
    return list(turns[-passes * k :])


def _passes(relay: Relay, k: int, target: float) -> float | None:
    """Passes (rounds / K) until the head first reaches `target` (points)."""
    xs = [0] + [t.round for t in relay.turns]
    ys = [relay.genesis.test] + [t.head_accuracy for t in relay.turns]
    reached = first_reaching(xs, ys, 100 * target)
    return None if reached is None else reached / k


def _champion_tail(relay: Relay, k: int) -> float:
    return statistics.fmean(t.champion_accuracy for t in _tail(relay.turns, k)) / 100


def _adversary_row(relay: Relay, reference: Relay, k: int) -> dict[str, float]:
    """What the adversaries of a relay tried and got, and what the relay lost against `reference`
    (champion over the last two passes, points)."""
    mine = [t for t in relay.turns if t.behaviour != "honest"]
    before = [relay.genesis.test] + [t.head_accuracy for t in relay.turns]
    losses = [max(0, before[t.round - 1] - t.head_accuracy) / 100 for t in mine]
    return {
        "turns": len(mine),
        "accepted": sum(t.verdict == "accepted" for t in mine),
        "held": sum(t.verdict == "held" for t in mine),
        "rejected": sum(t.verdict == "rejected" for t in mine),
        "crowned": sum(t.crowned for t in mine),
        "reward_wei": sum(t.reward for t in mine),
        "slashed_wei": sum(t.slashed for t in mine),
        "delta_sum": sum(t.delta for t in mine),
        "mix_sum": sum(t.mix or 0.0 for t in mine),
        "loss_sum": sum(losses),
        "champion_gap": _champion_tail(reference, k) - _champion_tail(relay, k),
    }


def run_cell(
    lab: Lab,
    k: int,
    params: dict[str, int],
    rounds_per_k: int,
    warmup_per_k: int,
    target: float,
    scenarios: Sequence[str] = SCENARIOS,
) -> tuple[CellResult, dict[str, Relay]]:
    """Every scenario of one cell under one parameter set, off-chain; `target` in points. The
    scenarios must include "honest" and "subtle". Besides them: each adversary's reference (its
    relay with the adversary idle), and one subtle poisoner in the queue from round 1 (for the
    passes, whose floor the issue puts at 1.25x: its turns make no progress)."""
    configs = {
        s: scenario_config(k, lab.alpha, lab.seed, s, rounds_per_k, warmup_per_k, params)
        for s in scenarios
    }
    relays = {s: mirror_relay(lab, c) for s, c in configs.items()}
    idle = {
        s: mirror_relay(lab, c, idle=True) for s, c in configs.items() if s in ("subtle", "walker")
    }
    references = {s: idle["walker" if s == "walker" else "subtle"] for s in relays if s != "honest"}
    from_start = scenario_config(k, lab.alpha, lab.seed, "subtle", rounds_per_k, 0, params)
    honest = relays["honest"]
    rows = {s: _adversary_row(r, references[s], k) for s, r in relays.items() if s != "honest"}
    # The targeted poisoner's class (relayer K-1's, the same shard in every K-relayer scenario).
    targeted = lab.relayers(scenario_config(k, lab.alpha, lab.seed, "targeted", 1, 0))[-1]
    assert targeted.pair is not None
    source = targeted.pair[0]

    def counts(relay: Relay) -> list[int]:
        mine = [t for t in relay.turns if t.behaviour == "honest"]
        return [
            len(mine),
            sum(t.verdict != "rejected" for t in mine),
            sum(t.verdict == "accepted" for t in mine),
        ]

    def recall(relay: Relay | None) -> float:
        if relay is None:
            return math.nan
        return statistics.fmean(t.champion_recall[source] for t in _tail(relay.turns, k)) / 100

    walker = relays.get("walker")
    result = CellResult(
        k=k,
        alpha=lab.alpha or 0.0,
        seed=lab.seed,
        honest={s: counts(r) for s, r in relays.items()},
        honest_deltas=[t.delta for t in honest.turns if t.round > warmup_per_k * k],
        honest_beat_deltas=[t.delta for t in honest.turns if _beat(t)],
        subtle_loss=rows["subtle"]["loss_sum"] / max(1, rows["subtle"]["turns"]),
        champion_gap=rows["subtle"]["champion_gap"],
        target_class=source,
        targeted_recall=recall(relays.get("targeted")),
        reference_recall=recall(references["subtle"]),
        walker_gap=min(t.head_gap for t in walker.turns) if walker else 0,
        walker_gap_test=min(t.head_accuracy - t.champion_accuracy for t in walker.turns) / 100
        if walker
        else math.nan,
        target=target,
        passes_central=None,
        passes_honest=_passes(honest, k, target),
        passes_subtle=_passes(mirror_relay(lab, from_start), k, target),
        adversaries=rows,
        lottery=lottery_deltas(lab, honest.champion, LOTTERY_TICKETS),
        adversary_beat_deltas=[
            t.delta
            for r in relays.values()
            for t in r.turns
            if t.behaviour != "honest" and _beat(t)
        ],
    )
    return result, relays


def central_target(
    lab: Lab, k: int, share: float = 0.95, passes: int = 20
) -> tuple[float, float | None]:
    """(share x centralized accuracy in points, passes centralized takes to reach it): one model on
    the K relayers' pooled shards, plain SGD and plain cross-entropy (the reference experiment's)."""
    plain = replace(lab.spec, train=replace(lab.spec.train, prox_mu=0.0, logit_adjust=0.0))
    shards = [r.data for r in lab.relayers(scenario_config(k, lab.alpha, lab.seed, "honest", 1, 0))]
    held = sum(len(s) for s in shards)
    curve = centralized_curve(plain, lab.genesis, shards, lab.test, passes * held, lab.seed)
    target = share * statistics.fmean(curve.accuracy[-5:])
    reached = first_reaching(curve.samples, curve.accuracy, target)
    return target / 100, None if reached is None else reached / held


# ---------------------------------------------------------------------- aggregates and targets


@dataclass(frozen=True)
class Aggregate:
    """One (K, alpha) under one parameter set, over its seeds."""

    k: int
    alpha: float
    advance_band: int
    honest_not_slashed: float  # share of the all-honest relay's turns
    honest_advanced: float
    subtle_loss: float  # points per subtle turn, over every seed's subtle turns
    champion_gap: float  # reference minus subtle champion, last two passes (points, mean)
    recall_ratio: float  # targeted over reference target-class recall (ratio of seed means)
    walker_gap: int  # least over seeds (bp, validators' measure)
    walker_gap_test: float  # least over seeds (points)
    passes_central: float | None  # mean over seeds; None unless every seed reached the target
    passes_honest: float | None  # the all-honest relay's head
    passes_subtle: float | None  # the head with one subtle poisoner

    @property
    def passes_ratio(self) -> float | None:
        if self.passes_honest is None or self.passes_subtle is None:
            return None
        return self.passes_subtle / self.passes_honest


def _mean_or_none(values: Sequence[float | None]) -> float | None:
    if not values or any(v is None for v in values):
        return None
    return statistics.fmean(v for v in values if v is not None)


def _group(cells: Sequence[CellResult]) -> list[tuple[int, float, list[CellResult]]]:
    keys = sorted({(c.k, c.alpha) for c in cells})
    return [(k, a, [c for c in cells if (c.k, c.alpha) == (k, a)]) for k, a in keys]


def aggregate(cells: Sequence[CellResult], advance_band: int) -> list[Aggregate]:
    """Per (K, alpha): the figures the targets judge."""
    out = []
    for k, alpha, group in _group(cells):
        turns, not_slashed, advanced = (sum(c.honest["honest"][i] for c in group) for i in range(3))
        subtle_turns = sum(c.adversaries["subtle"]["turns"] for c in group)
        reference_recall = statistics.fmean(c.reference_recall for c in group)
        out.append(
            Aggregate(
                k=k,
                alpha=alpha,
                advance_band=advance_band,
                honest_not_slashed=not_slashed / turns,
                honest_advanced=advanced / turns,
                subtle_loss=sum(c.adversaries["subtle"]["loss_sum"] for c in group)
                / max(1, subtle_turns),
                champion_gap=statistics.fmean(c.champion_gap for c in group),
                recall_ratio=statistics.fmean(c.targeted_recall for c in group) / reference_recall
                if reference_recall
                else math.nan,
                walker_gap=min(c.walker_gap for c in group),
                walker_gap_test=min(c.walker_gap_test for c in group),
                passes_central=_mean_or_none([c.passes_central for c in group]),
                passes_honest=_mean_or_none([c.passes_honest for c in group]),
                passes_subtle=_mean_or_none([c.passes_subtle for c in group]),
            )
        )
    return out


@dataclass(frozen=True)
class Target:
    """One of the issue's targets: `value` of an aggregate, its bound, and a margin scale."""

    name: str
    value: Callable[[Aggregate], float | None]
    bound: Callable[[Aggregate], float | None]  # None: reported, no target in this cell
    higher_is_better: bool
    scale: float  # what a margin of 1 means, for comparing margins across targets

    def margin(self, a: Aggregate) -> float | None:
        """(value - bound) / scale, signed so that >= 0 meets the target; None when not judged."""
        value, bound = self.value(a), self.bound(a)
        if value is None or bound is None or math.isnan(value):
            return None
        return (value - bound if self.higher_is_better else bound - value) / self.scale


def _skewed(a: Aggregate) -> bool:
    return a.alpha < 0.5


TARGETS = (
    Target("honest not slashed", lambda a: a.honest_not_slashed,
           lambda a: 0.95 if _skewed(a) else 0.99, True, 0.01),
    Target("honest advanced", lambda a: a.honest_advanced,
           lambda a: None if _skewed(a) else 0.97, True, 0.03),
    Target("subtle: head loss per turn (points)", lambda a: a.subtle_loss,
           lambda a: 1.5, False, 1.5),
    Target("subtle: champion gap, last 2 passes (points)", lambda a: a.champion_gap,
           lambda a: 1.0, False, 1.0),
    Target("targeted: recall kept", lambda a: a.recall_ratio, lambda a: 0.85, True, 0.15),
    Target("walker: least head - champion (bp)", lambda a: a.walker_gap,
           lambda a: -a.advance_band, True, 100),
    Target("passes to 95% central, subtle / honest", lambda a: a.passes_ratio,
           lambda a: 1.3 if a.k == 5 else None, False, 0.05),
)  # fmt: skip


def judge(aggregates: Sequence[Aggregate]) -> tuple[int, int, float, float]:
    """(targets met, targets judged, total shortfall, least margin) over every cell and target;
    the shortfall adds up the margins of the targets missed (in each target's scale)."""
    margins = [m for a in aggregates for t in TARGETS if (m := t.margin(a)) is not None]
    shortfall = sum(-m for m in margins if m < 0)
    return sum(m >= 0 for m in margins), len(margins), shortfall, min(margins, default=math.inf)


# ---------------------------------------------------------------------- the sweep


def param_name(params: dict[str, int]) -> str:
    return ",".join(f"{k}={params[k]}" for k in SWEPT if k in params)


def sweep(
    spec: TaskSpec,
    ks: Sequence[int],
    alphas: Sequence[float | None],
    seeds: Sequence[int],
    grid: Sequence[dict[str, int]],
    rounds_per_k: int,
    warmup_per_k: int,
    echo: Callable[[str], None] = print,
    score: str = "accuracy",
) -> dict[str, list[CellResult]]:
    """Every parameter set of `grid` on every cell, off-chain, the validators committing `score`;
    (alpha, seed) outermost, so one lab's caches serve the whole grid and both K, and are dropped
    before the next."""
    results: dict[str, list[CellResult]] = {param_name(p): [] for p in grid}
    for alpha, seed in itertools.product(alphas, seeds):
        lab = Lab(spec, alpha, seed, score=score)
        for k in ks:
            started = time.perf_counter()
            target, central = central_target(lab, k)
            for params in grid:
                cell, _ = run_cell(lab, k, params, rounds_per_k, warmup_per_k, target)
                results[param_name(params)].append(replace(cell, passes_central=central))
            echo(f"K={k} alpha={alpha} seed={seed}: {time.perf_counter() - started:.0f} s")
    return results


def make_grid(
    slash_bands: Iterable[int], advance_bands: Iterable[int], min_gains: Iterable[int]
) -> list[dict[str, int]]:
    """Every (slash band, advance band, minGain) with advance <= slash. minGain decides no verdict,
    but it moves the champion, which the adversaries aim against, so each value runs its relays."""
    return [
        {"slash_band": s, "advance_band": a, "min_gain": g}
        for s, a, g in itertools.product(slash_bands, advance_bands, min_gains)
        if a <= s
    ]


# ---------------------------------------------------------------------- on chain


def chain_relay(lab: Lab, config: SimConfig, out_dir: Path) -> Relay:
    """`config` through the real contract (`derelay.lab.simulate.Simulation`, one seed), as a Relay:
    verdicts, scores, rewards and slashes from the chain's events."""
    (seed,) = config.seeds
    with tempfile.TemporaryDirectory(prefix="derelay-sweep-") as store:
        result = Simulation(config, seed, out_dir, Path(store), echo=lambda line: None).run()
    index = {name: i for i, name in enumerate(_names(config))}
    turns, head_gap = [], 0
    for row, champion in zip(result.rows, result.champions, strict=True):
        if row.verdict == "accepted":
            head_gap = min(row.delta, 0)
        turns.append(
            Turn(
                row.round, index[row.relayer], row.behaviour, row.verdict, row.child_score,
                row.champion_score, row.delta, row.crowned, row.reward, row.slashed, row.samples,
                row.mix,
                row.head_accuracy, row.champion_accuracy, head_gap, lab.scores(champion).recall,
            )
        )  # fmt: skip
    champion = result.champions[-1] if result.champions else lab.genesis
    return Relay(
        config, {**DEFAULTS, **config.overrides()}, lab.scores(lab.genesis), turns, champion
    )


def _names(config: SimConfig) -> list[str]:
    """The simulation's relayer names, in `behaviours()` order (honest-1, subtle-1, ...)."""
    seen: dict[str, int] = {}
    out = []
    for b in config.behaviours():
        seen[b] = seen.get(b, 0) + 1
        out.append(f"{b}-{seen[b]}")
    return out


COMPARED = ("round", "relayer", "behaviour", "verdict", "child_score", "champion_score", "delta",
            "reward", "slashed", "head_accuracy", "champion_accuracy")  # fmt: skip


def mismatches(mirror: Relay, chain: Relay) -> list[str]:
    """Where the mirror and the chain disagree, turn by turn (empty: the mirror is exact)."""
    out = [f"{len(mirror.turns)} turns mirrored, {len(chain.turns)} on chain"] * (
        len(mirror.turns) != len(chain.turns)
    )
    for m, c in zip(mirror.turns, chain.turns, strict=False):
        for name in COMPARED:
            if getattr(m, name) != getattr(c, name):
                out.append(
                    f"round {m.round} {name}: mirror {getattr(m, name)}, chain {getattr(c, name)}"
                )
    return out


def confirm_on_chain(
    spec: TaskSpec,
    ks: Sequence[int],
    alphas: Sequence[float | None],
    seeds: Sequence[int],
    params: dict[str, int],
    rounds_per_k: int,
    warmup_per_k: int,
    scenarios: Sequence[str],
    out_dir: Path,
    echo: Callable[[str], None] = print,
) -> list[tuple[int, float, int, str, int, list[str]]]:
    """Every (K, alpha, seed, scenario) on chain beside the mirror: (K, alpha, seed, scenario,
    rounds, mismatches)."""
    out = []
    for alpha, seed in itertools.product(alphas, seeds):
        lab = Lab(spec, alpha, seed)
        for k, scenario in itertools.product(ks, scenarios):
            config = scenario_config(k, alpha, seed, scenario, rounds_per_k, warmup_per_k, params)
            started = time.perf_counter()
            chain = chain_relay(lab, config, out_dir / f"k{k}-a{alpha:g}-s{seed}-{scenario}")
            wrong = mismatches(mirror_relay(lab, config), chain)
            out.append((k, alpha or 0.0, seed, scenario, len(chain.turns), wrong))
            echo(
                f"chain K={k} alpha={alpha} seed={seed} {scenario}: {len(chain.turns)} rounds, "
                f"{len(wrong)} mismatches ({time.perf_counter() - started:.0f} s)"
            )
    return out


# ---------------------------------------------------------------------- report


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _opt(x: float | None, fmt: str = "{:.2f}") -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else fmt.format(x)


def _alpha(alpha: float) -> str:
    return "IID (100)" if alpha >= 100 else f"{alpha:g}"


def _mark(target: Target, a: Aggregate) -> str:
    m = target.margin(a)
    return "" if m is None else (" ✓" if m >= 0 else " ✗")


def render_targets(aggregates: Sequence[Aggregate]) -> list[str]:
    """The issue's targets, one row per (K, alpha), ✓/✗ where a target applies."""
    head = "| K | alpha | " + " | ".join(t.name for t in TARGETS) + " |"
    lines = [head, "|" + "---|" * (2 + len(TARGETS))]
    fmts = [_pct, _pct, "{:.2f}".format, "{:+.2f}".format, "{:.2f}".format, "{:d}".format]
    for a in aggregates:
        cells = []
        for target, fmt in zip(TARGETS, [*fmts, None], strict=True):
            value = target.value(a)
            if target.name.startswith("passes"):
                text = f"{_opt(a.passes_subtle)} / {_opt(a.passes_honest)} = {_opt(a.passes_ratio)}"
            elif target.name.startswith("walker"):
                text = f"{a.walker_gap:d} (test {a.walker_gap_test:+.1f} pts)"
            else:
                text = _opt(value, "{}") if value is None else fmt(value)
            cells.append(text + _mark(target, a))
        lines.append(f"| {a.k} | {_alpha(a.alpha)} | " + " | ".join(cells) + " |")
    return lines + [""]


def render_grid(results: dict[str, list[CellResult]]) -> list[str]:
    """One row per parameter set: targets met, shortfall, and the worst cell of each target."""
    lines = [
        "| parameters | targets met | shortfall | least margin | not slashed (worst) | advanced, "
        "alpha >= 0.5 (worst) | subtle loss (worst, points) | champion gap (worst, points) | "
        "recall kept (worst) | passes ratio, K = 5 (worst measured) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, cells in results.items():
        agg = aggregate(cells, _params(name)["advance_band"])
        met, judged, shortfall, least = judge(agg)
        ratios = [r for a in agg if a.k == 5 and (r := a.passes_ratio) is not None]
        worst_ratio = f"{max(ratios):.2f}" if ratios else "-"
        lines.append(
            f"| {name} | {met}/{judged} | {shortfall:.2f} | {least:+.2f} | "
            f"{_pct(min(a.honest_not_slashed for a in agg))} | "
            f"{_pct(min((a.honest_advanced for a in agg if not _skewed(a)), default=math.nan))} | "
            f"{max(a.subtle_loss for a in agg):.2f} | {max(a.champion_gap for a in agg):+.2f} | "
            f"{min(a.recall_ratio for a in agg):.2f} | {worst_ratio} |"
        )
    return lines + [""]


def _params(name: str) -> dict[str, int]:
    return {k: int(v) for k, v in (item.split("=") for item in name.split(","))}


def render_behaviours(cells: Sequence[CellResult]) -> list[str]:
    """Per adversary, over every cell and seed: what it tried and what it got (mirror: rewards and
    slashes in ether, gas not counted)."""
    margin = SimConfig().margin
    tried = {
        "subtle": "the head mixed toward a label-flipped model, its paired estimate (own held-out "
        f"data) {margin} bp inside the advance band",
        "targeted": f"its commonest class sent to its second, mixed in, {margin} bp inside the band",
        "walker": f"the head mixed toward chance at the band's edge, {WALKER_PLACES} places in a row",
        "dipper": f"the champion mixed toward chance {margin} bp inside the band, then the champion "
        "re-encoded",
        "poisoner": "random weights, then label-flipped training",
    }
    lines = [
        "| behaviour | what it tried | turns | accepted | held | rejected | crowned | reward (ETH) "
        "| slashed (ETH) | mean delta (bp) | mean mix | head lost per turn (points) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in SCENARIOS[1:]:
        rows = [c.adversaries[s] for c in cells if s in c.adversaries]
        if not rows:
            continue
        n = sum(r["turns"] for r in rows)
        total = {key: sum(r[key] for r in rows) for key in rows[0]}
        lines.append(
            f"| {s} | {tried[s]} | {n} | {_pct(total['accepted'] / n)} | {_pct(total['held'] / n)} "
            f"| {_pct(total['rejected'] / n)} | {int(total['crowned'])} | "
            f"{total['reward_wei'] / 1e18:.4f} | {total['slashed_wei'] / 1e18:.4f} | "
            f"{total['delta_sum'] / n:+.0f} | {total['mix_sum'] / n:.3f} | "
            f"{total['loss_sum'] / n:.2f} |"
        )
    return lines + [""]


def render_deltas(cells: Sequence[CellResult]) -> list[str]:
    """Honest paired deltas after warm-up: where the bands cut them."""
    lines = [
        "| K | alpha | honest turns | min | 1st pct | 5th pct | median | share < -500 | "
        "share < -1000 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for k, alpha in sorted({(c.k, c.alpha) for c in cells}):
        d = np.array([x for c in cells if (c.k, c.alpha) == (k, alpha) for x in c.honest_deltas])
        lines.append(
            f"| {k} | {_alpha(alpha)} | {d.size} | {d.min()} | {np.percentile(d, 1):.0f} | "
            f"{np.percentile(d, 5):.0f} | {np.median(d):.0f} | {_pct(float((d < -500).mean()))} | "
            f"{_pct(float((d < -1000).mean()))} |"
        )
    return lines + [""]


def render_min_gain(cells: Sequence[CellResult], min_gains: Sequence[int]) -> list[str]:
    """For each minGain: the share of the accepted honest turns over the champion that it crowns,
    of the adversaries' such turns, and of lottery tickets (the champion plus noise,
    `lottery_deltas`)."""
    honest = [d for c in cells for d in c.honest_beat_deltas]
    adversaries = [d for c in cells for d in c.adversary_beat_deltas]
    tickets = [d for c in cells for d in c.lottery]
    lines = [
        f"{len(honest)} accepted honest turns over the champion, {len(adversaries)} adversaries' "
        f"(every scenario), {len(tickets)} lottery tickets of which "
        f"{_pct(sum(d > 0 for d in tickets) / max(1, len(tickets)))} beat the champion (delta >= "
        "minGain crowns the child and pays baseReward, with rewardPerPoint per bp of its gain).",
        "",
        "| minGain (bp) | honest turns over the champion crowned | adversaries' crowned "
        "| lottery tickets crowned |",
        "|---|---|---|---|",
    ]
    for g in min_gains:
        lines.append(
            f"| {g} | {_pct(sum(d >= g for d in honest) / max(1, len(honest)))} | "
            f"{_pct(sum(d >= g for d in adversaries) / max(1, len(adversaries)))} | "
            f"{_pct(sum(d >= g for d in tickets) / max(1, len(tickets)))} |"
        )
    return lines + [""]


def lottery_deltas(
    lab: Lab, champion: bytes, tickets: int, scale: float = LOTTERY_NOISE
) -> list[int]:
    """Paired deltas (lower median over the validators) of `tickets` copies of `champion`, each
    tensor plus Gaussian noise of `scale` times its standard deviation: what a relayer that does no
    work draws when it resubmits the champion, perturbed enough to move a few predictions."""
    base = load_weights(champion, lab.spec)
    h = lab.scores(champion).holdouts
    gen = torch.Generator().manual_seed(lab.seed)
    out = []
    for _ in range(tickets):
        model = build_model(lab.spec)
        noisy = {
            k: t + scale * float(t.std()) * torch.randn(t.shape, generator=gen)
            for k, t in base.items()
        }
        apply_weights(model, noisy)
        c = tuple(lab.review_score(model, v) for v in lab.holdouts)
        out.append(lower_median([x - y for x, y in zip(c, h, strict=True)]))
    return out


def render_under_attack(cells: Sequence[CellResult]) -> list[str]:
    """Honest turns advanced (not slashed) in each scenario's relay, and what each adversary cost
    the champion over the last two passes against its reference (the adversary idle)."""
    adversaries = [s for s in SCENARIOS[1:] if all(s in c.adversaries for c in cells)]
    lines = [
        "| K | alpha | "
        + " | ".join(f"{s}: honest advanced (not slashed), champion gap" for s in adversaries)
        + " |",
        "|---|---|" + "---|" * len(adversaries),
    ]
    for k, alpha, group in _group(cells):
        row = []
        for s in adversaries:
            n, ok, adv = (sum(c.honest[s][i] for c in group) for i in range(3))
            gap = statistics.fmean(c.adversaries[s]["champion_gap"] for c in group)
            row.append(f"{_pct(adv / n)} ({_pct(ok / n)}), {gap:+.1f} pts")
        lines.append(f"| {k} | {_alpha(alpha)} | " + " | ".join(row) + " |")
    return lines + [""]


def render_chain(confirmed: Sequence[tuple[int, float, int, str, int, list[str]]]) -> list[str]:
    lines = ["| K | alpha | seed | scenario | rounds | turns where mirror and chain differ |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for k, alpha, seed, scenario, rounds, wrong in confirmed:
        first = f" (first: {wrong[0]})" if wrong else ""
        lines.append(
            f"| {k} | {_alpha(alpha)} | {seed} | {scenario} | {rounds} | {len(wrong)}{first} |"
        )
    return lines + [""]


def _honest_floor(cells: Sequence[CellResult]) -> float:
    """The least share of honest turns not slashed, over every cell and every relay (under attack
    too)."""
    return min(
        sum(c.honest[s][1] for c in group) / sum(c.honest[s][0] for c in group)
        for _, _, group in _group(cells)
        for s in group[0].honest
    )


def rank(results: dict[str, list[CellResult]]) -> list[str]:
    """Parameter sets, best first: most targets met; then the one that slashes honest relayers
    least in any relay, under attack too (a slash band wide enough costs no target: the adaptive
    adversaries aim inside the advance band and crude poison falls far below any band); then the
    least total shortfall and the widest least margin; the current defaults first among equals."""
    current = param_name({k: DEFAULTS[k] for k in SWEPT})

    def key(name: str) -> tuple[int, float, float, float, bool]:
        met, _, shortfall, least = judge(aggregate(results[name], _params(name)["advance_band"]))
        return met, _honest_floor(results[name]), -shortfall, least, name == current

    return sorted(results, key=key, reverse=True)


def command_line(argv: Sequence[str]) -> str:
    return "python -m derelay.lab.review_sweep " + " ".join(shlex.quote(a) for a in argv)


def report(
    argv: Sequence[str],
    args: argparse.Namespace,
    results: dict[str, list[CellResult]],
    confirmed: Sequence[tuple[int, float, int, str, int, list[str]]] | None,
    minutes: float,
) -> list[str]:
    """review.md: the targets for the best parameter set (and the current defaults), the grid,
    each adversary's row, the evidence behind each band and minGain, and the chain's check."""
    current = param_name({k: DEFAULTS[k] for k in SWEPT})
    best = rank(results)[0]
    lines = [
        "# Review v2 defaults: the review sweep",
        "",
        f"`{command_line(argv)}` ({minutes:.0f} min on 2 shared cores)",
        "",
        f"K in {args.ks}, Dirichlet alpha in {args.alphas} (100: IID in effect), seeds "
        f"{args.seeds}; {args.rounds_per_k} passes (K rounds each), adversaries joining after "
        f"{args.warmup_per_k}; three honest validators, each scoring the child and the champion on "
        f"its own held-out shard of {len(Lab(digits_mlp_spec(), 0.5, args.seeds[0]).holdouts[0])} "
        f"digits; the score they commit: {args.score} (`derelay.lab.scores`; with accuracy one "
        "sample moves a score by 167 bp). Every figure comes from `mirror_relay`, "
        "which replays `derelay.lab.simulate` and the contract's `finalize` turn by turn (see the last "
        "table for its check against the chain). Scenario per cell: K honest relayers, or K-1 and "
        "one adversary of `derelay.lab.adversaries` (margin "
        f"{SimConfig().margin} bp, estimates on its held-out {SimConfig().estimate_fraction:.0%}), "
        f"the walker with {WALKER_PLACES} consecutive Sybil places; the crude `poisoner` "
        "alternates random weights and label-flipped training.",
        "",
        "Targets (issue 12) and what each is measured against. The all-honest relay: K honest "
        "relayers. The reference: the adversary's own relay with its turns doing nothing (the same "
        "honest turns in the same rounds; `derelay.lab.simulate` draws the same), so that a gap is what "
        "the attack did, not the shard it withheld. Honest turns not slashed >= 99% (alpha >= 0.5), "
        ">= 95% (alpha 0.1), and advanced to head >= 97% (alpha >= 0.5), over the all-honest "
        "relay's turns (beside each adversary further down); subtle poisoner: head test accuracy "
        "lost per attacker turn <= 1.5 points, the champion's test accuracy over the last two "
        "passes within 1 point of the reference's; targeted: the champion's recall of the target "
        "class over the last two passes >= 85% of the reference's; walker: head - champion, as the "
        "validators measure, never below -advanceBand (the test split's figure beside it); passes "
        "until the head first reaches 95% of centralized accuracy (plain SGD on the K shards "
        "pooled) with one subtle poisoner in K from round 1, over the all-honest relay's: <= 1.3 "
        "for K = 5 (reported for K = 10; '-' where a seed never reached it).",
        "",
        "Ranking: most targets met; then the set that slashes honest relayers least in any "
        "relay, under attack too; then the least total shortfall (`rank`). The minGain table "
        "weighs other values of minGain on the best set's turns: which honest turns, adversaries' "
        "turns and lottery tickets each would crown.",
        "",
        f"## Best: {best}" + (" (the current defaults)" if best == current else ""),
        "",
        *render_targets(aggregate(results[best], _params(best)["advance_band"])),
    ]
    if best != current and current in results:
        lines += [
            f"## Current defaults: {current}",
            "",
            *render_targets(aggregate(results[current], _params(current)["advance_band"])),
        ]
    lines += [
        "## Every parameter set",
        "",
        "Margins are in each target's own unit (1% for not slashed, 3% for advanced, 1.5 points "
        "for the loss, 1 point for the champion gap, 15% for recall, 0.05 for the passes ratio); "
        "the least margin is the worst over every cell and target.",
        "",
        *render_grid({name: results[name] for name in rank(results)}),
        f"## Adversaries ({best})",
        "",
        "Over every cell and seed; rewards and slashes in the mirror's ether (gas not counted: "
        "`derelay simulate` books it).",
        "",
        *render_behaviours(results[best]),
        f"## Honest turns under attack ({best})",
        "",
        *render_under_attack(results[best]),
        f"## Honest paired deltas after warm-up ({best}): where the bands cut",
        "",
        *render_deltas(results[best]),
        f"## minGain ({best})",
        "",
        *render_min_gain(results[best], args.min_gains),
    ]
    if confirmed is not None:
        lines += [
            f"## On chain ({best})",
            "",
            "The same relays through the real contract (`derelay.lab.simulate.Simulation`), compared "
            "turn by turn with the mirror: relayer, verdict, child and champion medians, delta, "
            "reward, slash, head and champion test accuracy.",
            "",
            *render_chain(confirmed),
        ]
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("out/review"))
    parser.add_argument("--ks", type=int, nargs="+", default=[5, 10])
    parser.add_argument("--alphas", type=float, nargs="+", default=[0.1, 0.5, 100.0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--slash-bands", type=int, nargs="+", default=[1500, 3000])
    parser.add_argument("--advance-bands", type=int, nargs="+", default=[340, 500, 670])
    parser.add_argument("--grid-min-gains", type=int, nargs="+", default=[170, 340])
    parser.add_argument(
        "--min-gains", type=int, nargs="+", default=[1, 50, 167, 170, 250, 340, 500]
    )
    parser.add_argument(
        "--score", choices=SCORES, default="accuracy",
        help="What the validators commit: accuracy (the worker's) or a Brier score (off-chain only).",
    )  # fmt: skip
    parser.add_argument("--rounds-per-k", type=int, default=10)
    parser.add_argument("--warmup-per-k", type=int, default=2)
    parser.add_argument(
        "--chain", action="store_true", help="Run the best set on chain beside the mirror."
    )
    parser.add_argument("--chain-ks", type=int, nargs="+", default=[5])
    parser.add_argument("--chain-seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--chain-scenarios", nargs="+", default=list(SCENARIOS))
    args = parser.parse_args(argv)
    if args.chain and args.score != "accuracy":
        parser.error("--chain replays the worker's validators, which commit accuracy: drop --score")
    torch.set_num_threads(1)  # small models: threads only contend on shared cores
    spec = digits_mlp_spec()
    args.out.mkdir(parents=True, exist_ok=True)
    grid = make_grid(args.slash_bands, args.advance_bands, args.grid_min_gains)
    started = time.perf_counter()
    results = sweep(
        spec, args.ks, args.alphas, args.seeds, grid, args.rounds_per_k, args.warmup_per_k,
        echo=lambda line: print(line, flush=True), score=args.score,
    )  # fmt: skip
    raw = {name: [asdict(c) for c in cells] for name, cells in results.items()}
    (args.out / "sweep.json").write_text(json.dumps(raw) + "\n")
    confirmed = None
    if args.chain:
        confirmed = confirm_on_chain(
            spec, args.chain_ks, args.alphas, args.chain_seeds, _params(rank(results)[0]),
            args.rounds_per_k, args.warmup_per_k, args.chain_scenarios, args.out / "chain",
            echo=lambda line: print(line, flush=True),
        )  # fmt: skip
    minutes = (time.perf_counter() - started) / 60
    lines = report(argv, args, results, confirmed, minutes)
    (args.out / "review.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()


__all__ = [
    "Lab",
    "mirror_relay",
    "scenario_config",
    "run_cell",
    "sweep",
    "aggregate",
    "judge",
    "rank",
    "chain_relay",
    "mismatches",
    "confirm_on_chain",
    "TARGETS",
]
