import io
import json
import pickle
import struct

import pytest
import safetensors
import safetensors.torch
import torch

from derelay.trainer.errors import WeightsError
from derelay.trainer.models import (
    WEIGHTS_FORMAT,
    apply_weights,
    build_model,
    init_weights,
    load_weights,
    save_weights,
)
from derelay.trainer.spec import CnnArgs, MlpArgs, TaskSpec, digits_mlp_spec

SPECS = {
    "logreg": TaskSpec(arch="logreg", input_shape=(64,), num_classes=10, dataset="digits"),
    "mlp": digits_mlp_spec(),
    "mlp2": TaskSpec(
        arch="mlp",
        arch_args=MlpArgs(hidden=(32, 16)),
        input_shape=(8, 8),
        num_classes=10,
        dataset="digits",
    ),
    "cnn": TaskSpec(
        arch="cnn", arch_args=CnnArgs(), input_shape=(1, 8, 8), num_classes=10, dataset="digits"
    ),
    "cnn_no_fc": TaskSpec(
        arch="cnn",
        arch_args=CnnArgs(channels=(4,), kernel_size=5, hidden=0),
        input_shape=(1, 8, 8),
        num_classes=10,
        dataset="digits",
    ),
}


@pytest.mark.parametrize("name", SPECS)
def test_model_matches_spec_shapes_and_runs(name):
    spec = SPECS[name]
    model = build_model(spec)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes == spec.param_shapes()
    assert model(torch.rand(3, 64)).shape == (3, 10)


@pytest.mark.parametrize("name", SPECS)
def test_roundtrip(name):
    spec = SPECS[name]
    model = init_weights(spec, 7)
    data = save_weights(model)
    tensors = load_weights(data, spec)
    for key, value in model.state_dict().items():
        assert torch.equal(tensors[key], value)
    other = init_weights(spec, 8)
    apply_weights(other, tensors)
    assert save_weights(other) == data


def test_tensors_load_in_name_order_whatever_the_file_order():
    """Callers that draw noise tensor by tensor (a free-rider's child, the review sweep's lottery)
    must draw the same every run: safetensors' own order is not stable."""
    spec = digits_mlp_spec()
    tensors = load_weights(save_weights(init_weights(spec, 0)), spec)
    reverse = safetensors.torch.save({k: tensors[k] for k in sorted(tensors, reverse=True)})

    loaded = load_weights(reverse, spec)

    assert list(loaded) == sorted(tensors)
    assert all(torch.equal(loaded[k], tensors[k]) for k in tensors)


def test_bytes_are_deterministic_and_seed_dependent():
    spec = SPECS["mlp"]
    assert save_weights(init_weights(spec, 1)) == save_weights(init_weights(spec, 1))
    assert save_weights(init_weights(spec, 1)) != save_weights(init_weights(spec, 2))
    assert save_weights(build_model(spec)) == save_weights(init_weights(spec, 0))


def test_init_leaves_global_rng_alone():
    state = torch.get_rng_state()
    init_weights(SPECS["cnn"], 3)
    assert torch.equal(state, torch.get_rng_state())


def test_saved_file_is_standard_safetensors_with_format_tag(tmp_path):
    spec = SPECS["cnn"]
    model = init_weights(spec, 3)
    data = save_weights(model)
    assert all(
        torch.equal(v, model.state_dict()[k]) for k, v in safetensors.torch.load(data).items()
    )
    path = tmp_path / "w.safetensors"
    path.write_bytes(data)
    with safetensors.safe_open(str(path), framework="pt") as f:
        assert f.metadata() == {"format": "pt", "derelay": WEIGHTS_FORMAT}


def test_byte_layout_is_pinned():
    """The CID of weights must not change with library versions: pin the exact bytes."""
    spec = TaskSpec(arch="logreg", input_shape=(2,), num_classes=2, dataset="npz")
    model = build_model(spec)
    with torch.no_grad():
        model.out.weight.copy_(torch.tensor([[1.0, -2.0], [0.5, 0.0]]))
        model.out.bias.copy_(torch.tensor([0.25, -0.0]))
    header = (
        b'{"__metadata__":{"derelay":"derelay-weights/1","format":"pt"},'
        b'"out.bias":{"data_offsets":[0,8],"dtype":"F32","shape":[2]},'
        b'"out.weight":{"data_offsets":[8,24],"dtype":"F32","shape":[2,2]}}     '
    )
    values = struct.pack("<6f", 0.25, -0.0, 1.0, -2.0, 0.5, 0.0)
    assert save_weights(model) == struct.pack("<Q", len(header)) + header + values


