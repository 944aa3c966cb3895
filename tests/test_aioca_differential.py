"""Differential tests: the same coroutine through real aioca and through compat.aioca.

Each scenario below runs once in real aioca (a child process, see
``aioca_oracle.py``) and once in compat.aioca in this process, against the
same EPICS C IOC.  Values with their exact types, augmented attributes,
``CANothing`` contents, exceptions, callback arguments and what is printed
must be identical.  Scenarios in ``DELIBERATE`` are the documented
differences (``docs/aioca.rst``): for those the test asserts that the
results *do* differ, so the list stays true.

Scenarios write before they read anything writable; time stamps are kept
only for records nobody writes (``record(..., times=False)`` drops them).
"""

from __future__ import annotations

from typing import Any

import pytest
from aioca_oracle import execute, restart_helpers
from aioca_support import aioca_ioc, point_at, run_aioca
from compat_support import differences, restored

import compat.aioca
from caclient.testing import EpicsIOC, IOCHandle

FORMATS = "(aioca.FORMAT_RAW, aioca.FORMAT_TIME, aioca.FORMAT_CTRL)"
S: dict[str, str] = {}

# -- caget: record types x formats x datatypes ---------------------------------------------------------
for name in (
    "ai",
    "bi",
    "bo",
    "longin",
    "stringin",
    "mbbi",
    "enum",
    "calc",
    "big",
    "alarm",
    "ro",
    "nostr",
    "longout",
    "noprec",
):
    S[f"caget-{name}"] = f"""
for fmt in {FORMATS}:
    for dt in (None, str, float, int, bytes, aioca.DBR_STRING, aioca.DBR_SHORT, aioca.DBR_FLOAT, aioca.DBR_ENUM,
               aioca.DBR_CHAR, aioca.DBR_LONG, aioca.DBR_DOUBLE, aioca.DBR_ENUM_STR, np.int16, np.uint8):
        record((fmt, str(dt)), await aioca.caget(P + '{name}', datatype=dt, format=fmt))
record('stsack', await aioca.caget(P + '{name}', datatype=aioca.DBR_STSACK_STRING))
record('class', await aioca.caget(P + '{name}', datatype=aioca.DBR_CLASS_NAME, format=aioca.FORMAT_CTRL))
"""

ARRAYS = {
    "wf": "[1.5, 2.5, 3.25]",
    "shortwf": "[1, -2, 3]",
    "longwf": "np.array([10, 20, 30, 40], dtype=np.int32)",
    "floatwf": "[1.1, 2.2]",
    "ucharwf": "[200, 3, 0, 7]",
    "strwf": "['a', 'bb', 'ccc']",
    "chwf": "np.frombuffer(b'hello there', dtype=np.uint8)",
}
for name, value in ARRAYS.items():
    S[f"caget-array-{name}"] = f"""
record('put', await aioca.caput(P + '{name}', {value}, wait=True))
for fmt in {FORMATS}:
    for count in (0, -1, 2, 1):
        record((fmt, count), await aioca.caget(P + '{name}', format=fmt, count=count), times=False)
for dt in (str, float, int, aioca.DBR_CHAR_STR, aioca.DBR_CHAR_BYTES, aioca.DBR_CHAR_UNICODE, np.float32):
    record(str(dt), await aioca.caget(P + '{name}', datatype=dt), times=False)
"""

S["caget-big-and-linked"] = """
record('put', await aioca.caput(P + 'wf', [4.0, 5.0, 6.0, 7.0], wait=True))
for fmt in (aioca.FORMAT_RAW, aioca.FORMAT_CTRL):
    record(('subarr', fmt), await aioca.caget(P + 'subarr', format=fmt), times=False)
    record(('wf1m', fmt), await aioca.caget(P + 'wf1m', format=fmt, count=3))
record('wf1m full', (lambda v: (type(v).__name__, v.dtype.str, v.shape, v.element_count))(
    await aioca.caget(P + 'wf1m', count=-1, timeout=30)))
record('class names', await aioca.caget([P + n for n in ('subarr', 'wf1m', 'lstr', 'slow:delay')],
                                          datatype=aioca.DBR_CLASS_NAME))
"""

