"""The embedded chain every in-process relay runs on (the demo, the simulation, the benchmarks and
the contract tests): eth-tester's py-evm backend with funded dev accounts, a `ChainClient` per
account and, when asked, a freshly deployed DeRelay contract.

The one way to skip gas estimation here is `FixedGasClient`: py-evm estimates by a binary search
that runs each transaction a dozen times. The product's own fixed limits (`FIXED_GAS` in
`derelay.trainer.contract`) are for workers under load and are untouched by it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_tester import EthereumTester, PyEVMBackend
from web3 import EthereumTesterProvider, Web3
from web3.types import TxReceipt

from derelay.trainer.chain import ChainClient, RevertDecoder
from derelay.trainer.contract import ETHER, DeRelayContract, decoder_for


class ReceiptCachingBackend(PyEVMBackend):
    """eth-tester's py-evm backend finds a transaction by scanning blocks back from the head, which
    makes every `get_logs` quadratic in the chain's length (minutes for a few hundred rounds).
    A mined receipt never changes while the chain is not reverted, so this backend keeps them by
    hash, and forgets them all on a revert or reset."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._receipts: dict[bytes, Any] = {}
        super().__init__(*args, **kwargs)

    def get_transaction_receipt(self, transaction_hash: bytes) -> Any:
        cached = self._receipts.get(transaction_hash)
        if cached is not None:
            return cached
        receipt = super().get_transaction_receipt(transaction_hash)
        if receipt.get("block_number") is not None:
            self._receipts[transaction_hash] = receipt
        return receipt

    def revert_to_snapshot(self, snapshot: Any) -> None:
        self._receipts.clear()
        super().revert_to_snapshot(snapshot)

    def reset_to_genesis(self, *args: Any, **kwargs: Any) -> None:
        self._receipts.clear()
        super().reset_to_genesis(*args, **kwargs)


class FixedGasClient(ChainClient):
    """A `ChainClient` that skips the gas estimate. One preflight call stands in for it, so a
    revert is decoded before anything is sent, exactly as `ChainClient` decodes one found while
    estimating; the transaction then goes out with a fixed, ample gas limit (or the one a binding
    asks for). Every mined transaction's gas cost goes to `on_gas(address, wei)`: gasUsed times
    `gas_price`, or times the receipt's effective price when that is None."""

    GAS_LIMIT = 3_000_000

    def __init__(
        self,
        *args: Any,
        on_gas: Callable[[str, int], None] | None = None,
        gas_price: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.on_gas = on_gas
        self.gas_price = gas_price

    def transact(self, fn: Any, action: str, value: int = 0, gas: int | None = None) -> TxReceipt:
        return super().transact(fn, action, value, gas or self.GAS_LIMIT)

    def send(self, tx: dict[str, Any], action: str) -> TxReceipt:
        receipt = super().send(tx, action)
        if self.on_gas is not None:
            price = self.gas_price
            if price is None:
                price = int(receipt["effectiveGasPrice"])
            self.on_gas(self.address, int(receipt["gasUsed"]) * price)
        return receipt


def send_fixed(view: DeRelayContract, name: str, *args: Any, value: int = 0) -> TxReceipt:
    """Send contract function `name(*args)` from `view`'s account through a `FixedGasClient` (no
    estimate, no journal of the view's own client): for transactions that only set the stage of
    what is measured. The nonce is the node's count, so the view's client goes on after it."""
    client = view.client
    fixed = FixedGasClient(client.w3, client.account, client.decoder, client.options)
    return fixed.transact(getattr(view.contract.functions, name)(*args), name, value)


ClientFactory = Callable[[Web3, LocalAccount, RevertDecoder], ChainClient]


def clients_for(
    w3: Web3, accounts: Sequence[LocalAccount], make: ClientFactory = ChainClient
) -> list[ChainClient]:
    """A client per account on `w3` (any chain), in order, sharing one revert decoder."""
    decoder = decoder_for()
    return [make(w3, account, decoder) for account in accounts]


@dataclass
class EmbeddedChain:
    """The in-process chain and a clock that moves only when told."""

    tester: EthereumTester
    w3: Web3

    def now(self) -> int:
        """The latest block's timestamp."""
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def advance(self, seconds: int) -> None:
        """Move the chain's clock `seconds` forward (the next transaction sees it)."""
        self.tester.time_travel(self.now() + seconds)

    def advance_to(self, timestamp: int) -> None:
        """Make the next block's timestamp at least `timestamp` (and later than the latest)."""
        self.tester.time_travel(max(timestamp, self.now() + 1))

    def fund(self, accounts: Sequence[LocalAccount], ether_each: int) -> None:
        """Send `ether_each` ether to each account from eth-tester's funded account."""
        funder = self.tester.get_accounts()[0]
        for account in accounts:
            self.tester.send_transaction(
                {"from": funder, "to": account.address, "value": ether_each * ETHER, "gas": 21_000}
            )


def start_chain(accounts: Sequence[LocalAccount] = (), ether_each: int = 1_000) -> EmbeddedChain:
    """A fresh embedded chain with `accounts` funded with `ether_each` ether each."""
    tester = EthereumTester(ReceiptCachingBackend())
    chain = EmbeddedChain(tester, Web3(EthereumTesterProvider(tester)))
    chain.fund(accounts, ether_each)
    return chain


@dataclass
class EmbeddedRelay:
    """A fresh embedded chain, a client per funded account and DeRelay deployed by clients[0]."""

    chain: EmbeddedChain
    clients: list[ChainClient]
    relay: DeRelayContract  # seen by clients[0], the publisher

    @property
    def w3(self) -> Web3:
        return self.chain.w3


def start_relay(
    accounts: Sequence[LocalAccount], ether_each: int = 1_000, make: ClientFactory = ChainClient
) -> EmbeddedRelay:
    """`start_chain`, then a client per account made by `make` and DeRelay deployed by the first."""
    chain = start_chain(accounts, ether_each)
    clients = clients_for(chain.w3, accounts, make)
    return EmbeddedRelay(chain, clients, DeRelayContract.deploy(clients[0]))
