"""`derelay`: the command line of DeRelayL.

Every user mistake ends in one line on stderr that says what was wrong and what to do, and exit
status 1; no traceback. Keys never come from arguments: see `derelay.trainer.keys`.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import fields, replace
from pathlib import Path
from typing import Any, NoReturn

import click
from eth_account.signers.local import LocalAccount

from derelay.deploy.deployer import DEPLOYMENTS_DIR, deploy_contract, load_deployment
from derelay.deploy.tasks import (
    load_spec,
    parse_amount,
    parse_param_overrides,
    publish_task,
    read_spec_file,
)
from derelay.trainer.chain import (
    ChainClient,
    TxOptions,
    chain_id,
    connect,
    describe_endpoint,
    observed_block_time,
)
from derelay.trainer.cid import Cid
from derelay.trainer.contract import ETHER, DeRelayContract, Status, TaskParams, decoder_for
from derelay.trainer.errors import ConfigError, DeRelayError
from derelay.trainer.keys import create_keystore, load_account
from derelay.trainer.limits import DEFAULT_LIMITS, Limits, parse_size
from derelay.trainer.payouts import Payout, task_payouts
from derelay.trainer.spec import digits_mlp_spec
from derelay.trainer.store import open_store

DEFAULT_RPC = "http://127.0.0.1:8545"
DEFAULT_STORE = Path(".derelay/store")

rpc_option = click.option(
    "--rpc",
    envvar="DERELAY_RPC",
    default=DEFAULT_RPC,
    show_default=True,
    help="JSON-RPC URL of the chain.",
)
deployments_option = click.option(
    "--deployments",
    type=click.Path(path_type=Path, file_okay=False),
    default=DEPLOYMENTS_DIR,
    show_default=True,
    help="Folder of deployment records (<chainId>.json).",
)


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    ctx.meta[f"derelay.{param.name}"] = value
    return value


def _max_fee(text: str) -> int:
    """Wei per gas from "30" (gwei) or an amount with its unit ("30gwei", "30000000000wei")."""
    text = text.strip().lower()
    return parse_amount(text if text.endswith(("wei", "ether")) else f"{text}gwei")


def key_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--keystore and --dev-account: where the signing key comes from (never the key itself);
    --confirmations and --max-fee: how its transactions are sent (read by `signer`)."""
    fn = click.option(
        "--confirmations",
        type=click.IntRange(min=1),
        envvar="DERELAY_CONFIRMATIONS",
        expose_value=False,
        callback=_remember,
        help="Blocks a transaction must be under before it counts as done "
        "(default: 1 on dev chains, 3 on Ethereum and its testnets, 16 on Polygon PoS).",
    )(fn)
    fn = click.option(
        "--max-fee",
        envvar="DERELAY_MAX_FEE",
        expose_value=False,
        callback=_remember,
        help="Most this account pays per gas, in gwei (or with a unit, e.g. 30gwei); fees rise "
        "up to it when the chain's base fee does (default 500).",
    )(fn)
    fn = click.option(
        "--dev-account",
        type=int,
        envvar="DERELAY_DEV_ACCOUNT",
        help="Index of a deterministic dev account (dev chains only).",
    )(fn)
    return click.option(
        "--keystore",
        type=click.Path(path_type=Path, dir_okay=False),
        envvar="DERELAY_KEYSTORE",
        help="Encrypted keystore file; its password comes from $DERELAY_KEYSTORE_PASSWORD or a prompt.",
    )(fn)


def store_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--ipfs or --store: where weights and specs live."""
    fn = click.option(
        "--store",
        "store_dir",
        type=click.Path(path_type=Path, file_okay=False),
        default=DEFAULT_STORE,
        show_default=True,
        help="Local block store folder, used when --ipfs is not given.",
    )(fn)
    return click.option(
        "--ipfs", envvar="DERELAY_IPFS", help="Kubo RPC API URL, e.g. http://127.0.0.1:5001."
    )(fn)


class ByteSize(click.ParamType):
    """A size in bytes: 65536, 64KiB, 512MiB, 1GiB."""

    name = "size"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_size(str(value))
        except ConfigError as exc:
            self.fail(str(exc), param, ctx)


def limit_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--max-<limit> SIZE for each field of `Limits`, also read from $DERELAY_MAX_<LIMIT>."""
    for item in reversed(fields(Limits)):
        what = item.name.removesuffix("_bytes").replace("_", " ")
        fn = click.option(
            f"--max-{item.name.replace('_', '-')}",
            item.name,
            type=ByteSize(),
            envvar=f"DERELAY_MAX_{item.name.upper()}",
            show_envvar=True,
            help=f"Largest {what} accepted, e.g. 16MiB (default {item.default} bytes).",
        )(fn)
    return fn


