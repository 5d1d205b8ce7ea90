"""The chain client: connection errors, revert decoding, RPC replies that make no sense."""

from __future__ import annotations

import logging
import socket

import pytest
from eth_abi import encode
from eth_account import Account
from eth_account.typed_transactions import TypedTransaction
from eth_utils import function_signature_to_4byte_selector, keccak
from hexbytes import HexBytes
from web3.exceptions import TransactionNotFound

from derelay.trainer.chain import (
    GWEI,
    ChainClient,
    RevertDecoder,
    SentTx,
    TxOptions,
    connect,
    default_confirmations,
    quantity,
    revert_data,
)
from derelay.trainer.contract import TaskParams, load_abi
from derelay.trainer.errors import ChainError, ContractRevert, Revert
from tests.support.fuzz import ADDRESS, GarbageNode, Reply, as_reply


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_rpc_is_one_clear_error():
    with pytest.raises(ChainError, match="unreachable") as exc:
        connect(f"http://127.0.0.1:{_free_port()}", timeout=1)
    assert "\n" not in str(exc.value)
    assert str(exc.value).endswith("start a chain there or check the RPC URL")
    assert exc.value.setting == "rpc"


def test_unsupported_rpc_scheme_is_refused():
    with pytest.raises(ChainError, match="unsupported RPC"):
        connect("ftp://example")


def test_custom_error_is_decoded_with_arguments_and_a_hint():
    # prepare
    decoder = RevertDecoder(load_abi())
    selector = function_signature_to_4byte_selector("DeRelay__WrongRound(uint256,uint256,uint256)")
    data = selector + encode(["uint256", "uint256", "uint256"], [1, 4, 5])

    # act
    error = decoder.decode(data, "submitRelay")

    # check
    assert error.name == Revert.WRONG_ROUND
    assert error.error_args == (1, 4, 5)
    assert "given=4, current=5" in str(error)
    assert str(error).endswith(": that round is over: read the task's current round")


def test_the_revert_enum_lists_exactly_the_contracts_errors():
    # prepare
    in_abi = [item["name"] for item in load_abi() if item["type"] == "error"]

    # act
    listed = [str(member) for member in Revert]

    # check: a new or renamed error of the contract fails here until the enum follows it
    assert sorted(listed) == sorted(in_abi)


def test_string_reasons_panics_and_garbage_are_all_readable():
    decoder = RevertDecoder(load_abi())
    reason = bytes.fromhex("08c379a0") + encode(["string"], ["nope"])
    panic = bytes.fromhex("4e487b71") + encode(["uint256"], [0x11])
    assert "nope" in str(decoder.decode(reason, "x"))
    assert "panic 0x11" in str(decoder.decode(panic, "x"))
    assert "without a reason" in str(decoder.decode(b"\x01\x02", "x"))
    selector = function_signature_to_4byte_selector("DeRelay__WrongRound(uint256,uint256,uint256)")
    assert "malformed" in str(decoder.decode(selector + b"\x00", "x"))


def test_eth_tester_revert_text_is_parsed_into_bytes():
    class TransactionFailed(Exception):
        pass

    raw = b"_\x8a@/" + bytes(32)
    assert revert_data(TransactionFailed(f"execution reverted: {raw!r}")) == raw
    assert revert_data(TransactionFailed("execution reverted: 0xdeadbeef")) == "0xdeadbeef"
    assert revert_data(TransactionFailed("something else")) is None


@pytest.mark.parametrize(("selector", "payload"), [("08c379a0", bytes(40)), ("4e487b71", bytes(5))])
def test_malformed_reason_or_panic_data_is_reported_as_such(selector, payload):
    # A node may send any bytes after the selector: decoding them used to raise InvalidPointer.
    decoder = RevertDecoder(load_abi())
    error = decoder.decode(bytes.fromhex(selector) + payload, "x")
    assert str(error).startswith("x reverted with malformed ")


