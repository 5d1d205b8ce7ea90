"""The chain client: a connection, a signing account, and transactions that either land or explain.

Transactions are built locally, signed with eth-account and sent raw, so the same code works on the
embedded eth-tester chain, on ganache and on any public JSON-RPC endpoint. Reverts are decoded from
the contract's custom errors into `ContractRevert` exceptions whose message says what to do.
"""

from __future__ import annotations

import ast
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, Protocol, TypeVar, cast

import requests
import urllib3
from eth_abi import decode as abi_decode
from eth_account.signers.local import LocalAccount
from eth_utils import function_abi_to_4byte_selector, is_address, to_checksum_address
from hexbytes import HexBytes
from web3 import EthereumTesterProvider, HTTPProvider, Web3
from web3.contract.contract import ContractConstructor, ContractFunction
from web3.exceptions import (
    ContractCustomError,
    ContractLogicError,
    ContractPanicError,
    TransactionNotFound,
)
from web3.types import RPCEndpoint, RPCResponse, TxReceipt

from derelay.trainer.errors import ChainError, ContractRevert, Revert, TxLost, TxPending, one_line
from derelay.trainer.failpoints import failpoint
from derelay.trainer.limits import DEFAULT_LIMITS, loads_json, read_reply

log = logging.getLogger("derelay.chain")

EMBEDDED = "embedded"
# Chain ids on which the well-known dev accounts may sign: ganache/anvil/hardhat and eth-tester.
DEV_CHAIN_IDS = frozenset({1337, 31337, 131277322940537})

T = TypeVar("T")

# What to do about each custom error, shown after the decoded error itself.
REVERT_HINTS: dict[Revert, str] = {
    Revert.INVALID_PARAMETER: "fix that task parameter and create the task again",
    Revert.INVALID_CID: "pass a CIDv1 with a sha2-256 hash (what `ipfs add --cid-version=1` prints)",
    Revert.UNKNOWN_TASK: "check the task id: no task has it on this contract",
    Revert.ZERO_AMOUNT: "send a positive amount",
    Revert.STAKE_TOO_LOW: "stake at least the required amount",
    Revert.FEE_TOO_LOW: "pay at least the task's usage fee",
    Revert.ALREADY_QUEUED: "you are already in this relay's queue",
    Revert.NOT_QUEUED: "join the relay first",
    Revert.QUEUE_FULL: "the queue is full: try again when someone leaves",
    Revert.HOLDER_CANNOT_LEAVE: "finish or skip your turn first, then leave",
    Revert.WRONG_PHASE: "the relay is not in the phase this action needs: read the task's state",
    Revert.NOT_HOLDER: "it is not your turn: wait until the task's holder is you",
    Revert.WRONG_ROUND: "that round is over: read the task's current round",
    Revert.TURN_EXPIRED: "your turn's deadline passed: the next relayer may skip you",
    Revert.TURN_NOT_EXPIRED: "the holder's deadline has not passed yet",
    Revert.STALE_PARENT: "the head moved: fetch the new head and train from it",
    Revert.CHILD_SEEN: "these exact weights were submitted before: train a new child",
    Revert.ZERO_SAMPLES: "a submission must report at least one training sample",
    Revert.ALREADY_VALIDATOR: "you already hold a validator seat in this task",
    Revert.NOT_VALIDATOR: "register as a validator of this task first",
    Revert.SEATS_FULL: "every validator seat is taken: try again later",
    Revert.BALLOT_OPEN: "reveal your committed score first",
    Revert.SELF_REVIEW: "a validator may not review its own submission",
    Revert.COMMIT_CLOSED: "the commit window has closed for this round",
    Revert.ALREADY_COMMITTED: "you already committed a score this round",
    Revert.REVEAL_NOT_OPEN: "wait until the commit window ends, then reveal",
    Revert.REVEAL_CLOSED: "the reveal window has closed for this round",
    Revert.NOT_COMMITTED: "you did not commit a score this round",
    Revert.ALREADY_REVEALED: "you already revealed this round",
    Revert.SCORE_OUT_OF_RANGE: "scores are basis points, 0 to 10000",
    Revert.REVEAL_MISMATCH: "the score or salt differs from the commitment: reveal the journaled ones",
    Revert.REVIEW_OPEN: "the review is still open: finalize after its reveal window",
    Revert.NOTHING_TO_WITHDRAW: "nothing is owed to this address yet",
}


