# Operator commands through the shared, unmodified Go admin-cli (`bin/admin-cli` of the shared
# clients folder: SHARED_CLIENTS, else ../shared/clients beside the repository) against the
# session's cluster, with pypegasus3 writing and reading the data they act on.
import os
import re
import subprocess
import time

import pytest

import pgharness
from pgharness import OK

ROOT = os.path.normpath(os.path.join(pgharness.HERE, "..", ".."))


def admin_cli_path():
    shared = os.environ.get("SHARED_CLIENTS", os.path.join(ROOT, "..", "shared", "clients"))
    if not os.path.isabs(shared):
        shared = os.path.join(ROOT, shared)
    return os.path.join(shared, "bin", "admin-cli")


@pytest.fixture(scope="module")
def admin(cluster, tmp_path_factory):
    path = admin_cli_path()
    if not os.access(path, os.X_OK):
        pytest.fail("no admin-cli at %s (set SHARED_CLIENTS to the shared clients folder)" % path)
    workdir = str(tmp_path_factory.mktemp("admin-cli"))   # it writes its log file there

    def run(*lines, timeout=120):
        """Feeds command lines to one admin-cli session; returns its output."""
        p = subprocess.run([path, "-m", ",".join(cluster.metas)],
                           input=("\n".join(lines) + "\n").encode(), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=timeout, cwd=workdir)
        return p.stdout.decode("utf-8", "replace")
    return run


def new_table(admin, prefix):
    """Creates a table of 4 partitions and 3 replicas through admin-cli; returns its name."""
    name = "%s_%d" % (prefix, int(time.time()))
    out = admin("create -p 4 -r 3 %s" % name)
    assert "error" not in out.lower(), out
    return name


def table_id(admin, name):
    out = admin("ls")
    m = re.search(r"\|\s*(\d+)\s*\|\s*%s\s*\|" % re.escape(name), out)
    assert m, "table %s not in `ls`:\n%s" % (name, out)
    return int(m.group(1))


def dropped_id(admin, name):
    out = admin("ls --drop")
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if name in cells:
            for c in cells:
                if c.isdigit():
                    return int(c)
    raise AssertionError("table %s not in `ls --drop`:\n%s" % (name, out))


def test_recall_a_dropped_table_under_a_new_name(cluster, admin):
    name = new_table(admin, "recall")
    c = pgharness.open_client(cluster.metas, name, deadline_s=60)
    try:
        for i in range(50):
            assert c.set("hk%d" % i, "sk", "v%d" % i) == (OK, None)
    finally:
        c.close()
    out = admin("drop -r 3600 %s" % name)
    assert "error" not in out.lower(), out
    assert name not in admin("ls"), "a dropped table is still listed"
    app_id = dropped_id(admin, name)

    # recall under a new name: the table comes back with its data
    new = name + "_back"
    out = admin("recall %d %s" % (app_id, new), timeout=180)
    assert 'Recalling table "%s"' % new in out, out
    assert "error" not in out.lower(), out
    listed = admin("ls")
    assert new in listed and re.search(r"\b%d\b" % app_id, listed), listed
    c = pgharness.open_client(cluster.metas, new, deadline_s=60)
    try:
        for i in range(50):
            assert c.get("hk%d" % i, "sk") == (OK, ("v%d" % i).encode())
        assert c.set("after", "sk", "x") == (OK, None)
    finally:
        c.close()

    # a table that is not dropped cannot be recalled
    out = admin("recall %d" % app_id)
    assert "ERR_APP_EXIST" in out, out


def replica_logs(cluster):
    base = cluster.onebox_dir
    if not base:
        return None
    logs = []
    for d in sorted(os.listdir(base)):
        if d.startswith("replica"):
            logs.append(pgharness.server_log_text(os.path.join(base, d)))
    return logs