def test_a_long_reason_stays_one_short_line():
    decoder = RevertDecoder(load_abi())
    reason = bytes.fromhex("08c379a0") + encode(["string"], ["line\n" * 2000])
    message = str(decoder.decode(reason, "x"))
    assert "\n" not in message and len(message) <= 300


@pytest.mark.parametrize(
    "value",
    [-1, 2**256, 16**5000, "0x1", None, True],
    ids=["negative", "2**256", "16**5000", "text", "none", "bool"],
)
def test_a_quantity_out_of_range_is_a_chain_error(value):
    # web3 turns a hex result of any length into an int; repr() of one over 4300 digits used to
    # raise ValueError while the message was being written
    with pytest.raises(ChainError, match="answered gas price .*: is it an Ethereum node"):
        quantity(value, "gas price")


def _task_params(**overrides: int) -> TaskParams:
    """The default task parameters, with made-up spec and genesis CIDs."""
    raw = bytes([1, 0x55, 0x12, 0x20])
    return TaskParams(
        spec_cid=raw + bytes(range(32)),
        genesis_cid=raw + bytes(range(1, 33)),
        genesis_score=5000,
        **overrides,
    )


def test_a_race_lost_on_chain_is_decoded_like_a_revert_at_estimation(relay, clients):
    # prepare: a queue of one seat, and a join by clients[2] built (gas estimated) while it was free
    params = _task_params(max_queue=1)
    task = relay.create_task(params)
    late = relay.as_account(clients[2])
    join = late.contract.functions.joinRelay(task)
    tx = clients[2]._build(join, {"from": clients[2].address, "value": params.min_stake}, "join")
    relay.as_account(clients[1]).join_relay(task, params.min_stake)

    # act: the built transaction is mined after the seat went
    with pytest.raises(ContractRevert) as exc:
        clients[2].send(tx, "joinRelay")

    # check
    assert exc.value.name == Revert.QUEUE_FULL
    assert "joinRelay reverted" in str(exc.value)
    assert relay.task_state(task).holder == clients[1].address


def test_the_chain_id_is_asked_once_per_endpoint():
    # prepare: a plain node that notes every method it is asked
    node = GarbageNode()
    asked: list[str] = []

    def note(request: dict, honest: dict) -> Reply:
        asked.append(request["method"])
        return as_reply(honest)

    node.spoil(note)
    try:
        # act: web3 checks the chain id before every call
        w3 = connect(node.url)
        for _ in range(3):
            w3.eth.call({"to": w3.to_checksum_address(ADDRESS), "data": "0x"})
    finally:
        node.close()

    # check
    assert asked.count("eth_chainId") == 1
    assert asked.count("eth_call") == 3


def test_a_fixed_gas_limit_skips_the_estimate_but_not_the_revert_check(relay, clients):
    # prepare
    params = _task_params()
    task = relay.create_task(params)
    sender = clients[1]
    nonce = sender.w3.eth.get_transaction_count(sender.address)

    # act: a revert is caught by the call before anything is sent; a good call goes out as is
    with pytest.raises(ContractRevert) as refused:
        sender.transact(relay.contract.functions.withdraw(), "withdraw", gas=60_000)
    receipt = sender.transact(relay.contract.functions.fund(task), "fund", value=7, gas=70_000)

    # check
    assert refused.value.name == Revert.NOTHING_TO_WITHDRAW
    assert sender.w3.eth.get_transaction_count(sender.address) == nonce + 1
    assert sender.w3.eth.get_transaction(receipt["transactionHash"])["gas"] == 70_000


# ---------------------------------------------------------------------- tracked transactions


