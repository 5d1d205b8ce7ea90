"""One error root for DeRelayL, with a subclass per domain.

Every error a user can cause carries a message that says what was wrong and what to do; the CLI
prints it as one line. Code catches the narrowest class that it can handle.
"""

from __future__ import annotations

from enum import StrEnum


def one_line(text: str, limit: int = 300) -> str:
    """Untrusted or multi-line text for a message: whitespace runs made one space, cut short."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class DeRelayError(Exception):
    """Root of every error DeRelayL raises on purpose.

    Messages speak of the protocol and of settings, never of a front end's commands or flags:
    `setting`, when set, names the setting whose value to check or change (a parameter of the
    core's API, e.g. "rpc" or "rpc_reply_bytes"), for a front end to name its own option for it.
    """

    def __init__(self, message: str = "", setting: str = "") -> None:
        super().__init__(message)
        self.setting = setting


class ConfigError(DeRelayError):
    """A setting, flag, file path or parameter is wrong."""


class StoreError(DeRelayError):
    """The content store failed: unreachable node, missing block, bad reply."""


class CidError(StoreError):
    """A CID is malformed or bytes do not hash to the CID that names them."""


class SpecError(DeRelayError):
    """A task spec is malformed, too large, or names something unsupported."""


class WeightsError(DeRelayError):
    """A weights file is not safetensors, does not match the spec, or holds non-finite values."""


class DataError(DeRelayError):
    """A dataset is missing, malformed or cannot be partitioned as asked."""


class KeyStoreError(DeRelayError):
    """A key cannot be loaded: wrong password, missing file, or a dev key on a public chain."""


class ChainError(DeRelayError):
    """The chain is unreachable, answered nonsense, or a transaction did not go through."""


class ContractRevert(ChainError):
    """A transaction or call reverted; `name` and `args` hold the decoded custom error (`name` is
    a `Revert` value for the contract's own errors, "Error" or "Panic" for Solidity's, "" when
    the revert carried no reason)."""

    def __init__(self, message: str, name: str = "", args: tuple[object, ...] = ()) -> None:
        super().__init__(message)
        self.name = name
        self.error_args = args


class Revert(StrEnum):
    """The contract's custom errors, by their ABI names (in the order DeRelay.sol declares them).

    A `ContractRevert`'s `name` equals one of these when the contract raised it; tests check that
    this list is exactly the errors of the ABI in derelay/trainer/artifacts/DeRelay.json.
    """

    INVALID_PARAMETER = "DeRelay__InvalidParameter"
    INVALID_CID = "DeRelay__InvalidCid"
    UNKNOWN_TASK = "DeRelay__UnknownTask"
    ZERO_AMOUNT = "DeRelay__ZeroAmount"
    STAKE_TOO_LOW = "DeRelay__StakeTooLow"
    FEE_TOO_LOW = "DeRelay__FeeTooLow"
    ALREADY_QUEUED = "DeRelay__AlreadyQueued"
    NOT_QUEUED = "DeRelay__NotQueued"
    QUEUE_FULL = "DeRelay__QueueFull"
    HOLDER_CANNOT_LEAVE = "DeRelay__HolderCannotLeave"
    WRONG_PHASE = "DeRelay__WrongPhase"
    NOT_HOLDER = "DeRelay__NotHolder"
    WRONG_ROUND = "DeRelay__WrongRound"
    TURN_EXPIRED = "DeRelay__TurnExpired"
    TURN_NOT_EXPIRED = "DeRelay__TurnNotExpired"
    STALE_PARENT = "DeRelay__StaleParent"
    CHILD_SEEN = "DeRelay__ChildSeen"
    ZERO_SAMPLES = "DeRelay__ZeroSamples"
    ALREADY_VALIDATOR = "DeRelay__AlreadyValidator"
    NOT_VALIDATOR = "DeRelay__NotValidator"
    SEATS_FULL = "DeRelay__SeatsFull"
    BALLOT_OPEN = "DeRelay__BallotOpen"
    SELF_REVIEW = "DeRelay__SelfReview"
    COMMIT_CLOSED = "DeRelay__CommitClosed"
    ALREADY_COMMITTED = "DeRelay__AlreadyCommitted"
    REVEAL_NOT_OPEN = "DeRelay__RevealNotOpen"
    REVEAL_CLOSED = "DeRelay__RevealClosed"
    NOT_COMMITTED = "DeRelay__NotCommitted"
    ALREADY_REVEALED = "DeRelay__AlreadyRevealed"
    SCORE_OUT_OF_RANGE = "DeRelay__ScoreOutOfRange"
    REVEAL_MISMATCH = "DeRelay__RevealMismatch"
    REVIEW_OPEN = "DeRelay__ReviewOpen"
    NOTHING_TO_WITHDRAW = "DeRelay__NothingToWithdraw"
    # raised by the OpenZeppelin libraries the contract uses
    FAILED_CALL = "FailedCall"
    INSUFFICIENT_BALANCE = "InsufficientBalance"
    REENTRANCY_GUARD_REENTRANT_CALL = "ReentrancyGuardReentrantCall"
    SAFE_CAST_OVERFLOWED_UINT_DOWNCAST = "SafeCastOverflowedUintDowncast"


class TxPending(ChainError):
    """A transaction went out and is not done yet; whoever tracks it polls it later. `status`
    holds where it stood (a `derelay.trainer.chain.TxStatus`)."""

    def __init__(self, message: str, status: object) -> None:
        super().__init__(message)
        self.status = status


class TxLost(ChainError):
    """A transaction's nonce went to another transaction of the same account: its action did
    not happen, and is to be decided again."""


class DeploymentError(ChainError):
    """No deployment record for this chain, or it names no contract at its address."""


class JournalError(DeRelayError):
    """The worker's journal is unreadable or inconsistent."""
