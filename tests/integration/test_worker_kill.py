"""kill -9 at each phase of a turn and of a review, then a restart: what the journal held at the
kill carries the round through (no double submission, no salt lost: the paired reveal still
happens in its window), every CID that went on chain names bytes that hash to it, and nobody is
slashed who the rules would not slash.

Each kill point is its own test (xdist spreads them) on a task of its own, published in-process
on the module's deployment; the keeper rides along with the validator that is never killed, and
the workers are stopped by SIGKILL once the round is accepted, so a point costs one task, three
worker start-ups, one restart and one review window."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from derelay.deploy.tasks import publish_task
from derelay.trainer.chain import ChainClient, connect
from derelay.trainer.cid import Cid
from derelay.trainer.contract import DeRelayContract, Status, decoder_for
from derelay.trainer.journal import Journal
from derelay.trainer.keys import dev_account
from derelay.trainer.models import load_weights
from derelay.trainer.services import RunningService
from derelay.trainer.spec import digits_mlp_spec
from derelay.trainer.store import KuboStore
from tests.conftest import CI_FIGURE

pytestmark = pytest.mark.integration
DERELAY = str(Path(sys.executable).parent / "derelay")
RELAYER, VALIDATORS = 1, (2, 3)
ROLES = {
    RELAYER: ["--roles", "relayer", "--shard", "1/1", "--alpha", "0"],
    VALIDATORS[0]: ["--roles", "validator", "--holdout-shard", "1/2"],
    VALIDATORS[1]: ["--roles", "validator,keeper", "--holdout-shard", "2/2"],
}
# The turn outlives a restart; the commit window outlives scoring on a loaded CI machine.
WINDOWS = {"turn_duration": 120, "commit_window": 6, "reveal_window": 40}


@dataclass
class Deployment:
    """The contract deployed by `derelay deploy` in `base`, the environment that points the
    workers at the dev chain and node, the publisher's view, and the node as a store."""

    base: Path
    env: dict[str, str]
    publisher: DeRelayContract
    store: KuboStore


