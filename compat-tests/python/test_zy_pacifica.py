# PacificA failover tests through pypegasus3 on a private onebox (1 meta + 3 replica servers,
# ports 27600/27800): kill -9 each replica server in turn under 8 concurrent writers and check
# that no acknowledged write is lost; stop/start the whole cluster; bring back a replica server
# that fell behind the primaries' learning cache, by checkpoint copy (LT_APP) when the
# primaries' plog no longer holds what it misses, and from their plog files (LT_LOG) when it
# does.
# Figures go to stdout (-s) and to .logs/pacifica_report.txt. Runs before test_zz_restart.py.
import glob
import os
import re
import subprocess
import threading
import time

import pytest

import pgharness
from pgharness import OK, NOT_FOUND, Client, PegasusHash, ScanOptions

pytestmark = pytest.mark.restart  # sorted with the cluster-restarting tests, before test_zz_*

META_PORT_BASE = 27600
REPLICA_PORT_BASE = 27800
TABLE = "temp"
PARTITIONS = 8
REPLICAS = 3
LEARN_CACHE_MAX_MUTATIONS = 100
# The module's config: a small learning cache; small plog files, no reserve and a flush every
# second, so the primaries collect the plog files a lagging replica would need and it must copy
# a checkpoint; copies slowed to 1 MiB/s while group checks run every second, so a learner
# must keep answering them during a copy of several seconds.
SETTINGS = {
    ("replication", "max_mutation_count_in_prepare_list"): LEARN_CACHE_MAX_MUTATIONS,
    ("replication", "log_private_file_size_mb"): 1,
    ("replication", "log_private_reserve_max_size_mb"): 0,
    ("replication", "checkpoint_interval_seconds"): 1,
    ("replication", "group_check_interval_ms"): 1000,
    ("nfs", "max_copy_rate_megabytes_per_disk"): 1,
}
LOG_SETTINGS = [k for (_, k) in SETTINGS]


N_WRITERS = 8
HASHES_PER_WRITER = 32          # each writer spreads its keys over every partition
WRITER_TIMEOUT_MS = 3000
HEALTH_TIMEOUT = 120.0
REPORT = os.path.join(pgharness.LOG_DIR, "pacifica_report.txt")


report = pgharness.reporter("pacifica", REPORT)


server_bin = pgharness.server_bin


# The client fills its CRC table when a client is made; pidx_of may run before any is.
PegasusHash.populate_table()


def pidx_of(hk):
    return PegasusHash.default_hash(hk.encode()) % PARTITIONS


class PCluster(pgharness.ConfiguredOnebox):
    """A private onebox with its own dir, ports and config (a small learning cache)."""
    health_timeout = HEALTH_TIMEOUT

    def __init__(self):
        super().__init__("pegasus-pacifica-", "pacifica_run_sh.log", META_PORT_BASE,
                         REPLICA_PORT_BASE, SETTINGS, report)

    def replica_dir(self, n):
        return os.path.join(self.onebox_dir, "replica%d" % n)

    def pid(self, n):
        with open(os.path.join(self.replica_dir(n), "pegasus_server.pid")) as f:
            return int(f.read().strip())

    def kill9(self, n):
        pid = self.pid(n)
        os.kill(pid, 9)
        for _ in range(100):   # reap check: wait until the process is really gone
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            with open("/proc/%d/stat" % pid) as f:
                if f.read().split(")")[-1].split()[0] == "Z":
                    break
            time.sleep(0.05)
        return pid

    def log_path(self, n):
        return pgharness.server_log_path(self.replica_dir(n), "replica")

    def log_hint(self):
        return "server logs under %s/{meta1,replica1..3}/data/log" % self.onebox_dir


