# Cross-cluster duplication between two private oneboxes: "onebox" (1 meta, 3 replica servers,
# ports 20601/20801) ships table `dupt` to "onebox2" (ports 20701/20901), each knowing the other
# through [pegasus.clusters] and [duplication-group]. The shared admin-cli adds, lists, pauses,
# starts and removes the duplication (`dup add -c onebox2` without the checkpoint: DS_LOG), with
# upstream's refusals; pypegasus3 writes on the master and reads on the follower, which must
# end up holding exactly what was written after the duplication began (puts, multi-puts,
# removes, multi-removes, overwrites), nothing while paused, and all of it once started again;
# the master's and the follower's metrics and the legacy perf counters the admin-cli's
# table-migrator reads show the shipping. `dup add -p` creates the follower table and copies the
# checkpoint; the admin-cli's table-migrator moves a table and switches its metaproxy node in
# the master's ZooKeeper (the master onebox keeps its state in ZooKeeper, port 23281). A
# failover while the duplication is paused loses nothing it had not shipped: the
# secondaries keep those private-log files too (the primary's confirmed decree in group
# checks).
import json
import os
import re
import subprocess
import time
import urllib.error
import urllib.request

import pytest

import pgharness
from pgharness import NOT_FOUND, OK

pytestmark = pytest.mark.restart  # clusters of their own; sorted with the restarting tests

A_META, A_REPLICA = 20600, 20800
B_META, B_REPLICA = 20700, 20900
REPORT = os.path.join(pgharness.LOG_DIR, "dup_report.txt")
report = pgharness.reporter("dup", REPORT)
A_ZK_PORT = 23281   # the master keeps its state in ZooKeeper, which table-migrator's switch uses
ZKCLI = "/usr/share/zookeeper/bin/zkCli.sh"
TABLE = "dupt"
COMMON = {
    ("duplication-group", "onebox"): "1",
    ("duplication-group", "onebox2"): "2",
    ("replication", "duplication_sync_period_second"): "1",
    ("replication", "dup_progress_min_update_period_ms"): "500",
}
# The master's private logs roll every MiB and are collected as soon as flushed (flush every
# second, nothing reserved), and its primaries group-check every second: the failover test
# needs collected logs within seconds.
MASTER_LOGS = {
    ("replication", "log_private_file_size_mb"): "1",
    ("replication", "log_private_reserve_max_size_mb"): "0",
    ("replication", "log_private_reserve_max_time_seconds"): "0",
    ("replication", "checkpoint_interval_seconds"): "1",
    ("replication", "group_check_interval_ms"): "1000",
}


