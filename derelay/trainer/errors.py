"""One error root for DeRelayL, with a subclass per domain.

Every error a user can cause carries a message that says what was wrong and what to do; the CLI
prints it as one line. Code catches the narrowest class that it can handle.
"""

from __future__ import annotations


def one_line(text: str, limit: int = 300) -> str:
    """Untrusted or multi-line text for a message: whitespace runs made one space, cut short."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class DeRelayError(Exception):
    """Root of every error DeRelayL raises on purpose."""


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
    """A transaction or call reverted; `name` and `args` hold the decoded custom error."""

    def __init__(self, message: str, name: str = "", args: tuple[object, ...] = ()) -> None:
        super().__init__(message)
        self.name = name
        self.error_args = args


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
