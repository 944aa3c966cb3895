"""Unit tests of the search scheduler (caclient._search) with an injected clock.

Pure: no sockets, no threads, no sleeping.  Datagrams are parsed back with
caproto's datagram reader.
"""

from __future__ import annotations

import itertools
from collections import Counter

import caproto
import pytest
from caproto._commands import read_datagram

from caclient import _proto
from caclient._search import SearchScheduler

MIN = 0.032
ADDR = ("127.0.0.1", 5064)


def parse(datagram: bytes) -> list[tuple[str, int]]:
    """(name, search id) of each search in *datagram*, checking its framing."""
    assert len(datagram) <= _proto.MAX_UDP_PAYLOAD
    commands = read_datagram(datagram, ADDR, caproto.CLIENT)
    assert isinstance(commands[0], caproto.VersionRequest)
    assert commands[0].version == _proto.MINOR_VERSION
    assert len(commands) >= 2, "a datagram without searches"
    out = []
    for cmd in commands[1:]:
        assert isinstance(cmd, caproto.SearchRequest)
        assert cmd.reply == caproto.NO_REPLY
        assert cmd.version == _proto.MINOR_VERSION
        assert cmd.header.parameter1 == cmd.header.parameter2 == cmd.cid
        out.append((cmd.name, cmd.cid))
    return out


def sent(datagrams: list[bytes]) -> list[str]:
    return [name for d in datagrams for name, _ in parse(d)]


def ids(datagrams: list[bytes]) -> dict[str, int]:
    return {name: sid for d in datagrams for name, sid in parse(d)}


def send_times(sched: SearchScheduler, name: str, until: float) -> list[float]:
    """Drive *sched* from deadline to deadline; the times *name* went out."""
    times = []
    while True:
        t = sched.next_deadline()
        if t is None or t > until:
            return times
        if name in sent(sched.datagrams(t)):
            times.append(t)


# ---------------------------------------------------------------- basics
def test_empty() -> None:
    s = SearchScheduler()
    assert s.next_deadline() is None
    assert s.datagrams(0.0) == []
    assert len(s) == 0


def test_new_names_go_out_immediately() -> None:
    s = SearchScheduler()
    s.request(["a", "b:c", "XF:31IDA-OP{Tbl-Ax:X1}Mtr.RBV"], now=100.0)
    assert len(s) == 3 and "a" in s and "zz" not in s
    assert s.next_deadline() == 100.0
    out = s.datagrams(100.0)
    assert len(out) == 1
    got = ids(out)
    assert sorted(got) == sorted(["a", "b:c", "XF:31IDA-OP{Tbl-Ax:X1}Mtr.RBV"])
    assert len(set(got.values())) == 3
    for name, sid in got.items():
        assert s.name_of(sid) == name
    # nothing more until the first retry
    assert s.datagrams(100.0) == []
    assert s.next_deadline() == pytest.approx(100.0 + MIN)


def test_datagram_bytes_match_proto() -> None:
    s = SearchScheduler()
    s.request(["one", "two"], now=0.0)
    (d,) = s.datagrams(0.0)
    got = ids([d])
    assert d == _proto.version(0) + _proto.search(b"one", got["one"]) + _proto.search(b"two", got["two"])


@pytest.mark.parametrize("bad", ["", "x" * 2000, "a\0b", "\u20ac"])
def test_invalid_name_raises(bad: str) -> None:
    s = SearchScheduler()
    with pytest.raises(ValueError, match="invalid PV name"):
        s.request([bad], now=0.0)
    assert len(s) == 0
    assert s.datagrams(0.0) == []


def test_invalid_name_does_not_drop_the_others() -> None:
    """One bad name in a batch is reported; the valid names around it are still searched."""
    s = SearchScheduler()
    with pytest.raises(ValueError, match="invalid PV name ''"):
        s.request(["good1", "", "good2"], now=0.0)
    assert sorted(sent(s.datagrams(0.0))) == ["good1", "good2"]


def test_longest_valid_name_fits_a_datagram() -> None:
    s = SearchScheduler()
    name = "n" * (_proto.MAX_UDP_PAYLOAD - 64)
    s.request([name, "short"], now=0.0)
    out = s.datagrams(0.0)
    assert sorted(sent(out)) == sorted([name, "short"])


