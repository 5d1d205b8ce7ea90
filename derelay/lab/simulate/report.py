"""A seed's CSV files, summary.json and plots, and the markdown report over every seed."""

from __future__ import annotations

import csv
import json
import math
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import fields
from itertools import accumulate
from pathlib import Path
from typing import Any

import numpy as np

from derelay.lab.metrics import (
    cumulative_profit,
    profit_of,
    value_at,
)
from derelay.lab.simulate.behaviours import TRIES
from derelay.lab.simulate.config import (
    DEFAULT_SEED,
    RELAYER_BEHAVIOURS,
    RELAYER_COUNTS,
    VALIDATOR_BEHAVIOURS,
    SimConfig,
)
from derelay.lab.simulate.fairness import VERDICTS, step_at
from derelay.lab.simulate.records import BehaviourSummary, SeedResult, SeedSummary, SimulatedRound
from derelay.trainer.contract import (
    ETHER,
)
from derelay.trainer.spec import TaskSpec


def write_outputs(result: SeedResult, config: SimConfig) -> None:
    """rounds.csv, participants.csv, curves.csv, head_champion.csv, summary.json and the plots of
    one seed."""
    from derelay.lab import plots

    out = result.out_dir
    out.mkdir(parents=True, exist_ok=True)
    with (out / "rounds.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        names = [f.name for f in fields(SimulatedRound)]
        writer.writerow(names)
        for r in result.rows:
            writer.writerow(["" if getattr(r, n) is None else getattr(r, n) for n in names])
    gas: dict[str, int] = defaultdict(int)
    for _, who, wei in result.gas:
        gas[who] += wei
    with (out / "participants.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "name", "address", "role", "behaviour", "turns", "accepted", "rejected",
                "skipped", "reviews", "seats", "seats_lost", "samples", "contribution_bp",
                "rewards_wei", "fees_wei", "bounties_wei", "royalties_wei", "stake_lost_wei",
                "compute_wei", "profit_wei", "gas_wei", "net_profit_wei", "left_round",
                "left_reason",
            ]
        )  # fmt: skip
        for p in result.participants:
            pr = profit_of((k, a) for _, who, k, a in result.flows if who == p.address)
            writer.writerow(
                [
                    p.name, p.address, p.role, p.behaviour, p.turns, p.accepted, p.rejected,
                    p.skipped, p.reviews, p.seats, p.seats_lost, p.samples, p.contribution,
                    pr.rewards, pr.fees, pr.bounties, pr.royalties, pr.stake_lost, pr.compute,
                    pr.profit, gas[p.address], pr.profit - gas[p.address],
                    "" if p.left_round is None else p.left_round, p.left_reason,
                ]
            )  # fmt: skip
    with (out / "curves.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["method", "round", "samples", "accuracy_bp"])
        for curve in result.curves.values():
            for i, (x, y) in enumerate(zip(curve.samples, curve.accuracy, strict=True)):
                writer.writerow([curve.method, curve.rounds[i] if curve.rounds else "", x, y])
    rounds = [r.round for r in result.rows]
    ref_rounds = [t.round for t in result.reference]
    reference = [
        step_at(
            ref_rounds, [t.champion_accuracy for t in result.reference], result.genesis_accuracy, x
        )
        for x in rounds
    ]
    with (out / "head_champion.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "round", "behaviour", "verdict", "delta", "head_score", "champion_score",
                "head_accuracy", "champion_accuracy", "all_honest_champion_accuracy",
            ]
        )  # fmt: skip
        for i, r in enumerate(result.rows):
            writer.writerow(
                [
                    r.round, r.behaviour, r.verdict, r.delta, r.head_score, r.champion_after,
                    r.head_accuracy, r.champion_accuracy,
                    round(reference[i]) if result.reference else "",
                ]
            )  # fmt: skip
    (out / "summary.json").write_text(
        json.dumps(_jsonable(_summary(result).to_json()), indent=2) + "\n"
    )

    relay = result.curves["relay"]
    by_rounds = {
        name: [value_at(c.samples, c.accuracy, s) for s in relay.samples]
        for name, c in result.curves.items()
        if name != "relay"
    }
    plots.plot_efficacy(
        out / "accuracy.png",
        relay.rounds or [],
        relay.accuracy,
        by_rounds,
        {name: (c.samples, c.accuracy) for name, c in result.curves.items()},
        title=f"accuracy on the common test split (seed {result.seed})",
    )
    series = {
        "head": [r.head_accuracy / 100 for r in result.rows],
        "champion": [r.champion_accuracy / 100 for r in result.rows],
    }
    if result.reference:
        series["champion, all-honest relay"] = [x / 100 for x in reference]
    plots.plot_series(
        out / "head_champion.png",
        rounds,
        series,
        xlabel="round",
        ylabel="test accuracy (%)",
        title=f"head and champion over rounds (seed {result.seed})",
    )
    groups = {p.address: p.behaviour for p in result.participants}
    last = rounds[-1] if rounds else 0
    cumulative = cumulative_profit(result.flows, last, groups)
    spent: dict[str, list[int]] = {g: [0] * (last + 1) for g in cumulative}
    for round_, who, wei in result.gas:  # gas is a cost of its sender
        if who in groups and 0 <= round_ <= last:
            spent[groups[who]][round_] += wei
    for g, values in cumulative.items():
        cumulative[g] = [v - c for v, c in zip(values, accumulate(spent[g]), strict=True)]
    members = {b: sum(1 for g in groups.values() if g == b) for b in cumulative}
    plots.plot_series(
        out / "profit.png",
        list(range(last + 1)),
        {
            f"{b} (x{members[b]})": [v / members[b] / ETHER for v in values]
            for b, values in cumulative.items()
        },
        xlabel="round",
        ylabel="cumulative net profit per participant (ETH)",
        title=f"cumulative profit per behaviour, gas counted, mean per participant (seed {result.seed})",
    )
    plots.plot_series(
        out / "pool.png",
        [0] + rounds,
        {"pool": [config.pool / ETHER] + [r.pool / ETHER for r in result.rows]},
        xlabel="round",
        ylabel="pool balance (ETH)",
        title=f"pool balance (seed {result.seed})",
    )