def test_manual_compaction_start_and_query(cluster, admin):
    name = new_table(admin, "mcompact")
    c = pgharness.open_client(cluster.metas, name, deadline_s=60)
    try:
        for i in range(200):
            assert c.set("hk%d" % (i % 20), "sk%d" % i, "v%d" % i) == (OK, None)
        for i in range(0, 200, 2):
            assert c.remove("hk%d" % (i % 20), "sk%d" % i) == (OK, None)
    finally:
        c.close()
    # never started: the meta says so, as upstream
    out = admin("manual-compaction query -a %s" % name)
    assert "ERR_INVALID_STATE" in out and "is not manual compaction" in out, out

    out = admin("manual-compaction start -a %s -b" % name)
    assert "Table %s start manual compaction succeed" % name in out, out
    progress, deadline = None, time.time() + 90
    while time.time() < deadline:
        out = admin("manual-compaction query -a %s" % name)
        m = re.search(r"Table %s manual compaction progress is (\d+)" % re.escape(name), out)
        progress = int(m.group(1)) if m else None
        if progress == 100:
            break
        time.sleep(1)
    assert progress == 100, out

    # the table envs carry upstream's keys
    out = admin("use %s" % name, "table-env list")
    for key in ("manual_compact.once.trigger_time", "manual_compact.once.target_level",
                "manual_compact.once.bottommost_level_compaction"):
        assert key in out, out
    assert "force" in out, out

    # every replica of the table really compacted (when the logs are ours to read)
    logs = replica_logs(cluster)
    if logs is not None:
        app_id = table_id(admin, name)
        done = sum(len(re.findall(r"\b%d\.\d+: manual compaction finished" % app_id, l))
                   for l in logs)
        assert done == 4 * 3, "%d replicas finished, expected 12" % done

    # the data is intact
    c = pgharness.open_client(cluster.metas, name, deadline_s=60)
    try:
        for i in range(200):
            want = (OK, ("v%d" % i).encode()) if i % 2 else None
            r = c.get("hk%d" % (i % 20), "sk%d" % i)
            if want:
                assert r == want, (i, r)
            else:
                assert r[0] != OK, (i, r)
    finally:
        c.close()


def test_data_version_and_replica_http_pages(cluster, admin):
    out = admin("use %s" % cluster.table, "data-version")
    assert re.search(r'"data_version":\s*"1"', out), out
    nodes = re.findall(r"\((\d+\.\d+\.\d+\.\d+:\d+)\)", admin("nodes"))
    assert nodes, "admin-cli listed no node"
    app_id = table_id(admin, cluster.table)
    import json
    import urllib.error
    import urllib.request
    for n in nodes:
        with urllib.request.urlopen("http://%s/replica/data_version?app_id=%d" % (n, app_id),
                                    timeout=10) as r:
            versions = json.loads(r.read())
        assert versions and all(v == {"data_version": "1"} for v in versions.values()), versions
        assert all(k.isdigit() for k in versions), versions
        with urllib.request.urlopen("http://%s/replica/manual_compaction?app_id=%d"
                                    % (n, app_id), timeout=10) as r:
            st = json.loads(r.read())["status"]
        assert set(st) == {"idle", "running", "queuing", "finished"}, st
        assert sum(st.values()) == len(versions), (st, versions)
        for bad, code in (("", 400), ("?app_id=x", 400), ("?app_id=99999", 404)):
            try:
                urllib.request.urlopen("http://%s/replica/data_version%s" % (n, bad), timeout=10)
                raise AssertionError("no error for %r" % bad)
            except urllib.error.HTTPError as e:
                assert e.code == code, (bad, e.code)


def wait_for(what, cond, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.5)
    raise AssertionError("timed out waiting for " + what)


