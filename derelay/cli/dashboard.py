"""`derelay dashboard`: the live web page of a task."""

from __future__ import annotations

from pathlib import Path

import click

from derelay.cli.options import deployments_option, rpc_option


@click.command()
@rpc_option
@deployments_option
@click.argument("task_id", type=int, required=False)
@click.option("--port", type=int, default=8800, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
def dashboard(rpc: str, deployments: Path, task_id: int | None, port: int, host: str) -> None:
    """A live web page of a task, rebuilt from the chain: accuracy, lineage, queue, reviews, payouts, pool."""
    from derelay.dashboard.server import run_dashboard

    run_dashboard(rpc, deployments, task_id, port, host=host, echo=click.echo)
