"""The chain client: connection errors, revert decoding, RPC replies that make no sense."""

from __future__ import annotations

import socket

import pytest
from eth_abi import encode
from eth_utils import function_signature_to_4byte_selector

from bench.fuzz import ADDRESS, GarbageNode, Reply, as_reply
from trainer.chain import RevertDecoder, connect, quantity, revert_data
from trainer.contract import TaskParams, load_abi
from trainer.errors import ChainError, ContractRevert


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_rpc_is_one_clear_error():
    with pytest.raises(ChainError, match="unreachable") as exc:
        connect(f"http://127.0.0.1:{_free_port()}", timeout=1)
    assert "\n" not in str(exc.value)


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
    assert error.name == "DeRelay__WrongRound"
    assert error.error_args == (1, 4, 5)
    assert "given=4, current=5" in str(error)
    assert "derelay status" in str(error)


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
    assert exc.value.name == "DeRelay__QueueFull"
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
    assert refused.value.name == "DeRelay__NothingToWithdraw"
    assert sender.w3.eth.get_transaction_count(sender.address) == nonce + 1
    assert sender.w3.eth.get_transaction(receipt["transactionHash"])["gas"] == 70_000