def test_saves_from_non_contiguous_parameters():
    spec = SPECS["logreg"]
    model = build_model(spec)
    with torch.no_grad():
        model.out.weight.data = model.out.weight.data.t().contiguous().t()
    assert not model.out.weight.is_contiguous()
    tensors = load_weights(save_weights(model), spec)
    assert torch.equal(tensors["out.weight"], model.out.weight)


def _tensors(spec: TaskSpec) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in init_weights(spec, 0).state_dict().items()}


def test_wrong_shapes_are_refused():
    data = save_weights(init_weights(SPECS["mlp2"], 0))
    wrong = TaskSpec(
        arch="mlp",
        arch_args=MlpArgs(hidden=(16, 16)),
        input_shape=(64,),
        num_classes=10,
        dataset="digits",
    )
    with pytest.raises(WeightsError, match="shape"):
        load_weights(data, wrong)


@pytest.mark.parametrize("change", ["rename", "drop", "add"])
def test_wrong_names_are_refused(change):
    spec = SPECS["mlp"]
    tensors = _tensors(spec)
    if change == "rename":
        tensors["fc.weight"] = tensors.pop("out.weight")
    elif change == "drop":
        del tensors["out.bias"]
    else:
        tensors["extra"] = torch.zeros(1)
    with pytest.raises(WeightsError, match="do not match the spec"):
        load_weights(safetensors.torch.save(tensors), spec)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16, torch.int32])
def test_wrong_dtype_is_refused(dtype):
    spec = SPECS["mlp"]
    tensors = {k: v.to(dtype) for k, v in _tensors(spec).items()}
    with pytest.raises(WeightsError, match="float32"):
        load_weights(safetensors.torch.save(tensors), spec)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_values_are_refused(bad):
    spec = SPECS["mlp"]
    tensors = _tensors(spec)
    tensors["hidden.0.weight"][3, 5] = bad
    with pytest.raises(WeightsError, match="NaN or infinite"):
        load_weights(safetensors.torch.save(tensors), spec)


UNPICKLED = []


def _payload() -> dict:
    UNPICKLED.append(True)
    return {}


class _Trap:
    def __reduce__(self):
        return (_payload, ())


def test_a_pickle_is_refused_without_being_unpickled():
    spec = SPECS["mlp"]
    data = pickle.dumps({**_tensors(spec), "trap": _Trap()})
    pickle.loads(data)  # the trap works...
    assert UNPICKLED == [True]
    UNPICKLED.clear()
    with pytest.raises(WeightsError, match="not a safetensors file.*never unpickled"):
        load_weights(data, spec)
    assert UNPICKLED == []  # ...and load_weights never sprang it


def test_torch_save_output_is_refused():
    spec = SPECS["mlp"]
    buffer = io.BytesIO()
    torch.save({**_tensors(spec), "trap": _Trap()}, buffer)
    with pytest.raises(WeightsError, match="not a safetensors file"):
        load_weights(buffer.getvalue(), spec)
    assert UNPICKLED == []


@pytest.mark.parametrize(
    "mangle",
    [
        lambda b: b[: len(b) // 2],
        lambda b: b[:-1],
        lambda b: b[:7],
        lambda b: b"",
        lambda b: bytes(range(256)) * 4,
        lambda b: b + b"\0" * 4,
        lambda b: struct.pack("<Q", 10**12) + b[8:],
        lambda b: b[:8] + b"[" + b[9:],
    ],
    ids=["half", "minus-one", "seven", "empty", "random", "trailing", "huge-header", "bad-json"],
)
def test_truncated_or_garbage_files_are_refused(mangle):
    spec = SPECS["mlp"]
    with pytest.raises(WeightsError, match="not a safetensors file"):
        load_weights(mangle(save_weights(init_weights(spec, 0))), spec)


def test_unknown_dtype_in_header_is_refused():
    header = json.dumps({"a": {"dtype": "F8_E8M0", "shape": [1], "data_offsets": [0, 1]}})
    data = struct.pack("<Q", len(header)) + header.encode() + b"\0"
    with pytest.raises(WeightsError):
        load_weights(data, SPECS["mlp"])


def test_size_limit():
    spec = SPECS["mlp"]
    data = save_weights(init_weights(spec, 0))
    with pytest.raises(WeightsError, match="limit"):
        load_weights(data, spec, max_bytes=len(data) - 1)
    assert load_weights(data, spec, max_bytes=len(data))


def test_apply_weights_refuses_a_mismatch():
    with pytest.raises(WeightsError, match="do not fit"):
        apply_weights(build_model(SPECS["mlp"]), _tensors(SPECS["mlp2"]))


def test_save_refuses_non_float32():
    model = build_model(SPECS["logreg"]).double()
    with pytest.raises(WeightsError, match="float32"):
        save_weights(model)
