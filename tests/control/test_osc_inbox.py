"""The inbox between reading and parsing: newest per key, bounded per client, clients in turns."""

from __future__ import annotations

import random

from bridge.control.osc import MAX_PENDING, OscServer
from bridge.control.osc_inbox import Inbox
from bridge.control.osc_keys import MAX_HEADERS
from bridge.control.osc_wire import signature
from bridge.control.store import ParamStore

from .osc_flood_sender import mixed
from .osc_helpers import bundle, f32, i32, message, raw_message


def test_a_newer_datagram_replaces_the_waiting_one_and_moves_behind_the_others():
    inbox: Inbox[str] = Inbox(per_client=8)
    inbox.put("a", "guidance", b"g1")
    inbox.put("a", "bundle", b"b1")  # a bundle that also sets guidance
    inbox.put("a", "guidance", b"g2")
    assert [d for _, d in inbox.take(16)] == [b"b1", b"g2"]  # g2 applied after the bundle: it wins
    assert inbox.coalesced == 1 and len(inbox) == 0


def test_one_flooding_client_does_not_crowd_out_another():
    inbox: Inbox[str] = Inbox(per_client=300)
    for n in range(200):
        assert inbox.put("flood", n, b"x%d" % n)
    inbox.put("quiet", "guidance", b"mine")
    taken = [client for client, _ in inbox.take(16)]
    assert taken.index("quiet") <= 16  # served in its turn, not after the 200
    assert len(taken) == 201


def test_a_client_may_have_only_so_many_different_datagrams_waiting():
    inbox: Inbox[str] = Inbox(per_client=3)
    assert all(inbox.put("a", k, b"") for k in range(3))
    assert not inbox.put("a", 99, b"")  # a fourth key: refused
    assert inbox.put("a", 1, b"newer")  # the same key still coalesces
    assert inbox.put("b", 99, b"")  # and another client has its own room


def test_coalescing_keys_keep_different_shapes_apart():
    """Same address, other type tags or size (a refused message after a good one): both parsed."""
    srv = OscServer(ParamStore(), port=0)
    good, short = (
        message("/sd/region/2/rect", 0.0, 0.0, 0.5, 1.0),
        message("/sd/region/2/rect", 0.0, 0.5, 1.0),
    )
    assert srv._coalesce_key(good) == srv._coalesce_key(message("/sd/region/2/rect", 0.1, 0.2, 0.3, 0.4))
    assert srv._coalesce_key(good) != srv._coalesce_key(short)
    assert srv._coalesce_key(message("/sd/prompt", "a")) == srv._coalesce_key(
        message("/sd/prompt", "a longer one")
    )
    assert srv._coalesce_key(message("/sd/status")) != srv._coalesce_key(message("/sd/get", "guidance"))
    b = bundle(0, message("/sd/delta", 0.5), message("/sd/guidance", 2.0))
    assert srv._coalesce_key(b) == srv._coalesce_key(
        bundle(0, message("/sd/delta", 0.1), message("/sd/guidance", 9.0))
    )
    assert srv._coalesce_key(b) != srv._coalesce_key(message("/sd/delta", 0.5))
    assert MAX_PENDING >= 64


def _signature_key(srv: OscServer, data: bytes) -> object:
    """The key as it was before the header cache: the full signature, when every address in it
    is a parameter's; anything else only equals an identical datagram."""
    sig = signature(data)
    addresses = [sig[0]] if sig and isinstance(sig[0], bytes) else [e[0] for e in sig or ()]
    if sig is not None and all(a.decode("latin-1") in srv.routes for a in addresses):
        return sig
    return ("other", data)


def test_the_cached_keys_coalesce_exactly_what_the_signatures_do():
    """Keys are cached per message header (osc_keys): over floods, odd shapes, questions, unknown
    addresses, strings, malformed and random bytes, two datagrams share a key exactly when their
    signatures do, and a made-up address per datagram does not grow the cache past its bound."""
    srv = OscServer(ParamStore(), port=0)
    rng = random.Random(7)
    corpus = mixed(60) + [
        message("/sd/guidance", 1.0),
        message("/sd/guidance", 1),  # another type tag
        message("/sd/guidance", 1.0, 2.0),  # another size
        message("/sd/prompt", "a"),
        message("/sd/prompt", "a longer prompt"),
        message("/sd/status"),
        message("/sd/get", "guidance"),
        message("/sd/nowhere", 1.0),
        raw_message("/sd/guidance", "f"),  # cut short
        raw_message("/sd/guidance", "f", f32(1.0), f32(2.0)),  # bytes left over
        b"/sd/guidance\x00\x00\x00\x00",  # no type tags
        b"/sd/seed\x00,\x00\x00,i\x00\x00" + i32(3),  # a comma in the padding
        b"",
        bundle(0, message("/sd/delta", 0.5), message("/sd/status")),
    ]
    corpus += [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40))) for _ in range(200)]
    corpus += [b"/sd/" + bytes(rng.choice(b"ab,\x00") for _ in range(12)) + b"\x00" * 4 for _ in range(200)]
    cached = [srv._coalesce_key(d) for d in corpus]
    plain = [_signature_key(srv, d) for d in corpus]
    for i in range(len(corpus)):
        for j in range(len(corpus)):
            assert (cached[i] == cached[j]) == (plain[i] == plain[j]), (corpus[i], corpus[j])
    for n in range(MAX_HEADERS + 10):
        srv._coalesce_key(message(f"/made/up/{n}", 1.0))
    assert len(srv._keys._headers) <= MAX_HEADERS
