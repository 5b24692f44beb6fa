# Cold backup and restore through HDFS: a private onebox (1 meta, 3 replica servers, ports
# 21601/21801) whose `[block_service.hdfs_service]` is a real HDFS, Hadoop's MiniDFSCluster
# (tools/minidfs.sh, NameNode on 21900). The shared admin-cli backs a table up to HDFS and
# restores it into a new table that must hold exactly the backed-up records; Hadoop's own
# client lists what was stored, which must be upstream's layout with no sidecar files; the
# replica servers' backup metrics count what was uploaded; a partition whose file is damaged
# on HDFS fails a restore, or with `restore -s` is skipped while the others serve, and
# `pegasus_admin query_restore_status -d` says which; a backup given a path is stored under it
# and restored from it with `restore -r`.
import json
import os
import re
import subprocess
import threading
import time
import urllib.request

import pytest

import pgharness
from pgharness import NOT_FOUND, OK, PegasusHash

PegasusHash.populate_table()   # the client fills its CRC table only when a client is made
pytestmark = pytest.mark.restart  # a cluster of its own; sorted with the restarting tests

META_PORT_BASE = 21600
REPORT = os.path.join(pgharness.LOG_DIR, "hdfs_report.txt")
report = pgharness.reporter("hdfs", REPORT)
REPLICA_PORT_BASE = 21800
HDFS_PORT = 21900
HDFS_URI = "hdfs://127.0.0.1:%d" % HDFS_PORT
HDFS_ROOT = "/pegasus"
CLUSTER = "onebox"
MINIDFS = os.path.normpath(os.path.join(pgharness.HERE, "..", "..", "tools", "minidfs.sh"))
SETTINGS = {
    ("block_service.hdfs_service", "type"): "hdfs_service",
    ("block_service.hdfs_service", "args"): "127.0.0.1:%d %s" % (HDFS_PORT, HDFS_ROOT),
    ("replication", "cold_backup_checkpoint_reserve_minutes"): "0",
}


class MiniDfs(object):
    """tools/minidfs.sh run, in the background, until stop()."""

    def __init__(self, base):
        self.dir = os.path.join(base, "minidfs")
        self.log = open(os.path.join(pgharness.LOG_DIR, "minidfs.log"), "ab")
        self.proc = subprocess.Popen([MINIDFS, "run", str(HDFS_PORT), self.dir],
                                     stdout=subprocess.PIPE, stderr=self.log,
                                     stdin=subprocess.DEVNULL)
        ready = []
        reader = threading.Thread(target=lambda: ready.append(self.proc.stdout.readline()),
                                  daemon=True)
        reader.start()
        reader.join(600)   # the first run resolves Hadoop's jars
        if not ready or not ready[0].startswith(b"READY"):
            self.stop()
            raise AssertionError("MiniDFSCluster did not start; see %s" % self.log.name)

    def tool(self, mode, path, data=None):
        p = subprocess.run([MINIDFS, mode, HDFS_URI, path], input=data, stdout=subprocess.PIPE,
                           stderr=self.log, timeout=120)
        assert p.returncode == 0, "minidfs.sh %s %s failed (see %s)" % (mode, path, self.log.name)
        return p.stdout

    def ls(self, path):
        """{relative path: size} of every file under `path`, through Hadoop's client."""
        out = {}
        for line in self.tool("ls", path).decode().splitlines():
            name, size = line.rsplit(" ", 1)
            out[name] = int(size)
        return out

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


class HdfsCluster(pgharness.ConfiguredOnebox):
    def __init__(self):
        super().__init__("pegasus-hdfs-", "hdfs_run_sh.log", META_PORT_BASE, REPLICA_PORT_BASE,
                         SETTINGS, pgharness.log)

    def replica_metrics(self, n, table_id):
        """{metric: value} summed over table `table_id`'s replicas on replica server n."""
        url = "http://127.0.0.1:%d/metrics?types=replica&attributes=table_id,%d" % (
            REPLICA_PORT_BASE + n, table_id)
        with urllib.request.urlopen(url, timeout=10) as r:
            doc = json.loads(r.read())
        out = {}
        for e in doc["entities"]:
            for m in e["metrics"]:
                if "value" in m:   # counters and gauges (percentiles have p50.. instead)
                    out[m["name"]] = out.get(m["name"], 0) + m["value"]
        return out


@pytest.fixture(scope="module")
def hc(reactor_thread):
    with open(REPORT, "w") as f:
        f.write("# hdfs report, %s\n" % time.strftime("%Y-%m-%d %H:%M:%S"))
    c = HdfsCluster()
    if c.bin is None:
        pytest.skip("no pegasus_server binary (set PEGASUS_SERVER_BIN)")
    dfs = None
    try:
        dfs = MiniDfs(c.base)
        c.dfs = dfs
        c.run("start_onebox", timeout=300)
        c.wait_healthy()
        yield c
    finally:
        c.destroy()
        if dfs is not None:
            dfs.stop()