S["caget-text"] = """
text = 'a string longer than forty characters, ' * 2
record('put lstr', await aioca.caput(P + 'lstr.VAL$', text, datatype=aioca.DBR_CHAR_STR, wait=True))
record('lstr', await aioca.caget(P + 'lstr.VAL$', format=aioca.FORMAT_TIME), times=False)
record('lstr raw', await aioca.caget(P + 'lstr.VAL'), times=False)
record('lstr chars', await aioca.caget(P + 'lstr.VAL$', datatype=aioca.DBR_CHAR))
record('put', await aioca.caput(P + 'chwf', 'text as chars', datatype=aioca.DBR_CHAR_STR, wait=True))
for dt in (aioca.DBR_CHAR_STR, aioca.DBR_CHAR_BYTES, aioca.DBR_CHAR_UNICODE, None):
    record(str(dt), await aioca.caget(P + 'chwf', datatype=dt))
record('put empty', await aioca.caput(P + 'emptywf', [], wait=True))
record('empty', await aioca.caget(P + 'emptywf', format=aioca.FORMAT_CTRL))
record('empty strings', await aioca.caget(P + 'emptystr', format=aioca.FORMAT_TIME))
"""

S["caget-raw-strings"] = """
record('put', await aioca.caput(P + 'str', b'caf\\xc3\\xa9 \\xff', wait=True))
for dt in (None, str, bytes, aioca.DBR_STRING):
    try:
        record(str(dt), await aioca.caget(P + 'str', datatype=dt))
    except Exception as exc:
        record(str(dt), exc)
record('array put', await aioca.caput(P + 'strwf', [b'\\xe2\\x82\\xac', b'ok'], wait=True))
for dt in (None, str, bytes):
    for fmt in (aioca.FORMAT_RAW, aioca.FORMAT_CTRL):
        record((str(dt), fmt), await aioca.caget(P + 'strwf', datatype=dt, format=fmt), times=False)
record('stsack', await aioca.caget(P + 'str', datatype=aioca.DBR_STSACK_STRING))
"""

S["caget-enums"] = """
record('put', await aioca.caput(P + 'mbbo', 'three', wait=True))
for dt in (None, aioca.DBR_ENUM_STR, str, int, aioca.DBR_STRING):
    for fmt in (aioca.FORMAT_RAW, aioca.FORMAT_CTRL):
        record((str(dt), fmt), await aioca.caget(P + 'mbbo', datatype=dt, format=fmt), times=False)
record('num', await aioca.caput(P + 'mbbo', 1, wait=True))
record('back', await aioca.caget(P + 'mbbo', datatype=aioca.DBR_ENUM_STR))
"""

S["caget-lists"] = """
names = [P + 'ai', P + 'stringin', P + 'mbbi', P + 'longin']
record('list', await aioca.caget(names))
record('tuple', await aioca.caget(tuple(names), format=aioca.FORMAT_TIME))
record('ctrl', await aioca.caget(names, format=aioca.FORMAT_CTRL, datatype=float))
record('empty', await aioca.caget([]))
"""

S["caget-bad-datatype"] = """
for kw in ({'datatype': complex}, {'datatype': 'nonsense'}, {'datatype': 14}, {'datatype': aioca.DBR_PUT_ACKT},
           {'format': 7}, {'datatype': object}):
    try:
        record(str(kw), await aioca.caget(P + 'ai', **kw))
    except Exception as exc:
        record(str(kw), exc)
    record(str(kw) + ' nothrow', await aioca.caget(P + 'ai', throw=False, **kw))
"""

