"""The figures of one seed: efficacy, what each behaviour tried and got, head against champion,
the targeted class, sustainability and fairness."""

from __future__ import annotations

import hashlib
import statistics
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from derelay.lab.adversaries import (
    class_recall,
)
from derelay.lab.metrics import (
    first_reaching,
    gini,
    jain_index,
    profit_of,
    value_at,
)
from derelay.lab.simulate.config import RELAYER_BEHAVIOURS, SimConfig
from derelay.lab.simulate.records import (
    TARGET_FIELDS,
    BehaviourSummary,
    HeadVsChampion,
    LastTwoPasses,
    Participant,
    PoolSummary,
    SeedResult,
    SeedSummary,
    TargetedSummary,
)
from derelay.trainer.data import Dataset
from derelay.trainer.spec import TaskSpec

VERDICTS = ("accepted", "held", "rejected", "void", "skipped")


def step_at(rounds: Sequence[int], values: Sequence[float], start: float, at: int) -> float:
    """A per-round series' value at round `at`: that of its last round <= `at` (`start` before)."""
    return value_at([0, *rounds], [start, *values], at)


def _recall_series(
    spec: TaskSpec, models: Sequence[bytes], test: Dataset, cls: int
) -> list[int | None]:
    cache: dict[bytes, int | None] = {}
    out = []
    for weights in models:
        key = hashlib.sha256(weights).digest()
        if key not in cache:
            cache[key] = class_recall(spec, weights, test, cls)
        out.append(cache[key])
    return out


