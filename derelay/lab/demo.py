"""`derelay demo`: a whole relay in one process, with nothing to set up.

The embedded chain (eth-tester, the real contract) and a `LocalStore` stand in for ganache and
IPFS; everything else is what runs in production: real workers (5 relayers on non-IID shards of
the digits set, 3 validators, a keeper) training a real MLP, journaled, paid by the contract.
Block time is the only thing the demo moves by hand: when no worker has anything to do, it jumps
the chain's clock to the next deadline instead of waiting for it.
"""

from __future__ import annotations

import csv
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from derelay.deploy.tasks import publish_task
from derelay.lab.harness import EmbeddedChain, start_relay
from derelay.trainer.cid import Cid
from derelay.trainer.contract import ETHER, DeRelayContract, Phase
from derelay.trainer.journal import Journal
from derelay.trainer.keys import dev_account
from derelay.trainer.ledger import task_ledger
from derelay.trainer.payouts import Payout, task_payouts
from derelay.trainer.shards import ShardPlan, relayer_shards, validator_shards
from derelay.trainer.spec import digits_mlp_spec
from derelay.trainer.store import LocalStore
from derelay.trainer.worker import Roles, Worker, WorkerConfig

RELAYERS = 5
VALIDATORS = 3
DEMO_PARAMS = dict(
    min_stake=ETHER // 10,
    validator_stake=ETHER // 10,
    turn_duration=600,
    commit_window=60,
    reveal_window=60,
    quorum=2,
    max_validators=VALIDATORS,
)


@dataclass(frozen=True)
class FinalizedRound:
    """One finalized round, as the live view and rounds.csv show it: the review's medians (0 in a
    void round), then the head and the champion after it."""

    round: int
    relayer: str
    verdict: str
    child_score: int  # lower median of the child's scores
    champion_measured: int  # lower median of the champion's scores, on the same held-out data
    delta: int  # lower median of the paired differences: what decides
    head_score: int
    champion_score: int
    crowned: bool  # the child became the champion
    reward: int
    pool: int


@dataclass(frozen=True)
class DemoResult:
    """What the demo produced."""

    out_dir: Path
    task_id: int
    genesis_score: int
    rows: list[FinalizedRound]
    payouts: list[Payout]
    seconds: float


def _short(address: str) -> str:
    return f"{address[:6]}..{address[-4:]}"


