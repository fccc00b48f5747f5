"""The inbox between reading and parsing: newest per key, bounded per client, clients in turns."""

from __future__ import annotations

from bridge.control.osc import MAX_PENDING, OscServer
from bridge.control.osc_inbox import Inbox
from bridge.control.store import ParamStore

from .osc_helpers import bundle, message


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
