"""OSC 1.0 packets read strictly: every length checked before a byte is interpreted.

python-osc is lenient where a show must not be: it zero-pads a float cut short, reads a blob
with a negative size as an empty one, and skips unknown type tags with a warning. Here a packet
is either exactly well-formed (sizes multiples of 4, strings NUL-terminated and NUL-padded,
every argument's bytes present, nothing left over) or refused with a one-line reason, and each
argument keeps its type tag, so a parameter can refuse a blob or an RGBA colour instead of
reading it as text or a number (see `osc_map.check_tags`).
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Any

BUNDLE_PREFIX = b"#bundle\x00"
MAX_BUNDLE_DEPTH = 8
MAX_ARRAY_DEPTH = 4

TAG_NAMES: dict[str, str] = {
    "i": "int32",
    "h": "int64",
    "f": "float32",
    "d": "float64",
    "s": "string",
    "S": "symbol",
    "b": "blob",
    "c": "char",
    "r": "RGBA colour",
    "m": "MIDI message",
    "t": "timetag",
    "T": "true",
    "F": "false",
    "N": "nil",
    "I": "impulse",
    "[": "array",
}
"""Every OSC 1.0 / 1.1 type tag this reader knows the size of (others make the packet malformed)."""


class MalformedPacket(ValueError):
    """A datagram that is not a well-formed OSC packet; the text says what is wrong, in one line."""


@dataclass(frozen=True)
class Message:
    address: str
    tags: str
    """The type tags as sent, without the leading ',' (arrays keep their brackets)."""
    args: tuple[Any, ...]
    """Decoded values; an array `[...]` is a list. Blobs are bytes, `r`/`m` are 4-byte tuples."""


def parse_packet(data: bytes) -> list[Message]:
    """All messages of a packet (bundles flattened, in order), or MalformedPacket."""
    out: list[Message] = []
    _packet(memoryview(data), 0, out)
    return out


def message_address(data: bytes) -> bytes | None:
    """The raw address of a message datagram (up to its NUL), cheaply, without parsing the rest."""
    end = data.find(b"\x00")
    return None if end <= 0 else data[:end]


def signature(data: bytes, depth: int = 0) -> tuple | None:
    """What a datagram looks like without reading a value: (address, type tags, size) for a
    message (size left out where strings or blobs make it vary), a tuple of those for a bundle;
    None where even that does not fit. Two datagrams with one signature differ only in values.
    Runs on every datagram of a flood, so it only finds NULs and slices."""
    if data[:8] == BUNDLE_PREFIX:
        return _bundle_signature(data, depth)
    end = data.find(b"\x00")
    if end <= 0:
        return None
    start = (end // 4 + 1) * 4
    stop = data.find(b"\x00", start)
    tags = data[start:stop] if stop > start else b""
    variable = b"s" in tags or b"b" in tags or b"S" in tags
    return (data[:end], tags, -1 if variable else len(data))


def _bundle_signature(data: bytes, depth: int) -> tuple | None:
    if depth > MAX_BUNDLE_DEPTH or len(data) < 16:
        return None
    found: list[tuple] = []
    index = 16
    while index < len(data):
        if index + 4 > len(data):
            return None
        (size,) = struct.unpack_from(">i", data, index)
        index += 4
        if size <= 0 or index + size > len(data):
            return None
        element = signature(data[index : index + size], depth + 1)
        if element is None:
            return None
        found.append(element)
        index += size
    return tuple(found)


def _packet(data: memoryview, depth: int, out: list[Message]) -> None:
    if len(data) == 0:
        raise MalformedPacket("empty packet")
    if len(data) % 4:
        raise MalformedPacket(f"size {len(data)} is not a multiple of 4")
    if bytes(data[:8]) == BUNDLE_PREFIX:
        _bundle(data, depth, out)
    elif data[0] == ord("/"):
        out.append(_message(data))
    else:
        raise MalformedPacket("neither a message (starts with '/') nor a bundle ('#bundle')")


def _bundle(data: memoryview, depth: int, out: list[Message]) -> None:
    if depth >= MAX_BUNDLE_DEPTH:
        raise MalformedPacket(f"bundles nested deeper than {MAX_BUNDLE_DEPTH}")
    if len(data) < 16:
        raise MalformedPacket("bundle header truncated")
    index = 16  # "#bundle\0" and the 8-byte timetag (applied at once, whatever it says)
    while index < len(data):
        if index + 4 > len(data):
            raise MalformedPacket("bundle element size truncated")
        (size,) = struct.unpack_from(">i", data, index)
        index += 4
        if size <= 0 or size % 4 or index + size > len(data):
            raise MalformedPacket(f"bundle element of {size} bytes does not fit the packet")
        _packet(data[index : index + size], depth + 1, out)
        index += size


def _string(data: memoryview, index: int, what: str) -> tuple[str, int]:
    raw = bytes(data[index:])
    end = raw.find(b"\x00")
    if end < 0:
        raise MalformedPacket(f"{what} not terminated")
    stop = index + (end // 4 + 1) * 4
    if stop > len(data):
        raise MalformedPacket(f"{what} padding truncated")
    if any(raw[end : stop - index]):
        raise MalformedPacket(f"{what} padding is not NUL bytes")
    try:
        return raw[:end].decode("utf-8"), stop
    except UnicodeDecodeError:
        raise MalformedPacket(f"{what} is not UTF-8") from None


def _message(data: memoryview) -> Message:
    address, index = _string(data, 0, "address")
    if not address.isprintable() or " " in address:
        raise MalformedPacket("address has spaces or control characters")
    if index == len(data):
        return Message(address, "", ())  # no type tags at all (OSC 1.0 allows it): no arguments
    if data[index] != ord(","):
        raise MalformedPacket("type tags must start with ','")
    tags, index = _string(data, index, "type tags")
    tags = tags[1:]
    unknown = sorted(set(tags) - set(TAG_NAMES) - {"]"})
    if unknown:
        raise MalformedPacket(f"unsupported OSC type tag {unknown[0]!r}")
    args, index, pos = _args(data, index, tags, 0, 0)
    if pos != len(tags):
        raise MalformedPacket("']' without '['")
    if index != len(data):
        raise MalformedPacket(f"{len(data) - index} bytes after the last argument")
    return Message(address, tags, tuple(args))


_FIXED = {"i": (">i", 4), "h": (">q", 8), "f": (">f", 4), "d": (">d", 8), "t": (">Q", 8), "c": (">I", 4)}
_NO_DATA = {"T": True, "F": False, "N": None, "I": None}


def _args(data: memoryview, index: int, tags: str, pos: int, depth: int) -> tuple[list[Any], int, int]:
    """Read arguments for tags[pos:] until the end or a closing ']'; return (values, index, pos)."""
    args: list[Any] = []
    while pos < len(tags):
        tag = tags[pos]
        pos += 1
        if tag == "]":
            if depth == 0:
                raise MalformedPacket("']' without '['")
            return args, index, pos
        if tag == "[":
            if depth >= MAX_ARRAY_DEPTH:
                raise MalformedPacket(f"arrays nested deeper than {MAX_ARRAY_DEPTH}")
            inner, index, pos = _args(data, index, tags, pos, depth + 1)
            if pos > len(tags) or tags[pos - 1] != "]":
                raise MalformedPacket("'[' without ']'")
            args.append(inner)
            continue
        if tag in _NO_DATA:
            args.append(_NO_DATA[tag])
            continue
        if tag in ("s", "S"):
            text, index = _string(data, index, f"{TAG_NAMES[tag]} argument")
            args.append(text)
            continue
        if tag in _FIXED:
            fmt, size = _FIXED[tag]
            if index + size > len(data):
                raise MalformedPacket(f"{TAG_NAMES[tag]} argument truncated")
            (value,) = struct.unpack_from(fmt, data, index)
            args.append(shortest_f32(value) if tag == "f" else value)
            index += size
            continue
        if tag in ("r", "m"):
            if index + 4 > len(data):
                raise MalformedPacket(f"{TAG_NAMES[tag]} argument truncated")
            args.append(tuple(data[index : index + 4]))
            index += 4
            continue
        if tag == "b":
            if index + 4 > len(data):
                raise MalformedPacket("blob size truncated")
            (size,) = struct.unpack_from(">i", data, index)
            index += 4
            padded = (size + 3) // 4 * 4
            if size < 0 or index + padded > len(data):
                raise MalformedPacket(f"blob of {size} bytes does not fit the packet")
            args.append(bytes(data[index : index + size]))
            index += padded
            continue
        raise AssertionError(tag)  # pragma: no cover - unknown tags are refused above
    if depth:
        raise MalformedPacket("'[' without ']'")
    return args, index, pos


def shortest_f32(value: float) -> float:
    """The shortest decimal that is the same float32 as `value` (3.3, not 3.299999952316284).

    A float32 from the wire, or a stored float shown as the float32 it goes out as, reads the
    way the sender typed it: in the store, in `/sd/error` lines and in OSCQuery's VALUE.
    """
    if not math.isfinite(value):
        return value
    try:
        target = struct.pack(">f", value)
    except OverflowError:
        return value
    for digits in range(6, 10):
        short = float(f"{value:.{digits}g}")
        try:
            if struct.pack(">f", short) == target:
                return short
        except OverflowError:
            continue
    return struct.unpack(">f", target)[0]