def table_id(hc, name):
    out = hc.admin("ls")
    m = re.search(r"\|\s*(\d+)\s*\|\s*%s\s*\|" % re.escape(name), out)
    assert m, "table %s not in `ls`:\n%s" % (name, out)
    return int(m.group(1))


def backup(hc, app_id, path="", timeout=180):
    out = hc.admin(("backup %d hdfs_service %s" % (app_id, path)).strip())
    m = re.search(r"BackupID: (\d+)", out)
    assert m and "Backup succeed" in out, out
    backup_id = int(m.group(1))
    deadline = time.time() + timeout
    while time.time() < deadline:
        out = hc.admin("query-backup-status %d %d" % (app_id, backup_id))
        if "completed" in out:
            return backup_id, out
        assert not re.search(r"\|\s*failed\s*\|", out), out
        time.sleep(2)
    raise AssertionError("backup %d not completed after %ds:\n%s" % (backup_id, timeout, out))


def create_and_fill(hc, name, records):
    """Creates table `name` (4 partitions, 3 replicas) and writes `records`
    ((hash key, sort key, value) tuples); returns its id and {(hk, sk): value}."""
    out = hc.admin("create -p 4 -r 3 %s" % name)
    assert "error" not in out.lower(), out
    app_id = table_id(hc, name)
    c = pgharness.open_client(hc.metas, name, deadline_s=60)
    data = {}
    try:
        for hk, sk, v in records:
            assert c.set(hk, sk, v) == (OK, None)
            data[(hk, sk)] = v
    finally:
        c.close()
    return app_id, data


def test_backup_to_hdfs_and_restore(hc):
    name = "hdfsbk"
    app_id, before = create_and_fill(
        hc, name, [("hk%03d" % (i % 41), "sk%03d" % i, "v%d-" % i + "y" * (i % 50))
                   for i in range(400)])

    backup_id, status = backup(hc, app_id)
    report("HDFS backup %d of %s:\n%s" % (backup_id, name, status))
    assert "hdfs_service" in status, status

    # upstream's layout, read back through Hadoop's own client: no sidecar files on HDFS
    base = "%s/%s/%d" % (HDFS_ROOT, CLUSTER, backup_id)
    files = hc.dfs.ls(base)
    report("HDFS files under %s: %d" % (base, len(files)))
    assert not [f for f in files if os.path.basename(f).startswith(".")], files
    info = json.loads(hc.dfs.tool("cat", base + "/backup_info"))
    assert info["backup_id"] == backup_id and info["app_id"] == app_id, info
    assert info["app_name"] == name and info["end_time_ms"] == 0, info
    app_dir = "%s_%d" % (name, app_id)
    meta = json.loads(hc.dfs.tool("cat", "%s/%s/meta/app_metadata" % (base, app_dir)))
    assert meta["app_name"] == name and meta["partition_count"] == 4 and meta["envs"] == {}
    total = 0
    for pidx in range(4):
        chkpt = hc.dfs.tool("cat", "%s/%s/%d/current_checkpoint" % (base, app_dir, pidx)).decode()
        assert re.match(r"^chkpt_[\w.-]+_\d+$", chkpt), chkpt
        md = json.loads(hc.dfs.tool("cat", "%s/%s/%d/%s/backup_metadata"
                                    % (base, app_dir, pidx, chkpt)))
        assert md["checkpoint_total_size"] == sum(f["size"] for f in md["files"]), md
        for f in md["files"]:
            assert files["%s/%d/%s/%s" % (app_dir, pidx, chkpt, f["name"])] == f["size"], f
        total += md["checkpoint_total_size"]

    # the replica servers' backup metrics: one started and successful backup per partition
    # (on its primary), every checkpoint byte uploaded (HDFS keeps no md5, so nothing is
    # skipped), nothing running any more
    sums = {}
    for n in (1, 2, 3):
        for k, v in hc.replica_metrics(n, app_id).items():
            if k.startswith("backup_") and k not in ("backup_requests", "backup_request_bytes"):
                sums[k] = sums.get(k, 0) + v
    report("backup metrics of table %d: %s" % (app_id, sums))
    assert sums["backup_started_count"] == 4 and sums["backup_successful_count"] == 4, sums
    assert sums["backup_failed_count"] == 0 and sums["backup_file_upload_failed_count"] == 0
    assert sums["backup_file_upload_total_bytes"] == total, (sums, total)
    assert sums["backup_file_upload_successful_count"] == len(
        [f for f in files if "/chkpt_" in f and not f.endswith("backup_metadata")]), sums
    assert sums["backup_running_count"] == 0, sums

    # later writes must not reach the restored table
    c = pgharness.open_client(hc.metas, name, deadline_s=60)
    try:
        for i in range(50):
            assert c.set("late", "sk%03d" % i, "late") == (OK, None)
        assert c.set("hk000", "sk000", "changed") == (OK, None)
    finally:
        c.close()

    new = name + "_restored"
    out = hc.admin("restore -c %s -a %s -i %d -t %d -b hdfs_service -n %s"
                   % (CLUSTER, name, app_id, backup_id, new))
    assert re.search(r"new AppID: \d+", out) and "Done!" in out, out
    c = pgharness.open_client(hc.metas, new, deadline_s=60)
    try:
        for (hk, sk), v in sorted(before.items()):
            assert c.get(hk, sk) == (OK, v.encode()), (hk, sk)
        assert c.get("late", "sk000")[0] == NOT_FOUND
        count = sum(c.sort_key_count("hk%03d" % h)[1] for h in range(41))
        assert count == len(before), (count, len(before))
    finally:
        c.close()
    new_id = table_id(hc, new)
    rc, out = hc.tool("query_restore_status", str(new_id), "-d")
    assert rc == 0 and "the overall progress of restore is 100%" in out, out
    assert len(re.findall(r"(?m)^\d+\s+100\s+ok\s*$", out)) == 4, out