def _summary(result: SeedResult) -> SeedSummary:
    if result.summary is None:
        raise ValueError(f"seed {result.seed} is not summarized: call `summarize` first")
    return result.summary


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, np.generic):
        return value.item()
    if hasattr(value, "__dataclass_fields__"):
        return _jsonable({f.name: getattr(value, f.name) for f in fields(value)})
    return value


def _pct(bp: float | None) -> str:
    return "n/a" if bp is None or math.isnan(bp) else f"{bp / 100:.1f}%"


def _ratio(pair: tuple[int, int]) -> str:
    done, total = pair
    return f"{done}/{total}" + (f" ({100 * done / total:.0f}%)" if total else "")


def _eth(wei: float) -> str:
    return f"{wei / ETHER:+.4f}"


def _points(bp: float | None) -> str:
    return "n/a" if bp is None else f"{bp / 100:+.1f}"


def _behaviour_rows(results: Sequence[SeedResult]) -> list[str]:
    """One row per behaviour, over every seed: what it tried and what it got."""
    lines = [
        "| behaviour (per seed) | tried | turns | accepted / crowned / held / rejected / void / "
        "skipped | head lost per turn, mean (worst), points | rewards | slashed | gas | net "
        "profit, total (best-off participant, range over seeds) | net <= 0 in seeds | seats taken "
        "/ lost |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    names = sorted(
        {b for r in results for b in _summary(r).behaviours},
        key=lambda b: [*RELAYER_BEHAVIOURS, *VALIDATOR_BEHAVIOURS, "keeper"].index(b),
    )
    for b in names:
        rows = [_summary(r).behaviours[b] for r in results if b in _summary(r).behaviours]

        def total(key: str, rows: list[BehaviourSummary] = rows) -> int:
            return sum(getattr(x, key) for x in rows)

        counts = [sum(x.verdicts[v] for x in rows) for v in VERDICTS]
        verdicts = " / ".join(str(n) for n in [counts[0], total("crowned"), *counts[1:]])
        damages = [x.damage_per_turn for x in rows if x.damage_per_turn is not None]
        worst = [x.worst_damage for x in rows if x.worst_damage is not None]
        damage = (
            f"{statistics.fmean(damages) / 100:.2f} ({max(worst) / 100:.1f})" if damages else "-"
        )
        seats = f"{total('seats')} / {total('seats_lost')}" if total("seats") else "-"
        lines.append(
            f"| {b} (x{rows[0].members}) | {TRIES.get(b, '')} | {total('turns')} | {verdicts} | "
            f"{damage} | {total('rewards') / ETHER:.4f} | {total('slashed') / ETHER:.4f} | "
            f"{total('gas') / ETHER:.4f} | {_eth(total('net'))} ({_eth(min(x.max_net for x in rows))}"
            f"..{_eth(max(x.max_net for x in rows))}) | "
            f"{sum(x.max_net <= 0 for x in rows)}/{len(rows)} | {seats} |"
        )
    return lines