def connect(
    rpc: str = EMBEDDED,
    timeout: float = 30.0,
    max_reply_bytes: int = DEFAULT_LIMITS.rpc_reply_bytes,
) -> Web3:
    """A Web3 for `rpc`: "embedded" (in-process eth-tester chain) or an HTTP(S) JSON-RPC URL.

    Checks that the endpoint answers with a chain id, so a wrong URL fails here, in one line.
    """
    if rpc == EMBEDDED:
        w3 = Web3(EthereumTesterProvider())
    elif rpc.startswith(("http://", "https://")):
        w3 = Web3(BoundedHTTPProvider(rpc, timeout, max_reply_bytes))
    else:
        raise ChainError(
            f"unsupported RPC {one_line(rpc, 100)!r}: pass an http(s):// URL or 'embedded'",
            setting="rpc",
        )
    chain_id(w3)
    return w3


class BoundedHTTPProvider(HTTPProvider):
    """An HTTP JSON-RPC provider that trusts the endpoint no more than the network.

    A reply longer than `max_reply_bytes`, slower than `timeout` in all, with an HTTP error status,
    or that is not a JSON-RPC reply to this very request (wrong id, neither result nor error)
    raises ChainError before web3 reads it. Connection failures and timeouts are left to
    `with_retries`; web3's own retries are off, so that one policy applies.
    """

    def __init__(self, endpoint_uri: str, timeout: float, max_reply_bytes: int) -> None:
        super().__init__(endpoint_uri, exception_retry_configuration=None)
        self.timeout = timeout
        self.max_reply_bytes = max_reply_bytes
        self._session = requests.Session()
        self._chain_id: Any = None  # the endpoint's first valid eth_chainId result

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        request = self.encode_rpc_request(method, params)
        request_id = json.loads(request)["id"]
        if method == "eth_chainId" and self._chain_id is not None:
            # web3 validates every call and estimate against the chain id: under load, asking
            # the node each time was half of all requests. An endpoint's chain id never changes.
            return cast(RPCResponse, {"jsonrpc": "2.0", "id": request_id, "result": self._chain_id})
        body = self._post(method, request)
        try:
            reply = loads_json(body)
        except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
            raise ChainError(
                f"the RPC endpoint answered {method} with {len(body)} bytes that are not JSON "
                f"({one_line(repr(body[:60]))}): is the RPC URL that of an Ethereum JSON-RPC node?",
                setting="rpc",
            ) from None
        _check_reply(reply, method, request_id)
        if method == "eth_chainId" and "result" in reply:
            self._chain_id = reply["result"]
        return cast(RPCResponse, reply)

    def _post(self, method: str, request: bytes) -> bytes:
        deadline = time.monotonic() + self.timeout
        try:
            with self._session.post(
                str(self.endpoint_uri),
                data=request,
                headers=self.get_request_headers(),
                timeout=self.timeout,
                stream=True,
            ) as response:
                body = read_reply(response, self.max_reply_bytes, deadline)
        except (requests.ConnectionError, requests.Timeout):
            raise
        except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
            raise ChainError(
                f"the RPC endpoint sent an unreadable answer to {method} "
                f"({type(exc).__name__}: {one_line(str(exc), 100)}): check the RPC URL and try again",
                setting="rpc",
            ) from None
        if len(body) > self.max_reply_bytes:
            raise ChainError(
                f"the RPC endpoint answered {method} with more than {self.max_reply_bytes} bytes, "
                "the limit: raise the rpc_reply_bytes limit only for a node you trust",
                setting="rpc_reply_bytes",
            )
        if response.status_code != 200:
            raise ChainError(
                f"the RPC endpoint answered {method} with HTTP {response.status_code} "
                f"({one_line(body[:200].decode('utf-8', 'replace'), 100) or 'no reason given'}): "
                "check that the RPC URL names a working Ethereum JSON-RPC node",
                setting="rpc",
            )
        return body


def _check_reply(reply: Any, method: str, request_id: Any) -> None:
    """Raise ChainError unless `reply` is a JSON-RPC 2.0 reply object to request `request_id`."""
    problem = ""
    if not isinstance(reply, dict):
        problem = f"a JSON {type(reply).__name__} instead of a reply object"
    elif reply.get("id") != request_id or type(reply.get("id")) is not type(request_id):
        problem = f"the id {one_line(repr(reply.get('id')), 40)} of another request"
    elif ("result" in reply) == ("error" in reply):
        problem = "a reply with neither or both of result and error"
    elif "error" in reply:
        error = reply["error"]
        if not (
            isinstance(error, dict)
            and type(error.get("code")) is int
            and isinstance(error.get("message"), str)
        ):
            problem = "an error that is not an object with an integer code and a message"
    if problem:
        raise ChainError(
            f"the RPC endpoint answered {method} with {problem}: "
            "is the RPC URL that of an Ethereum JSON-RPC node?",
            setting="rpc",
        )


