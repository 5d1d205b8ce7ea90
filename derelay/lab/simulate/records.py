"""What a simulation records: one row per round, one record per participant, the accuracy curves,
the all-honest reference and each seed's result."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from derelay.trainer.contract import (
    DeRelayContract,
    TaskParams,
)
from derelay.trainer.data import Dataset
from derelay.trainer.payouts import Payout
from derelay.trainer.spec import TaskSpec, digits_mlp_spec


@dataclass
class SimulatedRound:
    """One round as rounds.csv shows it. Scores are the validators' (bp, on their held-out shards);
    accuracies are on the common test split that nobody trains or reviews on."""

    round: int
    relayer: str
    behaviour: str
    verdict: str  # accepted, held, rejected, void, skipped
    crowned: bool  # accepted with delta >= min_gain: the child became the champion
    child_score: int  # lower median of the revealed child scores; 0 when skipped or void
    champion_score: int  # lower median of the revealed champion scores; 0 when skipped or void
    delta: int  # lower median of the paired differences (child - champion), which decides
    progress: int  # lower median of the paired differences (child - parent), which bounds pay
    reveals: int
    ballots: str  # revealed (child/champion/parent) triples, "c/h/p;c/h/p"
    champion_before: int  # on-chain champion score when the round started
    champion_after: int  # on-chain champion score after the round
    head_score: int  # on-chain head score after the round (bp)
    head_before: int  # head's test accuracy before the round (bp)
    head_accuracy: int  # head's test accuracy after the round (bp)
    head_gap: int  # after the round: lower median over honest validators of head - champion (bp)
    champion_accuracy: int  # champion's test accuracy after the round (bp)
    child_accuracy: int | None  # the submission's test accuracy (bp)
    gain: int  # child accuracy minus the champion's before, crowned turns (bp)
    samples: int  # samples actually trained on in this turn
    honest_samples: int  # cumulative samples trained by honest relayers
    reward: int  # wei
    slashed: int  # wei the relayer lost this round
    gas: int  # wei the relayer spent on gas this round
    pool: int  # wei in the pool after the round
    attack: str  # an adversary's kind of child (walk, subtle, targeted, dip, recover), else ""
    mix: float | None  # share of the bad model in an adversary's child
    estimate: int | None  # the adversary's own paired estimate of its child (bp)


@dataclass
class Participant:
    """One account of the simulation and what happened to it."""

    name: str
    role: str  # relayer, validator, keeper
    behaviour: str  # a RELAYER_BEHAVIOURS or VALIDATOR_BEHAVIOURS entry, or keeper
    address: str
    relay: DeRelayContract
    data: Dataset | None = None  # what it trains on (relayers) or scores on (validators)
    estimate: Dataset | None = None  # an adversary's own held-out part, for its estimates
    pair: tuple[int, int] | None = None  # a targeted poisoner's (source, dest) classes
    commitment: bytes = b""
    turns: int = 0
    accepted: int = 0
    rejected: int = 0
    skipped: int = 0
    reviews: int = 0
    seats: int = 0  # times it took a seat (validators)
    seats_lost: int = 0  # times the contract took its seat away (validators)
    seated: bool = False
    queued: bool = False
    left_round: int | None = None
    left_reason: str = ""
    contribution: int = 0  # crowned turns: sum of min(gain over champion, over parent) > 0 (bp)
    samples: int = 0  # samples it trained on


@dataclass
class Curve:
    """Accuracy of one method against samples processed (and rounds, where it has rounds)."""

    method: str
    samples: list[int]
    accuracy: list[int]  # bp on the common test split
    rounds: list[int] | None = None


@dataclass(frozen=True)
class ReferenceTurn:
    """One round of the all-honest relay (`honest_reference`)."""

    round: int
    verdict: str
    head_accuracy: int  # test accuracy (bp)
    champion_accuracy: int  # test accuracy (bp)
    champion: bytes  # the champion's weights after the round


@dataclass
class SeedResult:
    """Everything one seed's run produced."""

    seed: int
    out_dir: Path
    task_id: int
    genesis_score: int
    genesis_accuracy: int
    rows: list[SimulatedRound]
    participants: list[Participant]
    flows: list[tuple[int, str, str, int]]  # (round, address, kind, wei); kinds of FLOW_KINDS
    gas: list[tuple[int, str, int]]  # (round, address, wei) of every transaction sent
    payouts: list[Payout]
    curves: dict[str, Curve]
    params: TaskParams
    seconds: float
    spec: TaskSpec = field(default_factory=digits_mlp_spec)
    champions: list[bytes] = field(default_factory=list)  # champion weights after each round
    test: Dataset | None = None  # the common test split
    reference: list[ReferenceTurn] = field(
        default_factory=list
    )  # the all-honest relay, round by round
    timings: dict[str, float] = field(default_factory=dict)
    summary: SeedSummary | None = None  # set by `summarize`


