"""The mirrored relay: `mirror_relay` replays a relay of `derelay.lab.simulate` off-chain with the
contract's review and reward arithmetic, and `scenario_config` sets up each scenario's relay."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from derelay.lab.metrics import BP, lower_median, paid_in_band, relay_reward, review
from derelay.lab.review_sweep.lab import Lab, Scores
from derelay.lab.simulate import RELAYER_COUNTS, SimConfig
from derelay.trainer.contract import TaskParams

DEFAULTS = {f: TaskParams.__dataclass_fields__[f].default for f in TaskParams.field_names()[3:]}
# What relayer K-1 does in each scenario ("honest": K honest relayers).
SCENARIOS = ("honest", "subtle", "targeted", "walker", "dipper", "poisoner")
WALKER_PLACES = 3  # the walker's consecutive queue places (Sybils): three turns in a row per pass


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
    # The child's worst class as the validators see it: lower median over them of the largest
    # drop of a class's recall from the champion's (bp). Mirror only (None on chain, and for a
    # turn without a child).
    class_drop: int | None = None


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
    only, no churn and no consumer payments (what the mirror cannot replay). An honest relayer
    trains from `lab.start_of` (the head, unless the lab was given another start rule).

    `idle`: every turn but the honest relayers' passes and changes nothing ("skipped", no slash):
    the relay as it would have gone had the others done nothing, the same honest turns in the same
    rounds (the all-honest reference that `derelay.lab.simulate` also draws)."""
    if (config.alpha, config.seeds) != (lab.alpha, (lab.seed,)):
        raise ValueError("the lab holds another alpha's or seed's data")
    if config.validators != lab.validators or config.seats != config.validators:
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
        crowned, class_drop = False, None
        acts = not idle or who.behaviour == "honest"
        if acts and who.behaviour == "staller":
            slashed = stakes[who.index] * p["slash_timeout_bp"] // BP
            pool += slashed - slashed * p["keeper_bounty_bp"] // BP
        elif acts:
            start = lab.start_of(head, champion, head_gap) if who.behaviour == "honest" else head
            child, samples, mix = lab.child(
                config, who, round_, turns_of[who.index], start, champion, p["advance_band"]
            )
            c, h, parent = lab.scores(child), lab.scores(champion), lab.scores(head)
            ballots = list(zip(c.holdouts, h.holdouts, parent.holdouts, strict=True))
            outcome = review(
                ballots, p["quorum"], p["slash_band"], p["advance_band"], p["min_gain"]
            )
            verdict, delta, crowned = outcome.verdict, outcome.delta, outcome.crowned
            class_drop = worst_class_drop(c, h)
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
                class_drop,
            )
        )  # fmt: skip
    return Relay(config, p, genesis, out, champion)


def worst_class_drop(child: Scores, champion: Scores) -> int:
    """Lower median over the validators of the largest drop of one class's recall from the
    champion's to the child's, on each validator's shard (bp): what a per-class review would
    decide on."""
    return lower_median(
        [
            max(h - c for h, c in zip(hs, cs, strict=True))
            for hs, cs in zip(champion.holdout_recalls, child.holdout_recalls, strict=True)
        ]
    )


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
        **counts, validators=3, lazy_validators=0, parrots=0, squatters=0, rounds=rounds_per_k * k,
        warmup=warmup_per_k * k, alpha=alpha, seeds=(seed,), churn_after=None,
        consumer_payment=0, baselines=False, params=tuple(sorted((params or {}).items())),
    )  # fmt: skip
