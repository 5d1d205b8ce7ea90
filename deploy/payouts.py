"""What each address earned, lost and holds in a task, rebuilt from the chain's events and views.

Everything here comes from the chain: events for the flows (rewards, fees, bounties, royalties,
slashes), views for what is held now (stakes, withdrawable, pending royalties). Two people running
this against the same chain get the same numbers, to the wei.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass

from trainer.contract import DeRelayContract

SLASH_REASONS = {0: "timeout", 1: "rejected"}


@dataclass(frozen=True)
class Payout:
    """One address in one task. All amounts in wei."""

    address: str
    relayer_rewards: int  # rewards of accepted turns
    validator_fees: int  # fees of in-band reveals
    keeper_bounties: int  # bounties for skip and finalize
    royalties_settled: int  # royalties already moved to withdrawable
    royalties_pending: int  # royalties owed, not yet settled
    slashed: int  # stake lost (relayer and validator)
    relayer_stake: int  # held now in the queue
    validator_stake: int  # held now in a seat
    withdrawable: int  # across all tasks, now
    accepted_turns: int
    rejected_turns: int

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

    def to_json(self) -> dict[str, object]:
        """Plain JSON, with amounts as decimal strings (wei overflows JSON numbers in some readers)."""
        out: dict[str, object] = {
            k: (str(v) if isinstance(v, int) and not k.endswith("_turns") else v)
            for k, v in asdict(self).items()
        }
        out["earned"] = str(self.earned)
        return out


def task_payouts(relay: DeRelayContract, task_id: int, from_block: int = 0) -> list[Payout]:
    """The payout of every address that took part in `task_id`, biggest earner first."""
    rewards: dict[str, int] = defaultdict(int)
    fees: dict[str, int] = defaultdict(int)
    bounties: dict[str, int] = defaultdict(int)
    royalties: dict[str, int] = defaultdict(int)
    slashed: dict[str, int] = defaultdict(int)
    accepted: dict[str, int] = defaultdict(int)
    rejected: dict[str, int] = defaultdict(int)
    seen: set[str] = set()

    for event in relay.events("RoundFinalized", from_block, taskId=task_id):
        args = event["args"]
        seen.add(args["relayer"])
        rewards[args["relayer"]] += args["reward"]
        if args["verdict"] == 3:
            accepted[args["relayer"]] += 1
        elif args["verdict"] == 4:
            rejected[args["relayer"]] += 1
    for name, table, key, amount in (
        ("ValidatorPaid", fees, "validator", "fee"),
        ("KeeperPaid", bounties, "keeper", "bounty"),
        ("RoyaltiesSettled", royalties, "account", "amount"),
        ("RelayerSlashed", slashed, "relayer", "amount"),
        ("ValidatorSlashed", slashed, "validator", "amount"),
    ):
        for event in relay.events(name, from_block, taskId=task_id):
            seen.add(event["args"][key])
            table[event["args"][key]] += event["args"][amount]
    for name, key in (("RelayerJoined", "relayer"), ("ValidatorRegistered", "validator")):
        for event in relay.events(name, from_block, taskId=task_id):
            seen.add(event["args"][key])

    payouts = []
    for address in seen:
        account = relay.account(task_id, address)
        payouts.append(
            Payout(
                address=address,
                relayer_rewards=rewards[address],
                validator_fees=fees[address],
                keeper_bounties=bounties[address],
                royalties_settled=royalties[address],
                royalties_pending=account.pending_royalties,
                slashed=slashed[address],
                relayer_stake=account.relayer_stake,
                validator_stake=account.validator_stake,
                withdrawable=account.withdrawable,
                accepted_turns=accepted[address],
                rejected_turns=rejected[address],
            )
        )
    return sorted(payouts, key=lambda p: (-p.earned, p.address))
