# A full data disk under one replica server, through pypegasus3 on a private onebox (1 meta on
# 29601, 3 replica servers on 29801-29803). replica3's data dir is a small tmpfs mounted in a
# mount namespace of the test's own (a holder process keeps it, so it outlives restarts of the
# server, which run.sh starts inside it through ONEBOX_LAUNCH_WRAPPER). Writers of 20 KiB values
# fill it: replica3's log appends fail with ENOSPC, it reports itself, and the meta moves its
# primaries to the other servers, which go on taking writes. Then the space is freed, replica3
# is restarted, rejoins every partition, and no acknowledged write is lost.
# Needs root (mount namespaces); figures go to .logs/disk_full_report.txt.
import os
import shutil
import subprocess
import threading
import time

import pytest

import pgharness
from test_zy_pacifica import (longest_gap, pidx_of, primaries, read_back, start_writers,
                              stop_writers)

pytestmark = pytest.mark.restart  # sorted with the cluster-restarting tests

META_PORT_BASE = 29600
REPLICA_PORT_BASE = 29800
TABLE = "temp"
PARTITIONS = 8
TMPFS_MB = 1024
# Left free when the filler is written: a few seconds of the writers' traffic.
HEADROOM_BYTES = 64 << 20
VALUE_BYTES = 20 * 1024
REPORT = os.path.join(pgharness.LOG_DIR, "disk_full_report.txt")

report = pgharness.reporter("disk-full", REPORT)


class DCluster(pgharness.PrivateOnebox):
    def __init__(self):
        super().__init__("pegasus-diskfull-", "disk_full_run_sh.log", report)
        self.metas = ["127.0.0.1:%d" % (META_PORT_BASE + 1)]
        self.holder = None
        self.wrapper = None

    def extra_env(self):
        env = {"META_PORT_BASE": str(META_PORT_BASE),
               "REPLICA_PORT_BASE": str(REPLICA_PORT_BASE), "ONEBOX_WAIT_SECONDS": "120"}
        if self.wrapper:
            env["ONEBOX_LAUNCH_WRAPPER"] = self.wrapper
        return env

    def addr(self, n):
        return "127.0.0.1:%d" % (REPLICA_PORT_BASE + n)

    def data_dir(self, n):
        return os.path.join(self.onebox_dir, "replica%d" % n, "data", "replica")

    def log_text(self, n):
        return pgharness.server_log_text(os.path.join(self.onebox_dir, "replica%d" % n))

    def ns(self, *cmd, check=True):
        """Runs a command in the holder's mount namespace."""
        p = subprocess.run(["nsenter", "-t", str(self.holder.pid), "-m", "--"] + list(cmd),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           stdin=subprocess.DEVNULL, timeout=60)
        out = p.stdout.decode("utf-8", "replace").strip()
        assert not check or p.returncode == 0, "%s: %s" % (cmd, out)
        return out

    def mount_tmpfs(self, n):
        """Moves replica n's data dir onto a tmpfs of TMPFS_MB in a new mount namespace."""
        data = self.data_dir(n)
        stage = os.path.join(self.base, "tmpfs-stage")
        os.makedirs(stage, exist_ok=True)
        script = ("set -e; mount -t tmpfs -o size=%dm pegasus-test-tmpfs %s; cp -a %s/. %s/; "
                  "mount --bind %s %s; echo ready; exec sleep 100000"
                  % (TMPFS_MB, stage, data, stage, stage, data))
        self.holder = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c",
                                        script], stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        line = self.holder.stdout.readline().decode().strip()
        assert line == "ready", "cannot set up the tmpfs: %s" % line
        # nsenter would start in the holder's working directory: keep the instance's
        self.wrapper = "nsenter -t %d -m --wd=%s --" % (
            self.holder.pid, os.path.join(self.onebox_dir, "replica%d" % n))

    def free_bytes(self, n):
        out = self.ns("df", "-B1", "--output=avail", self.data_dir(n))
        return int(out.split()[-1])

    def destroy(self):
        try:
            super().destroy()
        finally:
            if self.holder is not None:
                self.holder.kill()
                self.holder.wait()


@pytest.fixture(scope="module")
def dc(reactor_thread):
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("nsenter") is None:
        pytest.fail("the disk-full test needs root and util-linux's unshare/nsenter")
    c = DCluster()
    if c.bin is None:
        pytest.skip("no pegasus_server binary (set PEGASUS_SERVER_BIN)")
    with open(REPORT, "w") as f:
        f.write("# disk full report, %s, onebox %s\n"
                % (time.strftime("%Y-%m-%d %H:%M:%S"), c.onebox_dir))
    try:
        c.run("start_onebox", timeout=300)
        c.wait_healthy()
        yield c
    finally:
        c.destroy()


