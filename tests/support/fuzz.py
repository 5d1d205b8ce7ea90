"""Fuzz campaign: bad input of every kind DeRelayL reads from others, counted by outcome.

    python -m tests.support.fuzz [--cases N] [--seed S] [--only spec,rpc]

Each target draws N random cases and runs them through the code that reads such input:

- spec: task spec JSON (valid specs with keys deleted or added, wrong types, huge numbers, deep
  nesting, byte flips, non-UTF-8, oversize) into `TaskSpec.from_json`;
- weights: safetensors files (header fields mutated, wrong dtype or shape, NaN, truncated,
  oversize) into `load_weights`;
- cid: CID text (valid CIDs mutated, other bases, random binary) into `Cid.parse`;
- store: a LocalStore whose packs, or an older store's blocks, were flipped, cut, deleted or
  replaced by crafted DAG nodes;
- journal: a worker's journal file mutated on disk, then reopened and written;
- cli: random argument lists into the `derelay` entry point;
- rpc: a JSON-RPC node that answers garbage (not JSON, wrong id, results of the wrong type, error
  objects, huge bodies, HTTP errors, hang-ups, slow replies) to chain reads, a transaction and a
  worker's tick, whose journal must come out unchanged.

A case ends accepted (the input was valid), rejected (the target's own DeRelayError, with a
message of one clear line) or crashed (any other exception, or an unclear message). Sizes are
checked against limits drawn lower than the defaults too. The exit status is 1 if anything
crashed. tests/unit/test_fuzz_inputs.py and tests/integration/test_rpc_garbage.py draw their
cases from the same generators, through Hypothesis.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import copy
import functools
import json
import logging
import math
import os
import random
import shutil
import struct
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Collection, Iterator
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal

import click
import numpy as np
import requests
import torch
from click.testing import CliRunner
from eth_abi import encode as abi_encode
from eth_abi.grammar import parse
from eth_account import Account
from eth_utils import collapse_if_tuple, function_abi_to_4byte_selector, keccak
from web3 import Web3

from bench.common import table
from derelay.cli.main import cli, main
from derelay.trainer.chain import BoundedHTTPProvider, ChainClient, TxOptions, connect
from derelay.trainer.cid import (
    CHUNK_SIZE,
    DAG_PB,
    RAW,
    Cid,
    Link,
    encode_file_node,
    unixfs_dag,
)
from derelay.trainer.contract import DeRelayContract, decoder_for, load_abi
from derelay.trainer.data import Dataset
from derelay.trainer.errors import (
    ChainError,
    CidError,
    DeRelayError,
    JournalError,
    SpecError,
    StoreError,
    WeightsError,
)
from derelay.trainer.journal import JOURNAL_VERSION, BallotEntry, Journal, TurnEntry
from derelay.trainer.limits import DEFAULT_LIMITS
from derelay.trainer.models import init_weights, load_weights, save_weights
from derelay.trainer.spec import CnnArgs, MlpArgs, SyntheticArgs, TaskSpec, digits_mlp_spec
from derelay.trainer.store import LocalStore
from derelay.trainer.worker import Roles, Worker, WorkerConfig

Verdict = Literal["accepted", "rejected"]
MAX_MESSAGE = 500  # characters: a longer error message is not a clear one


class Unclear(AssertionError):
    """A domain error whose message is not one clear line."""


def rejected(exc: DeRelayError) -> Verdict:
    """The verdict for a domain error, once its message is checked to be one clear line."""
    message = str(exc)
    if not message.strip() or "\n" in message or "\r" in message or len(message) > MAX_MESSAGE:
        raise Unclear(f"{type(exc).__name__} is not one clear line: {message[:300]!r}")
    return "rejected"


def _limit(rng: random.Random, default: int, size: int) -> int:
    """The limit a case runs under: mostly the default, sometimes just under or over `size`."""
    return rng.choice([default, default, max(1, size - rng.randrange(1, 64)), size + 1])


# ---------------------------------------------------------------------- mutations


def random_json(rng: random.Random, depth: int = 0) -> Any:
    """A random JSON value of a random type, with extreme numbers and strings among them."""
    kind = rng.randrange(12 if depth < 3 else 9)
    if kind == 0:
        return None
    if kind == 1:
        return rng.random() < 0.5
    if kind == 2:
        return rng.choice([0, 1, -1, 7, 255, 2**31, 2**63, 2**256, -(2**255)])
    if kind == 3:
        return rng.choice([10 ** rng.randrange(18, 400), -(10 ** rng.randrange(1, 50))])
    if kind == 4:
        return rng.choice([0.5, -0.0, 1e-308, 1e308, -1e308, 3.14159, 1e-5, 2.0**70])
    if kind == 5:
        return rng.choice(["", "x", "mlp", "digits", "sgd", "0x", "0x1", "bafk", "NaN", "1e999"])
    if kind == 6:
        return "".join(chr(rng.randrange(0x20, 0x2FFF)) for _ in range(rng.randrange(1, 40)))
    if kind == 7:
        return rng.choice(
            ["\x00", "\n", "\u202e", "\ud800", "é" * 300, "a" * rng.randrange(1, 5000)]
        )
    if kind == 8:
        return rng.randrange(-(2**64), 2**64)
    if kind == 9:
        return [random_json(rng, depth + 1) for _ in range(rng.randrange(0, 5))]
    if kind == 10:
        return {random_key(rng): random_json(rng, depth + 1) for _ in range(rng.randrange(0, 5))}
    nested: Any = random_json(rng, 3)
    for _ in range(rng.randrange(1, 60)):
        nested = [nested] if rng.random() < 0.5 else {"a": nested}
    return nested


def random_key(rng: random.Random) -> str:
    return rng.choice(["", "name", "x", "__metadata__", "version", "hidden", "id", "result"]) + (
        str(rng.randrange(100)) if rng.random() < 0.5 else ""
    )


def _slots(value: Any) -> Iterator[tuple[Any, Any]]:
    """Every (container, key) pair below `value`, depth first."""
    if isinstance(value, dict):
        items: Any = list(value.items())
    elif isinstance(value, list):
        items = list(enumerate(value))
    else:
        return
    for key, child in items:
        yield value, key
        yield from _slots(child)


def mutate_json(doc: Any, rng: random.Random) -> Any:
    """`doc` with one random change: a value deleted, replaced, retyped or pushed to an extreme,
    or a key added; the root itself is sometimes replaced."""
    doc = copy.deepcopy(doc)
    slots = list(_slots(doc))
    if not slots or rng.random() < 0.03:
        return random_json(rng)
    container, key = rng.choice(slots)
    action = rng.randrange(5)
    if action == 0:
        del container[key]
    elif action == 1:
        container[key] = random_json(rng)
    elif action == 2 and isinstance(container, dict):
        container[random_key(rng)] = random_json(rng)
    elif action == 2:
        container.insert(key, random_json(rng))
    elif action == 3:
        value = container[key]
        container[key] = (
            str(value) if not isinstance(value, str) else [value] if rng.random() < 0.5 else None
        )
    else:
        extremes = [0, -1, 2**64, 10**1000, 1e308, 0.1, True, "", "a" * 5000, [], {}]
        container[key] = rng.choice(extremes)
    return doc


# Splice-ins for byte mutation: bad numbers, bad bytes, deep nesting, stray syntax, a BOM.
# fmt: off
TOKENS = (
    b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-0", b"9" * 5000, b"\xff", b"\xc0\x80",
    b"\x00", b'"\\ud800"', b"null", b"[" * 5000, b"{" * 3000, b'"', b",", b"}", b"]",
    b"\xef\xbb\xbf", b'"a":1,"a":2,',
)
# fmt: on


def mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    """`data` with one random byte-level change: a bit flip, an overwrite, an insertion, a cut, a
    truncation, a duplicated span or a spliced-in token (NaN, a huge number, a bad byte...)."""
    out = bytearray(data)
    pos = rng.randrange(len(out) + 1)
    action = rng.randrange(7)
    if action == 0 and out:
        out[pos % len(out)] ^= 1 << rng.randrange(8)
    elif action == 1 and out:
        out[pos % len(out)] = rng.randrange(256)
    elif action == 2:
        out[pos:pos] = rng.randbytes(rng.randrange(1, 9))
    elif action == 3:
        del out[pos : pos + rng.randrange(1, 64)]
    elif action == 4:
        del out[pos:]
    elif action == 5:
        out[pos:pos] = out[pos : pos + rng.randrange(1, 64)]
    else:
        out[pos:pos] = rng.choice(TOKENS)
    return bytes(out)


def _dumps(doc: Any, rng: random.Random) -> bytes:
    """`doc` as JSON bytes in one of several layouts."""
    layout = rng.randrange(3)
    text = json.dumps(
        doc,
        indent=2 if layout == 1 else None,
        separators=(",", ":") if layout == 0 else None,
        ensure_ascii=layout != 2,
    )
    return text.encode("utf-8", "surrogatepass")


# ---------------------------------------------------------------------- spec


def seed_specs() -> list[TaskSpec]:
    """Valid specs of every architecture and dataset kind, the starting points of mutation."""
    return [
        digits_mlp_spec(),
        TaskSpec(arch="logreg", input_shape=(64,), num_classes=10, dataset="digits"),
        TaskSpec(
            arch="cnn",
            arch_args=CnnArgs(channels=(4,), kernel_size=3, hidden=0),
            input_shape=(1, 8, 8),
            num_classes=10,
            dataset="digits",
        ),
        TaskSpec(
            arch="mlp",
            arch_args=MlpArgs(hidden=(8, 4)),
            input_shape=(4, 5),
            num_classes=3,
            dataset="synthetic",
            dataset_args=SyntheticArgs(n_samples=100, n_features=20, n_informative=4),
            name="synthetic",
        ),
    ]


def spec_input(rng: random.Random) -> bytes:
    """Task spec bytes: a valid spec, mutated as JSON and then as bytes, sometimes oversize."""
    doc = json.loads(rng.choice(seed_specs()).to_json())
    for _ in range(rng.choice([0, 1, 1, 2, 3])):
        doc = mutate_json(doc, rng)
    try:
        data = _dumps(doc, rng)
    except (ValueError, RecursionError):  # NaN-free by construction; too deep to write
        data = b"[" * 10_000
    for _ in range(rng.choice([0, 0, 1, 2])):
        data = mutate_bytes(data, rng)
    if rng.random() < 0.02:
        data += b" " * DEFAULT_LIMITS.spec_bytes
    return data


def fuzz_spec(rng: random.Random) -> Verdict:
    """Parse one spec case; a parsed spec must be within the limit and round-trip."""
    data = spec_input(rng)
    max_bytes = _limit(rng, DEFAULT_LIMITS.spec_bytes, len(data))
    try:
        spec = TaskSpec.from_json(data, max_bytes)
    except SpecError as exc:
        return rejected(exc)
    assert len(data) <= max_bytes, f"a {len(data)}-byte spec passed a {max_bytes}-byte limit"
    assert TaskSpec.from_json(spec.to_json()) == spec and spec.param_shapes()
    return "accepted"


# ---------------------------------------------------------------------- weights

WEIGHT_DTYPES = ("F32", "F16", "BF16", "F64", "I64", "I32", "I8", "U8", "BOOL", "F8_E4M3", "X")


@functools.cache
def _seed_weights(index: int) -> bytes:
    return save_weights(init_weights(seed_specs()[index], index))


def _split(data: bytes) -> tuple[dict[str, Any], bytes]:
    (length,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + length]), data[8 + length :]


def _join(header: Any, body: bytes, rng: random.Random) -> bytes:
    text = json.dumps(header).encode() + b" " * rng.randrange(8)
    return struct.pack("<Q", len(text)) + text + body


def _mutate_header(header: dict[str, Any], rng: random.Random) -> Any:
    name = rng.choice(sorted(header))
    entry = header[name]
    action = rng.randrange(7) if isinstance(entry, dict) else 6
    if action == 0 and name != "__metadata__":
        entry["dtype"] = rng.choice(WEIGHT_DTYPES)
    elif action == 1 and name != "__metadata__":
        shape = list(entry.get("shape") or [])
        entry["shape"] = rng.choice([[], shape[::-1], [*shape, 1], [-1], [2**40, 2**40], [0]])
    elif action == 2 and name != "__metadata__":
        entry["data_offsets"] = rng.choice([[8, 4], [0, 2**63], [-4, 8], [4, 4], [0], [0, 10**9]])
    elif action == 3:
        del header[name]
    elif action == 4:
        header[name + rng.choice(["2", ".x", "y" * 5000])] = copy.deepcopy(entry)
    elif action == 5:
        header["__metadata__"] = random_json(rng)
    else:
        return mutate_json(header, rng)
    return header


def weights_input(rng: random.Random) -> tuple[TaskSpec, bytes]:
    """A spec and weights bytes for it: valid, or with the header, length, values or bytes
    spoiled, or weights of another spec, or not safetensors at all."""
    index = rng.randrange(len(seed_specs()))
    spec = seed_specs()[index]
    data = _seed_weights(index)
    kind = rng.randrange(8)
    if kind == 1:
        header, body = _split(data)
        for _ in range(rng.randrange(1, 3)):
            header = _mutate_header(header, rng) if isinstance(header, dict) else header
        data = _join(header, body, rng)
    elif kind == 2:
        length = rng.choice([0, 1, 7, len(data), 2**63, 2**64 - 1, rng.getrandbits(64)])
        data = struct.pack("<Q", length) + data[8:]
    elif kind == 3:
        header, body = _split(data)
        values = bytearray(body)
        at = 4 * rng.randrange(len(values) // 4)
        values[at : at + 4] = struct.pack("<f", rng.choice([math.nan, math.inf, -math.inf]))
        data = _join(header, bytes(values), rng)
    elif kind == 4:
        for _ in range(rng.randrange(1, 4)):
            data = mutate_bytes(data, rng)
    elif kind == 5:
        data = _seed_weights(rng.randrange(len(seed_specs())))
    elif kind == 6:
        data = rng.choice([b"", b"\x80\x04K\x01.", rng.randbytes(rng.randrange(1, 200))])
    elif kind == 7:
        data += rng.randbytes(rng.randrange(1, 4096))  # trailing junk
    return spec, data


def fuzz_weights(rng: random.Random) -> Verdict:
    """Load one weights case; loaded tensors must be finite float32 in the spec's shapes."""
    spec, data = weights_input(rng)
    max_bytes = _limit(rng, DEFAULT_LIMITS.weights_bytes, len(data))
    try:
        tensors = load_weights(data, spec, max_bytes)
    except WeightsError as exc:
        return rejected(exc)
    assert len(data) <= max_bytes, f"a {len(data)}-byte file passed a {max_bytes}-byte limit"
    shapes = {name: tuple(t.shape) for name, t in tensors.items()}
    assert shapes == spec.param_shapes(), shapes
    assert all(t.dtype == torch.float32 and t.isfinite().all() for t in tensors.values())
    return "accepted"


