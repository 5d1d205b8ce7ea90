"""`derelay --help` and the quick commands start without loading torch or the datasets: only the
commands that train, score or publish pay for them."""

from __future__ import annotations

import subprocess
import sys


def test_the_command_tree_loads_without_torch():
    # act: import the whole command tree in a fresh interpreter, as `derelay --help` does
    probe = "import sys, derelay.cli.main; print(sorted({'torch', 'sklearn'} & set(sys.modules)))"
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()

    # check
    assert loaded == "[]"
