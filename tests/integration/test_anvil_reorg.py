"""Reorgs on anvil: each kind of worker transaction (submission, commitment, reveal, finalize)
taken back by `anvil_reorg` at depth 1, 2 and 3 right after the worker saw it done. The workers
must notice and do it again in its window: every round reaches a verdict, nobody is charged for
a timeout or a missed review they did not cause, and no action lands twice."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest
from web3 import Web3

from derelay.deploy.tasks import publish_task
from derelay.trainer.chain import ChainClient, connect
from derelay.trainer.contract import Ballot, DeRelayContract, Phase, Status, decoder_for
from derelay.trainer.journal import Journal
from derelay.trainer.keys import dev_account
from derelay.trainer.services import RunningService, start_anvil
from derelay.trainer.shards import ShardPlan, relayer_shards, validator_shards
from derelay.trainer.spec import digits_mlp_spec
from derelay.trainer.store import LocalStore
from derelay.trainer.worker import Roles, Worker, WorkerConfig

pytestmark = pytest.mark.integration
ETH = 10**18
# What a worker's action line starts with, after "round N: ", for each kind of transaction.
KINDS = {
    "submitRelay": "submitted child",
    "commitScore": "committed scores",
    "revealScore": "revealed scores",
    "finalize": "finalized the review",
}
# Round -> kind -> reorg depth: over three rounds each kind is taken back at depths 1, 2 and 3.
PLAN = {
    1: {"submitRelay": 1, "commitScore": 2, "revealScore": 3, "finalize": 1},
    2: {"submitRelay": 2, "commitScore": 3, "revealScore": 1, "finalize": 2},
    3: {"submitRelay": 3, "commitScore": 1, "revealScore": 2, "finalize": 3},
}


@pytest.fixture
def anvil() -> Iterator[RunningService]:
    """A fresh anvil mining a block per transaction, so that a reorg's depth is exact."""
    service = start_anvil(None)
    yield service
    service.stop()


def _reorg(w3: Web3, depth: int) -> None:
    """Replace the last `depth` blocks (the newest holds the transaction) with empty ones."""
    for _ in range(depth - 1):
        w3.provider.make_request("evm_mine", [])
    reply = w3.provider.make_request("anvil_reorg", [depth, []])
    assert "error" not in reply, reply


def _next_window(w3: Web3, relay: DeRelayContract, task: int) -> None:
    """Once every seat has committed on chain, move the clock past the commit window (what a
    test would otherwise wait for); the keeper finalizes as soon as every seat has revealed."""
    state = relay.task_state(task)
    if state.phase != Phase.REVIEW:
        return
    seats = [s for s in relay.seats(task) if s.round == state.round]
    now = int(w3.eth.get_block("latest")["timestamp"])
    if (
        len(seats) == 2
        and all(s.ballot == Ballot.COMMITTED for s in seats)
        and now <= state.deadline
    ):
        w3.provider.make_request("evm_increaseTime", [state.deadline - now + 1])
        w3.provider.make_request("evm_mine", [])


def test_each_kind_of_transaction_taken_back_by_a_reorg_is_redone_once(anvil, tmp_path):
    # prepare: one relayer, two validators and a keeper, each its own account and journal
    w3 = connect(anvil.url)
    publisher = ChainClient(w3, dev_account(0), decoder_for())
    relay = DeRelayContract.deploy(publisher)
    store = LocalStore(tmp_path / "store")
    spec = digits_mlp_spec()
    overrides = dict(
        min_stake=ETH, validator_stake=ETH, quorum=2, max_validators=2,
        turn_duration=120, commit_window=60, reveal_window=60,
    )  # fmt: skip
    task = publish_task(relay, store, spec, 5 * ETH, overrides).task_id
    plan = ShardPlan(relayers=1, validators=2, alpha=None)
    holdouts = validator_shards(spec, plan)

    def worker(index: int, roles: Roles, holdout: int = 0) -> Worker:
        view = DeRelayContract(ChainClient(w3, dev_account(index), decoder_for()), relay.address)
        return Worker(
            view, store, spec, WorkerConfig(task, roles),
            Journal(tmp_path / f"journal-{index}.json"),
            relayer_shards(spec, plan)[0] if roles.relayer else None,
            holdouts[holdout] if roles.validator else None,
        )  # fmt: skip

    workers = [
        worker(1, Roles(relayer=True, validator=False, keeper=False)),
        worker(2, Roles(relayer=False, validator=True, keeper=False)),
        worker(3, Roles(relayer=False, validator=True, keeper=False), holdout=1),
        worker(4, Roles(relayer=False, validator=False, keeper=True)),
    ]
    done: set[tuple[int, str]] = set()  # (round, kind) already taken back once

    # act: tick every worker in turn; right after a worker reports a planned kind done, the
    # blocks holding it are replaced
    for _ in range(400):
        for each in workers:
            for line in each.tick():
                if not line.startswith("round "):
                    continue
                round_ = int(line.split(":")[0].removeprefix("round "))
                for kind, words in KINDS.items():
                    key = (round_, kind)
                    if words in line and round_ in PLAN and key not in done:
                        # a commitment or a reveal is taken back once, the first validator's
                        done.add(key)
                        _reorg(w3, PLAN[round_][kind])
        _next_window(w3, relay, task)
        if relay.task_state(task).round > max(PLAN):
            break

    # check: every planned reorg happened, and every round was decided by both reveals
    assert done == {(r, k) for r in PLAN for k in KINDS}
    finals = {e["args"]["round"]: e["args"] for e in relay.events("RoundFinalized", taskId=task)}
    assert sorted(finals) == sorted(PLAN)
    for args in finals.values():
        assert args["reveals"] == 2 and args["verdict"] != Status.VOID
    # nobody was charged for a timeout or a missed review, and no action landed twice
    for name in ("RelayerSlashed", "ValidatorSlashed", "ValidatorMissed"):
        assert relay.events(name, taskId=task) == [], name
    submitted = Counter(e["args"]["round"] for e in relay.events("RelaySubmitted", taskId=task))
    assert submitted == Counter(list(PLAN))
    for name in ("ScoreCommitted", "ScoreRevealed"):
        ballots = Counter(
            (e["args"]["validator"], e["args"]["round"]) for e in relay.events(name, taskId=task)
        )
        assert set(ballots.values()) == {1} and len(ballots) == 2 * len(PLAN), name
    assert all(w.journal.txs(task) == [] for w in workers)
