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


def plot_efficacy(
    path: Path,
    rounds: Sequence[int],
    relay_bp: Sequence[int],
    baselines_by_round: dict[str, Sequence[float]],
    curves_by_samples: dict[str, tuple[Sequence[int], Sequence[int]]],
    title: str,
) -> None:
    """Two panels: accuracy against relay rounds (baselines at the samples the relay had
    processed by each round) and accuracy against samples processed, each method on its own."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5), dpi=100)
    left.plot(list(rounds), [a / 100 for a in relay_bp], label="relay", linewidth=2)
    for name, values in baselines_by_round.items():
        left.plot(list(rounds), [v / 100 for v in values], label=name, linewidth=1.2, alpha=0.85)
    left.set_xlabel("relay round")
    left.set_ylabel("test accuracy (%)")
    left.set_title("against rounds (equal samples processed)")
    for name, (xs, ys) in curves_by_samples.items():
        right.plot(
            list(xs), [y / 100 for y in ys], label=name, linewidth=2 if name == "relay" else 1.2
        )
    right.set_xlabel("samples processed")
    right.set_title("against samples processed")
    for ax in (left, right):
        ax.grid(True, alpha=0.3)
        ax.set_ylim(0, 100)
        ax.legend(loc="lower right")
    fig.suptitle(title)
    fig.tight_layout()
    save(fig, path)


def plot_series(
    path: Path,
    xs: Sequence[float],
    series: dict[str, Sequence[float]],
    xlabel: str,
    ylabel: str,
    title: str,
) -> None:
    """One line per named series against a shared x axis."""
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    for name, ys in series.items():
        ax.plot(list(xs), list(ys), label=name, linewidth=1.5)
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if len(series) > 1:
        ax.legend(loc="best")
    fig.tight_layout()
    save(fig, path)