# ---------------------------------------------------------------------- cid

_BASE32 = "abcdefghijklmnopqrstuvwxyz234567"


def _b32(raw: bytes) -> str:
    return "b" + base64.b32encode(raw).decode().rstrip("=").lower()


def cid_input(rng: random.Random) -> str:
    """CID text: valid, mutated character by character, in another base, of random binary
    (version, codec and hash fields included), or random text of any length."""
    cid = Cid.of(rng.choice([RAW, DAG_PB]), rng.randbytes(16))
    text = str(cid)
    kind = rng.randrange(9)
    if kind == 1:
        chars = list(text)
        for _ in range(rng.randrange(1, 4)):
            chars[rng.randrange(len(chars))] = rng.choice(_BASE32 + "018AZ=/ é\x00")
        text = "".join(chars)
    elif kind == 2:
        at = rng.randrange(len(text))
        text = (
            text[:at] + rng.choice(["", rng.choice(_BASE32) * rng.randrange(1, 9)]) + text[at + 1 :]
        )
    elif kind == 3:
        text = rng.choice("BzfFmukcQ") + text[1:]
    elif kind == 4:
        text = text.upper() if rng.random() < 0.5 else text + "=" * rng.randrange(1, 5)
    elif kind == 5:
        text = _b32(rng.randbytes(rng.randrange(0, 64)))
    elif kind == 6:
        raw = bytearray(cid.to_bytes())
        raw[rng.randrange(4)] = rng.choice([0, 0x01, 0x12, 0x13, 0x20, 0x55, 0x70, 0x80, 0xFF])
        text = _b32(bytes(raw) + rng.choice([b"", b"\x00", rng.randbytes(3)]))
    elif kind == 7:
        text = "".join(chr(rng.randrange(1, 0x3000)) for _ in range(rng.randrange(0, 300)))
    elif kind == 8:
        text = "Qm" + "".join(rng.choice("123456789ABCDEFGHJKLMNPQRSTUVWXYZabc") for _ in range(44))
    return text


