"""One relay turn's local training, and held-out evaluation in basis points.

Training is reproducible: the seed fixes the batch order (a private torch.Generator) and any other
draw (torch.manual_seed), and deterministic kernels are asked for while it runs, so on CPU the same
weights, data and config give bit-identical child weights.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from derelay.trainer.errors import ConfigError, DataError
from derelay.trainer.spec import DEVICES, TrainConfig


@dataclass(frozen=True)
class TrainReport:
    samples: int  # samples processed: epochs x local samples
    seconds: float  # wall time of the training loop
    final_loss: float  # mean cross-entropy of the (adjusted) logits over the last epoch
    device: str  # where it ran


def resolve_device(device: str) -> torch.device:
    """The torch device for a config value: auto means cuda when visible; cuda needs a GPU."""
    if device not in DEVICES:
        raise ConfigError(f"unknown device {device!r}; use cpu, cuda or auto")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device cuda was asked for but no CUDA GPU is visible; use cpu or auto")
    return torch.device(device)


@contextlib.contextmanager
def _deterministic(device: torch.device) -> Iterator[None]:
    """Deterministic kernels for the duration, then the caller's global settings back."""
    if device.type == "cuda":
        # cuBLAS is deterministic only with a fixed workspace; read when its handle is created.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    saved = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.benchmark,
    )
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
        torch.backends.cudnn.benchmark = saved[2]


SMALL_MODEL_PARAMS = 1_000_000  # below this, one CPU thread trains faster than several


@contextlib.contextmanager
def _threads_for(model: nn.Module, device: torch.device) -> Iterator[None]:
    """One intra-op thread for a small model on the CPU, then the caller's setting back.

    Splitting a 64x64 layer's work across threads costs more in synchronisation than it saves:
    measured here, a digits-MLP turn took 1.4 s with 2 threads and 10 ms with 1.
    """
    small = sum(p.numel() for p in model.parameters()) < SMALL_MODEL_PARAMS
    if device.type != "cpu" or not small:
        yield
        return
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


def _check_xy(X: np.ndarray, y: np.ndarray) -> None:
    if len(X) == 0 or len(X) != len(y):
        raise DataError(f"need matching, non-empty X and y; got {len(X)} rows and {len(y)} labels")


def train(
    model: nn.Module, X: np.ndarray, y: np.ndarray, cfg: TrainConfig, progress: bool = False
) -> TrainReport:
    """Train `model` in place on (X, y); it ends on the device it started on.

    A loss that turns NaN or infinite raises ConfigError; the model's weights are then garbage.
    """
    _check_xy(X, y)
    device = resolve_device(cfg.device)
    home = next(model.parameters()).device
    with _deterministic(device), _threads_for(model, device):
        torch.manual_seed(cfg.seed)
        order = torch.Generator().manual_seed(cfg.seed)
        model.to(device).train()
        inputs = torch.as_tensor(X, dtype=torch.float32).to(device)
        labels = torch.as_tensor(y, dtype=torch.int64).to(device)
        parent = [p.detach().clone() for p in model.parameters()] if cfg.prox_mu > 0 else []
        shift = cfg.logit_adjust * _log_prior(model, inputs, labels) if cfg.logit_adjust else None
        teacher = _logits_of(model, inputs) if cfg.distill else None
        if cfg.optimizer == "adam":
            opt: torch.optim.Optimizer = torch.optim.Adam(
                model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay
            )
        else:
            opt = torch.optim.SGD(
                model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
            )
        n = len(labels)
        start = time.perf_counter()
        with tqdm(
            total=cfg.epochs * n, unit="sample", desc="training", disable=not progress
        ) as bar:
            for _ in range(cfg.epochs):
                total = torch.zeros((), device=device)
                for batch in torch.randperm(n, generator=order).split(cfg.batch_size):
                    batch = batch.to(device)
                    raw = model(inputs[batch])
                    logits = raw if shift is None else raw + shift
                    loss = nn.functional.cross_entropy(logits, labels[batch])
                    total += loss.detach() * len(batch)
                    if teacher is not None:
                        kd = _distillation(raw, teacher[batch], cfg.distill_temperature)
                        loss = loss + cfg.distill * kd
                    if parent:
                        drift = sum(
                            (p - p0).pow(2).sum()
                            for p, p0 in zip(model.parameters(), parent, strict=True)
                        )
                        loss = loss + cfg.prox_mu / 2 * drift
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    bar.update(len(batch))
        final_loss = total.item() / n
        seconds = time.perf_counter() - start
        model.to(home)
    if not math.isfinite(final_loss):
        raise ConfigError(
            f"training diverged (loss {final_loss}); lower the learning rate, prox_mu or distill"
        )
    return TrainReport(
        samples=cfg.epochs * n, seconds=seconds, final_loss=final_loss, device=str(device)
    )


@torch.no_grad()
def _logits_of(model: nn.Module, inputs: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """The parent's logits on every local sample, computed once before the first step."""
    return torch.cat([model(chunk) for chunk in inputs.split(batch_size)])


def _distillation(logits: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(parent || child) of the predictions softened at `temperature`, times its square so that
    the gradient keeps its scale (Hinton et al. 2015).

    The cross-entropy teaches the local labels; this term asks the child to keep predicting what
    its parent predicted on the same samples, which on a skewed shard carries what the parent knew
    of the classes the shard lacks (learning without forgetting, Li and Hoiem 2017). In the review
    sweep's relays it is what turned most held honest turns into advanced ones: label-skewed
    children had been real regressions on the test split, not noise.
    """
    t = temperature
    return (
        nn.functional.kl_div(
            torch.log_softmax(logits / t, dim=1),
            torch.log_softmax(teacher / t, dim=1),
            reduction="batchmean",
            log_target=True,
        )
        * t
        * t
    )


@torch.no_grad()
def _log_prior(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """log of the local label frequencies, one row over the model's classes.

    Added to the logits in training (logit adjustment, Menon et al. 2021; balanced softmax, Ren et
    al. 2020), it lets the local prior explain the skew of the local labels, so the weights learn
    what the samples look like rather than how rare the other classes are here: a relayer holding
    one class no longer teaches the shared model to forget the other nine. Counts are smoothed by
    one (Laplace): with the bare frequencies a class with no local sample would drop out of the
    softmax, and a relayer holding a single class would have no loss to learn from, its child the
    very weights of its parent.
    """
    classes = model(inputs[:1]).shape[1]
    counts = torch.bincount(labels, minlength=classes)[:classes].float() + 1
    return torch.log(counts / counts.sum()).unsqueeze(0)


@torch.no_grad()
def evaluate(model: nn.Module, X: np.ndarray, y: np.ndarray, batch_size: int = 1024) -> int:
    """Accuracy in basis points, floor(10000 * correct / n), on the model's own device."""
    _check_xy(X, y)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    labels = torch.as_tensor(y, dtype=torch.int64)
    correct = 0
    for start in range(0, len(labels), batch_size):
        inputs = torch.as_tensor(X[start : start + batch_size], dtype=torch.float32).to(device)
        predicted = model(inputs).argmax(dim=1).cpu()
        correct += int((predicted == labels[start : start + batch_size]).sum())
    model.train(was_training)
    return correct * 10000 // len(labels)
