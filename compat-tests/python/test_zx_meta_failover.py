# Meta-server failover on a private onebox with ZooKeeper (3 metas on 28601-28603, 3 replica
# servers on 28801-28803, ZooKeeper on 23181): the upstream ZooKeeper tree layout and leader
# lock, non-leaders pointing at the leader, kill -9 of the leader meta under pypegasus3 writers
# (no acknowledged write lost; the new leader serves and creates tables), ZooKeeper killed for
# 30 s and frozen for 15 s under writers and readers (data keeps flowing, tables can be created
# afterwards), and a leader frozen past its session timeout under writers stepping down (its
# process restarts itself as a follower). Every measured window goes to the report. Needs Debian's zookeeper package: run.sh installs
# it when missing, and the tests FAIL (not skip) when it cannot. Runs before test_zy/test_zz.
import http.client
import json
import os
import signal
import subprocess
import threading
import time

import pytest

import pgharness
from pgharness import OK, Client
from test_zy_pacifica import start_writers, stop_writers, longest_gap, read_back

pytestmark = pytest.mark.restart  # sorted with the cluster-restarting tests, before test_zy_*

META_PORT_BASE = 28600
REPLICA_PORT_BASE = 28800
ZK_PORT = 23181
ZK_SESSION_TIMEOUT_MS = 10000
METAS = ["127.0.0.1:%d" % (META_PORT_BASE + i) for i in (1, 2, 3)]
TABLE = "temp"
ROOT = os.path.normpath(os.path.join(pgharness.HERE, "..", ".."))
CLUSTER_ROOT = "/pegasus/onebox"
LOCK_DIR = "/pegasus/onebox/lock/dsn.meta.server.leader"
ZKCLI = "/usr/share/zookeeper/bin/zkCli.sh"
REPORT = os.path.join(pgharness.LOG_DIR, "meta_failover_report.txt")


report = pgharness.reporter("meta-failover", REPORT)


server_bin = pgharness.server_bin


class ZkCluster(pgharness.PrivateOnebox):
    def __init__(self):
        super().__init__("pegasus-metafo-", "meta_failover_run_sh.log", report)
        self.metas = list(METAS)

    def extra_env(self):
        return {"META_PORT_BASE": str(META_PORT_BASE), "REPLICA_PORT_BASE": str(REPLICA_PORT_BASE),
                "ZK_PORT": str(ZK_PORT), "ZK_SESSION_TIMEOUT_MS": str(ZK_SESSION_TIMEOUT_MS),
                "ONEBOX_WAIT_SECONDS": "180"}

    def tool(self, *args, timeout=30):
        p = subprocess.run([self.bin] + list(args), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=timeout)
        return p.returncode, p.stdout.decode("utf-8", "replace").strip()

    def leader(self, metas=None):
        rc, out = self.tool("leader", ",".join(metas or self.metas))
        return out.splitlines()[-1].strip() if rc == 0 and out else None

    def wait_leader(self, timeout, not_addr=None, metas=None):
        deadline = time.time() + timeout
        while time.time() < deadline:
            ldr = self.leader(metas)
            if ldr and ldr != not_addr:
                return ldr
            time.sleep(0.2)
        raise AssertionError("no meta leader (other than %s) after %ss; %s"
                             % (not_addr, timeout, self.log_hint()))

    def meta_index(self, addr):
        return self.metas.index(addr) + 1

    def meta_pid(self, i):
        with open(os.path.join(self.onebox_dir, "meta%d" % i, "pegasus_server.pid")) as f:
            return int(f.read().strip())

    def meta_log(self, i):
        return pgharness.server_log_text(os.path.join(self.onebox_dir, "meta%d" % i))

    def zk(self, *cmd):
        """Runs one zkCli.sh command; returns its output lines without the client's noise."""
        p = subprocess.run([ZKCLI, "-server", "127.0.0.1:%d" % ZK_PORT] + list(cmd),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           stdin=subprocess.DEVNULL, timeout=60)
        lines = p.stdout.decode("utf-8", "replace").splitlines()
        return [l for l in lines if l and not l.startswith(("Connecting to", "WATCHER::",
                                                            "WatchedEvent", "SLF4J", "log4j"))]

    def zk_read(self, cmd, path, pick, tries=5):
        """pick(lines) of `zkCli.sh cmd path`, tried again when it gives None: a zkCli run on
        a loaded machine may lose its session before it prints (ConnectionLoss)."""
        lines = []
        for i in range(tries):
            lines = self.zk(cmd, path)
            got = pick(lines)
            if got is not None:
                return got
            time.sleep(1)
        raise AssertionError("zkCli %s %s printed no answer in %d tries; last output: %r"
                             % (cmd, path, tries, lines[-10:]))

    def zk_ls(self, path):
        def pick(lines):
            for l in reversed(lines):
                if l.startswith("[") and l.endswith("]"):
                    inner = l[1:-1].strip()
                    return [x.strip() for x in inner.split(",")] if inner else []
            return None
        return self.zk_read("ls", path, pick)

    def zk_get(self, path):
        def pick(lines):
            return next((l for l in lines if l.startswith("{") or l.startswith("127.0.0.1:")),
                        None)
        return self.zk_read("get", path, pick)

    def log_hint(self):
        return "logs under %s/{zookeeper,meta1..3,replica1..3}" % self.onebox_dir


