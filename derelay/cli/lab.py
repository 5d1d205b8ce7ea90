"""Relays run for study on the embedded chain and store: `derelay demo`, `derelay simulate`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from derelay.deploy.tasks import parse_param_overrides
from derelay.trainer.spec import BUILTIN_TASKS


@click.command()
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("out/demo"),
    show_default=True,
)
@click.option("--rounds", type=int, default=20, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def demo(out: Path, rounds: int, seed: int) -> None:
    """A relay on the embedded chain and store: 5 relayers, 3 validators, a keeper; no set-up."""
    from derelay.lab.demo import run_demo

    result = run_demo(out, rounds=rounds, seed=seed, echo=click.echo)
    click.echo(f"demo output in {result.out_dir.resolve()}")


@click.command("simulate")
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="TOML file of simulation settings; flags override it.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("out/simulate"),
    show_default=True,
)
@click.option("-k", "--participants", type=int, help="Relayers K; honest = K minus the others.")
@click.option("--honest", type=int, help="Honest relayers.")
@click.option("--free-riders", type=int)
@click.option("--poisoners", type=int)
@click.option("--stallers", type=int)
@click.option("--validators", type=int, help="Honest validators.")
@click.option("--lazy-validators", type=int)
@click.option("--parrots", type=int, help="Validators that reveal the last medians unscored.")
@click.option("--rounds", type=int)
@click.option(
    "--task", type=click.Choice(list(BUILTIN_TASKS)), help="The task relayed (default digits)."
)
@click.option("--alpha", help="Dirichlet alpha of relayer shards, or iid.")
@click.option("--seed", "seeds", type=int, multiple=True, help="Seed (repeatable; default 0).")
@click.option("--warmup", type=int, help="Rounds before the adversaries join.")
@click.option("--compute-cost", help="Cost of one trained turn, e.g. 0.001ether.")
@click.option(
    "--churn-after", type=int, help="Unprofitable after this many turns: leave (0: never)."
)
@click.option("--poison", type=click.Choice(["label_flip", "random", "alternate"]))
@click.option(
    "--param", "params", multiple=True, help="Override a task parameter: name=value (repeatable)."
)
@click.option("--no-baselines", is_flag=True, help="Skip centralized, FedAvg and local-only.")
def simulate_cmd(
    config_file: Path | None,
    out: Path,
    seeds: tuple[int, ...],
    params: tuple[str, ...],
    no_baselines: bool,
    **flags: Any,
) -> None:
    """Many participants and behaviours on the real contract (embedded chain) with real training:
    CSV, plots and a report on efficacy, sustainability and fairness."""
    from derelay.lab.simulate import SimConfig, simulate

    extra: dict[str, Any] = {k: v for k, v in flags.items() if v is not None}
    if seeds:
        extra["seeds"] = list(seeds)
    if params:
        extra["params"] = parse_param_overrides(list(params))
    if no_baselines:
        extra["baselines"] = False
    config = (
        SimConfig.from_toml(config_file, extra) if config_file else SimConfig.from_mapping(extra)
    )
    simulate(config, out, echo=click.echo)
    click.echo(f"simulation output in {out.resolve()}")
