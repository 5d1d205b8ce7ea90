"""`derelay deploy` and `derelay task`: deploy the contract, publish, fund and show tasks."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from derelay.cli.options import (
    deployments_option,
    eth,
    key_options,
    limits,
    open_contract,
    rpc_option,
    signer,
    store_options,
)
from derelay.deploy.deployer import deploy_contract
from derelay.deploy.tasks import (
    parse_amount,
    parse_param_overrides,
    publish_task,
    read_spec_file,
)
from derelay.trainer.chain import observed_block_time
from derelay.trainer.cid import Cid
from derelay.trainer.contract import TaskParams
from derelay.trainer.spec import digits_mlp_spec
from derelay.trainer.store import open_store


@click.command()
@rpc_option
@deployments_option
@key_options
def deploy(rpc: str, deployments: Path, keystore: Path | None, dev_account: int | None) -> None:
    """Deploy the DeRelay contract and record it in deployments/<chainId>.json."""
    client, _ = signer(rpc, keystore, dev_account)
    contract, record = deploy_contract(client, deployments)
    click.echo(
        f"DeRelay deployed at {contract.address} on chain {record.chain_id} (block {record.block})"
    )


@click.group()
def task() -> None:
    """Create, fund and inspect tasks."""


@task.command("create")
@rpc_option
@deployments_option
@key_options
@store_options
@click.option(
    "--spec-file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Task spec JSON (default: digits MLP).",
)
@click.option("--fund", "funding", default="1ether", show_default=True, help="Initial pool.")
@click.option(
    "--param",
    "params",
    multiple=True,
    help="Override a task parameter: name=value (repeatable), e.g. slash_band=3000, "
    "advance_band=280, max_misses=3, slash_miss_bp=500, min_gain=170; `derelay task show` "
    "lists them all.",
)
@click.option("--genesis-seed", type=int, default=0, show_default=True)
@click.option(
    "--data-seed",
    type=int,
    default=0,
    show_default=True,
    help="Seed of the reference held-out split.",
)
def task_create(
    rpc: str,
    deployments: Path,
    keystore: Path | None,
    dev_account: int | None,
    ipfs: str | None,
    store_dir: Path,
    spec_file: Path | None,
    funding: str,
    params: tuple[str, ...],
    genesis_seed: int,
    data_seed: int,
) -> None:
    """Publish a task: spec and genesis weights to the store, parameters and pool to the chain."""
    spec = read_spec_file(spec_file, limits().spec_bytes) if spec_file else digits_mlp_spec()
    relay = open_contract(rpc, deployments, keystore, dev_account)
    overrides = parse_param_overrides(list(params))
    warning = window_warning(relay.client.w3, overrides)
    if warning:
        click.echo(f"warning: {warning}", err=True)
    published = publish_task(
        relay,
        open_store(ipfs, store_dir),
        spec,
        parse_amount(funding),
        overrides,
        genesis_seed=genesis_seed,
        data_seed=data_seed,
    )
    click.echo(
        f"task {published.task_id} created: spec {published.spec_cid}, genesis {published.genesis_cid} "
        f"(score {published.genesis_score} bp)"
    )


# A window of fewer blocks than this is missed by a transaction that waits a block or two (a full
# block, a fee bump, a reorg) plus a worker's tick.
MIN_WINDOW_BLOCKS = 5


def window_warning(w3: Any, overrides: dict[str, int]) -> str:
    """One line when a task window is shorter than `MIN_WINDOW_BLOCKS` blocks at the chain's
    observed block time, else ""."""
    block_time = observed_block_time(w3)
    if not block_time:
        return ""
    params = replace(TaskParams(spec_cid=b"", genesis_cid=b"", genesis_score=0), **overrides)
    names = ("turn_duration", "commit_window", "reveal_window")
    short = [
        f"{name}={getattr(params, name)} s"
        for name in names
        if getattr(params, name) < MIN_WINDOW_BLOCKS * block_time
    ]
    if not short:
        return ""
    return (
        f"{', '.join(short)}: shorter than {MIN_WINDOW_BLOCKS} blocks of this chain "
        f"({block_time:.1f} s each), so a transaction a block late misses it; give each window "
        f"at least {MIN_WINDOW_BLOCKS * block_time:.0f} s (README: windows for 2 s and 12 s chains)"
    )


@task.command("fund")
@rpc_option
@deployments_option
@key_options
@click.argument("task_id", type=int)
@click.argument("amount")
def task_fund(
    rpc: str,
    deployments: Path,
    keystore: Path | None,
    dev_account: int | None,
    task_id: int,
    amount: str,
) -> None:
    """Add AMOUNT (wei, or e.g. 2ether) to a task's pool."""
    relay = open_contract(rpc, deployments, keystore, dev_account)
    relay.fund(task_id, parse_amount(amount))
    click.echo(f"task {task_id} pool: {eth(relay.task_state(task_id).pool)}")


@task.command("show")
@rpc_option
@deployments_option
@click.argument("task_id", type=int)
@click.option("--json", "as_json", is_flag=True)
def task_show(rpc: str, deployments: Path, task_id: int, as_json: bool) -> None:
    """A task's parameters."""
    relay = open_contract(rpc, deployments)
    params = relay.task_params(task_id)
    if as_json:
        document = params.to_json_dict()
        document["spec_cid"] = str(Cid.from_bytes(params.spec_cid))
        document["genesis_cid"] = str(Cid.from_bytes(params.genesis_cid))
        click.echo(json.dumps(document, indent=2))
        return
    click.echo(f"task {task_id} (publisher {relay.publisher_of(task_id)})")
    for name, value in params.to_json_dict().items():
        if name.endswith("_cid"):
            value = str(Cid.from_bytes(getattr(params, name)))
        click.echo(f"  {name:20} {value}")
