"""PNG plots (matplotlib, headless)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - the backend must be chosen first


def plot_accuracy(path: Path, rounds: Sequence[int], scores_bp: Sequence[int], title: str) -> None:
    """Head accuracy (bp) against rounds, written atomically to `path`."""
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    ax.plot(list(rounds), [s / 100 for s in scores_bp], marker="o", linewidth=1.5)
    ax.set_xlabel("round")
    ax.set_ylabel("head accuracy (%)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    save(fig, path)


def save(fig: plt.Figure, path: Path) -> None:
    """Write a figure as PNG atomically and close it."""
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, format="png")
    plt.close(fig)
    tmp.replace(path)
