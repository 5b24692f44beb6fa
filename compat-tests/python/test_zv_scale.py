# Scaling a cluster with the shared, unmodified admin-cli on a private onebox (1 meta + 3
# replica servers, ports 24600/24800), under pypegasus3 writers throughout:
# - scale out: a 4th replica server joins with the meta lively; the balancer moves primaries and
#   copies replicas until every node holds the same numbers within one (time and bytes copied
#   reported);
# - scale in: admin-cli nodes-migrator drains the 4th server, which is then stopped;
# - the table's replica count goes 3 -> 2 -> 3 (pegasus_admin set_replica_count, upstream's
#   RPC_CM_SET_MAX_REPLICA_COUNT), and the data really loses and regains replicas;
# - the meta.lb.* remote commands answer as upstream;
# - disks: every replica server has two data dirs (tags ssd1, ssd2); admin-cli disk-capacity,
#   disk-replica, add-disk, disk-migrate (a secondary moved between disks, then reopened there
#   and caught up) and disk-balance;
# and every acknowledged write reads back at the end.
# Figures go to stdout (-s) and to .logs/scale_report.txt.
import os
import re
import subprocess
import time

import pytest

import pgharness

pytestmark = pytest.mark.restart  # a cluster of its own; sorted with the restarting tests

META_PORT_BASE = 24600
REPLICA_PORT_BASE = 24800
TABLE = "temp"
PARTITIONS = 8
N_WRITERS = 4
REPORT = os.path.join(pgharness.LOG_DIR, "scale_report.txt")
ROOT = os.path.normpath(os.path.join(pgharness.HERE, "..", ".."))

report = pgharness.reporter("scale", REPORT)


def node(i):
    return "127.0.0.1:%d" % (REPLICA_PORT_BASE + i)


def admin_cli_path():
    shared = os.environ.get("SHARED_CLIENTS", os.path.join(ROOT, "..", "shared", "clients"))
    if not os.path.isabs(shared):
        shared = os.path.join(ROOT, shared)
    return os.path.join(shared, "bin", "admin-cli")


