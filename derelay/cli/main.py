"""`derelay`: the command line of DeRelayL.

Every user mistake ends in one line on stderr that says what was wrong and what to do, and exit
status 1; no traceback. Keys never come from arguments: see `derelay.trainer.keys`.
"""

from __future__ import annotations

import logging
import sys
from typing import NoReturn

import click

from derelay.cli import account, dashboard, dev, lab, money, query, tasks, worker
from derelay.cli.options import limit_options
from derelay.trainer.errors import DeRelayError
from derelay.trainer.limits import Limits


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@limit_options
@click.version_option(package_name="derelay")
@click.pass_context
def cli(ctx: click.Context, verbose: int, **sizes: int | None) -> None:
    """DeRelayL: train one model in turns, paid on-chain, weights on IPFS.

    The --max-* limits bound what is read from others (specs, weights, store content, RPC
    replies); they go before the command, e.g. `derelay --max-weights-bytes 16MiB worker ...`.
    """
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    ctx.obj = Limits(**{name: size for name, size in sizes.items() if size is not None})


for command in (
    dev.compile_cmd,
    dev.chain,
    dev.ipfs,
    account.account,
    tasks.deploy,
    tasks.task,
    query.status,
    query.lineage,
    query.payouts,
    money.withdraw,
    money.model,
    worker.worker,
    lab.demo,
    lab.simulate_cmd,
    dashboard.dashboard,
):
    cli.add_command(command)


# The core's errors name the setting to check (`DeRelayError.setting`); this is its option here.
OPTION_OF_SETTING = {
    "rpc": "--rpc",
    "deployments": "--deployments; `derelay deploy` writes the record",
    "rpc_reply_bytes": "--max-rpc-reply-bytes",
    "train_data": "--shard or --data",
    "holdout": "--holdout-shard",
    "keystore": "--keystore",
    "ipfs": "--ipfs",
    "block_time": "--block-time",
}


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI (on `argv`, default the process's); every error ends in one line
    on stderr, never a traceback."""
    try:
        cli.main(args=argv, prog_name="derelay", standalone_mode=False)
    except click.exceptions.Abort:
        _exit("aborted", 130)
    except click.UsageError as exc:
        help_hint = f" (see `{exc.ctx.command_path} -h`)" if exc.ctx else ""
        _exit(f"error: {exc.format_message()}{help_hint}", exc.exit_code)
    except click.ClickException as exc:
        _exit(f"error: {exc.format_message()}", exc.exit_code)
    except DeRelayError as exc:
        option = OPTION_OF_SETTING.get(exc.setting)
        _exit(f"error: {exc}" + (f" (option {option})" if option else ""), 1)
    except KeyboardInterrupt:
        _exit("interrupted", 130)


def _exit(line: str, status: int) -> NoReturn:
    """Print `line` as one line on stderr (a path or value quoted in it may hold line breaks)."""
    click.echo(line.replace("\r", "\\r").replace("\n", "\\n"), err=True)
    sys.exit(status)