class DupCluster(pgharness.ConfiguredOnebox):
    def __init__(self, name, meta_base, replica_base, settings, zk_port=None):
        super().__init__("pegasus-%s-" % name, "%s_run_sh.log" % name, meta_base,
                         replica_base, settings, pgharness.log)
        self.name = name
        self.zk_port = zk_port

    def extra_env(self):
        env = super().extra_env()
        if self.zk_port:
            env.update({"ONEBOX_ZOOKEEPER": "1", "ZK_PORT": str(self.zk_port)})
        return env

    def zk(self, *cmd):
        """One zkCli.sh command against this cluster's ZooKeeper; its output lines."""
        p = subprocess.run([ZKCLI, "-server", "127.0.0.1:%d" % self.zk_port] + list(cmd),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           stdin=subprocess.DEVNULL, timeout=60)
        return p.stdout.decode("utf-8", "replace").splitlines()

    def zk_create(self, path, data, tries=5):
        """Creates znode `path` and checks it exists (`stat` prints its cZxid), trying again
        when a zkCli run on a loaded machine lost its session before it acted."""
        for _ in range(tries):
            self.zk("create", path, data)
            if any(l.startswith("cZxid") for l in self.zk("stat", path)):
                return
            time.sleep(1)
        raise AssertionError("zkCli could not create %s in %d tries" % (path, tries))

    def dup_page(self, table=TABLE):
        url = "http://%s/meta/app/duplication?name=%s" % (self.metas[0], table)
        with urllib.request.urlopen(url, timeout=10) as r:
            return json.loads(r.read())

    def wait_dup_started(self, table=TABLE, partitions=4):
        """Waits until the primaries persisted the decree their duplication starts after (they
        ship nothing before); returns the meta's page of the table's duplications."""
        deadline = time.time() + 30
        while True:
            page = self.dup_page(table)
            states = page["1"]["partition_states"]
            if len(states) == partitions and all(
                    s["confirmed_decree"] >= 0 for s in states.values()):
                return page
            assert time.time() < deadline, states
            time.sleep(0.5)

    def dup_page_appid(self):
        return self.dup_page()["appid"]

    def replica_duplicating(self, n, app_id):
        """Whether any primary of table `app_id` on replica server n is shipping."""
        url = "http://127.0.0.1:%d/replica/duplication?appid=%d" % (self.replica_port_base + n,
                                                                   app_id)
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                doc = json.loads(r.read())
        except urllib.error.HTTPError:
            return False   # no primary or no duplication here
        return any(p["duplicating"] for d in doc.values() for p in d.values())

    def metrics(self, n, names):
        """{metric: sum over the replica entities of replica server n} for `names`."""
        url = "http://127.0.0.1:%d/metrics?types=replica&metrics=%s" % (
            self.replica_port_base + n, ",".join(names))
        with urllib.request.urlopen(url, timeout=10) as r:
            doc = json.loads(r.read())
        out = dict.fromkeys(names, 0)
        for e in doc["entities"]:
            for m in e["metrics"]:
                if "value" in m:
                    out[m["name"]] += m["value"]
        return out


@pytest.fixture(scope="module")
def clusters(reactor_thread):
    with open(REPORT, "w") as f:
        f.write("# dup report, %s\n" % time.strftime("%Y-%m-%d %H:%M:%S"))
    a_settings = dict(COMMON)
    a_settings.update(MASTER_LOGS)
    a_settings[("pegasus.clusters", "onebox2")] = "127.0.0.1:%d" % (B_META + 1)
    b_settings = dict(COMMON)
    b_settings[("replication", "cluster_name")] = "onebox2"
    b_settings[("pegasus.clusters", "onebox")] = "127.0.0.1:%d" % (A_META + 1)
    a = DupCluster("dupmaster", A_META, A_REPLICA, a_settings, zk_port=A_ZK_PORT)
    b = DupCluster("dupfollower", B_META, B_REPLICA, b_settings)
    if a.bin is None:
        pytest.skip("no pegasus_server binary (set PEGASUS_SERVER_BIN)")
    try:
        for c in (a, b):
            c.run("start_onebox", timeout=300)
        for c in (a, b):
            c.wait_healthy()
            out = c.admin("create -p 4 -r 3 %s" % TABLE)
            assert "error" not in out.lower(), out
            c.wait_healthy(TABLE)
        yield a, b
    finally:
        a.destroy()
        b.destroy()


def dupid_of(out):
    m = re.search(r"successfully add duplication \[dupid: (\d+)\]", out)
    assert m, out
    return int(m.group(1))


def dup_list(c):
    out = c.admin("use %s" % TABLE, "dup list")
    start = out.find("[")
    assert start >= 0, out
    return json.loads(out[start:out.rfind("]") + 1])


def wait_on(b_client, expected, timeout=60):
    """Waits until the follower answers every (hk, sk) as expected (None: absent)."""
    deadline = time.time() + timeout
    pending = dict(expected)
    while pending and time.time() < deadline:
        for (hk, sk), v in list(pending.items()):
            got = b_client.get(hk, sk)
            if (v is None and got[0] == NOT_FOUND) or (v is not None and got == (OK, v.encode())):
                del pending[(hk, sk)]
        if pending:
            time.sleep(0.5)
    assert not pending, "not on the follower after %ds: %s" % (timeout, sorted(pending)[:10])