# -- timeouts and failures ------------------------------------------------------------------------------
S["timeouts"] = """
record('nothrow', await aioca.caget(P + 'nope', timeout=0.3, throw=False))
try:
    await aioca.caget(P + 'nope', timeout=0.3)
except aioca.CANothing as exc:
    record('raised', exc)
    record('cause', type(exc.__cause__).__name__)
record('deadline', await aioca.caget(P + 'nope', timeout=(time.time() + 0.3,), throw=False))
record('past deadline', await aioca.caget(P + 'nope', timeout=(time.time() - 1,), throw=False))
record('none', await aioca.caget(P + 'ai', timeout=None))
record('list nothrow', await aioca.caget([P + 'nope', P + 'ai'], timeout=0.3, throw=False))
try:
    await aioca.caget([P + 'ai', P + 'nope'], timeout=0.3)
except aioca.CANothing as exc:
    record('list raised', exc)
record('put', await aioca.caput(P + 'nope', 1, timeout=0.3, throw=False))
record('connect', await aioca.connect(P + 'nope', timeout=0.3, throw=False))
record('cainfo', await aioca.cainfo(P + 'nope', timeout=0.3, throw=False))
record('slow', await aioca.caput(P + 'slow', 2, wait=True, timeout=0.05, throw=False))
"""

S["put-failures"] = """
async def attempt(label, *args, **kw):
    try:
        record(label, await aioca.caput(*args, **kw))
    except Exception as exc:
        record(label, exc)
    try:
        record(label + ' nothrow', await aioca.caput(*args, throw=False, **kw))
    except Exception as exc:
        record(label + ' nothrow raised', exc)
await attempt('ro', P + 'ro', 3)
await attempt('ro wait', P + 'ro', 3, wait=True)
await attempt('badcount', P + 'ao', [1, 2])
await attempt('object', P + 'ao', object())
await attempt('2d', P + 'wf', [[1, 2], [3, 4]])
await attempt('not a number', P + 'ao', 'abc', datatype=float)
await attempt('putfail', P + 'ao', 'abc', wait=True)
await attempt('bad enum', P + 'mbbo', 'seven', wait=True)
await attempt('overflow', P + 'shortwf', [70000])
await attempt('bad datatype', P + 'ao', 1, datatype=complex)
await attempt('chars bytes', P + 'chwf', b'xyz', datatype=aioca.DBR_CHAR_STR)
await attempt('list mismatch', [P + 'ao', P + 'lo'], [1, 2, 3])
await attempt('long str', P + 'stringout', 'x' * 45, wait=True)
await attempt('40 chars', P + 'stringout', 'y' * 40)
await attempt('39 chars', P + 'stringout', 'z' * 39, wait=True)
record('back', await aioca.caget(P + 'stringout'))
await attempt('put callback', P + 'ao', 1.0, callback=print)
await attempt('lstr as string', P + 'lstr.VAL', 'a string longer than forty characters ' * 2, wait=True)
"""

S["puts"] = """
record('scalar', await aioca.caput(P + 'ao', 4.5))
record('wait', await aioca.caput(P + 'ao', 5.5, wait=True))
record('back', await aioca.caget(P + 'ao'))
record('str to number', await aioca.caput(P + 'ao', '6.25', wait=True))
record('back2', await aioca.caget(P + 'ao'))
record('int', await aioca.caput(P + 'lo', 12.7, wait=True))
record('back3', await aioca.caget(P + 'lo'))
record('list', await aioca.caput([P + 'ao', P + 'lo'], [1.25, 3], wait=True))
record('repeat', await aioca.caput([P + 'ao', P + 'lo'], 7, wait=True))
record('repeat list', await aioca.caput([P + 'wf', P + 'floatwf'], [1, 2], repeat_value=True, wait=True))
record('back5', await aioca.caget([P + 'ao', P + 'lo', P + 'wf', P + 'floatwf']))
record('strings', await aioca.caput([P + 'stringout', P + 'str'], 'same', wait=True))
record('back6', await aioca.caget([P + 'stringout', P + 'str']))
record('unicode', await aioca.caput(P + 'stringout', 'caf\\u00e9', wait=True))
record('back7', await aioca.caget(P + 'stringout'))
record('lstr', await aioca.caput(P + 'lstr.VAL$', 'a string longer than forty characters ' * 2,
                                 datatype=aioca.DBR_CHAR_STR, wait=True))
record('back8', await aioca.caget(P + 'lstr.VAL$'), times=False)
record('ackt', await aioca.caput(P + 'ao', 0, datatype=aioca.DBR_PUT_ACKT, wait=True))
record('acks', await aioca.caput(P + 'ao', 2, datatype=aioca.DBR_PUT_ACKS, wait=True))
record('stsack', await aioca.caget(P + 'ao', datatype=aioca.DBR_STSACK_STRING))
record('empty', await aioca.caput(P + 'emptywf', [], wait=True))
record('typed', await aioca.caput(P + 'wf', [1.5, 2.5], datatype=np.int16, wait=True))
record('back9', await aioca.caget(P + 'wf'), times=False)
"""

