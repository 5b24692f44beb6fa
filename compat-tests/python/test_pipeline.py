# Acceptance tests of "requests under load as upstream serves them", on the session cluster:
# 2,000 sets in flight at once to one partition all succeed; two sets (and incr +1, +2) of one
# key sent back to back without waiting are applied in the order sent; and a connection that
# pipelines 500,000 GETs without reading any reply does not make the replica server's memory
# grow without bound (the server stops reading: backpressure), nor keep it after the close.
# Figures go to stdout (-s) and to .logs/pipeline_report.txt.
import os
import select
import socket
import struct
import threading
import time

import pytest
from thrift.Thrift import TMessageType, TType
from thrift.protocol import TBinaryProtocol
from thrift.transport import TTransport

import pgharness
from pgharness import OK, TIMEOUT, Pegasus, PegasusHash, defer
from twisted.python.failure import Failure
from pypegasus.base.ttypes import gpid
from pypegasus.operate.packet import ClientOperator, RrdbGetOperator

CONCURRENT_WRITES = 2000
ORDER_KEYS = 3000
INCR_KEYS = 1000
# Order tests: WINDOW keys (two requests each, spread over the partitions) are sent, then the
# replies of the window are awaited before the next window.
WINDOW = 50
OP_TIMEOUT_MS = 30000

# Backpressure test.
GETS = 500000
GET_VALUE_BYTES = 1000           # every GET reads this value, so every reply carries it
SEND_LIMIT_S = 60.0              # stop sending after this long whatever happens
STALL_S = 3.0                    # no byte accepted for this long: the server stopped reading
HOLD_MIN_S, HOLD_MAX_S = 3.0, 15.0   # connection kept open after sending, for the peak
PEAK_BOUND_MB = 200              # peak RSS - RSS before
AFTER_BOUND_MB = 64              # RSS after close - RSS before
ABORT_MB = 2 * PEAK_BOUND_MB     # stop sending beyond this growth (the test failed anyway)
AFTER_CLOSE_MIN_S, AFTER_CLOSE_MAX_S = 5.0, 10.0

REPORT = os.path.join(pgharness.LOG_DIR, "pipeline_report.txt")
report = pgharness.reporter("pipeline", REPORT)


@pytest.fixture(scope="module", autouse=True)
def report_file():
    with open(REPORT, "w") as f:
        f.write("# pipeline report, %s\n" % time.strftime("%Y-%m-%d %H:%M:%S"))


# --- many requests in flight through pypegasus ----------------------------------------------

def in_flight(calls, timeout=180):
    """Issues every (method, args) of `calls` in one reactor turn, in order, none waiting for
    another's reply (pypegasus writes each request on its session's connection when called),
    and returns what each one's Deferred fired with, in order (a Failure for an exception)."""
    def issue():
        return defer.DeferredList([defer.maybeDeferred(fn, *args) for fn, args in calls],
                                  consumeErrors=True)
    return [r for _ok, r in pgharness.call(issue, timeout=timeout)]


def outcome(r):
    """'OK' for a successful set; otherwise a label of what pypegasus returned."""
    if isinstance(r, tuple) and r and r[0] == OK:
        return "OK"
    if isinstance(r, tuple) and r:
        return "ERR_TIMEOUT (client side)" if r[0] == TIMEOUT else "error %r" % (r[0],)
    if isinstance(r, Failure):
        return "exception %s" % r.type.__name__
    # an error in the reply header arrives as an error_types member
    return getattr(r, "name", None) or repr(r)


def count(labels):
    out = {}
    for l in labels:
        out[l] = out.get(l, 0) + 1
    return ", ".join("%s x%d" % kv for kv in sorted(out.items()))


def read_back(client, keys, want):
    """[(key, got)] for the keys whose GET does not return want(key); 500 gets in flight."""
    bad = []
    for lo in range(0, len(keys), 500):
        chunk = keys[lo:lo + 500]
        got = in_flight([(client.pg.get, (h, s, OP_TIMEOUT_MS)) for h, s in chunk])
        bad += [((h, s), r) for (h, s), r in zip(chunk, got) if r != (OK, want(h, s))]
    return bad