def wait_gone(pid, timeout=30.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:
            with open("/proc/%d/stat" % pid) as f:
                if f.read().split(")")[-1].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


@pytest.fixture(scope="module")
def zc(reactor_thread):
    c = ZkCluster()
    if c.bin is None:
        pytest.skip("no pegasus_server binary (set PEGASUS_SERVER_BIN)")
    with open(REPORT, "w") as f:
        f.write("# meta failover report, %s, onebox %s\n"
                % (time.strftime("%Y-%m-%d %H:%M:%S"), c.onebox_dir))
    try:
        # Installs and starts ZooKeeper when needed; any failure there fails the tests.
        c.run("start_onebox", "-m", "3", timeout=900)
        with open(c.run_log, "rb") as f:
            last = f.read().rsplit(b"run.sh start_onebox", 1)[-1]
        starts = last.count(b"INFO: started zookeeper")
        with open(REPORT, "a") as f:
            # run.sh retries a ZooKeeper that exits before answering; say when it had to
            f.write("zookeeper started after %d attempt(s)\n" % starts)
        c.wait_healthy()
        yield c
    finally:
        c.destroy()


def test_zookeeper_layout_and_leader_hints(zc):
    leader = zc.wait_leader(60)
    assert leader in zc.metas, leader
    report("leader after start: %s" % leader)
    for i in (1, 2, 3):
        with open(os.path.join(zc.onebox_dir, "meta%d" % i, "config.ini")) as f:
            cfg = f.read()
        assert "meta_state_service_zookeeper" in cfg and "127.0.0.1:%d" % ZK_PORT in cfg

    # upstream's layout: <root>/apps/<id> (app_info JSON) / <pidx> (partition JSON)
    apps = zc.zk_ls(CLUSTER_ROOT + "/apps")
    assert apps, "no app under %s/apps" % CLUSTER_ROOT
    found = None
    for a in apps:
        info = json.loads(zc.zk_get("%s/apps/%s" % (CLUSTER_ROOT, a)))
        if info["app_name"] == TABLE:
            found = (a, info)
    assert found, "table %s not in ZooKeeper: %r" % (TABLE, apps)
    app_id, info = found
    assert list(info.keys())[:5] == ["status", "app_type", "app_name", "app_id",
                                     "partition_count"], info
    assert info["status"] == "app_status::AS_AVAILABLE" and info["app_id"] == int(app_id)
    parts = zc.zk_ls("%s/apps/%s" % (CLUSTER_ROOT, app_id))
    assert sorted(int(p) for p in parts if p.isdigit()) == list(range(info["partition_count"]))
    p0 = json.loads(zc.zk_get("%s/apps/%s/0" % (CLUSTER_ROOT, app_id)))
    assert list(p0.keys()) == ["pid", "ballot", "max_replica_count", "primary", "secondaries",
                               "last_drops", "last_committed_decree", "partition_flags",
                               "hp_primary", "hp_secondaries", "hp_last_drops"], p0
    assert p0["pid"] == "%s.0" % app_id and p0["ballot"] > 0 and len(p0["secondaries"]) == 2

    # the lock: one ephemeral sequential LOCKNODE per meta holding "host:port"; smallest leads
    nodes = zc.zk_ls(LOCK_DIR)
    assert len(nodes) == 3 and all(n.startswith("LOCKNODE") and len(n) == 18 for n in nodes), nodes
    owner = min(nodes, key=lambda n: int(n[len("LOCKNODE"):]))
    assert zc.zk_get("%s/%s" % (LOCK_DIR, owner)) == leader
    assert sorted(zc.zk_get("%s/%s" % (LOCK_DIR, n)) for n in nodes) == sorted(zc.metas)
    report("ZooKeeper tree: apps %s, %s/apps/%s has %d partitions, lock nodes %s (owner %s)"
           % (apps, CLUSTER_ROOT, app_id, len(parts), nodes, owner))

    # every meta names the same leader (non-leaders answer ERR_FORWARD_TO_OTHERS, so the tool
    # moves on to the leader), and a non-leader redirects HTTP state pages to it
    for m in zc.metas:
        assert zc.leader([m] + [x for x in zc.metas if x != m]) == leader
    follower = [m for m in zc.metas if m != leader][0]
    host, port = follower.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("GET", "/meta/apps")
    r = conn.getresponse()
    assert r.status == 307 and r.getheader("Location") == "http://%s/meta/apps" % leader, \
        (r.status, r.getheaders())
    conn.close()

    # the Python client, given only a non-leader first, still finds the table's partitions
    c = pgharness.open_client([follower, leader], TABLE, deadline_s=60)
    try:
        assert c.set("metafo-hint", "k", "v") == (OK, None)
        assert c.get("metafo-hint", "k") == (OK, b"v")
    finally:
        c.close()


def test_kill9_leader_under_writers(zc):
    state = {"acked": {}, "attempted": {}}
    old = zc.wait_leader(60)
    old_i = zc.meta_index(old)
    prefix = "metafo-%d" % int(time.time())
    stop, ws, successes, lock = start_writers(zc.metas, prefix, n=4)
    try:
        time.sleep(3)
        with lock:
            assert successes, "no write succeeded before the kill: %r" % (
                [w.last_error for w in ws],)
        t_kill = time.time()
        pid = zc.meta_pid(old_i)
        os.kill(pid, signal.SIGKILL)
        assert wait_gone(pid), "meta%d (pid %d) did not die" % (old_i, pid)
        new = zc.wait_leader(ZK_SESSION_TIMEOUT_MS / 1000.0 + 60, not_addr=old)
        t_leader = time.time()
        heal = zc.wait_healthy()
        t_healthy = time.time()
        # a new table through the new leader, fully served by the replica servers
        rc, out = zc.tool("create_app", ",".join(zc.metas), "after_failover", "4", "3")
        assert rc == 0, out
        zc.wait_healthy("after_failover")
        t_created = time.time()
        time.sleep(2)
        with lock:
            times = sorted(t for t, _ in successes)
        gap, gap_at = longest_gap(times, t_kill, t_healthy + 2)
    finally:
        stop_writers(stop, ws, state)
    report("kill -9 leader meta%d (%s, pid %d): new leader %s after %.2fs (session timeout "
           "%.0fs); table fully healthy %.2fs after the kill (%.1fs of probing); new table "
           "created and served %.1fs after the kill; longest pause of all writes %.2fs (from "
           "+%.1fs)" % (old_i, old, pid, new, t_leader - t_kill, ZK_SESSION_TIMEOUT_MS / 1000.0,
                        t_healthy - t_kill, heal, t_created - t_kill, gap, gap_at))
    acked = sum(len(w.acked) for w in ws)
    report("writers: %d acked of %d attempted, %d errors"
           % (acked, sum(len(w.attempted) for w in ws), sum(w.errors for w in ws)))
    assert acked > 0
    assert new in zc.metas and new != old

    missing, wrong = read_back(zc.metas, state["acked"])
    assert not missing, "%d acknowledged writes lost, e.g. %r" % (len(missing), missing[:10])
    assert not wrong, "%d reads wrong/failed, e.g. %r" % (len(wrong), wrong[:5])
    c = pgharness.open_client(zc.metas, "after_failover", deadline_s=60)
    try:
        assert c.set("nt", "k", "v") == (OK, None)
        assert c.get("nt", "k") == (OK, b"v")
    finally:
        c.close()

    # the new table is in ZooKeeper in upstream's layout, and the dead meta's lock node is gone
    names = {json.loads(zc.zk_get("%s/apps/%s" % (CLUSTER_ROOT, a)))["app_name"]: a
             for a in zc.zk_ls(CLUSTER_ROOT + "/apps")}
    assert "after_failover" in names, names
    assert len(zc.zk_ls("%s/apps/%s" % (CLUSTER_ROOT, names["after_failover"]))) == 4
    holders = sorted(zc.zk_get("%s/%s" % (LOCK_DIR, n)) for n in zc.zk_ls(LOCK_DIR))
    assert old not in holders and len(holders) == 2, holders

    # the killed meta comes back as a follower
    zc.run("start_onebox_instance", "-m", str(old_i), timeout=120)
    time.sleep(2)
    assert zc.wait_leader(30) == new
    assert len(zc.zk_ls(LOCK_DIR)) == 3
    ok, out = zc.probe()
    assert ok, out


class Reader(threading.Thread):
    """Reads known keys in a loop; records the time of every read that returned the right
    value, and counts wrong values (a read error is not wrong, only a pause)."""

    def __init__(self, idx, metas, keys, stop):
        super().__init__(name="reader-%d" % idx, daemon=True)
        self.metas, self.keys, self.stop = metas, keys, stop
        self.ok_times, self.errors, self.wrong = [], 0, []

    def run(self):
        client, i, consecutive = None, 0, 0
        while not self.stop.is_set():
            if client is None:
                try:
                    client = Client(self.metas, TABLE, 3000)
                    client.init()
                except Exception:  # noqa: BLE001 - init failures are retried like errors
                    pass
            (hk, sk), v = self.keys[i % len(self.keys)]
            i += 1
            try:
                r = client.get(hk, sk)
            except Exception as e:  # noqa: BLE001
                r = ("exception", type(e).__name__)
            if isinstance(r, tuple) and r[0] == OK:
                if r[1] == v:
                    self.ok_times.append(time.time())
                else:
                    self.wrong.append(((hk, sk), v, r))
                consecutive = 0
                continue
            self.errors += 1
            consecutive += 1
            if consecutive % 2 == 0:   # see Writer: a fresh client re-queries the meta
                client.close()
                client = None
            time.sleep(0.05)
        if client is not None:
            client.close()


def preload(metas, prefix, n=200):
    c = pgharness.open_client(metas, TABLE, deadline_s=60)
    keys = []
    try:
        for i in range(n):
            hk, sk, v = "%s-r%03d" % (prefix, i), "k", ("v%d" % i).encode()
            assert c.set(hk, sk, v) == (OK, None)
            keys.append(((hk, sk), v))
    finally:
        c.close()
    return keys


def zookeeper_outage(zc, how, seconds):
    """Kills (`kill`) or freezes (`stop`) the onebox's ZooKeeper for `seconds` under 4 writers
    and 2 readers; returns the measured windows. Reads and writes must go on: the metas keep
    their sessions (and the leader its lock) while ZooKeeper is away, and keep answering
    beacons, so the replica servers' leases hold."""
    leader = zc.wait_leader(60)
    with open(os.path.join(zc.onebox_dir, "zookeeper", "pegasus_server.pid")) as f:
        zk_pid = int(f.read().strip())
    prefix = "zk%s-%d" % (how, int(time.time()))
    keys = preload(zc.metas, prefix)
    state = {"acked": {}, "attempted": {}}
    stop, ws, successes, lock = start_writers(zc.metas, prefix, n=4)
    rstop = threading.Event()
    rs = [Reader(i, zc.metas, keys[i::2], rstop) for i in range(2)]
    for r in rs:
        r.start()
    try:
        time.sleep(3)
        with lock:
            assert successes, "no write succeeded before the outage: %r" % (
                [w.last_error for w in ws],)
        t_out = time.time()
        if how == "kill":
            os.kill(zk_pid, signal.SIGKILL)
            assert wait_gone(zk_pid), "zookeeper (pid %d) did not die" % zk_pid
            time.sleep(seconds)
            during = zc.leader()
            zc.run("start_zk", timeout=120)
        else:
            os.kill(zk_pid, signal.SIGSTOP)
            try:
                time.sleep(seconds)
                during = zc.leader()
            finally:
                os.kill(zk_pid, signal.SIGCONT)
        t_back = time.time()
        time.sleep(8)
        t_end = time.time()
        after = zc.wait_leader(60)
        # table changes work again through whichever meta leads now
        name = "after_zk_%s" % how
        rc, out = zc.tool("create_app", ",".join(zc.metas), name, "4", "3")
        assert rc == 0, out
        zc.wait_healthy(name)
        t_created = time.time()
    finally:
        stop_writers(stop, ws, state)
        rstop.set()
        for r in rs:
            r.join(timeout=60)
    with lock:
        times = sorted(t for t, _ in successes)
    wgap, wgap_at = longest_gap(times, t_out, t_end)
    rgap, rgap_at = longest_gap(sorted(t for r in rs for t in r.ok_times), t_out, t_end)
    report("zookeeper %s for %.1fs under 4 writers and 2 readers: leader before %s, during %s, "
           "after %s; longest pause of writes %.2fs (from +%.1fs), of reads %.2fs (from +%.1fs); "
           "table %s created and served %.1fs after ZooKeeper was back; %d reads, %d read "
           "errors"
           % ("killed" if how == "kill" else "SIGSTOPped", t_back - t_out, leader, during, after,
              wgap, wgap_at, rgap, rgap_at, name, t_created - t_back,
              sum(len(r.ok_times) for r in rs), sum(r.errors for r in rs)))
    assert not [w for r in rs for w in r.wrong], [w for r in rs for w in r.wrong][:5]
    assert wgap < 5.0, "writes stopped for %.1fs during the ZooKeeper outage" % wgap
    assert rgap < 5.0, "reads stopped for %.1fs during the ZooKeeper outage" % rgap
    missing, wrong = read_back(zc.metas, state["acked"])
    assert not missing, "%d acknowledged writes lost, e.g. %r" % (len(missing), missing[:10])
    assert not wrong, "%d reads wrong/failed, e.g. %r" % (len(wrong), wrong[:5])
    c = pgharness.open_client(zc.metas, name, deadline_s=60)
    try:
        assert c.set("nt", "k", "v") == (OK, None)
        assert c.get("nt", "k") == (OK, b"v")
    finally:
        c.close()
    zc.wait_healthy()
    return leader, during, after


def test_zookeeper_killed_for_30s_keeps_data_flowing(zc):
    """30 s is three session timeouts: the Rust client gives the session up on its own after
    14 s, and the meta resumes it once ZooKeeper is back (the server restored it from its
    log), so the leader keeps its lock throughout, as upstream's C client would."""
    leader, during, after = zookeeper_outage(zc, "kill", 30)
    assert during == leader, "the leader gave up its lock while ZooKeeper was down"
    assert after == leader, "leadership moved after the outage (%s -> %s)" % (leader, after)


def test_zookeeper_frozen_for_15s_keeps_data_flowing(zc):
    """A frozen ZooKeeper may expire every session as soon as it runs again (their deadlines
    passed while it was stopped): then every meta restarts and queues for the lock anew, and
    the replica servers' leases must outlive that."""
    zookeeper_outage(zc, "stop", 15)


def test_leader_losing_its_session_steps_down(zc):
    old = zc.wait_leader(60)
    old_i = zc.meta_index(old)
    pid = zc.meta_pid(old_i)
    log_before = len(zc.meta_log(old_i))
    state = {"acked": {}, "attempted": {}}
    stop, ws, successes, lock = start_writers(zc.metas, "metastop-%d" % int(time.time()), n=4)
    time.sleep(3)
    try:
        # Freeze the leader for longer than its session timeout: ZooKeeper expires the session and
        # another meta takes over. Once thawed, the old leader must give up leadership: it leaves
        # and starts its process anew (same pid), queueing for the lock behind the new leader.
        t0 = time.time()
        os.kill(pid, signal.SIGSTOP)
        try:
            others = [m for m in zc.metas if m != old]
            new = zc.wait_leader(ZK_SESSION_TIMEOUT_MS / 1000.0 + 60, metas=others)
            t_new = time.time()
        finally:
            os.kill(pid, signal.SIGCONT)
        deadline = time.time() + 30
        while "ZooKeeper session expired" not in zc.meta_log(old_i)[log_before:]:
            assert time.time() < deadline, "meta%d did not notice its expired session" % old_i
            time.sleep(0.1)
        t_noticed = time.time()
        # from then on it never answers as leader, and it rejoins the lock queue
        deadline = time.time() + 60
        while True:
            assert zc.leader([old]) is None, "meta%d still acts as leader" % old_i
            if len(zc.zk_ls(LOCK_DIR)) == 3:
                break
            assert time.time() < deadline, "meta%d did not queue for the lock again" % old_i
            time.sleep(0.5)
        t_back = time.time()
        assert zc.leader([old]) is None
        assert zc.wait_leader(30) == new
        assert zc.meta_pid(old_i) == pid and not wait_gone(pid, timeout=0.5)
        zc.wait_healthy()
        t_healthy = time.time()
        time.sleep(2)
    finally:
        stop.set()
    stop_writers(stop, ws, state)
    with lock:
        times = sorted(t for t, _ in successes)
    gap, gap_at = longest_gap(times, t0, t_healthy + 2)
    report("SIGSTOP leader meta%d (%s) under 4 writers: %s took over after %.1fs; after SIGCONT "
           "the old leader saw its session expired within %.1fs, restarted and queued again as a "
           "follower %.1fs later; longest pause of all writes %.2fs (from +%.1fs); %d acked"
           % (old_i, old, new, t_new - t0, t_noticed - t_new, t_back - t_noticed, gap, gap_at,
              len(state["acked"])))
    missing, wrong = read_back(zc.metas, state["acked"])
    assert not missing, "%d acknowledged writes lost, e.g. %r" % (len(missing), missing[:10])
    assert not wrong, "%d reads wrong/failed, e.g. %r" % (len(wrong), wrong[:5])
