"""The command, `python -m derelay.lab.review_sweep`: its arguments, the sweep, the chain's check
and the report written to --out."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import torch

from derelay.lab.review_sweep.chain import confirm_on_chain
from derelay.lab.review_sweep.lab import STARTS
from derelay.lab.review_sweep.mirror import SCENARIOS
from derelay.lab.review_sweep.report import report
from derelay.lab.review_sweep.targets import _params, make_grid, rank, sweep
from derelay.lab.scores import SCORES
from derelay.trainer.spec import BUILTIN_TASKS


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    # The package's docstring (review_sweep/__init__.py) describes the command; the package is
    # always imported before this module.
    description = sys.modules[__package__].__doc__.splitlines()[0]
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", type=Path, default=Path("out/review"))
    parser.add_argument(
        "--task", choices=BUILTIN_TASKS, default="mnist",
        help="The task relayed: mnist (10,000 digits, 334 per validator) or digits (1,797, 60).",
    )  # fmt: skip
    parser.add_argument("--ks", type=int, nargs="+", default=[5, 10])
    parser.add_argument("--alphas", type=float, nargs="+", default=[0.1, 0.5, 100.0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--slash-bands", type=int, nargs="+", default=[3000])
    parser.add_argument("--advance-bands", type=int, nargs="+", default=[250, 280, 340])
    parser.add_argument("--grid-min-gains", type=int, nargs="+", default=[170])
    parser.add_argument(
        "--min-gains", type=int, nargs="+", default=[1, 50, 167, 170, 250, 340, 500]
    )
    parser.add_argument(
        "--score", choices=SCORES, default="accuracy",
        help="What the validators commit: accuracy (the worker's) or a Brier score (off-chain only).",
    )  # fmt: skip
    parser.add_argument(
        "--start", choices=STARTS, default="head",
        help="Where honest turns start after an accepted dip: the head (the worker's), the "
        "champion, or the mean of the two's weights (off-chain only).",
    )  # fmt: skip
    parser.add_argument("--rounds-per-k", type=int, default=10)
    parser.add_argument("--warmup-per-k", type=int, default=2)
    parser.add_argument(
        "--chain", action="store_true", help="Run the best set on chain beside the mirror."
    )
    parser.add_argument("--chain-ks", type=int, nargs="+", default=[5])
    parser.add_argument("--chain-seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--chain-scenarios", nargs="+", default=list(SCENARIOS))
    args = parser.parse_args(argv)
    if args.chain and args.score != "accuracy":
        parser.error("--chain replays the worker's validators, which commit accuracy: drop --score")
    if args.chain and args.start != "head":
        parser.error(
            "--chain replays the worker's relayers, which start from the head: drop --start"
        )
    torch.set_num_threads(1)  # small models: threads only contend on shared cores
    spec = BUILTIN_TASKS[args.task]()
    args.out.mkdir(parents=True, exist_ok=True)
    grid = make_grid(args.slash_bands, args.advance_bands, args.grid_min_gains)
    started = time.perf_counter()
    results = sweep(
        spec, args.ks, args.alphas, args.seeds, grid, args.rounds_per_k, args.warmup_per_k,
        echo=lambda line: print(line, flush=True), score=args.score, start=args.start,
    )  # fmt: skip
    raw = {name: [asdict(c) for c in cells] for name, cells in results.items()}
    (args.out / "sweep.json").write_text(json.dumps(raw) + "\n")
    confirmed = None
    if args.chain:
        confirmed = confirm_on_chain(
            spec, args.chain_ks, args.alphas, args.chain_seeds, _params(rank(results)[0]),
            args.rounds_per_k, args.warmup_per_k, args.chain_scenarios, args.out / "chain",
            echo=lambda line: print(line, flush=True),
        )  # fmt: skip
    minutes = (time.perf_counter() - started) / 60
    lines = report(argv, args, results, confirmed, minutes, spec)
    (args.out / "review.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
