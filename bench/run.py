"""`derelay bench`: every benchmark in one run, as markdown tables and machine-readable JSON.

Sections (quick / --full):
- gas: every function's gas per queue size (10 vs 100 / 500 queued) and per number of relayers
  holding royalty shares (10 vs 100 / 1000), with the ratios (O(1) means ~1.00);
- store: LocalStore (and, --full, the dev IPFS node) add and verified get against sha256 of the
  same bytes, 1 MB and 50 MB;
- turn: where a turn's time goes, phase by phase, with the real workers: the digits MLP and the
  largest MLP the spec allows (~40 MB), on the embedded chain with LocalStore (--full: also on
  ganache and with the IPFS node);
- scale: gas and wall time of a whole turn at rounds 10 -> 100 (/ 1000) and with 5 -> 50 (/ 200)
  relayers; the ratios should stay ~1.00.

Speed targets live here, as ratios measured side by side in the same run, never in timed tests.
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
    full: bool,
    *,
    only: Collection[str] | None = None,
    echo: Callable[[str], None] = print,
) -> str:
    """Run the benchmarks (quick, or `full`), write `out_dir`/bench.md and bench.json, and return
    the markdown. `only` picks sections by name (gas, store, turn, scale)."""
    chosen = [s for s in SECTIONS if only is None or s in only]
    unknown = set(only or ()) - set(SECTIONS)
    if unknown:
        raise ValueError(f"unknown bench sections {sorted(unknown)}: use {', '.join(SECTIONS)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    result: dict[str, Any] = {
        "mode": "full" if full else "quick",
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
                data, text = _RUNNERS[section](full, work, ipfs.url if ipfs else None)
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


def _json_default(value: object) -> object:
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def _start_ipfs(work: Path, result: dict[str, Any]) -> Any:
    from trainer.errors import DeRelayError
    from trainer.services import start_ipfs

    try:
        return start_ipfs(work / "ipfs-repo", log_path=work / "ipfs.log")
    except DeRelayError as exc:
        result["ipfs_error"] = str(exc)
        return None


# ---------------------------------------------------------------------- sections


def _gas(full: bool, work: Path, ipfs_url: str | None) -> tuple[dict[str, Any], str]:
    queue = (10, 500) if full else (10, 100)
    holders = (10, 1000) if full else (10, 100)
    data = {
        "queue": gas_bench.collect(queue_sizes=queue),
        "holders": gas_bench.holders_report(holders),
    }
    text = (
        "Gas per external function on the embedded chain (py-evm, Shanghai). *first round*: the "
        "first call, which writes new slots; *steady*: the median of later calls. O(1) in "
        "participants means a ratio of 1.000.\n\n"
        + gas_bench.render(data["queue"])
        + "\n\nWith every queued relayer holding royalty shares (each had an accepted, rewarded "
        "turn; reached by scripted rounds):\n\n" + gas_bench.render_holders(data["holders"])
    )
    return data, text


def _store(full: bool, work: Path, ipfs_url: str | None) -> tuple[dict[str, Any], str]:
    rows = store_bench.run(
        sizes_mb=(1, 50), repeats=5 if full else 3, ipfs_url=ipfs_url, work_dir=work
    )
    local = [r for r in rows if r["store"] == "LocalStore"]
    worst = min(r["roundtrip_ratio"] for r in local)
    verdict = "meets" if worst >= store_bench.TARGET else "misses"
    text = (
        "Throughput as a ratio of `hashlib.sha256` over the same bytes, timed in the same run "
        "(median of the repeats). *add+get*: add, then a verified get (a pin too, for the node). "
        "An add hashes every byte once and a verified get again, so one core caps add+get at "
        "0.5 of sha256. The plain-file columns are the OS floor: one file written and fsynced, "
        "then read, for the same bytes.\n\n"
        + store_bench.render(rows)
        + f"\n\nLocalStore add+get / sha256: worst {worst:.2f}; it {verdict} the target of "
        f"{store_bench.TARGET}."
    )
    return {"rows": rows, "target": store_bench.TARGET, "localstore_worst": worst}, text


def _turn(full: bool, work: Path, ipfs_url: str | None) -> tuple[dict[str, Any], str]:
    if full:
        stores = ["local"] + (["ipfs"] if ipfs_url else [])
        cases = [
            turn_bench.TurnCase(model, chain, store)
            for model in ("digits", "40mb")
            for chain in ("embedded", "ganache")
            for store in stores
        ]
    else:
        cases = [
            turn_bench.TurnCase("digits", "embedded", "local"),
            turn_bench.TurnCase("40mb", "embedded", "local"),
        ]
    results = []
    errors = {}
    for case in cases:
        try:
            results.append(
                turn_bench.measure_case(
                    case, turns=5 if full else 3, work_dir=work, ipfs_url=ipfs_url
                )
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


def _scale(full: bool, work: Path, ipfs_url: str | None) -> tuple[dict[str, Any], str]:
    data = scale_bench.run(full=full, work_dir=work)
    return data, scale_bench.render(data)


_RUNNERS: dict[str, Callable[[bool, Path, str | None], tuple[dict[str, Any], str]]] = {
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


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("out/bench"))
    parser.add_argument("--full", action="store_true")
    parser.add_argument("--only", help=f"comma-separated sections of {', '.join(SECTIONS)}")
    args = parser.parse_args()
    only = args.only.split(",") if args.only else None
    print(run_bench(args.out, args.full, only=only))


if __name__ == "__main__":
    main()
