import copy
import json

import pytest

from derelay.trainer.errors import ConfigError, SpecError
from derelay.trainer.limits import DEFAULT_LIMITS
from derelay.trainer.spec import (
    CnnArgs,
    MlpArgs,
    NoArgs,
    SyntheticArgs,
    TaskSpec,
    TrainConfig,
    digits_mlp_spec,
    mnist_mlp_spec,
)


def _doc() -> dict:
    return json.loads(digits_mlp_spec().to_json())


def _cnn_doc() -> dict:
    spec = TaskSpec(
        arch="cnn",
        arch_args=CnnArgs(),
        input_shape=(1, 8, 8),
        num_classes=10,
        dataset="digits",
    )
    return json.loads(spec.to_json())


def _synthetic_doc() -> dict:
    spec = TaskSpec(
        arch="logreg",
        input_shape=(20,),
        num_classes=3,
        dataset="synthetic",
        dataset_args=SyntheticArgs(),
    )
    return json.loads(spec.to_json())


def _encode(doc: dict) -> bytes:
    return json.dumps(doc).encode()


def test_digits_spec_roundtrips_canonically():
    spec = digits_mlp_spec()
    data = spec.to_json()
    assert TaskSpec.from_json(data) == spec
    assert data == json.dumps(json.loads(data), sort_keys=True, separators=(",", ":")).encode()
    pretty = json.dumps(json.loads(data), indent=4).encode()  # same spec, other bytes
    assert TaskSpec.from_json(pretty).to_json() == data


def test_the_mnist_spec_roundtrips_and_fits_its_dataset():
    spec = mnist_mlp_spec()
    assert TaskSpec.from_json(spec.to_json()) == spec
    assert (spec.features, spec.num_classes, spec.dataset) == (784, 10, "mnist")


@pytest.mark.parametrize("make", [_cnn_doc, _synthetic_doc])
def test_other_valid_specs_roundtrip(make):
    data = _encode(make())
    spec = TaskSpec.from_json(data)
    assert TaskSpec.from_json(spec.to_json()) == spec


def test_the_spec_holds_the_recommended_hyperparameters_and_no_worker_setting():
    # act
    train = json.loads(digits_mlp_spec().to_json())["train"]

    # check: the ten recommendations, at the defaults of TrainConfig
    assert train == TrainConfig().recommended()
    assert "seed" not in train and "device" not in train and len(train) == 10


def test_a_spec_written_before_distillation_keeps_its_meaning():
    # prepare: a train object without the two keys added later
    doc = _doc()
    del doc["train"]["distill"], doc["train"]["distill_temperature"]

    # act
    spec = TaskSpec.from_json(_encode(doc))

    # check: it recommends no distillation, and says so once written again
    assert spec.train.distill == 0.0
    assert json.loads(spec.to_json())["train"]["distill"] == 0
    assert TaskSpec.from_json(spec.to_json()) == spec


def test_name_is_optional_and_integers_are_accepted_for_floats():
    doc = _doc()
    del doc["name"]
    doc["train"]["lr"] = 1
    spec = TaskSpec.from_json(_encode(doc))
    assert spec.name == "" and spec.train.lr == 1.0


def test_param_shapes():
    assert digits_mlp_spec().param_shapes() == {
        "hidden.0.weight": (64, 64),
        "hidden.0.bias": (64,),
        "out.weight": (10, 64),
        "out.bias": (10,),
    }
    cnn = TaskSpec.from_json(_encode(_cnn_doc())).param_shapes()
    assert cnn["conv.1.weight"] == (32, 16, 3, 3)
    assert cnn["fc.weight"] == (64, 32 * 2 * 2)


def _set(doc: dict, path: str, value: object) -> dict:
    doc = copy.deepcopy(doc)
    *parents, last = path.split(".")
    node = doc
    for key in parents:
        node = node[key]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return doc


_DELETE = object()

