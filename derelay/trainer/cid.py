"""Content identifiers (CIDs) and the UnixFS DAG that `ipfs add --cid-version=1` builds.

DeRelayL names content with CIDv1, sha2-256, codec raw or dag-pb, written in base32 lower case
(``bafk...`` for raw, ``bafy...`` for dag-pb). On chain a CID is its 32-byte digest plus the
codec, so every CID here has exactly that shape and anything else is refused.

`unixfs_blocks` builds a file's DAG exactly as Kubo does with ``--cid-version=1`` and its other
defaults: fixed 256 KiB chunks, raw leaves, a balanced DAG of at most 174 links per node, and
dag-pb/UnixFS File nodes above the leaves. A file of one chunk (or none) is a single raw block.
The protobuf encoding is written by hand; it needs only varints and length-delimited fields.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from derelay.trainer.errors import CidError

RAW = 0x55
DAG_PB = 0x70
SHA2_256 = 0x12
CODEC_NAMES = {RAW: "raw", DAG_PB: "dag-pb"}

CHUNK_SIZE = 262144
MAX_LINKS = 174

_CID_VERSION = 1
_DIGEST_LEN = 32
_CID_TEXT_LEN = 59  # "b" + base32 of the 36 binary bytes, unpadded
_MAX_CID_TEXT = 128  # longer strings are refused before any decoding
_BASE32 = re.compile(r"[a-z2-7]+")
_UNIXFS_FILE = 2
_UNIXFS_RAW = 0

# Where a string that is not base32 CIDv1 comes from, judged by its multibase prefix.
_OTHER_BASES = {
    "B": "base32 upper case",
    "z": "base58btc",
    "f": "base16",
    "F": "base16 upper case",
    "m": "base64",
    "u": "base64url",
    "k": "base36",
    "c": "base32pad",
}
_OTHER_HASHES = {
    0x00: "identity",
    0x13: "sha2-512",
    0x16: "sha3-256",
    0x1E: "blake3",
    0xB220: "blake2b-256",
}
_FIX = "convert it with `ipfs cid format -v 1 -b base32 <cid>`"


def _short(text: str) -> str:
    """Quote untrusted text for a one-line message, cut to a readable length."""
    return repr(text if len(text) <= 70 else text[:67] + "...")


@dataclass(frozen=True, slots=True)
class Cid:
    """A CIDv1 with a sha2-256 digest and the raw or dag-pb codec."""

    codec: int
    digest: bytes

    def __post_init__(self) -> None:
        if self.codec not in CODEC_NAMES:
            raise CidError(
                f"codec {self.codec:#x} is not supported: use raw (0x55) or dag-pb (0x70)"
            )
        if not isinstance(self.digest, bytes) or len(self.digest) != _DIGEST_LEN:
            raise CidError("a CID digest must be the 32 bytes of a sha2-256 hash")

    def __str__(self) -> str:
        text = base64.b32encode(self.to_bytes()).decode("ascii").rstrip("=").lower()
        return "b" + text

    def to_bytes(self) -> bytes:
        """The binary CID: version, codec, multihash (sha2-256, 32 bytes), digest."""
        return bytes((_CID_VERSION, self.codec, SHA2_256, _DIGEST_LEN)) + self.digest

    def to_onchain(self) -> tuple[bytes, int]:
        """The (bytes32 digest, uint8 codec) pair that the contracts store."""
        return self.digest, self.codec

    @classmethod
    def from_onchain(cls, digest: bytes, codec: int) -> Cid:
        """Rebuild a CID from the pair that `to_onchain` gives."""
        return cls(codec, bytes(digest))

    @classmethod
    def of(cls, codec: int, block: bytes | memoryview) -> Cid:
        """The CID of one block of `codec`, hashed with sha2-256."""
        return cls(codec, hashlib.sha256(block).digest())

    @classmethod
    def from_bytes(cls, raw: bytes) -> Cid:
        """Decode a binary CID, as found in dag-pb links."""
        raw = bytes(raw)
        if raw[:2] == bytes((SHA2_256, _DIGEST_LEN)) and len(raw) == 2 + _DIGEST_LEN:
            raise CidError("binary CIDv0 found; only CIDv1 is supported")
        version, pos = _read_varint(raw, 0)
        if version != _CID_VERSION:
            raise CidError(f"CID version {version} is not supported; only CIDv1 is")
        codec, pos = _read_varint(raw, pos)
        if codec not in CODEC_NAMES:
            raise CidError(
                f"CID codec {codec:#x} is not supported: only raw (0x55) or dag-pb (0x70)"
            )
        hash_code, pos = _read_varint(raw, pos)
        if hash_code != SHA2_256:
            name = _OTHER_HASHES.get(hash_code, "unknown")
            raise CidError(f"CID hash {hash_code:#x} ({name}) is not supported; only sha2-256 is")
        hash_len, pos = _read_varint(raw, pos)
        if hash_len != _DIGEST_LEN or len(raw) - pos != _DIGEST_LEN:
            raise CidError("CID digest is not 32 bytes long, as a sha2-256 digest is")
        return cls(codec, bytes(raw[pos:]))

    @classmethod
    def parse(cls, text: str) -> Cid:
        """Parse a base32 CIDv1 string strictly; raise CidError saying what is wrong."""
        if not isinstance(text, str):
            raise CidError(f"a CID must be a string, not {type(text).__name__}")
        if not text:
            raise CidError("empty CID: expected a CIDv1 such as 'bafy...' or 'bafk...'")
        if len(text) > _MAX_CID_TEXT:
            raise CidError(
                f"{_short(text)} is not a CID: it is {len(text)} characters long; "
                f"a CIDv1 sha2-256 CID has {_CID_TEXT_LEN}"
            )
        if text.startswith("Qm") and len(text) == 46:
            raise CidError(
                f"{_short(text)} is a CIDv0, which names content added with legacy settings that "
                "DeRelayL cannot verify: add the file again with `ipfs add --cid-version=1`"
            )
        if text[0] != "b":
            base = _OTHER_BASES.get(text[0])
            if base is None:
                raise CidError(f"{_short(text)} is not a CID: expected a CIDv1 such as 'bafy...'")
            raise CidError(
                f"{_short(text)} is written in {base}; only base32 ('b...') is read: {_FIX}"
            )
        body = text[1:]
        if not _BASE32.fullmatch(body):
            raise CidError(
                f"{_short(text)} is not a CID: base32 CIDs use only the characters a-z and 2-7"
            )
        if len(body) % 8 in (1, 3, 6):
            raise CidError(f"{_short(text)} is not a CID: its base32 text is cut short")
        raw = base64.b32decode(body.upper() + "=" * (-len(body) % 8))
        try:
            cid = cls.from_bytes(raw)
        except CidError as exc:
            raise CidError(f"{_short(text)} is not a usable CID: {exc}") from None
        if str(cid) != text:
            raise CidError(f"{_short(text)} is not a CID in canonical form: {_FIX}")
        return cid


# --- protobuf: just what dag-pb and UnixFS need -------------------------------------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field_bytes(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _field_varint(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value)


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf):
            raise CidError("varint runs past the end of its bytes")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise CidError("varint is longer than 64 bits")


def _fields(buf: bytes) -> Iterator[tuple[int, int | bytes]]:
    """Yield (field number, value) for each field; varints as int, length-delimited as bytes."""
    pos = 0
    while pos < len(buf):
        key, pos = _read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _read_varint(buf, pos)
            yield number, value
        elif wire == 2:
            length, pos = _read_varint(buf, pos)
            if pos + length > len(buf):
                raise CidError("protobuf field runs past the end of the block")
            yield number, buf[pos : pos + length]
            pos += length
        else:
            raise CidError(f"protobuf wire type {wire} is not used by dag-pb or UnixFS")


@dataclass(frozen=True, slots=True)
class Link:
    """A dag-pb link: the child's CID and its cumulative size (block plus descendants)."""

    cid: Cid
    tsize: int


