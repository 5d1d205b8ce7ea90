"""Size limits on untrusted input: how many bytes DeRelayL reads from others before refusing them.

Specs, weights, store content and RPC replies come from whoever published a task or runs a node;
each limit bounds the memory and work such bytes can cost. The defaults fit every valid task with a
wide margin: lower them on a small machine, raise them only for a publisher or node you trust.
On the command line, `derelay --max-<field> SIZE` or `$DERELAY_MAX_<FIELD>` sets one (`<field>`
with dashes for underscores, e.g. --max-weights-bytes or $DERELAY_MAX_WEIGHTS_BYTES).

Beyond sizes, untrusted JSON is parsed with `loads_json`, which refuses nesting deeper than
MAX_JSON_DEPTH, local files named by others are read with `read_prefix`, which stops past the
limit, and HTTP replies of others' nodes with `read_reply`, which also stops at a deadline.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import requests
import urllib3

from derelay.trainer.errors import ConfigError

MAX_JSON_DEPTH = 32  # nesting levels of untrusted JSON: a spec has 3, the deepest RPC reply 5
_UNITS = {"": 1, "kib": 1024, "mib": 1024**2, "gib": 1024**3}
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(b"[]{}")))
_SIZE = re.compile(r"\s*(\d{1,15})\s*(kib|mib|gib|)\s*", re.IGNORECASE)


@dataclass(frozen=True)
class Limits:
    """The largest input of each kind, in bytes, read from others."""

    spec_bytes: int = 64 * 1024  # a spec is a few hundred bytes: anything near this is an attack
    weights_bytes: int = 64 * 1024 * 1024  # above the float32 file of the largest spec allowed
    content_bytes: int = 512 * 1024 * 1024  # any one file fetched from the content store
    rpc_reply_bytes: int = 64 * 1024 * 1024  # one JSON-RPC reply; a long task's event logs fit

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if type(value) is not int or value < 1:
                raise ConfigError(
                    f"limit {item.name} must be a positive number of bytes, got {value!r}"
                )


DEFAULT_LIMITS = Limits()


def parse_size(text: str) -> int:
    """Bytes from "65536", "64KiB", "512MiB" or "1GiB" (units are powers of 1024)."""
    match = _SIZE.fullmatch(text)
    if match is None or int(match[1]) == 0:
        raise ConfigError(
            f"{text[:40]!r} is not a size: use a positive number of bytes, optionally with "
            "KiB, MiB or GiB, e.g. 64MiB"
        )
    return int(match[1]) * _UNITS[match[2].lower()]


def read_prefix(path: Path, max_bytes: int) -> bytes:
    """The file at `path`, read up to one byte past `max_bytes`: enough to tell that it is too
    large without reading all of a huge or endless one (such as /dev/zero)."""
    with path.open("rb") as file:
        return file.read(max_bytes + 1)


def read_reply(response: requests.Response, max_bytes: int, deadline: float) -> bytes:
    """The body of a streamed HTTP reply, read until it ends or is past `max_bytes` (the caller
    tells the two apart by the length). It raises requests.Timeout once `time.monotonic()` passes
    `deadline` and requests.ConnectionError if the connection breaks mid-reply.

    `read1` returns whatever has arrived, so a reply trickling in a byte at a time meets the
    deadline; reading fixed-size chunks would wait for each chunk whole before looking at the clock.
    """
    body = bytearray()
    try:
        while chunk := response.raw.read1(64 * 1024, decode_content=True):
            body += chunk
            if len(body) > max_bytes:
                break
            if time.monotonic() > deadline:
                raise requests.Timeout("the reply was not whole by its deadline")
    except urllib3.exceptions.ReadTimeoutError as exc:
        raise requests.Timeout(str(exc)) from None
    except urllib3.exceptions.ProtocolError as exc:
        raise requests.ConnectionError(str(exc)) from None
    return bytes(body)


def loads_json(data: bytes, **options: Any) -> Any:
    """`json.loads` of untrusted UTF-8 bytes; ValueError if they are not UTF-8 JSON, or nest
    deeper than MAX_JSON_DEPTH (or have brackets that do not pair up).

    The depth is checked first, in linear time at C speed: CPython's parser recurses in C, and
    importing web3 raises the recursion limit to 100000, past what the C stack holds, so deep
    enough nesting would crash the process instead of raising RecursionError.
    """
    if data.count(b"[") + data.count(b"{") > MAX_JSON_DEPTH:
        # Brackets outside strings: drop escaped backslashes and quotes, then every string.
        unescaped = data.replace(b"\\\\", b"").replace(b'\\"', b"")
        skeleton = b"".join(unescaped.split(b'"')[::2]).translate(None, _NOT_BRACKETS)
        for _ in range(MAX_JSON_DEPTH):  # each pass removes at least the innermost level
            inner = skeleton.replace(b"[]", b"").replace(b"{}", b"")
            if inner == skeleton:
                break
            skeleton = inner
        if skeleton:
            raise ValueError(
                f"JSON nested deeper than {MAX_JSON_DEPTH} levels, or brackets that do not pair up"
            )
    return json.loads(data.decode("utf-8"), **options)