def test_duplication_ships_writes_to_the_follower(clusters):
    a, b = clusters
    ca = pgharness.open_client(a.metas, TABLE, deadline_s=60)
    cb = pgharness.open_client(b.metas, TABLE, deadline_s=60)
    try:
        # written before the duplication: not shipped
        for i in range(20):
            assert ca.set("before", "s%02d" % i, "old") == (OK, None)

        # upstream's refusals
        out = a.admin("use %s" % TABLE, "dup add -c onebox")
        assert "illegal operation: adding duplication to itself" in out, out
        out = a.admin("use %s" % TABLE, "dup add -c nowhere")
        assert "get_duplication_cluster_id(nowhere) failed" in out, out
        assert "failed to get cluster id for  << nowhere" in out, out

        out = a.admin("use %s" % TABLE, "dup add -c onebox2")
        dupid = dupid_of(out)
        out = a.admin("use %s" % TABLE, "dup add -c onebox2")
        assert "ERR_DUP_EXIST" in out, out
        entries = dup_list(a)
        assert len(entries) == 1, entries
        e = entries[0]
        assert (e["dupid"], e["status"], e["remote"]) == (dupid, "DS_LOG", "onebox2"), e
        # (the shipped admin-cli's client predates the remote app name and partition states;
        # the meta's page shows them)
        page = a.dup_page()
        assert set(page) == {"1", "appid"}, page
        p = page["1"]
        assert (p["dupid"], p["status"], p["remote"]) == (dupid, "DS_LOG", "onebox2"), p
        assert p["remote_app_name"] == TABLE and p["fail_mode"] == "FAIL_SLOW", p
        assert p["remote_replica_count"] == 3, p
        assert sorted(p["partition_states"]) == ["0", "1", "2", "3"], p

        a.wait_dup_started()

        expected = {}
        for i in range(300):
            hk, sk, v = "h%02d" % (i % 31), "s%03d" % i, "v%d" % i
            assert ca.set(hk, sk, v) == (OK, None)
            expected[(hk, sk)] = v
        for i in range(10):
            kvs = {"m%d" % j: "mv%d-%d" % (i, j) for j in range(5)}
            assert ca.multi_set("multi%d" % i, kvs)[0] == OK
            for sk, v in kvs.items():
                expected[("multi%d" % i, sk)] = v
        for i in range(0, 300, 7):
            hk, sk = "h%02d" % (i % 31), "s%03d" % i
            assert ca.remove(hk, sk)[0] == OK
            expected[(hk, sk)] = None
        for i in range(0, 300, 11):
            hk, sk = "h%02d" % (i % 31), "s%03d" % i
            assert ca.set(hk, sk, "again") == (OK, None)
            expected[(hk, sk)] = "again"
        assert ca.multi_del("multi0", {"m0", "m1"})[0] == OK
        expected[("multi0", "m0")] = expected[("multi0", "m1")] = None
        t0 = time.time()
        wait_on(cb, expected)
        report("duplication: %d keys on the follower %.1fs after the last write"
               % (len(expected), time.time() - t0))
        for i in range(20):
            assert cb.get("before", "s%02d" % i)[0] == NOT_FOUND

        # metrics: the master shipped, the follower applied
        shipped = sum(a.metrics(n, ["dup_shipped_successful_requests"])
                      ["dup_shipped_successful_requests"] for n in (1, 2, 3))
        applied = sum(b.metrics(n, ["dup_requests"])["dup_requests"] for n in (1, 2, 3))
        assert shipped > 0, shipped
        # every write after the start reached the follower's primaries (its secondaries
        # count theirs as they commit)
        assert applied >= 300 + 10 + 43 + 28 + 1, applied
        # the legacy counters table-migrator reads: one pending count per node, a rate per
        # partition
        out = a.admin("remote-command replica perf-counters-by-substr pending_mutations_count",
                      "remote-command replica perf-counters-by-substr dup_shipped_ops@")
        assert len(re.findall(r"dup\.pending_mutations_count", out)) == 3, out
        assert len(re.findall(r"dup_shipped_ops@\d+\.\d+", out)) >= 12, out

        # paused: nothing ships; started again: everything does
        out = a.admin("use %s" % TABLE, "dup pause -d %d" % dupid)
        assert 'DS_PAUSE table "%s" done [dupid: %d]' % (TABLE, dupid) in out, out
        assert dup_list(a)[0]["status"] == "DS_PAUSE"
        # the primaries learn the pause at their next sync
        app_id = a.dup_page_appid()
        deadline = time.time() + 60
        while time.time() < deadline and any(a.replica_duplicating(n, app_id) for n in (1, 2, 3)):
            time.sleep(0.5)
        assert not any(a.replica_duplicating(n, app_id) for n in (1, 2, 3))
        paused = {}
        for i in range(30):
            assert ca.set("paused", "s%02d" % i, "p%d" % i) == (OK, None)
            paused[("paused", "s%02d" % i)] = "p%d" % i
        time.sleep(5)
        assert all(cb.get(hk, sk)[0] == NOT_FOUND for hk, sk in paused), "shipped while paused"
        out = a.admin("use %s" % TABLE, "dup start -d %d" % dupid)
        assert 'DS_LOG table "%s" done [dupid: %d]' % (TABLE, dupid) in out, out
        wait_on(cb, paused)

        out = a.admin("use %s" % TABLE, "dup remove -d %d" % dupid)
        assert 'DS_REMOVED table "%s" done [dupid: %d]' % (TABLE, dupid) in out, out
        assert dup_list(a) == []
        assert a.dup_page() is None   # upstream's `null` for a table without duplications
        out = a.admin("use %s" % TABLE, "dup start -d %d" % dupid)
        assert "ERR_OBJECT_NOT_FOUND" in out, out
    finally:
        ca.close()
        cb.close()


