"""`derelay demo` end to end on the embedded chain and store: its outputs are checked the way a
person reading them would, against each other and against the chain's events."""

from __future__ import annotations

import csv
import json

import matplotlib.image as mpimg
import numpy as np

from deploy.demo import RELAYERS, run_demo

ROUNDS = 8


def test_demo_outputs_agree_with_each_other(tmp_path):
    # act
    result = run_demo(tmp_path / "demo", rounds=ROUNDS, echo=lambda line: None)

    # check: one CSV row per finalized round, and the head improved on the genesis
    out = result.out_dir
    rows = list(csv.DictReader((out / "rounds.csv").open()))
    assert len(rows) >= ROUNDS
    assert int(rows[-1]["head_score_bp"]) > result.genesis_score
    assert len({r["relayer"] for r in rows}) == RELAYERS  # every relayer got a turn

    # the payouts (rebuilt from events) match the rewards the rounds reported
    payouts = json.loads((out / "payouts.json").read_text())
    assert sum(int(p["relayer_rewards"]) for p in payouts) == sum(
        int(r["reward_wei"]) for r in rows
    )
    for relayer in {r["relayer"] for r in rows if int(r["reward_wei"]) > 0}:
        (row,) = [p for p in payouts if p["address"] == relayer]
        assert int(row["earned"]) > 0 and int(row["slashed"]) == 0
    fees = sum(int(p["validator_fees"]) for p in payouts)
    assert fees > 0  # validators were paid for in-band reveals

    # the lineage lists the genesis and every submission, with the verdicts of the rounds
    lineage = json.loads((out / "lineage.json").read_text())
    assert lineage[0]["status"] == "genesis"
    assert [e["status"] for e in lineage[1:]] == [r["verdict"] for r in rows]

    # the accuracy curve is a real picture with a line on it
    image = mpimg.imread(out / "accuracy.png")
    assert image.shape[0] >= 300 and image.shape[1] >= 500
    assert len(np.unique(image.reshape(-1, image.shape[-1]), axis=0)) > 10