@dataclass(frozen=True)
class BehaviourSummary:
    """What the members of one behaviour tried and got over a seed (wei, bp)."""

    members: int
    turns: int
    verdicts: dict[str, int]  # turns per verdict of VERDICTS
    crowned: int
    damage_per_turn: float | None  # head test accuracy lost per turn (bp)
    worst_damage: int | None
    rewards: int
    fees: int
    royalties: int
    slashed: int
    compute: int
    gas: int
    net: int
    max_net: int  # the best-off member's net
    reviews: int
    seats: int
    seats_lost: int


@dataclass(frozen=True)
class HeadVsChampion:
    """How far the head fell below the champion, and accepted children below the advance band."""

    min_test_gap: int
    min_validator_gap: int
    accepted_below_band: int


@dataclass(frozen=True)
class LastTwoPasses:
    """Mean accuracies over the last two passes of the queue (bp), beside the all-honest relay."""

    from_round: int
    champion: float | None
    head: float | None
    reference_champion: float | None


@dataclass(frozen=True)
class TargetedSummary:
    """The recall of a targeted poisoner's source class by the champion (and the reference's)."""

    name: str
    source: int
    dest: int
    champion_recall_end: float | None
    champion_recall_last2: float | None
    reference_recall_end: float | None
    reference_recall_last2: float | None


@dataclass(frozen=True)
class PoolSummary:
    """The task pool (wei) at the start, at the end and at its lowest."""

    start: int
    end: int
    min: int


# SeedSummary fields that exist only where the baselines ran (a centralized accuracy to aim at).
TARGET_FIELDS = ("target_90", "relay_rounds_to_90", "samples_to_90", "fedavg_rounds_to_90")


@dataclass(frozen=True)
class SeedSummary:
    """The figures of one seed (`summarize`), as summary.json holds them. Ratios are (count, of);
    accuracies bp on the test split; money wei, gas counted."""

    seed: int
    rounds: int
    honest_samples: int
    relay_last_k_mean: float
    final_accuracy: dict[str, float]  # by method, at the relay's sample budget
    genesis_accuracy: int
    target_90: float | None  # 90% of the centralized accuracy, with the baselines
    relay_rounds_to_90: int | None
    samples_to_90: dict[str, int | None] | None
    fedavg_rounds_to_90: int | None
    honest_accepted: tuple[int, int]
    honest_not_slashed: tuple[int, int]
    poisoned_rejected: tuple[int, int]
    free_rider_accepted: tuple[int, int]
    stalls_slashed: tuple[int, int]
    profit_by_behaviour: dict[str, int]
    mean_profit_by_behaviour: dict[str, float]
    gas_by_behaviour: dict[str, int]
    behaviours: dict[str, BehaviourSummary]
    honest_in_profit: tuple[int, int]
    head_vs_champion: HeadVsChampion
    last_two_passes: LastTwoPasses
    targeted: list[TargetedSummary]
    churn: dict[str, tuple[int | None, str]]  # who left: (round, reason)
    pool: PoolSummary
    jain_reward_per_gain: float
    jain_reward_per_sample: float
    jain_n: int
    gini_rewards_relayers: float
    gini_rewards_honest: float
    rewards_by_behaviour: dict[str, int]
    seconds: float
    timings: dict[str, float]

    def to_json(self) -> dict[str, Any]:
        """Every field in order, those of TARGET_FIELDS only where the baselines ran."""
        skip = TARGET_FIELDS if self.target_90 is None else ()
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in skip}