def limits() -> Limits:
    """The size limits on untrusted input set for this command line."""
    return click.get_current_context().find_object(Limits) or DEFAULT_LIMITS


def signer(rpc: str, keystore: Path | None, dev_account: int | None) -> tuple[ChainClient, int]:
    """A signing client on `rpc`, and the chain id."""
    w3 = connect(rpc, max_reply_bytes=limits().rpc_reply_bytes)
    cid = chain_id(w3)
    account: LocalAccount = load_account(cid, keystore, dev_account)
    timeout = os.environ.get("DERELAY_RECEIPT_TIMEOUT")
    try:
        options = TxOptions(receipt_timeout=float(timeout)) if timeout else TxOptions()
    except ValueError:
        raise ConfigError(
            f"DERELAY_RECEIPT_TIMEOUT={timeout!r} is not a number of seconds"
        ) from None
    ctx = click.get_current_context(silent=True)
    meta = ctx.meta if ctx is not None else {}
    if meta.get("derelay.confirmations"):
        options = replace(options, confirmations=meta["derelay.confirmations"])
    if meta.get("derelay.max_fee"):
        options = replace(options, max_fee_wei=_max_fee(meta["derelay.max_fee"]))
    return ChainClient(w3, account, decoder_for(), options), cid


def open_contract(
    rpc: str, deployments: Path, keystore: Path | None = None, dev_account: int | None = None
) -> DeRelayContract:
    """The deployed contract on `rpc`, through a signing account when one is given.

    Read-only commands sign nothing, so they use a throwaway account.
    """
    if keystore is None and dev_account is None and not _env_key():
        from eth_account import Account

        w3 = connect(rpc, max_reply_bytes=limits().rpc_reply_bytes)
        client = ChainClient(w3, Account.create(), decoder_for())
    else:
        client, _ = signer(rpc, keystore, dev_account)
    record = load_deployment(client.w3, deployments)
    return DeRelayContract(client, record.address)


def _env_key() -> bool:
    return bool(os.environ.get("DERELAY_PRIVATE_KEY"))


def eth(wei: int) -> str:
    """Wei as ether, trimmed."""
    text = f"{wei / ETHER:.6f}".rstrip("0").rstrip(".")
    return f"{text} ETH"


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


# ---------------------------------------------------------------------- build and services


@cli.command("compile")
@click.option("--check", is_flag=True, help="Recompile and fail if the committed artifacts differ.")
def compile_cmd(check: bool) -> None:
    """Compile the contracts into contracts/artifacts."""
    from derelay.deploy import build

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


@cli.command()
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


@cli.command()
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


@cli.group()
def account() -> None:
    """Signing accounts."""


@account.command("new")
@click.option("--keystore", type=click.Path(path_type=Path, dir_okay=False), required=True)
def account_new(keystore: Path) -> None:
    """Create an encrypted keystore; the password comes from $DERELAY_KEYSTORE_PASSWORD or a prompt."""
    import os

    password = os.environ.get("DERELAY_KEYSTORE_PASSWORD") or click.prompt(
        "new keystore password", hide_input=True, confirmation_prompt=True
    )
    address = create_keystore(keystore, password)
    click.echo(f"created {keystore} for {address}")


# ---------------------------------------------------------------------- deploy and tasks


@cli.command()
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


@cli.group()
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
    "advance_band=340, max_misses=3, slash_miss_bp=500, min_gain=170; `derelay task show` "
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


@cli.command()
@rpc_option
@deployments_option
@click.argument("task_id", type=int, required=False)
@click.option(
    "--verdicts", type=int, default=5, show_default=True, help="How many of the last verdicts."
)
def status(rpc: str, deployments: Path, task_id: int | None, verdicts: int) -> None:
    """Where a task's relay stands (all tasks when none is given): the champion (what consumers
    license), the head (what the next turn trains on), the last verdicts and validator misses."""
    relay = open_contract(rpc, deployments)
    count = relay.task_count()
    click.echo(
        f"DeRelay at {relay.address} on {describe_endpoint(relay.client.w3)}: {count} task(s)"
    )
    for tid in [task_id] if task_id else range(1, count + 1):
        for line in status_lines(relay, tid, verdicts):
            click.echo(line)