class FakeNode:
    """A node whose mempool, blocks and base fee a test moves by hand: it drops, mines,
    reorganises and refuses transactions the way geth and anvil do, with their messages."""

    CHAIN_ID = 31337

    def __init__(self) -> None:
        self.pool: dict[str, dict] = {}  # hash -> decoded transaction, not mined
        self.mined: dict[str, int] = {}  # hash -> block number
        self.nonce = 0  # transactions of the account mined
        self.block_number = 100
        self.base_fee = 10**9
        self.gas_price = 10**9
        self.received: list[dict] = []  # every transaction the node took, in order
        self.refuse: list[str] = []  # messages to refuse the next sends with

    # the part of web3's `eth` the client uses
    @property
    def chain_id(self) -> int:
        return self.CHAIN_ID

    def get_block(self, tag: str) -> dict:
        return {"baseFeePerGas": self.base_fee, "number": self.block_number}

    def get_transaction_count(self, address: str, tag: str) -> int:
        """Mined, and with "pending" the pool's run of nonces that follows them (a nonce behind
        a gap waits, uncounted)."""
        count = self.nonce
        pooled = {t["nonce"] for t in self.pool.values()}
        while tag == "pending" and count in pooled:
            count += 1
        return count

    def send_raw_transaction(self, raw: bytes) -> HexBytes:
        if self.refuse:
            raise ValueError({"code": -32003, "message": self.refuse.pop(0)})
        tx = TypedTransaction.from_bytes(HexBytes(raw)).as_dict()
        tx_hash = "0x" + keccak(raw).hex()
        if tx_hash in self.pool:
            raise ValueError({"code": -32003, "message": "already known"})
        if tx["nonce"] < self.nonce:
            raise ValueError({"code": -32003, "message": "nonce too low"})
        if tx["maxFeePerGas"] < self.base_fee:
            raise ValueError(
                {"code": -32003, "message": "max fee per gas less than block base fee"}
            )
        for old_hash, old in list(self.pool.items()):
            if old["nonce"] == tx["nonce"]:
                if (
                    tx["maxFeePerGas"] * 10 < old["maxFeePerGas"] * 11
                    or tx["maxPriorityFeePerGas"] * 10 < old["maxPriorityFeePerGas"] * 11
                ):
                    raise ValueError(
                        {"code": -32003, "message": "replacement transaction underpriced"}
                    )
                del self.pool[old_hash]
        self.pool[tx_hash] = tx
        self.received.append({**tx, "hash": tx_hash})
        return HexBytes(tx_hash)

    def get_transaction(self, tx_hash: HexBytes) -> dict:
        key = HexBytes(tx_hash).to_0x_hex()
        if key in self.pool or key in self.mined:
            return {"hash": tx_hash}
        raise TransactionNotFound(key)

    def get_transaction_receipt(self, tx_hash: HexBytes) -> dict:
        key = HexBytes(tx_hash).to_0x_hex()
        if key not in self.mined:
            raise TransactionNotFound(key)
        return {"status": 1, "blockNumber": self.mined[key], "transactionHash": HexBytes(key)}

    # what a test does to the node
    def mine(self, blocks: int = 1) -> None:
        """Mine the next transaction of the account (if its fee cap allows), then empty blocks."""
        self.block_number += 1
        for tx_hash, tx in list(self.pool.items()):
            if tx["nonce"] == self.nonce and tx["maxFeePerGas"] >= self.base_fee:
                del self.pool[tx_hash]
                self.mined[tx_hash] = self.block_number
                self.nonce += 1
                break
        self.block_number += blocks - 1

    def drop(self) -> None:
        """Forget the mempool, as a restarted node or an evicting one does."""
        self.pool.clear()

    def reorg(self, depth: int) -> None:
        """Replace the last `depth` blocks with empty ones: their transactions are gone."""
        for tx_hash, block in list(self.mined.items()):
            if block > self.block_number - depth:
                del self.mined[tx_hash]
                self.nonce -= 1

    def take_nonce(self) -> None:
        """Another transaction of the same account (another process) is mined at the nonce."""
        self.pool.clear()
        self.nonce += 1
        self.block_number += 1


