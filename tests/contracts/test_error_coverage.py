"""Every custom error of DeRelay is expected by at least one contract test."""

from __future__ import annotations

import re
from pathlib import Path

from derelay.trainer.contract import load_abi

HERE = Path(__file__).resolve().parent


def test_every_custom_error_is_exercised():
    errors = {
        item["name"]
        for item in load_abi()
        if item["type"] == "error" and item["name"].startswith("DeRelay__")
    }
    sources = "\n".join(
        p.read_text() for p in HERE.glob("test_*.py") if p.name != Path(__file__).name
    )

    expected = set(re.findall(r'reverts\(\s*"(DeRelay__\w+)"', sources))

    assert len(errors) == 33
    assert errors - expected == set(), "custom errors no test expects"
    assert expected - errors == set(), "tests expect errors the contract does not have"