# -- connect, cainfo, channel infos ------------------------------------------------------------------
S["connect-cainfo"] = """
record('connect', await aioca.connect(P + 'ai'))
record('connect list', await aioca.connect([P + 'ai', P + 'bi']))
record('connect nowait', await aioca.connect(P + 'longin', wait=False))
record('connect tuple', await aioca.connect((P + 'nope', P + 'ai'), timeout=0.3, throw=False))
info = await aioca.cainfo(P + 'ai')
record('info', str(info))
record('attrs', (info.ok, info.name, info.state, info.host, info.read, info.write, info.count, info.datatype))
record('ro', str(await aioca.cainfo(P + 'ro')))
record('wf', str(await aioca.cainfo(P + 'wf')))
record('nowait', str(await aioca.cainfo(P + 'nope2', wait=False)))
record('list', [str(i) for i in await aioca.cainfo([P + 'ai', P + 'strwf', P + 'mbbi'])])
record('strings', (aioca.CAInfo.state_strings, aioca.CAInfo.datatype_strings))
record('channels', [(c.name, c.connected, c.subscriber_count) for c in aioca.get_channel_infos()])
"""

S["constants"] = """
record('all', sorted(aioca.__all__))
record('version', aioca.__version__)
record('values', [getattr(aioca, n) for n in sorted(aioca.__all__) if n.isupper() or n.startswith('FORMAT')])
record('extra', aioca.ca_extra_fields)
n = aioca.CANothing('pv')
record('nothing', (n, repr(n), str(n), bool(n), n.ok, n.errorcode, n.name, n.args))
f = aioca.CANothing('pv', 80)
record('failure', (f, repr(f), str(f), bool(f), f.ok, f.args, isinstance(f, Exception)))
record('disconn', str(aioca.CANothing('x', 192)))
"""

# -- camonitor -------------------------------------------------------------------------------------------
S["monitor-first"] = """
for fmt in (aioca.FORMAT_RAW, aioca.FORMAT_TIME, aioca.FORMAT_CTRL):
    got = asyncio.Queue()
    sub = aioca.camonitor(P + 'ai', got.put_nowait, format=fmt)
    record(('first', fmt), await asyncio.wait_for(got.get(), 5))
    record(('state', fmt), (sub.state, sub.name, sub.dropped_callbacks, sub.all_updates, sub.notify_disconnect))
    sub.close()
    record(('closed', fmt), sub.state)
got = asyncio.Queue()
subs = aioca.camonitor([P + 'stringin', P + 'mbbi', P + 'longin'], lambda v, i: got.put_nowait((v, i)))
seen = sorted([await asyncio.wait_for(got.get(), 5) for _ in range(3)], key=lambda vi: vi[1])
record('list', seen)
record('list types', [type(s).__name__ for s in subs])
record('infos', sorted((c.name, c.connected, c.subscriber_count) for c in aioca.get_channel_infos()))
for s in subs:
    s.close()
record('after close', sorted((c.name, c.subscriber_count) for c in aioca.get_channel_infos()))
"""