@pytest.fixture(scope="module")
def pc(reactor_thread):
    c = PCluster()
    if c.bin is None:
        pytest.skip("no pegasus_server binary (set PEGASUS_SERVER_BIN)")
    with open(REPORT, "w") as f:
        f.write("# PacificA failover report, %s, onebox %s\n"
                % (time.strftime("%Y-%m-%d %H:%M:%S"), c.onebox_dir))
    try:
        c.run("start_onebox", timeout=300)
        c.wait_healthy()
        yield c
    finally:
        c.destroy()


@pytest.fixture(scope="module")
def state():
    """What the tests of this module wrote: {(hk, sk): value} acknowledged and attempted."""
    return {"acked": {}, "attempted": {}}


# --- writers ------------------------------------------------------------------------------------

def start_writers(metas, prefix, n=N_WRITERS):
    return pgharness.start_writers(metas, prefix, n, table=TABLE, hashes=HASHES_PER_WRITER,
                                   timeout_ms=WRITER_TIMEOUT_MS, tag=pidx_of)


stop_writers = pgharness.stop_writers


def longest_gap(times, t_from, t_to):
    """Longest interval within [t_from, t_to] holding no time of `times` (sorted)."""
    prev, best, at = t_from, 0.0, t_from
    for t in times:
        if t <= t_from:
            continue
        if t >= t_to:
            break
        if t - prev > best:
            best, at = t - prev, prev
        prev = t
    if t_to - prev > best:
        best, at = t_to - prev, prev
    return best, at - t_from


def clock(t):
    return time.strftime("%H:%M:%S", time.localtime(t)) + (".%03d" % int((t % 1) * 1000))


def primaries(metas):
    """{pidx: 'host:port'} of the primaries as the meta reports them (best effort)."""
    try:
        c = Client(metas, TABLE, 5000)
    except Exception:  # noqa: BLE001
        return {}
    try:
        c.init()
        def get():
            out = {}
            for p, a in c.pg.table.partition_dict.items():
                if a is not None and a.address != 0:
                    out[p] = "%s:%d" % a.to_host_port()
            return out
        return pgharness.call(get)
    except Exception:  # noqa: BLE001
        return {}
    finally:
        c.close()


def wait_all_partitions_written(successes, lock, t_from, timeout):
    """Waits until every partition has an acknowledged write after t_from; returns that time."""
    deadline = time.time() + timeout
    while True:
        with lock:
            seen = {p for t, p in successes if t > t_from}
        if len(seen) == PARTITIONS:
            return time.time()
        assert time.time() < deadline, (
            "partitions %s took no write within %ds after the probe reported full health"
            % (sorted(set(range(PARTITIONS)) - seen), timeout))
        time.sleep(0.2)


# --- verification -------------------------------------------------------------------------------

def read_back(metas, expected, threads=8):
    return pgharness.read_back(metas, expected, table=TABLE, threads=threads)


def scan_table(metas):
    """Every (hk, sk) -> value of the table through unordered scanners."""
    c = pgharness.open_client(metas, TABLE, deadline_s=120)
    try:
        opts = ScanOptions()
        opts.batch_size = 1000
        out = {}
        for sc in c.get_unordered_scanners(PARTITIONS, opts):
            while True:
                item = c.next(sc)
                if item is None:
                    break
                (hk, sk), v = item
                out[(hk, sk)] = v
            c.close_scanner(sc)
        return out
    finally:
        c.close()