def test_concurrent_sets_to_one_partition(client, hk):
    keys = [(hk, "s%05d" % i) for i in range(CONCURRENT_WRITES)]

    def value(_h, s):
        return ("v-%s-" % s + "x" * 64).encode()
    t0 = time.time()
    res = in_flight([(client.pg.set, (h, s, value(h, s), 0, OP_TIMEOUT_MS)) for h, s in keys])
    took = time.time() - t0
    labels = [outcome(r) for r in res]
    failed = [(k, l) for k, l in zip(keys, labels) if l != "OK"]
    report("(a) %d sets in flight to partition %d: %d failed (%s) in %.2fs"
           % (len(keys), client.hash_key_partition(hk), len(failed), count(labels), took))
    assert not failed, "%d of %d concurrent sets to one partition failed: %s; e.g. %r" % (
        len(failed), len(keys), count(l for _, l in failed), failed[:3])
    bad = read_back(client, keys, value)
    assert not bad, "%d of %d acknowledged sets read back wrong, e.g. %r" % (
        len(bad), len(keys), bad[:3])


def test_two_sets_back_to_back_second_wins(client, hk):
    outcomes, failed, first_won = [], [], []
    t0 = time.time()
    for lo in range(0, ORDER_KEYS, WINDOW):
        idx = range(lo, min(lo + WINDOW, ORDER_KEYS))
        calls = []
        for i in idx:
            calls.append((client.pg.set, ("%s-%05d" % (hk, i), "s", b"first-%d" % i, 0,
                                          OP_TIMEOUT_MS)))
            calls.append((client.pg.set, ("%s-%05d" % (hk, i), "s", b"second-%d" % i, 0,
                                          OP_TIMEOUT_MS)))
        res = in_flight(calls)
        ok_keys = []
        for j, i in enumerate(idx):
            a, b = outcome(res[2 * j]), outcome(res[2 * j + 1])
            outcomes += [a, b]
            if a == "OK" and b == "OK":
                ok_keys.append(("%s-%05d" % (hk, i), "s"))
            else:
                failed.append((i, a, b))
        first_won += read_back(client, ok_keys,
                               lambda h, s: b"second-%d" % int(h.rsplit("-", 1)[1]))
    report("(b) %d keys, set 'first' + set 'second' back to back (windows of %d keys): "
           "set results %s; the first set won for %d keys; %.2fs"
           % (ORDER_KEYS, WINDOW, count(outcomes), len(first_won), time.time() - t0))
    assert not first_won, "%d of %d keys hold the first of two sets sent back to back, e.g. %r" \
        % (len(first_won), ORDER_KEYS, first_won[:3])
    assert not failed, "%d of %d keys had a set fail: %s; e.g. %r" % (
        len(failed), ORDER_KEYS, count(x for f in failed for x in f[1:] if x != "OK"), failed[:3])


# --- raw connections: frames built by pypegasus's own framing classes -------------------------

class IncrOperator(ClientOperator):
    """rrdb.incr (pypegasus3 has no incr): incr_args{1: incr_request{1: key, 2: increment,
    3: expire_ts_seconds}} after the client's THFT header; the body is byte for byte what the
    Go client's codec writes (blob fields tagged STRUCT, as in pypegasus's own requests)."""

    def __init__(self, pid, key, increment):
        ClientOperator.__init__(self, pid, None)
        self.key, self.increment = key, increment

    def send_data(self, oprot, seqid):
        oprot.writeMessageBegin("RPC_RRDB_RRDB_INCR", TMessageType.CALL, seqid)
        oprot.writeStructBegin("incr_args")
        oprot.writeFieldBegin("request", TType.STRUCT, 1)
        oprot.writeStructBegin("incr_request")
        oprot.writeFieldBegin("key", TType.STRUCT, 1)   # a blob field, tagged as the clients do
        oprot.writeBinary(self.key)
        oprot.writeFieldEnd()
        oprot.writeFieldBegin("increment", TType.I64, 2)
        oprot.writeI64(self.increment)
        oprot.writeFieldEnd()
        oprot.writeFieldBegin("expire_ts_seconds", TType.I32, 3)
        oprot.writeI32(0)
        oprot.writeFieldEnd()
        oprot.writeFieldStop()
        oprot.writeStructEnd()
        oprot.writeFieldEnd()
        oprot.writeFieldStop()
        oprot.writeStructEnd()
        oprot.writeMessageEnd()