def test_table_envs_validated_and_deny_client_request(cluster, admin):
    name = new_table(admin, "envs")
    use = "use %s" % name
    # upstream's validator: unknown keys and bad values are refused with its hints
    out = admin(use, "table-env set no.such.key 1")
    assert "ERR_INVALID_PARAMETERS" in out and "app_env 'no.such.key' is not supported" in out, out
    out = admin(use, "table-env set default_ttl -5")
    assert "ERR_INVALID_PARAMETERS" in out and "should be '>= 0'" in out, out
    out = admin(use, "table-env set replica.deny_client_request sometimes")
    assert "Invalid deny client args" in out, out
    out = admin(use, "table-env set rocksdb.usage_scenario prefer_write", "table-env list")
    assert '"rocksdb.usage_scenario": "prefer_write"' in out, out

    c = pgharness.open_client(cluster.metas, name, deadline_s=60, timeout_ms=1000)
    try:
        assert c.set("hk", "sk", "before") == (OK, None)
        # writes denied with ERR_INVALID_STATE (reconfig): they fail, reads go on
        out = admin(use, "table-env set replica.deny_client_request reconfig*write")
        assert "error" not in out.lower(), out
        wait_for("writes to be denied", lambda: c.set("probe", "sk", "x") != (OK, None))
        assert c.get("hk", "sk") == (OK, b"before")
        # reads denied by leaving them unanswered (timeout): they fail, writes go on
        out = admin(use, "table-env set replica.deny_client_request timeout*read")
        assert "error" not in out.lower(), out
        wait_for("reads to be denied", lambda: c.get("hk", "sk") != (OK, b"before"))
        wait_for("writes to be allowed again", lambda: c.set("hk", "sk", "after") == (OK, None))
        out = admin(use, "table-env delete replica.deny_client_request")
        assert "error" not in out.lower(), out
        wait_for("reads to be allowed again", lambda: c.get("hk", "sk") == (OK, b"after"))
    finally:
        c.close()
    out = admin(use, "table-env clear", "table-env list")
    assert "rocksdb.usage_scenario" not in out, out


def test_throttling_envs_reject_and_delay(cluster, admin):
    name = new_table(admin, "throttle")
    use = "use %s" % name
    c = pgharness.open_client(cluster.metas, name, deadline_s=60, timeout_ms=2000)
    try:
        assert c.set("hk", "sk", "v") == (OK, None)
        # 8 writes a second over 4 partitions: 3 a second on the partition of "hk"
        out = admin(use, "table-env set replica.write_throttling 8*reject*0")
        assert "error" not in out.lower(), out

        def burst_refused():
            res = [c.set("hk", "sk%d" % i, "v") for i in range(12)]
            return sum(1 for r in res if r == (OK, None)) <= 6 and any(
                r != (OK, None) for r in res)
        wait_for("writes to be refused past the limit", burst_refused)

        # reads likewise
        out = admin(use, "table-env set replica.read_throttling 8*reject*0")
        assert "error" not in out.lower(), out

        def reads_refused():
            res = [c.get("hk", "sk") for _ in range(12)]
            return sum(1 for r in res if r == (OK, b"v")) <= 6 and any(
                r != (OK, b"v") for r in res)
        wait_for("reads to be refused past the limit", reads_refused)

        # delay instead of reject: every write succeeds, later ones wait
        out = admin(use, "table-env set replica.write_throttling 8*delay*400",
                    "table-env delete replica.read_throttling")
        assert "error" not in out.lower(), out

        def delayed():
            t0 = time.time()
            res = [c.set("hk", "d%d" % i, "v") for i in range(10)]
            return all(r == (OK, None) for r in res) and time.time() - t0 >= 0.4
        wait_for("writes to be delayed past the limit", delayed)

        out = admin(use, "table-env delete replica.write_throttling")
        assert "error" not in out.lower(), out

        def free():
            return all(c.set("hk", "f%d" % i, "v") == (OK, None) for i in range(12)) and all(
                c.get("hk", "sk") == (OK, b"v") for _ in range(12))
        wait_for("throttling to end", free)
    finally:
        c.close()


def latest_rocksdb_options(cluster, app_id):
    """The latest OPTIONS file text of every replica of table app_id in the session onebox."""
    import glob
    out = []
    for rdb in glob.glob(os.path.join(cluster.onebox_dir, "replica*", "data", "replica", "reps",
                                      "%d.*.pegasus" % app_id, "data", "rdb")):
        files = sorted(glob.glob(os.path.join(rdb, "OPTIONS-*")))
        if files:
            with open(files[-1]) as f:
                out.append(f.read())
    return out