S["monitor-updates"] = """
await aioca.caput(P + 'cb', 0.5, wait=True)
got = asyncio.Queue()
async def cb(v):
    await got.put(v)
sub = aioca.camonitor(P + 'cb', cb, format=aioca.FORMAT_TIME, datatype=float)
record('first', await asyncio.wait_for(got.get(), 5), times=False)
for x in (1.5, 2.5, 3.5):
    await aioca.caput(P + 'cb', x, wait=True)
    record(('update', x), await asyncio.wait_for(got.get(), 5), times=False)
sub.close()
await aioca.caput(P + 'cb', 9, wait=True)
await asyncio.sleep(0.2)
record('after close', got.qsize())
strs = asyncio.Queue()
sub = aioca.camonitor(P + 'cb', strs.put_nowait, datatype=str, all_updates=True, events=aioca.DBE_VALUE)
record('str first', await asyncio.wait_for(strs.get(), 5))
await aioca.caput(P + 'cb', 4.25, wait=True)
record('str update', await asyncio.wait_for(strs.get(), 5))
sub.close()
"""

S["monitor-types"] = """
await aioca.caput(P + 'wf', [1.0, 2.0, 3.0], wait=True)
await aioca.caput(P + 'chwf', 'monitored', datatype=aioca.DBR_CHAR_STR, wait=True)
cases = [('mbbi', {'format': aioca.FORMAT_CTRL}), ('mbbi', {'datatype': aioca.DBR_ENUM_STR}),
         ('wf', {'count': -1}), ('wf', {'count': 2, 'format': aioca.FORMAT_TIME}),
         ('chwf', {'datatype': aioca.DBR_CHAR_STR}), ('strwf', {'datatype': bytes}),
         ('longin', {'events': aioca.DBE_PROPERTY, 'format': aioca.FORMAT_CTRL})]
for name, kw in cases:
    got = asyncio.Queue()
    sub = aioca.camonitor(P + name, got.put_nowait, **kw)
    record((name, str(kw)), await asyncio.wait_for(got.get(), 5), times=False)
    sub.close()
got = asyncio.Queue()
async def each(value, index):
    await got.put((value, index))
subs = aioca.camonitor([P + 'ai', P + 'stringin'], each, format=aioca.FORMAT_TIME)
record('coroutine list', sorted([await asyncio.wait_for(got.get(), 5) for _ in range(2)], key=lambda vi: vi[1]))
for sub in subs:
    sub.close()
await aioca.caput(P + 'cb', 0, wait=True)
every = asyncio.Queue()
sub = aioca.camonitor(P + 'cb', every.put_nowait, all_updates=True)
record('all first', await asyncio.wait_for(every.get(), 5))
await aioca.caput([P + 'cb'] * 5, [1, 2, 3, 4, 5], wait=True)
await aioca.caput(P + 'cb', 6, wait=True)
seen = [float(await asyncio.wait_for(every.get(), 5)) for _ in range(6)]
record('all updates', (seen, sub.dropped_callbacks))
sub.close()
"""

S["monitor-raises"] = """
await aioca.caput(P + 'cb', 0, wait=True)
got = []
second = asyncio.Event()
async def cb(v):
    got.append(float(v))
    if len(got) == 1:
        await aioca.caput(P + 'cb', 11, wait=True)
    elif len(got) == 2:
        second.set()
        raise RuntimeError('callback failed')
sub = aioca.camonitor(P + 'cb', cb)
await asyncio.wait_for(second.wait(), 5)
await aioca.caput(P + 'cb', 12, wait=True)
await asyncio.sleep(0.3)
record('state', sub.state)
record('got', len(got))
def plain(v):
    raise ValueError('plain failed')
sub2 = aioca.camonitor(P + 'ai', plain)
for _ in range(50):
    if sub2.state == sub2.CLOSED:
        break
    await asyncio.sleep(0.05)
record('plain state', sub2.state)
"""