@dataclass(frozen=True, slots=True)
class FileNode:
    """A decoded dag-pb UnixFS File node."""

    links: tuple[Link, ...]
    data: bytes
    filesize: int
    blocksizes: tuple[int, ...]


def encode_file_node(links: list[Link], blocksizes: list[int]) -> bytes:
    """Encode a dag-pb node holding UnixFS Data{Type=File, filesize, blocksizes} and `links`."""
    unixfs = _field_varint(1, _UNIXFS_FILE) + _field_varint(3, sum(blocksizes))
    unixfs += b"".join(_field_varint(4, size) for size in blocksizes)
    pb_links = (
        _field_bytes(1, link.cid.to_bytes()) + _field_bytes(2, b"") + _field_varint(3, link.tsize)
        for link in links
    )
    return b"".join(_field_bytes(2, link) for link in pb_links) + _field_bytes(1, unixfs)


def decode_file_node(block: bytes) -> FileNode:
    """Decode a dag-pb UnixFS File node; raise CidError on anything else."""
    links: list[Link] = []
    unixfs: bytes | None = None
    for number, value in _fields(block):
        if number == 2 and isinstance(value, bytes):
            link_cid, tsize = None, 0
            for link_number, link_value in _fields(value):
                if link_number == 1 and isinstance(link_value, bytes):
                    link_cid = Cid.from_bytes(link_value)
                elif link_number == 3 and isinstance(link_value, int):
                    tsize = link_value
            if link_cid is None:
                raise CidError("dag-pb link has no hash")
            links.append(Link(link_cid, tsize))
        elif number == 1 and isinstance(value, bytes):
            unixfs = value
        else:
            raise CidError(f"dag-pb node has an unexpected field {number}")
    if unixfs is None:
        raise CidError("dag-pb node carries no UnixFS data")
    kind, data, filesize, blocksizes = None, b"", None, []
    for number, value in _fields(unixfs):
        if number == 1 and isinstance(value, int):
            kind = value
        elif number == 2 and isinstance(value, bytes):
            data = value
        elif number == 3 and isinstance(value, int):
            filesize = value
        elif number == 4 and isinstance(value, int):
            blocksizes.append(value)
    if kind not in (_UNIXFS_FILE, _UNIXFS_RAW):
        raise CidError(f"UnixFS node of type {kind} is not a file")
    if len(blocksizes) != len(links):
        raise CidError("UnixFS node lists a different number of block sizes than links")
    if filesize is None:
        filesize = len(data) + sum(blocksizes)
    if filesize != len(data) + sum(blocksizes):
        raise CidError("UnixFS node's file size disagrees with its block sizes")
    return FileNode(tuple(links), bytes(data), filesize, tuple(blocksizes))


