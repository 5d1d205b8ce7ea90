"""Pure metrics of a simulated relay: fairness indices, profit accounting, FedAvg aggregation, and
exact mirrors of the contract's review and royalty arithmetic.

Nothing here touches the chain, the store or torch: every function takes plain numbers or arrays,
so each is unit-tested on its own and the simulation can check its bookkeeping against the chain's
events to the wei.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import accumulate

import numpy as np

BP = 10_000
ACC_SCALE = 10**18  # the contract's accPerShare scale


# ---------------------------------------------------------------------- fairness


def jain_index(values: Iterable[float]) -> float:
    """Jain's fairness index (sum x)^2 / (n * sum x^2): 1 when all equal, 1/n when one takes all.

    NaN for no values; 1.0 when every value is zero (nobody is favoured). Values must be >= 0.
    """
    xs = np.asarray(list(values), dtype=np.float64)
    if xs.size == 0:
        return math.nan
    if (xs < 0).any() or not np.isfinite(xs).all():
        raise ValueError("Jain's index needs finite, non-negative values")
    squares = float((xs**2).sum())
    if squares == 0.0:
        return 1.0
    return float(xs.sum() ** 2 / (xs.size * squares))


def gini(values: Iterable[float]) -> float:
    """Gini coefficient of non-negative values: 0 for perfect equality, (n-1)/n when one takes all.

    NaN for no values; 0.0 when every value is zero.
    """
    xs = np.sort(np.asarray(list(values), dtype=np.float64))
    if xs.size == 0:
        return math.nan
    if (xs < 0).any() or not np.isfinite(xs).all():
        raise ValueError("the Gini coefficient needs finite, non-negative values")
    total = float(xs.sum())
    if total == 0.0:
        return 0.0
    n = xs.size
    ranks = np.arange(1, n + 1, dtype=np.float64)
    return float(2.0 * (ranks * xs).sum() / (n * total) - (n + 1) / n)


# ---------------------------------------------------------------------- aggregation


def fedavg(
    states: Sequence[Mapping[str, np.ndarray]], weights: Sequence[float]
) -> dict[str, np.ndarray]:
    """FedAvg: the average of client state dicts weighted by their sample counts (as Flower's
    `aggregate` does). Every state must hold the same tensor names and shapes."""
    if not states or len(states) != len(weights):
        raise ValueError("fedavg needs one weight per state and at least one state")
    w = np.asarray(weights, dtype=np.float64)
    if (w < 0).any() or not np.isfinite(w).all() or w.sum() <= 0:
        raise ValueError("fedavg weights must be non-negative, finite, with a positive sum")
    names = set(states[0])
    for state in states[1:]:
        if set(state) != names:
            raise ValueError("fedavg states hold different tensor names")
    out: dict[str, np.ndarray] = {}
    for name in sorted(names):
        arrays = [np.asarray(state[name], dtype=np.float64) for state in states]
        shape = arrays[0].shape
        if any(a.shape != shape for a in arrays):
            raise ValueError(f"fedavg: tensor {name} has different shapes across states")
        total = sum(wk * a for wk, a in zip(w, arrays, strict=True))
        out[name] = (total / w.sum()).astype(np.asarray(states[0][name]).dtype)
    return out


# ---------------------------------------------------------------------- the contract's arithmetic


def lower_median(scores: Sequence[int]) -> int:
    """The lower median, as the contract's `_lowerMedian` (0 for no scores)."""
    if not scores:
        return 0
    ordered = sorted(scores)
    return int(ordered[(len(ordered) - 1) // 2])


@dataclass(frozen=True)
class Review:
    """A finalized review as the contract's `finalize` decides it: the lower medians of the child's
    scores, of the champion's, and of the paired differences with the champion (`delta`, which
    decides) and with the child's parent, the head it was trained from (`progress`)."""

    verdict: str  # "void", "rejected", "held" or "accepted"
    child_score: int
    champion_score: int
    delta: int
    progress: int
    reveals: int
    crowned: bool  # accepted with delta >= min_gain: the child became the champion


def review(
    ballots: Sequence[tuple[int, int, int]],
    quorum: int,
    slash_band: int,
    advance_band: int,
    min_gain: int,
) -> Review:
    """The verdict of revealed (child, champion, parent) score ballots, as the contract's
    `finalize`: void below quorum; rejected for a child median of 0 (unusable weights) or a median
    delta below -slash_band; held below -advance_band; accepted otherwise, and crowned when delta
    >= min_gain."""
    if len(ballots) < quorum:
        return Review("void", 0, 0, 0, 0, len(ballots), False)
    child = lower_median([c for c, _, _ in ballots])
    champion = lower_median([h for _, h, _ in ballots])
    delta = lower_median([c - h for c, h, _ in ballots])
    progress = lower_median([c - p for c, _, p in ballots])
    if child == 0 or delta < -slash_band:
        kind = "rejected"
    elif delta < -advance_band:
        kind = "held"
    else:
        kind = "accepted"
    crowned = kind == "accepted" and delta >= min_gain
    return Review(kind, child, champion, delta, progress, len(ballots), crowned)


def relay_reward(
    delta: int, progress: int, min_gain: int, base_reward: int, reward_per_point: int, pool: int
) -> int:
    """The reward of an accepted child, as the contract computes it: nothing unless it was crowned
    (delta >= minGain) and improved on its parent (progress > 0); then, for gain = min(delta,
    progress), baseReward once gain >= minGain plus rewardPerPoint per bp of gain, capped by the
    pool. Regaining lost ground below the champion, or a copy of an uncrowned head that noise
    crowns, earns nothing: the gain is the relayer's own only where it is over its parent too."""
    if delta < min_gain or progress <= 0:
        return 0
    gain = min(delta, progress)
    reward = (base_reward if gain >= min_gain else 0) + reward_per_point * gain
    return min(pool, reward)


def paid_in_band(ballot: tuple[int, int, int], outcome: Review, band_bp: int) -> bool:
    """Whether a reveal earns the validator fee: within band_bp of both the child's median and the
    median delta of a decided review."""
    child, champion, _ = ballot
    return (
        outcome.verdict != "void"
        and abs(child - outcome.child_score) <= band_bp
        and abs((child - champion) - outcome.delta) <= band_bp
    )


def outvoted(
    ballots: Sequence[tuple[int, int, int]], outcome: Review, slash_band: int
) -> list[int]:
    """The indices of the reveals that a review slashes as outvoted, as the contract's
    `_markOutvoted`: in a rejected review, those whose delta lies more than slash_band above the
    median delta (they passed the child), when more than half of the reveals lie within slash_band
    of it (with no such majority, none)."""
    deltas = [c - h for c, h, _ in ballots]
    agree = sum(abs(d - outcome.delta) <= slash_band for d in deltas)
    if outcome.verdict != "rejected" or 2 * agree <= len(ballots):
        return []
    return [i for i, d in enumerate(deltas) if d > outcome.delta + slash_band]


class RoyaltyBook:
    """An exact mirror of the contract's royalty accumulator (Synthetix style): shares grow with
    rewards, usage fees raise `acc_per_share`, each account is settled (floored) on every share
    change. `owed(account)` equals the chain's settled plus pending royalties, to the wei."""

    def __init__(self, royalty_bp: int) -> None:
        self.royalty_bp = royalty_bp
        self.acc_per_share = 0
        self.total_shares = 0
        self.shares: dict[str, int] = defaultdict(int)
        self._acc_paid: dict[str, int] = defaultdict(int)
        self._settled: dict[str, int] = defaultdict(int)

    def _pending(self, account: str) -> int:
        return self.shares[account] * (self.acc_per_share - self._acc_paid[account]) // ACC_SCALE

    def _settle(self, account: str) -> None:
        self._settled[account] += self._pending(account)
        self._acc_paid[account] = self.acc_per_share

    def add_shares(self, account: str, amount: int) -> None:
        """A reward of `amount` wei: settle the account, then add the shares."""
        if amount <= 0:
            return
        self._settle(account)
        self.shares[account] += amount
        self.total_shares += amount

    def pay(self, value: int) -> int:
        """A usage payment of `value` wei; returns the royalty set aside for contributors (none
        while nobody holds shares). accPerShare grows by floor(royalty * 1e18 / totalShares)."""
        if self.total_shares == 0:
            return 0
        royalty = value * self.royalty_bp // BP
        self.acc_per_share += royalty * ACC_SCALE // self.total_shares
        return royalty

    def owed(self, account: str) -> int:
        """Royalties earned by `account` so far, settled or not."""
        return self._settled[account] + self._pending(account)


# ---------------------------------------------------------------------- profit


FLOW_KINDS = ("reward", "fee", "bounty", "royalty", "slashed", "compute")


@dataclass(frozen=True)
class Profit:
    """What one participant earned and lost, in wei.

    profit = rewards + validator fees + keeper bounties + royalties - stake lost - compute cost.
    Stakes themselves are not income: what is staked comes back (refunded or still held) except
    what was slashed, which is `stake_lost`.
    """

    rewards: int = 0
    fees: int = 0
    bounties: int = 0
    royalties: int = 0
    stake_lost: int = 0
    compute: int = 0

    @property
    def income(self) -> int:
        return self.rewards + self.fees + self.bounties + self.royalties

    @property
    def profit(self) -> int:
        return self.income - self.stake_lost - self.compute


def profit_of(flows: Iterable[tuple[str, int]]) -> Profit:
    """Sum (kind, wei) flows of one participant into a `Profit`; kinds are FLOW_KINDS."""
    totals = dict.fromkeys(FLOW_KINDS, 0)
    for kind, amount in flows:
        if kind not in totals:
            raise ValueError(f"unknown flow kind {kind!r}")
        totals[kind] += amount
    return Profit(
        rewards=totals["reward"],
        fees=totals["fee"],
        bounties=totals["bounty"],
        royalties=totals["royalty"],
        stake_lost=totals["slashed"],
        compute=totals["compute"],
    )


def cumulative_profit(
    flows: Iterable[tuple[int, str, str, int]], rounds: int, groups: Mapping[str, str]
) -> dict[str, list[int]]:
    """Cumulative profit of each group after rounds 0..`rounds`, from (round, account, kind, wei)
    flows; `groups` maps each account to its group (e.g. its behaviour). Income counts positive,
    stake lost and compute negative."""
    sign = {"reward": 1, "fee": 1, "bounty": 1, "royalty": 1, "slashed": -1, "compute": -1}
    per_round: dict[str, list[int]] = {g: [0] * (rounds + 1) for g in sorted(set(groups.values()))}
    for round_, account, kind, amount in flows:
        if account in groups and 0 <= round_ <= rounds:
            per_round[groups[account]][round_] += sign[kind] * amount
    return {g: list(accumulate(v)) for g, v in per_round.items()}


# ---------------------------------------------------------------------- curves


def first_reaching(xs: Sequence[float], ys: Sequence[float], target: float) -> float | None:
    """The first x whose y reaches `target`, or None."""
    for x, y in zip(xs, ys, strict=True):
        if y >= target:
            return x
    return None


def value_at(xs: Sequence[float], ys: Sequence[float], x: float) -> float:
    """A step curve's value at `x`: y of the last point with xs <= x (the first y before it)."""
    if not xs:
        raise ValueError("empty curve")
    index = int(np.searchsorted(np.asarray(xs, dtype=np.float64), x, side="right")) - 1
    return float(ys[max(index, 0)])