def _mean(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.fmean(present) if present else None


def summarize(result: SeedResult, config: SimConfig) -> SeedSummary:
    """The figures of one seed: efficacy, what each behaviour tried and got (gas counted), head
    against champion, the targeted class, sustainability, fairness."""
    rows = result.rows
    relay = result.curves["relay"]
    budget = relay.samples[-1]
    out: dict[str, Any] = {"seed": result.seed, "rounds": len(rows), "honest_samples": budget}
    finals = {name: value_at(c.samples, c.accuracy, budget) for name, c in result.curves.items()}
    finals["relay"] = relay.accuracy[-1]
    finals["champion"] = rows[-1].champion_accuracy if rows else result.genesis_accuracy
    window = relay.accuracy[-config.participants :]
    out["relay_last_k_mean"] = statistics.fmean(window) if rows else relay.accuracy[0]
    out["final_accuracy"] = finals
    out["genesis_accuracy"] = result.genesis_accuracy
    out.update(dict.fromkeys(TARGET_FIELDS))
    if "centralized" in finals:
        target = 0.9 * finals["centralized"]
        out["target_90"] = target
        reached = first_reaching(relay.rounds or [], relay.accuracy, target)
        out["relay_rounds_to_90"] = reached
        out["samples_to_90"] = {
            name: first_reaching(c.samples, c.accuracy, target) for name, c in result.curves.items()
        }
        fed = result.curves["fedavg"]
        out["fedavg_rounds_to_90"] = first_reaching(fed.rounds or [], fed.accuracy, target)

    def share(behaviour: str, verdict: str) -> tuple[int, int]:
        turns = [r for r in rows if r.behaviour == behaviour and r.verdict != "skipped"]
        return sum(r.verdict == verdict for r in turns), len(turns)

    out["honest_accepted"] = share("honest", "accepted")
    honest_rejected, honest_turns = share("honest", "rejected")
    out["honest_not_slashed"] = (honest_turns - honest_rejected, honest_turns)
    out["poisoned_rejected"] = share("poisoner", "rejected")
    out["free_rider_accepted"] = share("free_rider", "accepted")
    stalls = [r for r in rows if r.behaviour == "staller"]
    out["stalls_slashed"] = (sum(r.slashed > 0 for r in stalls), len(stalls))

    gas: dict[str, int] = defaultdict(int)
    for _, who, wei in result.gas:
        gas[who] += wei
    profits: dict[str, Any] = {}
    net: dict[str, int] = {}
    by_behaviour: dict[str, list[Participant]] = defaultdict(list)
    for p in result.participants:
        profits[p.name] = profit_of((k, a) for _, who, k, a in result.flows if who == p.address)
        net[p.name] = profits[p.name].profit - gas[p.address]
        by_behaviour[p.behaviour].append(p)
    out["profit_by_behaviour"] = {b: sum(net[p.name] for p in ps) for b, ps in by_behaviour.items()}
    out["mean_profit_by_behaviour"] = {
        b: statistics.fmean(net[p.name] for p in ps) for b, ps in by_behaviour.items()
    }
    out["gas_by_behaviour"] = {b: sum(gas[p.address] for p in ps) for b, ps in by_behaviour.items()}
    out["behaviours"] = {}
    for b, ps in by_behaviour.items():
        mine = [r for r in rows if r.behaviour == b]
        damage = [r.head_before - r.head_accuracy for r in mine]
        money = [profits[p.name] for p in ps]
        out["behaviours"][b] = BehaviourSummary(
            members=len(ps),
            turns=len(mine),
            verdicts={v: sum(r.verdict == v for r in mine) for v in VERDICTS},
            crowned=sum(r.crowned for r in mine),
            damage_per_turn=_mean(damage),
            worst_damage=max(damage, default=None),
            rewards=sum(m.rewards for m in money),
            fees=sum(m.fees for m in money),
            royalties=sum(m.royalties for m in money),
            slashed=sum(m.stake_lost for m in money),
            compute=sum(m.compute for m in money),
            gas=sum(gas[p.address] for p in ps),
            net=sum(net[p.name] for p in ps),
            max_net=max(net[p.name] for p in ps),
            reviews=sum(p.reviews for p in ps),
            seats=sum(p.seats for p in ps),
            seats_lost=sum(p.seats_lost for p in ps),
        )
    honest = by_behaviour.get("honest", [])
    out["honest_in_profit"] = (sum(net[p.name] > 0 for p in honest), len(honest))

    advance = result.params.advance_band
    out["head_vs_champion"] = HeadVsChampion(
        min_test_gap=min((r.head_accuracy - r.champion_accuracy for r in rows), default=0),
        min_validator_gap=min((r.head_gap for r in rows), default=0),
        accepted_below_band=sum(r.verdict == "accepted" and r.delta < -advance for r in rows),
    )
    ref = result.reference
    ref_rounds = [t.round for t in ref]
    last = rows[-1].round if rows else 0
    window_rows = [r for r in rows if r.round > last - 2 * config.participants]
    reference_champion = (
        _mean(
            [
                step_at(
                    ref_rounds, [t.champion_accuracy for t in ref], result.genesis_accuracy, r.round
                )
                for r in window_rows
            ]
        )
        if ref
        else None
    )
    out["last_two_passes"] = LastTwoPasses(
        from_round=window_rows[0].round if window_rows else 0,
        champion=_mean([r.champion_accuracy for r in window_rows]),
        head=_mean([r.head_accuracy for r in window_rows]),
        reference_champion=reference_champion,
    )
    out["targeted"] = []
    if result.test is not None:
        for p in result.participants:
            if p.behaviour != "targeted" or p.pair is None:
                continue
            source, dest = p.pair
            recall = _recall_series(result.spec, result.champions, result.test, source)
            reference_end = reference_last2 = None
            if ref:
                ref_recall = _recall_series(
                    result.spec, [t.champion for t in ref], result.test, source
                )
                genesis = class_recall(result.spec, result.champions[0], result.test, source)
                reference_end = ref_recall[-1]
                reference_last2 = _mean(
                    [
                        step_at(ref_rounds, [x or 0 for x in ref_recall], genesis or 0, r.round)
                        for r in window_rows
                    ]
                )
            out["targeted"].append(
                TargetedSummary(
                    name=p.name,
                    source=source,
                    dest=dest,
                    champion_recall_end=recall[-1] if recall else None,
                    champion_recall_last2=_mean(recall[len(rows) - len(window_rows) :]),
                    reference_recall_end=reference_end,
                    reference_recall_last2=reference_last2,
                )
            )

    out["churn"] = {
        p.name: (p.left_round, p.left_reason)
        for p in result.participants
        if p.left_round is not None
    }
    pools = [r.pool for r in rows]
    out["pool"] = PoolSummary(
        start=config.pool,
        end=pools[-1] if pools else config.pool,
        min=min(pools, default=config.pool),
    )

    per_gain = [profits[p.name].rewards / p.contribution for p in honest if p.contribution > 0]
    per_sample = [profits[p.name].rewards / p.samples for p in honest if p.samples > 0]
    out["jain_reward_per_gain"] = jain_index(per_gain)
    out["jain_reward_per_sample"] = jain_index(per_sample)
    out["jain_n"] = len(per_gain)
    relayer_rewards = [profits[p.name].rewards for p in result.participants if p.role == "relayer"]
    out["gini_rewards_relayers"] = gini(relayer_rewards)
    out["gini_rewards_honest"] = gini([profits[p.name].rewards for p in honest])

    out["rewards_by_behaviour"] = {
        b: sum(r.reward for r in rows if r.behaviour == b) for b in RELAYER_BEHAVIOURS
    }
    out["seconds"] = result.seconds
    out["timings"] = result.timings
    return SeedSummary(**out)
