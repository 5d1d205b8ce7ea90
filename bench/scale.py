"""Does a turn get dearer as the relay grows? Gas and wall time of whole turns at growing round
numbers and participant counts; every figure should stay flat (ratio ~1.00).

Turns are measured exactly as in `bench.turn`: the real workers (digits MLP, embedded chain,
LocalStore), 3 validators, a keeper. To reach round 100 or 1000 without training a thousand times,
the relay is fast-forwarded between measurements by scripted rounds through the same contract:
the holder submits its parent with one float nudged (new content, added to the store), every
validator scores it 1 bp above the champion, the keeper finalizes, so every round crowns a new
champion and every holder earns royalty shares. The chain state (lineage, records, queue, shares)
and the store grow as in a real relay; only the training is skipped.

- rounds: one relay of 5 relayers, measured at rounds 10 and 100 (full: and 1000);
- participants: relays of 5 and 50 relayers (full: 200), measured at the same last round, each
  relayer having held shares since its first turn;
- the smallest size (one relay of 2 relayers, one turn at rounds 2 and 4) only shows that it
  runs.

    python -m bench.scale [--size smallest|quick|full]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import ms, table
from bench.turn import (
    RELAYERS,
    VALIDATORS,
    BenchRelay,
    TurnCase,
    bench_relay,
    summarize,
    verdicts_cell,
)

CASE = TurnCase("digits", "embedded", "local")


def _measure_at(relay: BenchRelay, target_round: int, turns: int) -> dict[str, Any]:
    """Fast-forward so that the last of `turns` measured turns is round `target_round`."""
    start = relay.state().round
    first = target_round - turns + 1
    if first < start:
        raise ValueError(f"round {first} is already past (the relay is at round {start})")
    started = time.perf_counter()
    relay.fast_forward(first - start)
    ff_seconds = time.perf_counter() - started
    samples = [relay.turn() for _ in range(turns)]
    summary = summarize(samples, relay.validators)
    state = relay.state()
    return {
        "round": target_round,
        "participants": relay.relayers,
        "fast_forward_rounds": first - start,
        "fast_forward_s": ff_seconds,
        "lineage": state.submission_count,
        "queue": state.queue_length,
        "total_shares": state.total_shares,
        **summary,
    }


# Per size: the rounds measured at, the relayer counts compared, measured turns per point.
SIZES: dict[str, tuple[tuple[int, ...], tuple[int, ...], int]] = {
    "smallest": ((2, 4), (2,), 1),
    "quick": ((10, 100), (RELAYERS, 50), 3),
    "full": ((10, 100, 1000), (RELAYERS, 200), 5),
}


def run(size: str = "quick", work_dir: Path | None = None) -> dict[str, Any]:
    """Measure along both axes at `size` (a key of SIZES); return every point and the ratios
    last/first."""
    rounds, participants, turns = SIZES[size]
    work = work_dir or Path(tempfile.gettempdir())
    by_rounds: list[dict[str, Any]] = []
    with bench_relay(CASE, work, relayers=participants[0]) as relay:
        relay.turn()  # warm-up
        for target in rounds:
            by_rounds.append(_measure_at(relay, target, turns))
    by_participants = [by_rounds[-1]]
    for count in participants[1:]:
        with bench_relay(CASE, work, relayers=count) as relay:
            relay.turn()
            by_participants.append(_measure_at(relay, rounds[-1], turns))
    return {
        "case": CASE.label,
        "validators": VALIDATORS,
        "turns_per_point": turns,
        "rounds": by_rounds,
        "participants": by_participants,
        "ratios": {
            "rounds": _ratios(by_rounds[0], by_rounds[-1]),
            "participants": _ratios(by_participants[0], by_participants[-1]),
        },
    }


def _metrics(point: dict[str, Any]) -> dict[str, float]:
    seconds = point["seconds"]
    return {
        "gas per turn": float(point["gas_total"]),
        "gas submitRelay": float(point["gas"].get("submitRelay", 0)),
        "gas finalize": float(point["gas"].get("finalize", 0)),
        "wall per turn": seconds.get("@total", 0.0),
        "wall per turn, all but training": seconds.get("@total", 0.0)
        - seconds.get("relayer/train", 0.0),
        "relayer overhead (all but train)": seconds.get("relayer/@overhead", 0.0),
    }


def _ratios(first: dict[str, Any], last: dict[str, Any]) -> dict[str, float]:
    a, b = _metrics(first), _metrics(last)
    return {k: (b[k] / a[k] if a[k] else float("nan")) for k in a}


def render(result: dict[str, Any]) -> str:
    parts = []
    for axis, label in (("rounds", "round"), ("participants", "relayers")):
        points = result[axis]
        header = ["per turn (median)"] + [
            f"{label} {p['round'] if axis == 'rounds' else p['participants']}" for p in points
        ]
        header.append(f"ratio {header[-1].split()[-1]} / {header[1].split()[-1]}")
        rows: list[list[object]] = []
        metrics = [_metrics(p) for p in points]
        ratios = result["ratios"][axis]
        for name in metrics[0]:
            cells: list[object] = [name]
            for m in metrics:
                cells.append(ms(m[name]) if name.startswith(("wall", "relayer")) else int(m[name]))
            cells.append(f"{ratios[name]:.2f}")
            rows.append(cells)
        rows.append(["lineage length"] + [p["lineage"] for p in points] + [""])
        rows.append(["queue length"] + [p["queue"] for p in points] + [""])
        rows.append(["turns measured (verdicts)"] + [verdicts_cell(p) for p in points] + [""])
        parts.append(table(header, rows))
    note = (
        f"Wall times in ms; {result['case']}, {result['validators']} validators, "
        f"{result['turns_per_point']} measured turns per point, fast-forwarded between points. "
        "A turn's gas follows its path (accepted and crowned with a reward, accepted without gain "
        "over the champion and so without new shares, held, rejected): the verdicts row says "
        "which turns were measured."
    )
    return note + "\n\n" + "\n\n".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="quick")
    args = parser.parse_args()
    print(render(run(args.size)))


if __name__ == "__main__":
    main()
