"""`Simulation`: one seed driven on a fresh embedded chain, every actor acting directly on the
contract by its behaviour, the money booked from the contract's own events."""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.types import TxReceipt

from derelay.deploy.tasks import publish_task
from derelay.lab.adversaries import (
    ADVERSARIES,
    make_adversary_child,
    split_own_data,
    target_pair,
)
from derelay.lab.harness import FixedGasClient, start_relay
from derelay.lab.metrics import (
    RoyaltyBook,
    lower_median,
    profit_of,
)
from derelay.lab.simulate.baselines import (
    centralized_curve,
    fedavg_curve,
    honest_reference,
    local_curve,
)
from derelay.lab.simulate.behaviours import SQUATTER_STAKE, deal_data, make_child
from derelay.lab.simulate.config import RELAYER_BEHAVIOURS, SimConfig
from derelay.lab.simulate.records import (
    Curve,
    Participant,
    ReferenceTurn,
    SeedResult,
    SimulatedRound,
)
from derelay.trainer.chain import ChainClient, RevertDecoder
from derelay.trainer.cid import Cid, unixfs_cid
from derelay.trainer.contract import (
    ETHER,
    Phase,
    TaskState,
    commitment_for,
)
from derelay.trainer.data import data_commitment
from derelay.trainer.errors import ContractRevert, Revert
from derelay.trainer.keys import dev_account
from derelay.trainer.ledger import MoneyKind, Role, RoundFacts, TaskLogs, fold_events
from derelay.trainer.payouts import Payout, task_payouts
from derelay.trainer.spec import BUILTIN_TASKS, TaskSpec
from derelay.trainer.steps import (
    RELAY_CARD_FORMAT,
    relay_card,
    score_weights,
)
from derelay.trainer.store import LocalStore

# The fold's kinds as the simulation's flows; a missed commit is a slash to the books.
FLOW_OF = {
    MoneyKind.REWARD: "reward",
    MoneyKind.FEE: "fee",
    MoneyKind.BOUNTY: "bounty",
} | {kind: "slashed" for kind in MoneyKind if kind.stake_lost}


