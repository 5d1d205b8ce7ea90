"""Money out of the contract: `derelay withdraw` and `derelay model get` (a paid licence)."""

from __future__ import annotations

from pathlib import Path

import click

from derelay.cli.options import (
    deployments_option,
    eth,
    key_options,
    limits,
    open_contract,
    rpc_option,
    store_options,
)
from derelay.deploy.tasks import load_spec, parse_amount
from derelay.trainer.cid import Cid
from derelay.trainer.store import open_store


@click.command()
@rpc_option
@deployments_option
@key_options
@click.option(
    "--task", "task_ids", type=int, multiple=True, help="Also claim royalties of this task first."
)
def withdraw(
    rpc: str,
    deployments: Path,
    keystore: Path | None,
    dev_account: int | None,
    task_ids: tuple[int, ...],
) -> None:
    """Send this account its withdrawable balance (claiming royalties of --task first)."""
    relay = open_contract(rpc, deployments, keystore, dev_account)
    for tid in task_ids:
        if relay.account(tid, relay.client.address).pending_royalties:
            relay.claim_royalties(tid)
    amount = relay.withdrawable(relay.client.address)
    relay.withdraw()
    click.echo(f"withdrew {eth(amount)} to {relay.client.address}")


@click.group()
def model() -> None:
    """Use a task's model."""


@model.command("get")
@rpc_option
@deployments_option
@key_options
@store_options
@click.argument("task_id", type=int)
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), required=True)
@click.option("--pay", help="Amount to pay (default: the task's usage fee).")
def model_get(
    rpc: str,
    deployments: Path,
    keystore: Path | None,
    dev_account: int | None,
    ipfs: str | None,
    store_dir: Path,
    task_id: int,
    out: Path,
    pay: str | None,
) -> None:
    """Pay the usage fee (a recorded licence), then fetch and verify the champion's weights into
    --out: the best model accepted so far, not the head (which may trail it by the advance band)."""
    from derelay.trainer.models import load_weights

    relay = open_contract(rpc, deployments, keystore, dev_account)
    store = open_store(ipfs, store_dir, limits().content_bytes)
    params = relay.task_params(task_id)
    spec = load_spec(store, params.spec_cid, limits())
    champion_cid, score = relay.champion(task_id)
    champion = Cid.from_bytes(champion_cid)
    weights = store.get(champion, max_bytes=limits().weights_bytes)
    load_weights(weights, spec, limits().weights_bytes)
    amount = parse_amount(pay) if pay else params.usage_fee
    relay.pay_for_model(task_id, amount)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(weights)
    tmp.replace(out)
    head_cid, head_score = relay.head(task_id)
    head = (
        "it is also the head"
        if head_cid == champion_cid
        else f"the head {Cid.from_bytes(head_cid)} scores {head_score} bp"
    )
    click.echo(
        f"paid {eth(amount)}; wrote the champion of task {task_id} to {out} "
        f"({len(weights)} bytes, {champion}, score {score} bp; {head})"
    )