def chain_id(w3: Web3) -> int:
    """The chain id, with an unreachable or non-Ethereum endpoint turned into one clear error."""
    return rpc_int(lambda: w3.eth.chain_id, "chain id", low=1)


def rpc_read(call: Callable[[], T], what: str) -> T:
    """`with_retries(call)` for a read that cannot revert: an answer web3 cannot use (a result of
    the wrong type, an error object, a block that is not there) becomes one ChainError."""
    try:
        return with_retries(call)
    except ChainError:
        raise
    except Exception as exc:  # a malformed reply is as fatal as no reply
        detail = one_line(str(exc), 120) or type(exc).__name__
        raise ChainError(
            f"the RPC endpoint gave no valid {what} ({detail}): is it an Ethereum node?"
        ) from exc


def rpc_int(call: Callable[[], Any], what: str, low: int = 0) -> int:
    """`rpc_read` of a quantity, checked by `quantity`."""
    return quantity(rpc_read(call, what), what, low)


def quantity(value: Any, what: str, low: int = 0) -> int:
    """`value` if it is an integer in [low, 2**256), as every EVM quantity is; else ChainError."""
    if type(value) is not int or not low <= value < 2**256:
        # repr() of an int of over 4300 digits raises ValueError: such a value is shown by size
        shown = f"a {value.bit_length()}-bit integer" if type(value) is int else repr(value)
        raise ChainError(
            f"the RPC endpoint answered {what} {one_line(shown, 60)}: is it an Ethereum node?"
        )
    return value


def observed_block_time(w3: Web3, blocks: int = 20) -> float | None:
    """Mean seconds between the last `blocks` blocks, or None on a chain too young to tell."""
    latest = rpc_read(lambda: w3.eth.get_block("latest"), "latest block")
    span = min(blocks, int(latest["number"]))
    if span < 2:
        return None
    earlier = rpc_read(lambda: w3.eth.get_block(int(latest["number"]) - span), "block")
    return (int(latest["timestamp"]) - int(earlier["timestamp"])) / span


def describe_endpoint(w3: Web3) -> str:
    """A short name of the endpoint for messages."""
    provider = w3.provider
    if isinstance(provider, HTTPProvider):
        return str(provider.endpoint_uri)
    return "the embedded chain"


# Failures of the transport, not of the node's answer: worth another try.
TRANSPORT_ERRORS = (requests.ConnectionError, requests.Timeout, ConnectionError, TimeoutError)


