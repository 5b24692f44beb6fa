# Observability against the session's cluster: the shared, unmodified admin-cli's table-stat,
# node-stat and partition-stat under a steady load of pypegasus3 writers and readers (rates
# compared with what the clients did), the /metrics JSON with upstream's entity and metric
# names and query arguments, its Prometheus text parsed by prometheus_client's OpenMetrics
# parser, and every remote command answered.
import json
import os
import re
import threading
import time
import urllib.error
import urllib.request

import pytest

import pgharness
from pgharness import OK
from test_admin_cli import admin  # noqa: F401 - the admin-cli fixture

LOAD_SECONDS = 26       # > two perf-counter snapshot intervals (10 s) under load
WRITERS = 6
READERS = 4


def replica_http(cluster):
    return ["127.0.0.1:%d" % (cluster.REPLICA_PORT_BASE + i) for i in (1, 2, 3)]


def fetch(addr, path, headers=None):
    req = urllib.request.Request("http://%s%s" % (addr, path), headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


class Reader(threading.Thread):
    """Gets keys the writers wrote, counting successful gets with their times."""

    def __init__(self, metas, keys, stop):
        super().__init__(daemon=True)
        self.metas, self.keys, self.stop = metas, keys, stop
        self.done = []

    def run(self):
        c = pgharness.open_client(self.metas, "temp", deadline_s=60)
        try:
            i = 0
            while not self.stop.is_set():
                hk, sk = self.keys[i % len(self.keys)]
                i += 1
                if c.get(hk, sk)[0] == OK:
                    self.done.append(time.time())
        finally:
            c.close()


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def columns(out, marker, row_pred):
    """{column: [cells]} of the rows under admin-cli's table headers holding `marker` (each
    command prints its own header line above its rows)."""
    result, header = {}, None
    for line in ANSI.sub("", out).splitlines():
        if not line.strip().startswith("|"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if any(c in ("AppID", "Pidx", "Node") for c in cells):
            header = cells if marker in cells else None
            continue
        if header and cells and row_pred(cells):
            for h, v in zip(header, cells):
                result.setdefault(h, []).append(v)
    return result


def number(text):
    """admin-cli's cell value: plain numbers, or with units (e.g. '1.2 KiB', '3.4 K')."""
    m = re.match(r"^([0-9.]+)\s*([A-Za-z]*)", text)
    if not m:
        return 0.0
    v, unit = float(m.group(1)), m.group(2).lower()
    scale = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9, "b": 1, "kib": 1024, "mib": 1024 ** 2,
             "gib": 1024 ** 3, "kb": 1e3, "mb": 1e6, "gb": 1e9}
    return v * scale.get(unit, 1)


def rate_in(times, t0, t1):
    return sum(1 for t in times if t0 <= t < t1) / (t1 - t0)


def test_stats_under_load_agree_with_the_clients(cluster, admin, run_id):  # noqa: F811
    prefix = run_id + "-stat"
    stop, ws, successes, lock = pgharness.start_writers(cluster.metas, prefix, WRITERS,
                                                        pad=200)
    time.sleep(3)
    keys = []
    for w in ws:
        keys.extend(list(w.acked.keys())[:50])
    assert keys, "the writers acknowledged nothing"
    rstop = threading.Event()
    readers = [Reader(cluster.metas, keys, rstop) for _ in range(READERS)]
    for r in readers:
        r.start()
    try:
        time.sleep(LOAD_SECONDS)
        out = admin("remote-command replica perf-counters-by-substr get_qps@",
                    "table-stat", "node-stat", "use temp", "partition-stat")
    finally:
        rstop.set()
        stop.set()
        for r in readers:
            r.join(timeout=30)
        for w in ws:
            w.join(timeout=60)
    # The snapshot the commands read: its time, and the 10 s before it.
    stamps = [int(s) for s in re.findall(r'"timestamp":(\d+)', out)]
    assert stamps, out
    t1 = max(stamps)
    t0 = t1 - 10
    with lock:
        put_rate = rate_in([t for t, _ in successes], t0, t1)
    get_rate = rate_in([t for r in readers for t in r.done], t0, t1)
    pgharness.log("clients: %.0f puts/s, %.0f gets/s in [%d, %d)" % (put_rate, get_rate, t0, t1))
    assert put_rate > 20 and get_rate > 20, (put_rate, get_rate)

    # table-stat: the primaries' rates of table temp
    ts = columns(out, "AppID", lambda c: "temp" in c)
    assert "Put" in ts and "Get" in ts, out
    table_put, table_get = number(ts["Put"][0]), number(ts["Get"][0])
    pgharness.log("table-stat: Put %.1f, Get %.1f" % (table_put, table_get))
    assert abs(table_put - put_rate) <= 0.2 * put_rate, (table_put, put_rate, out)
    assert abs(table_get - get_rate) <= 0.2 * get_rate, (table_get, get_rate, out)

    # partition-stat: per-partition rates of the primaries add up to the same
    ps = columns(out, "Pidx", lambda c: c[0].isdigit())
    assert len(ps.get("Put", [])) == 8, out
    part_put = sum(number(v) for v in ps["Put"])
    assert abs(part_put - put_rate) <= 0.2 * put_rate, (part_put, put_rate, out)

    # node-stat: every replica applies each write (3 copies); gets are served once
    ns = columns(out, "Node", lambda c: bool(re.search(r"\d+\.\d+\.\d+\.\d+:\d+", c[0])))
    puts = [number(v) for v in ns.get("Put", [])]
    gets = [number(v) for v in ns.get("Get", [])]
    assert len(puts) == 3 and len(gets) == 3, out
    assert abs(sum(puts) - 3 * put_rate) <= 0.2 * 3 * put_rate, (puts, put_rate, out)
    assert abs(sum(gets) - get_rate) <= 0.2 * get_rate, (gets, get_rate, out)
    mem = [number(v) for v in ns.get("MemUsed", [])]
    assert mem and all(m > 0 for m in mem), out
    total = [number(v) for v in ns.get("DiskTotal", [])]
    assert total and all(t > 0 for t in total), out


UPSTREAM_REPLICA_METRICS = [
    "get_requests", "multi_get_requests", "batch_get_requests", "scan_requests",
    "get_latency_ns", "put_requests", "multi_put_requests", "remove_requests",
    "multi_remove_requests", "incr_requests", "check_and_set_requests",
    "check_and_mutate_requests", "put_latency_ns", "read_capacity_units",
    "write_capacity_units", "get_bytes", "put_bytes", "rdb_total_sst_size_mb",
    "rdb_total_sst_files", "rdb_estimated_keys", "rdb_memtable_mem_usage_bytes",
    "rdb_index_and_filter_blocks_mem_usage_bytes", "private_log_size_mb",
    "throttling_rejected_write_requests", "committed_requests",
]


def test_metrics_json_has_upstreams_entities_and_arguments(cluster, client, hk):
    for i in range(20):
        assert client.set(hk, "s%d" % i, "v") == (OK, None)
        assert client.get(hk, "s%d" % i) == (OK, b"v")
    addr = replica_http(cluster)[0]
    status, body = fetch(addr, "/metrics?detail=true")
    assert status == 200, body
    doc = json.loads(body)
    for k in ("cluster", "role", "host", "port", "timestamp_ns", "entities"):
        assert k in doc, doc.keys()
    assert doc["role"] == "replica" and doc["port"] == cluster.REPLICA_PORT_BASE + 1
    types = {e["type"] for e in doc["entities"]}
    assert {"server", "replica", "disk", "profiler"} <= types, types
    replica = next(e for e in doc["entities"] if e["type"] == "replica")
    assert re.match(r"^replica@\d+\.\d+$", replica["id"]), replica["id"]
    assert set(replica["attributes"]) == {"table_id", "partition_id"}
    names = {m["name"] for m in replica["metrics"]}
    missing = [n for n in UPSTREAM_REPLICA_METRICS if n not in names]
    assert not missing, missing
    for m in replica["metrics"]:
        assert m["type"] in ("Counter", "Gauge", "Percentile"), m
        assert m["unit"] and "desc" in m, m
        if m["type"] == "Percentile":
            assert all(k in m for k in ("p50", "p90", "p95", "p99", "p999")), m
        else:
            assert isinstance(m["value"], int), m
    server = next(e for e in doc["entities"] if e["type"] == "server")
    snames = {m["name"] for m in server["metrics"]}
    assert {"resident_mem_usage_mb", "virtual_mem_usage_mb", "total_replicas"} <= snames

    # every write reached 3 replicas, every read one: sum put_requests across the servers
    total_puts = 0
    for a in replica_http(cluster):
        _, body = fetch(a, "/metrics?types=replica&metrics=put_requests,get_requests"
                        "&with_metric_fields=name,value")
        for e in json.loads(body)["entities"]:
            for m in e["metrics"]:
                assert set(m) == {"name", "value"}, m
                if m["name"] == "put_requests":
                    total_puts += m["value"]
    assert total_puts >= 3 * 20, total_puts

    # filters: ids, attributes, metrics; and upstream's errors
    rid = replica["id"]
    _, body = fetch(addr, "/metrics?ids=%s&metrics=get_requests" % rid)
    ents = json.loads(body)["entities"]
    assert [e["id"] for e in ents] == [rid] and len(ents[0]["metrics"]) == 1
    _, body = fetch(addr, "/metrics?types=replica&attributes=table_id,%s"
                    % replica["attributes"]["table_id"])
    assert all(e["attributes"]["table_id"] == replica["attributes"]["table_id"]
               for e in json.loads(body)["entities"])
    status, body = fetch(addr, "/metrics?attributes=table_id")
    assert status == 400 and "should be even" in json.loads(body)["error_message"]
    status, body = fetch(addr, "/metrics?detail=maybe")
    assert status == 400 and "true or false" in body
    status, body = fetch(addr, "/metrics?color=red")
    assert status == 400 and "unknown field color=red" in body

    # the meta's entities: replica servers and table health
    meta = "127.0.0.1:%d" % (cluster.META_PORT_BASE + 1)
    _, body = fetch(meta, "/metrics")
    doc = json.loads(body)
    assert doc["role"] == "meta"
    by_type = {}
    for e in doc["entities"]:
        by_type.setdefault(e["type"], []).append(e)
    alive = {m["name"]: m["value"] for m in by_type["server"][0]["metrics"]}
    assert alive.get("alive_replica_servers") == 3, alive
    health = [{m["name"]: m["value"] for m in e["metrics"]} for e in by_type["table"]]
    assert any(h.get("healthy_partitions") == 8 for h in health), health


def test_prometheus_text_parses(cluster, client, hk):
    from prometheus_client.openmetrics.parser import text_string_to_metric_families
    assert client.set(hk, "s", "v") == (OK, None)
    for addr in replica_http(cluster)[:1] + ["127.0.0.1:%d" % (cluster.META_PORT_BASE + 1)]:
        for path, headers in (("/metrics?format=prometheus", None),
                              ("/metrics", {"Accept": "application/openmetrics-text; version=1.0.0"})):
            status, text = fetch(addr, path, headers)
            assert status == 200, text
            fams = {f.name: f for f in text_string_to_metric_families(text)}
            assert "pegasus_resident_mem_usage_mb" in fams, sorted(fams)[:20]
            if addr != replica_http(cluster)[0]:
                continue
            puts = fams["pegasus_put_requests"]
            assert puts.type == "counter"
            assert any(s.labels.get("entity") == "replica" and "table_id" in s.labels
                       for s in puts.samples), puts.samples[:3]
            lat = fams["pegasus_get_latency_ns"]
            assert {s.labels["quantile"] for s in lat.samples} >= {"0.5", "0.99"}


def commands_of(help_text):
    """The first name of each `names - help` line."""
    out = []
    for line in help_text.splitlines():
        m = re.match(r"^([\w.\-|]+) - ", line.strip())
        if m:
            out.append(m.group(1).split("|")[0])
    return out


def test_every_remote_command_is_answered(cluster, admin):  # noqa: F811
    for role in ("meta", "replica"):
        out = admin("remote-command %s help" % role)
        cmds = commands_of(out)
        assert len(cmds) >= 15, out
        for c in ("server-info", "server-stat", "perf-counters-by-substr", "flush-log",
                  "config-dump", "engine", "task-code"):
            assert c in cmds, (c, cmds)
        # every command, with no argument, gets an answer that is not "unknown command"
        skip = {"repeat", "replica.kill_partition", "help"}
        lines = ["remote-command %s %s" % (role, c) for c in cmds if c not in skip]
        out = admin(*lines, timeout=300)
        assert "unknown command" not in out, out
        assert "Flush done." in out, out
    out = admin("remote-command replica server-info")
    infos = re.findall(r'\{"build_type":[^\n]*\}', out)
    assert len(infos) == 3, out
    for i in infos:
        d = json.loads(i)
        assert set(d) == {"build_type", "git_SHA", "start_time", "version"}, d
    out = admin("remote-command replica replica.query-progress",
                "remote-command replica replica.disable-plog-gc 1",
                "remote-command replica replica.query-plog-gc-enabled-status 1",
                "remote-command replica replica.enable-plog-gc 1",
                "remote-command meta meta.lb.only_move_primary",
                "remote-command replica nope")
    assert "last_committed_decree" in out, out
    assert "@P : disabled" in out and "@S : disabled" in out, out
    assert "@P : enabled" in out, out
    assert '"meta.lb.only_move_primary": "false"' in out, out
    assert "unknown command 'nope'" in out, out


def test_log_files_and_log_level_at_run_time(cluster, admin):  # noqa: F811
    """Servers write their log files under data/log with <role>.log naming the current one;
    reset-log-start-level changes what they write, flush-log answers."""
    base = cluster.onebox_dir
    if not base:
        pytest.skip("an external cluster: its log files are not here")
    link = pgharness.server_log_path(os.path.join(base, "replica1"), "replica")
    assert os.path.islink(link), link
    target = os.path.realpath(link)
    assert re.match(r"^replica_\d{8}_\d{6}_\d{3}\.log$", os.path.basename(target)), target
    with open(link, "rb") as f:
        text = f.read().decode("utf-8", "replace")
    assert re.search(r"^I\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} ", text, re.M), text[:500]
    out = admin("remote-command replica reset-log-start-level DEBUG")
    assert out.count("OK, current level is LOG_LEVEL_DEBUG") == 3, out
    try:
        deadline = time.time() + 30
        while time.time() < deadline:
            with open(link, "rb") as f:
                if re.search(rb"^D\d{4}-", f.read(), re.M):
                    break
            admin("remote-command replica flush-log")
            time.sleep(1)
        else:
            raise AssertionError("no debug line in %s after the level went to DEBUG" % link)
    finally:
        out = admin("remote-command replica reset-log-start-level")
        assert out.count("OK, current level is LOG_LEVEL_INFO") == 3, out
    out = admin("remote-command replica reset-log-start-level LOUD")
    assert "ERROR: invalid level 'LOUD'" in out, out