class Simulation:
    """One seed of a simulation on a fresh embedded chain."""

    def __init__(
        self,
        config: SimConfig,
        seed: int,
        out_dir: Path,
        store_dir: Path,
        echo: Callable[[str], None] = print,
        spec: TaskSpec | None = None,
    ) -> None:
        self.config = config
        self.seed = seed
        self.out_dir = out_dir
        self.echo = echo
        self.spec = spec or BUILTIN_TASKS[config.task]()  # the lab's own spec where it has one
        self.rng = random.Random(seed)
        self.store = LocalStore(store_dir)
        self.flows: list[tuple[int, str, str, int]] = []
        self.gas: list[tuple[int, str, int]] = []
        self.rows: list[SimulatedRound] = []
        self.champions: list[bytes] = []
        self._round_now = 0
        self._test_cache: dict[bytes, int] = {}
        self._score_cache: dict[tuple[bytes, str], int] = {}
        self._void_child: tuple[str, bytes, bytes, int] | None = (
            None  # holder, child, card, claimed
        )

        behaviours = config.behaviours()
        accounts = [dev_account(i) for i in range(3 + len(behaviours) + config.seats)]

        def fixed_gas(w3: Web3, account: LocalAccount, decoder: RevertDecoder) -> ChainClient:
            return FixedGasClient(
                w3, account, decoder, on_gas=self._book_gas, gas_price=config.gas_price
            )

        embedded = start_relay(accounts, make=fixed_gas)
        self.chain, self.w3 = embedded.chain, embedded.w3
        clients, self.publisher = embedded.clients, embedded.relay
        self.logs = TaskLogs(self.publisher)  # decodes each receipt's task events
        published = publish_task(
            self.publisher,
            self.store,
            self.spec,
            funding=config.pool,
            overrides=config.overrides(),
            data_seed=seed,
        )
        self.task_id = published.task_id
        self.genesis_cid = published.genesis_cid
        self.genesis_score = published.genesis_score
        self.params = self.publisher.task_params(self.task_id)
        self.head_bytes = self.store.get(published.genesis_cid)
        self.champion_bytes = self.head_bytes

        deal = deal_data(self.spec, config, seed)
        self.test = deal.test
        shards, holdouts = deal.shards, deal.holdouts
        self.genesis_accuracy = self._test_accuracy(self.head_bytes)
        self.head_accuracy = self.genesis_accuracy
        self.champion_accuracy = self.genesis_accuracy

        self.keeper = Participant(
            "keeper", "keeper", "keeper", clients[1].address, self.publisher.as_account(clients[1])
        )
        self.consumer = self.publisher.as_account(clients[2])
        self.relayers: list[Participant] = []
        counters: dict[str, int] = defaultdict(int)
        for i, behaviour in enumerate(behaviours):
            counters[behaviour] += 1
            client = clients[3 + i]
            shard, estimate, pair = shards[i], None, None
            if behaviour in ("subtle", "targeted"):  # trains on part, estimates on the rest
                shard, estimate = split_own_data(shards[i], config.estimate_fraction, seed + i)
            elif behaviour in ADVERSARIES:  # trains nothing: estimates on the whole shard
                estimate = shard
            if behaviour == "targeted":
                pair = target_pair(shard, self.spec.num_classes)
            self.relayers.append(
                Participant(
                    f"{behaviour}-{counters[behaviour]}",
                    "relayer",
                    behaviour,
                    client.address,
                    self.publisher.as_account(client),
                    data=shard,
                    estimate=estimate,
                    pair=pair,
                    commitment=data_commitment(shard.X, shard.y),
                )
            )
        self.validators: list[Participant] = []
        kinds = (
            ["validator"] * config.validators
            + ["lazy_validator"] * config.lazy_validators
            + ["parrot"] * config.parrots
            + ["squatter"] * config.squatters
        )
        counters.clear()
        for j, kind in enumerate(kinds):
            counters[kind] += 1
            client = clients[3 + len(behaviours) + j]
            self.validators.append(
                Participant(
                    f"{'lazy' if kind == 'lazy_validator' else kind}-{counters[kind]}",
                    "validator",
                    kind,
                    client.address,
                    self.publisher.as_account(client),
                    data=holdouts[j] if j < config.validators else None,
                )
            )
        self.everyone = [*self.relayers, *self.validators, self.keeper]
        self.by_address = {p.address: p for p in self.everyone}
        self.book = RoyaltyBook(self.params.royalty_bp)
        self._royalty_seen: dict[str, int] = defaultdict(int)
        self.stake = config.relayer_stake or 2 * self.params.min_stake
        self.payment = (
            self.params.usage_fee if config.consumer_payment is None else config.consumer_payment
        )

    # -------------------------------------------------------------- helpers

    def _test_accuracy(self, weights: bytes) -> int:
        key = hashlib.sha256(weights).digest()
        if key not in self._test_cache:
            self._test_cache[key] = score_weights(self.spec, weights, self.test)
        return self._test_cache[key]

    def _score(self, v: Participant, weights: bytes) -> int:
        """Validator `v`'s score of `weights` on its held-out shard (cached: the champion is
        scored again in every review it stays champion)."""
        assert v.data is not None
        key = (hashlib.sha256(weights).digest(), v.name)
        if key not in self._score_cache:
            self._score_cache[key] = score_weights(self.spec, weights, v.data)
        return self._score_cache[key]

    def _flow(self, round_: int, address: str, kind: str, amount: int) -> None:
        if amount:
            self.flows.append((round_, address, kind, amount))

    def _book_gas(self, address: str, wei: int) -> None:
        if wei:
            self.gas.append((self._round_now, address, wei))

    def _net_profit(self, address: str) -> int:
        """Profit with gas counted (`derelay.lab.metrics.Profit` leaves gas out)."""
        profit = profit_of((k, a) for _, who, k, a in self.flows if who == address).profit
        return profit - sum(w for _, who, w in self.gas if who == address)

    def _apply_events(self, round_: int, receipt: TxReceipt) -> RoundFacts | None:
        """Book the money a receipt moved (`derelay.trainer.ledger`'s fold); return the facts of
        round `round_` it holds, if any."""
        ledger = fold_events(self.logs.of_receipt(receipt))
        for m in ledger.movements:
            if m.kind is MoneyKind.REWARD:
                self.book.add_shares(m.account, m.amount)
            elif m.kind is MoneyKind.MODEL_PAID:
                mirrored = self.book.pay(m.amount)
                to_contributors = m.amount - m.pool_delta  # the rest refilled the pool
                if mirrored != to_contributors:
                    raise AssertionError(
                        f"royalty mirror disagrees with the chain: {mirrored} != {to_contributors}"
                    )
            if m.kind in FLOW_OF:
                self._flow(round_, m.account, FLOW_OF[m.kind], m.amount)
        for d in ledger.departures:
            if not d.forced:
                continue
            if d.role is Role.RELAYER:
                p = self.by_address[d.account]
                p.queued, p.left_round, p.left_reason = False, round_, "stake below minStake"
            else:
                v = self.by_address[d.account]
                v.seated = False
                v.seats_lost += 1
        return ledger.rounds.get(round_)

    def _book_royalties(self, round_: int) -> None:
        for p in self.everyone:
            owed = self.book.owed(p.address)
            self._flow(round_, p.address, "royalty", owed - self._royalty_seen[p.address])
            self._royalty_seen[p.address] = owed

    # -------------------------------------------------------------- behaviours

    def _make_child(
        self, p: Participant, round_: int
    ) -> tuple[bytes, int, int, dict[str, Any], Any]:
        """(child weights, samples trained, samples claimed, relay card, the adversary's choice or
        None) of a submitting relayer."""
        assert p.data is not None
        if p.behaviour in ADVERSARIES:
            assert p.estimate is not None
            child = make_adversary_child(
                p.behaviour, self.spec, self.head_bytes, self.champion_bytes, p.data, p.estimate,
                self.seed, round_, p.turns, advance_band=self.params.advance_band,
                margin=self.config.margin, poison_epochs=self.config.poison_epochs, pair=p.pair,
            )  # fmt: skip
            card = {"format": RELAY_CARD_FORMAT}
            return child.weights, child.samples, max(child.samples, len(p.data)), card, child
        work = make_child(
            self.spec, self.config, p.behaviour, self.head_bytes, p.data, self.seed, round_, p.turns
        )
        if work.result is None:  # nothing trained: a card that says little
            return work.weights, 0, len(p.data), {"format": RELAY_CARD_FORMAT}, None
        card = relay_card(
            self.task_id, round_, str(unixfs_cid(self.head_bytes)), work.result, work.cfg, 0.0,
            p.commitment,
        )  # fmt: skip
        return work.weights, work.result.samples, work.result.samples, card, None

    # -------------------------------------------------------------- rounds

    def _join(self, behaviours: Sequence[str]) -> None:
        for p in self.relayers:
            if p.behaviour in behaviours and not p.queued and p.left_round is None:
                p.relay.join_relay(self.task_id, self.stake)
                p.queued = True

    def _seat_validators(self) -> None:
        """Seat every validator without a seat that has not left; a squatter over-stakes, so that
        it keeps its seat through maxMisses missed commits, and takes a seat again after it."""
        for v in self.validators:
            if v.seated or v.left_round is not None:
                continue
            factor = SQUATTER_STAKE if v.behaviour == "squatter" else 1
            try:
                v.relay.register_validator(self.task_id, factor * self.params.validator_stake)
            except ContractRevert as exc:
                if exc.name != Revert.SEATS_FULL:
                    raise
                continue
            v.seated = True
            v.seats += 1

    def run(self) -> SeedResult:
        started = time.perf_counter()
        cfg = self.config
        self._seat_validators()
        self._join(["honest"])
        if cfg.warmup == 0:
            self._join(RELAYER_BEHAVIOURS)
        state = self.publisher.task_state(self.task_id)
        honest_samples = 0
        counts = ", ".join(
            f"{b} {cfg.behaviours().count(b)}" for b in RELAYER_BEHAVIOURS if b in cfg.behaviours()
        )
        self.echo(
            f"seed {self.seed}: task {self.task_id}, genesis {self.genesis_score} bp "
            f"({self.genesis_accuracy} bp on the test split); {cfg.participants} relayers "
            f"({counts}), {cfg.validators} validators + {cfg.lazy_validators} lazy + "
            f"{cfg.squatters} squatters, alpha {cfg.alpha if cfg.alpha is not None else 'iid'}"
        )
        for _ in range(cfg.rounds):
            if state.phase == Phase.IDLE:
                self.echo(f"round {state.round}: the queue is empty; the relay stopped")
                break
            self._round_now = state.round
            row = self._round(state)
            if row.behaviour == "honest":
                honest_samples += row.samples
            row.honest_samples = honest_samples
            if cfg.warmup and row.round == cfg.warmup:
                self._join([b for b in RELAYER_BEHAVIOURS if b != "honest"])
            self._churn(row)
            self._seat_validators()
            state = self.publisher.task_state(self.task_id)
            row.pool = state.pool
            row.head_score = state.head_score
            row.champion_after = state.champion_score
            if state.champion_cid != unixfs_cid(self.champion_bytes).to_bytes():
                raise AssertionError(f"round {row.round}: the chain's champion is not ours")
            self.champions.append(self.champion_bytes)
            self.rows.append(row)
            self.echo(
                f"  round {row.round:3} {row.behaviour:10} {row.verdict:8} child {row.child_score:5} "
                f"delta {row.delta:+5} champion {row.champion_after:5} head acc "
                f"{row.head_accuracy:5} champion acc {row.champion_accuracy:5} "
                f"reward {row.reward / ETHER:.4f} pool {row.pool / ETHER:.3f}"
            )
        relay_done = time.perf_counter()
        payouts = task_payouts(self.publisher, self.task_id)
        self._check_books(payouts)
        curves = self._curves()
        reference = self._reference()
        timings = {
            "relay_s": relay_done - started,
            "baselines_s": time.perf_counter() - relay_done,
        }
        return SeedResult(
            seed=self.seed,
            out_dir=self.out_dir,
            task_id=self.task_id,
            genesis_score=self.genesis_score,
            genesis_accuracy=self.genesis_accuracy,
            rows=self.rows,
            participants=self.everyone,
            flows=self.flows,
            gas=self.gas,
            payouts=payouts,
            curves=curves,
            params=self.params,
            seconds=time.perf_counter() - started,
            spec=self.spec,
            champions=self.champions,
            test=self.test,
            reference=reference,
            timings=timings,
        )

    def _round(self, state: TaskState) -> SimulatedRound:
        round_ = state.round
        holder = self.by_address[state.holder]
        holder.turns += 1
        row = SimulatedRound(
            round=round_,
            relayer=holder.name,
            behaviour=holder.behaviour,
            verdict="skipped",
            crowned=False,
            child_score=0,
            champion_score=0,
            delta=0,
            progress=0,
            reveals=0,
            ballots="",
            champion_before=state.champion_score,
            champion_after=state.champion_score,
            head_score=state.head_score,
            head_before=self.head_accuracy,
            head_accuracy=self.head_accuracy,
            head_gap=0,
            champion_accuracy=self.champion_accuracy,
            child_accuracy=None,
            gain=0,
            samples=0,
            honest_samples=0,
            reward=0,
            slashed=0,
            gas=0,
            pool=state.pool,
            attack="",
            mix=None,
            estimate=None,
        )
        gas_mark = len(self.gas)
        if holder.behaviour == "staller":
            self.chain.advance_to(state.deadline + 1)
            facts = self._apply_events(round_, self.keeper.relay.skip_turn(self.task_id))
            holder.skipped += 1
            row.slashed = facts.relayer_slashed if facts is not None else 0
        else:
            self._review(holder, state, row)
        row.gas = sum(w for _, who, w in self.gas[gas_mark:] if who == holder.address)
        row.head_accuracy = self.head_accuracy
        row.champion_accuracy = self.champion_accuracy
        honest = [v for v in self.validators if v.behaviour == "validator" and v.seated]
        row.head_gap = lower_median(
            [self._score(v, self.head_bytes) - self._score(v, self.champion_bytes) for v in honest]
        )
        if self.payment:
            self._apply_events(round_, self.consumer.pay_for_model(self.task_id, self.payment))
        self._book_royalties(round_)
        return row

    def _review(self, holder: Participant, state: TaskState, row: SimulatedRound) -> None:
        """The holder submits (after a void review, the same child again), the validators commit
        and reveal paired scores, the keeper finalizes; `row` gets the outcome."""
        round_ = state.round
        if self._void_child is not None and self._void_child[0] == holder.address:
            _, child, card_bytes, claimed = self._void_child
            trained = 0
        else:
            child, trained, claimed, card, attack = self._make_child(holder, round_)
            card_bytes = json.dumps(card, sort_keys=True).encode()
            if attack is not None:
                row.attack, row.mix, row.estimate = attack.kind, attack.mix, attack.estimate
            if trained:  # compute_cost per epoch over the relayer's shard
                assert holder.data is not None
                epochs = max(1, round(trained / len(holder.data)))
                self._flow(round_, holder.address, "compute", self.config.compute_cost * epochs)
        self._void_child = None
        holder.samples += trained
        row.samples = trained
        child_cid = self.store.add(child)
        card_cid = self.store.add(card_bytes)
        holder.relay.submit_relay(
            self.task_id,
            round_,
            Cid.from_bytes(state.head_cid).digest,
            child_cid.to_bytes(),
            card_cid.to_bytes(),
            holder.commitment,
            max(1, claimed),
        )
        # its deadlines as the contract counts them, and the champion score a parrot reveals
        review = self.publisher.task_state(self.task_id)
        ballots = []
        for v in self.validators:
            if not v.seated or v.behaviour == "squatter":
                continue
            lazy = v.behaviour == "lazy_validator"
            if lazy:
                scores = tuple(self.rng.randrange(0, 10_001) for _ in range(3))
            elif v.behaviour == "parrot":  # an honest child scores about what the champion did
                scores = (review.champion_score,) * 3
            else:
                scores = (
                    self._score(v, child),
                    self._score(v, self.champion_bytes),
                    self._score(v, self.head_bytes),  # the parent: the head until finalized
                )
            salt = self.rng.randbytes(32)
            v.relay.commit_score(
                self.task_id, round_, commitment_for(self.task_id, round_, *scores, salt, v.address)
            )
            v.reviews += 1
            ballots.append((v, scores, salt, lazy))
        self.chain.advance_to(review.deadline + 1)
        for v, scores, salt, lazy in ballots:
            if not lazy:
                v.relay.reveal_score(self.task_id, round_, *scores, salt)
        if any(lazy for *_, lazy in ballots):
            self.chain.advance_to(review.reveal_end + 1)
        facts = self._apply_events(round_, self.keeper.relay.finalize(self.task_id))
        if facts is None or facts.verdict is None:
            raise AssertionError(f"finalize of round {round_} emitted no verdict")
        verdict = facts.verdict
        row.verdict = verdict.status.name.lower()
        row.crowned = facts.crowned
        row.child_score, row.champion_score = verdict.child_score, verdict.champion_score
        row.delta, row.progress = verdict.delta, verdict.progress
        row.reveals, row.reward = verdict.reveals, verdict.reward
        row.ballots = ";".join("/".join(map(str, s)) for _, s, _, lazy in ballots if not lazy)
        row.slashed = facts.relayer_slashed
        row.child_accuracy = self._test_accuracy(child)
        if row.verdict == "accepted":
            holder.accepted += 1
            progress = row.child_accuracy - self.head_accuracy
            self.head_bytes = child
            self.head_accuracy = row.child_accuracy
            if row.crowned:
                row.gain = row.child_accuracy - self.champion_accuracy
                holder.contribution += max(0, min(row.gain, progress))
                self.champion_bytes = child
                self.champion_accuracy = row.child_accuracy
        elif row.verdict == "rejected":
            holder.rejected += 1
        elif row.verdict == "void":
            self._void_child = (holder.address, child, card_bytes, claimed)

    def _churn(self, row: SimulatedRound) -> None:
        """Participants still unprofitable (gas counted) after `churn_after` turns (reviews) leave.
        Squatters never review, so never leave: they stay to squat."""
        k = self.config.churn_after
        if k is None:
            return
        for p in self.relayers:
            if p.queued and p.turns >= k and self._net_profit(p.address) < 0:
                try:
                    p.relay.leave_relay(self.task_id)
                except ContractRevert as exc:  # a lone relayer holds the next turn: not yet
                    if exc.name != Revert.HOLDER_CANNOT_LEAVE:
                        raise
                    continue
                p.queued, p.left_round, p.left_reason = False, row.round, "unprofitable"
                if self._void_child is not None and self._void_child[0] == p.address:
                    self._void_child = None
        for v in self.validators:
            if v.left_round is None and v.reviews >= k and self._net_profit(v.address) < 0:
                if v.seated:
                    v.relay.leave_validator(self.task_id)
                v.seated, v.left_round, v.left_reason = False, row.round, "unprofitable"

    def _check_books(self, payouts: list[Payout]) -> None:
        """The simulation's books must equal what the chain's events say, to the wei."""
        for payout in payouts:
            mine = profit_of((k, a) for _, who, k, a in self.flows if who == payout.address)
            chain = (
                payout.relayer_rewards,
                payout.validator_fees,
                payout.keeper_bounties,
                payout.royalties_settled + payout.royalties_pending,
                payout.stake_lost,
            )
            ours = (mine.rewards, mine.fees, mine.bounties, mine.royalties, mine.stake_lost)
            if chain != ours:
                raise AssertionError(
                    f"books disagree for {payout.address}: chain {chain}, simulation {ours}"
                )

    # -------------------------------------------------------------- baselines

    def _curves(self) -> dict[str, Curve]:
        relay = Curve(
            "relay",
            [0] + [r.honest_samples for r in self.rows],
            [self.genesis_accuracy] + [r.head_accuracy for r in self.rows],
            [0] + [r.round for r in self.rows],
        )
        curves = {"relay": relay}
        budget = relay.samples[-1]
        if not self.config.baselines or budget == 0:
            return curves
        honest = [p.data for p in self.relayers if p.behaviour == "honest" and p.data is not None]
        genesis = self.head_bytes_genesis()
        curves["centralized"] = centralized_curve(
            self.spec, genesis, honest, self.test, budget, self.seed
        )
        curves["fedavg"] = fedavg_curve(self.spec, genesis, honest, self.test, budget, self.seed)
        curves["local"] = local_curve(self.spec, genesis, honest, self.test, budget, self.seed)
        return curves

    def _reference(self) -> list[ReferenceTurn]:
        """The all-honest relay of this run (with `baselines`): its honest turns only."""
        if not self.config.baselines:
            return []
        by_name = {p.name: p.data for p in self.relayers if p.data is not None}
        turns = [(r.round, by_name[r.relayer]) for r in self.rows if r.behaviour == "honest"]
        holdouts = [v.data for v in self.validators if v.behaviour == "validator" and v.data]
        return honest_reference(
            self.spec, self.config, self.params, self.head_bytes_genesis(), turns, holdouts,
            self.test, self.seed,
        )  # fmt: skip

    def head_bytes_genesis(self) -> bytes:
        return self.store.get(self.genesis_cid)
