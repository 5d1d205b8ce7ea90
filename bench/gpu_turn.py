"""One relayer turn's off-chain half on a chosen device: fetch the parent from a LocalStore
(verified), train on a digits shard, save, add and pin the child. Prints a JSON line with the
child's CID, the device and timings, and copies the child and its card to --out.

It imports nothing that talks to a chain, so it runs on a machine with only torch, numpy,
scikit-learn, safetensors, requests and tqdm (a GPU box): the chain half of the round (submit,
review, finalize) then runs where the chain is, on the same bytes, named by the same CID.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from derelay.trainer.cid import Cid
from derelay.trainer.shards import ShardPlan, relayer_shards
from derelay.trainer.spec import TaskSpec, TrainConfig
from derelay.trainer.steps import train_child
from derelay.trainer.store import LocalStore


def main() -> None:
    """Parse arguments, run the turn, print its JSON line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--spec", required=True, help="CID of the task spec")
    parser.add_argument("--parent", required=True, help="CID of the parent weights")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    store = LocalStore(args.store)
    spec = TaskSpec.from_json(store.get(Cid.parse(args.spec)))
    shard = relayer_shards(spec, ShardPlan(relayers=3, validators=1, alpha=None, seed=0))[0]
    cfg = TrainConfig.from_spec(spec, seed=1, device=args.device)
    started = time.perf_counter()
    parent = store.get(Cid.parse(args.parent))
    fetched = time.perf_counter()
    result = train_child(spec, parent, shard, cfg)
    again = train_child(spec, parent, shard, cfg)
    child = store.add(result.weights)
    store.pin(child)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "child.safetensors").write_bytes(store.get(child))
    report = {
        "child_cid": str(child),
        "device": result.device,
        "samples": result.samples,
        "fetch_verify_s": round(fetched - started, 4),
        "train_s": round(result.train_seconds, 4),
        "local_accuracy_bp": result.local_accuracy_bp,
        "deterministic": again.weights == result.weights,
    }
    (args.out / "turn.json").write_text(json.dumps(report) + "\n")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