def encode(op, seqid):
    """One request frame as pypegasus's BaseSession.send_req writes it: the 48-byte THFT header
    (ClientOperator.prepare_thrift_header), then the binary-protocol message."""
    buf = TTransport.TMemoryBuffer()
    op.send_data(TBinaryProtocol.TBinaryProtocol(buf), seqid)
    body = buf.getvalue()
    return bytes(op.prepare_thrift_header(len(body))) + body


class RawConn(object):
    """A plain TCP connection to a replica server (no pegasus client)."""

    def __init__(self, host, port, timeout=30.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()

    def _exact(self, n):
        while len(self.buf) < n:
            data = self.sock.recv(1 << 16)
            if not data:
                raise ConnectionError("connection closed by the server")
            self.buf += data
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_reply(self):
        """(errno, seqid, iprot positioned at the result) of the next reply. A reply frame is
        a 4-byte length (itself included), the error_code string, then the message."""
        n, = struct.unpack(">I", self._exact(4))
        iprot = TBinaryProtocol.TBinaryProtocol(TTransport.TMemoryBuffer(self._exact(n - 4)))
        errno = iprot.readString()
        _name, _mtype, seqid = iprot.readMessageBegin()
        return errno, seqid, iprot

    def close(self):
        self.sock.close()


def read_incr_response(iprot):
    """{'error': .., 'new_value': ..} of an incr_result{0: incr_response{1: error, 2: new_value}}."""
    resp = {}
    iprot.readStructBegin()
    while True:
        _, ftype, fid = iprot.readFieldBegin()
        if ftype == TType.STOP:
            break
        if fid == 0 and ftype == TType.STRUCT:
            iprot.readStructBegin()
            while True:
                _, t2, f2 = iprot.readFieldBegin()
                if t2 == TType.STOP:
                    break
                if f2 == 1 and t2 == TType.I32:
                    resp["error"] = iprot.readI32()
                elif f2 == 2 and t2 == TType.I64:
                    resp["new_value"] = iprot.readI64()
                else:
                    iprot.skip(t2)
                iprot.readFieldEnd()
            iprot.readStructEnd()
        else:
            iprot.skip(ftype)
        iprot.readFieldEnd()
    iprot.readStructEnd()
    return resp


def routing(client):
    """(app_id, partition count, {pidx: (host, port) of the primary}) as pypegasus knows them."""
    def get():
        t = client.pg.table
        return (t.app_id, t.get_partition_count(),
                {p: a.to_host_port() for p, a in t.partition_dict.items()})
    return pgharness.call(get)


def test_incr_back_to_back_one_connection(client, hk):
    app_id, n_parts, primaries = routing(client)
    conns, seq = {}, [0]
    results, failed = {}, []
    t0 = time.time()
    try:
        for lo in range(0, INCR_KEYS, WINDOW):
            idx = range(lo, min(lo + WINDOW, INCR_KEYS))
            frames, pending = {}, {}
            for i in idx:
                h = ("%s-%05d" % (hk, i)).encode()
                pidx = PegasusHash.default_hash(h) % n_parts
                addr = primaries[pidx]
                key = Pegasus.generate_key(h, b"n").data
                for by in (1, 2):
                    seq[0] += 1
                    frames.setdefault(addr, []).append(
                        encode(IncrOperator(gpid(app_id, pidx), bytes(key), by), seq[0]))
                    pending.setdefault(addr, {})[seq[0]] = (i, by)
            for addr, fs in frames.items():
                if addr not in conns:
                    conns[addr] = RawConn(*addr)
                conns[addr].sock.sendall(b"".join(fs))   # +1 and +2 of a key, back to back
            for addr, want in pending.items():
                while want:
                    errno, seqid, iprot = conns[addr].read_reply()
                    i, by = want.pop(seqid)
                    if errno != "ERR_OK":
                        results.setdefault(i, {})[by] = errno
                        continue
                    resp = read_incr_response(iprot)
                    results.setdefault(i, {})[by] = (
                        resp.get("new_value") if resp.get("error") == 0
                        else "error %r" % resp.get("error"))
    finally:
        for c in conns.values():
            c.close()
    got = {i: (r.get(1), r.get(2)) for i, r in results.items()}
    for i, (a, b) in got.items():
        if not isinstance(a, int) or not isinstance(b, int):
            failed.append((i, a, b))
    failed_ids = {f[0] for f in failed}
    wrong = [(i, v) for i, v in sorted(got.items()) if v != (1, 3) and i not in failed_ids]
    report("(c) %d fresh keys, incr +1 then +2 back to back on one connection (windows of %d "
           "keys): results %s; %.2fs"
           % (INCR_KEYS, WINDOW, count(repr(v) for v in got.values()), time.time() - t0))
    assert len(got) == INCR_KEYS
    assert not wrong, "%d of %d keys: incr +1, +2 sent back to back did not return (1, 3): %s" \
        % (len(wrong), INCR_KEYS, count(repr(v) for _, v in wrong))
    assert not failed, "%d of %d keys had an incr fail, e.g. %r" % (len(failed), INCR_KEYS,
                                                                    failed[:3])


# --- backpressure ----------------------------------------------------------------------------

def rss_mb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmRSS for pid %d" % pid)


class RssSampler(threading.Thread):
    """Samples a process's RSS every 50 ms; keeps the peak, and when the peak last rose by a
    megabyte or more (rose_at)."""

    def __init__(self, pid):
        super().__init__(name="rss-sampler", daemon=True)
        self.pid, self.stop = pid, threading.Event()
        self.peak = self.last = self.mark = rss_mb(pid)
        self.rose_at = time.time()

    def run(self):
        while not self.stop.is_set():
            try:
                self.last = rss_mb(self.pid)
            except (OSError, RuntimeError):
                return
            self.peak = max(self.peak, self.last)
            if self.peak >= self.mark + 1.0:
                self.mark, self.rose_at = self.peak, time.time()
            self.stop.wait(0.05)


def send_pipelined(sock, frame, seq_off, total, too_much):
    """Sends `total` copies of `frame` on `sock`, the i-th with sequence id i (at seq_off),
    never reading. Stops early when too_much() (checked between sends), after SEND_LIMIT_S, or
    when the peer accepts nothing for STALL_S (it stopped reading). Returns (frames sent
    completely, seconds, how it ended)."""
    flen, chunk_frames = len(frame), 2000
    chunk = bytearray(frame * chunk_frames)
    sock.setblocking(False)
    t0 = last_progress = time.time()
    sent_bytes, seq, end = 0, 0, "all sent"
    while seq < total and end == "all sent":
        n = min(chunk_frames, total - seq)
        for j in range(n):
            seq += 1
            struct.pack_into(">i", chunk, j * flen + seq_off, seq)
        view = memoryview(chunk)[:n * flen]
        off = 0
        while off < len(view):
            now = time.time()
            if too_much():
                end = "stopped: RSS grew over %d MB" % ABORT_MB
                break
            if now - t0 > SEND_LIMIT_S:
                end = "stopped after %.0fs" % SEND_LIMIT_S
                break
            if now - last_progress > STALL_S:
                end = "server stopped reading (nothing accepted for %.0fs)" % STALL_S
                break
            try:
                k = sock.send(view[off:])
            except BlockingIOError:
                select.select([], [sock], [], 0.1)
                continue
            off += k
            sent_bytes += k
            last_progress = time.time()
    return sent_bytes // flen, time.time() - t0, end


def replica_pid(cluster, port):
    path = os.path.join(cluster.onebox_dir, "replica%d" % (port - cluster.REPLICA_PORT_BASE),
                        "pegasus_server.pid")
    with open(path) as f:
        return int(f.read().strip())


def test_pipelined_gets_without_reading_replies_bounded_memory(cluster, client, hk):
    if not cluster.managed:
        pytest.skip("needs the session's own onebox (the replica server's pid); PEGASUS_META is set")
    value = b"v" * GET_VALUE_BYTES
    assert client.set(hk, "k", value) == (OK, None)
    app_id, n_parts, primaries = routing(client)
    pidx = client.hash_key_partition(hk)
    host, port = primaries[pidx]
    pid = replica_pid(cluster, port)

    # One GET frame as pypegasus builds it, then the offset of its sequence id.
    op = RrdbGetOperator(gpid(app_id, pidx), Pegasus.generate_key(hk, "k"))
    f1, f2 = encode(op, 0x01020304), encode(op, 0x0A0B0C0D)
    flen = len(f1)
    seq_off = f1.index(struct.pack(">i", 0x01020304))
    assert len(f2) == flen and f1[:seq_off] == f2[:seq_off] and f1[seq_off + 4:] == f2[seq_off + 4:]

    time.sleep(1.0)
    before = rss_mb(pid)
    sampler = RssSampler(pid)
    sampler.start()
    conn = RawConn(host, port)
    try:
        frames_sent, send_s, end = send_pipelined(conn.sock, f1, seq_off, GETS,
                                                  lambda: sampler.peak - before > ABORT_MB)
        # Keep the connection open (still reading nothing) until the RSS stops rising.
        t_hold = time.time()
        while time.time() - t_hold < HOLD_MAX_S and sampler.peak - before <= ABORT_MB:
            if time.time() - t_hold >= HOLD_MIN_S and time.time() - sampler.rose_at >= HOLD_MIN_S:
                break
            time.sleep(0.1)
        at_close = sampler.last
    finally:
        conn.close()
    t_close = time.time()
    time.sleep(AFTER_CLOSE_MIN_S)
    while sampler.last - before >= AFTER_BOUND_MB and time.time() - t_close < AFTER_CLOSE_MAX_S:
        time.sleep(0.1)
    after, after_s = sampler.last, time.time() - t_close
    sampler.stop.set()
    sampler.join(timeout=5)
    peak = sampler.peak
    report("(d) %d of %d GETs of a %d-byte value (%d-byte frames) pipelined to %s:%d (pid %d, "
           "primary of partition %d) without reading replies, %.1fs: %s"
           % (frames_sent, GETS, GET_VALUE_BYTES, flen, host, port, pid, pidx, send_s, end))
    report("(d) replica server RSS: before %.1f MB, peak %.1f MB (+%.1f), at close %.1f MB, "
           "%.1fs after close %.1f MB (%+.1f)"
           % (before, peak, peak - before, at_close, after_s, after, after - before))

    # The server still serves (and the following tests of the session can use it).
    deadline = time.time() + 60
    while True:
        r = client.get(hk, "k")
        if r == (OK, value) or time.time() > deadline:
            break
        time.sleep(0.5)
    assert peak - before < PEAK_BOUND_MB, (
        "replica server RSS rose %.1f MB (bound %d MB) under %d pipelined GETs whose replies "
        "were not read (%s)" % (peak - before, PEAK_BOUND_MB, frames_sent, end))
    assert after - before < AFTER_BOUND_MB, (
        "replica server RSS still %.1f MB above its start %.1fs after the connection closed "
        "(bound %d MB)" % (after - before, after_s, AFTER_BOUND_MB))
    assert r == (OK, value), "GET after the pipelined connection closed: %r" % (r,)