def verify_all(pc, state, what):
    """Every acked write readable with its exact value (gets), and a full scan holds nothing
    that was never attempted and no value other than the one attempted for its key."""
    acked, attempted = state["acked"], state["attempted"]
    t0 = time.time()
    missing, wrong = read_back(pc.metas, acked)
    assert not missing, "%s: %d acknowledged writes lost, e.g. %r\n%s" % (
        what, len(missing), sorted(missing)[:10], pc.log_hint())
    assert not wrong, "%s: %d reads wrong/failed, e.g. %r" % (what, len(wrong), wrong[:5])
    scanned = scan_table(pc.metas)
    unexpected = [k for k in scanned if k not in attempted]
    assert not unexpected, "%s: %d unexpected keys, e.g. %r" % (
        what, len(unexpected), sorted(unexpected)[:10])
    bad = [(k, v, attempted[k]) for k, v in scanned.items() if v != attempted[k].encode()]
    assert not bad, "%s: scan values differ, e.g. %r" % (what, bad[:5])
    lost = [k for k in acked if k not in scanned]
    assert not lost, "%s: %d acked keys missing from the scan, e.g. %r" % (
        what, len(lost), sorted(lost)[:10])
    report("%s: verified %d acked writes by get and a full scan of %d keys (%d attempted, "
           "%d unacked-but-present) in %.1fs"
           % (what, len(acked), len(scanned), len(attempted),
              len(scanned) - len([k for k in acked if k in scanned]), time.time() - t0))


def write_items(metas, state, items):
    """Sets every (hk, sk, value) of items, retrying each until it is acknowledged (within 180 s
    in all); records attempts and acks in state. Returns the number of writes."""
    c = pgharness.open_client(metas, TABLE, deadline_s=180)
    writes = 0
    try:
        deadline = time.time() + 180
        for hk, sk, v in items:
            state["attempted"][(hk, sk)] = v
            while True:
                try:
                    r = c.set(hk, sk, v)
                except Exception as e:  # noqa: BLE001
                    r = ("exception", repr(e))
                if r == (OK, None):
                    state["acked"][(hk, sk)] = v
                    writes += 1
                    break
                assert time.time() < deadline, "writes keep failing: %r" % (r,)
                time.sleep(0.2)
    finally:
        c.close()
    return writes


def write_known(metas, prefix, state, n_hashes, per_hash, value_tag):
    """Writes n_hashes x per_hash keys (one set each, so one mutation each); retries failures."""
    items = (("%s-h%03d" % (prefix, h), "k%05d" % s, "%s/%d/%d" % (value_tag, h, s))
             for h in range(n_hashes) for s in range(per_hash))
    write_items(metas, state, items)


# --- tests --------------------------------------------------------------------------------------

def test_kill9_each_replica_under_writers(pc, state):
    prefix = "kill9-%d" % int(time.time())
    stop, ws, successes, lock = start_writers(pc.metas, prefix)
    windows = []
    try:
        time.sleep(3)
        with lock:
            assert successes, "no write succeeded before any kill: %r" % (
                [w.last_error for w in ws],)
        # Each replica server down ~3 s (back before the meta's fd_grace_seconds = 10 s runs
        # out), then the one holding most primaries down 15 s, so the meta must fail over.
        for n, down in [(1, 3), (2, 3), (3, 3), (None, 15)]:
            pc.wait_healthy()
            time.sleep(1)
            prim = primaries(pc.metas)
            if n is None:
                ports = [a.rsplit(":", 1)[1] for a in prim.values()]
                n = max(range(1, REPLICAS + 1),
                        key=lambda r: ports.count(str(REPLICA_PORT_BASE + r)))
            t_kill = time.time()
            pid = pc.kill9(n)
            time.sleep(down)
            pc.run("start_onebox_instance", "-r", str(n), timeout=180)
            t_started = time.time()
            heal = pc.wait_healthy()
            t_healthy = time.time()
            # The probe checks membership; the window ends once every partition took a write
            # again after the probe said healthy (bounded: a partition that never takes writes
            # again is a failure).
            t_end = wait_all_partitions_written(successes, lock, t_healthy, 90)
            with lock:
                times = sorted(t for t, _ in successes)
                per_part = {}
                for t, p in successes:
                    per_part.setdefault(p, []).append(t)
            gap, gap_at = longest_gap(times, t_kill, t_end)
            part_gaps = {p: longest_gap(sorted(per_part.get(p, [])), t_kill, t_end)[0]
                         for p in range(PARTITIONS)}
            windows.append(gap)
            mine = sorted(p for p, a in prim.items() if a.endswith(":%d" % (REPLICA_PORT_BASE + n)))
            report("kill -9 replica%d (pid %d) at %s, primary of partitions %s: restarted after "
                   "%.1fs, probe healthy %.1fs after restart (%.1fs after kill), every partition "
                   "written again %.1fs after kill; no writer succeeded for %.2fs (from +%.1fs); "
                   "longest per-partition gaps: %s"
                   % (n, pid, clock(t_kill), mine or "none", t_started - t_kill, heal,
                      t_healthy - t_kill, t_end - t_kill, gap, gap_at,
                      ", ".join("p%d=%.1fs" % (p, g) for p, g in sorted(part_gaps.items()))))
    finally:
        stop_writers(stop, ws, state)
    acked = sum(len(w.acked) for w in ws)
    attempted = sum(len(w.attempted) for w in ws)
    errs = {}
    for w in ws:
        for k, v in w.error_kinds.items():
            errs[k] = errs.get(k, 0) + v
    report("writers: %d acked of %d attempted writes, %d errors by code %s, %d client re-creations"
           % (acked, attempted, sum(w.errors for w in ws), errs, sum(w.recreated for w in ws)))
    report("unavailability windows (s): %s" % ", ".join("%.2f" % g for g in windows))
    assert acked > 0
    verify_all(pc, state, "after 3 kill -9")
    ok, out = pc.probe()
    assert ok, "not fully healthy at the end:\n%s" % out


