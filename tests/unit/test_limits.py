"""Size limits on untrusted input: set from the command line or the environment, refused clearly
when malformed, and honoured by whatever reads specs, weights, store content and RPC replies."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from derelay.deploy.tasks import load_spec, read_spec_file
from derelay.trainer.data import Dataset
from derelay.trainer.errors import ConfigError, SpecError, StoreError
from derelay.trainer.limits import DEFAULT_LIMITS, MAX_JSON_DEPTH, Limits, loads_json, parse_size
from derelay.trainer.models import init_weights, save_weights
from derelay.trainer.spec import digits_mlp_spec
from derelay.trainer.steps import score_weights
from derelay.trainer.store import LocalStore
from derelay.trainer.worker import WorkerConfig
from tests.support.fuzz import GarbageNode, cli_env, run_cli


@pytest.mark.parametrize(
    ("text", "size"),
    [("1", 1), ("65536", 65536), ("64KiB", 65536), (" 16 mib ", 16 << 20), ("1GiB", 1 << 30)],
)
def test_sizes_are_bytes_or_binary_units(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "0", "-1", "1.5", "lots", "64KB", "1e9", "9" * 16, "1 TiB"])
def test_a_malformed_size_is_a_config_error(text):
    with pytest.raises(ConfigError, match="is not a size"):
        parse_size(text)


@pytest.mark.parametrize("value", [0, -1, True, 1.5, "1"])
def test_limits_must_be_positive_integers(value):
    with pytest.raises(ConfigError, match="weights_bytes must be a positive number of bytes"):
        Limits(weights_bytes=value)


def test_the_defaults_are_the_limits_everything_uses():
    assert WorkerConfig(task_id=1).weights_bytes == DEFAULT_LIMITS.weights_bytes
    assert LocalStore.max_bytes == DEFAULT_LIMITS.content_bytes


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    path = tmp_path / "spec.json"
    path.write_bytes(digits_mlp_spec().to_json())
    return path


@pytest.fixture
def node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[GarbageNode]:
    """A node on 127.0.0.1 that answers like a plain one; commands run in an empty folder."""
    monkeypatch.chdir(tmp_path)
    node = GarbageNode()
    yield node
    node.close()


@pytest.mark.parametrize("how", ["option", "environment"])
def test_the_spec_limit_set_on_the_command_line_is_honoured(spec_file, node, how):
    # prepare: a limit one byte under the spec's size
    limit = str(len(spec_file.read_bytes()) - 1)
    args = ["task", "create", "--spec-file", str(spec_file)]
    env = cli_env(node.url)
    if how == "option":
        args = ["--max-spec-bytes", limit, *args]
    else:
        env["DERELAY_MAX_SPEC_BYTES"] = limit

    # act
    status, stderr = run_cli(args, env)

    # check: refused before anything reached the chain
    assert status == 1
    assert stderr.strip().endswith(
        f"over the {limit}-byte limit; check that the spec CID names a spec"
    )


def test_the_rpc_reply_limit_set_on_the_command_line_is_honoured(node):
    status, stderr = run_cli(["--max-rpc-reply-bytes", "10", "status"], cli_env(node.url))
    assert status == 1
    assert stderr == (
        "error: the RPC endpoint answered eth_chainId with more than 10 bytes, the limit: "
        "raise the rpc_reply_bytes limit only for a node you trust (option --max-rpc-reply-bytes)\n"
    )


def test_a_malformed_limit_in_the_environment_is_one_line(node):
    env = cli_env(node.url) | {"DERELAY_MAX_WEIGHTS_BYTES": "lots"}
    status, stderr = run_cli(["status"], env)
    assert status == 2
    assert stderr.startswith("error: Invalid value for '--max-weights-bytes' (env var: ")
    assert "'lots' is not a size" in stderr and len(stderr.splitlines()) == 1


def test_a_spec_over_the_limit_is_not_fetched_whole(tmp_path):
    # prepare
    store = LocalStore(tmp_path)
    data = digits_mlp_spec().to_json()
    cid = store.add(data)

    # act, check: the store refuses it at the spec limit, not the content limit
    with pytest.raises(StoreError, match=f"more than the limit of {len(data) - 1}"):
        load_spec(store, cid.to_bytes(), Limits(spec_bytes=len(data) - 1))
    assert load_spec(store, cid.to_bytes(), Limits(spec_bytes=len(data))) == digits_mlp_spec()


def test_an_endless_spec_file_is_not_read_to_its_end():
    # /dev/zero never ends: reading it whole used to hang and exhaust memory
    with pytest.raises(SpecError, match="over the 100-byte limit"):
        read_spec_file(Path("/dev/zero"), max_bytes=100)


def test_weights_over_the_workers_limit_score_zero():
    # prepare
    spec = digits_mlp_spec()
    weights = save_weights(init_weights(spec, 0))
    rng = np.random.default_rng(0)
    holdout = Dataset(rng.random((20, 64), dtype=np.float32), rng.integers(0, 10, 20))

    # act
    under = score_weights(spec, weights, holdout, max_weights_bytes=len(weights))
    over = score_weights(spec, weights, holdout, max_weights_bytes=len(weights) - 1)

    # check
    assert under > 0 and over == 0


@pytest.mark.parametrize(
    "text",
    [
        b'{"a": "]]]]{{{{", "b": ["\\"[[[", "\\\\"]}',
        b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH,
        b"[" + b"[1]," * 1000 + b"[]]",
    ],
)
def test_json_within_the_depth_limit_parses(text):
    assert loads_json(text) == json.loads(text)


@pytest.mark.parametrize(
    "text",
    [
        b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1),
        b"[" * 1_000_000,
        b'{"a": ' * 50_000 + b"1" + b"}" * 50_000,
        b"[" + b'"]",[' * 40 + b"]" * 41,
    ],
)
def test_json_nested_too_deep_is_refused_before_parsing(text):
    # CPython parses JSON recursively in C; with web3's recursion limit of 100000 the deepest
    # of these used to overflow the stack and kill the process
    with pytest.raises(ValueError, match="nested deeper than 32 levels"):
        loads_json(text)
