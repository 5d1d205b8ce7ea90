"""`python -m bench` (`make bench`): every benchmark in one run, as markdown tables and machine-readable JSON.

Sections (quick / --full):
- gas: every function's gas per queue size (10 vs 100 / 500 queued) and per number of relayers
  holding royalty shares (10 vs 100 / 1000), with the ratios (O(1) means ~1.00), the dearest
  finalize cases with 3 and 16 seats against the keepers' fixed limit, and each operation on each
  verdict path at 10 vs 100 / 1000 participants of every kind (target ratio <= 1.01), and each
  call beside its floor (target 1.2x);
- store: LocalStore (and, --full, the dev IPFS node) add and verified get against sha256 of the
  same bytes, 1 MB and 50 MB;
- turn: where a turn's time goes, phase by phase, with the real workers: the digits MLP and the
  largest MLP the spec allows (~40 MB), on the embedded chain with LocalStore (--full: also on
  ganache and with the IPFS node);
- scale: gas and wall time of a whole turn at rounds 10 -> 100 (/ 1000) and with 5 -> 50 (/ 200)
  relayers; the ratios should stay ~1.00.

Speed targets live here, as ratios measured side by side in the same run, never in timed tests.
The smallest size runs every section on its smallest case, in well under a minute: a test runs it
so that a section the code has outgrown fails there (`failures`), not in a user's hands.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import traceback
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

from bench import gas as gas_bench
from bench import gas_floor, gas_paths
from bench import scale as scale_bench
from bench import store as store_bench
from bench import turn as turn_bench
from bench.common import machine_info, machine_line

SECTIONS = ("gas", "store", "turn", "scale")


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def run_bench(
    out_dir: Path,
    full: bool = False,
    *,
    smallest: bool = False,
    only: Collection[str] | None = None,
    echo: Callable[[str], None] = print,
) -> str:
    """Run the benchmarks (quick, `full` or `smallest`), write `out_dir`/bench.md and bench.json,
    and return the markdown. `only` picks sections by name (gas, store, turn, scale)."""
    if full and smallest:
        raise ValueError("a bench run is full or smallest, not both")
    size = "full" if full else "smallest" if smallest else "quick"
    chosen = [s for s in SECTIONS if only is None or s in only]
    unknown = set(only or ()) - set(SECTIONS)
    if unknown:
        raise ValueError(f"unknown bench sections {sorted(unknown)}: use {', '.join(SECTIONS)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    result: dict[str, Any] = {
        "mode": size,
        "machine": machine_info(),
        "loadavg_start": _loadavg(),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seconds": {},
    }
    markdown: dict[str, str] = {}
    ipfs = None
    work = Path(tempfile.mkdtemp(prefix="derelay-bench-"))
    try:
        if full and ({"store", "turn"} & set(chosen)):
            ipfs = _start_ipfs(work, result)
        for section in chosen:
            echo(f"bench: {section} ...")
            t0 = time.perf_counter()
            try:
                data, text = _RUNNERS[section](size, work, ipfs.url if ipfs else None)
            except Exception as exc:  # one broken section must not lose the others
                data = {"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()}
                text = f"**failed**: `{type(exc).__name__}: {exc}`"
            result[section] = data
            markdown[section] = text
            result["seconds"][section] = round(time.perf_counter() - t0, 1)
            echo(f"bench: {section} done in {result['seconds'][section]:.0f} s")
    finally:
        if ipfs is not None:
            ipfs.stop()
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    result["seconds"]["total"] = round(time.perf_counter() - started, 1)
    result["loadavg_end"] = _loadavg()
    text = _document(result, markdown)
    (out_dir / "bench.md").write_text(text)
    (out_dir / "bench.json").write_text(json.dumps(result, indent=2, default=_json_default) + "\n")
    return text


def failures(result: dict[str, Any]) -> list[str]:
    """One line per section of a bench.json `result` that failed, or per case of one that failed
    inside it (a turn case is reported and the section goes on)."""
    lines = []
    for section in SECTIONS:
        data = result.get(section)
        if not isinstance(data, dict):
            continue
        if "error" in data:
            lines.append(f"{section}: {data['error']}")
        for case, error in data.get("errors", {}).items():
            lines.append(f"{section}, {case}: {error}")
    return lines


def _json_default(value: object) -> object:
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def _start_ipfs(work: Path, result: dict[str, Any]) -> Any:
    from derelay.trainer.errors import DeRelayError
    from derelay.trainer.services import start_ipfs

    try:
        return start_ipfs(work / "ipfs-repo", log_path=work / "ipfs.log")
    except DeRelayError as exc:
        result["ipfs_error"] = str(exc)
        return None


# ---------------------------------------------------------------------- sections


def _gas(size: str, work: Path, ipfs_url: str | None) -> tuple[dict[str, Any], str]:
    queue = {"smallest": (1, 2), "quick": (10, 100), "full": (10, 500)}[size]
    holders = {"smallest": (1, 2), "quick": (10, 100), "full": (10, 1000)}[size]
    validators = (3,) if size == "smallest" else (3, 5)
    seats = (3,) if size == "smallest" else (3, 16)
    paths = {"smallest": (2, 3), "quick": (10, 100), "full": (10, 1000)}[size]
    data = {
        "paths": gas_paths.collect(paths),
        "floor": gas_floor.collect(),
        "queue": gas_bench.collect(
            queue, validators, round_counts=(2, 2) if size == "smallest" else None
        ),
        "holders": gas_bench.holders_report(holders),
        "finalize": gas_bench.finalize_report(seats),
    }
    text = (
        "Gas per external function on the embedded chain (py-evm, Shanghai). *first round*: the "
        "first call, which writes new slots; *steady*: the median of later calls. O(1) in "
        "participants means a ratio of 1.000. Every round crowns a new champion and pays its "
        "relayer.\n\n"
        + gas_bench.render(data["queue"])
        + "\n\nWith every queued relayer holding royalty shares (each crowned a champion and was "
        "paid for it; reached by scripted rounds):\n\n"
        + gas_bench.render_holders(data["holders"])
        + "\n\nThe dearest finalize cases (every write to a new slot, removed seats refunded only "
        "after the call) against the limit keepers send it with, `finalize_gas(seats)`:\n\n"
        + gas_bench.render_finalize(data["finalize"])
        + "\n\nScale, path for path: each operation on the same verdict path in a relay of "
        f"{paths[0]} and of {paths[1]} participants of each kind (queue, share holders, lineage, "
        "validators over the relay's life; seats are capped, the same three vote on both sides), "
        "the big side built by scripted rounds:\n\n"
        + gas_paths.render(data["paths"])
        + "\n\nEach call of the scripted relay (the gas baseline's) beside its floor: 21,000, its "
        "calldata, the storage writes it cannot avoid (cold, EIP-2929/2200/3529: a new slot "
        "22,100, a change 5,000, a clear 5,000 less its refund) and its logs; reads and opcodes "
        "are not in the floor, the cold reads it cannot skip (2,100 each) are shown beside it. "
        "Target: 1.2x.\n\n"
        + gas_floor.render(data["floor"])
        + "\n\nThe writes each floor counts (and the reads beside it), and why none can be "
        "skipped:\n\n" + gas_floor.render_writes()
    )
    return data, text


def _store(size: str, work: Path, ipfs_url: str | None) -> tuple[dict[str, Any], str]:
    sizes_mb = (1,) if size == "smallest" else (1, 50)
    repeats = {"smallest": 1, "quick": 3, "full": 5}[size]
    rows = store_bench.run(sizes_mb=sizes_mb, repeats=repeats, ipfs_url=ipfs_url, work_dir=work)
    local = [r for r in rows if r["store"] == "LocalStore"]
    worst = min(r["roundtrip_ratio"] for r in local)
    worst_add = min(r["add_ratio"] for r in local)
    text = (
        "Throughput as a ratio of `hashlib.sha256` over the same bytes, timed in the same run "
        "(median of the repeats). *add+get*: add, then a verified get (a pin too, for the node). "
        "An add hashes every byte once and a verified get again, so one core caps add+get at "
        "0.5 of sha256. The plain-file columns are the OS floor: one file written and fsynced, "
        "then read, for the same bytes.\n\n"
        + store_bench.render(rows)
        + f"\n\nLocalStore add / sha256: worst {worst_add:.2f} (target {store_bench.ADD_TARGET}); "
        f"add+get / sha256: worst {worst:.2f} (target {store_bench.TARGET})."
    )
    return {
        "rows": rows,
        "target": store_bench.TARGET,
        "add_target": store_bench.ADD_TARGET,
        "localstore_worst": worst,
        "localstore_worst_add": worst_add,
    }, text


def _turn(size: str, work: Path, ipfs_url: str | None) -> tuple[dict[str, Any], str]:
    if size == "full":
        stores = ["local"] + (["ipfs"] if ipfs_url else [])
        cases = [
            turn_bench.TurnCase(model, chain, store)
            for model in ("digits", "40mb")
            for chain in ("embedded", "ganache")
            for store in stores
        ]
    elif size == "quick":
        cases = [
            turn_bench.TurnCase("digits", "embedded", "local"),
            turn_bench.TurnCase("40mb", "embedded", "local"),
        ]
    else:
        cases = [turn_bench.TurnCase("digits", "embedded", "local")]
    turns = {"smallest": 1, "quick": 3, "full": 5}[size]
    results = []
    errors = {}
    for case in cases:
        try:
            results.append(
                turn_bench.measure_case(case, turns=turns, work_dir=work, ipfs_url=ipfs_url)
            )
        except Exception as exc:  # e.g. ganache not installed: report, go on
            errors[case.label] = f"{type(exc).__name__}: {exc}"
    width = turn_bench.largest_mlp_width()
    text = (
        "Median ms per turn over the measured turns (after one warm-up turn), the real workers "
        "ticked one after another: the holder, then each validator's commit, then each reveal, "
        "then the keeper. Review rows are per validator. The 40 MB model is the largest MLP the "
        f"spec allows (MAX_PARAMS = 10M: hidden layers {width} x {width} on 8x8 digits), not 50 MB."
        "\n\n" + turn_bench.render(results)
    )
    if errors:
        text += "\n\n" + "\n".join(f"- {label}: **failed**: {err}" for label, err in errors.items())
    return {"cases": results, "errors": errors}, text


def _scale(size: str, work: Path, ipfs_url: str | None) -> tuple[dict[str, Any], str]:
    data = scale_bench.run(size, work_dir=work)
    return data, scale_bench.render(data)


_RUNNERS: dict[str, Callable[[str, Path, str | None], tuple[dict[str, Any], str]]] = {
    "gas": _gas,
    "store": _store,
    "turn": _turn,
    "scale": _scale,
}


def _document(result: dict[str, Any], markdown: dict[str, str]) -> str:
    seconds = result["seconds"]
    lines = [
        f"# DeRelayL benchmarks ({result['mode']})",
        "",
        f"- machine: {machine_line(result['machine'])}",
        f"- load average at start / end: {result['loadavg_start']} / {result['loadavg_end']}",
        f"- run: {result['started_at']}, {seconds['total']:.0f} s ("
        + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items() if k != "total")
        + ")",
    ]
    if result.get("ipfs_error"):
        lines.append(f"- IPFS node not started: {result['ipfs_error']}")
    titles = {
        "gas": "Gas",
        "store": "Content store",
        "turn": "Turn breakdown",
        "scale": "Scale: cost of a turn as the relay grows",
    }
    for section, text in markdown.items():
        lines += ["", f"## {titles[section]}", "", text]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    """`python -m bench`: run, print the markdown, and exit non-zero when a section failed."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("out/bench"))
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--full", action="store_true", help="500 queued, 1000 holders, ganache, IPFS")
    size.add_argument("--smallest", action="store_true", help="each section's smallest case")
    parser.add_argument("--only", help=f"comma-separated sections of {', '.join(SECTIONS)}")
    args = parser.parse_args(argv)
    only = args.only.split(",") if args.only else None
    print(run_bench(args.out, args.full, smallest=args.smallest, only=only))
    failed = failures(json.loads((args.out / "bench.json").read_text()))
    if failed:
        raise SystemExit(
            f"error: {len(failed)} bench part(s) failed, first: {failed[0]} "
            f"(details in {args.out / 'bench.json'})"
        )
