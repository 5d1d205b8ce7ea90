"""Weights trained on a GPU load and score on a CPU-only machine.

`data/h200_cuda_child.safetensors` is the child of one relay turn trained with `--device cuda` on
an NVIDIA H200 (torch 2.11.0+cu130) by `python -m bench.gpu_turn`, from the seed-0 genesis of the
digits-MLP spec on relayer shard 1 of 3 (IID); the device reported the CID below.
"""

from __future__ import annotations

from pathlib import Path

from derelay.trainer.cid import unixfs_cid
from derelay.trainer.models import init_weights, load_weights, save_weights
from derelay.trainer.shards import ShardPlan, validator_shards
from derelay.trainer.spec import digits_mlp_spec
from derelay.trainer.steps import score_weights

CHILD = Path(__file__).parent / "data" / "h200_cuda_child.safetensors"
CID_ON_THE_GPU_MACHINE = "bafkreicjzjhawzmsqb47jjrw2ti5nwft5ljjzj5tkehantkihdzebvcx6y"


def test_cuda_trained_child_loads_and_beats_the_genesis_on_cpu():
    # prepare
    spec = digits_mlp_spec()
    data = CHILD.read_bytes()
    holdout = validator_shards(spec, ShardPlan(relayers=1, validators=1, seed=0))[0]

    # act
    tensors = load_weights(data, spec)
    child_score = score_weights(spec, data, holdout)
    genesis_score = score_weights(spec, save_weights(init_weights(spec, 0)), holdout)

    # check: same bytes, same CID here as there; valid for the spec; a real improvement
    assert str(unixfs_cid(data)) == CID_ON_THE_GPU_MACHINE
    assert all(t.device.type == "cpu" for t in tensors.values())
    assert child_score > genesis_score + 2000
