"""The worker's journal: what it has started and not yet seen through, on disk before it acts.

A worker killed at any point restarts from this file: a pinned child is reused instead of being
retrained, a submission that may already have landed is never sent twice blind, and a commitment's
salt is written (and fsynced) before the commitment is sent, so the reveal can always follow.
Each transaction sent and not yet done is here too (`SentTx`: nonce, calldata, fees, hashes), so
a later tick, or a restarted worker, polls it, re-sends it with its nonce or raises its fees,
instead of waiting on it blind.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, fields, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from derelay.trainer.chain import SENT_TX_FIELDS, SentTx
from derelay.trainer.errors import JournalError, one_line
from derelay.trainer.limits import loads_json

# 2: a ballot holds paired scores (child, champion and parent); 3: transactions in flight; 4: the
# deployment it belongs to. A version-2 journal is read as one with no transaction in flight, and
# one before version 4 as belonging to the first deployment it is bound to.
JOURNAL_VERSION = 4
READABLE_VERSIONS = (2, 3, 4)
KEEP_ROUNDS = 64  # entries older than this many rounds are dropped on save


class TurnPhase(StrEnum):
    """Where a journaled relay turn stands (the journal stores the value)."""

    TRAINED = "trained"  # the child and its card are pinned
    SUBMITTING = "submitting"  # the submission is sent, or about to be
    SUBMITTED = "submitted"  # the submission landed
    ABANDONED = "abandoned"  # the turn was lost (the head moved, the turn expired or was skipped)


class BallotPhase(StrEnum):
    """Where a journaled ballot stands (the journal stores the value)."""

    SCORED = "scored"  # the scores are measured and the salt drawn: the commitment goes out next
    COMMITTED = "committed"  # the commitment landed: the reveal goes out in the reveal window
    REVEALED = "revealed"  # the reveal landed


@dataclass(frozen=True)
class TurnEntry:
    """A relay turn in flight."""

    round: int
    parent_cid: str
    child_cid: str
    card_cid: str
    samples: int
    data_commitment: str
    phase: TurnPhase


@dataclass(frozen=True)
class BallotEntry:
    """A review in flight: the child, the champion and the child's parent (the head it was trained
    from) scored on the same held-out data."""

    round: int
    child_cid: str
    child_score: int
    champion_cid: str
    champion_score: int
    parent_cid: str
    parent_score: int
    salt: str
    phase: BallotPhase


class Journal:
    """A small JSON document, rewritten atomically (temp file, fsync, rename, fsync directory)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._turns: dict[str, dict[str, Any]] = {}
        self._ballots: dict[str, dict[str, Any]] = {}
        self._txs: dict[str, dict[str, Any]] = {}
        self._deployment: str | None = None  # `bind`'s
        if path.exists():
            self._load()

    def _load(self) -> None:
        try:
            document = loads_json(self.path.read_bytes())
            if not isinstance(document, dict) or document.get("version") not in READABLE_VERSIONS:
                raise ValueError(f"not a version-{JOURNAL_VERSION} journal")
            self._turns = _table(document["turns"], TurnEntry)
            self._ballots = _table(document["ballots"], BallotEntry)
            self._txs = _tx_table(
                document.get("txs", {}) if document["version"] == 2 else document["txs"]
            )
            self._deployment = _deployment(document.get("deployment"))
        except (OSError, ValueError, KeyError, RecursionError) as exc:
            raise JournalError(
                f"journal {self.path} is unreadable ({one_line(str(exc), 120)}): move it aside "
                "only if no turn or commitment is in flight, since it holds the salts of "
                "unrevealed scores"
            ) from exc

    def bind(self, deployment: str) -> Path | None:
        """Tie the journal to `deployment` (`DeRelayContract.deployment_id`) and return None, or,
        when it was written for another deployment, move it aside, start afresh, and return where
        it went.

        Another deployment at the same address and chain id is what a wiped dev chain gives when
        the contract is deployed again (same account, same nonce, same bytes): its turns and
        ballots are not this one's, and acting on them resends old children and skips ballots
        that validators are then charged for. Nothing is deleted: the old journal keeps its salts.
        A journal from before deployments were recorded is taken as this deployment's."""
        if _deployment(deployment) == self._deployment:
            return None
        moved = None
        if self._deployment is not None and self.path.exists():
            moved = _free_name(self.path, f".{self._deployment[2:14]}.stale")
            os.replace(self.path, moved)
            self._turns, self._ballots, self._txs = {}, {}, {}
        self._deployment = deployment
        self._write()
        return moved

    @staticmethod
    def _key(task_id: int, round_: int) -> str:
        return f"{task_id}:{round_}"

    def turn(self, task_id: int, round_: int) -> TurnEntry | None:
        """The journaled turn of `round_`, if any."""
        entry = self._turns.get(self._key(task_id, round_))
        return TurnEntry(**entry) if entry else None

    def ballot(self, task_id: int, round_: int) -> BallotEntry | None:
        """The journaled ballot of `round_`, if any."""
        entry = self._ballots.get(self._key(task_id, round_))
        return BallotEntry(**entry) if entry else None

    def record_turn(self, task_id: int, entry: TurnEntry) -> None:
        """Write `entry` durably."""
        self._turns[self._key(task_id, entry.round)] = asdict(entry)
        self._save(task_id, entry.round)

    def record_ballot(self, task_id: int, entry: BallotEntry) -> None:
        """Write `entry` durably."""
        self._ballots[self._key(task_id, entry.round)] = asdict(entry)
        self._save(task_id, entry.round)

    def advance_turn(self, task_id: int, entry: TurnEntry, phase: TurnPhase) -> TurnEntry:
        """Record `entry` in its next phase and return it."""
        moved = replace(entry, phase=phase)
        self.record_turn(task_id, moved)
        return moved

    def advance_ballot(self, task_id: int, entry: BallotEntry, phase: BallotPhase) -> BallotEntry:
        """Record `entry` in its next phase and return it."""
        moved = replace(entry, phase=phase)
        self.record_ballot(task_id, moved)
        return moved

    def txs(self, task_id: int) -> list[SentTx]:
        """The transactions of `task_id` sent (or about to be) and not yet done, oldest nonce
        first."""
        prefix = f"{task_id}:"
        found = [SentTx.from_json(t) for k, t in self._txs.items() if k.startswith(prefix)]
        return sorted(found, key=lambda t: t.nonce)

    def record_tx(self, task_id: int, tx: SentTx, current_round: int) -> None:
        """Write `tx` durably (before it is sent, and again after each resend or fee bump); a
        poll that changed nothing writes nothing."""
        key, entry = f"{task_id}:{tx.key}", tx.to_json()
        if self._txs.get(key) == entry:
            return
        self._txs[key] = entry
        self._save(task_id, current_round)

    def drop_tx(self, task_id: int, tx: SentTx, current_round: int) -> None:
        """Forget `tx`: it is done (or lost, and its action is decided anew)."""
        if self._txs.pop(f"{task_id}:{tx.key}", None) is not None:
            self._save(task_id, current_round)

    def _save(self, task_id: int, current_round: int) -> None:
        for table in (self._turns, self._ballots):
            for key in list(table):
                task, round_ = (int(part) for part in key.split(":"))
                if task == task_id and round_ < current_round - KEEP_ROUNDS:
                    del table[key]
        self._write()

    def _write(self) -> None:
        document = {
            "version": JOURNAL_VERSION,
            "deployment": self._deployment,
            "turns": self._turns,
            "ballots": self._ballots,
            "txs": self._txs,
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(document, handle, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def _free_name(path: Path, suffix: str) -> Path:
    """`path` with `suffix` added, and a count after it if that name is taken."""
    candidate, count = path.with_name(path.name + suffix), 1
    while candidate.exists():
        count += 1
        candidate = path.with_name(f"{path.name}{suffix}{count}")
    return candidate


def _deployment(value: Any) -> str | None:
    """A deployment id as `bind` records it: None, or a block hash as 0x and 64 hex digits."""
    if value is not None and not (isinstance(value, str) and _BLOCK_HASH.fullmatch(value)):
        raise ValueError(f"deployment {one_line(repr(value), 80)} is not a block hash")
    return value


_BLOCK_HASH = re.compile(r"0x[0-9a-f]{64}")
_KEY = re.compile(r"\d{1,20}:\d{1,20}")
_HEX32 = re.compile(r"[0-9a-f]{64}")
_PHASES: dict[type, type[TurnPhase] | type[BallotPhase]] = {
    TurnEntry: TurnPhase,
    BallotEntry: BallotPhase,
}


def _table(value: Any, kind: type[TurnEntry] | type[BallotEntry]) -> dict[str, dict[str, Any]]:
    """One table of the document, checked: "task:round" keys, entries of `kind` with exactly its
    fields, each of its type (bool is not int), a known phase and 32-byte hex where hex is due;
    phases are read as their enum."""
    if not isinstance(value, dict):
        raise ValueError(f"{kind.__name__} table is not an object")
    phases = _PHASES[kind]
    types = {item.name: item.type for item in fields(kind)} | {"phase": "str"}  # on disk: JSON
    for key, entry in value.items():
        ok = (
            _KEY.fullmatch(key)
            and isinstance(entry, dict)
            and entry.keys() == types.keys()
            and all(type(entry[name]).__name__ == types[name] for name in types)
            and entry["round"] == int(key.split(":")[1])
            and entry["phase"] in set(phases)
            and all(
                _HEX32.fullmatch(entry[name])
                for name in ("salt", "data_commitment")
                if name in entry
            )
        )
        if not ok:
            raise ValueError(f"{kind.__name__} {key[:40]!r} is malformed")
    return {key: {**entry, "phase": phases(entry["phase"])} for key, entry in value.items()}


_TX_KEY = re.compile(r"\d{1,20}:[A-Za-z]{1,40}:\d{1,20}")
_HEX = re.compile(r"0x[0-9a-f]*")
_TX_TYPES = {
    "key": str, "action": str, "nonce": int, "to": str, "data": str, "value": int, "gas": int,
    "max_fee": int, "hashes": list, "sent_at": float,
}  # fmt: skip


def _tx_table(value: Any) -> dict[str, dict[str, Any]]:
    """The table of transactions in flight, checked: "task:action:round" keys naming their
    entry's key, every `SentTx` field of its type, hex where hex is due."""
    if not isinstance(value, dict):
        raise ValueError("transaction table is not an object")
    for key, entry in value.items():
        ok = (
            _TX_KEY.fullmatch(key)
            and isinstance(entry, dict)
            and entry.keys() == set(SENT_TX_FIELDS)
            and all(type(entry[name]) is kind for name, kind in _TX_TYPES.items())
            and (entry["tip"] is None or type(entry["tip"]) is int)
            and key.split(":", 1)[1] == entry["key"]
            and _HEX.fullmatch(entry["data"])
            and all(isinstance(h, str) and _HEX32.fullmatch(h[2:]) for h in entry["hashes"])
        )
        if not ok:
            raise ValueError(f"transaction {key[:40]!r} is malformed")
    return dict(value)
