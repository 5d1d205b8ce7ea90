"""The chain client: a connection, a signing account, and transactions that either land or explain.

Transactions are built locally, signed with eth-account and sent raw, so the same code works on the
embedded eth-tester chain, on ganache and on any public JSON-RPC endpoint. Reverts are decoded from
the contract's custom errors into `ContractRevert` exceptions whose message says what to do.
"""

from __future__ import annotations

import ast
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import requests
from eth_abi import decode as abi_decode
from eth_account.signers.local import LocalAccount
from eth_utils import function_abi_to_4byte_selector, to_checksum_address
from web3 import EthereumTesterProvider, HTTPProvider, Web3
from web3.contract.contract import ContractFunction
from web3.exceptions import (
    ContractCustomError,
    ContractLogicError,
    ContractPanicError,
    TimeExhausted,
)
from web3.types import TxReceipt

from trainer.errors import ChainError, ContractRevert
from trainer.failpoints import failpoint

EMBEDDED = "embedded"
# Chain ids on which the well-known dev accounts may sign: ganache/anvil/hardhat and eth-tester.
DEV_CHAIN_IDS = frozenset({1337, 31337, 131277322940537})

T = TypeVar("T")

# What to do about each custom error, shown after the decoded error itself.
REVERT_HINTS: dict[str, str] = {
    "DeRelay__InvalidParameter": "fix that task parameter and create the task again",
    "DeRelay__InvalidCid": "pass a CIDv1 with a sha2-256 hash (what `ipfs add --cid-version=1` prints)",
    "DeRelay__UnknownTask": "check the task id with `derelay status`",
    "DeRelay__ZeroAmount": "send a positive amount",
    "DeRelay__StakeTooLow": "stake at least the required amount",
    "DeRelay__FeeTooLow": "pay at least the task's usage fee (`derelay task show`)",
    "DeRelay__AlreadyQueued": "you are already in this relay's queue",
    "DeRelay__NotQueued": "join the relay first (`derelay worker` joins for you)",
    "DeRelay__QueueFull": "the queue is full: try again when someone leaves",
    "DeRelay__HolderCannotLeave": "finish or skip your turn first, then leave",
    "DeRelay__WrongPhase": "the relay is not in the phase this action needs: see `derelay status`",
    "DeRelay__NotHolder": "it is not your turn: wait for it (`derelay status` shows the holder)",
    "DeRelay__WrongRound": "that round is over: read the current round with `derelay status`",
    "DeRelay__TurnExpired": "your turn's deadline passed: the next relayer may skip you",
    "DeRelay__TurnNotExpired": "the holder's deadline has not passed yet",
    "DeRelay__StaleParent": "the head moved: fetch the new head and train from it",
    "DeRelay__ChildSeen": "these exact weights were submitted before: train a new child",
    "DeRelay__ZeroSamples": "a submission must report at least one training sample",
    "DeRelay__AlreadyValidator": "you already hold a validator seat in this task",
    "DeRelay__NotValidator": "register as a validator of this task first",
    "DeRelay__SeatsFull": "every validator seat is taken: try again later",
    "DeRelay__BallotOpen": "reveal your committed score first",
    "DeRelay__SelfReview": "a validator may not review its own submission",
    "DeRelay__CommitClosed": "the commit window has closed for this round",
    "DeRelay__AlreadyCommitted": "you already committed a score this round",
    "DeRelay__RevealNotOpen": "wait until the commit window ends, then reveal",
    "DeRelay__RevealClosed": "the reveal window has closed for this round",
    "DeRelay__NotCommitted": "you did not commit a score this round",
    "DeRelay__AlreadyRevealed": "you already revealed this round",
    "DeRelay__ScoreOutOfRange": "scores are basis points, 0 to 10000",
    "DeRelay__RevealMismatch": "the score or salt differs from the commitment: reveal the journaled ones",
    "DeRelay__ReviewOpen": "the review is still open: finalize after its reveal window",
    "DeRelay__NothingToWithdraw": "nothing is owed to this address yet",
}


