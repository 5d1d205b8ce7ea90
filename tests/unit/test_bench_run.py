"""run_bench writes bench.md and bench.json, and one failing section does not lose the others."""

from __future__ import annotations

import json

import pytest

import bench.run as run


def test_run_bench_writes_markdown_and_json(tmp_path, monkeypatch):
    def fine(full, work, ipfs_url):
        return {"full": full}, "| a | b |\n|---|---:|\n| x | 1 |"

    def broken(full, work, ipfs_url):
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
    assert data["mode"] == "quick" and data["gas"] == {"full": False}
    assert data["store"]["error"] == "RuntimeError: no node"
    assert data["machine"]["cores"] >= 1 and "torch" in data["machine"]
    assert set(data["seconds"]) == {"gas", "store", "total"}


def test_unknown_sections_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown bench sections"):
        run.run_bench(tmp_path, False, only=["gpu"])
