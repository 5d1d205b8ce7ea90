"""The turn benchmark drives the real workers and times them without changing them."""

from __future__ import annotations

import derelay.trainer.cid
import derelay.trainer.steps
import derelay.trainer.worker
from bench.turn import (
    BenchRelay,
    Recorder,
    TurnCase,
    bench_relay,
    derived,
    instrumented,
    largest_mlp_width,
    model_spec,
    params_of,
    summarize,
)
from derelay.trainer.spec import MAX_PARAMS, MlpArgs


def test_the_big_model_is_the_largest_mlp_the_spec_allows():
    width = largest_mlp_width()
    spec = model_spec("40mb")
    assert spec.arch_args == MlpArgs(hidden=(width, width))
    assert params_of(spec) == _params_for(width) <= MAX_PARAMS < _params_for(width + 1)
    assert params_of(spec) * 4 > 38 * 1024 * 1024


def _params_for(width: int) -> int:
    return 64 * width + width + width * width + width + width * 10 + 10


def test_instrumentation_is_undone():
    before = (
        derelay.trainer.steps.train,
        derelay.trainer.worker.score_weights,
        derelay.trainer.cid.hashlib,
    )
    rec = Recorder()
    with instrumented(rec):
        assert derelay.trainer.steps.train is not before[0]
        derelay.trainer.cid.Cid.of(0x55, b"x")
    assert (
        derelay.trainer.steps.train,
        derelay.trainer.worker.score_weights,
        derelay.trainer.cid.hashlib,
    ) == before
    assert "sha256" in rec.take()


def test_derived_rows_split_per_validator_and_fill_totals():
    phases = {
        "relayer": 10.0,
        "relayer/train": 6.0,
        "relayer/fetch+verify": 1.0,
        "relayer/chain reads": 0.5,
        "relayer/rpc eth_getBlockByNumber": 0.5,
        "commit": 3.0,
        "commit/score": 1.5,
        "reveal": 1.5,
        "finalize": 0.5,
    }
    out = derived(phases, validators=3)
    assert out["commit"] == 1.0 and out["commit/score"] == 0.5 and out["reveal"] == 0.5
    assert out["relayer/@reads"] == 1.0
    assert out["relayer/@other"] == 10.0 - 8.0
    assert out["relayer/@overhead"] == 4.0
    assert out["@total"] == 15.0


def test_one_real_turn_is_timed_phase_by_phase(tmp_path):
    with bench_relay(TurnCase("digits", "embedded", "local"), tmp_path) as relay:
        assert isinstance(relay, BenchRelay)
        sample = relay.turn()
    assert sample.verdict in ("accepted", "held", "rejected")
    for key in ("relayer/fetch+verify", "relayer/train", "relayer/add", "relayer/tx submitRelay",
                "relayer/tx submitRelay/rpc eth_call", "commit/score",
                "commit/tx commitScore", "reveal/tx revealScore", "finalize/tx finalize"):  # fmt: skip
        assert sample.phases.get(key, 0) > 0, key
    assert set(sample.gas) == {"submitRelay", "commitScore", "revealScore", "finalize"}
    assert sample.gas_total > sum(sample.gas.values())  # three commits and reveals
    summary = summarize([sample], 3)
    assert summary["turns"] == 1 and summary["gas"] == sample.gas
    assert not list(tmp_path.iterdir())  # the relay's directory is removed