def fuzz_cid(rng: random.Random) -> Verdict:
    """Parse one CID case; a parsed CID must print as the very text it came from."""
    text = cid_input(rng)
    try:
        cid = Cid.parse(text)
    except CidError as exc:
        return rejected(exc)
    assert str(cid) == text and Cid.from_bytes(cid.to_bytes()) == cid
    return "accepted"


# ---------------------------------------------------------------------- store


def _crafted_node(rng: random.Random, blocks: dict[Cid, bytes]) -> bytes:
    """A dag-pb node over some of `blocks`, with sizes, links or bytes that may lie."""
    leaves = [cid for cid in blocks if cid.codec == RAW] or [Cid.of(RAW, b"")]
    links = [Link(rng.choice(leaves), rng.randrange(300_000)) for _ in range(rng.randrange(0, 4))]
    sizes = [len(blocks.get(link.cid, b"")) for link in links]
    action = rng.randrange(4)
    if action == 0 and sizes:
        sizes[rng.randrange(len(sizes))] += rng.choice([1, 2**40])
    elif action == 1:
        links.append(Link(Cid.of(rng.choice([RAW, DAG_PB]), rng.randbytes(8)), 1))
        sizes.append(rng.randrange(2))
    elif action == 2:
        sizes.append(rng.randrange(10))
    node = encode_file_node(links, sizes)
    return mutate_bytes(node, rng) if rng.random() < 0.5 else node