@pytest.fixture(scope="module")
def deployment(
    chain_node: RunningService,
    ipfs_node: RunningService,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Deployment]:
    base = tmp_path_factory.mktemp("kill")
    env = {**os.environ, "DERELAY_RPC": chain_node.url, "DERELAY_IPFS": ipfs_node.url}
    done = subprocess.run(
        [DERELAY, "deploy", "--dev-account", "0"], env=env, cwd=base, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    (record,) = (base / "deployments").glob("*.json")  # named by the chain's id
    address = json.loads(record.read_text())["address"]
    client = ChainClient(connect(chain_node.url), dev_account(0), decoder_for())
    store = KuboStore(ipfs_node.url)
    yield Deployment(base, env, DeRelayContract(client, address), store)
    store.close()


def _worker(deployment: Deployment, account: int, task: int, failpoint: str | None):
    args = [DERELAY, "-v", "worker", "--dev-account", str(account), "--task", str(task), "--poll", "0.5",
            "--journal", f"journal-{task}-{account}.json", *ROLES[account]]  # fmt: skip
    log = (deployment.base / f"worker-{task}-{account}.log").open("a")
    extra = {"DERELAY_FAILPOINT": failpoint} if failpoint else {}
    return subprocess.Popen(
        args,
        env={**deployment.env, **extra},
        cwd=deployment.base,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def _closed(journal: Path, task: int, victim: int) -> bool:
    """Whether the victim's journal has closed round 1: its child submitted, or its scores
    revealed (a restarted worker catches up with the chain on its first ticks)."""
    book = Journal(journal)
    entry = book.turn(task, 1) if victim == RELAYER else book.ballot(task, 1)
    return entry is not None and entry.phase == ("submitted" if victim == RELAYER else "revealed")


@pytest.mark.parametrize(
    ("point", "victim", "at_kill"),
    [
        # the journal's record of round 1 when the victim dies: a turn entry for the relayer, a
        # ballot for the validator (None: nothing recorded yet)
        ("after-download", RELAYER, None),
        ("before-training", RELAYER, None),
        ("after-pin", RELAYER, "trained"),
        ("after-send:submitRelay", RELAYER, "submitting"),
        ("after-commit", VALIDATORS[0], "scored"),
    ],
)
def test_killed_then_restarted(deployment, point, victim, at_kill, record_property):
    # prepare: a task of its own, the relayer and both validators, the victim with its failpoint
    started = time.monotonic()
    spec = digits_mlp_spec()
    task = publish_task(deployment.publisher, deployment.store, spec, 10**18, WINDOWS).task_id
    journal = deployment.base / f"journal-{task}-{victim}.json"
    processes = {a: _worker(deployment, a, task, point if a == victim else None) for a in ROLES}
    try:
        # act: the victim dies by SIGKILL at the failpoint; what its journal holds then is read,
        # and it restarts without the failpoint
        assert processes[victim].wait(timeout=120) == -signal.SIGKILL
        book = Journal(journal)
        turn_at_kill, ballot_at_kill = book.turn(task, 1), book.ballot(task, 1)
        processes[victim] = _worker(deployment, victim, task, None)
        deadline = time.monotonic() + 150
        while not (
            deployment.publisher.task_state(task).accepted_count >= 1
            and _closed(journal, task, victim)
        ):
            assert time.monotonic() < deadline, (
                f"round 1 of task {task} was not accepted, or the restarted victim did not close it"
            )
            time.sleep(0.5)
    finally:
        for p in processes.values():
            p.kill()
            p.wait(timeout=60)

    # check: the victim died where the point says
    at = turn_at_kill if victim == RELAYER else ballot_at_kill
    assert (at.phase if at else None) == at_kill
    # no double submission: round 1 went out once, accepted, and it is what the relayer's journal
    # holds (the child pinned before a kill, not a second one trained after it)
    relay = deployment.publisher
    first = relay.full_lineage(task)[1]
    assert (first.round, first.status) == (1, Status.ACCEPTED)
    sent = [e["args"] for e in relay.events("RelaySubmitted", taskId=task)]
    assert [s["round"] for s in sent].count(1) == 1
    turn = Journal(deployment.base / f"journal-{task}-{RELAYER}.json").turn(task, 1)
    assert turn is not None and turn.phase == "submitted"
    assert turn.child_cid == str(Cid.from_bytes(first.cid))
    if turn_at_kill is not None:
        assert turn_at_kill.child_cid == turn.child_cid
    # no salt lost: both validators revealed paired scores for round 1 in the window, the victim
    # with the salt its journal held at the kill
    reveals = [e["args"] for e in relay.events("ScoreRevealed", taskId=task, round=1)]
    assert {r["validator"] for r in reveals} == {dev_account(v).address for v in VALIDATORS}
    assert all(r["childScore"] > 0 and r["championScore"] > 0 for r in reveals)
    if ballot_at_kill is not None:
        ballot = Journal(journal).ballot(task, 1)
        assert ballot is not None and ballot.phase == "revealed"
        assert ballot.salt == ballot_at_kill.salt
    assert relay.events("RelayerSlashed", taskId=task) == []
    assert relay.events("ValidatorSlashed", taskId=task) == []
    # no unverified bytes: each child and card on chain is on the node, and hashes to its CID (the
    # store re-hashes); the child loads as weights of the spec, the card names its parent
    genesis = Cid.from_bytes(relay.full_lineage(task)[0].cid)
    for s in sent:
        child = deployment.store.get(Cid.from_bytes(s["childCid"]))
        assert set(load_weights(child, spec)) == set(spec.param_shapes())
        card = json.loads(deployment.store.get(Cid.from_bytes(s["metadataCid"])))
        assert card["round"] == s["round"] and card["task"] == task
    assert json.loads(deployment.store.get(Cid.from_bytes(sent[0]["metadataCid"])))["parent"] == (
        str(genesis)
    )
    role = "relayer" if victim == RELAYER else "validator"
    record_property(
        CI_FIGURE,
        f"kill -9 at {point}: {role} killed in round 1 (journal: {at_kill or 'empty'}), "
        f"restarted; round 1 sent once, accepted, revealed by 2 validators "
        f"({time.monotonic() - started:.0f} s)",
    )
