"""Build and dev services: `derelay compile`, `derelay chain`, `derelay ipfs`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from derelay.trainer.errors import ConfigError


@click.command("compile")
@click.option("--check", is_flag=True, help="Recompile and fail if the committed artifacts differ.")
def compile_cmd(check: bool) -> None:
    """Compile the contracts into derelay/trainer/artifacts (package data)."""
    from derelay.deploy import build

    if not build.CONTRACTS_DIR.is_dir():
        raise ConfigError(
            "derelay compile needs the repository's contracts/ sources and its npm solc and "
            "OpenZeppelin (ganache/node_modules), which an installed derelay does not have: clone "
            "the DeRelayL repository and run `make install` in it; this install already has the "
            "compiled contracts"
        )
    if check:
        output = build.compile_contracts()
        for name, document in build.artifacts_from(output).items():
            committed = (build.ARTIFACTS_DIR / f"{name}.json").read_text()
            if committed != build.render(document):
                raise ConfigError(
                    f"artifact {name}.json differs from a fresh compile: run `derelay compile`"
                )
        click.echo("artifacts match a fresh compile")
        return
    for path in build.write_artifacts():
        click.echo(f"wrote {path}")


@click.command()
@click.option(
    "--engine",
    type=click.Choice(["ganache", "anvil"]),
    default="ganache",
    show_default=True,
    help="ganache (chain id 1337) or anvil (Foundry, chain id 31337); same dev accounts on both.",
)
@click.option(
    "--block-time",
    type=float,
    help="Seconds between blocks, like a real chain (2 for an L2, 12 for Ethereum); default: "
    "1 on ganache, a block per transaction on anvil.",
)
@click.option("--port", type=int, default=8545, show_default=True)
@click.option(
    "--db",
    type=click.Path(path_type=Path, file_okay=False),
    help="Where the chain persists (default .derelay/chain, or .derelay/anvil for anvil).",
)
@click.option("--accounts", type=int, default=10, show_default=True)
def chain(engine: str, block_time: float | None, port: int, db: Path | None, accounts: int) -> None:
    """Run the dev chain (deterministic dev accounts, persistent) until Ctrl-C."""
    from derelay.trainer.services import ENGINE_CHAIN_IDS, start_chain

    db = db or Path(".derelay/chain" if engine == "ganache" else ".derelay/anvil")
    service = start_chain(engine, db, port, block_time=block_time, accounts=accounts)
    default = "a block a second" if engine == "ganache" else "a block per transaction"
    blocks = f"a block every {block_time:g} s" if block_time else default
    click.echo(
        f"dev chain ({engine}, chain id {ENGINE_CHAIN_IDS[engine]}, {blocks}) at {service.url}, "
        f"data in {db}; Ctrl-C stops it"
    )
    _wait_for_interrupt(service)


@click.command()
@click.option("--port", type=int, default=5001, show_default=True)
@click.option(
    "--repo",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path(".derelay/ipfs"),
    show_default=True,
)
def ipfs(port: int, repo: Path) -> None:
    """Run the dev IPFS node (js-ipfs, Kubo RPC API, offline) until Ctrl-C."""
    from derelay.trainer.services import start_ipfs

    service = start_ipfs(repo, port=port)
    click.echo(f"dev IPFS node API at {service.url} (repo {repo}); Ctrl-C stops it")
    _wait_for_interrupt(service)


def _wait_for_interrupt(service: Any) -> None:
    import signal
    import threading

    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    try:
        while not done.wait(1.0):
            if service.process.poll() is not None:
                raise ConfigError(f"the service exited with status {service.process.returncode}")
    finally:
        service.stop()