INVALID = [
    ("version", 2),
    ("version", "1"),
    ("version", True),
    ("version", _DELETE),
    ("arch", "transformer"),
    ("arch", 3),
    ("arch_args", {}),
    ("arch_args", []),
    ("arch_args.hidden", []),
    ("arch_args.hidden", [0]),
    ("arch_args.hidden", [5000]),
    ("arch_args.hidden", [64.0]),
    ("arch_args.hidden", [True]),
    ("arch_args.hidden", [8] * 9),
    ("arch_args.hidden", "64"),
    ("arch_args.extra", 1),
    ("input_shape", []),
    ("input_shape", [65]),
    ("input_shape", [0]),
    ("input_shape", [-64]),
    ("input_shape", [1, 1, 1, 64]),
    ("input_shape", "64"),
    ("num_classes", 1),
    ("num_classes", 9),
    ("num_classes", 1001),
    ("num_classes", 10.0),
    ("num_classes", None),
    ("dataset", "mnist"),  # 784 features, not the digits' 64
    ("dataset", "cifar10"),
    ("dataset_args", {"seed": 1}),
    ("dataset_args", None),
    ("train", {}),
    ("train", None),
    ("train.epochs", 0),
    ("train.epochs", 1001),
    ("train.epochs", 1.5),
    ("train.batch_size", 0),
    ("train.lr", 0),
    ("train.lr", -0.1),
    ("train.lr", 11),
    ("train.lr", "0.1"),
    ("train.lr", 1e400),
    ("train.optimizer", "rmsprop"),
    ("train.momentum", 1.0),
    ("train.momentum", -0.1),
    ("train.weight_decay", -1),
    ("train.prox_mu", -0.01),
    ("train.prox_mu", _DELETE),
    ("train.logit_adjust", -0.5),
    ("train.logit_adjust", 11),
    ("train.logit_adjust", _DELETE),
    ("train.distill", -0.5),
    ("train.distill", 1001),
    ("train.distill", "3"),
    ("train.distill_temperature", 0),
    ("train.distill_temperature", 101),
    ("train.extra", 0),
    ("eval_fraction", 0),
    ("eval_fraction", 0.95),
    ("eval_fraction", False),
    ("name", 5),
    ("name", "x" * 201),
    ("name", "line\nbreak"),
    ("extra", 1),
]


@pytest.mark.parametrize(("path", "value"), INVALID, ids=[f"{p}={v!r:.20}" for p, v in INVALID])
def test_each_invalid_field_is_a_spec_error(path, value):
    with pytest.raises(SpecError, match="invalid task spec") as info:
        TaskSpec.from_json(_encode(_set(_doc(), path, value)))
    assert "\n" not in str(info.value)


CNN_INVALID = [
    ("arch_args.channels", []),
    ("arch_args.channels", [8] * 5),
    ("arch_args.channels", [300]),
    ("arch_args.kernel_size", 4),
    ("arch_args.hidden", -1),
    ("arch_args", {"channels": [8], "kernel_size": 3}),
    ("arch_args.channels", [8, 8, 8, 8]),  # 8x8 input cannot take four 2x2 pools
    ("input_shape", [64]),
]


@pytest.mark.parametrize(("path", "value"), CNN_INVALID)
def test_invalid_cnn_fields(path, value):
    with pytest.raises(SpecError):
        TaskSpec.from_json(_encode(_set(_cnn_doc(), path, value)))


SYNTHETIC_INVALID = [
    ("dataset_args.n_features", 21),  # must equal the input size
    ("dataset_args.n_informative", 0),
    ("dataset_args.n_informative", 21),
    ("dataset_args.n_samples", 5),
    ("dataset_args.seed", -1),
    ("dataset_args.seed", 2**32),
    ("dataset_args", {}),
    ("num_classes", 3000),
]