def status_lines(relay: DeRelayContract, task_id: int, verdicts: int = 5) -> list[str]:
    """The `derelay status` lines of one task."""
    s = relay.task_state(task_id)
    params = relay.task_params(task_id)
    head_role = (
        "also the champion" if s.head_cid == s.champion_cid else "the next turn trains on it"
    )
    lines = [
        f"task {task_id}: {s.phase.name.lower()} round {s.round}, holder {s.holder}, "
        f"deadline {s.deadline}, pool {eth(s.pool)}, queue {s.queue_length}, "
        f"validators {s.validator_count}",
        f"  champion {Cid.from_bytes(s.champion_cid)} score {s.champion_score} bp "
        "(licensed by `derelay model get`; children are measured against it)",
        f"  head     {Cid.from_bytes(s.head_cid)} score {s.head_score} bp "
        f"({head_role}), "
        f"{s.accepted_count} accepted of {s.submission_count - 1} submitted",
        f"  review: rejected and slashed below champion - {params.slash_band} bp, "
        f"held below champion - {params.advance_band} bp, rewarded for gain over the champion "
        f"(base reward from +{params.min_gain} bp)",
    ]
    finalized = relay.events("RoundFinalized", taskId=task_id)[-verdicts:] if verdicts > 0 else []
    crowned = {e["args"]["round"] for e in relay.events("ChampionCrowned", taskId=task_id)}
    if finalized:
        lines.append("  last verdicts:")
        for event in reversed(finalized):
            lines.append("    " + verdict_text(event["args"], event["args"]["round"] in crowned))
    misses = [seat for seat in relay.seats(task_id) if int(seat.validator, 16) and seat.misses]
    for seat in misses:
        lines.append(
            f"  validator {seat.validator} (seat {seat.index}) missed {seat.misses} of "
            f"{params.max_misses} commits in a row"
        )
    return lines


def verdict_text(args: Any, crowned: bool) -> str:
    """One RoundFinalized event in words: the verdict, the medians and what was paid."""
    verdict = Status(args["verdict"]).name.lower()
    head = f"round {args['round']:4} {verdict:8} {args['relayer']}"
    if verdict == "void":
        return f"{head}  {args['reveals']} reveal(s), below quorum: nothing paid, turn kept"
    text = (
        f"{head}  child {args['childScore']} bp, champion {args['championScore']} bp, "
        f"delta {args['delta']:+d} bp, progress {args['progress']:+d} bp, {args['reveals']} reveals"
    )
    if crowned:
        return text + f": crowned the champion, reward {eth(args['reward'])}"
    return text + {
        "accepted": ": the head, no gain over the champion, no reward",
        "held": ": head unchanged, no reward, no slash",
        "rejected": ": relayer slashed",
    }.get(verdict, "")


@cli.command()
@rpc_option
@deployments_option
@click.argument("task_id", type=int)
@click.option("--json", "as_json", is_flag=True)
def lineage(rpc: str, deployments: Path, task_id: int, as_json: bool) -> None:
    """Every model of a task: genesis, then each submission with its verdict; the champion and
    the head are marked."""
    relay = open_contract(rpc, deployments)
    rows = lineage_rows(relay, task_id)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(render_lineage(rows))


def render_lineage(rows: list[dict[str, Any]]) -> str:
    """The lineage, a line per model: index, round, verdict, child score and delta to the
    champion in its review, CID, relayer, and which one is the champion and the head."""
    lines = []
    for r in rows:
        score = "–" if r["status"] in ("void", "pending") else str(r["score"])
        delta = "" if r["delta"] is None else f"{r['delta']:+d}"
        marks = ",".join(name for name in ("champion", "head") if r[name])
        lines.append(
            f"{r['index']:4} round {r['round']:4} {r['status']:8} {score:>6} bp {delta:>6}  "
            f"{r['cid']}  {r['relayer']}{'  <- ' + marks if marks else ''}"
        )
    return "\n".join(lines)


