"""SimConfig: defaults, TOML and flag parsing, validation (no chain, no training)."""

from __future__ import annotations

import dataclasses

import pytest

from derelay.lab.simulate import DEFAULT_SEED, SimConfig
from derelay.trainer.contract import ETHER
from derelay.trainer.errors import ConfigError


def test_defaults_are_frozen_and_seeded():
    config = SimConfig()
    assert config.seeds == (DEFAULT_SEED,)
    assert config.participants == config.honest + 7  # one of each other relayer behaviour
    assert config.squatters == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.rounds = 3  # type: ignore[misc]


def test_participants_sets_honest_to_the_rest():
    config = SimConfig.from_mapping(
        {"participants": 12, "free_riders": 2, "poisoners": 1, "walkers": 3, "dippers": 0}
    )
    assert (config.honest, config.free_riders, config.poisoners, config.stallers) == (3, 2, 1, 1)
    assert (config.walkers, config.subtle_poisoners, config.targeted_poisoners) == (3, 1, 1)
    assert config.participants == 12
    assert config.behaviours()[:3] == ["honest"] * 3


def test_walkers_join_in_consecutive_places():
    config = SimConfig(walkers=3, subtle_poisoners=0, targeted_poisoners=0, dippers=0)
    order = config.behaviours()
    first = order.index("walker")
    assert order[first : first + 3] == ["walker"] * 3
    assert order.count("walker") == 3


def test_participants_must_leave_an_honest_relayer():
    with pytest.raises(ConfigError, match="no honest relayer"):
        SimConfig.from_mapping({"participants": 7})


@pytest.mark.parametrize("value, expected", [("iid", None), (0, None), ("0.1", 0.1), (100, 100.0)])
def test_alpha_forms(value, expected):
    assert SimConfig.from_mapping({"alpha": value}).alpha == expected


def test_amounts_take_units_and_params_become_pairs():
    config = SimConfig.from_mapping(
        {
            "compute_cost": "0.002ether",
            "pool": "2ether",
            "gas_price": "20gwei",
            "seed": 5,
            "churn_after": 0,
            "params": {"slash_band": 900, "base-reward": "0.02ether"},
        }
    )
    assert config.compute_cost == 2 * ETHER // 1000
    assert config.pool == 2 * ETHER
    assert config.gas_price == 20 * 10**9
    assert config.seeds == (5,)
    assert config.churn_after is None
    assert dict(config.params) == {"slash_band": 900, "base_reward": 2 * ETHER // 100}


def test_every_validator_has_a_seat():
    config = SimConfig(validators=4, lazy_validators=1, parrots=0, squatters=3)
    assert config.overrides()["max_validators"] == 8
    assert SimConfig(parrots=0).overrides()["max_validators"] == 5  # the task default fits 3+1+1
    assert SimConfig().overrides()["max_validators"] == 6  # 3 honest, lazy, parrot, squatter


@pytest.mark.parametrize(
    "doc, message",
    [
        ({"rounds": 0}, "rounds"),
        ({"bogus": 1}, "unknown keys"),
        ({"alpha": "lots"}, "alpha"),
        ({"poison": "virus"}, "poison"),
        ({"task": "cifar10"}, "task must be one of digits, mnist"),
        ({"params": {"genesis_score": 5}}, "unknown task parameter"),
        ({"params": {"tolerance": 800}}, "unknown task parameter"),
        ({"validators": 1}, "quorum"),
        ({"honest": 0}, "honest"),
        ({"squatters": -1}, "squatters"),
        ({"walkers": 1.5}, "walkers"),
        ({"validators": 14, "lazy_validators": 1, "squatters": 2}, "16"),
        ({"seeds": [-1]}, "seeds"),
        ({"estimate_fraction": 1}, "estimate_fraction"),
        ({"margin": -5}, "margin"),
        ({"gas_price": -1}, "gas_price"),
    ],
)
def test_bad_settings_are_one_clear_error(doc, message):
    with pytest.raises(ConfigError, match=message):
        SimConfig.from_mapping(doc)


def test_toml_with_flags_taking_precedence(tmp_path):
    path = tmp_path / "sim.toml"
    path.write_text(
        'rounds = 12\nalpha = "iid"\nseeds = [1, 2, 3]\nsquatters = 2\nwalkers = 4\n'
        "[params]\nslash_band = 1200\nadvance_band = 300\n"
    )
    config = SimConfig.from_toml(path, {"rounds": 20, "params": {"advance_band": 200}})
    assert config.rounds == 20
    assert config.alpha is None
    assert config.seeds == (1, 2, 3)
    assert (config.squatters, config.walkers) == (2, 4)
    assert dict(config.params) == {"slash_band": 1200, "advance_band": 200}


def test_bad_toml_is_one_clear_error(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("rounds = = 3\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        SimConfig.from_toml(path)
    with pytest.raises(ConfigError, match="cannot read"):
        SimConfig.from_toml(tmp_path / "missing.toml")


def test_json_dict_round_trips_the_settings():
    config = SimConfig.from_mapping({"params": {"advance_band": 700}, "seeds": [3, 4]})
    doc = config.to_json_dict()
    assert doc["params"] == {"advance_band": 700}
    assert doc["seeds"] == [3, 4]
    assert doc["compute_cost"] == str(config.compute_cost)
    assert doc["participants"] == config.participants
    assert SimConfig.from_mapping({k: v for k, v in doc.items() if k != "participants"}) == config