def connect(rpc: str = EMBEDDED, timeout: float = 30.0) -> Web3:
    """A Web3 for `rpc`: "embedded" (in-process eth-tester chain) or an HTTP(S) JSON-RPC URL.

    Checks that the endpoint answers with a chain id, so a wrong URL fails here, in one line.
    """
    if rpc == EMBEDDED:
        w3 = Web3(EthereumTesterProvider())
    elif rpc.startswith(("http://", "https://")):
        w3 = Web3(HTTPProvider(rpc, request_kwargs={"timeout": timeout}))
    else:
        raise ChainError(f"unsupported RPC {rpc!r}: pass an http(s):// URL or 'embedded'")
    chain_id(w3)
    return w3


def chain_id(w3: Web3) -> int:
    """The chain id, with an unreachable or non-Ethereum endpoint turned into one clear error."""
    try:
        value = with_retries(lambda: w3.eth.chain_id)
    except ChainError:
        raise
    except Exception as exc:  # a malformed reply is as fatal as no reply
        raise ChainError(
            f"the RPC endpoint gave no valid chain id ({exc}): is it an Ethereum node?"
        ) from exc
    if not isinstance(value, int) or value <= 0:
        raise ChainError(f"the RPC endpoint answered chain id {value!r}: is it an Ethereum node?")
    return value


def describe_endpoint(w3: Web3) -> str:
    """A short name of the endpoint for messages."""
    provider = w3.provider
    if isinstance(provider, HTTPProvider):
        return str(provider.endpoint_uri)
    return "the embedded chain"


def with_retries(call: Callable[[], T], tries: int = 4, first_delay: float = 0.25) -> T:
    """Run `call`, retrying transient transport failures with exponential backoff."""
    delay = first_delay
    for attempt in range(tries):
        try:
            return call()
        except (requests.ConnectionError, requests.Timeout, ConnectionError, TimeoutError) as exc:
            if attempt == tries - 1:
                raise ChainError(
                    f"the RPC endpoint is unreachable after {tries} tries ({type(exc).__name__}): "
                    "start the chain (`derelay chain`) or check --rpc"
                ) from exc
            time.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


class RevertDecoder:
    """Decodes revert data into `ContractRevert` using the custom errors of one or more ABIs."""

    def __init__(self, *abis: list[dict[str, Any]]) -> None:
        self._errors: dict[bytes, dict[str, Any]] = {}
        for abi in abis:
            for item in abi:
                if item.get("type") == "error":
                    self._errors[function_abi_to_4byte_selector(item)] = item

    def decode(self, data: bytes | str | None, action: str) -> ContractRevert:
        """A readable `ContractRevert` for revert `data` raised by `action`."""
        raw = _as_bytes(data)
        if len(raw) >= 4 and raw[:4] in self._errors:
            item = self._errors[raw[:4]]
            types = [_abi_type(i) for i in item["inputs"]]
            try:
                values = abi_decode(types, raw[4:])
            except Exception:  # garbage after a known selector: report it as such
                return ContractRevert(f"{action} reverted with malformed {item['name']} data")
            shown = ", ".join(
                f"{i['name']}={_show(v, i['type'])}"
                for i, v in zip(item["inputs"], values, strict=True)
            )
            hint = REVERT_HINTS.get(item["name"], "")
            message = f"{action} reverted: {item['name']}({shown})" + (f": {hint}" if hint else "")
            return ContractRevert(message, item["name"], tuple(values))
        if raw[:4] == bytes.fromhex("08c379a0"):
            (reason,) = abi_decode(["string"], raw[4:])
            return ContractRevert(f"{action} reverted: {reason}", "Error", (reason,))
        if raw[:4] == bytes.fromhex("4e487b71"):
            (code,) = abi_decode(["uint256"], raw[4:])
            return ContractRevert(f"{action} reverted with panic 0x{code:x}", "Panic", (code,))
        return ContractRevert(f"{action} reverted without a reason (out of gas or a bad call?)")


