"""The review sweep (derelay.lab.review_sweep): its off-chain mirror of the v2 review decides as the
contract does, matches the chain turn by turn, and its report judges the issue's targets."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from derelay.lab.review_sweep import (
    STARTS,
    TARGETS,
    CellResult,
    Lab,
    Scores,
    aggregate,
    chain_relay,
    main,
    mirror_relay,
    mismatches,
    rank,
    scenario_config,
    worst_class_drop,
)
from derelay.lab.simulate import SimConfig
from derelay.trainer.models import load_weights
from derelay.trainer.spec import digits_mlp_spec, mnist_mlp_spec

PARAMS = {"slash_band": 1500, "advance_band": 500, "min_gain": 50}


@pytest.fixture(scope="module")
def lab() -> Lab:
    return Lab(digits_mlp_spec(), 0.5, 0)


@pytest.mark.parametrize("scenario", ["subtle", "walker", "dipper", "poisoner"])
def test_mirror_decides_each_turn_by_the_bands_and_the_champion(lab, scenario):
    """Every turn's verdict follows from its paired delta and the bands, only accepted children
    move the head, only crowned ones (delta >= minGain) move the champion and earn, and the head
    never sits more than the advance band below the champion as the validators measure."""
    config = scenario_config(3, 0.5, 0, scenario, rounds_per_k=4, warmup_per_k=1, params=PARAMS)

    relay = mirror_relay(lab, config)

    turns = relay.turns
    assert len(turns) == 12 and {t.behaviour for t in turns} == {"honest", scenario}
    champion = head = relay.genesis.test
    for t in turns:
        if t.delta < -PARAMS["slash_band"] or t.child_score == 0:
            assert t.verdict == "rejected" and t.slashed > 0
        elif t.delta < -PARAMS["advance_band"]:
            assert t.verdict == "held" and t.slashed == 0
        else:
            assert t.verdict == "accepted" and t.slashed == 0
        assert t.crowned == (t.verdict == "accepted" and t.delta >= PARAMS["min_gain"])
        assert t.reward == 0 or t.crowned
        if t.verdict == "accepted":
            head = t.head_accuracy
        if t.crowned:
            champion = t.champion_accuracy
        assert (t.head_accuracy, t.champion_accuracy) == (head, champion)
        assert t.head_gap >= -PARAMS["advance_band"]
    if scenario == "poisoner":  # its crude children sit far below the slash band
        assert {t.verdict for t in turns if t.behaviour == "poisoner"} == {"rejected"}


def test_mirror_refuses_what_it_cannot_replay(lab):
    """Lazy validators, churn and another seed's data would make the mirror silently wrong."""
    good = scenario_config(3, 0.5, 0, "honest", 2, 1, PARAMS)
    bad = [
        replace(good, lazy_validators=1),
        replace(good, churn_after=5),
        scenario_config(3, 0.5, 1, "honest", 2, 1, PARAMS),
    ]
    for config in bad:
        with pytest.raises(ValueError):
            mirror_relay(lab, config)


def test_honest_turns_start_from_the_head_unless_the_rule_discards_an_accepted_dip(lab):
    """ "head" always trains from the head; "champion" and "blend" only while the head sits below
    the champion as the validators measured it, from the champion's weights or the mean of the
    two's; a head level with the champion is kept."""
    head = lab.genesis
    other = mirror_relay(lab, scenario_config(3, 0.5, 0, "honest", 1, 0, PARAMS)).champion
    labs = {rule: Lab(lab.spec, 0.5, 0, start=rule) for rule in STARTS}

    blend = load_weights(labs["blend"].start_of(head, other, -1), lab.spec)

    assert labs["head"].start_of(head, other, -1) == head
    assert labs["champion"].start_of(head, other, -1) == other
    assert all(labs[rule].start_of(head, other, 0) == head for rule in STARTS)
    a, b = load_weights(head, lab.spec), load_weights(other, lab.spec)
    assert all(torch.allclose(blend[k], (a[k] + b[k]) / 2) for k in a)
    assert not torch.equal(a["out.weight"], b["out.weight"])
    with pytest.raises(ValueError, match="start must be one of head, blend, champion"):
        Lab(lab.spec, 0.5, 0, start="parent")


def test_a_start_rule_changes_the_relay_only_after_an_accepted_dip(lab):
    """The champion rule replays the head rule's relay turn for turn until the first accepted dip,
    then its honest relayers train from elsewhere and the relays part."""
    config = scenario_config(3, 0.5, 0, "subtle", rounds_per_k=4, warmup_per_k=1, params=PARAMS)
    by_head = mirror_relay(lab, config).turns

    by_champion = mirror_relay(Lab(lab.spec, 0.5, 0, start="champion"), config).turns

    dip = next(i for i, t in enumerate(by_head) if t.verdict == "accepted" and t.head_gap < 0)
    assert by_champion[: dip + 1] == by_head[: dip + 1]
    assert by_champion != by_head


def test_the_class_drop_is_the_lower_median_of_each_validators_worst_class():
    """Per validator the largest fall of one class's recall from the champion's; then the lower
    median over the validators, as the contract takes its medians."""
    champion = Scores((0,) * 3, 0, (), ((9000, 8000), (9000, 8000), (9000, 8000)))
    child = Scores((0,) * 3, 0, (), ((9000, 5000), (8000, 8000), (9500, 7000)))

    assert worst_class_drop(child, champion) == 1000  # drops 3000, 1000, 1000
    assert worst_class_drop(champion, champion) == 0
    assert worst_class_drop(champion, child) == 0  # reversed: drops 0, 0, 500