def test_duplication_with_the_checkpoint_creates_the_follower_table(clusters):
    """`dup add -p`: the master's primaries make a checkpoint, the master meta creates the
    follower table on onebox2 (with the duplication.* envs), the follower's primaries copy
    the master's checkpoint, then the log ships: the follower holds the records written
    before the duplication and after it."""
    a, b = clusters
    table = "dupck"
    out = a.admin("create -p 4 -r 3 %s" % table)
    assert "error" not in out.lower(), out
    a.wait_healthy(table)
    assert table not in b.admin("ls"), "the follower table exists already"
    ca = pgharness.open_client(a.metas, table, deadline_s=60)
    before = {}
    try:
        for i in range(200):
            hk, sk, v = "c%02d" % (i % 17), "s%03d" % i, "b%d" % i
            assert ca.set(hk, sk, v) == (OK, None)
            before[(hk, sk)] = v
        out = a.admin("use %s" % table, "dup add -c onebox2 -p")
        dupid = dupid_of(out)
        t0 = time.time()
        status, seen = None, []
        while time.time() - t0 < 180:
            status = a.dup_page(table)["1"]["status"]
            if not seen or seen[-1] != status:
                seen.append(status)
            if status == "DS_LOG":
                break
            time.sleep(1)
        report("checkpoint duplication %d: %s in %.1fs"
               % (dupid, " -> ".join(seen), time.time() - t0))
        assert status == "DS_LOG", seen
        # the follower table, created by the master meta with upstream's envs
        with urllib.request.urlopen("http://%s/meta/app_envs?name=%s" % (b.metas[0], table),
                                    timeout=10) as r:
            envs = json.loads(r.read())
        assert envs.get("duplication.master_cluster") == "onebox", envs
        assert envs.get("duplication.master_metas") == a.metas[0], envs
        assert envs.get("duplication.master_app_name") == table, envs
        assert envs.get("duplication.follower_app_status") == "created", envs
        after = {}
        for i in range(100):
            hk, sk, v = "c%02d" % (i % 17), "t%03d" % i, "a%d" % i
            assert ca.set(hk, sk, v) == (OK, None)
            after[(hk, sk)] = v
        cb = pgharness.open_client(b.metas, table, deadline_s=60)
        try:
            wait_on(cb, {**before, **after})
        finally:
            cb.close()
    finally:
        ca.close()


