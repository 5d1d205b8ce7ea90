"""The store benchmark measures what it says, on content it has never seen."""

from __future__ import annotations

from bench.store import ADD_TARGET, TARGET, _variant, measure_store, render
from derelay.trainer.cid import CHUNK_SIZE, unixfs_cid
from derelay.trainer.store import LocalStore


def test_variants_differ_in_every_chunk_and_keep_their_size():
    base = bytes(3 * CHUNK_SIZE + 10)
    one, two = _variant(base, 1), _variant(base, 2)
    assert len(one) == len(base) == len(two)
    for offset in range(0, len(base), CHUNK_SIZE):
        assert one[offset : offset + 8] != two[offset : offset + 8]
    assert unixfs_cid(one) != unixfs_cid(two)


def test_measure_store_reports_ratios_against_sha256(tmp_path):
    count = iter(range(100))
    row = measure_store(
        lambda: LocalStore(tmp_path / str(next(count))), 2 * CHUNK_SIZE + 1, 2, plain_dir=tmp_path
    )
    assert row["add_s"] > 0 and row["get_s"] > 0 and row["sha256_s"] > 0 and row["cid_s"] > 0
    assert row["roundtrip_ratio"] == row["sha256_s"] / (row["add_s"] + row["get_s"])
    assert row["add_ratio"] == row["sha256_s"] / row["add_s"]
    assert row["cid_ratio"] == row["sha256_s"] / row["cid_s"]
    assert row["file_write_fsync_mb_s"] > 0


def test_render_puts_each_verdict_beside_its_ratio(tmp_path):
    row = measure_store(lambda: LocalStore(tmp_path), CHUNK_SIZE, 1)
    fast = {**row, "store": "fast", "add_ratio": ADD_TARGET, "roundtrip_ratio": TARGET}
    slow = {**row, "store": "slow", "add_ratio": ADD_TARGET - 0.01, "roundtrip_ratio": 0.39}
    header, _, *lines = render([fast, slow]).splitlines()
    columns = [cell.strip() for cell in header.strip("|").split("|")]
    cells = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
    add, add_ok = columns.index("add / sha256"), columns.index(f"add >= {ADD_TARGET}")
    both, both_ok = columns.index("add+get / sha256"), columns.index(f"add+get >= {TARGET}")
    assert (add_ok, both_ok) == (add + 1, both + 1)
    assert [line[add_ok] for line in cells] == ["yes", "no"]
    assert [line[both_ok] for line in cells] == ["yes", "no"]
    assert [line[both] for line in cells] == ["0.40", "0.39"]