def _spoil_file(path: Path, action: int, rng: random.Random) -> None:
    """Action 1 alters the file's bytes, 2 deletes it, 3 puts a folder in its place; others
    leave it be."""
    if action == 1:
        path.write_bytes(mutate_bytes(path.read_bytes(), rng))
    elif action in (2, 3):
        path.unlink()
        if action == 3:
            path.mkdir()


def spoil_store(store: LocalStore, root: Cid, data: bytes, rng: random.Random) -> Cid:
    """Alter the pack of `root` on disk (a file under `store.root / "packs"`), or put `data` in its
    place as an older store kept it (a file a block under `store.root / "blocks"`) and alter those
    blocks or write a crafted DAG beside them; return the CID to get."""
    pack = store.root / "packs" / str(root)
    action = rng.randrange(10)
    _spoil_file(pack, action, rng)
    if action == 4:
        root = Cid.of(RAW, rng.randbytes(4))
    elif action >= 5:
        pack.unlink()
        root = _spoil_blocks(store.root / "blocks", root, unixfs_dag(data)[1], rng)
    return root


def _spoil_blocks(folder: Path, root: Cid, blocks: dict[Cid, bytes], rng: random.Random) -> Cid:
    """Write `blocks` to `folder` as an older store did, then alter them or write a crafted DAG
    beside them; return the CID to get."""
    folder.mkdir()
    for cid, block in blocks.items():
        (folder / str(cid)).write_bytes(block)
    action = rng.randrange(6)
    _spoil_file(folder / str(rng.choice(sorted(blocks, key=str))), action, rng)
    if action == 4:
        node = (
            _crafted_node(rng, blocks) if rng.random() < 0.5 else rng.randbytes(rng.randrange(80))
        )
        root = Cid.of(DAG_PB, node)
        (folder / str(root)).write_bytes(node)
    elif action == 5:  # a chain of nodes deeper than any real file
        child, size = Cid.of(RAW, b"x"), 1
        (folder / str(child)).write_bytes(b"x")
        for _ in range(rng.randrange(10, 24)):
            node = encode_file_node([Link(child, size)], [1])
            child, size = Cid.of(DAG_PB, node), size + len(node)
            (folder / str(child)).write_bytes(node)
        root = child
    return root


def fuzz_store(rng: random.Random, scratch: Path) -> Verdict:
    """Get one spoiled file back from a LocalStore; what comes back must be what was added."""
    with tempfile.TemporaryDirectory(dir=scratch) as folder:
        store = LocalStore(folder)
        size = rng.choice(
            [0, 1, rng.randrange(2, 4096), CHUNK_SIZE, CHUNK_SIZE + 1, 2 * CHUNK_SIZE + 7]
        )
        data = random.Random(rng.getrandbits(64)).randbytes(size)  # bulk bytes, drawn fast
        added = store.add(data)
        cid = spoil_store(store, added, data, rng)
        max_bytes = _limit(rng, DEFAULT_LIMITS.content_bytes, size)
        assert isinstance(store.has(cid), bool)
        try:
            got = store.get(cid, max_bytes=max_bytes)
        except StoreError as exc:
            return rejected(exc)
        assert len(got) <= max_bytes, f"{len(got)} bytes passed a {max_bytes}-byte limit"
        assert cid != added or got == data, "the store returned other bytes than were added"
        return "accepted"


# ---------------------------------------------------------------------- journal


@functools.cache
def _seed_journal() -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        journal = Journal(Path(folder) / "journal.json")
        journal.record_turn(1, TurnEntry(3, "bparent", "bchild", "bcard", 10, "00" * 32, "trained"))
        journal.record_ballot(
            1,
            BallotEntry(2, "bchild", 8000, "bchampion", 7900, "bparent", 7800, "ab" * 32, "scored"),
        )
        return journal.path.read_bytes()


def valid_journal(rng: random.Random) -> bytes:
    """A journal that must open: a few turns and ballots of random rounds, phases, scores and
    salts. Mutations of a whole journal almost always break one of its many checked fields."""
    turns, ballots = {}, {}
    for _ in range(rng.randrange(4)):
        r = rng.randrange(2**32)
        phase = rng.choice(["trained", "submitting", "submitted", "abandoned"])
        samples = rng.randrange(1, 10**6)
        entry = TurnEntry(r, "bparent", "bchild", "bcard", samples, rng.randbytes(32).hex(), phase)
        turns[f"{rng.randrange(1, 9)}:{r}"] = asdict(entry)
    for _ in range(rng.randrange(4)):
        r = rng.randrange(2**32)
        child, champion, parent = (rng.randrange(10_001) for _ in range(3))
        phase = rng.choice(["scored", "committed", "revealed"])
        salt = rng.randbytes(32).hex()
        ballot = BallotEntry(
            r, "bchild", child, "bchampion", champion, "bparent", parent, salt, phase
        )
        ballots[f"{rng.randrange(1, 9)}:{r}"] = asdict(ballot)
    document = {"version": JOURNAL_VERSION, "turns": turns, "ballots": ballots}
    return json.dumps(document).encode()