# ---------------------------------------------------------------- many names
def test_datagrams_are_full_and_bounded() -> None:
    s = SearchScheduler(burst=1000)
    names = [f"PV:{i}:" + "x" * (i % 50) for i in range(2000)]
    s.request(names, now=0.0)
    out = s.datagrams(0.0)
    counts = Counter(sent(out))
    assert set(counts) == set(names) and set(counts.values()) == {1}
    for d in out[:-1]:
        # a datagram is only closed when the next search does not fit
        assert len(d) + 16 + 8 > _proto.MAX_UDP_PAYLOAD - 80
    assert s.next_deadline() == pytest.approx(MIN)


def test_ten_thousand_names_paced_not_dropped() -> None:
    s = SearchScheduler()
    names = [f"SR:C{i // 100:02d}-MG{{PS:{i}}}I-SP" for i in range(10_000)]
    s.request(names, now=0.0)
    first_round: Counter[str] = Counter()
    calls = 0
    t = 0.0
    prev = None
    while len(first_round) < len(names):
        out = s.datagrams(t)
        calls += 1
        assert 1 <= len(out) <= s.burst
        got = sent(out)
        assert len(got) == len(set(got))
        for name in got:
            # no name goes out a second time before every name went out once
            assert name not in first_round or len(first_round) == len(names), name
            first_round[name] += 1
        nxt = s.next_deadline()
        assert nxt is not None
        if len(first_round) < len(names):
            assert nxt == pytest.approx(t + s.pace)  # deferred by pace
        prev, t = t, nxt
        assert calls < 100
    assert prev is not None
    assert calls > 1  # the burst limit did defer some
    assert set(first_round) == set(names)
    # the second round: every name again, once, with no call over the burst
    second: Counter[str] = Counter()
    while len(second) < len(names):
        t = s.next_deadline()
        assert t is not None
        out = s.datagrams(t)
        assert len(out) <= s.burst
        second.update(sent(out))
        assert max(second.values()) == 1
    assert set(second) == set(names)


@pytest.mark.parametrize("burst", [1, 3])
def test_burst_and_pace_parameters(burst: int) -> None:
    s = SearchScheduler(burst=burst, pace=0.5)
    s.request([f"name{i:04d}" for i in range(500)], now=10.0)
    out = s.datagrams(10.0)
    assert len(out) == burst
    assert s.next_deadline() == pytest.approx(10.5)
    assert s.datagrams(10.4) == []
    assert len(s.datagrams(10.5)) == burst


# ---------------------------------------------------------------- backoff
def test_backoff_doubles_to_the_cap() -> None:
    s = SearchScheduler(min_interval=0.01, max_interval=1.0)
    s.request(["pv"], now=0.0)
    times = send_times(s, "pv", until=10.0)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    expected = [min(0.01 * 2**k, 1.0) for k in range(len(gaps))]
    assert gaps == pytest.approx(expected)
    assert gaps[-3:] == pytest.approx([1.0, 1.0, 1.0])
    assert times[0] == 0.0


def test_backoff_default_cap() -> None:
    s = SearchScheduler()
    s.request(["pv"], now=0.0)
    times = send_times(s, "pv", until=2000.0)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert max(gaps) == pytest.approx(300.0)
    assert gaps[:3] == pytest.approx([MIN, 2 * MIN, 4 * MIN])


# ---------------------------------------------------------------- answers, cancel, restart
def test_answered_stops_a_name() -> None:
    s = SearchScheduler()
    s.request(["a", "b"], now=0.0)
    got = ids(s.datagrams(0.0))
    assert s.answered(got["a"]) == "a"
    assert "a" not in s and len(s) == 1
    assert s.answered(got["a"]) is None
    assert s.answered(999_999) is None
    assert s.name_of(got["a"]) is None
    seen: Counter[str] = Counter()
    while (t := s.next_deadline()) is not None and t < 100.0:
        seen.update(sent(s.datagrams(t)))
    assert seen["a"] == 0
    assert seen["b"] > 5  # b still searched


