"""A JSON-RPC node that answers garbage: not JSON, wrong ids, results of the wrong type, error
objects, huge bodies, HTTP errors, hang-ups, slow replies. Chain reads, transactions and a
worker's tick raise ChainError in one clear line (transient for the worker: it tries again next
tick), never another exception, and the worker's journal stays valid.

The node is `tests.support.fuzz.GarbageNode`, on 127.0.0.1 in a thread: it answers like a plain node (or
forwards to ganache) until told which replies to spoil, and is shut down after each test.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web3 import Web3

from derelay.deploy.tasks import publish_task
from derelay.trainer.chain import BoundedHTTPProvider, ChainClient, TxOptions, connect
from derelay.trainer.contract import DeRelayContract, Phase, Status, TaskState, decoder_for
from derelay.trainer.errors import ChainError
from derelay.trainer.journal import BallotEntry, Journal
from derelay.trainer.keys import dev_account
from derelay.trainer.shards import ShardPlan, relayer_shards, validator_shards
from derelay.trainer.spec import digits_mlp_spec
from derelay.trainer.store import LocalStore
from derelay.trainer.worker import Roles, Worker, WorkerConfig
from tests.support import fuzz

pytestmark = pytest.mark.integration
ETH = 10**18
KINDS = sorted(fuzz.spoilers(random.Random(0), slow=1.0))


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[fuzz.Lab]:
    lab = fuzz.Lab(tmp_path)
    yield lab
    lab.close()


def _expect_chain_error(call: object) -> None:
    """Run `call`; it may succeed (garbage that happens to be valid) or raise a clear ChainError."""
    try:
        call()  # type: ignore[operator]
    except ChainError as exc:
        fuzz.rejected(exc)


@pytest.mark.parametrize("kind", sorted(set(KINDS) - fuzz.TRANSPORT))
def test_every_reply_garbage(lab, kind):
    # prepare: a client, the contract and a worker with a turn in its journal, then garbage only
    client, relay, worker = lab.chain_side
    journal = worker.journal.path.read_bytes()
    lab.node.spoil(fuzz.spoilers(random.Random(kind), slow=1.0)[kind])

    # act, check: each call fails in one clear line, or succeeds
    with pytest.raises(ChainError) as connecting:
        connect(lab.node.url, timeout=lab.timeout, max_reply_bytes=fuzz.HUGE)
    fuzz.rejected(connecting.value)
    _expect_chain_error(lambda: relay.task_state(1))
    _expect_chain_error(lambda: relay.join_relay(1, 10))
    _expect_chain_error(worker.tick)

    # check: the journal is as it was
    assert worker.journal.path.read_bytes() == journal
    assert Journal(worker.journal.path).turn(1, 0) is not None


@pytest.mark.parametrize(
    ("kind", "said"),
    [
        ("hang-up", "the RPC endpoint is unreachable after 4 tries"),
        ("trickle", "the RPC endpoint did not answer in time, 4 tries"),
    ],
)
def test_a_node_that_hangs_up_or_trickles_every_time_is_one_clear_error(lab, kind, said):
    # prepare
    client, relay, worker = lab.chain_side
    lab.node.spoil(fuzz.spoilers(random.Random(0), slow=2 * lab.timeout)[kind])

    # act
    with pytest.raises(ChainError) as info:
        worker.tick()

    # check: tried four times, then one line that says what went wrong and what to do
    assert str(info.value).startswith(said)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("kind", sorted(fuzz.TRANSPORT))
def test_a_reply_lost_once_is_tried_again(lab, kind):
    client, relay, worker = lab.chain_side
    lab.node.spoil(fuzz.spoilers(random.Random(0), slow=2 * lab.timeout)[kind], at={0})
    assert relay.task_state(1).round == 0


def test_a_reply_over_the_limit_is_refused_unread(lab):
    # prepare: the same node, a client that accepts at most 100 bytes
    w3 = Web3(BoundedHTTPProvider(lab.node.url, lab.timeout, max_reply_bytes=100))

    # act, check: the chain id fits, a block does not
    assert w3.eth.chain_id == 1337
    with pytest.raises(
        ChainError, match="more than 100 bytes, the limit: raise the rpc_reply_bytes limit"
    ):
        w3.eth.get_block("latest")


@settings(
    max_examples=40,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(rng=st.randoms(use_true_random=False))
def test_random_garbage_in_any_reply(lab, rng):
    assert fuzz.fuzz_rpc(rng, lab) in ("accepted", "rejected")


def test_a_worker_behind_a_node_that_spoils_replies_keeps_its_journal(chain_node, tmp_path):
    # prepare: a task on ganache; a relayer and a validator-keeper whose node forwards to
    # ganache but spoils one reply in ten, with garbage of any kind
    publisher = ChainClient(connect(chain_node.url), dev_account(0), decoder_for())
    relay = DeRelayContract.deploy(publisher)
    store = LocalStore(tmp_path / "store")
    spec = digits_mlp_spec()
    overrides = dict(min_stake=ETH, validator_stake=ETH, quorum=1, max_validators=1)
    task = publish_task(relay, store, spec, 5 * ETH, overrides).task_id
    plan = ShardPlan(relayers=1, validators=1, alpha=None)
    proxy = fuzz.GarbageNode(upstream=chain_node.url)

    def worker(index: int, roles: Roles) -> Worker:
        w3 = Web3(BoundedHTTPProvider(proxy.url, timeout=0.5, max_reply_bytes=fuzz.HUGE))
        client = ChainClient(w3, dev_account(index), decoder_for(), TxOptions(receipt_timeout=5))
        return Worker(
            DeRelayContract(client, relay.address),
            store,
            spec,
            WorkerConfig(task, roles),
            Journal(tmp_path / f"journal-{index}.json"),
            relayer_shards(spec, plan)[0],
            validator_shards(spec, plan)[0],
        )

    relayer = worker(1, Roles(relayer=True, validator=False, keeper=False))
    validator = worker(2, Roles(relayer=False, validator=True, keeper=True))
    proxy.spoil(_chaos(random.Random(7), rate=1 / 10))

    # act: tick both until round 1 is decided, moving the clock on once the ballot is in
    failures = 0
    try:
        for _ in range(60):
            for each in (relayer, validator):
                try:
                    each.tick()
                except ChainError as exc:  # what `run_scheduled` retries on the next tick
                    fuzz.rejected(exc)
                    failures += 1
                Journal(each.journal.path)  # still readable after every tick
            entries = relay.full_lineage(task)
            if len(entries) > 1 and entries[1].status != Status.PENDING:
                break
            ballot = Journal(validator.journal.path).ballot(task, 1)
            _next_window(publisher.w3, relay.task_state(task), ballot)
    finally:
        proxy.close()

    # check: the garbage hurt, yet round 1 was submitted once, scored, revealed and decided
    assert failures > 0
    first = [s for s in relay.full_lineage(task)[1:] if s.round == 1]  # round 2 may have begun
    assert [s.relayer for s in first] == [relayer.address]
    assert first[0].status in (Status.ACCEPTED, Status.HELD, Status.REJECTED)
    assert Journal(relayer.journal.path).turn(task, 1).phase == "submitted"
    ballot = Journal(validator.journal.path).ballot(task, 1)
    (reveal,) = [
        e["args"] for e in relay.events("ScoreRevealed", taskId=task) if e["args"]["round"] == 1
    ]
    assert ballot.phase == "revealed"
    assert (reveal["childScore"], reveal["championScore"]) == (
        ballot.child_score,
        ballot.champion_score,
    )


def _chaos(rng: random.Random, rate: float) -> fuzz.Spoiler:
    """Spoil each reply with probability `rate`, with garbage of a random kind."""
    kinds = fuzz.spoilers(rng, slow=1.0)

    def spoil(request: dict, honest: dict) -> fuzz.Reply:
        if rng.random() >= rate:
            return fuzz.as_reply(honest)
        return kinds[rng.choice(sorted(kinds))](request, honest)

    return spoil


def _next_window(w3: Web3, state: TaskState, ballot: BallotEntry | None) -> None:
    """Move the chain's clock past the commit window once the score is committed, and past the
    reveal window once it is revealed."""
    if state.phase != Phase.REVIEW or ballot is None or ballot.round != state.round:
        return
    end = {"committed": state.deadline, "revealed": state.reveal_end}.get(ballot.phase)
    now = int(w3.eth.get_block("latest")["timestamp"])
    if end is not None and now <= end:
        w3.provider.make_request("evm_increaseTime", [end - now + 1])
        w3.provider.make_request("evm_mine", [])