def journal_input(rng: random.Random) -> bytes:
    """A valid journal's JSON, or one mutated as JSON or as bytes."""
    if rng.random() < 0.2:
        return valid_journal(rng)
    data = _seed_journal()
    if rng.random() < 0.7:
        doc = json.loads(data)
        for _ in range(rng.randrange(1, 3)):
            doc = mutate_json(doc, rng)
        try:
            data = _dumps(doc, rng)
        except (ValueError, RecursionError):
            data = b"[" * 10_000
    else:
        data = mutate_bytes(data, rng)
    return data


def fuzz_journal(rng: random.Random, scratch: Path) -> Verdict:
    """Open a mutated journal; if it opens, reading, writing and reopening it must work."""
    path = scratch / "journal.json"
    path.write_bytes(journal_input(rng))
    try:
        journal = Journal(path)
    except JournalError as exc:
        return rejected(exc)
    for round_ in (1, 2, 3):
        journal.turn(1, round_)
        journal.ballot(1, round_)
    journal.record_turn(1, TurnEntry(4, "bparent", "bchild", "bcard", 1, "00" * 32, "trained"))
    assert Journal(path).turn(1, 4) is not None
    return "accepted"


# ---------------------------------------------------------------------- a JSON-RPC node


@dataclass(frozen=True)
class Reply:
    """What the node sends back for one request."""

    body: bytes
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering
    trickle: float = 0.0  # seconds between bytes of the body
    hang_up: bool = False  # close the connection without a word


Spoiler = Callable[[dict[str, Any], dict[str, Any]], Reply]  # (request, honest reply) -> reply

ADDRESS = "0x" + "5a" * 20
_HASH = "0x" + "11" * 32


def _zero(abi_type: str) -> Any:
    """The zero value of an ABI type: 0, False, the zero address, empty bytes, arrays, tuples."""
    if abi_type.endswith("]"):
        inner, _, count = abi_type[:-1].rpartition("[")
        return [_zero(inner)] * int(count or 0)
    if abi_type.startswith("("):
        return tuple(_zero(item.to_type_str()) for item in parse(abi_type).components)
    if abi_type == "address":
        return "0x" + "00" * 20
    if abi_type == "bool":
        return False
    if abi_type.startswith("bytes"):
        return bytes(int(abi_type[5:] or 0))
    return "" if abi_type == "string" else 0


@functools.cache
def _zero_views() -> dict[str, str]:
    """The eth_call result of every DeRelay function, by selector: its outputs all zero."""
    results = {}
    for item in load_abi():
        if item.get("type") == "function":
            types = [collapse_if_tuple(output) for output in item["outputs"]]
            selector = "0x" + function_abi_to_4byte_selector(item).hex()
            results[selector] = "0x" + abi_encode(types, [_zero(t) for t in types]).hex()
    return results


