"""Failpoints: named places where a test can have the worker killed as by `kill -9`.

Set `DERELAY_FAILPOINT` to a point's name and the process SIGKILLs itself on reaching it: no
cleanup, no flush, exactly the crash the journal must survive. Unset, a failpoint costs one
environment lookup. The points: after-download, before-training, after-pin (a relayer's turn),
after-commit and after-reveal (a validator's ballot), after-send:<function> (a transaction sent,
its receipt not yet seen; e.g. after-send:submitRelay), and in LocalStore.add: store-open (the
pack's temp file created, empty), store-wrote:<n> (leaf n written, not synced), store-synced (the
whole pack synced, not named) and store-renamed (the pack named, its directory not yet synced).
"""

from __future__ import annotations

import os
import signal


def failpoint(name: str) -> None:
    """Die here, by SIGKILL, if `DERELAY_FAILPOINT` names this point."""
    if os.environ.get("DERELAY_FAILPOINT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