def test_the_mirror_measures_each_childs_worst_class(lab):
    """Every turn with a child carries its class drop, and the targeted poisoner's turns are among
    them; the genesis against itself drops nothing."""
    config = scenario_config(3, 0.5, 0, "targeted", rounds_per_k=4, warmup_per_k=1, params=PARAMS)

    relay = mirror_relay(lab, config)

    assert all(t.class_drop is not None for t in relay.turns)
    assert any(t.behaviour == "targeted" for t in relay.turns)
    assert worst_class_drop(relay.genesis, relay.genesis) == 0


def _cell(**changes) -> CellResult:
    base = dict(
        k=5, alpha=0.5, seed=0, honest={"honest": [100, 100, 99]}, honest_deltas=[0],
        honest_beat_deltas=[167], subtle_loss=0.5, champion_gap=0.2, target_class=3, target_share=0.5,
        targeted_recall=90.0, reference_recall=95.0, walker_gap=-500, walker_gap_test=-3.0,
        target=92.0, passes_central=2.0, passes_honest=3.0, passes_subtle=3.6,
        honest_champion=88.0, adversaries={"subtle": {"turns": 10, "loss_sum": 5.0}},
    )  # fmt: skip
    return CellResult(**{**base, **changes})


def test_targets_judge_each_cell_and_rank_prefers_the_set_that_meets_more():
    """A subtle poisoner that costs 2 points a turn fails its target; the rest pass; the set
    without that failure ranks first."""
    good = _cell()
    costly = _cell(adversaries={"subtle": {"turns": 10, "loss_sum": 20.0}})

    passing = {t.name: t.margin(a) for a in aggregate([good], 500) for t in TARGETS}
    failing = {t.name: t.margin(a) for a in aggregate([costly], 500) for t in TARGETS}

    assert all(m is not None and m >= 0 for m in passing.values())
    assert failing["subtle: head loss per turn (points)"] == pytest.approx(-(2.0 - 1.5) / 1.5)
    assert math.isclose(passing["passes to 95% central, subtle / honest"], (1.3 - 1.2) / 0.05)
    names = {"slash_band=1500,advance_band=500,min_gain=50": [costly]}
    names["slash_band=1500,advance_band=670,min_gain=50"] = [good]
    assert rank(names)[0].endswith("advance_band=670,min_gain=50")


def test_sweep_writes_the_report_with_the_targets_table(tmp_path):
    """The command end to end on a tiny grid: the report names its command and judges targets."""
    main([
        "--out", str(tmp_path), "--ks", "3", "--alphas", "0.5", "--seeds", "0",
        "--slash-bands", "3000", "--advance-bands", "280", "--grid-min-gains", "170",
        "--min-gains", "170",
        "--rounds-per-k", "3", "--warmup-per-k", "1",
    ])  # fmt: skip

    report = (tmp_path / "review.md").read_text()
    assert "python -m derelay.lab.review_sweep --out" in report
    assert "Task mnist-mlp;" in report and "held-out shard of 334 digits" in report
    assert "## Best: slash_band=3000,advance_band=280,min_gain=170 (the current defaults)" in report
    assert "| 3 | 0.5 |" in report and "subtle: head loss per turn" in report
    assert "would a per-class review hold the targeted poisoner?" in report
    assert "honest relayers start their turns from the head, as the worker does" in report
    assert "## The targeted poisoner per seed" in report and "| 3 | 0.5 | 0 |" in report
    assert "all-honest champion, last 2 passes (points) |" in report
    assert (tmp_path / "sweep.json").exists()


def test_the_chain_check_refuses_a_start_the_worker_does_not_take(capsys):
    """Off-chain start rules cannot be confirmed on chain, where relayers start from the head."""
    with pytest.raises(SystemExit) as exit_:
        main(["--chain", "--start", "blend"])

    assert exit_.value.code == 2
    assert "start from the head: drop --start" in capsys.readouterr().err


@pytest.mark.slow
def test_the_mirror_matches_the_chain_turn_by_turn(lab, tmp_path):
    """Every behaviour the sweep uses, in one relay on the real contract: the mirror gives the
    chain's verdicts, medians, deltas, rewards, slashes and accuracies."""
    config = SimConfig(
        honest=3, free_riders=1, poisoners=1, stallers=1, walkers=2, subtle_poisoners=1,
        targeted_poisoners=1, dippers=1, validators=3, lazy_validators=0, parrots=0, squatters=0,
        rounds=24, warmup=3, alpha=0.5, seeds=(0,), churn_after=None, consumer_payment=0,
        baselines=False, params=tuple(PARAMS.items()),
    )  # fmt: skip

    chain = chain_relay(lab, config, tmp_path)

    assert mismatches(mirror_relay(lab, config), chain) == []
    assert {"held", "rejected", "accepted", "skipped"} <= {t.verdict for t in chain.turns}


def test_the_chain_relays_the_labs_own_task(tmp_path):
    """An MNIST lab's relay on chain trains and scores MNIST, not the simulation's default task:
    every turn, score and accuracy agrees with the mirror."""
    lab = Lab(mnist_mlp_spec(), 0.5, 0)
    config = scenario_config(3, 0.5, 0, "subtle", 2, 1)

    chain = chain_relay(lab, config, tmp_path)

    assert mismatches(mirror_relay(lab, config), chain) == []
