"""The simulation's pure metrics: fairness indices, FedAvg, profit and the contract's arithmetic."""

from __future__ import annotations

import math

import numpy as np
import pytest

from deploy.metrics import (
    Profit,
    RoyaltyBook,
    cumulative_profit,
    fedavg,
    first_reaching,
    gini,
    jain_index,
    lower_median,
    next_ref,
    profit_of,
    relay_reward,
    value_at,
    verdict,
)


class TestJain:
    def test_equal_values_are_perfectly_fair(self):
        assert jain_index([3, 3, 3, 3]) == pytest.approx(1.0)

    def test_one_takes_all_gives_one_over_n(self):
        assert jain_index([5, 0, 0, 0]) == pytest.approx(0.25)

    def test_known_value(self):
        # (1+2+3)^2 / (3 * (1+4+9)) = 36/42
        assert jain_index([1, 2, 3]) == pytest.approx(36 / 42)

    def test_scale_invariant(self):
        assert jain_index([1, 2, 7]) == pytest.approx(jain_index([10, 20, 70]))

    def test_empty_is_nan_and_all_zero_is_fair(self):
        assert math.isnan(jain_index([]))
        assert jain_index([0, 0]) == 1.0

    def test_negative_refused(self):
        with pytest.raises(ValueError):
            jain_index([1, -1])


class TestGini:
    def test_equal_values_have_zero_gini(self):
        assert gini([2, 2, 2]) == pytest.approx(0.0)

    def test_one_takes_all(self):
        assert gini([0, 0, 0, 8]) == pytest.approx(3 / 4)

    def test_known_value_matches_mean_absolute_difference(self):
        xs = [1.0, 2.0, 3.0, 10.0]
        mad = sum(abs(a - b) for a in xs for b in xs) / len(xs) ** 2
        assert gini(xs) == pytest.approx(mad / (2 * np.mean(xs)))

    def test_order_does_not_matter(self):
        assert gini([5, 1, 3]) == pytest.approx(gini([1, 3, 5]))

    def test_empty_and_zero(self):
        assert math.isnan(gini([]))
        assert gini([0, 0, 0]) == 0.0

    def test_negative_refused(self):
        with pytest.raises(ValueError):
            gini([-1, 2])


class TestFedAvg:
    def test_weighted_average_of_states(self):
        a = {"w": np.array([[1.0, 2.0]], dtype=np.float32), "b": np.array([0.0], dtype=np.float32)}
        b = {"w": np.array([[3.0, 6.0]], dtype=np.float32), "b": np.array([4.0], dtype=np.float32)}
        out = fedavg([a, b], [1, 3])
        np.testing.assert_allclose(out["w"], [[2.5, 5.0]])
        np.testing.assert_allclose(out["b"], [3.0])
        assert out["w"].dtype == np.float32

    def test_equal_weights_is_the_mean_and_inputs_untouched(self):
        a = {"w": np.ones(3, dtype=np.float32)}
        b = {"w": np.zeros(3, dtype=np.float32)}
        out = fedavg([a, b], [5, 5])
        np.testing.assert_allclose(out["w"], 0.5)
        np.testing.assert_array_equal(a["w"], 1.0)

    def test_single_client_is_itself(self):
        a = {"w": np.arange(4, dtype=np.float32)}
        np.testing.assert_array_equal(fedavg([a], [7])["w"], a["w"])

    @pytest.mark.parametrize(
        "states, weights",
        [
            ([], []),
            ([{"w": np.ones(2)}], [0]),
            ([{"w": np.ones(2)}, {"v": np.ones(2)}], [1, 1]),
            ([{"w": np.ones(2)}, {"w": np.ones(3)}], [1, 1]),
            ([{"w": np.ones(2)}], [1, 2]),
        ],
    )
    def test_bad_input_refused(self, states, weights):
        with pytest.raises(ValueError):
            fedavg(states, weights)


