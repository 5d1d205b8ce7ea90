"""The fuzz campaign of tests/support/fuzz.py in every run: `CASES` cases of each target, each target a
test of its own (xdist spreads them), on a fresh seed each run, or on DERELAY_FUZZ_SEED to replay
one. The seed and the command that replays a target's cases are printed in the "campaign sizes"
section of the run, and with any crash."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from tests.conftest import CI_FIGURE
from tests.support import fuzz

CASES = 2000


@pytest.fixture(scope="module")
def lab() -> Iterator[fuzz.Lab]:
    """A scratch directory (in memory where there is one, as the command line's) and a JSON-RPC
    node on 127.0.0.1, shared by the targets."""
    lab = fuzz.Lab(fuzz.scratch_dir())
    yield lab
    lab.close()
    shutil.rmtree(lab.scratch)


def campaign_seed() -> int:
    """DERELAY_FUZZ_SEED to replay a campaign, else a fresh seed."""
    return int(os.environ.get("DERELAY_FUZZ_SEED") or int.from_bytes(os.urandom(4)))


@pytest.mark.parametrize("target", list(fuzz.TARGETS))
def test_a_campaign_crashes_nothing(target, lab, record_property):
    # prepare
    seed = campaign_seed()
    replay = fuzz.replay_command([target], CASES, seed)

    # act
    tally = fuzz.campaign([target], CASES, seed, lab)[target]

    # check: every case ran, and each ended accepted or rejected with one clear line
    record_property(
        CI_FIGURE,
        f"fuzz {target}: {tally.cases} cases ({tally.accepted} accepted, {tally.rejected} "
        f"rejected, {len(tally.crashed)} crashed), {tally.seconds:.0f} s, seed {seed} "
        f"(replay: {replay})",
    )
    assert tally.cases == CASES
    assert not tally.crashed, "\n".join([*tally.crashed[:5], f"replay: {replay}"])


def test_a_crash_report_says_how_to_replay_it():
    # prepare: a campaign of two targets, one case of which crashed
    tallies = {"spec": fuzz.Tally(cases=3, rejected=3), "rpc": fuzz.Tally(cases=3, accepted=2)}
    tallies["rpc"].crashed.append("rpc case 1: AssertionError: the journal changed")

    # act
    text = fuzz.report(tallies, cases=3, seed=42, seconds=1.0)

    # check: the crash, then the command that runs the same cases of the same targets
    assert "- rpc case 1: AssertionError: the journal changed" in text
    assert (
        text.splitlines()[-1]
        == "replay: python -m tests.support.fuzz --cases 3 --seed 42 --only spec,rpc"
    )


def test_a_replay_of_every_target_names_none():
    # act
    command = fuzz.replay_command(list(fuzz.TARGETS), 2000, 7)

    # check: the command line's default is every target
    assert command == "python -m tests.support.fuzz --cases 2000 --seed 7"
