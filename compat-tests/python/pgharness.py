# Harness for driving the unmodified Twisted-based pypegasus3 client from synchronous pytest code:
# runs the reactor in a background thread, wraps client calls, and starts/stops a onebox cluster.
import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
LOG_DIR = os.path.join(HERE, ".logs")
os.makedirs(LOG_DIR, exist_ok=True)

# pypegasus configures a RotatingFileHandler on 'pegasus.log' relative to the cwd at import time;
# import it from LOG_DIR so the log lands there (the handler keeps an absolute path).
_cwd = os.getcwd()
os.chdir(LOG_DIR)
try:
    from twisted.internet import defer, reactor
    from twisted.python.failure import Failure
    from pypegasus.pgclient import Pegasus, PegasusHash, PegasusScanner  # noqa: F401
    from pypegasus.base.ttypes import error_types
    from pypegasus.utils.tools import ScanOptions, MultiGetOptions  # noqa: F401
    from pypegasus.rrdb.ttypes import filter_type  # noqa: F401
finally:
    os.chdir(_cwd)

# Return codes as the client reports them (see pgclient/packet.py parse_result):
OK = error_types.ERR_OK.value                        # 0
NOT_FOUND = error_types.ERR_OBJECT_NOT_FOUND.value   # 23: get/ttl convert rocksdb kNotFound(1)
INCOMPLETE = error_types.ERR_INCOMPLETE_DATA.value   # 38: multi_get converts rocksdb kIncomplete(7)
TIMEOUT = error_types.ERR_TIMEOUT.value              # 18: client-side timeout
K_INVALID_ARGUMENT = 4                               # raw rocksdb code (writes are not converted)

DEFAULT_CALL_TIMEOUT = 30.0

_reactor_thread = None
_reactor_lock = threading.Lock()


def start_reactor():
    """Run the global Twisted reactor in a daemon thread (once per process)."""
    global _reactor_thread
    with _reactor_lock:
        if _reactor_thread is not None:
            return
        t = threading.Thread(target=reactor.run, kwargs={"installSignalHandlers": False},
                             name="twisted-reactor", daemon=True)
        t.start()
        _reactor_thread = t
    # wait until the reactor is actually running
    call(lambda: None, timeout=10)


def stop_reactor():
    global _reactor_thread
    if _reactor_thread is None:
        return
    try:
        reactor.callFromThread(reactor.stop)
    except Exception:
        pass
    _reactor_thread.join(timeout=10)
    _reactor_thread = None


def call(fn, *args, timeout=DEFAULT_CALL_TIMEOUT, **kwargs):
    """Run fn(*args) in the reactor thread and block until its (possibly Deferred) result."""
    q = queue.Queue()

    def run():
        d = defer.maybeDeferred(fn, *args, **kwargs)
        d.addBoth(q.put)

    reactor.callFromThread(run)
    try:
        r = q.get(timeout=timeout)
    except queue.Empty:
        raise TimeoutError("pypegasus call %r did not complete within %ss" % (fn, timeout))
    if isinstance(r, Failure):
        r.raiseException()
    return r


