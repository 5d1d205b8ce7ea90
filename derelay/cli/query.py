"""Reading a task from the chain: `derelay status`, `derelay lineage`, `derelay payouts`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from derelay.cli.options import deployments_option, eth, open_contract, rpc_option
from derelay.trainer.chain import describe_endpoint
from derelay.trainer.cid import Cid
from derelay.trainer.contract import ETHER, DeRelayContract, Status
from derelay.trainer.errors import ConfigError
from derelay.trainer.payouts import Payout, task_payouts


@click.command()
@rpc_option
@deployments_option
@click.argument("task_id", type=int, required=False)
@click.option(
    "--verdicts", type=int, default=5, show_default=True, help="How many of the last verdicts."
)
def status(rpc: str, deployments: Path, task_id: int | None, verdicts: int) -> None:
    """Where a task's relay stands (all tasks when none is given): the champion (what consumers
    license), the head (what the next turn trains on), the last verdicts and validator misses."""
    relay = open_contract(rpc, deployments)
    count = relay.task_count()
    click.echo(
        f"DeRelay at {relay.address} on {describe_endpoint(relay.client.w3)}: {count} task(s)"
    )
    for tid in [task_id] if task_id else range(1, count + 1):
        for line in status_lines(relay, tid, verdicts):
            click.echo(line)


def status_lines(relay: DeRelayContract, task_id: int, verdicts: int = 5) -> list[str]:
    """The `derelay status` lines of one task."""
    s = relay.task_state(task_id)
    params = relay.task_params(task_id)
    head_role = (
        "also the champion" if s.head_cid == s.champion_cid else "the next turn trains on it"
    )
    lines = [
        f"task {task_id}: {s.phase.name.lower()} round {s.round}, holder {s.holder}, "
        f"deadline {s.deadline}, pool {eth(s.pool)}, queue {s.queue_length}, "
        f"validators {s.validator_count}",
        f"  champion {Cid.from_bytes(s.champion_cid)} score {s.champion_score} bp "
        "(licensed by `derelay model get`; children are measured against it)",
        f"  head     {Cid.from_bytes(s.head_cid)} score {s.head_score} bp "
        f"({head_role}), "
        f"{s.accepted_count} accepted of {s.submission_count - 1} submitted",
        f"  review: rejected and slashed below champion - {params.slash_band} bp, "
        f"held below champion - {params.advance_band} bp, rewarded for gain over the champion "
        f"(base reward from +{params.min_gain} bp)",
    ]
    finalized = relay.events("RoundFinalized", taskId=task_id)[-verdicts:] if verdicts > 0 else []
    crowned = {e["args"]["round"] for e in relay.events("ChampionCrowned", taskId=task_id)}
    if finalized:
        lines.append("  last verdicts:")
        for event in reversed(finalized):
            lines.append("    " + verdict_text(event["args"], event["args"]["round"] in crowned))
    misses = [seat for seat in relay.seats(task_id) if int(seat.validator, 16) and seat.misses]
    for seat in misses:
        lines.append(
            f"  validator {seat.validator} (seat {seat.index}) revealed in none of its last "
            f"{seat.misses} reviews (its seat goes after {params.max_misses})"
        )
    return lines


def verdict_text(args: Any, crowned: bool) -> str:
    """One RoundFinalized event in words: the verdict, the medians and what was paid."""
    verdict = Status(args["verdict"]).name.lower()
    head = f"round {args['round']:4} {verdict:8} {args['relayer']}"
    if verdict == "void":
        return f"{head}  {args['reveals']} reveal(s), below quorum: nothing paid, turn kept"
    text = (
        f"{head}  child {args['childScore']} bp, champion {args['championScore']} bp, "
        f"delta {args['delta']:+d} bp, progress {args['progress']:+d} bp, {args['reveals']} reveals"
    )
    if crowned:
        return text + f": crowned the champion, reward {eth(args['reward'])}"
    return text + {
        "accepted": ": the head, no gain over the champion, no reward",
        "held": ": head unchanged, no reward, no slash",
        "rejected": ": relayer slashed",
    }.get(verdict, "")


@click.command()
@rpc_option
@deployments_option
@click.argument("task_id", type=int)
@click.option("--json", "as_json", is_flag=True)
def lineage(rpc: str, deployments: Path, task_id: int, as_json: bool) -> None:
    """Every model of a task: genesis, then each submission with its verdict; the champion and
    the head are marked."""
    relay = open_contract(rpc, deployments)
    rows = lineage_rows(relay, task_id)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(render_lineage(rows))


def render_lineage(rows: list[dict[str, Any]]) -> str:
    """The lineage, a line per model: index, round, verdict, child score and delta to the
    champion in its review, CID, relayer, and which one is the champion and the head."""
    lines = []
    for r in rows:
        score = "–" if r["status"] in ("void", "pending") else str(r["score"])
        delta = "" if r["delta"] is None else f"{r['delta']:+d}"
        marks = ",".join(name for name in ("champion", "head") if r[name])
        lines.append(
            f"{r['index']:4} round {r['round']:4} {r['status']:8} {score:>6} bp {delta:>6}  "
            f"{r['cid']}  {r['relayer']}{'  <- ' + marks if marks else ''}"
        )
    return "\n".join(lines)


def lineage_rows(relay: DeRelayContract, task_id: int) -> list[dict[str, Any]]:
    """The lineage as JSON rows, each with its review's champion score and delta (None before a
    decided review) and whether it is the champion and the head now."""
    state = relay.task_state(task_id)
    finalized = {
        e["args"]["round"]: e["args"] for e in relay.events("RoundFinalized", taskId=task_id)
    }
    rows = []
    for e in relay.full_lineage(task_id):
        review = finalized.get(e.round) if e.index > 0 else None
        decided = review is not None and e.status not in (Status.VOID, Status.PENDING)
        rows.append(
            {
                **e.to_json(),
                "champion_score": review["championScore"] if decided else None,
                "delta": review["delta"] if decided else None,
                "champion": e.cid == state.champion_cid,
                "head": e.cid == state.head_cid,
            }
        )
    return rows


@click.command()
@rpc_option
@deployments_option
@click.argument("task_id", type=int)
@click.option("--address", help="Only this address.")
@click.option(
    "--json", "as_json", is_flag=True, help="Machine-readable, amounts in wei as strings."
)
def payouts(rpc: str, deployments: Path, task_id: int, address: str | None, as_json: bool) -> None:
    """What each participant earned, lost and holds in a task (from the chain's events)."""
    relay = open_contract(rpc, deployments)
    rows = task_payouts(relay, task_id)
    if address:
        rows = [r for r in rows if r.address.lower() == address.lower()]
        if not rows:
            raise ConfigError(f"{address} took no part in task {task_id}: check the address")
    if as_json:
        click.echo(json.dumps([r.to_json() for r in rows], indent=2))
        return
    click.echo(render_payouts(rows))


def render_payouts(rows: list[Payout]) -> str:
    """A fixed-width payouts table in ether; `lost` is stake lost to slashes and missed commits,
    `turns` counts accepted (of which crowned), held, rejected and void turns."""
    header = (
        f"{'address':42}  {'earned':>12}  {'relay':>10}  {'fees':>10}  {'keeper':>10}  "
        f"{'royalty':>10}  {'lost':>10}  {'withdrawable':>12}  {'turns a(c)/h/r/v':>16}  "
        f"{'missed':>6}"
    )
    lines = [header]
    for r in rows:
        turns = (
            f"{r.accepted_turns}({r.crowned_turns})/{r.held_turns}/{r.rejected_turns}/"
            f"{r.void_turns}"
        )
        lines.append(
            f"{r.address:42}  {r.earned / ETHER:12.6f}  {r.relayer_rewards / ETHER:10.6f}  "
            f"{r.validator_fees / ETHER:10.6f}  {r.keeper_bounties / ETHER:10.6f}  "
            f"{(r.royalties_settled + r.royalties_pending) / ETHER:10.6f}  "
            f"{r.stake_lost / ETHER:10.6f}  {r.withdrawable / ETHER:12.6f}  {turns:>16}  "
            f"{r.missed_reviews:6}"
        )
    return "\n".join(lines)