def lineage_rows(relay: DeRelayContract, task_id: int) -> list[dict[str, Any]]:
    """The lineage as JSON rows, each with its review's champion score and delta (None before a
    decided review) and whether it is the champion and the head now."""
    state = relay.task_state(task_id)
    finalized = {
        e["args"]["round"]: e["args"] for e in relay.events("RoundFinalized", taskId=task_id)
    }
    rows = []
    for e in relay.full_lineage(task_id):
        review = finalized.get(e.round) if e.index > 0 else None
        decided = review is not None and e.status not in (Status.VOID, Status.PENDING)
        rows.append(
            {
                **e.to_json(),
                "champion_score": review["championScore"] if decided else None,
                "delta": review["delta"] if decided else None,
                "champion": e.cid == state.champion_cid,
                "head": e.cid == state.head_cid,
            }
        )
    return rows


# ---------------------------------------------------------------------- money


@cli.command()
@rpc_option
@deployments_option
@click.argument("task_id", type=int)
@click.option("--address", help="Only this address.")
@click.option(
    "--json", "as_json", is_flag=True, help="Machine-readable, amounts in wei as strings."
)
def payouts(rpc: str, deployments: Path, task_id: int, address: str | None, as_json: bool) -> None:
    """What each participant earned, lost and holds in a task (from the chain's events)."""
    relay = open_contract(rpc, deployments)
    rows = task_payouts(relay, task_id)
    if address:
        rows = [r for r in rows if r.address.lower() == address.lower()]
        if not rows:
            raise ConfigError(f"{address} took no part in task {task_id}: check the address")
    if as_json:
        click.echo(json.dumps([r.to_json() for r in rows], indent=2))
        return
    click.echo(render_payouts(rows))


def render_payouts(rows: list[Payout]) -> str:
    """A fixed-width payouts table in ether; `lost` is stake lost to slashes and missed commits,
    `turns` counts accepted (of which crowned), held, rejected and void turns."""
    header = (
        f"{'address':42}  {'earned':>12}  {'relay':>10}  {'fees':>10}  {'keeper':>10}  "
        f"{'royalty':>10}  {'lost':>10}  {'withdrawable':>12}  {'turns a(c)/h/r/v':>16}  "
        f"{'missed':>6}"
    )
    lines = [header]
    for r in rows:
        turns = (
            f"{r.accepted_turns}({r.crowned_turns})/{r.held_turns}/{r.rejected_turns}/"
            f"{r.void_turns}"
        )
        lines.append(
            f"{r.address:42}  {r.earned / ETHER:12.6f}  {r.relayer_rewards / ETHER:10.6f}  "
            f"{r.validator_fees / ETHER:10.6f}  {r.keeper_bounties / ETHER:10.6f}  "
            f"{(r.royalties_settled + r.royalties_pending) / ETHER:10.6f}  "
            f"{r.stake_lost / ETHER:10.6f}  {r.withdrawable / ETHER:12.6f}  {turns:>16}  "
            f"{r.missed_reviews:6}"
        )
    return "\n".join(lines)


@cli.command()
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


@cli.group()
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


# ---------------------------------------------------------------------- worker


@cli.command()
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
    help="Journal file (default .derelay/journal-<address>.json).",
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
    journal_path = journal or Path(f".derelay/journal-{address}.json")
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


# ---------------------------------------------------------------------- demo, bench


@cli.command()
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


@cli.command("simulate")
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
@click.option("--rounds", type=int)
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


@cli.command()
@rpc_option
@deployments_option
@click.argument("task_id", type=int, required=False)
@click.option("--port", type=int, default=8800, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
def dashboard(rpc: str, deployments: Path, task_id: int | None, port: int, host: str) -> None:
    """A live web page of a task, rebuilt from the chain: accuracy, lineage, queue, reviews, payouts, pool."""
    from derelay.dashboard.server import run_dashboard

    run_dashboard(rpc, deployments, task_id, port, host=host, echo=click.echo)


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
        _exit(f"error: {exc}", 1)
    except KeyboardInterrupt:
        _exit("interrupted", 130)


def _exit(line: str, status: int) -> NoReturn:
    """Print `line` as one line on stderr (a path or value quoted in it may hold line breaks)."""
    click.echo(line.replace("\r", "\\r").replace("\n", "\\n"), err=True)
    sys.exit(status)