# --- the DAG ------------------------------------------------------------------------------------


def unixfs_blocks(data: bytes | memoryview) -> Iterator[tuple[Cid, bytes]]:
    """Yield every block of `data`'s UnixFS DAG, children before parents; the last is the root.

    The DAG is the one `ipfs add --cid-version=1` builds with Kubo's defaults (chunker
    size-262144, raw leaves, balanced layout, 174 links per node).
    """
    view = memoryview(data).cast("B")
    leaves: list[tuple[Cid, int]] = []
    for offset in range(0, max(len(view), 1), CHUNK_SIZE):
        leaf = bytes(view[offset : offset + CHUNK_SIZE])
        cid = Cid.of(RAW, leaf)
        yield cid, leaf
        leaves.append((cid, len(leaf)))
    yield from unixfs_parents(leaves)


def unixfs_parents(leaves: Sequence[tuple[Cid, int]]) -> Iterator[tuple[Cid, bytes]]:
    """Yield the inner nodes of the balanced DAG over raw `leaves` (CID, bytes), children before
    parents; the last is the root. Nothing for a single leaf: it is the root itself."""
    # Each entry: (link to the node, bytes of file data below it).
    level = [(Link(cid, size), size) for cid, size in leaves]
    while len(level) > 1:
        parents: list[tuple[Link, int]] = []
        for start in range(0, len(level), MAX_LINKS):
            group = level[start : start + MAX_LINKS]
            block = encode_file_node([link for link, _ in group], [size for _, size in group])
            cid = Cid.of(DAG_PB, block)
            yield cid, block
            tsize = len(block) + sum(link.tsize for link, _ in group)
            parents.append((Link(cid, tsize), sum(size for _, size in group)))
        level = parents


def unixfs_root(leaves: Sequence[tuple[Cid, int]]) -> Cid:
    """The root CID of the balanced DAG over raw `leaves` (CID, bytes): the leaf itself if there
    is one, else the last node `unixfs_parents` builds."""
    if len(leaves) == 1:
        return leaves[0][0]
    ((root, _),) = deque(unixfs_parents(leaves), maxlen=1)
    return root


def unixfs_dag(data: bytes | memoryview) -> tuple[Cid, dict[Cid, bytes]]:
    """The root CID of `data` and all blocks of its DAG, keyed by CID."""
    blocks: dict[Cid, bytes] = {}
    for cid, block in unixfs_blocks(data):
        blocks[cid] = block
    return cid, blocks


def unixfs_cid(data: bytes | memoryview) -> Cid:
    """The CID that `ipfs add --cid-version=1` gives `data` (Kubo defaults)."""
    ((root, _),) = deque(unixfs_blocks(data), maxlen=1)
    return root