def test_usage_scenario_and_read_size_throttling(cluster, admin):
    name = new_table(admin, "scenario")
    use = "use %s" % name
    app_id = table_id(admin, name)
    c = pgharness.open_client(cluster.metas, name, deadline_s=60, timeout_ms=2000)
    try:
        big = "x" * 20000
        assert c.set("hk", "big", big) == (OK, None)
        # bulk_load: the replicas' data column family stops compacting and stalling writes
        out = admin(use, "table-env set rocksdb.usage_scenario bulk_load")
        assert "error" not in out.lower(), out

        def scenario(flag):
            opts = latest_rocksdb_options(cluster, app_id)
            return len(opts) == 4 * 3 and all(
                ("disable_auto_compactions=%s" % flag) in o for o in opts)
        wait_for("every replica to switch to bulk_load", lambda: scenario("true"))
        out = admin(use, "table-env delete rocksdb.usage_scenario")
        assert "error" not in out.lower(), out
        wait_for("every replica to go back to normal", lambda: scenario("false"))
        assert c.get("hk", "big") == (OK, big.encode())

        # read_throttling_by_size: 1000 bytes a second over 4 partitions; a 20 KB read
        # spends the partition's budget, so the reads right after it are refused
        out = admin(use, "table-env set replica.read_throttling_by_size 1000*reject*0",
                    "table-env set replica.slow_query_threshold 20")
        assert "error" not in out.lower(), out

        def reads_refused():
            res = [c.get("hk", "big") for _ in range(5)]
            return any(r == (OK, big.encode()) for r in res) and any(
                r != (OK, big.encode()) for r in res)
        wait_for("big reads to be refused past the byte budget", reads_refused)
        out = admin(use, "table-env delete replica.read_throttling_by_size")
        assert "error" not in out.lower(), out

        def free():
            return all(c.get("hk", "big") == (OK, big.encode()) for _ in range(5))
        wait_for("read-size throttling to end", free)
    finally:
        c.close()


def test_server_config_list_get_set(cluster, admin):
    out = admin("server-config meta list", "server-config replica list")
    assert "[meta_server] min_allowed_replica_count=1" in out, out
    assert "[replication] gc_disk_garbage_replica_interval_seconds=86400" in out, out
    out = admin("server-config meta min_live_node_count_for_unfreeze get")
    assert "min_live_node_count_for_unfreeze=" in out, out
    # A change reaches every replica server and reads back.
    out = admin("server-config replica gc_disk_garbage_replica_interval_seconds set 100",
                "server-config replica gc_disk_garbage_replica_interval_seconds get",
                "server-config replica gc_disk_garbage_replica_interval_seconds set 86400")
    assert out.count("ERR_OK") == 2 * 3, out
    assert out.count("gc_disk_garbage_replica_interval_seconds=100") == 3, out
    out = admin("server-config meta lb_interval_ms set 5", "server-config meta nope get",
                "server-config meta nope set 1",
                "server-config replica disk_min_available_space_ratio set 101")
    assert "ERR_INVALID_PARAMETERS: lb_interval_ms is not mutable" in out, out
    assert "ERR_OBJECT_NOT_FOUND: 'nope' is not found" in out, out
    assert "ERR_OBJECT_NOT_FOUND: nope is not found" in out, out
    assert "ERR_INVALID_PARAMETERS: value validation failed" in out, out
    # The meta uses a changed flag: replica counts below the new minimum are refused.
    tool = os.path.join(os.path.dirname(pgharness.server_bin()), "pegasus_admin")
    out = admin("server-config meta min_allowed_replica_count set 3")
    assert "ERR_OK" in out, out
    try:
        p = subprocess.run([tool, "-m", ",".join(cluster.metas), "set_replica_count",
                            cluster.table, "2"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=60)
        text = p.stdout.decode()
        assert p.returncode != 0 and "[min=3, max=5]" in text, text
    finally:
        out = admin("server-config meta min_allowed_replica_count set 1")
        assert "ERR_OK" in out, out