class Client(object):
    """Synchronous facade over one pypegasus.pgclient.Pegasus instance.

    Every method returns exactly what the client's Deferred fires with, so tests see the
    client's own return shapes (mostly (code, value) tuples)."""

    def __init__(self, metas, table, timeout_ms=5000):
        self.metas = list(metas)
        self.table = table
        # Pegasus.__init__ calls reactor.callLater, so construct it in the reactor thread.
        self.pg = call(lambda: Pegasus(self.metas, table, timeout_ms))
        self.closed = False

    def init(self):
        return call(self.pg.init)

    def close(self):
        if not self.closed:
            self.closed = True
            try:
                call(self.pg.close, timeout=10)
            except Exception:
                pass

    # --- single-key operations -------------------------------------------------------------
    def set(self, hk, sk, value, ttl=0):
        return call(self.pg.set, hk, sk, value, ttl)

    def get(self, hk, sk):
        return call(self.pg.get, hk, sk)

    def remove(self, hk, sk):
        return call(self.pg.remove, hk, sk)

    def ttl(self, hk, sk):
        return call(self.pg.ttl, hk, sk)

    def exist(self, hk, sk):
        return call(self.pg.exist, hk, sk)

    # --- hash-key operations ---------------------------------------------------------------
    def multi_set(self, hk, kvs, ttl=0):
        return call(self.pg.multi_set, hk, kvs, ttl)

    def multi_get(self, hk, sortkeys, max_kv_count=100, max_kv_size=1000000, no_value=False):
        return call(self.pg.multi_get, hk, sortkeys, max_kv_count, max_kv_size, no_value)

    def multi_get_opt(self, hk, start, stop, options, max_kv_count=100, max_kv_size=1000000):
        return call(self.pg.multi_get_opt, hk, start, stop, options, max_kv_count, max_kv_size)

    def get_sort_keys(self, hk, max_kv_count=100, max_kv_size=1000000):
        return call(self.pg.get_sort_keys, hk, max_kv_count, max_kv_size)

    def multi_del(self, hk, sortkeys):
        return call(self.pg.multi_del, hk, sortkeys)

    def sort_key_count(self, hk):
        return call(self.pg.sort_key_count, hk)

    # --- scanners --------------------------------------------------------------------------
    def get_scanner(self, hk, start, stop, options):
        return call(self.pg.get_scanner, hk, start, stop, options)

    def get_unordered_scanners(self, max_split_count, options):
        return call(self.pg.get_unordered_scanners, max_split_count, options)

    def next(self, scanner):
        return call(scanner.get_next)

    def close_scanner(self, scanner):
        return call(scanner.close)

    def scan_all(self, scanner, batches=None):
        """Drain a scanner; returns [((hk, sk), value)]. If batches is a list, appends the size
        of every batch the server returned (observed through the scanner's buffer)."""
        out = []
        last_buf = None
        while True:
            item = self.next(scanner)
            if item is None:
                break
            buf = scanner._kvs
            if batches is not None and buf is not last_buf:
                batches.append(len(buf))
                last_buf = buf
            out.append(item)
        call(scanner.close)
        return out

    # --- routing helpers (pure client-side computation) ---------------------------------
    def partition_count(self):
        return call(self.pg.table.get_partition_count)

    def hash_key_partition(self, hk):
        return call(lambda: self.pg.table.get_hash_key_pid(hk).get_pidx())

    def routing_ready(self):
        """True if the client knows a primary for every partition and has a session to it."""
        def check():
            t = self.pg.table
            if t.query_cfg_response is None:
                return False
            n = t.get_partition_count()
            if n <= 0 or len(t.partition_dict) != n:
                return False
            for pidx in range(n):
                addr = t.partition_dict.get(pidx)
                if addr is None or addr.address == 0 or addr not in t.session_dict:
                    return False
            return True
        return call(check)


def hash_keys_covering_partitions(client, prefix):
    """One hash key per partition, found by client-side hashing."""
    n = client.partition_count()
    found = {}
    i = 0
    while len(found) < n and i < 100000:
        hk = "%s-%d" % (prefix, i)
        found.setdefault(client.hash_key_partition(hk), hk)
        i += 1
    return found


def open_client(metas, table, deadline_s=120.0, timeout_ms=5000):
    """Open a client and wait until every partition answers a read (GET -> 0 or 23)."""
    deadline = time.time() + deadline_s
    last = None
    while True:
        c = Client(metas, table, timeout_ms)
        try:
            c.init()
            if c.routing_ready():
                probes = hash_keys_covering_partitions(c, "__pycompat_probe")
                results = {p: c.get(hk, "probe") for p, hk in probes.items()}
                if all(isinstance(r, tuple) and r[0] in (OK, NOT_FOUND) for r in results.values()):
                    return c
                last = "probe reads: %r" % results
            else:
                last = "routing not ready: %r" % call(lambda: c.pg.table.query_cfg_response)
        except Exception as e:  # noqa: BLE001
            last = "exception: %r" % e
        c.close()
        if time.time() > deadline:
            raise RuntimeError("cluster at %s table %s not ready: %s" % (metas, table, last))
        time.sleep(1.0)


