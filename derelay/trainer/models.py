"""Models for a task spec, and their weights as safetensors bytes.

Weights arrive from the network, so `load_weights` trusts nothing: the bytes must parse as
safetensors (nothing is ever unpickled: no torch.load, no pickle), hold exactly the tensors that
`TaskSpec.param_shapes()` names, as float32, all finite, within a size limit.

`save_weights` writes the safetensors layout itself rather than through the library: the library
writes its metadata map in hash order, so equal weights could give different bytes, hence a
different CID. Here the header is canonical JSON, so equal weights give equal bytes everywhere.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping
from itertools import pairwise

import safetensors.torch
import torch
from safetensors import SafetensorError
from torch import Tensor, nn

from derelay.trainer.errors import WeightsError, one_line
from derelay.trainer.limits import DEFAULT_LIMITS
from derelay.trainer.spec import CnnArgs, MlpArgs, TaskSpec

WEIGHTS_FORMAT = "derelay-weights/1"  # the metadata tag save_weights writes


class _Mlp(nn.Module):
    """Dense ReLU layers then a linear classifier; with no hidden layer this is logistic regression."""

    def __init__(self, features: int, hidden: tuple[int, ...], num_classes: int) -> None:
        super().__init__()
        widths = (features, *hidden)
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in pairwise(widths))
        self.out = nn.Linear(widths[-1], num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = x.flatten(1)
        for layer in self.hidden:
            x = torch.relu(layer(x))
        return self.out(x)


class _Cnn(nn.Module):
    """Blocks of conv, ReLU and 2x2 max pool, an optional dense ReLU layer, a linear classifier."""

    def __init__(self, input_shape: tuple[int, ...], args: CnnArgs, num_classes: int) -> None:
        super().__init__()
        self.input_shape = input_shape
        channels, height, width = input_shape
        widths = (channels, *args.channels)
        self.conv = nn.ModuleList(
            nn.Conv2d(a, b, args.kernel_size, padding="same") for a, b in pairwise(widths)
        )
        flat = widths[-1] * (height >> len(args.channels)) * (width >> len(args.channels))
        self.fc = nn.Linear(flat, args.hidden) if args.hidden else None
        self.out = nn.Linear(args.hidden or flat, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = x.reshape(x.shape[0], *self.input_shape)
        for conv in self.conv:
            x = nn.functional.max_pool2d(torch.relu(conv(x)), 2)
        x = x.flatten(1)
        if self.fc is not None:
            x = torch.relu(self.fc(x))
        return self.out(x)


def _reset(model: nn.Module, generator: torch.Generator) -> None:
    """PyTorch's default Linear/Conv init, drawn from `generator` instead of the global RNG."""
    for module in model.modules():
        if isinstance(module, nn.Linear | nn.Conv2d):
            nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5), generator=generator)
            bound = 1 / math.sqrt(module.weight[0].numel())
            nn.init.uniform_(module.bias, -bound, bound, generator=generator)


def init_weights(spec: TaskSpec, seed: int) -> nn.Module:
    """The spec's model on CPU with initial weights drawn from `seed` (global RNG untouched)."""
    with torch.device("meta"):
        if isinstance(spec.arch_args, CnnArgs):
            model: nn.Module = _Cnn(spec.input_shape, spec.arch_args, spec.num_classes)
        else:
            hidden = spec.arch_args.hidden if isinstance(spec.arch_args, MlpArgs) else ()
            model = _Mlp(spec.features, hidden, spec.num_classes)
    model.to_empty(device="cpu")
    _reset(model, torch.Generator().manual_seed(seed))
    return model


def build_model(spec: TaskSpec) -> nn.Module:
    """The spec's model with seed-0 weights; put real weights in with `apply_weights`."""
    return init_weights(spec, 0)


def save_weights(model: nn.Module) -> bytes:
    """The model's parameters as safetensors bytes (CPU, float32); equal weights, equal bytes."""
    tensors = {name: t.detach() for name, t in model.state_dict().items()}
    header: dict[str, object] = {"__metadata__": {"format": "pt", "derelay": WEIGHTS_FORMAT}}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        t = tensors[name]
        if t.dtype != torch.float32:
            raise WeightsError(f"tensor {name} is {t.dtype}; models must be float32 to be saved")
        blob = t.cpu().contiguous().numpy().astype("<f4", copy=False).tobytes()
        header[name] = {
            "dtype": "F32",
            "shape": list(t.shape),
            "data_offsets": [offset, offset + len(blob)],
        }
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("ascii")
    text += b" " * (-len(text) % 8)  # the format pads the header to 8 bytes with spaces
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def load_weights(
    data: bytes, spec: TaskSpec, max_bytes: int = DEFAULT_LIMITS.weights_bytes
) -> dict[str, Tensor]:
    """Parse untrusted weights bytes and check them against the spec; CPU float32 tensors."""
    if len(data) > max_bytes:
        raise WeightsError(
            f"weights file is {len(data)} bytes, over the {max_bytes}-byte limit; "
            "check that the CID names this task's weights"
        )
    try:
        tensors = safetensors.torch.load(bytes(data))
    except (SafetensorError, KeyError, ValueError, TypeError) as exc:  # KeyError: unknown dtype
        raise WeightsError(
            f"not a safetensors file: {one_line(str(exc), 160)}; weights are never unpickled, "
            "save them with safetensors"
        ) from None
    expected = spec.param_shapes()
    missing, unexpected = expected.keys() - tensors.keys(), tensors.keys() - expected.keys()
    if missing or unexpected:
        raise WeightsError(
            f"weights do not match the spec: missing {one_line(str(sorted(missing)), 120)}, "
            f"unexpected {one_line(str(sorted(unexpected)), 120)}; "
            "use weights made for this task's spec"
        )
    for name, shape in expected.items():
        t = tensors[name]
        if t.dtype != torch.float32:
            raise WeightsError(
                f"tensor {name} is {t.dtype}, the spec needs float32; "
                "use weights made for this task's spec"
            )
        if tuple(t.shape) != shape:
            raise WeightsError(
                f"tensor {name} has shape {list(t.shape)}, the spec needs {list(shape)}; "
                "use weights made for this task's spec"
            )
        if not torch.isfinite(t).all():
            raise WeightsError(
                f"tensor {name} holds NaN or infinite values; such weights cannot be trained on"
            )
    # by name: safetensors' own order varies from run to run, and callers that draw noise tensor
    # by tensor (a free-rider's child, the review sweep's lottery) must draw the same every time
    return {name: tensors[name] for name in sorted(tensors)}


def apply_weights(model: nn.Module, tensors: Mapping[str, Tensor]) -> None:
    """Copy checked tensors into the model's parameters, on whatever device the model is."""
    try:
        model.load_state_dict(dict(tensors), strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise WeightsError(
            f"weights do not fit the model: {first}; load them with the same task spec"
        ) from None
