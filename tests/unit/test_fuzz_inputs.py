"""Bad input, fuzzed: every reader of bytes from others accepts them or raises its own error in
one clear line; nothing else escapes.

The cases come from the generators of the campaign (tests/support/fuzz.py), drawn by Hypothesis with a
fixed seed, so every run tries the same cases; `python -m tests.support.fuzz` runs thousands more.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import fuzz

FUZZ = settings(
    max_examples=150,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
RANDOMS = st.randoms(use_true_random=False)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[fuzz.Lab]:
    """A scratch directory and a JSON-RPC node on 127.0.0.1."""
    lab = fuzz.Lab(tmp_path_factory.mktemp("fuzz"))
    yield lab
    lab.close()


@FUZZ
@given(rng=RANDOMS)
def test_task_spec_json(rng):
    assert fuzz.fuzz_spec(rng) in ("accepted", "rejected")


@FUZZ
@given(rng=RANDOMS)
def test_weights_files(rng):
    assert fuzz.fuzz_weights(rng) in ("accepted", "rejected")


@FUZZ
@given(rng=RANDOMS)
def test_cid_text(rng):
    assert fuzz.fuzz_cid(rng) in ("accepted", "rejected")


@settings(FUZZ, max_examples=100)
@given(rng=RANDOMS)
def test_store_blocks(rng, lab):
    assert fuzz.fuzz_store(rng, lab.scratch) in ("accepted", "rejected")


@settings(FUZZ, max_examples=100)
@given(rng=RANDOMS)
def test_journal_files(rng, lab):
    assert fuzz.fuzz_journal(rng, lab.scratch) in ("accepted", "rejected")


@settings(FUZZ, max_examples=100)
@given(rng=RANDOMS)
def test_cli_arguments(rng, lab):
    assert fuzz.fuzz_cli(rng, lab) in ("accepted", "rejected")


def test_the_generators_reach_both_outcomes(lab):
    # prepare: the campaign's own seeding, a few dozen cases per target
    targets = ["spec", "weights", "cid", "store", "journal"]

    # act
    tallies = fuzz.campaign(targets, 40, seed=0, lab=lab)

    # check: no crash, and each target sees valid input as well as bad
    for name, tally in tallies.items():
        assert not tally.crashed, tally.crashed
        assert tally.accepted and tally.rejected, name


@pytest.mark.parametrize(
    "argv",
    [
        ["--max-spec-bytes", "lots", "status"],
        ["status", "--rpc", "ftp://x"],
        ["task", "show", "one"],
        ["worker", "--task", "1", "--roles", "a\nb"],
        ["no-such-command"],
    ],
)
def test_a_bad_command_line_is_one_line_on_stderr(argv, lab, tmp_path, monkeypatch):
    # prepare
    monkeypatch.chdir(tmp_path)

    # act
    status, stderr = fuzz.run_cli(argv, fuzz.cli_env(lab.node.url))

    # check
    assert status in (1, 2)
    assert len(stderr.splitlines()) == 1 and stderr.startswith("error: "), stderr