def test_damaged_partition_fails_or_is_skipped(hc):
    name = "hdfsbad"
    app_id, data = create_and_fill(
        hc, name, [("d%03d" % (i % 29), "s%03d" % i, "v%d" % i) for i in range(200)])
    backup_id, _ = backup(hc, app_id)

    # damage partition 2's largest file on HDFS, keeping its size
    pdir = "%s/%s/%d/%s_%d/2" % (HDFS_ROOT, CLUSTER, backup_id, name, app_id)
    chkpt = hc.dfs.tool("cat", pdir + "/current_checkpoint").decode()
    md = json.loads(hc.dfs.tool("cat", "%s/%s/backup_metadata" % (pdir, chkpt)))
    victim = max(md["files"], key=lambda f: f["size"])
    path = "%s/%s/%s" % (pdir, chkpt, victim["name"])
    body = bytearray(hc.dfs.tool("cat", path))
    body[len(body) // 2] ^= 0xFF
    hc.dfs.tool("put", path, bytes(body))
    assert hc.dfs.ls(pdir + "/" + chkpt)[victim["name"]] == victim["size"]

    # without -s the restore fails and its table is dropped
    out = hc.admin("restore -c %s -a %s -i %d -t %d -b hdfs_service -n %s_r1"
                   % (CLUSTER, name, app_id, backup_id, name))
    m = re.search(r"new AppID: (\d+)", out)
    assert m and "Done!" not in out, out
    failed_id = int(m.group(1))
    rc, out = hc.tool("query_restore_status", str(failed_id))
    assert rc == 0 and "some partition's data is damaged" in out, out

    # with -s the damaged partition starts empty and the others hold their records
    new = name + "_r2"
    out = hc.admin("restore -c %s -a %s -i %d -t %d -b hdfs_service -n %s -s"
                   % (CLUSTER, name, app_id, backup_id, new))
    assert "Done!" in out, out
    new_id = table_id(hc, new)
    rc, out = hc.tool("query_restore_status", str(new_id), "-d")
    assert rc == 0, out
    rows = dict(re.findall(r"(?m)^(\d+)\s+\d+\s+(\w+)\s*$", out))
    assert rows == {"0": "ok", "1": "ok", "2": "skip", "3": "ok"}, out
    c = pgharness.open_client(hc.metas, new, deadline_s=60)
    try:
        held = missing = 0
        for (hk, sk), v in sorted(data.items()):
            if PegasusHash.default_hash(hk.encode()) % 4 == 2:
                assert c.get(hk, sk)[0] == NOT_FOUND, (hk, sk)
                missing += 1
            else:
                assert c.get(hk, sk) == (OK, v.encode()), (hk, sk)
                held += 1
        assert held > 0 and missing > 0, (held, missing)
        assert c.set("d000", "new", "x") == (OK, None)   # the table takes writes
    finally:
        c.close()


def test_backup_and_restore_with_a_path(hc):
    """`backup <id> hdfs_service <path>` puts the backup under <root>/<path>/<cluster>, and
    `restore -r <path>` finds it there."""
    name = "hdfspath"
    app_id, _ = create_and_fill(
        hc, name, [("p%02d" % (i % 13), "s%03d" % i, "v%d" % i) for i in range(100)])
    backup_id, _ = backup(hc, app_id, "specific/dir")
    stored = hc.dfs.ls("%s/specific/dir/%s/%d" % (HDFS_ROOT, CLUSTER, backup_id))
    assert "backup_info" in stored and "%s_%d/meta/app_metadata" % (name, app_id) in stored, stored
    assert not hc.dfs.ls("%s/%s" % (HDFS_ROOT, CLUSTER)).get("%d/backup_info" % backup_id)

    new = name + "_r"
    out = hc.admin("restore -c %s -a %s -i %d -t %d -b hdfs_service -n %s -r specific/dir"
                   % (CLUSTER, name, app_id, backup_id, new))
    assert "Done!" in out, out
    c = pgharness.open_client(hc.metas, new, deadline_s=60)
    try:
        for i in range(100):
            assert c.get("p%02d" % (i % 13), "s%03d" % i) == (OK, b"v%d" % i), i
    finally:
        c.close()