S["monitor-connect-timeout"] = """
got = asyncio.Queue()
sub = aioca.camonitor(P + 'nope', got.put_nowait, connect_timeout=0.2)
record('timeout', await asyncio.wait_for(got.get(), 5))
record('state', sub.state)
sub.close()
sub = aioca.camonitor(P + 'nope', got.put_nowait, connect_timeout=(time.time() + 0.2,), notify_disconnect=True)
record('deadline', await asyncio.wait_for(got.get(), 5))
sub.close()
"""

S["monitor-merging"] = """
await aioca.caput(P + 'cb', 0, wait=True)
hold = asyncio.Event()
values = []
async def slow(v):
    values.append(float(v))
    if len(values) == 1:
        await hold.wait()
sub = aioca.camonitor(P + 'cb', slow)
while not values:
    await asyncio.sleep(0.02)
for x in range(20, 26):
    await aioca.caput(P + 'cb', x, wait=True)
await asyncio.sleep(0.3)
hold.set()
for _ in range(100):
    if values[-1] == 25.0:
        break
    await asyncio.sleep(0.02)
record('values', values[1:])
record('dropped', sub.dropped_callbacks)
record('pending', len(sub.pending_values))
sub.close()
"""

DELIBERATE: dict[str, str] = {}


@pytest.fixture(scope="module")
def aioca_results(request: pytest.FixtureRequest) -> dict[str, Any]:
    return run_aioca(aioca_ioc(request.config), S)


def _normalise(result: dict[str, Any]) -> dict[str, Any]:
    out = dict(result)
    out.pop("elapsed", None)
    # Tracebacks name different files; keep the lines aioca itself prints, and the exception.
    # (aioca's tasks may also log "Task exception was never retrieved" whenever they are collected.)
    lines = result["stderr"].splitlines()
    kept = []
    for i, line in enumerate(lines):
        closing = i + 1 < len(lines) and lines[i + 1].startswith("Subscription ") and lines[i + 1].endswith("closed")
        if line.startswith("Subscription ") or closing:
            kept.append(line)
    out["stderr"] = kept
    return out