def test_stop_and_start_every_server(pc, state):
    prefix = "restart-%d" % int(time.time())
    write_known(pc.metas, prefix, state, n_hashes=16, per_hash=20, value_tag="restart")
    t0 = time.time()
    pc.run("stop_onebox", timeout=180)
    pc.run("start_onebox", timeout=300)
    heal = pc.wait_healthy()
    report("stop_onebox + start_onebox: fully healthy %.1fs after the stop (%.1fs of probing)"
           % (time.time() - t0, heal))
    verify_all(pc, state, "after full restart")


def lagging_keys(prefix):
    """8 hash keys per partition."""
    hks, i = {}, 0
    while min(len(hks.get(p, [])) for p in range(PARTITIONS)) < 8:
        hk = "%s-%d" % (prefix, i)
        hks.setdefault(pidx_of(hk), []).append(hk)
        i += 1
        assert i < 100000, "no hash keys for some partition: %r" % {
            p: len(v) for p, v in hks.items()}
    return hks


def write_per_partition(pc, state, prefix, per_partition, value_size, random_fill=False):
    """per_partition acknowledged writes of about value_size bytes to every partition (filled
    with random hex digits, which compress poorly, when random_fill)."""
    hks = lagging_keys(prefix)

    def items():
        for p in range(PARTITIONS):
            group = hks[p][:8]
            for s in range(per_partition):
                v = "%s/%d/%d/" % (prefix, p, s)
                if random_fill:
                    v += os.urandom(value_size // 2 + 1).hex()[:max(0, value_size - len(v))]
                else:
                    v = v.ljust(value_size, "x")
                yield group[s % len(group)], "k%05d" % s, v

    return write_items(pc.metas, state, items())


def lag_replica3(pc, state, name, per_partition, value_size, random_fill=False):
    """Stops replica3, writes per_partition values of value_size bytes to every partition,
    restarts it, waits for full health and checks every acknowledged write. Returns what
    replica3 logged since it was stopped."""
    pc.wait_healthy()
    pc.run("stop_onebox_instance", "-r", "3", timeout=120)
    t_stop = time.time()
    log_mark = pgharness.server_log_mark(pc.replica_dir(3))
    writes = write_per_partition(pc, state, "%s-%d" % (name, int(time.time())), per_partition,
                                 value_size, random_fill)
    report("%s: replica3 down: %d writes (%d per partition of %d bytes, learn cache %d) in %.1fs"
           % (name, writes, per_partition, value_size, LEARN_CACHE_MAX_MUTATIONS,
              time.time() - t_stop))
    # a few flush intervals, so the primaries flush and collect their plog files
    time.sleep(3)
    t_start = time.time()
    pc.run("start_onebox_instance", "-r", "3", timeout=180)
    pc.wait_healthy()
    report("%s: replica3 restarted: full health after %.1fs" % (name, time.time() - t_start))
    verify_all(pc, state, "after replica3 caught up (%s)" % name)
    ok, out = pc.probe()
    assert ok, "not fully healthy at the end:\n%s" % out
    return pgharness.server_log_since(pc.replica_dir(3), log_mark)


def test_lagging_replica_learns_checkpoint(pc, state):
    # About 7 MiB of poorly compressible values per partition while replica3 is down: the
    # primaries' plog moves past it (1 MiB files) and the files it misses are collected, so
    # learning must copy a checkpoint, at 1 MiB/s: several seconds, with group checks every
    # second that the learner must answer meanwhile, so each partition is learned once.
    new_log = lag_replica3(pc, state, "lag-app", 3 * LEARN_CACHE_MAX_MUTATIONS, 24576,
                           random_fill=True)
    learned = [l for l in new_log.splitlines() if "learned checkpoint" in l]
    restarted = [l for l in new_log.splitlines()
                 if "learning a checkpoint failed" in l or "for an ended round" in l]
    ckpts = sorted(set(os.path.basename(d) for n in (1, 2) for d in glob.glob(
        os.path.join(pc.replica_dir(n), "data", "**", "checkpoint.*"), recursive=True)
        if os.path.isdir(d) and re.match(r"checkpoint\.\d+$", os.path.basename(d))))
    report("replica3 log lines with 'learned checkpoint': %d%s; checkpoint dirs on replica1/2: %s"
           % (len(learned), (" (first: %s)" % learned[0].strip()) if learned else "",
              ", ".join(ckpts[:16]) or "none"))
    ignored = [l for l in new_log.splitlines() if "config keys not used" in l]
    assert not any(k in l for l in ignored for k in LOG_SETTINGS), ignored
    report("lag-app: checkpoint copies cut short or failed: %d" % len(restarted))
    assert learned, "replica3 log has no 'learned checkpoint' line since its restart (%s)" \
        % pc.log_path(3)
    assert ckpts, "no checkpoint.<decree> dir under replica1/replica2 data dirs"
    parts = sorted(set(re.search(r"\b(\d+\.\d+): learned checkpoint", l).group(1) for l in learned))
    assert len(parts) == PARTITIONS, "checkpoints learned for %s only" % parts
    assert len(learned) == PARTITIONS and not restarted, \
        "a partition copied its checkpoint more than once, or a copy failed:\n%s" \
        % "\n".join(learned + restarted)


def test_lagging_replica_learns_log_files(pc, state):
    # Rotate every primary's plog first (over 1 MiB per partition), so the file being written
    # starts before what replica3 will miss; then fall behind the learning cache by small
    # writes that stay in that file: learning copies the plog files (LT_LOG).
    write_per_partition(pc, state, "rotate-%d" % int(time.time()), 160, 8192)
    new_log = lag_replica3(pc, state, "lag-log", 3 * LEARN_CACHE_MAX_MUTATIONS, 64)
    learned = [l for l in new_log.splitlines() if re.search(r"learned \d+ log file", l)]
    ckpt = [l for l in new_log.splitlines() if "learned checkpoint" in l]
    report("replica3 log lines with 'learned N log file(s)': %d%s; with 'learned checkpoint': %d"
           % (len(learned), (" (first: %s)" % learned[0].strip()) if learned else "", len(ckpt)))
    assert learned, "replica3 log has no 'learned N log file(s)' line since its restart (%s)" \
        % pc.log_path(3)
    assert not ckpt, "replica3 copied checkpoints although the plog held what it missed: %s" \
        % ckpt[:3]