def _abi_type(item: dict[str, Any]) -> str:
    if item["type"].startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in item["components"])
        return f"({inner}){item['type'][5:]}"
    return str(item["type"])


def _show(value: object, abi_type: str) -> str:
    if abi_type == "address" and isinstance(value, str):
        return to_checksum_address(value)
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return str(value)


def _as_bytes(data: bytes | str | None) -> bytes:
    if data is None:
        return b""
    if isinstance(data, bytes):
        return data
    text = data[2:] if data.startswith("0x") else data
    try:
        return bytes.fromhex(text)
    except ValueError:
        return b""


def revert_data(exc: BaseException) -> bytes | str | None:
    """The raw revert data inside whatever exception web3 or eth-tester raised."""
    if isinstance(exc, (ContractCustomError, ContractLogicError, ContractPanicError)):
        if isinstance(exc.data, (bytes, str)):
            return exc.data
    for arg in exc.args:
        # ganache: (message, {"result": "0x<revert data>", ...}); others: {"data": "0x..."}
        if isinstance(arg, dict):
            for key in ("result", "data"):
                value = arg.get(key)
                if isinstance(value, str) and value.startswith("0x") and len(value) >= 10:
                    return value
    if type(exc).__name__ == "TransactionFailed" and exc.args:
        # eth-tester: raw bytes, or "execution reverted: b'...'" holding a bytes literal.
        first = exc.args[0]
        if isinstance(first, bytes):
            return first
        if isinstance(first, str):
            text = first.removeprefix("execution reverted: ").strip()
            if text.startswith(("b'", 'b"')):
                try:
                    value = ast.literal_eval(text)
                except (ValueError, SyntaxError):
                    return None
                return value if isinstance(value, bytes) else None
            return text if text.startswith("0x") else None
    return None


@dataclass(frozen=True)
class TxOptions:
    """How transactions are sent."""

    receipt_timeout: float = 120.0  # seconds to wait for a receipt before giving up
    gas_margin: float = 1.25  # estimated gas times this is the gas limit
    tip_wei: int = 1_000_000_000  # priority fee per gas on EIP-1559 chains


