"""The store benchmark measures what it says, on content it has never seen."""

from __future__ import annotations

from bench.store import _variant, measure_store, render
from trainer.cid import CHUNK_SIZE, unixfs_cid
from trainer.store import LocalStore


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
    assert row["add_s"] > 0 and row["get_s"] > 0 and row["sha256_s"] > 0
    assert row["roundtrip_ratio"] == row["sha256_s"] / (row["add_s"] + row["get_s"])
    assert row["add_ratio"] == row["sha256_s"] / row["add_s"]
    assert row["file_write_fsync_mb_s"] > 0
    text = render([{"store": "LocalStore", **row}])
    assert "LocalStore" in text and "add+get / sha256" in text
