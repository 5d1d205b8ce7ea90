"""`derelay simulate`: many participants and behaviours on the real contract, with real training.

Each seed runs one task on a fresh embedded chain (eth-tester, the compiled DeRelay contract) with a
`LocalStore` for weights. The simulation drives every actor directly rather than polling workers:
per round it reads the task state once, lets the holder act according to its behaviour, lets the
validators commit and reveal, moves the chain clock past each window, and has a keeper finalize or
skip. Everything that moves money happens on chain; the simulation decodes the events of its own
receipts, and at the end checks its books against `derelay.trainer.payouts.task_payouts` to the wei. Every
transaction's gas (gasUsed times its effective price, or `gas_price`) is a cost of its sender.

Behaviours (relayers): honest (one local epoch on its shard), free_rider (the parent plus noise of
1e-6: the contract refuses an identical CID), poisoner (label-flipped training or random weights),
staller (never submits: skipped and slashed by the keeper), and the adaptive adversaries of
`derelay.lab.adversaries`: walker (aims at the edge of the advance band; several walkers hold
consecutive queue places, one party's Sybils), subtle (a label-flipped mix aimed just inside the
advance band by its own paired estimate), targeted (one class sent to another, overall score inside
the band), dipper (a worse child, then the champion re-encoded under a new CID). Validators score
the child and the champion on their held-out shard (paired ballot): honest, lazy (commit, never
reveal: slashed), parrot (reveals the champion's last published median as all three scores
without scoring anything: an honest child's scores are close to it) or squatter (takes a seat and
never commits: charged per missed commit, seat lost after maxMisses; it takes a seat again when it
can).

Beside the relay, off-chain baselines train on the same honest shards with the same number of
samples: centralized training, FedAvg, local-only training, and the all-honest relay (the same
honest turns with the adversaries' turns left out, reviewed by the contract's rule). Outputs: CSV,
PNG plots and a markdown report (efficacy, what each behaviour tried and got, head against
champion, sustainability, fairness).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path

from derelay.lab.simulate.baselines import centralized_curve, fedavg_curve, local_curve
from derelay.lab.simulate.behaviours import deal_data, genesis_of, make_child
from derelay.lab.simulate.config import DEFAULT_SEED, RELAYER_COUNTS, SimConfig
from derelay.lab.simulate.fairness import summarize
from derelay.lab.simulate.records import SeedResult, SeedSummary, SimulatedRound
from derelay.lab.simulate.report import write_outputs, write_report
from derelay.lab.simulate.run import Simulation
from derelay.trainer.spec import BUILTIN_TASKS


def simulate(
    config: SimConfig, out_dir: Path, echo: Callable[[str], None] = print
) -> list[SeedResult]:
    """Run every seed of `config`; write per-seed outputs under out_dir/seed-<s>/ and report.md."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.json").write_text(json.dumps(config.to_json_dict(), indent=2) + "\n")
    spec = BUILTIN_TASKS[config.task]()
    results = []
    for seed in config.seeds:
        with tempfile.TemporaryDirectory(prefix="derelay-sim-") as store_dir:
            sim = Simulation(
                config, seed, out_dir / f"seed-{seed}", Path(store_dir), echo=echo, spec=spec
            )
            result = sim.run()
        result.summary = summarize(result, config)
        write_outputs(result, config)
        results.append(result)
    report = write_report(out_dir, config, results, spec)
    echo(f"report: {report}")
    return results


__all__ = [
    "DEFAULT_SEED",
    "RELAYER_COUNTS",
    "SeedResult",
    "SeedSummary",
    "SimConfig",
    "SimulatedRound",
    "Simulation",
    "centralized_curve",
    "deal_data",
    "fedavg_curve",
    "genesis_of",
    "local_curve",
    "make_child",
    "simulate",
    "summarize",
]
