"""The report, review.md: every table (`render_*`) and the page (`report`)."""

from __future__ import annotations

import argparse
import math
import shlex
import statistics
from collections.abc import Sequence

import numpy as np

from derelay.lab.review_sweep.cells import CellResult
from derelay.lab.review_sweep.lab import STARTS, Lab
from derelay.lab.review_sweep.mirror import DEFAULTS, SCENARIOS, WALKER_PLACES
from derelay.lab.review_sweep.targets import (
    SWEPT,
    TARGETS,
    Aggregate,
    Target,
    _group,
    _params,
    _skewed,
    aggregate,
    judge,
    param_name,
    rank,
)
from derelay.lab.simulate import SimConfig
from derelay.trainer.spec import TaskSpec


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
    """The issue's targets, one row per (K, alpha), ✓/✗ where a target applies, and the all-honest
    relay's champion."""
    names = [t.name for t in TARGETS] + ["all-honest champion, last 2 passes (points)"]
    lines = ["| K | alpha | " + " | ".join(names) + " |", "|" + "---|" * (2 + len(names))]
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
        cells.append(f"{a.honest_champion:.2f}")
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
    for k, alpha, group in _group(cells):
        d = np.array([x for c in group for x in c.honest_deltas])
        lines.append(
            f"| {k} | {_alpha(alpha)} | {d.size} | {d.min()} | {np.percentile(d, 1):.0f} | "
            f"{np.percentile(d, 5):.0f} | {np.median(d):.0f} | {_pct(float((d < -500).mean()))} | "
            f"{_pct(float((d < -1000).mean()))} |"
        )
    return lines + [""]


CLASS_TOLERANCES = (1000, 1500, 2000)  # per-class tolerances the class-drop table weighs (bp)


def render_class_drops(cells: Sequence[CellResult]) -> list[str]:
    """Would a per-class review stop the targeted poisoner? Each child's worst class as the
    validators see it (`Turn.class_drop`), honest turns after warm-up beside the targeted
    poisoner's, and the share of each that a rule holding a child whose worst class lost more
    than a tolerance would hold."""
    head = " | ".join(
        f"honest held at {t // 100} | targeted held at {t // 100}" for t in CLASS_TOLERANCES
    )
    lines = [
        "| K | alpha | honest turns | honest median | honest 90th pct | targeted turns | "
        f"targeted median | {head} |",
        "|---|---|---|---|---|---|---|" + "---|---|" * len(CLASS_TOLERANCES),
    ]
    for k, alpha, group in _group(cells):
        honest = np.array([x for c in group for x in c.honest_class_drops])
        targeted = np.array([x for c in group for x in c.targeted_class_drops])
        if not honest.size or not targeted.size:
            continue
        held = " | ".join(
            f"{_pct(float((honest > t).mean()))} | {_pct(float((targeted > t).mean()))}"
            for t in CLASS_TOLERANCES
        )
        lines.append(
            f"| {k} | {_alpha(alpha)} | {honest.size} | {np.median(honest) / 100:.1f} | "
            f"{np.percentile(honest, 90) / 100:.1f} | {targeted.size} | "
            f"{np.median(targeted) / 100:.1f} | {held} |"
        )
    return lines + [""]


def render_targeted(cells: Sequence[CellResult]) -> list[str]:
    """The targeted poisoner's class, its share of it and the recall kept, per cell and seed."""
    lines = [
        "| K | alpha | seed | class | poisoner's share of it | reference recall | targeted recall "
        "| kept |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in sorted(cells, key=lambda c: (c.k, c.alpha, c.seed)):
        kept = c.targeted_recall / c.reference_recall if c.reference_recall else math.nan
        lines.append(
            f"| {c.k} | {_alpha(c.alpha)} | {c.seed} | {c.target_class} | {_pct(c.target_share)} "
            f"| {c.reference_recall:.1f} | {c.targeted_recall:.1f} | {kept:.2f} |"
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


def command_line(argv: Sequence[str]) -> str:
    return "python -m derelay.lab.review_sweep " + " ".join(shlex.quote(a) for a in argv)


def report(
    argv: Sequence[str],
    args: argparse.Namespace,
    results: dict[str, list[CellResult]],
    confirmed: Sequence[tuple[int, float, int, str, int, list[str]]] | None,
    minutes: float,
    spec: TaskSpec,
) -> list[str]:
    """review.md: the targets for the best parameter set (and the current defaults), the grid,
    each adversary's row, the evidence behind each band and minGain, and the chain's check."""
    current = param_name({k: DEFAULTS[k] for k in SWEPT})
    best = rank(results)[0]
    shard = len(Lab(spec, 0.5, args.seeds[0]).holdouts[0])
    lines = [
        "# Review v2 defaults: the review sweep",
        "",
        f"`{command_line(argv)}` ({minutes:.0f} min on 2 shared cores)",
        "",
        f"Task {spec.name}; K in {args.ks}, Dirichlet alpha in {args.alphas} (100: IID in "
        f"effect), seeds {args.seeds}; {args.rounds_per_k} passes (K rounds each), adversaries "
        f"joining after {args.warmup_per_k}; three honest validators, each scoring the child and the champion on "
        f"its own held-out shard of {shard} digits; the score they commit: {args.score} "
        f"(`derelay.lab.scores`; with accuracy one sample moves a score by {10_000 // shard} bp); "
        f"honest relayers start their turns from {STARTS[args.start]}. "
        "Every figure comes from `mirror_relay`, "
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
        f"## One class's recall: would a per-class review hold the targeted poisoner? ({best})",
        "",
        "Each child's worst class as the validators see it: on each validator's shard, the "
        "largest drop of one class's recall from the champion's to the child's; the lower median "
        "over the validators (points of recall). A per-class review would hold a child whose worst "
        "class lost more than a tolerance; the table gives the share of honest turns (after "
        "warm-up) and of the targeted poisoner's turns that each tolerance would hold. Honest "
        "relayers on skewed shards forget classes they do not hold, so the two overlap.",
        "",
        *render_class_drops(results[best]),
        f"## The targeted poisoner per seed ({best})",
        "",
        "Its class (its commonest), its share of that class among every relayer's examples (its "
        "held-out part counted), and the champion's recall of the class over the last two passes "
        "in the reference (the poisoner idle) and under attack (points). Where the poisoner holds "
        "most of a class, the other relayers hardly teach it, so what it removes stays removed.",
        "",
        *render_targeted(results[best]),
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