@pytest.mark.parametrize(("path", "value"), SYNTHETIC_INVALID)
def test_invalid_synthetic_fields(path, value):
    with pytest.raises(SpecError):
        TaskSpec.from_json(_encode(_set(_synthetic_doc(), path, value)))


def test_too_many_classes_for_informative_features():
    doc = _set(_set(_synthetic_doc(), "dataset_args.n_informative", 1), "num_classes", 3)
    with pytest.raises(SpecError, match="n_informative"):
        TaskSpec.from_json(_encode(doc))


def test_oversized_model_is_refused():
    doc = _set(_doc(), "arch_args.hidden", [4096] * 8)
    with pytest.raises(SpecError, match="parameters"):
        TaskSpec.from_json(_encode(doc))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not json",
        b"\xff\xfe{}",
        b"[1, 2]",
        b"null",
        b"[" * 50_000 + b"]" * 10_000,
        b'{"version": 1, "version": 1}',
        b'{"version": NaN}',
        b'{"version": Infinity}',
        b"9" * 5000,
    ],
)
def test_garbage_bytes_are_spec_errors(data):
    with pytest.raises(SpecError):
        TaskSpec.from_json(data)


@pytest.mark.parametrize("number", [b"NaN", b"Infinity", b"-Infinity", b"1e400"])
def test_non_finite_number_inside_an_otherwise_valid_spec(number):
    data = _encode(_doc()).replace(b'"lr": 0.05', b'"lr": ' + number)
    assert number in data
    with pytest.raises(SpecError, match="lr|number"):
        TaskSpec.from_json(data)


def test_size_limit():
    doc = _doc()
    doc["name"] = "x"
    data = _encode(doc).replace(b'"name": "x"', b'"name": "x"' + b" " * DEFAULT_LIMITS.spec_bytes)
    with pytest.raises(SpecError, match="limit"):
        TaskSpec.from_json(data)


def test_a_lower_size_limit_is_honoured():
    data = digits_mlp_spec().to_json()
    with pytest.raises(SpecError, match=f"{len(data)} bytes, over the {len(data) - 1}-byte limit"):
        TaskSpec.from_json(data, max_bytes=len(data) - 1)
    assert TaskSpec.from_json(data, max_bytes=len(data)) == digits_mlp_spec()


@pytest.mark.parametrize("field", ["train.lr", "eval_fraction"])
def test_a_float_field_holding_a_huge_integer_is_a_spec_error(field):
    # float(10**400) overflows: it used to escape as an OverflowError
    doc = _set(_doc(), field, 10**400)
    with pytest.raises(SpecError, match="must be a number"):
        TaskSpec.from_json(_encode(doc))


def test_deep_nesting_is_refused_before_parsing():
    # In a process that imported web3 the recursion limit is 100000, so the C parser would
    # overflow the stack on this instead of raising RecursionError.
    data = b"[" * 60_000 + b"]" * 60_000
    with pytest.raises(SpecError, match="nested deeper than 32 levels"):
        TaskSpec.from_json(data, max_bytes=len(data))


def test_non_bytes_input():
    with pytest.raises(SpecError, match="bytes"):
        TaskSpec.from_json(digits_mlp_spec().to_json().decode())  # type: ignore[arg-type]


def test_direct_construction_is_validated_too():
    with pytest.raises(SpecError, match="arch_args"):
        TaskSpec(arch="mlp", input_shape=(64,), num_classes=10, dataset="digits")
    with pytest.raises(ConfigError, match="train.lr"):
        TrainConfig(lr=0.0)
    with pytest.raises(SpecError, match="no seed or device"):
        TaskSpec(
            arch="logreg", input_shape=(64,), num_classes=10, dataset="digits",
            train=TrainConfig(seed=7),
        )  # fmt: skip
    with pytest.raises(SpecError, match="hidden"):
        MlpArgs(hidden=())
    assert TaskSpec(arch="logreg", input_shape=(8, 8), num_classes=10, dataset="digits")
    assert NoArgs() == NoArgs()