class Cluster(object):
    """Either an external cluster (PEGASUS_META) or a onebox of the session's own (a
    PrivateOnebox on ports 26600/26800)."""

    META_PORT_BASE = 26600
    REPLICA_PORT_BASE = 26800

    def __init__(self):
        self.table = os.environ.get("PEGASUS_TABLE", "temp")
        meta = os.environ.get("PEGASUS_META", "").strip()
        self.managed = not meta
        self.box = None
        self.onebox_dir = None
        self.run_sh = run_sh_path()
        if self.managed:
            self.metas = ["127.0.0.1:%d" % (self.META_PORT_BASE + 1)]
        else:
            self.metas = [m.strip() for m in meta.split(",") if m.strip()]

    def start(self):
        if not self.managed:
            return
        if self.box is None:
            self.box = SessionOnebox(self.META_PORT_BASE, self.REPLICA_PORT_BASE)
            self.onebox_dir = self.box.onebox_dir
        self.box.run("start_onebox", timeout=float(os.environ.get("PEGASUS_START_TIMEOUT", "1200")))

    def stop(self):
        if self.box is not None:
            self.box.run("stop_onebox", timeout=300)

    def destroy(self):
        if self.box is not None:
            self.box.destroy()

    def open_client(self, deadline_s=None):
        if deadline_s is None:
            deadline_s = float(os.environ.get("PEGASUS_READY_TIMEOUT", "180"))
        return open_client(self.metas, self.table, deadline_s)


def run_sh_path():
    """The launcher: $PEGASUS_RUN_SH (to try the suites with another one) or ../../run.sh."""
    return os.environ.get("PEGASUS_RUN_SH") or \
        os.path.normpath(os.path.join(HERE, "..", "..", "run.sh"))


def log(msg):
    sys.stderr.write("[pycompat] %s\n" % msg)


def server_log_text(instance_dir):
    """Everything a server instance logged: its stderr (pegasus_server.log: start-up lines and
    warnings) and its log files (data/log/<role>_<time>.log, oldest first)."""
    parts = []
    paths = [os.path.join(instance_dir, "pegasus_server.log")]
    log_dir = os.path.join(instance_dir, "data", "log")
    if os.path.isdir(log_dir):
        paths += [os.path.join(log_dir, n) for n in sorted(os.listdir(log_dir))
                  if not os.path.islink(os.path.join(log_dir, n))]
    for p in paths:
        if os.path.exists(p):
            with open(p, "rb") as f:
                parts.append(f.read().decode("utf-8", "replace"))
    return "\n".join(parts)


def server_log_mark(instance_dir):
    """Where each log file of an instance ends now (see server_log_since)."""
    log_dir = os.path.join(instance_dir, "data", "log")
    mark = {}
    if os.path.isdir(log_dir):
        for n in os.listdir(log_dir):
            p = os.path.join(log_dir, n)
            if not os.path.islink(p):
                mark[n] = os.path.getsize(p)
    return mark


def server_log_since(instance_dir, mark):
    """What an instance logged to its log files after `mark` (files grown or new since)."""
    log_dir = os.path.join(instance_dir, "data", "log")
    parts = []
    for n in sorted(os.listdir(log_dir)):
        p = os.path.join(log_dir, n)
        if os.path.islink(p):
            continue
        with open(p, "rb") as f:
            f.seek(mark.get(n, 0))
            parts.append(f.read().decode("utf-8", "replace"))
    return "".join(parts)


def server_log_path(instance_dir, role):
    """The current log file of a server instance (the <role>.log symlink)."""
    return os.path.join(instance_dir, "data", "log", "%s.log" % role)


