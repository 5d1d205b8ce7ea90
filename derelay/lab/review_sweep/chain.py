"""On chain: the sweep's relays through the real contract (`derelay.lab.simulate.Simulation`),
compared turn by turn with the mirror's (`chain_relay`, `mismatches`, `confirm_on_chain`)."""

from __future__ import annotations

import itertools
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from derelay.lab.review_sweep.lab import Lab
from derelay.lab.review_sweep.mirror import DEFAULTS, Relay, Turn, mirror_relay, scenario_config
from derelay.lab.simulate import SimConfig, Simulation
from derelay.trainer.spec import TaskSpec


def chain_relay(lab: Lab, config: SimConfig, out_dir: Path) -> Relay:
    """`config` through the real contract (`derelay.lab.simulate.Simulation`, one seed), as a Relay:
    verdicts, scores, rewards and slashes from the chain's events."""
    (seed,) = config.seeds
    with tempfile.TemporaryDirectory(prefix="derelay-sweep-") as store:
        result = Simulation(
            config, seed, out_dir, Path(store), echo=lambda line: None, spec=lab.spec
        ).run()
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
