"""The benchmarks' shared pieces: tables, the phase recorder, machine facts, scripted sends."""

from __future__ import annotations

import time

from bench.common import Recorder, embedded_chain, machine_info, ms, table
from derelay.lab.harness import send_fixed
from derelay.trainer.contract import ETHER, TaskParams


def test_table_renders_markdown_with_alignment():
    text = table(["name", "value"], [["a", 1], ["b", 2.5], ["c", None]])
    assert text.splitlines() == [
        "| name | value |",
        "|---|---:|",
        "| a | 1 |",
        "| b | 2.500 |",
        "| c |  |",
    ]
    assert ms(0.0123) == "12.3" and ms(None) == ""


def test_recorder_nests_phases_and_counts_each_once():
    rec = Recorder()
    with rec.phase("turn"):
        with rec.phase("fetch"):
            with rec.phase("sha256"):
                time.sleep(0.001)
        with rec.phase("fetch"):
            with rec.phase("fetch"):  # a wrapped call inside the same phase is not counted twice
                pass
    phases = rec.take()
    assert set(phases) == {"turn", "turn/fetch", "turn/fetch/sha256"}
    assert phases["turn"] >= phases["turn/fetch"] >= phases["turn/fetch/sha256"] > 0
    assert rec.take() == {}


def test_machine_info_names_cpu_cores_and_versions():
    info = machine_info()
    assert info["cores"] >= 1 and info["python"].count(".") == 2
    assert "torch" in info and "cpu" in info


def test_send_fixed_sends_without_estimating():
    chain = embedded_chain(2)
    params = TaskParams(spec_cid=bytes([1, 0x55, 0x12, 0x20]) + bytes(range(32)),
                        genesis_cid=bytes([1, 0x55, 0x12, 0x20]) + bytes(range(1, 33)),
                        genesis_score=5000)  # fmt: skip
    task = chain.relay.create_task(params, funding=ETHER)
    view = chain.relay.as_account(chain.clients[1])
    receipt = send_fixed(view, "joinRelay", task, value=params.min_stake)
    assert receipt["status"] == 1
    assert chain.relay.task_state(task).holder == chain.clients[1].address
    # the bindings keep working after a scripted send from the same account (nonces agree)
    view.add_stake(task, 1)
