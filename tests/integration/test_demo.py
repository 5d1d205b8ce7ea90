"""`derelay demo` end to end on the embedded chain and store: its outputs are checked the way a
person reading them would, against each other and against the chain's events."""

from __future__ import annotations

import csv
import json

import matplotlib.image as mpimg
import numpy as np

from derelay.lab.demo import RELAYERS, run_demo

ROUNDS = 8


def test_demo_outputs_agree_with_each_other(tmp_path):
    # act
    result = run_demo(tmp_path / "demo", rounds=ROUNDS, echo=lambda line: None)

    # check: one CSV row per finalized round, and the head and the champion improved on the genesis
    out = result.out_dir
    rows = list(csv.DictReader((out / "rounds.csv").open()))
    assert len(rows) >= ROUNDS
    assert int(rows[-1]["head_score_bp"]) > result.genesis_score
    assert int(rows[-1]["champion_score_bp"]) > result.genesis_score
    assert len({r["relayer"] for r in rows}) == RELAYERS  # every relayer got a turn

    # only a crowned turn earns, and each decided row's delta is what decided it
    for r in rows:
        assert (int(r["reward_wei"]) > 0) == (r["crowned"] == "1")
        if r["crowned"] == "1":
            assert r["verdict"] == "accepted" and int(r["delta_bp"]) > 0
            assert r["champion_score_bp"] == r["child_bp"]

    # the payouts (rebuilt from events) match the rewards the rounds reported
    payouts = json.loads((out / "payouts.json").read_text())
    assert sum(int(p["relayer_rewards"]) for p in payouts) == sum(
        int(r["reward_wei"]) for r in rows
    )
    assert sum(p["crowned_turns"] for p in payouts) == sum(r["crowned"] == "1" for r in rows)
    for relayer in {r["relayer"] for r in rows if int(r["reward_wei"]) > 0}:
        (row,) = [p for p in payouts if p["address"] == relayer]
        assert int(row["earned"]) > 0 and int(row["stake_lost"]) == 0
    fees = sum(int(p["validator_fees"]) for p in payouts)
    assert fees > 0  # validators were paid for in-band reveals

    # the lineage lists the genesis and every child with the verdict of its (last) round: a void
    # child submitted again moves to its new round
    lineage = json.loads((out / "lineage.json").read_text())
    assert lineage[0]["status"] == "genesis"
    verdicts = {int(r["round"]): r["verdict"] for r in rows}
    assert [e["status"] for e in lineage[1:]] == [
        verdicts.get(e["round"], "pending") for e in lineage[1:]
    ]
    assert {r for r, v in verdicts.items() if v != "void"} <= {e["round"] for e in lineage[1:]}

    # the accuracy curve is a real picture with a line on it
    image = mpimg.imread(out / "accuracy.png")
    assert image.shape[0] >= 300 and image.shape[1] >= 500
    assert len(np.unique(image.reshape(-1, image.shape[-1]), axis=0)) > 10


def test_a_second_demo_in_the_same_folder_decides_its_rounds(tmp_path):
    """Each demo runs a fresh chain: the journals of the last run must not make this run's workers
    resend its children or skip its ballots (every round came out void before)."""
    run_demo(tmp_path / "demo", rounds=3, echo=lambda line: None)

    again = run_demo(tmp_path / "demo", rounds=3, echo=lambda line: None)

    rows = list(csv.DictReader((again.out_dir / "rounds.csv").open()))
    assert rows and all(r["verdict"] != "void" for r in rows)