class ScaleOnebox(pgharness.PrivateOnebox):
    health_timeout = 180.0

    def __init__(self):
        super().__init__("pegasus-scale-", "scale_run_sh.log", report)
        self.metas = ["127.0.0.1:%d" % (META_PORT_BASE + 1)]
        # The balancer runs every 3 s instead of 10 (upstream's lb_interval_ms).
        self.template = os.path.join(self.base, "config.ini")
        with open(os.path.join(ROOT, "conf", "config.ini")) as f:
            text = f.read()
        text = re.sub(r"(?m)^(\s*lb_interval_ms\s*=).*$", r"\g<1> 3000", text)
        # Two data dirs per replica server, relative to its own directory.
        text = re.sub(r"(?m)^(\s*data_dirs\s*=).*$", r"\g<1> ssd1:./ssd1,ssd2:./ssd2", text)
        with open(self.template, "w") as f:
            f.write(text)
        self.workdir = os.path.join(self.base, "admin-cli")
        os.makedirs(self.workdir)

    def extra_env(self):
        return {"META_PORT_BASE": str(META_PORT_BASE), "REPLICA_PORT_BASE": str(REPLICA_PORT_BASE),
                "CONFIG_TEMPLATE": self.template}

    def admin(self, *lines, timeout=120):
        """Feeds command lines to one admin-cli session; returns its output."""
        p = subprocess.run([admin_cli_path(), "-m", ",".join(self.metas)],
                           input=("\n".join(lines) + "\n").encode(), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=timeout, cwd=self.workdir)
        return p.stdout.decode("utf-8", "replace")

    def pegasus_admin(self, *args):
        tool = os.path.join(os.path.dirname(self.bin), "pegasus_admin")
        p = subprocess.run([tool, "-m", ",".join(self.metas)] + list(args),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
        return p.returncode, p.stdout.decode("utf-8", "replace")

    def nodes(self):
        """{node: (replicas, primaries)} of the alive nodes, from admin-cli `nodes`."""
        out = self.admin("nodes")
        got = {}
        for m in re.finditer(r"\((127\.0\.0\.1:\d+)\)\s*\|\s*NS_ALIVE\s*\|\s*(\d+)\s*\|\s*(\d+)",
                             out):
            got[m.group(1)] = (int(m.group(2)), int(m.group(3)))
        return got, out

    def data_bytes(self, i):
        """Bytes in replica server i's data dirs."""
        total = 0
        for disk in ("ssd1", "ssd2"):
            for dirpath, _, files in os.walk(os.path.join(self.onebox_dir, "replica%d" % i, disk)):
                for f in files:
                    try:
                        total += os.path.getsize(os.path.join(dirpath, f))
                    except OSError:
                        pass
        return total


def spread(values):
    return max(values) - min(values)


@pytest.fixture(scope="module")
def ob(reactor_thread):
    c = ScaleOnebox()
    if c.bin is None:
        pytest.skip("no pegasus_server binary (set PEGASUS_SERVER_BIN)")
    if not os.access(admin_cli_path(), os.X_OK):
        pytest.fail("no admin-cli at %s (set SHARED_CLIENTS)" % admin_cli_path())
    with open(REPORT, "w") as f:
        f.write("# scale report, %s\n" % time.strftime("%Y-%m-%d %H:%M:%S"))
    try:
        c.run("start_onebox", "-m", "1", "-r", "3", "-p", str(PARTITIONS), timeout=300)
        c.wait_healthy(TABLE)
        yield c
    finally:
        c.destroy()


class Writers(object):
    """The module's pypegasus3 writers, running from the first test that uses them."""

    def __init__(self, metas):
        self.stop_event, self.ws, self.successes, self.lock = pgharness.start_writers(
            metas, "scale", N_WRITERS, table=TABLE)
        self.state = {"acked": {}, "attempted": {}}

    def stop(self):
        if not self.stop_event.is_set():
            pgharness.stop_writers(self.stop_event, self.ws, self.state)
        return self.state


@pytest.fixture(scope="module")
def writers(ob):
    w = Writers(ob.metas)
    try:
        yield w
    finally:
        w.stop()


def writes_since(w, t):
    with w.lock:
        return sum(1 for (ts, _) in w.successes if ts > t)


def assert_writers_write(w, what, timeout=20.0):
    """Waits for an acknowledged write after now; reports how long the writers took.

    A pypegasus client that saw ERR_INVALID_STATE refreshes its configuration on its 2 s
    timer and closes its replica sessions then, so the writes in flight on them are lost
    and time out (3 s for these writers): after a reconfiguration every writer may be
    waiting out such a timeout at once, whatever the servers do."""
    t = time.time()
    while writes_since(w, t) == 0:
        assert time.time() - t < timeout, "the writers wrote nothing for %.0f s after %s" % (
            timeout, what)
        time.sleep(0.1)
    report("%s: writers acknowledged again after %.1fs" % (what, time.time() - t))


def test_balancer_remote_commands(ob):
    out = ob.admin("remote-command meta meta.lb.only_move_primary",
                   "remote-command meta meta.lb.only_move_primary true",
                   "remote-command meta meta.lb.only_move_primary",
                   "remote-command meta meta.lb.only_move_primary false",
                   "remote-command meta meta.lb.get_balance_operation_count detail",
                   "remote-command meta meta.lb.ignored_app_list get",
                   "remote-command meta meta.lb.assign_delay_ms")
    assert '"meta.lb.only_move_primary": "false"' in out, out
    assert '"meta.lb.only_move_primary": "true"' in out, out
    assert re.search(r'"copy_pri": \d+,\s*"copy_sec": \d+,\s*"move_pri": \d+,\s*"total": -?\d+',
                     out), out
    assert '"ignored_app_id_list": ""' in out, out
    assert '"meta.lb.assign_delay_ms": "600000"' in out, out
    assert "unknown command" not in out, out
    info = ob.admin("cluster-info")
    assert "balance_operation_count" in info and "steady" in info, info


def disk_replicas(ob, n, tag):
    """{gpid: status} that admin-cli disk-capacity lists on disk `tag` of replica server n."""
    out = ob.admin("disk-capacity -n %s -d %s" % (node(n), tag))
    return {m.group(1): m.group(2)
            for m in re.finditer(r"\|\s*(\d+\.\d+)\s*\|\s*(primary|secondary)\s*\|", out)}, out


def test_disks_info_add_and_migrate_under_writers(ob, writers):
    out = ob.admin("disk-capacity -n %s" % node(1))
    caps = re.findall(r"\|\s*(ssd[12])\s*\|\s*(\d+)\s*\|\s*(\d+)\s*\|\s*(\d+)\s*\|", out)
    assert len(caps) == 2 and all(int(c[1]) > 0 for c in caps), out
    # The 8 replicas of this server are spread over both disks (disk-replica counts those
    # serving as primary or secondary: wait for the last to get there after start-up).
    deadline = time.time() + 30
    while True:
        out = ob.admin("disk-replica -n %s" % node(1))
        totals = [int(x) for x in re.findall(
            r"\|\s*ssd[12]\s*\|\s*\d+\s*\|\s*\d+\s*\|\s*(\d+)\s*\|", out)]
        if len(totals) == 2 and sum(totals) == PARTITIONS:
            break
        assert time.time() < deadline, out
        time.sleep(1)
    assert all(t > 0 for t in totals), out
    # A secondary of replica server 1 moves from its disk to the other one.
    on1, out1 = disk_replicas(ob, 1, "ssd1")
    on2, out2 = disk_replicas(ob, 1, "ssd2")
    moves = [(g, "ssd1", "ssd2") for g, st in on1.items() if st == "secondary"] + \
        [(g, "ssd2", "ssd1") for g, st in on2.items() if st == "secondary"]
    assert moves, "no secondary on replica server 1:\n%s\n%s" % (out1, out2)
    gpid, src, dst = moves[0]
    prim = [g for g, st in list(on1.items()) + list(on2.items()) if st == "primary"]
    if prim:
        out = ob.admin("disk-migrate -g %s -n %s -f ssd1 -t ssd2" % (prim[0], node(1)))
        assert "ERR_INVALID_STATE" in out and "PS_PRIMARY" in out, out
    out = ob.admin("disk-migrate -g %s -n %s -f %s -t %s" % (gpid, node(1), src, src))
    assert "ERR_INVALID_PARAMETERS" in out, out
    t0 = time.time()
    out = ob.admin("disk-migrate -g %s -n %s -f %s -t %s" % (gpid, node(1), src, dst))
    assert "error" not in out.lower(), out
    deadline = t0 + 120
    while True:
        now_dst, out = disk_replicas(ob, 1, dst)
        if now_dst.get(gpid) == "secondary":
            break
        assert time.time() < deadline, "%s not serving from %s after 120 s:\n%s\n%s" % (
            gpid, dst, out, ob.log_hint())
        time.sleep(1)
    app, pidx = gpid.split(".")
    name = "%s.%s.pegasus" % (app, pidx)
    reps = os.path.join(ob.onebox_dir, "replica1", "%s", "replica", "reps")
    assert os.path.isdir(os.path.join(reps % dst, name))
    assert os.path.isdir(os.path.join(reps % src, name + ".disk.migrate.ori"))
    report("disk-migrate: %s moved %s -> %s on %s and serves again after %.1fs"
           % (gpid, src, dst, node(1), time.time() - t0))
    # add-disk: a new dir, then the same tag again, then a malformed one.
    new_disk = os.path.join(ob.base, "ssd3")
    out = ob.admin("add-disk -n %s -d ssd3:%s" % (node(1), new_disk))
    assert "add new disk succeed" in out, out
    assert os.path.isdir(os.path.join(new_disk, "replica", "reps"))
    out = ob.admin("add-disk -n %s -d ssd3:%s" % (node(1), new_disk + "x"))
    assert "ERR_NODE_ALREADY_EXIST" in out and "already exist" in out, out
    out = ob.admin("add-disk -n %s -d nocolon" % node(1))
    assert "ERR_INVALID_PARAMETERS" in out and "invalid data_dir item(nocolon)" in out, out
    out = ob.admin("disk-capacity -n %s" % node(1))
    assert "ssd3" in out, out
    # disk-balance: both dirs share one file system here, so there is nothing to balance.
    out = ob.admin("disk-balance -n %s" % node(2), timeout=120)
    assert "no need balance" in out, out


def test_scale_out_balances_a_new_node_under_writers(ob, writers):
    t_start = time.time()
    time.sleep(3)
    assert writes_since(writers, t_start) > 0, "the writers do not write"
    out = ob.admin("meta-level set lively")
    assert "fl_lively" in out, out
    bytes_before = ob.data_bytes(4)
    t0 = time.time()
    ob.run("start_onebox_instance", "-r", "4")
    deadline = t0 + 300
    while True:
        got, out = ob.nodes()
        if len(got) == 4:
            reps = [r for r, _ in got.values()]
            prims = [p for _, p in got.values()]
            if spread(reps) <= 1 and spread(prims) <= 1 and sum(reps) == PARTITIONS * 3 \
                    and healthy(ob):
                break
        assert time.time() < deadline, "not balanced within 300 s:\n%s\n%s" % (out, ob.log_hint())
        time.sleep(2)
    took = time.time() - t0
    copied = ob.data_bytes(4) - bytes_before
    report("scale out: 4th replica server balanced in %.1fs (nodes: %s); %d bytes in its data "
           "dirs" % (took, sorted(got.items()), copied))
    assert copied > 0, "the new replica server received no data"
    assert got[node(4)][0] >= 5, got
    assert_writers_write(writers, "scale out")
    # The balancer's next round (every lb_interval_ms, 3 s here) finds nothing more to do.
    deadline = time.time() + 30
    while True:
        out = ob.admin("remote-command meta meta.lb.get_balance_operation_count")
        if re.search(r'"total": 0\b', out):
            break
        assert time.time() < deadline, "the balancer still counts operations:\n%s" % out
        time.sleep(1)


def healthy(ob):
    ok, _ = ob.probe(TABLE)
    return ok


def test_drain_a_node_with_nodes_migrator_then_stop_it(ob, writers):
    out = ob.admin("meta-level set steady")
    assert "fl_steady" in out, out
    t0 = time.time()
    out = ob.admin("nodes-migrator -f %s -t %s,%s,%s --final_target 3 --batch_target -c 2"
                   % (node(4), node(1), node(2), node(3)), timeout=900)
    took = time.time() - t0
    assert "completed for all origin nodes has been migrated" in out, out[-3000:]
    got, nodes_out = ob.nodes()
    assert got.get(node(4), (0, 0)) == (0, 0), nodes_out
    assert sum(r for r, _ in got.values()) == PARTITIONS * 3, nodes_out
    report("scale in: nodes-migrator drained %s in %.1fs (nodes: %s)"
           % (node(4), took, sorted(got.items())))
    ob.run("stop_onebox_instance", "-r", "4")
    ob.wait_healthy(TABLE)
    # The meta counts the node alive until its beacons are overdue (fd_grace_seconds).
    deadline = time.time() + 60
    while node(4) in ob.nodes()[0]:
        assert time.time() < deadline, "the stopped node is still listed alive after 60 s"
        time.sleep(1)
    assert_writers_write(writers, "drain")


def wait_replicas(ob, total, timeout=180):
    deadline = time.time() + timeout
    while True:
        got, out = ob.nodes()
        if sum(r for r, _ in got.values()) == total and healthy(ob):
            return got
        assert time.time() < deadline, "not %d replicas within %ds:\n%s" % (total, timeout, out)
        time.sleep(1)


def test_replica_count_3_2_3_under_writers(ob, writers):
    rc, out = ob.pegasus_admin("get_replica_count", TABLE)
    assert rc == 0 and "is 3" in out, out
    rc, out = ob.pegasus_admin("set_replica_count", TABLE, "9")
    assert rc != 0 and "ERR_INVALID_PARAMETERS" in out, out
    rc, out = ob.pegasus_admin("set_replica_count", TABLE, "4")
    assert rc != 0 and "not enough alive replica servers(3)" in out, out
    t0 = time.time()
    rc, out = ob.pegasus_admin("set_replica_count", TABLE, "2")
    assert rc == 0 and "from 3 to 2" in out, out
    got = wait_replicas(ob, PARTITIONS * 2)
    report("replica count 3 -> 2 in %.1fs (nodes: %s)" % (time.time() - t0, sorted(got.items())))
    rc, out = ob.pegasus_admin("get_replica_count", TABLE)
    assert "is 2" in out, out
    t0 = time.time()
    rc, out = ob.pegasus_admin("set_replica_count", TABLE, "3")
    assert rc == 0 and "from 2 to 3" in out, out
    got = wait_replicas(ob, PARTITIONS * 3)
    report("replica count 2 -> 3 in %.1fs (nodes: %s)" % (time.time() - t0, sorted(got.items())))
    assert_writers_write(writers, "replica count 3 -> 2 -> 3")


def test_nothing_acknowledged_is_lost(ob, writers):
    state = writers.stop()
    acked = state["acked"]
    assert len(acked) > 1000, "too few writes were acknowledged: %d" % len(acked)
    errors = sum(w.errors for w in writers.ws)
    t0 = time.time()
    missing, wrong = pgharness.read_back(ob.metas, acked, table=TABLE)
    assert not missing, "%d acknowledged writes lost, e.g. %r\n%s" % (
        len(missing), sorted(missing)[:10], ob.log_hint())
    assert not wrong, "%d reads wrong or failed, e.g. %r" % (len(wrong), wrong[:5])
    report("all %d acknowledged writes read back in %.1fs (%d attempted, %d write errors "
           "during the whole module)" % (len(acked), time.time() - t0, len(state["attempted"]),
                                         errors))
