"""`derelay worker`: relayer, validator and keeper of one task."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from derelay.cli.options import (
    deployments_option,
    key_options,
    limits,
    open_contract,
    rpc_option,
    store_options,
)
from derelay.deploy.tasks import load_spec, parse_amount
from derelay.trainer.contract import DeRelayContract
from derelay.trainer.errors import ConfigError
from derelay.trainer.store import open_store


@click.command()
@rpc_option
@deployments_option
@key_options
@store_options
@click.option("--task", "task_id", type=int, required=True)
@click.option("--roles", default="relayer,validator,keeper", show_default=True)
@click.option("--shard", help="Relayer training shard i/N of the spec's dataset.")
@click.option("--holdout-shard", help="Validator held-out shard i/N of the spec's dataset.")
@click.option(
    "--alpha",
    type=float,
    default=0.5,
    show_default=True,
    help="Dirichlet alpha of relayer shards (0: IID).",
)
@click.option(
    "--data",
    "data_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Training data .npz (X, y) instead of --shard.",
)
@click.option("--data-seed", type=int, default=0, show_default=True)
@click.option(
    "--journal",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Journal file (default .derelay/journal-<chain id>-<contract>-<address>.json).",
)
@click.option(
    "--device", default="cpu", show_default=True, type=click.Choice(["cpu", "cuda", "auto"])
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--poll", type=float, default=2.0, show_default=True, help="Seconds between ticks.")
@click.option("--stake", help="Relayer stake (default: the task's minStake).")
@click.option("--progress/--no-progress", default=False, help="Progress bars for training.")
def worker(
    rpc: str,
    deployments: Path,
    keystore: Path | None,
    dev_account: int | None,
    ipfs: str | None,
    store_dir: Path,
    task_id: int,
    roles: str,
    shard: str | None,
    holdout_shard: str | None,
    alpha: float,
    data_path: Path | None,
    data_seed: int,
    journal: Path | None,
    device: str,
    seed: int,
    poll: float,
    stake: str | None,
    progress: bool,
) -> None:
    """Run a worker: relayer, validator and keeper of one task, until Ctrl-C."""
    from derelay.trainer.data import load_dataset
    from derelay.trainer.journal import Journal
    from derelay.trainer.shards import ShardPlan, parse_shard, relayer_shards, validator_shards
    from derelay.trainer.worker import Roles, Worker, WorkerConfig, run_scheduled

    role_set = Roles.parse(roles)
    relay = open_contract(rpc, deployments, keystore, dev_account)
    store = open_store(ipfs, store_dir, limits().content_bytes)
    spec = load_spec(store, relay.task_params(task_id).spec_cid, limits())
    train_data = holdout = None
    if role_set.relayer:
        if data_path is not None:
            train_data = load_dataset("npz", data_path)
        elif shard is not None:
            index, count = parse_shard(shard)
            plan = ShardPlan(relayers=count, validators=1, alpha=alpha or None, seed=data_seed)
            train_data = relayer_shards(spec, plan)[index]
        else:
            raise ConfigError("a relayer needs training data: pass --shard i/N or --data FILE.npz")
    if role_set.validator:
        if holdout_shard is None:
            raise ConfigError("a validator needs held-out data: pass --holdout-shard i/N")
        index, count = parse_shard(holdout_shard)
        holdout = validator_shards(spec, ShardPlan(relayers=1, validators=count, seed=data_seed))[
            index
        ]
    address = relay.client.address
    journal_path = journal or _default_journal(relay)
    config = WorkerConfig(
        task_id=task_id,
        roles=role_set,
        relayer_stake=parse_amount(stake) if stake else None,
        seed=seed,
        device=device,
        poll_seconds=poll,
        progress=progress,
        weights_bytes=limits().weights_bytes,
    )
    runner = Worker(relay, store, spec, config, Journal(journal_path), train_data, holdout)
    logging.getLogger("derelay").setLevel(min(logging.getLogger().level, logging.INFO))
    click.echo(
        f"worker {address} on task {task_id} ({roles}); journal {journal_path}; Ctrl-C stops it"
    )
    run_scheduled(runner)
    click.echo("worker stopped")


def _default_journal(relay: DeRelayContract) -> Path:
    """`.derelay/journal-<chain id>-<contract>-<address>.json`. A journal holds one deployment's
    turns and ballots, and task 1 of another deployment (the other dev engine, a redeployed
    contract) is not this one's: a shared journal made workers resend old children and skip
    ballots, and validators were charged for the misses. A journal from before this naming is
    not guessed at: its owner says which deployment it belongs to."""
    from derelay.trainer.chain import chain_id

    address = relay.client.address
    path = Path(f".derelay/journal-{chain_id(relay.client.w3)}-{relay.address}-{address}.json")
    legacy = Path(f".derelay/journal-{address}.json")
    if legacy.exists() and not path.exists():
        raise ConfigError(
            f"{legacy} is a journal from an earlier version, named for no deployment: pass "
            f"--journal {legacy} if it belongs to contract {relay.address} on this chain, or "
            "else move it aside once none of its turns or commitments is in flight"
        )
    return path