class FakeWeb3:
    def __init__(self, node: FakeNode) -> None:
        self.eth = node


def _client(node: FakeNode, **options) -> ChainClient:
    account = Account.from_key("0x" + "11" * 32)
    return ChainClient(FakeWeb3(node), account, RevertDecoder(load_abi()), TxOptions(**options))


def _sent(client: ChainClient, node: FakeNode, nonce: int | None = None) -> SentTx:
    """A transfer built as the client builds any transaction, then sent."""
    fields = {"to": ADDRESS, "data": "0x1234", "value": 5, "gas": 50_000, **client._fees()}
    fields["nonce"] = client._nonce() if nonce is None else nonce
    return client.broadcast(client.tracked(fields, "fund", "fund:1"))


def test_a_transaction_the_node_dropped_is_sent_again_with_its_nonce_and_effect():
    # prepare: sent, then the node forgets its mempool
    node = FakeNode()
    client = _client(node)
    tx = _sent(client, node)
    node.drop()

    # act
    status = client.poll(tx)
    node.mine()
    done = client.poll(status.tx)

    # check: the same signed transaction went out again, and it counts once mined
    assert status.state == "pending" and "sent again" in status.note
    first, again = node.received
    assert again == first  # same nonce, calldata, value, fees: the same hash
    assert done.state == "confirmed" and done.receipt["blockNumber"] == node.block_number


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_a_transaction_a_reorg_took_back_is_sent_again_until_deep_enough(depth):
    # prepare: three confirmations wanted; mined, then the blocks that held it are replaced
    node = FakeNode()
    client = _client(node, confirmations=3)
    tx = _sent(client, node)
    node.mine()
    shallow = client.poll(tx)
    node.mine(depth - 1)
    node.reorg(depth)

    # act
    again = client.poll(shallow.tx)
    node.mine()
    under_two = client.poll(again.tx)
    node.mine(2)
    done = client.poll(under_two.tx)

    # check
    assert shallow.state == "pending" and shallow.receipt is not None  # one block is not three
    assert again.state == "pending" and "sent again" in again.note
    assert [t["nonce"] for t in node.received] == [0, 0]
    assert under_two.state == "pending"
    assert done.state == "confirmed"


def test_nonce_too_low_is_resolved_by_what_landed():
    # prepare: a transaction replaced with higher fees; the first version is mined, so the
    # node refuses the second with "nonce too low"
    node = FakeNode()
    client = _client(node)
    tx = _sent(client, node)
    node.mine()
    bumped = client._bumped(tx)
    assert bumped is not None

    # act
    resent = client.broadcast(bumped)
    status = client.poll(resent)

    # check: the first version's receipt decides; nothing is sent a third time
    assert status.state == "confirmed"
    assert status.receipt["transactionHash"].to_0x_hex() == tx.hashes[0]
    assert len(node.received) == 1


def test_a_nonce_taken_by_another_transaction_is_lost_not_skipped_silently():
    # prepare: another process of the same account used the nonce first
    node = FakeNode()
    client = _client(node)
    tx = _sent(client, node)
    node.take_nonce()

    # act
    status = client.poll(tx)

    # check: reported lost (the caller decides the action again); the next nonce is the node's
    assert status.state == "lost" and "nonce 0 went to another transaction" in status.note
    assert client._nonce() == 1


def test_the_next_nonce_follows_the_node_after_a_reorg_took_transactions_back():
    # prepare: two transactions mined, then taken back by a reorg
    node = FakeNode()
    client = _client(node)
    for _ in range(2):
        tx = _sent(client, node)
        node.mine()
        assert client.poll(tx).state == "confirmed"
    node.reorg(2)

    # act: the next transaction
    tx = _sent(client, node)

    # check: no gap that would hold it back forever
    assert tx.nonce == 0