def server_bin():
    """The pegasus_server binary the tests run: $PEGASUS_SERVER_BIN, the cargo target dir, or
    ./target (None when not built)."""
    root = os.path.normpath(os.path.join(HERE, "..", ".."))
    cand = [os.environ.get("PEGASUS_SERVER_BIN", "")]
    target = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/pegasus-rs/target"))
    cand += [os.path.join(target, "release", "pegasus_server"),
             os.path.join(root, "target", "release", "pegasus_server")]
    for c in cand:
        if c and os.access(c, os.X_OK):
            return c
    return None


def reporter(tag, path):
    """A function that prints `[tag] line` and appends it to the report file `path`."""
    def report(line):
        line = "[%s] %s" % (tag, line)
        print(line, flush=True)
        with open(path, "a") as f:
            f.write(line + "\n")
    return report


class PrivateOnebox(object):
    """A onebox of a test's own (temp dir, ports, run.sh log) driven through run.sh.
    Subclasses give `extra_env()`; `report` receives the "kept onebox" line."""

    def __init__(self, prefix, log_name, report=print):
        self.base = tempfile.mkdtemp(prefix=prefix)
        self.onebox_dir = os.path.join(self.base, "onebox")
        self.run_sh = run_sh_path()
        self.root = os.path.dirname(self.run_sh)
        self.run_log = os.path.join(LOG_DIR, log_name)
        self.bin = server_bin()
        self.report = report

    health_timeout = 180.0

    def extra_env(self):
        return {}

    def log_hint(self):
        return "server logs under %s" % self.onebox_dir

    def probe(self, table="temp"):
        """(healthy, output) of `pegasus_server probe` against self.metas."""
        try:
            p = subprocess.run([self.bin, "probe", ",".join(self.metas), table],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, timeout=20)
        except subprocess.TimeoutExpired:
            return False, "probe timed out"
        return p.returncode == 0, p.stdout.decode("utf-8", "replace").strip()

    def wait_healthy(self, table="temp", timeout=None):
        """Waits for the table's full health; returns the seconds it took."""
        timeout = self.health_timeout if timeout is None else timeout
        t0 = time.time()
        while True:
            ok, out = self.probe(table)
            if ok:
                return time.time() - t0
            if time.time() - t0 > timeout:
                raise AssertionError("table %s not fully healthy after %.0fs; probe said:\n%s\n%s"
                                     % (table, timeout, out, self.log_hint()))
            time.sleep(0.5)

    def env(self):
        env = dict(os.environ)
        env["ONEBOX_DIR"] = self.onebox_dir
        env.update(self.extra_env())
        if self.bin:
            env["PEGASUS_SERVER_BIN"] = self.bin
        return env

    def run(self, *args, timeout=300, check=True):
        with open(self.run_log, "ab") as log:
            log.write(("\n==== %s run.sh %s (ONEBOX_DIR=%s)\n"
                       % (time.strftime("%H:%M:%S"), " ".join(args), self.onebox_dir)).encode())
            log.flush()
            p = subprocess.run(["bash", self.run_sh] + list(args),
                               env=self.env(), stdout=log, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, timeout=timeout, cwd=self.root)
        if check and p.returncode != 0:
            with open(self.run_log, "rb") as f:
                tail = f.read()[-3000:].decode("utf-8", "replace")
            raise RuntimeError("run.sh %s exited %d:\n%s" % (" ".join(args), p.returncode, tail))
        return p.returncode

    def destroy(self):
        keep = os.environ.get("PEGASUS_KEEP_ONEBOX") == "1"
        try:
            if os.path.isdir(self.onebox_dir):
                self.run("stop_onebox", timeout=120, check=False)
                if not keep:
                    self.run("clear_onebox", timeout=120, check=False)
        finally:
            if not keep:
                shutil.rmtree(self.base, ignore_errors=True)
            else:
                self.report("kept onebox at %s" % self.onebox_dir)


