"""What each address earned, lost and holds in a task, rebuilt from the chain's events and views.

Everything here comes from the chain: events for the flows (rewards, fees, bounties, royalties,
slashes, missed-commit charges), views for what is held now (stakes, withdrawable, pending
royalties). Two people running this against the same chain get the same numbers, to the wei.

A void review pays nobody from the pool (no reward, no validator fee, no keeper bounty): it shows
here as a void turn and no flow, while its charges (a validator that committed and did not reveal,
one that missed the commit) still count.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass

from derelay.trainer.contract import DeRelayContract, Status
from derelay.trainer.ledger import Ledger, MoneyKind, task_ledger

# Counts, not wei: sent as JSON numbers.
COUNT_FIELDS = frozenset(
    {
        "accepted_turns",
        "crowned_turns",
        "held_turns",
        "rejected_turns",
        "void_turns",
        "missed_reviews",
    }
)
VERDICT_FIELDS = {
    Status.ACCEPTED: "accepted_turns",
    Status.HELD: "held_turns",
    Status.REJECTED: "rejected_turns",
    Status.VOID: "void_turns",
}


@dataclass(frozen=True)
class Payout:
    """One address in one task. All amounts in wei."""

    address: str
    relayer_rewards: int  # rewards of crowned turns
    validator_fees: int  # fees of in-band reveals
    keeper_bounties: int  # bounties for skip and finalize
    royalties_settled: int  # royalties already moved to withdrawable
    royalties_pending: int  # royalties owed, not yet settled
    slashed: int  # slashes: relayer (timeout, rejected), validator (no reveal, outvoted)
    missed_charges: int  # validator stake lost to missed commits (ValidatorMissed)
    relayer_stake: int  # held now in the queue
    validator_stake: int  # held now in a seat
    withdrawable: int  # across all tasks, now
    accepted_turns: int  # the child became the head
    crowned_turns: int  # ... and the champion (the only turns that earn a reward)
    held_turns: int  # within the slash band, outside the advance band: neither paid nor slashed
    rejected_turns: int
    void_turns: int  # too few reveals: nothing paid, the turn kept
    missed_reviews: int  # reviews this validator could have committed to and did not

    @property
    def earned(self) -> int:
        """Everything earned in this task, settled or not."""
        return (
            self.relayer_rewards
            + self.validator_fees
            + self.keeper_bounties
            + self.royalties_settled
            + self.royalties_pending
        )

    @property
    def stake_lost(self) -> int:
        """Every wei of stake lost in this task: slashes and missed-commit charges."""
        return self.slashed + self.missed_charges

    def to_json(self) -> dict[str, object]:
        """Plain JSON, with amounts as decimal strings (wei overflows JSON numbers in some readers)."""
        out: dict[str, object] = {
            k: (v if k in COUNT_FIELDS or not isinstance(v, int) else str(v))
            for k, v in asdict(self).items()
        }
        out["earned"] = str(self.earned)
        out["stake_lost"] = str(self.stake_lost)
        return out


AMOUNT_FIELDS = {
    MoneyKind.REWARD: "relayer_rewards",
    MoneyKind.FEE: "validator_fees",
    MoneyKind.BOUNTY: "keeper_bounties",
    MoneyKind.ROYALTY: "royalties_settled",
    MoneyKind.TIMEOUT: "slashed",
    MoneyKind.REJECTED: "slashed",
    MoneyKind.NO_REVEAL: "slashed",
    MoneyKind.OUTVOTED: "slashed",
    MoneyKind.MISSED: "missed_charges",
}


def task_payouts(
    relay: DeRelayContract, task_id: int, from_block: int | None = None
) -> list[Payout]:
    """The payout of every address that took part in `task_id`, biggest earner first."""
    return ledger_payouts(relay, task_id, task_ledger(relay, task_id, from_block))


def ledger_payouts(relay: DeRelayContract, task_id: int, ledger: Ledger) -> list[Payout]:
    """The payouts of `ledger` (the fold of `task_id`'s events), with what each address holds now
    read from the contract's views."""
    amounts, counts = tally(ledger)
    payouts = []
    for address in set(amounts) | set(counts) | ledger.members:
        account = relay.account(task_id, address)
        mine, tally_of = amounts[address], counts[address]
        payouts.append(
            Payout(
                address=address,
                relayer_rewards=mine["relayer_rewards"],
                validator_fees=mine["validator_fees"],
                keeper_bounties=mine["keeper_bounties"],
                royalties_settled=mine["royalties_settled"],
                royalties_pending=account.pending_royalties,
                slashed=mine["slashed"],
                missed_charges=mine["missed_charges"],
                relayer_stake=account.relayer_stake,
                validator_stake=account.validator_stake,
                withdrawable=account.withdrawable,
                **{name: tally_of[name] for name in sorted(COUNT_FIELDS)},
            )
        )
    return sorted(payouts, key=lambda p: (-p.earned, p.address))


def tally(ledger: Ledger) -> tuple[dict[str, dict[str, int]], dict[str, dict[str, int]]]:
    """(wei, counts) per address and `Payout` field, from the events alone.

    An address appears once an event names it: a relayer paid no reward still has a (zero) entry.
    """
    amounts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for movement in ledger.movements:
        amount_field = AMOUNT_FIELDS.get(movement.kind)
        if amount_field is not None:
            amounts[movement.account][amount_field] += movement.amount
        if movement.kind is MoneyKind.MISSED:
            counts[movement.account]["missed_reviews"] += 1
    for facts in ledger.rounds.values():
        if facts.verdict is None:
            continue
        verdict_field = VERDICT_FIELDS.get(facts.verdict.status)
        if verdict_field is not None:
            counts[facts.verdict.relayer][verdict_field] += 1
        if facts.crowned:
            counts[facts.verdict.relayer]["crowned_turns"] += 1
    return amounts, counts