def run_demo(
    out_dir: Path, rounds: int = 20, seed: int = 0, echo: Callable[[str], None] = print
) -> DemoResult:
    """Run `rounds` finalized rounds and write the curve, payouts and lineage into `out_dir`."""
    started = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    embedded = start_relay(
        [dev_account(i) for i in range(2 + RELAYERS + VALIDATORS)], ether_each=100
    )
    chain, clients, publisher = embedded.chain, embedded.clients, embedded.relay
    store = LocalStore(out_dir / "store")
    spec = digits_mlp_spec()
    published = publish_task(
        publisher, store, spec, funding=5 * ETHER, overrides=DEMO_PARAMS, data_seed=seed
    )
    task_id = published.task_id
    echo(
        f"task {task_id}: digits MLP, genesis {published.genesis_cid} scores {published.genesis_score} bp; "
        f"{RELAYERS} relayers (Dirichlet 0.5), {VALIDATORS} validators, 1 keeper"
    )

    plan = ShardPlan(relayers=RELAYERS, validators=VALIDATORS, alpha=0.5, seed=seed)
    shards = relayer_shards(spec, plan)
    holdouts = validator_shards(spec, plan)
    # A journal holds one chain's turns and ballots, and every demo runs a fresh chain whose task 1
    # is not the last run's: its workers would resend that run's children and skip its ballots.
    journals = out_dir / "journals"
    shutil.rmtree(journals, ignore_errors=True)
    workers: list[Worker] = []
    for i in range(RELAYERS):
        client = clients[2 + i]
        config = WorkerConfig(
            task_id, Roles(relayer=True, validator=False, keeper=False), seed=seed + i
        )
        journal = Journal(journals / f"{client.address}.json")
        workers.append(
            Worker(publisher.as_account(client), store, spec, config, journal, train_data=shards[i])
        )
    for i in range(VALIDATORS):
        client = clients[2 + RELAYERS + i]
        config = WorkerConfig(task_id, Roles(relayer=False, validator=True, keeper=False))
        journal = Journal(journals / f"{client.address}.json")
        workers.append(
            Worker(publisher.as_account(client), store, spec, config, journal, holdout=holdouts[i])
        )
    keeper_config = WorkerConfig(task_id, Roles(relayer=False, validator=False, keeper=True))
    workers.append(
        Worker(
            publisher.as_account(clients[1]),
            store,
            spec,
            keeper_config,
            Journal(journals / "keeper.json"),
        )
    )

    rows: list[FinalizedRound] = []
    seen_block = 0
    echo(
        f"{'round':>5}  {'relayer':14}  {'verdict':9}  {'child':>6}  {'champ':>6}  {'delta':>6}  "
        f"{'head':>6}  {'champion':>9}  {'reward':>12}  {'pool':>10}"
    )
    while len(rows) < rounds:
        acted = False
        for worker in workers:
            acted = bool(worker.tick()) or acted
        latest = publisher.client.latest_block()
        ledger = task_ledger(publisher, task_id, from_block=seen_block, to_block=latest)
        for facts in sorted(ledger.rounds.values(), key=lambda f: f.round):
            if facts.verdict is None:
                continue
            verdict = facts.verdict
            state = publisher.task_state(task_id)
            row = FinalizedRound(
                round=facts.round,
                relayer=verdict.relayer,
                verdict=verdict.status.name.lower(),
                child_score=verdict.child_score,
                champion_measured=verdict.champion_score,
                delta=verdict.delta,
                head_score=state.head_score,
                champion_score=state.champion_score,
                crowned=facts.crowned,
                reward=verdict.reward,
                pool=state.pool,
            )
            rows.append(row)
            echo(
                f"{row.round:5}  {_short(row.relayer):14}  {row.verdict:9}  {row.child_score:6}  "
                f"{row.champion_measured:6}  {row.delta:+6d}  {row.head_score:6}  "
                f"{row.champion_score:6}{' *' if row.crowned else '  '} "
                f"{row.reward / ETHER:10.6f} E  {row.pool / ETHER:8.4f} E"
            )
        seen_block = latest + 1
        if not acted:
            _jump_to_next_deadline(chain, publisher, task_id)

    state = publisher.task_state(task_id)
    echo(
        f"champion {Cid.from_bytes(state.champion_cid)} scores {state.champion_score} bp (what "
        f"`derelay model get` licenses); head {Cid.from_bytes(state.head_cid)} scores "
        f"{state.head_score} bp"
    )
    payouts = task_payouts(publisher, task_id)
    result = DemoResult(
        out_dir, task_id, published.genesis_score, rows, payouts, time.perf_counter() - started
    )
    _write_outputs(result, publisher)
    return result


def _jump_to_next_deadline(chain: EmbeddedChain, relay: DeRelayContract, task_id: int) -> None:
    state = relay.task_state(task_id)
    now = chain.now()
    if state.phase == Phase.REVIEW:
        target = state.deadline + 1 if now <= state.deadline else state.reveal_end + 1
    else:
        target = state.deadline + 1
    chain.advance_to(target)


def _write_outputs(result: DemoResult, relay: DeRelayContract) -> None:
    from derelay.lab.plots import plot_series

    out = result.out_dir
    with (out / "rounds.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "round",
                "relayer",
                "verdict",
                "child_bp",
                "champion_measured_bp",
                "delta_bp",
                "head_score_bp",
                "champion_score_bp",
                "crowned",
                "reward_wei",
                "pool_wei",
            ]
        )
        for r in result.rows:
            writer.writerow(
                [
                    r.round,
                    r.relayer,
                    r.verdict,
                    r.child_score,
                    r.champion_measured,
                    r.delta,
                    r.head_score,
                    r.champion_score,
                    int(r.crowned),
                    r.reward,
                    r.pool,
                ]
            )
    (out / "payouts.json").write_text(
        json.dumps([p.to_json() for p in result.payouts], indent=2) + "\n"
    )
    lineage = [e.to_json() for e in relay.full_lineage(result.task_id)]
    (out / "lineage.json").write_text(json.dumps(lineage, indent=2) + "\n")
    plot_series(
        out / "accuracy.png",
        [0] + [r.round for r in result.rows],
        {
            "head": [result.genesis_score / 100] + [r.head_score / 100 for r in result.rows],
            "champion": [result.genesis_score / 100]
            + [r.champion_score / 100 for r in result.rows],
        },
        xlabel="round",
        ylabel="accuracy (%)",
        title="DeRelayL demo: head and champion (median of validators' scores)",
    )