class ChainClient:
    """One signing account on one chain: sends transactions, waits for receipts, decodes reverts."""

    def __init__(
        self,
        w3: Web3,
        account: LocalAccount,
        decoder: RevertDecoder,
        options: TxOptions | None = None,
    ) -> None:
        self.w3 = w3
        self.account = account
        self.address = to_checksum_address(account.address)
        self.decoder = decoder
        self.options = options or TxOptions()
        self._next_nonce: int | None = None

    def call(self, fn: ContractFunction, action: str) -> Any:
        """Read a view, decoding reverts."""
        try:
            return with_retries(lambda: fn.call({"from": self.address}))
        except ChainError:
            raise
        except Exception as exc:
            raise self._explain(exc, action) from exc

    def transact(self, fn: ContractFunction, action: str, value: int = 0) -> TxReceipt:
        """Sign and send `fn` with `value` wei; return the receipt of a successful transaction.

        A revert found while estimating gas raises `ContractRevert` before anything is sent. A
        transaction that reverts on chain is replayed as a call to decode its reason.
        """
        tx_fields: dict[str, Any] = {"from": self.address, "value": value}
        try:
            gas = with_retries(lambda: fn.estimate_gas(tx_fields))
        except ChainError:
            raise
        except Exception as exc:
            if revert_data(exc) is None:
                # Some providers drop the revert data of a failed estimate: replay it as a call.
                try:
                    fn.call(tx_fields)
                except Exception as replayed:
                    if revert_data(replayed) is not None:
                        raise self._explain(replayed, action) from exc
            raise self._explain(exc, action) from exc
        tx = fn.build_transaction(
            {
                **tx_fields,
                "gas": int(gas * self.options.gas_margin) + 10_000,
                "nonce": self._nonce(),
                "chainId": self.w3.eth.chain_id,
                **self._fees(),
            }
        )
        return self.send(tx, action)

    def send(self, tx: dict[str, Any], action: str) -> TxReceipt:
        """Sign and send a built transaction; wait for its receipt; raise if it reverted."""
        signed = self.account.sign_transaction(tx)
        try:
            tx_hash = with_retries(lambda: self.w3.eth.send_raw_transaction(signed.raw_transaction))
        except ChainError:
            self._next_nonce = None
            raise
        except Exception as exc:
            self._next_nonce = None
            raise self._explain(exc, action) from exc
        self._next_nonce = int(tx["nonce"]) + 1
        failpoint(f"after-send:{action}")
        try:
            receipt = with_retries(
                lambda: self.w3.eth.wait_for_transaction_receipt(
                    tx_hash, timeout=self.options.receipt_timeout, poll_latency=0.1
                )
            )
        except (TimeExhausted, ChainError) as exc:
            # The node may have lost it (a restart empties the mempool): ask for the nonce again
            # next time rather than leave a gap that would hold every later transaction back.
            self._next_nonce = None
            raise ChainError(
                f"{action}: no receipt for 0x{tx_hash.hex()} after {self.options.receipt_timeout:.0f} s; "
                "it may still be mined: check it before sending again"
            ) from exc
        if receipt["status"] != 1:
            raise ChainError(f"{action} reverted on chain in transaction 0x{tx_hash.hex()}")
        return receipt

    def deploy(self, abi: list[dict[str, Any]], bytecode: str, *args: Any) -> tuple[str, TxReceipt]:
        """Deploy a contract; return its checksum address and the deployment receipt."""
        factory = self.w3.eth.contract(abi=abi, bytecode=bytecode)
        ctor = factory.constructor(*args)
        gas = with_retries(lambda: ctor.estimate_gas({"from": self.address}))
        tx = ctor.build_transaction(
            {
                "from": self.address,
                "gas": int(gas * self.options.gas_margin) + 10_000,
                "nonce": self._nonce(),
                "chainId": self.w3.eth.chain_id,
                **self._fees(),
            }
        )
        receipt = self.send(tx, "deploy")
        address = receipt["contractAddress"]
        if address is None:
            raise ChainError("deployment receipt names no contract address")
        return to_checksum_address(address), receipt

    def balance(self, address: str | None = None) -> int:
        """Ether balance in wei of `address` (default: this account)."""
        return int(with_retries(lambda: self.w3.eth.get_balance(address or self.address)))

    def _nonce(self) -> int:
        if self._next_nonce is None:
            self._next_nonce = int(
                with_retries(lambda: self.w3.eth.get_transaction_count(self.address, "pending"))
            )
        return self._next_nonce

    def _fees(self) -> dict[str, int]:
        block = with_retries(lambda: self.w3.eth.get_block("latest"))
        base_fee = block.get("baseFeePerGas")
        if base_fee is None:
            return {"gasPrice": int(with_retries(lambda: self.w3.eth.gas_price))}
        tip = self.options.tip_wei
        return {"maxFeePerGas": 2 * int(base_fee) + tip, "maxPriorityFeePerGas": tip}

    def _explain(self, exc: BaseException, action: str) -> ChainError:
        data = revert_data(exc)
        if data is not None:
            return self.decoder.decode(data, action)
        message = str(exc)
        if any(
            phrase in message.lower()
            for phrase in ("insufficient funds", "not have enough balance")
        ):
            return ChainError(
                f"{action}: insufficient funds in {self.address} for the value and gas: fund this account"
            )
        return ChainError(
            f"{action} failed: {message.splitlines()[0] if message else type(exc).__name__}"
        )