def test_full_disk_fails_primaries_over_and_rejoins(dc):
    # replica3 onto a tmpfs of its own, started inside its namespace
    dc.run("stop_onebox_instance", "-r", "3", timeout=120)
    dc.mount_tmpfs(3)
    dc.run("start_onebox_instance", "-r", "3", timeout=120)
    dc.wait_healthy()
    prim = primaries(dc.metas)
    on3 = sorted(p for p, a in prim.items() if a == dc.addr(3))
    report("replica3 data on a %d MiB tmpfs; primaries before: %s (replica3 leads %s)"
           % (TMPFS_MB, prim, on3))

    # most of the disk goes to a filler file first; the writers then use up the rest
    free = dc.free_bytes(3)
    filler = os.path.join(dc.data_dir(3), "filler")
    dc.ns("fallocate", "-l", str(free - HEADROOM_BYTES), filler)
    report("filler of %d MiB written; %d MiB left for the writers"
           % ((free - HEADROOM_BYTES) >> 20, dc.free_bytes(3) >> 20))

    stop, lock, successes = threading.Event(), threading.Lock(), []
    # 20 KiB values under 16 hash keys per writer
    ws = [pgharness.Writer(i, dc.metas, "full-%d" % int(time.time()), stop, successes, lock,
                           table=TABLE, hashes=16, timeout_ms=5000, tag=pidx_of,
                           pad=VALUE_BYTES)
          for i in range(4)]
    t_fill = time.time()
    for w in ws:
        w.start()
    try:
        # replica3 fails on ENOSPC and reports itself
        deadline = time.time() + 120
        while "No space left on device" not in dc.log_text(3):
            assert time.time() < deadline, "replica3 never ran out of space (free %d)" % (
                dc.free_bytes(3))
            time.sleep(0.2)
        t_enospc = time.time()
        # every partition takes writes again, none led by replica3
        deadline = time.time() + 60
        while True:
            with lock:
                seen = {p for t, p in successes if t > t_enospc + 1}
            now_prim = primaries(dc.metas)
            if len(seen) == PARTITIONS and now_prim and \
                    all(a != dc.addr(3) for a in now_prim.values()):
                break
            assert time.time() < deadline, (
                "after ENOSPC on replica3: partitions written %s, primaries %s"
                % (sorted(seen), now_prim))
            time.sleep(0.5)
        t_recovered = time.time()
        time.sleep(3)
        with lock:
            by_part = {}
            for t, p in successes:
                by_part.setdefault(p, []).append(t)
        gaps = {p: longest_gap(sorted(ts), t_enospc - 1, time.time())[0]
                for p, ts in by_part.items()}
        report("writers started at +0, ENOSPC logged at +%.1fs; all partitions written again and none "
               "led by replica3 %.1fs after ENOSPC; primaries now %s; longest write pause per "
               "partition %s (replica3 led %s)"
               % (t_enospc - t_fill, t_recovered - t_enospc, now_prim,
                  {p: round(g, 2) for p, g in sorted(gaps.items())}, on3))
        worst = max(gaps.values())
        # upstream's failure detection (the meta's 10 s grace) bounds a lost primary; a
        # reported failure is handled at once
        assert worst < 10.0, "a partition took no write for %.1fs" % worst

    finally:
        stop.set()
        for w in ws:
            w.join(timeout=60)
    acked = {}
    for w in ws:
        acked.update(w.acked)
    report("big writers: %d acknowledged, %d errors" % (len(acked), sum(w.errors for w in ws)))

    # free the space and restart replica3 under small writers (the big ones would fill the
    # tmpfs again): it rejoins every partition, learning what it missed
    state = {"acked": {}, "attempted": {}}
    stop, sws, small, slock = start_writers(dc.metas, "after-%d" % int(time.time()), n=4)
    try:
        dc.ns("rm", "-f", filler)
        t_free = time.time()
        dc.run("stop_onebox_instance", "-r", "3", timeout=120)
        dc.run("start_onebox_instance", "-r", "3", timeout=120)
        heal = dc.wait_healthy(timeout=300)
        t_healthy = time.time()
        time.sleep(2)
    finally:
        stop_writers(stop, sws, state)
    with slock:
        gap, gap_at = longest_gap(sorted(t for t, _ in small), t_free, t_healthy + 2)
    report("space freed and replica3 restarted: fully healthy (3 replicas everywhere) %.1fs "
           "later (%.1fs of probing); longest pause of the small writers %.2fs (from +%.1fs); "
           "%d more acknowledged; %d MiB free on replica3's disk"
           % (t_healthy - t_free, heal, gap, gap_at, len(state["acked"]),
              dc.free_bytes(3) >> 20))
    assert "closing the replica" in dc.log_text(3)
    acked.update(state["acked"])
    assert len(acked) > 100
    missing, wrong = read_back(dc.metas, acked)
    assert not missing, "%d acknowledged writes lost, e.g. %r" % (len(missing), missing[:10])
    assert not wrong, "%d reads wrong/failed, e.g. %r" % (len(wrong), [w[0] for w in wrong[:5]])