def set_config(text, section, key, value):
    """config.ini text with [section] key = value: replaced within that section, or added to
    it (the section is added when missing)."""
    lines = text.split("\n")
    head = "[%s]" % section
    start = next((i for i, l in enumerate(lines) if l.strip() == head), None)
    if start is None:
        return text.rstrip("\n") + "\n\n%s\n  %s = %s\n" % (head, key, value)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].strip().startswith("[")),
               len(lines))
    for i in range(start + 1, end):
        m = re.match(r"^([ \t]*%s[ \t]*=)" % re.escape(key), lines[i])
        if m:
            lines[i] = "%s %s" % (m.group(1), value)
            return "\n".join(lines)
    lines.insert(start + 1, "  %s = %s" % (key, value))
    return "\n".join(lines)


class ConfiguredOnebox(PrivateOnebox):
    """A private onebox on its own ports whose servers run conf/config.ini with `settings`
    ({(section, key): value}) applied. run.sh writes every instance's config.ini from the
    template (also on each start_onebox), so the settings survive restarts."""

    def __init__(self, prefix, log_name, meta_port_base, replica_port_base, settings,
                 report=print):
        super().__init__(prefix, log_name, report)
        self.meta_port_base, self.replica_port_base = meta_port_base, replica_port_base
        self.template = os.path.join(self.base, "config.ini")
        self.metas = ["127.0.0.1:%d" % (meta_port_base + 1)]
        root = os.path.normpath(os.path.join(HERE, "..", ".."))
        with open(os.path.join(root, "conf", "config.ini")) as f:
            text = f.read()
        for (section, key), value in settings.items():
            text = set_config(text, section, key, value)
        with open(self.template, "w") as f:
            f.write(text)

    def extra_env(self):
        return {"META_PORT_BASE": str(self.meta_port_base),
                "REPLICA_PORT_BASE": str(self.replica_port_base),
                "CONFIG_TEMPLATE": self.template, "ONEBOX_WAIT_SECONDS": "120"}

    def admin(self, *lines, timeout=300):
        """The shared admin-cli's output for `lines`, typed in one session."""
        from test_admin_cli import admin_cli_path   # late: that module imports this one
        p = subprocess.run([admin_cli_path(), "-m", ",".join(self.metas)],
                           input=("\n".join(lines) + "\n").encode(), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=timeout, cwd=self.base)
        return p.stdout.decode("utf-8", "replace")

    def tool(self, *args):
        """(exit code, output) of `pegasus_admin -m <metas> args...`."""
        tool = os.path.join(os.path.dirname(self.bin), "pegasus_admin")
        p = subprocess.run([tool, "-m", ",".join(self.metas)] + list(args),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        return p.returncode, p.stdout.decode()


class SessionOnebox(PrivateOnebox):
    """The onebox the data-operation tests share (see Cluster)."""

    def __init__(self, meta_port_base, replica_port_base):
        super().__init__("pegasus-pycompat-", "run_sh.log", log)
        self.ports = {"META_PORT_BASE": str(meta_port_base),
                      "REPLICA_PORT_BASE": str(replica_port_base)}
        self.metas = ["127.0.0.1:%d" % (meta_port_base + 1)]   # what probe() asks

    def extra_env(self):
        return dict(self.ports)


# --- concurrent writers and read-back, shared by the fault and operation tests ----------------

class Writer(threading.Thread):
    """Writes sequential sort keys under its own hash-key prefix until stopped. A write is
    acknowledged only when the client returned (OK, None); everything sent is 'attempted'."""

    def __init__(self, idx, metas, prefix, stop, successes, lock, table="temp",
                 hashes=32, timeout_ms=3000, tag=None, pad=0):
        super().__init__(name="writer-%d" % idx, daemon=True)
        self.idx, self.metas, self.prefix, self.stop = idx, metas, prefix, stop
        self.table, self.hashes, self.timeout_ms = table, hashes, timeout_ms
        self.tag = tag or (lambda hk: hk)   # what successes record of a key
        self.pad = "x" * pad                 # bytes added to every value
        self.successes, self.lock = successes, lock   # shared [(t, tag(hash key))]
        self.acked, self.attempted = {}, {}
        self.errors, self.recreated, self.last_error = 0, 0, None
        self.error_kinds = {}

    def _client(self):
        try:
            c = Client(self.metas, self.table, self.timeout_ms)
        except Exception as e:  # noqa: BLE001
            self.last_error = repr(e)
            return None
        try:
            c.init()
        except Exception as e:  # noqa: BLE001 - a client whose init failed still re-queries
            self.last_error = repr(e)
        return c

    def run(self):
        client, i, consecutive = None, 0, 0
        while not self.stop.is_set():
            if client is None:
                client = self._client()
                if client is None:
                    time.sleep(0.5)
                    continue
            hk = "%s-w%d-h%02d" % (self.prefix, self.idx, i % self.hashes)
            sk = "%08d" % i
            val = "%d:%d" % (self.idx, i) + (":" + self.pad if self.pad else "")
            self.attempted[(hk, sk)] = val
            try:
                r = client.set(hk, sk, val)
            except Exception as e:  # noqa: BLE001
                r = ("exception", type(e).__name__)
            now = time.time()
            if r == (OK, None):
                self.acked[(hk, sk)] = val
                with self.lock:
                    self.successes.append((now, self.tag(hk)))
                consecutive = 0
            else:
                self.errors += 1
                consecutive += 1
                self.last_error = r
                kind = r[0] if isinstance(r, tuple) and r else r   # (code, _) or a bare code
                kind = str(getattr(kind, "value", kind))   # enum or int -> "30"
                self.error_kinds[kind] = self.error_kinds.get(kind, 0) + 1
                # pypegasus re-queries the meta only after 5 timeouts and never reconnects a
                # session a restarted server dropped; a fresh client after 2 errors in a row
                # keeps the client's own recovery time out of the measured windows.
                if consecutive % 2 == 0:
                    client.close()
                    client = None
                    self.recreated += 1
                time.sleep(0.05)
            i += 1
        if client is not None:
            client.close()


def start_writers(metas, prefix, n, **kw):
    """Starts n Writers; returns (stop event, writers, successes [(t, tag)], its lock)."""
    stop, lock, successes = threading.Event(), threading.Lock(), []
    ws = [Writer(i, metas, prefix, stop, successes, lock, **kw) for i in range(n)]
    for w in ws:
        w.start()
    return stop, ws, successes, lock


def stop_writers(stop, ws, state):
    """Stops the writers; adds what they acknowledged and attempted to state."""
    stop.set()
    for w in ws:
        w.join(timeout=60)
        assert not w.is_alive(), "writer %s did not stop" % w.name
        state["acked"].update(w.acked)
        state["attempted"].update(w.attempted)


def read_back(metas, expected, table="temp", threads=8):
    """Gets every key of `expected` ({(hk, sk): str}); returns (missing, wrong) lists."""
    items = sorted(expected.items())
    missing, wrong, lock = [], [], threading.Lock()

    def work(chunk):
        c = open_client(metas, table, deadline_s=120)
        try:
            for (hk, sk), v in chunk:
                for attempt in range(20):
                    r = c.get(hk, sk)
                    if isinstance(r, tuple) and r[0] in (OK, NOT_FOUND):
                        break
                    time.sleep(0.2 * (attempt + 1))
                with lock:
                    if not (isinstance(r, tuple) and r[0] in (OK, NOT_FOUND)):
                        wrong.append(((hk, sk), v, r))
                    elif r[0] == NOT_FOUND:
                        missing.append((hk, sk))
                    elif r[1] != v.encode():
                        wrong.append(((hk, sk), v, r))
        finally:
            c.close()

    ts = [threading.Thread(target=work, args=(items[i::threads],), daemon=True)
          for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=600)
    return missing, wrong
