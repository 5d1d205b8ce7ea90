"""What several commands share: the chain, deployment, key and store options, the size limits,
the signing client and the deployed contract they open, and ether formatting."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import click
from eth_account.signers.local import LocalAccount

from derelay.deploy.deployer import DEPLOYMENTS_DIR, load_deployment
from derelay.deploy.tasks import parse_amount
from derelay.trainer.chain import ChainClient, TxOptions, chain_id, connect
from derelay.trainer.contract import ETHER, DeRelayContract, decoder_for
from derelay.trainer.errors import ConfigError
from derelay.trainer.keys import load_account
from derelay.trainer.limits import DEFAULT_LIMITS, Limits, parse_size

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
    return DeRelayContract(client, record.address, deployed_block=record.block)


def _env_key() -> bool:
    return bool(os.environ.get("DERELAY_PRIVATE_KEY"))


def eth(wei: int) -> str:
    """Wei as ether, trimmed."""
    text = f"{wei / ETHER:.6f}".rstrip("0").rstrip(".")
    return f"{text} ETH"