def canned_result(method: str, params: list[Any]) -> Any:
    """What a plain node would answer to `method`: a chain with id 1337, a contract at every
    address whose views all return zeros, and transactions that land at once."""
    block = {
        "number": "0x10",
        "hash": _HASH,
        "parentHash": _HASH,
        "timestamp": "0x65000000",
        "baseFeePerGas": "0x7",
        "gasLimit": "0x1c9c380",
        "gasUsed": "0x0",
        "miner": "0x" + "00" * 20,
        "transactions": [],
        "uncles": [],
    }
    receipt = {
        "transactionHash": params[0] if params else _HASH,
        "transactionIndex": "0x0",
        "blockHash": _HASH,
        "blockNumber": "0x11",
        "from": ADDRESS,
        "to": ADDRESS,
        "cumulativeGasUsed": "0x5208",
        "gasUsed": "0x5208",
        "effectiveGasPrice": "0x7",
        "contractAddress": None,
        "logs": [],
        "logsBloom": "0x" + "00" * 256,
        "status": "0x1",
        "type": "0x2",
    }
    results: dict[str, Any] = {
        "eth_chainId": "0x539",
        "eth_blockNumber": "0x10",
        "eth_getCode": "0x6080604052",
        "eth_getBlockByNumber": block,
        "eth_getBalance": "0xde0b6b3a7640000",
        "eth_getTransactionCount": "0x0",
        "eth_gasPrice": "0x3b9aca00",
        "eth_estimateGas": "0x30000",
        "eth_getTransactionReceipt": receipt,
        "eth_getLogs": [],
    }
    if method == "eth_sendRawTransaction":
        return "0x" + keccak(hexstr=params[0]).hex()
    if method == "eth_call":
        return _zero_views().get(str(params[0].get("data") or params[0].get("input"))[:10], "0x")
    return results.get(method)


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up on a slow reply is expected: no traceback for that."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class GarbageNode:
    """A JSON-RPC server on 127.0.0.1: it answers honestly (with `canned_result`, or by
    forwarding to `upstream`) until `spoil` makes it answer chosen requests with garbage."""

    def __init__(self, upstream: str | None = None) -> None:
        self.upstream = upstream
        self._spoiler: Spoiler | None = None
        self._at: Collection[int] | None = None
        self._count = 0
        self._lock = threading.Lock()
        node = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                reply = node.answer(raw)
                time.sleep(reply.delay)
                if reply.hang_up:
                    self.close_connection = True
                    return
                self.send_response(reply.status)
                headers = {"Content-Type": "application/json"} | reply.headers
                headers.setdefault("Content-Length", str(len(reply.body)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                if not reply.trickle:
                    self.wfile.write(reply.body)
                for byte in reply.body if reply.trickle else b"":
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(reply.trickle)

            def log_message(self, *args: object) -> None:
                pass

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def spoil(self, spoiler: Spoiler | None, at: Collection[int] | None = None) -> None:
        """From now on answer with `spoiler` the requests numbered in `at` (from 0), or all of
        them when `at` is None; with no spoiler, answer honestly."""
        with self._lock:
            self._spoiler, self._at, self._count = spoiler, at, 0

    def answer(self, raw: bytes) -> Reply:
        """The reply to one request body."""
        with self._lock:
            number, self._count = self._count, self._count + 1
            spoiler, at = self._spoiler, self._at
        request = json.loads(raw)
        if self.upstream is not None:
            headers = {"Content-Type": "application/json"}
            honest = requests.post(self.upstream, data=raw, headers=headers, timeout=30).json()
        else:
            honest = {"jsonrpc": "2.0", "id": request["id"]}
            result = canned_result(request["method"], request.get("params") or [])
            if result is None and request["method"] != "eth_getTransactionReceipt":
                honest["error"] = {"code": -32601, "message": "method not found"}
            else:
                honest["result"] = result
        if spoiler is not None and (at is None or number in at):
            return spoiler(request, honest)
        return as_reply(honest)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


HUGE = 1024 * 1024  # bytes: the reply limit the campaign's clients run under


def as_reply(doc: Any) -> Reply:
    """`doc` as a plain JSON reply."""
    return Reply(json.dumps(doc).encode("utf-8", "surrogatepass"))


def spoilers(rng: random.Random, slow: float) -> dict[str, Spoiler]:
    """Every kind of garbage by name; `slow` is a wait longer than the client's timeout."""
    mutable = random.Random(rng.random())

    def with_id(value: Any) -> Spoiler:
        return lambda request, honest: as_reply({**honest, "id": value})

    return {
        "not-json": lambda request, honest: Reply(
            mutable.choice([b"<html>502 Bad Gateway</html>", b"", b"ok", mutable.randbytes(40)])
        ),
        "not-utf8": lambda request, honest: Reply(b'{"jsonrpc":"2.0","id":1,"result":"\xff\xfe"}'),
        "not-an-object": lambda request, honest: as_reply(mutable.choice([[honest], 1, "x", None])),
        "wrong-id": with_id(mutable.choice([None, "1", 10**6, [1], True])),
        "neither-result-nor-error": lambda request, honest: as_reply(
            {"jsonrpc": "2.0", "id": request["id"]}
        ),
        "result-of-wrong-type": lambda request, honest: as_reply(
            {"jsonrpc": "2.0", "id": request["id"], "result": random_json(mutable)}
        ),
        "mutated-result": lambda request, honest: as_reply(mutate_json(honest, mutable)),
        "error-object": lambda request, honest: as_reply(
            {
                "jsonrpc": "2.0",
                "id": request["id"],
                "error": {
                    "code": mutable.choice([-32000, -32601, 3, 0]),
                    "message": mutable.choice(["boom", "execution reverted", "x" * 5000, ""]),
                    "data": mutable.choice(
                        ["0x08c379a0" + "00" * 40, "0xzz", random_json(mutable)]
                    ),
                },
            }
        ),
        "malformed-error": lambda request, honest: as_reply(
            {"jsonrpc": "2.0", "id": request["id"], "error": random_json(mutable)}
        ),
        "huge-body": lambda request, honest: Reply(
            b'{"jsonrpc":"2.0","id":1,"result":"' + b"0" * (HUGE + 10) + b'"}'
        ),
        "deep-nesting": lambda request, honest: Reply(b"[" * 200_000 + b"]" * 200_000),
        "mutated-bytes": lambda request, honest: Reply(
            mutate_bytes(json.dumps(honest).encode(), mutable)
        ),
        "http-error": lambda request, honest: Reply(
            b"upstream failed", status=mutable.choice([400, 401, 403, 404, 429, 500, 502, 503])
        ),
        "bad-gzip": lambda request, honest: Reply(
            b"not gzip", headers={"Content-Encoding": "gzip"}
        ),
        "cut-short": lambda request, honest: Reply(b'{"jsonrpc"', headers={"Content-Length": "99"}),
        "hang-up": lambda request, honest: Reply(b"", hang_up=True),
        "stall": lambda request, honest: Reply(json.dumps(honest).encode(), delay=slow),
        "trickle": lambda request, honest: Reply(json.dumps(honest).encode(), trickle=slow / 8),
    }


# Transport failures, which clients try again: the campaign spoils one request with them, not all.
TRANSPORT = frozenset({"hang-up", "stall", "trickle", "cut-short"})


# ---------------------------------------------------------------------- the lab


class Lab:
    """What the targets share: a scratch directory and a JSON-RPC node that answers the clients
    built by `chain_side` and the command lines."""

    timeout = 0.2  # seconds a client waits for a reply

    def __init__(self, scratch: Path) -> None:
        self.scratch = scratch
        self.node = GarbageNode()
        self.spec = digits_mlp_spec()
        self.data = Dataset(np.zeros((4, 64), np.float32), np.zeros(4, np.int64))

    def close(self) -> None:
        self.node.close()

    def w3(self) -> Web3:
        return Web3(BoundedHTTPProvider(self.node.url, self.timeout, HUGE))

    @functools.cached_property
    def chain_side(self) -> tuple[ChainClient, DeRelayContract, Worker]:
        """A client, the contract and a worker with an in-flight turn in its journal, built once,
        while the node answers honestly."""
        options = TxOptions(receipt_timeout=1.0)
        client = ChainClient(self.w3(), Account.from_key("0x" + "01" * 32), decoder_for(), options)
        relay = DeRelayContract(client, ADDRESS)
        journal = Journal(self.scratch / "worker-journal.json")
        journal.record_turn(1, TurnEntry(0, "bparent", "bchild", "bcard", 4, "00" * 32, "trained"))
        store = LocalStore(self.scratch / "store")
        config = WorkerConfig(task_id=1, roles=Roles(), poll_seconds=0.0)
        worker = Worker(relay, store, self.spec, config, journal, self.data, self.data)
        return client, relay, worker


RPC_OPS: dict[str, Callable[[Lab, ChainClient, DeRelayContract, Worker], object]] = {
    "connect": lambda lab, client, relay, worker: connect(lab.node.url, lab.timeout, HUGE),
    "contract": lambda lab, client, relay, worker: DeRelayContract(client, ADDRESS),
    "task_state": lambda lab, client, relay, worker: relay.task_state(1),
    "lineage": lambda lab, client, relay, worker: relay.lineage(1),
    "balance": lambda lab, client, relay, worker: client.balance(),
    "transaction": lambda lab, client, relay, worker: relay.join_relay(1, 10),
    "events": lambda lab, client, relay, worker: relay.events("TaskCreated"),
    "worker_tick": lambda lab, client, relay, worker: worker.tick(),
}


def _entries(path: Path) -> tuple[object, object]:
    """The turns and ballots of a journal file: what no garbled reply may change."""
    document = json.loads(path.read_bytes())
    return document["turns"], document["ballots"]


def fuzz_rpc(rng: random.Random, lab: Lab) -> Verdict:
    """One operation against a node that spoils one request or all of them; only ChainError may
    come out, and the worker's journal must be as it was."""
    client, relay, worker = lab.chain_side
    before = _entries(worker.journal.path)
    kinds = spoilers(rng, slow=2 * lab.timeout)
    transport = rng.random() < 0.1  # each costs a timeout and a retry's wait
    kind = rng.choice(sorted(TRANSPORT if transport else set(kinds) - TRANSPORT))
    at = {rng.randrange(8)} if transport or rng.random() < 0.5 else None
    operation = RPC_OPS[rng.choice(sorted(RPC_OPS))]
    lab.node.spoil(kinds[kind], at)
    try:
        operation(lab, client, relay, worker)
    except ChainError as exc:
        return rejected(exc)
    finally:
        lab.node.spoil(None)
        # A transaction in flight may have been journaled (write-ahead, before it left): a
        # spoiled reply after it leaves the worker to poll it on its next tick.
        assert _entries(worker.journal.path) == before, "the journal's turns or ballots changed"
        Journal(worker.journal.path)
    return "accepted"


# ---------------------------------------------------------------------- cli

# Commands that start services, write files or run for minutes: fuzzed only with a bad option.
LONG_RUNNING = frozenset({"chain", "ipfs", "demo", "simulate", "dashboard", "compile", "new"})
# Values for options and arguments: numbers, amounts, shards, roles, sizes, paths (one endless),
# URLs, control characters and a very long word.
# fmt: off
WORDS = (
    "", "-", "--", "-x", "--nope", "1", "0", "-1", "1.5", "nan", "inf", "1e400", str(2**70),
    "0x10", "1ether", "0.5gwei", "-3ether", "1/3", "0/0", "3/2", "a/b", "relayer,keeper",
    "validator", "bogus", "name=5", "min_stake=1ether", "=", "64KiB", "0KiB", "9" * 30,
    "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy", "/dev/zero", "/dev/null",
    "/", ".", "nope.json", "a\nb", "é\u202e", "x" * 5000, "ftp://x", "http://", "http://[x",
    "embedded-not",
)
# fmt: on


def _commands(
    group: click.Group, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    for name, command in sorted(group.commands.items()):
        yield (*path, name), command
        if isinstance(command, click.Group):
            yield from _commands(command, (*path, name))


def _value(param: click.Parameter, rng: random.Random) -> str:
    if isinstance(param.type, click.Choice) and rng.random() < 0.5:
        return str(rng.choice(list(param.type.choices)))
    return rng.choice(WORDS)


def cli_input(rng: random.Random, rpc: str) -> list[str]:
    """Arguments for `derelay`: a command, some of its options and arguments with random values,
    stray words; a command in LONG_RUNNING is always followed by an option it does not have."""
    path, command = rng.choice([((), cli), *_commands(cli)])
    argv: list[str] = []
    if rng.random() < 0.3:
        argv += [rng.choice(["--max-spec-bytes", "--max-rpc-reply-bytes"]), rng.choice(WORDS)]
    argv += path
    if set(path) & LONG_RUNNING:  # first, so that no option can take it for its value
        argv.append("--no-such-option")
    for param in rng.sample(command.params, min(len(command.params), rng.randrange(4))):
        if isinstance(param, click.Option):
            if param.name == "help" or "--version" in param.opts:
                continue
            argv.append(rng.choice(param.opts + param.secondary_opts))
            if not param.is_flag and not param.count:
                argv.append(
                    _value(param, rng) if param.name != "rpc" or rng.random() < 0.5 else rpc
                )
        else:
            argv.append(_value(param, rng))
    return argv + rng.sample(WORDS, rng.choice([0, 0, 1, 2]))


def run_cli(argv: list[str], env: dict[str, str | None]) -> tuple[int, str]:
    """Run the `derelay` entry point in this process on `argv`; its exit status and stderr."""
    handlers, level = logging.root.handlers[:], logging.root.level
    with CliRunner().isolation(env=env) as (_, err, _):
        try:
            main(argv)
            status = 0
        except SystemExit as exc:
            status = exc.code if isinstance(exc.code, int) else 1
        finally:
            sys.stderr.flush()
            logging.root.handlers[:], logging.root.level = handlers, level
        return status, err.getvalue().decode("utf-8", "replace")


def cli_env(rpc: str) -> dict[str, str | None]:
    """The environment of a fuzzed command: the lab's node, no keys, no other DeRelayL setting."""
    env: dict[str, str | None] = {name: None for name in os.environ if name.startswith("DERELAY_")}
    return env | {"DERELAY_RPC": rpc}


def fuzz_cli(rng: random.Random, lab: Lab) -> Verdict:
    """Run one command line against the lab's node, answering honestly or with garbage; a failure
    must be one line on stderr starting "error:", with no traceback."""
    argv = cli_input(rng, lab.node.url)
    kinds = spoilers(rng, slow=2 * lab.timeout)
    kind = rng.choice(sorted(set(kinds) - TRANSPORT))
    lab.node.spoil(kinds[kind] if rng.random() < 0.5 else None)
    # A fresh working directory: nothing one command writes there (a deployment record) is
    # found by the next.
    try:
        with tempfile.TemporaryDirectory(dir=lab.scratch) as cwd, contextlib.chdir(cwd):
            status, stderr = run_cli(argv, cli_env(lab.node.url))
    finally:
        lab.node.spoil(None)
    assert "Traceback" not in stderr, stderr[-2000:]
    if status == 0:
        return "accepted"
    errors = [line for line in stderr.splitlines() if line.startswith(("error:", "aborted"))]
    if len(errors) != 1:
        raise Unclear(f"derelay {argv!r} exited {status} with {stderr[-600:]!r}")
    return "rejected"


# ---------------------------------------------------------------------- the campaign

TARGETS: dict[str, Callable[[random.Random, Lab], Verdict]] = {
    "spec": lambda rng, lab: fuzz_spec(rng),
    "weights": lambda rng, lab: fuzz_weights(rng),
    "cid": lambda rng, lab: fuzz_cid(rng),
    "store": lambda rng, lab: fuzz_store(rng, lab.scratch),
    "journal": lambda rng, lab: fuzz_journal(rng, lab.scratch),
    "cli": fuzz_cli,
    "rpc": fuzz_rpc,
}


@dataclass
class Tally:
    """The outcomes of one target's cases."""

    cases: int = 0
    accepted: int = 0
    rejected: int = 0
    crashed: list[str] = field(default_factory=list)
    seconds: float = 0.0


def campaign(targets: list[str], cases: int, seed: int, lab: Lab) -> dict[str, Tally]:
    """Run `cases` cases of each target; case i of target t draws from Random(f"{seed}:{t}:{i}")."""
    tallies: dict[str, Tally] = {}
    for name in targets:
        tally = tallies.setdefault(name, Tally())
        started = time.perf_counter()
        for index in range(cases):
            tally.cases += 1
            try:
                verdict = TARGETS[name](random.Random(f"{seed}:{name}:{index}"), lab)
            except Exception as exc:  # a crash: what the campaign is looking for
                where = traceback.extract_tb(exc.__traceback__)[-1]
                tally.crashed.append(
                    f"{name} case {index}: {type(exc).__name__}: {str(exc)[:300]} "
                    f"({Path(where.filename).name}:{where.lineno})"
                )
                continue
            setattr(tally, verdict, getattr(tally, verdict) + 1)
        tally.seconds = time.perf_counter() - started
    return tallies


def replay_command(targets: list[str], cases: int, seed: int) -> str:
    """The command line that runs the same cases again."""
    only = "" if targets == list(TARGETS) else f" --only {','.join(targets)}"
    return f"python -m tests.support.fuzz --cases {cases} --seed {seed}{only}"


def report(tallies: dict[str, Tally], cases: int, seed: int, seconds: float) -> str:
    """The markdown table of a campaign, then the first few crashes of each target and the
    command that replays them."""
    rows = [
        (name, t.cases, t.accepted, t.rejected, len(t.crashed), f"{t.seconds:.1f}")
        for name, t in tallies.items()
    ]
    total = [sum(t.cases for t in tallies.values()), sum(t.accepted for t in tallies.values())]
    total += [
        sum(t.rejected for t in tallies.values()),
        sum(len(t.crashed) for t in tallies.values()),
    ]
    rows.append(("total", *total, f"{seconds:.1f}"))
    lines = [
        f"fuzz campaign: {cases} cases per target, seed {seed}, {seconds:.0f} s",
        "",
        table(
            ["target", "cases", "accepted", "rejected (domain error)", "crashed", "seconds"], rows
        ),
    ]
    for tally in tallies.values():
        lines += [f"- {crash}" for crash in tally.crashed[:5]]
    if any(tally.crashed for tally in tallies.values()):
        lines.append(f"replay: {replay_command(list(tallies), cases, seed)}")
    return "\n".join(lines)


def scratch_dir() -> Path:
    """A fresh scratch directory, in memory (/dev/shm) where the machine has one: the store and the
    journal sync every write, which on a disk is most of a case's time (20 times the rest), and
    the campaign checks what is read back, not what survives a power cut."""
    memory = Path("/dev/shm")
    where = memory if memory.is_dir() and os.access(memory, os.W_OK) else None
    return Path(tempfile.mkdtemp(prefix="derelay-fuzz-", dir=where))


def main_fuzz(argv: list[str] | None = None) -> int:
    """The command line of the campaign; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=500, help="cases per target (default 500)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the whole campaign")
    parser.add_argument("--only", default=",".join(TARGETS), help="targets, comma-separated")
    args = parser.parse_args(argv)
    targets = [name for name in args.only.split(",") if name]
    unknown = set(targets) - set(TARGETS)
    if unknown:
        parser.error(f"unknown targets {sorted(unknown)}: use {', '.join(TARGETS)}")
    scratch = scratch_dir()
    lab = Lab(scratch)
    started = time.perf_counter()
    try:
        tallies = campaign(targets, args.cases, args.seed, lab)
    finally:
        lab.close()
        shutil.rmtree(scratch, ignore_errors=True)
    print(report(tallies, args.cases, args.seed, time.perf_counter() - started))
    return 1 if any(t.crashed for t in tallies.values()) else 0


if __name__ == "__main__":
    sys.exit(main_fuzz())
