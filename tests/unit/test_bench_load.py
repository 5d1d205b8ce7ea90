"""The load benchmark's plan: who plays which role in which task, and configurations it refuses."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict

import pytest

from bench.load import LoadConfig, WorkerPlan, plan_workers
from derelay.trainer.errors import ConfigError


def test_fifty_workers_are_dealt_evenly_with_every_role_in_every_task():
    # prepare
    config = LoadConfig(workers=50, tasks=5, validators=3)

    # act
    plans = plan_workers(config, [1, 2, 3, 4, 5])

    # check: accounts 1..50 once each; per task 3 validators, 1 pure keeper, 6 relayers (3 keep)
    assert sorted(p.account for p in plans) == list(range(1, 51))
    for task in range(1, 6):
        roles = Counter(p.roles for p in plans if p.task_id == task)
        assert roles == {"validator": 3, "keeper": 1, "relayer,keeper": 3, "relayer": 3}
        shards = sorted(p.shard for p in plans if p.task_id == task and p.shard)
        assert shards == [(k, 6) for k in range(6)]
        holdouts = sorted(p.holdout for p in plans if p.task_id == task and p.holdout)
        assert holdouts == [(k, 3) for k in range(3)]


def test_a_plan_survives_its_trip_through_json():
    plan = WorkerPlan(7, 2, "relayer,keeper", shard=(1, 6))
    assert WorkerPlan.from_json(json.loads(json.dumps(asdict(plan)))) == plan


@pytest.mark.parametrize(
    "config",
    [
        LoadConfig(workers=8, tasks=2, validators=3),
        LoadConfig(workers=10, tasks=0),
        LoadConfig(store="s3"),
    ],
    ids=["too-few-workers-per-task", "no-task", "unknown-store"],
)
def test_configurations_that_cannot_run_are_refused(config):
    with pytest.raises(ConfigError):
        config.check()