def with_retries(call: Callable[[], T], tries: int = 4, first_delay: float = 0.25) -> T:
    """Run `call`, retrying transient transport failures with exponential backoff."""
    delay = first_delay
    for attempt in range(tries):
        try:
            return call()
        except TRANSPORT_ERRORS as exc:
            if attempt == tries - 1:
                if isinstance(exc, requests.Timeout | TimeoutError):
                    raise ChainError(
                        f"the RPC endpoint did not answer in time, {tries} tries "
                        f"({one_line(str(exc), 80) or type(exc).__name__}): the node is overloaded "
                        "or stalled; try again, or check the RPC URL",
                        setting="rpc",
                    ) from exc
                raise ChainError(
                    f"the RPC endpoint is unreachable after {tries} tries ({type(exc).__name__}): "
                    "start a chain there or check the RPC URL",
                    setting="rpc",
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
        item = self._errors.get(raw[:4]) or _BUILTIN_ERRORS.get(raw[:4])
        if len(raw) < 4 or item is None:
            return ContractRevert(f"{action} reverted without a reason (out of gas or a bad call?)")
        types = [_abi_type(i) for i in item["inputs"]]
        try:
            values = abi_decode(types, raw[4:])
        except Exception:  # garbage after a known selector: report it as such
            return ContractRevert(f"{action} reverted with malformed {item['name']} data")
        if item["name"] == "Error":
            message = f"{action} reverted: {values[0]}"
        elif item["name"] == "Panic":
            message = f"{action} reverted with panic 0x{values[0]:x}"
        else:
            shown = ", ".join(
                f"{i['name']}={_show(v, i['type'])}"
                for i, v in zip(item["inputs"], values, strict=True)
            )
            hint = REVERT_HINTS.get(item["name"], "")
            message = f"{action} reverted: {item['name']}({shown})" + (f": {hint}" if hint else "")
        return ContractRevert(one_line(message), item["name"], tuple(values))


# Solidity's own revert payloads: require(..., "reason") and panics (overflow, assert, ...).
_BUILTIN_ERRORS: dict[bytes, dict[str, Any]] = {
    bytes.fromhex("08c379a0"): {"name": "Error", "inputs": [{"name": "reason", "type": "string"}]},
    bytes.fromhex("4e487b71"): {"name": "Panic", "inputs": [{"name": "code", "type": "uint256"}]},
}


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


GWEI = 10**9

# Blocks a receipt must be under before a transaction counts as done, per chain id: one on dev
# chains (which reorganise only when told to), three on Ethereum and its testnets (reorgs past
# two blocks have been unheard of since the merge), more where deep reorgs happened (Polygon PoS).
CONFIRMATIONS_BY_CHAIN = {1: 3, 11155111: 3, 17000: 3, 560048: 3, 137: 16, 80002: 16}
PUBLIC_CONFIRMATIONS = 3


def default_confirmations(chain: int) -> int:
    """How deep a receipt must be before a transaction counts as done on chain id `chain`."""
    if chain in DEV_CHAIN_IDS:
        return 1
    return CONFIRMATIONS_BY_CHAIN.get(chain, PUBLIC_CONFIRMATIONS)


@dataclass(frozen=True)
class TxOptions:
    """How transactions are sent."""

    receipt_timeout: float = 120.0  # seconds `transact` waits for a confirmed receipt
    gas_margin: float = 1.25  # estimated gas times this is the gas limit
    tip_wei: int = 1_000_000_000  # priority fee per gas on EIP-1559 chains
    confirmations: int | None = None  # receipt depth that counts as done; None: per chain id
    max_fee_wei: int = 500 * GWEI  # ceiling on the fee per gas (maxFeePerGas or gasPrice)
    bump_after: float = 30.0  # seconds a transaction may wait in the mempool before a fee bump
    wait_seconds: float = 3.0  # how long `send_tracked` waits for a receipt before it returns


# EIP-1559 replacement: a node takes a transaction for a nonce it holds only if both the fee cap
# and the tip rise by at least 10%; 12.5% leaves room for rounding.
BUMP_NUM, BUMP_DEN = 9, 8


def _bump(value: int) -> int:
    return -(-value * BUMP_NUM // BUMP_DEN)


@dataclass(frozen=True)
class SentTx:
    """A signed transaction of one intended action, from its first send until it is done.

    Everything needed to poll it, send it again with the same nonce and effect, or replace it
    with higher fees lives here, and the worker journals it: a transaction that a restart, a
    dropped mempool or a reorg lost is found and sent again instead of waited on blind.
    `key` names the intended action (e.g. "submitRelay:5"); `tip` is None on a chain without
    EIP-1559, where `max_fee` is the gas price; `hashes` holds every version sent, newest last.
    """

    key: str
    action: str
    nonce: int
    to: str
    data: str
    value: int
    gas: int
    max_fee: int
    tip: int | None
    hashes: tuple[str, ...] = ()
    sent_at: float = 0.0

    def fields(self, chain: int, sender: str) -> dict[str, Any]:
        """The transaction dict to sign."""
        tx: dict[str, Any] = {
            "from": sender,
            "data": self.data,
            "value": self.value,
            "gas": self.gas,
            "nonce": self.nonce,
            "chainId": chain,
        }
        if self.to:  # none: a contract creation
            tx["to"] = self.to
        if self.tip is None:
            tx["gasPrice"] = self.max_fee
        else:
            tx.update(maxFeePerGas=self.max_fee, maxPriorityFeePerGas=self.tip)
        return tx

    def to_json(self) -> dict[str, Any]:
        """A JSON object of the fields (the journal's form)."""
        return {**{f: getattr(self, f) for f in SENT_TX_FIELDS}, "hashes": list(self.hashes)}

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> SentTx:
        """The inverse of `to_json`."""
        return cls(**{**document, "hashes": tuple(document["hashes"])})


SENT_TX_FIELDS = (
    "key", "action", "nonce", "to", "data", "value", "gas", "max_fee", "tip", "hashes", "sent_at"
)  # fmt: skip


@dataclass(frozen=True)
class TxStatus:
    """What polling a `SentTx` found. `state`: "pending" (not done yet: in the mempool, mined
    under too few blocks, or just sent again), "confirmed" (a successful receipt at the
    configured depth), "reverted" (a failed one: `error` says why) or "lost" (its nonce went to
    another transaction of this account: the action did not happen and is the caller's to
    redo if it is still due). `tx` is the transaction as it stands (new hashes after a resend)."""

    state: str
    tx: SentTx
    receipt: TxReceipt | None = None
    error: ChainError | None = None
    note: str = ""


class TxTracker(Protocol):
    """Who keeps a client's transactions between polls (a worker, in its journal)."""

    def tx_key(self, action: str) -> str:
        """The intended action that an `action` transaction sent now carries out."""
        ...

    def tx_sent(self, tx: SentTx) -> None:
        """`tx` is about to leave, or left again (durably recorded before it returns)."""
        ...

    def tx_done(self, tx: SentTx) -> None:
        """`tx` is done (or lost): no more polls."""
        ...


class ChainClient:
    """One signing account on one chain: sends transactions, tracks them until they are done
    (re-sending what the node lost, raising fees the node asks for), decodes reverts.

    With a `tracker`, `transact` records each transaction before it leaves and waits for it only
    `wait_seconds`: one not done by then raises `TxPending`, and the tracker's owner `poll`s it
    on later ticks instead of blocking.
    """

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
        # Nonces of transactions sent and not yet seen done: the next nonce goes above them
        # even when the node does not count them yet.
        self._inflight: dict[int, str] = {}
        self._warned: set[str] = set()
        self.tracker: TxTracker | None = None

    @property
    def confirmations(self) -> int:
        """Receipt depth at which a transaction counts as done on this chain."""
        if self.options.confirmations is not None:
            return self.options.confirmations
        return default_confirmations(chain_id(self.w3))

    def call(self, fn: ContractFunction, action: str) -> Any:
        """Read a view, decoding reverts."""
        try:
            return with_retries(lambda: fn.call({"from": self.address}))
        except ChainError:
            raise
        except Exception as exc:
            raise self._explain(exc, action) from exc

    def transact(
        self, fn: ContractFunction, action: str, value: int = 0, gas: int | None = None
    ) -> TxReceipt:
        """Sign and send `fn` with `value` wei; return the receipt of a successful transaction.

        A revert found while estimating gas (or, with a fixed `gas` limit, while calling `fn`
        first) raises `ContractRevert` before anything is sent. A transaction that reverts on
        chain is replayed as a call to decode its reason. With a `tracker`, one not done after
        `wait_seconds` raises `TxPending`, and one whose nonce another took raises `TxLost`.
        """
        tracker = self.tracker
        if tracker is None:
            tx_fields: dict[str, Any] = {"from": self.address, "value": value}
            return self.send(self._build(fn, tx_fields, action, gas), action)
        tx = self.prepare(fn, action, tracker.tx_key(action), value, gas)
        tracker.tx_sent(tx)
        tx = self.broadcast(tx)
        tracker.tx_sent(tx)
        status = self.wait(tx, self.options.wait_seconds)
        if status.state == "pending":
            tracker.tx_sent(status.tx)
            raise TxPending(f"{action}: sent, not done yet", status)
        tracker.tx_done(status.tx)
        return self.outcome(status)

    def send(self, tx: dict[str, Any], action: str) -> TxReceipt:
        """Sign and send a built transaction; wait until it is done (re-sent if the node loses
        it, its fees raised if they fall behind); return its receipt, raise if it reverted."""
        return self.settle(self.broadcast(self.tracked(tx, action, action)))

    def prepare(
        self,
        fn: ContractFunction,
        action: str,
        key: str,
        value: int = 0,
        gas: int | None = None,
    ) -> SentTx:
        """`fn` checked (a revert raises `ContractRevert`), built and signed, not yet sent: the
        caller journals it, then `broadcast`s it."""
        built = self._build(fn, {"from": self.address, "value": value}, action, gas)
        return self.tracked(built, action, key)

    def tracked(self, tx: dict[str, Any], action: str, key: str) -> SentTx:
        """A built transaction dict as a `SentTx` with the hash it will have."""
        tip = tx.get("maxPriorityFeePerGas")
        sent = SentTx(
            key=key,
            action=action,
            nonce=int(tx["nonce"]),
            to=to_checksum_address(tx["to"]) if tx.get("to") else "",
            data=HexBytes(tx.get("data") or b"").to_0x_hex(),
            value=int(tx.get("value", 0)),
            gas=int(tx["gas"]),
            max_fee=int(tx["maxFeePerGas"] if tip is not None else tx["gasPrice"]),
            tip=None if tip is None else int(tip),
        )
        return replace(sent, hashes=(self._sign(sent)[0],))

    def _sign(self, tx: SentTx) -> tuple[str, bytes]:
        signed = self.account.sign_transaction(tx.fields(chain_id(self.w3), self.address))
        return HexBytes(signed.hash).to_0x_hex(), bytes(signed.raw_transaction)

    def broadcast(self, tx: SentTx) -> SentTx:
        """Send `tx` to the node (again, if it was sent before: same nonce, same effect).

        A node that wants higher fees (a replacement underpriced, a fee cap under the base fee)
        gets them, up to `max_fee_wei`; past that the transaction waits unsent, with one warning
        line, and the next poll tries again. `nonce too low` is left to `poll`, which reads what
        took the nonce. Returns the transaction as sent.
        """
        return self._send_raw(tx)[0]

    def _send_raw(self, tx: SentTx) -> tuple[SentTx, bool]:
        """`broadcast`, and whether the node holds the transaction now (False: it waits unsent,
        past the fee ceiling)."""
        attempt = tx
        for _ in range(4):
            tx_hash, raw = self._sign(attempt)
            attempt = replace(
                attempt,
                hashes=attempt.hashes if tx_hash in attempt.hashes else (*attempt.hashes, tx_hash),
                sent_at=time.time(),
            )
            try:
                with_retries(partial(self.w3.eth.send_raw_transaction, raw))
            except ChainError:
                raise
            except Exception as exc:
                reason = str(exc).lower()
                if any(
                    p in reason for p in ("already known", "known transaction", "already imported")
                ):
                    break
                if any(p in reason for p in ("nonce too low", "nonce is too low", "correct nonce")):
                    break  # ganache: "the tx doesn't have the correct nonce"
                if "underpriced" in reason or "base fee" in reason or "fee cap" in reason:
                    bumped = self._bumped(attempt)
                    if bumped is None:
                        return tx, False  # as the node last took it, if ever: polls retry
                    attempt = bumped
                    continue
                raise self._explain(exc, tx.action) from exc
            self._inflight[attempt.nonce] = attempt.key
            break
        failpoint(f"after-send:{tx.action}")
        return attempt, True

    def _bumped(self, tx: SentTx) -> SentTx | None:
        """`tx` with fees a node takes as its replacement and the current base fee allows, or
        None (and one warning) when that would pass the ceiling `max_fee_wei`."""
        ceiling = self.options.max_fee_wei
        if tx.tip is None:
            floor = wanted = max(
                _bump(tx.max_fee), rpc_int(lambda: self.w3.eth.gas_price, "gas price")
            )
            tip = None
        else:
            tip = _bump(tx.tip)
            base_fee = self._base_fee()
            floor = max(_bump(tx.max_fee), base_fee + tip)
            wanted = max(_bump(tx.max_fee), 2 * base_fee + tip)
        if floor > ceiling:
            self._warn_ceiling(tx)
            return None
        return replace(tx, max_fee=min(wanted, ceiling), tip=tip)

    def _warn_ceiling(self, tx: SentTx) -> None:
        key = f"{tx.key}:{tx.nonce}:{tx.max_fee}"
        if key in self._warned:
            return
        self._warned.add(key)
        log.warning(
            "%s waits: the chain's fee (base fee %.3g gwei) needs more than the fee ceiling of "
            "%.3g gwei (max_fee_wei); raise the ceiling to get it mined, or wait for the fee to fall",
            tx.action,
            self._base_fee() / GWEI,
            self.options.max_fee_wei / GWEI,
        )

    def poll(self, tx: SentTx) -> TxStatus:
        """Where `tx` stands now; never waits. A transaction the node no longer knows (dropped
        from its mempool, or in blocks a reorg replaced) is sent again with its nonce, unless
        another transaction took that nonce ("lost"); one that waited too long, or whose fee cap
        fell under the base fee, is replaced with higher fees (within `max_fee_wei`)."""
        found = self._find_receipt(tx)
        if found is not None:
            return self._judge(tx, found)
        known = any(self._known(h) for h in tx.hashes)
        if not known:
            used = rpc_int(
                lambda: self.w3.eth.get_transaction_count(self.address, "latest"), "nonce"
            )
            if used > tx.nonce:
                found = self._find_receipt(tx)  # mined between the two reads?
                if found is not None:
                    return self._judge(tx, found)
                self._inflight.pop(tx.nonce, None)
                return TxStatus(
                    "lost",
                    tx,
                    note=f"nonce {tx.nonce} went to another transaction of {self.address}",
                )
            sent, taken = self._send_raw(tx)
            return TxStatus(
                "pending", sent, note="the node had lost it: sent again" if taken else ""
            )
        if tx.tip is not None and tx.max_fee < self._base_fee() + tx.tip:
            note = "its fee cap fell under the base fee"
        elif time.time() - tx.sent_at > self.options.bump_after:
            note = f"unmined after {self.options.bump_after:g} s"
        else:
            return TxStatus("pending", tx)
        bumped = self._bumped(tx)
        if bumped is None:  # at the fee ceiling: `_bumped` said so once
            return TxStatus("pending", tx)
        sent, taken = self._send_raw(bumped)
        if not taken:  # the node still holds `tx` as it was
            return TxStatus("pending", tx)
        return TxStatus("pending", sent, note=f"{note}: fees raised")

    def settle(self, tx: SentTx, timeout: float | None = None) -> TxReceipt:
        """Poll `tx` until it is done (at most `timeout`, default `receipt_timeout`, seconds);
        return its receipt, or raise why not."""
        status = self.wait(tx, self.options.receipt_timeout if timeout is None else timeout)
        if status.state != "pending":
            return self.outcome(status)
        raise ChainError(
            f"{tx.action}: no receipt at {self.confirmations} confirmation(s) for {status.tx.hashes[-1]} "
            f"after {self.options.receipt_timeout:.0f} s: it may still be mined; check it before "
            "sending again"
        )

    @staticmethod
    def outcome(status: TxStatus) -> TxReceipt:
        """The receipt of a confirmed transaction; for one that reverted or was lost, the error."""
        if status.state == "confirmed" and status.receipt is not None:
            return status.receipt
        if status.error is not None:
            raise status.error
        raise TxLost(f"{status.tx.action}: {status.note}: it did not happen")

    def wait(self, tx: SentTx, seconds: float) -> TxStatus:
        """`poll` until `tx` is no longer pending or `seconds` have passed."""
        deadline = time.monotonic() + seconds
        delay = 0.05
        while True:
            status = self.poll(tx)
            if status.note:
                log.info("%s %s: %s", tx.action, status.tx.hashes[-1], status.note)
            if status.state != "pending" or time.monotonic() >= deadline:
                return status
            tx = status.tx
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, 1.0)

    def _find_receipt(self, tx: SentTx) -> TxReceipt | None:
        for tx_hash in reversed(tx.hashes):
            receipt = rpc_read(partial(self._receipt_or_none, tx_hash), "transaction receipt")
            if receipt is not None:
                return receipt
        return None

    def _receipt_or_none(self, tx_hash: str) -> TxReceipt | None:
        try:
            receipt = self.w3.eth.get_transaction_receipt(HexBytes(tx_hash))
        except TransactionNotFound:
            return None
        if receipt is None:
            return None
        if not (
            receipt.get("status") in (0, 1)
            and type(receipt.get("blockNumber")) is int
            and isinstance(receipt.get("transactionHash"), bytes)
        ):
            raise ChainError("a malformed receipt: is the RPC endpoint an Ethereum node?")
        return receipt

    def _known(self, tx_hash: str) -> bool:
        def ask() -> bool:
            try:
                return self.w3.eth.get_transaction(HexBytes(tx_hash)) is not None
            except TransactionNotFound:
                return False

        return rpc_read(ask, "transaction")

    def latest_block(self) -> int:
        """The node's newest block number, a checked quantity."""
        return rpc_int(lambda: self.w3.eth.block_number, "block number")

    def _judge(self, tx: SentTx, receipt: TxReceipt) -> TxStatus:
        latest = self.latest_block()
        # A receipt is in a block: one behind the node's latest (a load-balanced endpoint) is 1.
        depth = max(1, latest - receipt["blockNumber"] + 1)
        if depth < self.confirmations:
            return TxStatus("pending", tx, receipt)
        self._inflight.pop(tx.nonce, None)
        if receipt["status"] != 1:
            return TxStatus(
                "reverted",
                tx,
                receipt,
                self._reverted(tx.fields(chain_id(self.w3), self.address), receipt, tx.action),
            )
        return TxStatus("confirmed", tx, receipt)

    def _reverted(self, tx: dict[str, Any], receipt: TxReceipt, action: str) -> ChainError:
        """Why a mined transaction reverted: replayed as a call on the state its block left, it
        usually reverts again with the reason (most often a race another sender won in the same
        block), decoded like any other revert."""
        failed = ChainError(
            f"{action} reverted on chain in transaction 0x{receipt['transactionHash'].hex()}"
        )
        if not tx.get("to"):
            return failed
        replay = {k: tx[k] for k in ("from", "to", "data", "value", "gas") if k in tx}
        replay.setdefault("from", self.address)
        try:
            with_retries(lambda: self.w3.eth.call(replay, receipt["blockNumber"]))
        except ChainError:
            return failed
        except Exception as exc:
            explained = self._explain(exc, action)
            if isinstance(explained, ContractRevert):
                return explained
        return failed

    def deploy(self, abi: list[dict[str, Any]], bytecode: str, *args: Any) -> tuple[str, TxReceipt]:
        """Deploy a contract; return its checksum address and the deployment receipt."""
        ctor = self.w3.eth.contract(abi=abi, bytecode=bytecode).constructor(*args)
        receipt = self.send(self._build(ctor, {"from": self.address}, "deploy"), "deploy")
        address = receipt.get("contractAddress")
        if not isinstance(address, str) or not is_address(address):
            raise ChainError(
                f"the deployment receipt names no contract address ({one_line(repr(address), 60)})"
            )
        return to_checksum_address(address), receipt

    def balance(self, address: str | None = None) -> int:
        """Ether balance in wei of `address` (default: this account)."""
        return rpc_int(lambda: self.w3.eth.get_balance(address or self.address), "balance")

    def _build(
        self,
        fn: ContractFunction | ContractConstructor,
        tx_fields: dict[str, Any],
        action: str,
        gas_limit: int | None = None,
    ) -> dict[str, Any]:
        """The transaction of `fn`, with nonce, chain id, fees and gas: `gas_limit` after a call
        that must not revert, else estimated (either way a revert raises `ContractRevert`)."""
        if gas_limit is not None and isinstance(fn, ContractFunction):
            try:  # on the pending block, where the transaction would land, as an estimate is
                with_retries(lambda: fn.call(tx_fields, "pending"))
            except ChainError:
                raise
            except Exception as exc:
                raise self._explain(exc, action) from exc
            return self._complete(fn, tx_fields, gas_limit)
        try:
            gas = with_retries(lambda: fn.estimate_gas(tx_fields))
        except ChainError:
            raise
        except Exception as exc:
            if revert_data(exc) is None and isinstance(fn, ContractFunction):
                # Some providers drop the revert data of a failed estimate: replay it as a call.
                try:
                    fn.call(tx_fields)
                except Exception as replayed:
                    if revert_data(replayed) is not None:
                        raise self._explain(replayed, action) from exc
            raise self._explain(exc, action) from exc
        gas = quantity(gas, f"{action} gas estimate", low=1)
        return self._complete(fn, tx_fields, int(gas * self.options.gas_margin) + 10_000)

    def _complete(
        self, fn: ContractFunction | ContractConstructor, tx_fields: dict[str, Any], gas: int
    ) -> dict[str, Any]:
        return dict(
            fn.build_transaction(
                {
                    **tx_fields,
                    "gas": gas,
                    "nonce": self._nonce(),
                    "chainId": chain_id(self.w3),
                    **self._fees(),
                }
            )
        )

    def _nonce(self) -> int:
        """The node's count of this account's transactions, mined and pending, stepped over the
        nonces this client sent and not yet saw done that the node does not count yet. The
        lowest free nonce from the node's count up: after a reorg took transactions back, a new
        one fills the gap first (a count kept here alone would leave the gap, and every later
        transaction would wait behind it forever)."""
        nonce = rpc_int(lambda: self.w3.eth.get_transaction_count(self.address, "pending"), "nonce")
        while nonce in self._inflight:
            nonce += 1
        return nonce

    def _base_fee(self) -> int:
        """The base fee the next block will charge: the pending block's where the node tells
        it (a spike shows there first), else the latest block's; 0 without EIP-1559."""
        fees = [
            rpc_read(lambda: self.w3.eth.get_block("latest").get("baseFeePerGas"), "latest block")
        ]
        try:
            fees.append(self.w3.eth.get_block("pending").get("baseFeePerGas"))
        except Exception:  # a node without a pending block: the latest one will do
            log.debug("no pending block from %s", describe_endpoint(self.w3))
        return max((quantity(fee, "base fee") for fee in fees if fee is not None), default=0)

    def _fees(self) -> dict[str, int]:
        """Fees for a new transaction: a fee cap of twice the base fee plus the tip (room for
        six blocks of rising base fee), never above `max_fee_wei`."""
        ceiling = self.options.max_fee_wei
        base_fee = rpc_read(
            lambda: self.w3.eth.get_block("latest").get("baseFeePerGas"), "latest block"
        )
        if base_fee is None:
            price = rpc_int(lambda: self.w3.eth.gas_price, "gas price")
            return {"gasPrice": min(price, ceiling)}
        base_fee = quantity(base_fee, "base fee")
        tip = min(self.options.tip_wei, ceiling)
        return {"maxFeePerGas": min(2 * base_fee + tip, ceiling), "maxPriorityFeePerGas": tip}

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
        return ChainError(f"{action} failed: {one_line(message, 200) or type(exc).__name__}")
