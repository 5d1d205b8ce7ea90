"""One cell of the sweep, (K, alpha, seed) under one parameter set: every scenario's relay
(`run_cell`), the centralized target its passes are measured against (`central_target`), and the
lottery tickets drawn on its final champion (`lottery_deltas`)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import torch

from derelay.lab.metrics import first_reaching, lower_median
from derelay.lab.review_sweep.lab import Lab
from derelay.lab.review_sweep.mirror import SCENARIOS, Relay, Turn, mirror_relay, scenario_config
from derelay.lab.simulate import centralized_curve
from derelay.trainer.models import apply_weights, build_model, load_weights

LOTTERY_NOISE = 0.05  # a lottery ticket's noise, in standard deviations of each tensor
LOTTERY_TICKETS = 20  # tickets drawn on the final champion of each all-honest relay


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
    target_share: float  # the targeted poisoner's share of its class among the relayers' examples
    targeted_recall: float  # champion's recall of the target class, last two passes (points)
    reference_recall: float  # the same in the reference relay
    walker_gap: int  # least head - champion over the walker's relay, as the validators measure
    walker_gap_test: float  # the same on the test split (points)
    target: float  # 95% of centralized accuracy (points)
    passes_central: float | None
    passes_honest: float | None  # K honest relayers: rounds / K until the head reaches `target`
    passes_subtle: float | None  # K-1 and a subtle poisoner, all from round 1
    honest_champion: float  # the all-honest relay's champion test accuracy, last two passes
    adversaries: dict[str, dict[str, float]] = field(default_factory=dict)  # per scenario
    lottery: list[int] = field(default_factory=list)  # `lottery_deltas` of the final champion
    adversary_beat_deltas: list[int] = field(default_factory=list)  # every adversary's
    # `Turn.class_drop` of the all-honest relay's turns after warm-up, and of the targeted
    # poisoner's turns (bp of one class's recall)
    honest_class_drops: list[int] = field(default_factory=list)
    targeted_class_drops: list[int] = field(default_factory=list)


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


def _class_drops(relay: Relay | None, behaviour: str, after: int) -> list[int]:
    """`Turn.class_drop` of `behaviour`'s turns with a child after round `after`."""
    if relay is None:
        return []
    return [
        t.class_drop
        for t in relay.turns
        if t.behaviour == behaviour and t.round > after and t.class_drop is not None
    ]


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
    *others, targeted = lab.relayers(scenario_config(k, lab.alpha, lab.seed, "targeted", 1, 0))
    assert targeted.pair is not None and targeted.estimate is not None
    source = targeted.pair[0]
    held = int((targeted.data.y == source).sum() + (targeted.estimate.y == source).sum())
    total = held + sum(int((r.data.y == source).sum()) for r in others)

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
        target_share=held / total,
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
        honest_champion=_champion_tail(honest, k),
        adversaries=rows,
        lottery=lottery_deltas(lab, honest.champion, LOTTERY_TICKETS),
        adversary_beat_deltas=[
            t.delta
            for r in relays.values()
            for t in r.turns
            if t.behaviour != "honest" and _beat(t)
        ],
        honest_class_drops=_class_drops(honest, "honest", warmup_per_k * k),
        targeted_class_drops=_class_drops(relays.get("targeted"), "targeted", 0),
    )
    return result, relays


def central_target(
    lab: Lab, k: int, share: float = 0.95, passes: int = 20
) -> tuple[float, float | None]:
    """(share x centralized accuracy in points, passes centralized takes to reach it): one model on
    the K relayers' pooled shards, plain SGD and plain cross-entropy (the reference experiment's)."""
    plain = replace(lab.spec, train=lab.spec.train.without_safeguards())
    shards = [r.data for r in lab.relayers(scenario_config(k, lab.alpha, lab.seed, "honest", 1, 0))]
    held = sum(len(s) for s in shards)
    curve = centralized_curve(plain, lab.genesis, shards, lab.test, passes * held, lab.seed)
    target = share * statistics.fmean(curve.accuracy[-5:])
    reached = first_reaching(curve.samples, curve.accuracy, target)
    return target / 100, None if reached is None else reached / held


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