class TestContractArithmetic:
    def test_lower_median(self):
        assert lower_median([5]) == 5
        assert lower_median([9, 1, 5]) == 5
        assert lower_median([4, 1, 3, 2]) == 2  # lower of the two middle values
        assert lower_median([]) == 0

    def test_verdict(self):
        assert verdict(5000, 1, 6000, 1500, 2) == "void"
        assert verdict(4500, 2, 6000, 1500, 2) == "accepted"  # exactly at the bar
        assert verdict(4499, 3, 6000, 1500, 2) == "rejected"
        assert verdict(0, 3, 100, 1500, 2) == "rejected"  # unusable weights, whatever the bar

    def test_next_ref_moves_toward_median_rounded_toward_ref(self):
        assert next_ref(1000, 2000, 3000) == 1300
        assert next_ref(1000, 1003, 3000) == 1000  # 0.9 rounds down
        assert next_ref(2000, 1000, 3000) == 1700
        assert next_ref(2000, 1997, 3000) == 2000  # moves at most as far as asked
        assert next_ref(1000, 2000, 10_000) == 2000

    def test_contract_reward_rule(self):
        # gain over max(ref, parent): base reward once gain >= minGain, plus per point
        assert relay_reward(6000, 5000, 1, 100, 2, 10**9, 5000) == 100 + 2 * 1000
        assert relay_reward(5000, 5000, 1, 100, 2, 10**9, 5000) == 0
        assert relay_reward(4000, 5000, 0, 100, 2, 10**9, 5000) == 100  # minGain 0: base always
        assert relay_reward(6000, 5000, 1, 100, 2, 150, 5000) == 150  # capped by the pool

    def test_a_copy_of_a_head_above_ref_earns_nothing(self):
        # the head scores 7000 while ref lags at 5000: a copy scores 7000 too
        assert relay_reward(7000, 5000, 1, 100, 2, 10**9, 7000) == 0
        assert relay_reward(7500, 5000, 1, 100, 2, 10**9, 7000) == 100 + 2 * 500
        # a recovering turn after a dip below ref is paid only above ref
        assert relay_reward(5500, 5000, 1, 100, 2, 10**9, 3000) == 100 + 2 * 500


class TestRoyaltyBook:
    def test_no_shares_no_royalty(self):
        book = RoyaltyBook(7000)
        assert book.pay(10**16) == 0
        assert book.owed("a") == 0

    def test_pro_rata_and_settled_on_share_change(self):
        book = RoyaltyBook(5000)
        book.add_shares("a", 100)
        book.pay(1000)  # 500 to contributors: a holds every share
        book.add_shares("b", 300)  # a is settled before b's shares count
        book.pay(800)  # 400: a 100/400, b 300/400
        assert book.owed("a") == 500 + 100
        assert book.owed("b") == 300

    def test_floors_like_the_contract(self):
        book = RoyaltyBook(7000)
        book.add_shares("a", 1)
        book.add_shares("b", 2)
        assert book.pay(10) == 7
        # accPerShare += 7e18 // 3 = 2333...; a owes floor(1 * acc / 1e18) = 2, b 4: dust 1
        assert (book.owed("a"), book.owed("b")) == (2, 4)

    def test_zero_reward_adds_no_shares(self):
        book = RoyaltyBook(7000)
        book.add_shares("a", 0)
        assert book.total_shares == 0


class TestProfit:
    def test_profit_components(self):
        p = profit_of(
            [
                ("reward", 10),
                ("fee", 2),
                ("bounty", 1),
                ("royalty", 4),
                ("slashed", 3),
                ("compute", 5),
            ]
        )
        assert p == Profit(rewards=10, fees=2, bounties=1, royalties=4, stake_lost=3, compute=5)
        assert p.income == 17
        assert p.profit == 17 - 3 - 5

    def test_unknown_kind_refused(self):
        with pytest.raises(ValueError):
            profit_of([("gift", 1)])

    def test_cumulative_profit_by_group(self):
        flows = [
            (1, "a", "reward", 10),
            (1, "a", "compute", 2),
            (2, "b", "slashed", 5),
            (3, "a", "royalty", 1),
            (3, "c", "reward", 99),  # not in any group
        ]
        series = cumulative_profit(flows, 3, {"a": "honest", "b": "staller"})
        assert series == {"honest": [0, 8, 8, 9], "staller": [0, 0, -5, -5]}


class TestCurves:
    def test_first_reaching(self):
        assert first_reaching([0, 10, 20], [5, 50, 90], 50) == 10
        assert first_reaching([0, 10], [5, 6], 50) is None

    def test_value_at_is_a_step_function(self):
        xs, ys = [0, 100, 200], [10, 20, 30]
        assert value_at(xs, ys, 0) == 10
        assert value_at(xs, ys, 150) == 20
        assert value_at(xs, ys, 200) == 30
        assert value_at(xs, ys, 10_000) == 30
        assert value_at(xs, ys, -5) == 10