def test_table_migrator_moves_a_table(clusters):
    """The shared admin-cli's `table-migrator` with a metaproxy root: it checks the data
    version on every node, adds a duplication with the checkpoint, waits on the nodes'
    pending-mutation counters, denies writes, waits until no partition ships any more, then
    points the table's metaproxy node in the master's ZooKeeper at onebox2 and tells the
    source's clients to reconfigure; the follower holds every record written before."""
    a, b = clusters
    table = "dupmig"
    out = a.admin("create -p 4 -r 3 %s" % table)
    assert "error" not in out.lower(), out
    a.wait_healthy(table)
    ca = pgharness.open_client(a.metas, table, deadline_s=60)
    data = {}
    try:
        for i in range(300):
            hk, sk, v = "g%02d" % (i % 19), "s%03d" % i, "m%d" % i
            assert ca.set(hk, sk, v) == (OK, None)
            data[(hk, sk)] = v
    finally:
        ca.close()
    # metaproxy's record of the table: {cluster_name, meta_addrs}
    a.zk_create("/metaproxy", "")
    node = json.dumps({"cluster_name": "onebox", "meta_addrs": a.metas[0]})
    a.zk_create("/metaproxy/%s" % table, node)
    t0 = time.time()
    # The tool reads perf counters through sessions the admin-cli opens only when a node has
    # been called before in the same process (it panics otherwise, against upstream servers
    # too), so a remote command to every replica server comes first.
    out = a.admin("remote-command replica server-info",
                  "table-migrator -t %s -c onebox2 -m 127.0.0.1:%d -r /metaproxy"
                  % (table, B_META + 1),
                  timeout=600)
    report("table-migrator took %.0fs:\n%s" % (time.time() - t0, out))
    assert "panic" not in out and "error" not in out.lower(), out
    got = []
    for _ in range(5):   # a zkCli run on a loaded machine may lose its session before it prints
        got = [l for l in a.zk("get", "/metaproxy/%s" % table) if l.startswith("{")]
        if got:
            break
        time.sleep(1)
    assert got and json.loads(got[-1]) == {"cluster_name": "onebox2",
                                           "meta_addrs": "127.0.0.1:%d" % (B_META + 1)}, got
    with urllib.request.urlopen("http://%s/meta/app_envs?name=%s" % (a.metas[0], table),
                                timeout=10) as r:
        assert json.loads(r.read())["replica.deny_client_request"] == "reconfig*all"
    # the source takes no write any more (and sends its clients to reconfigure)
    ca = pgharness.Client(a.metas, table, 3000)
    try:
        ca.init()
        # (pypegasus answers a refused write with a bare error code or an (error, ...) tuple)
        r = ca.set("g00", "late", "x")
        assert not (isinstance(r, tuple) and r[0] == OK), r
    finally:
        ca.close()
    cb = pgharness.open_client(b.metas, table, deadline_s=60)
    try:
        wait_on(cb, data, timeout=30)
    finally:
        cb.close()


def table_primaries(metas, table):
    """{pidx: replica server port} of a table's primaries, as the meta reports them."""
    c = pgharness.open_client(metas, table, deadline_s=60)
    try:
        def get():
            return {p: a.to_host_port()[1] for p, a in c.pg.table.partition_dict.items()
                    if a is not None and a.address != 0}
        return pgharness.call(get)
    finally:
        c.close()