def test_a_new_transaction_fills_a_gap_a_reorg_left_below_one_in_flight():
    # prepare: nonce 0 mined and done; nonce 1 sent; a reorg takes nonce 0 back, so the node
    # holds nonce 1 behind a gap
    node = FakeNode()
    client = _client(node)
    first = _sent(client, node)
    node.mine()
    assert client.poll(first).state == "confirmed"
    _sent(client, node)
    node.reorg(1)

    # act
    tx = _sent(client, node)

    # check
    assert tx.nonce == 0


def test_an_underpriced_replacement_is_sent_with_fees_the_node_takes():
    # prepare: the node holds a transaction at nonce 0, from a process that died before
    # journaling it; ours has the same nonce and fees
    node = FakeNode()
    client = _client(node)
    fields = {"to": ADDRESS, "data": "0x1234", "value": 5, "gas": 50_000, "nonce": 0}
    fields.update(client._fees())
    node.refuse.append("replacement transaction underpriced")

    # act
    tx = client.broadcast(client.tracked(fields, "fund", "fund:1"))

    # check: same nonce and calldata, both fees up by at least 10%
    (taken,) = node.received
    assert (taken["nonce"], taken["data"], taken["value"]) == (0, HexBytes("0x1234"), 5)
    assert taken["maxFeePerGas"] * 10 >= fields["maxFeePerGas"] * 11
    assert taken["maxPriorityFeePerGas"] * 10 >= fields["maxPriorityFeePerGas"] * 11
    assert tx.hashes[-1] == taken["hash"] and len(tx.hashes) == 2


def test_a_fee_spike_within_the_ceiling_raises_the_fees_of_a_waiting_transaction():
    # prepare: sent at a base fee of 1 gwei; the base fee jumps to 100 gwei before it is mined
    node = FakeNode()
    client = _client(node, max_fee_wei=500 * GWEI)
    tx = _sent(client, node)
    node.base_fee = 100 * GWEI
    node.mine()

    # act
    status = client.poll(tx)
    node.mine()
    done = client.poll(status.tx)

    # check
    assert "fees raised" in status.note
    assert node.received[-1]["maxFeePerGas"] >= 2 * node.base_fee
    assert node.received[-1]["maxFeePerGas"] <= 500 * GWEI
    assert done.state == "confirmed"


def test_a_fee_spike_past_the_ceiling_is_one_warning_not_a_silent_wait(caplog):
    # prepare: a ceiling of 50 gwei; the base fee jumps to 100 gwei
    node = FakeNode()
    client = _client(node, max_fee_wei=50 * GWEI)
    tx = _sent(client, node)
    node.base_fee = 100 * GWEI
    node.mine()

    # act: three polls while the fee stays up, then it falls
    with caplog.at_level(logging.WARNING, logger="derelay.chain"):
        statuses = [client.poll(tx) for _ in range(3)]
    node.base_fee = 10 * GWEI
    raised = client.poll(statuses[-1].tx)
    node.mine()
    done = client.poll(raised.tx)

    # check: one line, naming the ceiling and what to do; mined once the fee fell
    assert all(s.state == "pending" for s in statuses)
    (line,) = [r.getMessage() for r in caplog.records]
    assert "fee ceiling of 50 gwei" in line and "raise the ceiling" in line and "\n" not in line
    assert done.state == "confirmed"
    assert all(t["maxFeePerGas"] <= 50 * GWEI for t in node.received)


def test_a_new_transaction_never_offers_more_than_the_ceiling():
    node = FakeNode()
    node.base_fee = 300 * GWEI
    client = _client(node, max_fee_wei=400 * GWEI)
    assert client._fees()["maxFeePerGas"] == 400 * GWEI


def test_dev_chains_need_one_confirmation_and_public_chains_more():
    assert default_confirmations(1337) == default_confirmations(31337) == 1
    assert default_confirmations(1) == 3 and default_confirmations(137) == 16
    assert default_confirmations(8453) >= 2  # any other public chain
    assert _client(FakeNode(), confirmations=5).confirmations == 5
