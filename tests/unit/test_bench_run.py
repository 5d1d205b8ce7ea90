"""run_bench writes bench.md and bench.json, one failing section does not lose the others, and
every section still runs on its smallest case (the benchmark cannot rot unnoticed)."""

from __future__ import annotations

import json

import pytest

import bench.run as run


def test_run_bench_writes_markdown_and_json(tmp_path, monkeypatch):
    def fine(size, work, ipfs_url):
        return {"size": size}, "| a | b |\n|---|---:|\n| x | 1 |"

    def broken(size, work, ipfs_url):
        raise RuntimeError("no node")

    monkeypatch.setattr(
        run, "_RUNNERS", {"gas": fine, "store": broken, "turn": fine, "scale": fine}
    )
    text = run.run_bench(tmp_path / "out", False, only=["gas", "store"], echo=lambda s: None)
    md = (tmp_path / "out" / "bench.md").read_text()
    data = json.loads((tmp_path / "out" / "bench.json").read_text())
    assert md == text
    assert "## Gas" in md and "| x | 1 |" in md and "RuntimeError: no node" in md
    assert "## Turn" not in md
    assert data["mode"] == "quick" and data["gas"] == {"size": "quick"}
    assert data["store"]["error"] == "RuntimeError: no node"
    assert data["machine"]["cores"] >= 1 and "torch" in data["machine"]
    assert set(data["seconds"]) == {"gas", "store", "total"}
    assert run.failures(data) == ["store: RuntimeError: no node"]


def test_a_failed_case_inside_a_section_is_a_failure():
    result = {"turn": {"cases": [], "errors": {"digits MLP, ganache": "ServiceError: no ganache"}}}

    assert run.failures(result) == ["turn, digits MLP, ganache: ServiceError: no ganache"]


def test_unknown_sections_and_two_sizes_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown bench sections"):
        run.run_bench(tmp_path, False, only=["gpu"])
    with pytest.raises(ValueError, match="full or smallest"):
        run.run_bench(tmp_path, True, smallest=True)


def test_every_section_runs_on_its_smallest_case(tmp_path):
    # act: `python -m bench` as a user runs it, each section on its smallest case
    text = run.run_bench(tmp_path, smallest=True, echo=lambda line: None)

    # check: no section or case failed, and each one measured what it names
    result = json.loads((tmp_path / "bench.json").read_text())
    traces = "\n".join(str(result[s].get("trace", "")) for s in run.SECTIONS)
    assert run.failures(result) == [], traces
    assert result["mode"] == "smallest"
    assert set(result["seconds"]) == {*run.SECTIONS, "total"}
    for title in ("## Gas", "## Content store", "## Turn breakdown", "## Scale"):
        assert title in text
    gas = result["gas"]
    assert gas["holders"]["holders"] == [1, 2]
    assert all(r["used"] <= r["limit"] for r in gas["finalize"]["rows"])
    assert [p["round"] for p in result["scale"]["rounds"]] == [2, 4]
    assert [c["turns"] for c in result["turn"]["cases"]] == [1]