def test_answer_after_rerequest_gets_new_id() -> None:
    s = SearchScheduler()
    s.request(["a"], now=0.0)
    first = ids(s.datagrams(0.0))["a"]
    s.answered(first)
    s.request(["a"], now=1.0)
    second = ids(s.datagrams(1.0))["a"]
    assert second != first
    assert s.answered(first) is None
    assert s.answered(second) == "a"


def test_cancel() -> None:
    s = SearchScheduler()
    s.request(["a", "b"], now=0.0)
    s.cancel("a")
    s.cancel("never-requested")
    assert "a" not in s
    assert sent(s.datagrams(0.0)) == ["b"]
    s.cancel("b")
    assert s.next_deadline() is None
    assert s.datagrams(1000.0) == []


def test_rerequest_restarts_at_once() -> None:
    s = SearchScheduler()
    s.request(["a"], now=0.0)
    times = send_times(s, "a", until=5.0)
    assert len(times) > 5
    due = s.next_deadline()
    assert due is not None and due > 6.0
    s.request(["a"], now=6.0)
    assert s.next_deadline() == 6.0
    assert sent(s.datagrams(6.0)) == ["a"]
    assert s.next_deadline() == pytest.approx(6.0 + MIN)  # interval restarted too


def test_new_names_reset_old_ones_but_not_sooner_than_min_interval() -> None:
    s = SearchScheduler()
    s.request(["old"], now=0.0)
    send_times(s, "old", until=5.0)
    old_due = s.next_deadline()
    assert old_due is not None and old_due > 8.0
    s.request(["new"], now=7.0)
    assert sent(s.datagrams(7.0)) == ["new"]  # old not sent right now
    assert s.datagrams(7.0 + MIN * 0.99) == []
    assert sorted(sent(s.datagrams(7.0 + MIN))) == ["new", "old"]
    # old's backoff restarted from the minimum
    times = send_times(s, "old", until=7.0 + MIN + 1.0)
    gaps = [b - a for a, b in itertools.pairwise([7.0 + MIN, *times])]
    assert gaps[:3] == pytest.approx([MIN, 2 * MIN, 4 * MIN])


def test_new_names_do_not_delay_an_old_name_due_sooner() -> None:
    s = SearchScheduler()
    s.request(["old"], now=0.0)
    s.datagrams(0.0)
    s.datagrams(MIN)  # old next due at 3 * MIN
    s.request(["new"], now=2.5 * MIN)
    assert sent(s.datagrams(2.5 * MIN)) == ["new"]
    assert s.next_deadline() == pytest.approx(3 * MIN)
    assert sent(s.datagrams(3 * MIN)) == ["old"]


def test_reset_beacon_anomaly() -> None:
    s = SearchScheduler()
    s.request(["a", "b"], now=0.0)
    send_times(s, "a", until=50.0)
    due = s.next_deadline()
    assert due is not None and due > 60.0
    s.reset(55.0)
    assert s.datagrams(55.0) == []
    assert s.next_deadline() == pytest.approx(55.0 + MIN)
    assert sorted(sent(s.datagrams(55.0 + MIN))) == ["a", "b"]
    assert s.next_deadline() == pytest.approx(55.0 + 2 * MIN)  # restarted from the minimum


def test_reset_leaves_fresh_names_alone() -> None:
    s = SearchScheduler()
    s.request(["a"], now=0.0)
    s.reset(0.0)
    assert s.next_deadline() == 0.0
    assert sent(s.datagrams(0.0)) == ["a"]


def test_next_deadline_skips_stale_entries() -> None:
    s = SearchScheduler()
    s.request(["a"], now=0.0)
    s.request(["b"], now=1.0)
    assert s.next_deadline() == 0.0
    s.cancel("a")
    assert s.next_deadline() == 1.0
    got = ids(s.datagrams(1.0))
    assert list(got) == ["b"]
    assert s.next_deadline() == pytest.approx(1.0 + MIN)
    s.answered(got["b"])
    assert s.next_deadline() is None


def test_next_deadline_is_the_earliest() -> None:
    s = SearchScheduler()
    for i, t in enumerate([5.0, 1.0, 3.0]):
        s.request([f"n{i}"], now=t)
    assert s.next_deadline() == 1.0
    out = s.datagrams(10.0)
    assert sorted(sent(out)) == ["n0", "n1", "n2"]
    assert s.next_deadline() == pytest.approx(10.0 + MIN)