def write_report(
    out_dir: Path, config: SimConfig, results: Sequence[SeedResult], spec: TaskSpec
) -> Path:
    """report.md over every seed of a task of `spec`, and summary.csv with one row per seed."""
    train = spec.train
    counts = ", ".join(
        f"{b.replace('_', '-')} {getattr(config, name)}" for b, name in RELAYER_COUNTS.items()
    )
    payment = (
        "the usage fee"
        if config.consumer_payment is None
        else f"{config.consumer_payment / ETHER:g} ETH"
    )
    gas_price = (
        "each receipt's effective price"
        if config.gas_price is None
        else f"{config.gas_price / 10**9:g} gwei"
    )
    lines = [
        "# DeRelayL simulation report",
        "",
        f"Seeds: {', '.join(str(r.seed) for r in results)} (default seed {DEFAULT_SEED}). "
        "The real DeRelay contract on the embedded chain (eth-tester), real training of the "
        f"{spec.dataset} {spec.arch.upper()}: an honest turn trains {train.epochs} local "
        f"epoch{'' if train.epochs == 1 else 's'} of {train.optimizer} (lr "
        f"{train.lr:g}, proximal term {train.prox_mu:g}, logit adjustment {train.logit_adjust:g}, "
        f"distillation {train.distill:g} at temperature {train.distill_temperature:g}), "
        "a poisoner trains without any of these safeguards.",
        "",
        f"- relayers K = {config.participants}: {counts} (poison {config.poison}); adversaries "
        f"join after round {config.warmup}; adaptive ones aim {config.margin} bp inside the "
        f"advance band and hold out {config.estimate_fraction:g} of their shard to estimate",
        f"- validators {config.validators} honest + {config.lazy_validators} lazy + "
        f"{config.parrots} parrots + "
        f"{config.squatters} squatters; rounds {config.rounds}; "
        f"alpha {config.alpha if config.alpha is not None else 'IID'}; "
        f"compute cost {config.compute_cost / ETHER:g} ETH per trained epoch; gas at {gas_price}; "
        f"churn after {config.churn_after} unprofitable turns; consumer pays {payment} each round",
    ]
    if results:
        p = results[0].params
        lines.append(
            f"- task: slashBand {p.slash_band} bp, advanceBand {p.advance_band} bp, minGain "
            f"{p.min_gain} bp, baseReward {p.base_reward / ETHER:g} ETH, rewardPerPoint "
            f"{p.reward_per_point / ETHER:g} ETH, slashReject {p.slash_reject_bp} bp, slashTimeout "
            f"{p.slash_timeout_bp} bp, quorum {p.quorum}, validatorFee {p.validator_fee / ETHER:g} "
            f"ETH, slashMiss {p.slash_miss_bp} bp, maxMisses {p.max_misses}, royalty {p.royalty_bp} bp"
        )
    lines += [
        "",
        "Baselines train on the honest relayers' shards only (the data the relay can learn from), "
        "with as many samples as the honest relayers processed; accuracy is on a common test split "
        "that neither training nor review sees. The all-honest relay replays the run's honest "
        "turns (same rounds, same training seeds) with every other turn left out, each child "
        "reviewed by the contract's rule on the honest validators' paired scores.",
        "",
        "## Efficacy",
        "",
        "Final test accuracy at the samples the honest relayers processed (relay: the head after the "
        "last round, and its mean over the last K rounds, which smooths the swings of label skew; "
        "champion: what consumers license); rounds and samples to reach 90% of centralized's final "
        "accuracy.",
        "",
        "| seed | relay head | relay champion | head, last-K mean | centralized | FedAvg | local-only | relay rounds to 90% | samples to 90% (relay / central / FedAvg / local) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        s = _summary(r)
        f = s.final_accuracy
        to90 = s.samples_to_90 or {}
        lines.append(
            f"| {r.seed} | {_pct(f.get('relay'))} | {_pct(f.get('champion'))} | "
            f"{_pct(s.relay_last_k_mean)} | {_pct(f.get('centralized'))} | "
            f"{_pct(f.get('fedavg'))} | {_pct(f.get('local'))} | "
            f"{s.relay_rounds_to_90 or 'not reached'} | "
            + " / ".join(
                str(to90.get(m) or "-") for m in ("relay", "centralized", "fedavg", "local")
            )
            + " |"
        )
    if len(results) > 1:
        means = {
            m: statistics.fmean(_summary(r).final_accuracy.get(m, math.nan) for r in results)
            for m in ("relay", "champion", "centralized", "fedavg", "local")
        }
        tail = statistics.fmean(_summary(r).relay_last_k_mean for r in results)
        lines.append(
            f"| mean | {_pct(means['relay'])} | {_pct(means['champion'])} | {_pct(tail)} | "
            f"{_pct(means['centralized'])} | {_pct(means['fedavg'])} | {_pct(means['local'])} | | |"
        )
    lines += [
        "",
        "## What each behaviour tried and got",
        "",
        "Over every seed. Head lost per turn: the head's test accuracy before the turn minus after "
        "it (positive is damage), averaged over the behaviour's turns. Amounts in ETH; net profit = "
        "rewards + fees + bounties + royalties - stake slashed - compute - gas, for the behaviour in "
        "total and (in brackets) the range over seeds of its best-off participant; 'net <= 0 in "
        "seeds' counts the seeds where no participant of the behaviour ended above zero.",
        "",
        *_behaviour_rows(results),
        "",
        "| seed | honest not slashed | honest accepted | poisoned rejected | free-rider copies accepted | stalls slashed |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        s = _summary(r)
        lines.append(
            f"| {r.seed} | {_ratio(s.honest_not_slashed)} | {_ratio(s.honest_accepted)} | "
            f"{_ratio(s.poisoned_rejected)} | {_ratio(s.free_rider_accepted)} | "
            f"{_ratio(s.stalls_slashed)} |"
        )
    lines += [
        "",
        "## Head and champion",
        "",
        "The head is what the next relayer trains from; the champion, the best model accepted so "
        "far as the validators measure it, is what consumers license and what rewards are measured "
        "against. Per seed: the lowest head-minus-champion gap over the rounds (on the test split, "
        "and as the honest validators measure it: the lower median of their paired differences), accepted children more than the advance band below the champion by the "
        "validators' median delta (the contract's bound: must be 0), and the mean test accuracy of "
        "champion and head over the last two passes (2K rounds) beside the all-honest relay's "
        "champion. Per round: `seed-*/head_champion.csv` and `seed-*/head_champion.png`.",
        "",
        "| seed | lowest head - champion, test (validators) | accepted below the band | last two passes from round | champion | head | all-honest champion | champion - all-honest |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        hc, l2 = _summary(r).head_vs_champion, _summary(r).last_two_passes
        diff = (
            None
            if l2.reference_champion is None or l2.champion is None
            else l2.champion - l2.reference_champion
        )
        lines.append(
            f"| {r.seed} | {_points(hc.min_test_gap)} ({_points(hc.min_validator_gap)}) | "
            f"{hc.accepted_below_band} | {l2.from_round} | {_pct(l2.champion)} | "
            f"{_pct(l2.head)} | {_pct(l2.reference_champion)} | {_points(diff)} |"
        )
    targeted = [(r.seed, t) for r in results for t in _summary(r).targeted]
    if targeted:
        lines += [
            "",
            "## The targeted class",
            "",
            "Recall of the targeted poisoner's source class (on the test split) by the champion, at "
            "the end and averaged over the last two passes, beside the all-honest relay's champion.",
            "",
            "| seed | attacker | class sent | champion recall, end (last two passes) | all-honest, end (last two passes) | ratio, last two passes |",
            "|---|---|---|---|---|---|",
        ]
        for seed, t in targeted:
            ratio = (
                f"{t.champion_recall_last2 / t.reference_recall_last2:.2f}"
                if t.reference_recall_last2 and t.champion_recall_last2 is not None
                else "n/a"
            )
            lines.append(
                f"| {seed} | {t.name} | {t.source} -> {t.dest} | "
                f"{_pct(t.champion_recall_end)} ({_pct(t.champion_recall_last2)}) | "
                f"{_pct(t.reference_recall_end)} ({_pct(t.reference_recall_last2)}) | {ratio} |"
            )
    behaviours = sorted({p.behaviour for r in results for p in r.participants})
    lines += [
        "",
        "## Sustainability",
        "",
        "Net profit = relay rewards + validator fees + keeper bounties + royalties - stake lost - "
        "compute cost - gas, in ETH, per behaviour in total and per participant (stakes come back "
        "except what is slashed).",
        "",
        "| seed | "
        + " | ".join(behaviours)
        + " | honest in profit | pool start -> end (min) | churn |",
        "|---|" + "---|" * len(behaviours) + "---|---|---|",
    ]
    for r in results:
        s = _summary(r)
        cells = [
            f"{_eth(s.profit_by_behaviour.get(b, 0))} ({_eth(s.mean_profit_by_behaviour.get(b, 0))} each)"
            for b in behaviours
        ]
        pool = s.pool
        churn = ", ".join(f"{n} @{rd} ({why})" for n, (rd, why) in s.churn.items()) or "none"
        lines.append(
            f"| {r.seed} | " + " | ".join(cells) + f" | {_ratio(s.honest_in_profit)} | "
            f"{pool.start / ETHER:.3f} -> {pool.end / ETHER:.3f} ({pool.min / ETHER:.3f}) | {churn} |"
        )
    lines += [
        "",
        "Per participant: `seed-*/participants.csv`; over time: `seed-*/profit.png`, `seed-*/pool.png`.",
        "",
        "## Fairness",
        "",
        "Jain's index of reward per unit of contribution among honest relayers (contribution: the "
        "sum over a relayer's crowned turns of its test-accuracy gain over the champion or over "
        "its parent, whichever is less, as the contract pays; also per sample trained), Gini of "
        "relay rewards.",
        "",
        "| seed | Jain (per gain) | Jain (per sample) | Gini (all relayers) | Gini (honest) |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        s = _summary(r)
        lines.append(
            f"| {r.seed} | {s.jain_reward_per_gain:.3f} (n={s.jain_n}) | "
            f"{s.jain_reward_per_sample:.3f} | {s.gini_rewards_relayers:.3f} | "
            f"{s.gini_rewards_honest:.3f} |"
        )
    present = [b for b in RELAYER_BEHAVIOURS if b in config.behaviours()]
    lines += [
        "",
        "## Rewards by behaviour",
        "",
        "The contract pays only for a crowned child, one whose `delta` (the validators' median of "
        "child minus champion on the same held-out data) reaches minGain, and only for what it "
        "added itself: for gain = min(delta, progress), progress the median of child minus its "
        "parent, baseReward once gain reaches minGain plus rewardPerPoint per bp. A child at or "
        "below the champion earns nothing, and neither does a copy of the head or a recovery of "
        "lost ground. Rewards per behaviour (ETH):",
        "",
        "| seed | " + " | ".join(present) + " |",
        "|---|" + "---|" * len(present),
    ]
    for r in results:
        s = _summary(r)
        cells = [f"{s.rewards_by_behaviour.get(b, 0) / ETHER:.4f}" for b in present]
        lines.append(f"| {r.seed} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Wall time: " + ", ".join(f"seed {r.seed} {r.seconds:.1f} s" for r in results) + ".",
        "",
        "Files per seed: `rounds.csv`, `participants.csv`, `curves.csv`, `head_champion.csv`, "
        "`summary.json`, `accuracy.png`, `head_champion.png`, `profit.png`, `pool.png`. Every "
        "amount in the CSVs is checked against the chain's events (`derelay.trainer.payouts.task_payouts`) to "
        "the wei before it is written; gas is each receipt's gasUsed.",
        "",
    ]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines))
    with (out_dir / "summary.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "seed", "relay_bp", "champion_bp", "centralized_bp", "fedavg_bp", "local_bp",
                "relay_rounds_to_90", "honest_accepted", "honest_turns", "poisoned_rejected",
                "poisoned_turns", "champion_last2_bp", "all_honest_champion_last2_bp",
                "jain_per_gain", "gini_relayers", "seconds",
            ]
        )  # fmt: skip
        for r in results:
            s = _summary(r)
            f = s.final_accuracy
            l2 = s.last_two_passes
            writer.writerow(
                [
                    r.seed, f.get("relay"), f.get("champion"), f.get("centralized"),
                    f.get("fedavg"), f.get("local"), s.relay_rounds_to_90,
                    *s.honest_accepted, *s.poisoned_rejected,
                    "" if l2.champion is None else round(l2.champion),
                    "" if l2.reference_champion is None else round(l2.reference_champion),
                    f"{s.jain_reward_per_gain:.4f}", f"{s.gini_rewards_relayers:.4f}",
                    f"{r.seconds:.1f}",
                ]
            )  # fmt: skip
    return path