def plog_files(c, n, app_id):
    """{pidx: number of private-log files} of table app_id on replica server n."""
    out = {}
    base = os.path.join(c.onebox_dir, "replica%d" % n)
    for root, dirs, files in os.walk(base):
        m = re.search(r"/%d\.(\d+)\.pegasus/plog$" % app_id, root)
        if m:
            out[int(m.group(1))] = len([f for f in files if f.startswith("log.")])
    return out


def test_a_failover_loses_nothing_the_duplication_had_not_shipped(clusters):
    """While a duplication is paused the primaries keep every private-log file not yet
    shipped, and tell their secondaries so in group checks (upstream's confirmed_decree),
    whose logs roll and are collected meanwhile. The replica server leading the most
    partitions is then stopped: the secondaries that take over ship, once the duplication is
    started again, everything written during the pause from their own logs."""
    a, b = clusters
    table = "dupfo"
    for c in (a, b):
        out = c.admin("create -p 4 -r 3 %s" % table)
        assert "error" not in out.lower(), out
        c.wait_healthy(table)
    ca = pgharness.open_client(a.metas, table, deadline_s=60)
    cb = pgharness.open_client(b.metas, table, deadline_s=60)
    stopped = None
    try:
        out = a.admin("use %s" % table, "dup add -c onebox2")
        dupid = dupid_of(out)
        app_id = a.wait_dup_started(table)["appid"]
        first = {("first", "s%02d" % i): "f%d" % i for i in range(40)}
        for (hk, sk), v in first.items():
            assert ca.set(hk, sk, v) == (OK, None)
        wait_on(cb, first)
        out = a.admin("use %s" % table, "dup pause -d %d" % dupid)
        assert "DS_PAUSE" in out, out
        deadline = time.time() + 60
        while time.time() < deadline and any(a.replica_duplicating(n, app_id) for n in (1, 2, 3)):
            time.sleep(0.5)
        assert not any(a.replica_duplicating(n, app_id) for n in (1, 2, 3))
        # About 3 MiB per partition, in 1 KiB values: a few log files each.
        paused, pad = {}, "x" * 1000
        for i in range(1200):
            hk = "p%03d" % (i % 97)
            kvs = {"s%04d-%d" % (i, j): "%d-%d:%s" % (i, j, pad) for j in range(10)}
            assert ca.multi_set(hk, kvs)[0] == OK
            for sk, v in kvs.items():
                paused[(hk, sk)] = v
        # Flushed, group-checked and collected within a few seconds; the secondaries' logs
        # still hold what was written during the pause (their first file may go).
        time.sleep(6)
        files = {n: plog_files(a, n, app_id) for n in (1, 2, 3)}
        report("failover: plog files per node and partition during the pause: %s"
               % files)
        # every member, secondaries included, still holds the paused writes' files (a
        # collected log keeps its last file only)
        assert all(len(f) == 4 and min(f.values()) >= 2 for f in files.values()), files
        prim = table_primaries(a.metas, table)
        counts = {}
        for port in prim.values():
            counts[port] = counts.get(port, 0) + 1
        port = max(counts, key=counts.get)
        stopped = port - A_REPLICA
        a.run("stop_onebox_instance", "-r", str(stopped))
        deadline = time.time() + 120
        while time.time() < deadline:
            now = table_primaries(a.metas, table)
            if len(now) == 4 and port not in now.values():
                break
            time.sleep(1)
        assert len(now) == 4 and port not in now.values(), now
        moved = sorted(p for p, q in prim.items() if q == port)
        report("failover: replica server %d (primary of %s) stopped; primaries now %s"
               % (stopped, moved, now))
        out = a.admin("use %s" % table, "dup start -d %d" % dupid)
        assert "DS_LOG" in out, out
        t0 = time.time()
        wait_on(cb, paused, timeout=120)
        report("failover: %d paused writes on the follower %.1fs after the start"
               % (len(paused), time.time() - t0))
    finally:
        ca.close()
        cb.close()
        if stopped:
            a.run("start_onebox_instance", "-r", str(stopped), check=False)