@pytest.mark.timeout(90)
@pytest.mark.parametrize("scenario", sorted(S))
def test_same_as_aioca(
    scenario: str, aioca_results: dict[str, Any], request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    ioc: IOCHandle = aioca_ioc(request.config)
    point_at(ioc, monkeypatch)
    theirs = _normalise(aioca_results[scenario])
    ours = _normalise(execute(S[scenario], compat.aioca, ioc.prefix))
    diff = differences(theirs, ours, "aioca vs compat.aioca")
    if scenario in DELIBERATE:
        assert diff, f"{scenario} is listed as a deliberate difference but compat.aioca now matches aioca"
    else:
        assert not diff, "\n".join(diff)


# -- the same against caproto's pure-Python server ----------------------------------------------------
CAPROTO: dict[str, str] = {
    "scalars": f"""
for name, value in (('ao', 1.25), ('long', 12), ('str', 'text'), ('enum', 'two')):
    record(name + ' put', await aioca.caput(P + name, value, wait=True))
for name in ('ai', 'ao', 'long', 'str', 'enum', 'ro'):
    for fmt in {FORMATS}:
        for dt in (None, str, float, aioca.DBR_ENUM_STR):
            record((name, fmt, str(dt)), await aioca.caget(P + name, format=fmt, datatype=dt), times=False)
""",
    "arrays": f"""
record('wf put', await aioca.caput(P + 'wf', [1.5, 2.5, 3.5], wait=True))
record('chwf put', await aioca.caput(P + 'chwf', 'caproto', datatype=aioca.DBR_CHAR_STR, wait=True))
for name in ('wf', 'chwf'):
    for fmt in {FORMATS}:
        for count in (0, -1, 2):
            record((name, fmt, count), await aioca.caget(P + name, format=fmt, count=count), times=False)
record('chars', await aioca.caget(P + 'chwf', datatype=aioca.DBR_CHAR_STR))
""",
    "failures-and-info": """
record('ro', await aioca.caput(P + 'ro', 2.0, wait=True, throw=False))
record('badcount', await aioca.caput(P + 'ao', [1, 2], throw=False))
record('slow', await aioca.caput(P + 'slow', 1.0, wait=True, timeout=10))
record('info', [str(i) for i in await aioca.cainfo([P + 'ai', P + 'wf', P + 'ro', P + 'enum'])])
record('unknown', await aioca.caget(P + 'nope', timeout=0.3, throw=False))
""",
    "monitor": """
await aioca.caput(P + 'ao', 0.5, wait=True)
got = asyncio.Queue()
sub = aioca.camonitor(P + 'ao', got.put_nowait, format=aioca.FORMAT_CTRL)
record('first', await asyncio.wait_for(got.get(), 5), times=False)
await aioca.caput(P + 'ao', 2.5, wait=True)
record('update', await asyncio.wait_for(got.get(), 5), times=False)
sub.close()
""",
}


@pytest.fixture(scope="module")
def aioca_caproto_results(caproto_ioc: IOCHandle) -> dict[str, Any]:
    with restored(caproto_ioc):
        return run_aioca(caproto_ioc, CAPROTO)


@pytest.mark.timeout(90)
@pytest.mark.parametrize("scenario", sorted(CAPROTO))
def test_same_as_aioca_on_caproto_server(
    scenario: str, caproto_ioc: IOCHandle, aioca_caproto_results: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    point_at(caproto_ioc, monkeypatch)
    with restored(caproto_ioc):
        ours = _normalise(execute(CAPROTO[scenario], compat.aioca, caproto_ioc.prefix))
    theirs = _normalise(aioca_caproto_results[scenario])
    diff = differences(theirs, ours, "aioca vs compat.aioca")
    assert not diff, "\n".join(diff)


# -- an IOC restart with monitors open (each side restarts an IOC of its own) ---------------------------
RESTART: dict[str, str] = {
    "notify-disconnect": """
told = asyncio.Queue()
quiet = asyncio.Queue()
sub = aioca.camonitor(P + 'ai', told.put_nowait, notify_disconnect=True, format=aioca.FORMAT_TIME)
other = aioca.camonitor(P + 'ai', quiet.put_nowait)
record('first', await asyncio.wait_for(told.get(), 10), times=False)
record('quiet first', await asyncio.wait_for(quiet.get(), 10))
await stop_ioc()
record('lost', await asyncio.wait_for(told.get(), 30))
record('info', str(await aioca.cainfo(P + 'ai', wait=False)))
record('during', await aioca.caget(P + 'ai', timeout=0.2, throw=False))
record('channels', [(c.name, c.connected, c.subscriber_count) for c in aioca.get_channel_infos()])
await start_ioc()
record('back', await asyncio.wait_for(told.get(), 60), times=False)
record('quiet back', await asyncio.wait_for(quiet.get(), 10))
record('nothing else', (told.qsize(), quiet.qsize()))
record('read', await aioca.caget(P + 'ai', format=aioca.FORMAT_CTRL))
record('states', (sub.state, other.state, sub.dropped_callbacks))
sub.close()
other.close()
""",
}


@pytest.mark.timeout(240)
def test_same_as_aioca_across_an_ioc_restart(monkeypatch: pytest.MonkeyPatch) -> None:
    theirs = _normalise(run_aioca(None, RESTART)["notify-disconnect"])
    ioc = EpicsIOC()
    ioc.start()
    try:
        point_at(ioc, monkeypatch)
        ours = _normalise(execute(RESTART["notify-disconnect"], compat.aioca, ioc.prefix, restart_helpers(ioc)))
    finally:
        ioc.stop()
    # The prefixes differ (each side has its own IOC): compare with the prefix taken out.
    diff = differences(_unprefixed(theirs), _unprefixed(ours), "aioca vs compat.aioca")
    assert not diff, "\n".join(diff)
    assert theirs["records"][2][1][0] == "CANothing"  # the restart did happen


def _unprefixed(result: dict[str, Any]) -> Any:
    import re

    pickled = repr(result)
    return re.sub(r"[A-Z]\d+:", "P:", re.sub(r"localhost:\d+", "localhost:PORT", pickled))
