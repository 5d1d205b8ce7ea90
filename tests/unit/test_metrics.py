"""The simulation's pure metrics: fairness indices, FedAvg, profit and the contract's arithmetic."""

from __future__ import annotations

import math

import numpy as np
import pytest

from derelay.lab.metrics import (
    Profit,
    Review,
    RoyaltyBook,
    cumulative_profit,
    fedavg,
    first_reaching,
    gini,
    jain_index,
    lower_median,
    paid_in_band,
    profit_of,
    relay_reward,
    review,
    value_at,
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


class TestReview:
    # the contract test parameters: quorum 2, slash band 1000, advance band 100, minGain 10
    @staticmethod
    def decide(*ballots: tuple[int, int, int]) -> Review:
        return review(ballots, quorum=2, slash_band=1000, advance_band=100, min_gain=10)

    def test_fewer_reveals_than_quorum_are_void(self):
        outcome = self.decide((9000, 5000, 5000))

        assert outcome == Review("void", 0, 0, 0, 0, 1, False)

    def test_the_median_of_paired_differences_decides_not_the_difference_of_medians(self):
        # each validator scores the models on its own data: easy data (9000 vs 8900), hard data
        # (5000 vs 4000) and data on which the child is worse (6000 vs 6500); the parent is the
        # champion
        outcome = self.decide((9000, 8900, 8900), (5000, 4000, 4000), (6000, 6500, 6500))

        assert (outcome.child_score, outcome.champion_score) == (6000, 6500)
        assert outcome.delta == 100  # lower median of 100, 1000, -500; the medians differ by -500
        assert outcome.progress == 100
        assert outcome.verdict == "accepted" and outcome.crowned
        assert outcome.reveals == 3

    def test_progress_is_the_paired_median_over_the_parent(self):
        # the parent is an uncrowned head 150 over the champion, as each validator measures it
        outcome = self.decide((5200, 5000, 5150), (5300, 5100, 5250), (5100, 4900, 5050))

        assert (outcome.delta, outcome.progress) == (200, 50)
        assert outcome.crowned

    @pytest.mark.parametrize(
        "delta, verdict, crowned",
        [
            (10, "accepted", True),  # at minGain
            (9, "accepted", False),  # over the champion, under minGain: the head only
            (0, "accepted", False),
            (-100, "accepted", False),  # at the advance band
            (-101, "held", False),
            (-1000, "held", False),  # at the slash band
            (-1001, "rejected", False),
        ],
    )
    def test_the_bands_split_accepted_held_and_rejected(self, delta, verdict, crowned):
        outcome = self.decide((5000 + delta, 5000, 5000), (5010 + delta, 5010, 5010))

        assert (outcome.verdict, outcome.delta, outcome.crowned) == (verdict, delta, crowned)

    def test_unusable_weights_are_rejected_whatever_the_delta(self):
        outcome = self.decide((0, 0, 0), (0, 0, 0))

        assert (outcome.verdict, outcome.delta) == ("rejected", 0)

    def test_one_high_vote_of_two_does_not_crown(self):
        # the lower median: the lower of the two middle values
        outcome = self.decide((5000, 5000, 5000), (5300, 5000, 5000))

        assert (outcome.verdict, outcome.delta, outcome.child_score) == ("accepted", 0, 5000)
        assert not outcome.crowned


class TestRelayReward:
    # relay_reward(delta, progress, min_gain=10, base_reward=100, reward_per_point=2, pool)
    def test_no_crown_earns_nothing(self):
        assert relay_reward(0, 0, 10, 100, 2, 10**9) == 0
        assert relay_reward(9, 9, 10, 100, 2, 10**9) == 0  # over the champion, under minGain
        assert relay_reward(-300, 200, 10, 100, 2, 10**9) == 0  # regaining lost ground

    def test_base_reward_from_min_gain_plus_per_point(self):
        assert relay_reward(10, 10, 10, 100, 2, 10**9) == 100 + 2 * 10
        assert relay_reward(1000, 1000, 10, 100, 2, 10**9) == 100 + 2 * 1000

    def test_only_the_gain_over_the_parent_too_is_paid(self):
        # a copy of an uncrowned head that noise crowns: no progress, nothing
        assert relay_reward(250, 0, 10, 100, 2, 10**9) == 0
        assert relay_reward(250, -5, 10, 100, 2, 10**9) == 0
        # a child 250 over the champion and 9 over its uncrowned parent: 9 points, no base
        assert relay_reward(250, 9, 10, 100, 2, 10**9) == 2 * 9
        # the parent below the champion: the gain over the champion is the bound
        assert relay_reward(250, 700, 10, 100, 2, 10**9) == 100 + 2 * 250

    def test_capped_by_the_pool(self):
        assert relay_reward(1000, 1000, 10, 100, 2, 150) == 150
        assert relay_reward(1000, 1000, 10, 100, 2, 0) == 0


class TestPaidInBand:
    # child median 6000, median delta 1000
    OUTCOME = review([(6000, 5000, 0), (6100, 5100, 0), (5900, 4900, 0)], 2, 1000, 100, 10)

    def test_within_the_band_of_both_medians_is_paid(self):
        assert (self.OUTCOME.child_score, self.OUTCOME.delta) == (6000, 1000)
        assert paid_in_band((6000, 5000, 0), self.OUTCOME, 500)
        assert paid_in_band((6500, 5500, 0), self.OUTCOME, 500)  # both edges are inside
        assert paid_in_band((5500, 5000, 0), self.OUTCOME, 500)  # delta 500: at the edge

    def test_off_either_median_is_not_paid(self):
        assert not paid_in_band((6501, 5501, 0), self.OUTCOME, 500)  # child off by 501
        assert not paid_in_band((6000, 5501, 0), self.OUTCOME, 500)  # delta off by 501

    def test_two_equal_guesses_are_not_paid_near_a_zero_delta(self):
        # a validator that skips the work reveals the same guess thrice: it matches a median
        # delta of 0 but not the child's median score
        outcome = review(
            [(7000, 7000, 7000), (7100, 7100, 7100), (6900, 6900, 6900)], 2, 1000, 100, 10
        )

        assert outcome.delta == 0
        assert not paid_in_band((5000, 5000, 5000), outcome, 500)
        assert paid_in_band((7200, 7200, 7200), outcome, 500)

    def test_a_void_review_pays_nobody(self):
        void = review([(6000, 5000, 5000)], 2, 1000, 100, 10)

        assert not paid_in_band((6000, 5000, 5000), void, 500)


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
