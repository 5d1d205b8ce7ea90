"""Aggregates and targets: each (K, alpha)'s figures over its seeds (`aggregate`), the issue's
targets (`TARGETS`, `judge`), the sweep of the parameter grid (`make_grid`, `sweep`) and the
ranking of its parameter sets (`rank`)."""

from __future__ import annotations

import itertools
import math
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

from derelay.lab.review_sweep.cells import CellResult, central_target, run_cell
from derelay.lab.review_sweep.lab import Lab
from derelay.lab.review_sweep.mirror import DEFAULTS
from derelay.trainer.spec import TaskSpec

SWEPT = ("slash_band", "advance_band", "min_gain")


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
    honest_champion: float  # the all-honest relay's champion, last two passes (points, mean)

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
                honest_champion=statistics.fmean(c.honest_champion for c in group),
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
    start: str = "head",
) -> dict[str, list[CellResult]]:
    """Every parameter set of `grid` on every cell, off-chain, the validators committing `score`
    and honest relayers starting their turns as `start` says (`derelay.lab.review_sweep.lab`);
    (alpha, seed) outermost, so one lab's caches serve the whole grid and both K, and are dropped
    before the next."""
    results: dict[str, list[CellResult]] = {param_name(p): [] for p in grid}
    for alpha, seed in itertools.product(alphas, seeds):
        lab = Lab(spec, alpha, seed, score=score, start=start)
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


def _params(name: str) -> dict[str, int]:
    return {k: int(v) for k, v in (item.split("=") for item in name.split(","))}


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
