# Every HTTP page upstream registers on meta and replica servers, fetched from the session's
# cluster and checked against upstream's names: the builtin pages, the meta's table, node,
# cluster and env pages (table-printer JSON, every value a string), the POST pages that set
# compaction and usage-scenario envs, the replica pages, and upstream's status codes and texts
# for bad arguments and for the features this server answers as disabled. (The 307 redirect
# of a non-leader meta is checked in test_zx_meta_failover.)
import json
import urllib.error
import urllib.request

from pgharness import OK

COMMON = ["/", "/config", "/configs", "/metrics", "/recentStartTime", "/updateConfig",
          "/version"]
META = ["/envs/list", "/meta/app", "/meta/app/duplication", "/meta/app/query_bulk_load",
        "/meta/app/start_bulk_load", "/meta/app/start_compaction", "/meta/app/usage_scenario",
        "/meta/app_envs", "/meta/apps", "/meta/backup_policy", "/meta/cluster", "/meta/nodes"]
REPLICA = ["/replica/data_version", "/replica/duplication", "/replica/manual_compaction"]


def fetch(addr, path, body=None):
    req = urllib.request.Request("http://%s%s" % (addr, path), data=body,
                                 method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def addrs(cluster):
    return ("127.0.0.1:%d" % (cluster.META_PORT_BASE + 1),
            "127.0.0.1:%d" % (cluster.REPLICA_PORT_BASE + 1))


def all_strings(obj):
    if isinstance(obj, dict):
        return all(all_strings(v) for v in obj.values())
    return isinstance(obj, str)


def test_root_lists_every_page_and_builtins_answer(cluster):
    meta, replica = addrs(cluster)
    for addr, own in ((meta, META), (replica, REPLICA)):
        status, body = fetch(addr, "/")
        assert status == 200, body
        pages = json.loads(body)
        assert sorted(pages) == sorted(COMMON + own), sorted(pages)
        status, body = fetch(addr, "/version")
        assert status == 200 and set(json.loads(body)) == {"Version", "GitCommit"}, body
        status, body = fetch(addr, "/recentStartTime")
        t = json.loads(body)["RecentStartTime"]
        assert len(t) == 19 and t[4] == "-" and t[13] == ":", t
        status, body = fetch(addr, "/nope/page")
        assert status == 404 and body == 'service not found for "nope/page"', body
        status, body = fetch(addr, "/meta/app?name=a&name=b")
        assert status == 400 and body == ("failed to parse request: ERR_INVALID_PARAMETERS: "
                                          "duplicate parameter: name"), body
        status, body = fetch(addr, "/config?name=%zz")
        assert status == 400 and "do not form a hex value" in body, body


def test_meta_table_node_and_cluster_pages(cluster, client, hk):
    meta, _ = addrs(cluster)
    assert client.set(hk, "s", "v") == (OK, None)
    status, body = fetch(meta, "/meta/app?name=%s" % cluster.table)
    assert status == 200 and body.endswith("\n"), body
    app = json.loads(body)
    assert list(app) == ["general"], app
    assert list(app["general"]) == ["app_name", "app_id", "partition_count",
                                    "max_replica_count"]
    assert app["general"]["partition_count"] == "8" and app["general"]["max_replica_count"] == "3"
    status, body = fetch(meta, "/meta/app?name=%s&detail" % cluster.table)
    app = json.loads(body)
    assert list(app) == ["general", "replicas", "nodes", "healthy"], list(app)
    assert sorted(app["replicas"], key=int) == [str(i) for i in range(8)]
    assert list(app["replicas"]["0"]) == ["pidx", "ballot", "replica_count", "primary",
                                          "secondaries"]
    assert app["replicas"]["0"]["replica_count"] == "3/3"
    assert app["nodes"]["total"] == {"node": "total", "primary": "8", "secondary": "16",
                                     "total": "24"}, app["nodes"]
    assert app["healthy"]["fully_healthy_partition_count"] == "8"
    assert all_strings(app)
    assert fetch(meta, "/meta/app?name=")[0] == 400
    status, body = fetch(meta, "/meta/app?name=no_such_table")
    assert status == 404 and body == 'table not found: "no_such_table"', body
    assert fetch(meta, "/meta/app?name=x&colour=red") == (400, "")

    status, body = fetch(meta, "/meta/apps?detail")
    apps = json.loads(body)
    assert list(apps) == ["general_info", "healthy_info", "summary"], list(apps)
    row = next(r for r in apps["general_info"].values() if r["app_name"] == cluster.table)
    assert list(row) == ["app_id", "status", "app_name", "app_type", "partition_count",
                         "replica_count", "is_stateful", "create_time", "drop_time",
                         "drop_expire", "envs_count"], list(row)
    assert row["status"] == "AVAILABLE" and row["app_type"] == "pegasus"
    assert int(apps["summary"]["total_app_count"]) >= 1
    assert "fully_healthy_app_count" in apps["summary"]
    assert list(json.loads(fetch(meta, "/meta/apps")[1])) == ["general_info", "summary"]

    status, body = fetch(meta, "/meta/nodes?detail")
    nodes = json.loads(body)
    assert nodes["summary"] == {"total_node_count": "3", "alive_node_count": "3",
                                "unalive_node_count": "0"}, nodes
    for addr, row in nodes["details"].items():
        assert row["address"] == addr and row["status"] == "ALIVE", row
        assert int(row["replica_count"]) == int(row["primary_count"]) + \
            int(row["secondary_count"])

    status, body = fetch(meta, "/meta/cluster")
    c = json.loads(body)
    assert list(c) == ["meta_servers", "primary_meta_server", "zookeeper_hosts",
                       "zookeeper_root", "meta_function_level", "balance_operation_count",
                       "primary_replica_count_stddev", "total_replica_count_stddev"], list(c)
    assert set(json.loads(c["balance_operation_count"])) == {"copy_pri", "copy_sec",
                                                              "move_pri", "total"}
    assert c["meta_function_level"] in ("steady", "lively", "freezed")


def test_meta_env_pages_and_post_pages(cluster):
    meta, _ = addrs(cluster)
    status, body = fetch(meta, "/envs/list")
    envs = json.loads(body)
    assert envs["replica.slow_query_threshold"] == {
        "limitation": ">= 20", "sample": "1000", "type": "unsigned int64"}, envs
    assert "rocksdb.usage_scenario" in envs and "default_ttl" in envs

    body = json.dumps({"app_name": cluster.table, "type": "once", "target_level": -1,
                       "bottommost_level_compaction": "skip",
                       "max_concurrent_running_count": 0}).encode()
    status, text = fetch(meta, "/meta/app/start_compaction", body)
    assert status == 200 and json.loads(text) == {"error": "ERR_OK", "hint_message": ""}, text
    status, text = fetch(meta, "/meta/app_envs?name=%s" % cluster.table)
    envs = json.loads(text)
    assert envs["manual_compact.once.target_level"] == "-1", envs
    assert envs["manual_compact.once.bottommost_level_compaction"] == "skip", envs
    bad = json.dumps({"app_name": cluster.table, "type": "sometimes", "target_level": -1,
                      "bottommost_level_compaction": "skip",
                      "max_concurrent_running_count": 0}).encode()
    assert fetch(meta, "/meta/app/start_compaction", bad) == \
        (400, "type should ony be 'once' or 'periodic'")
    assert fetch(meta, "/meta/app/start_compaction", b'{"app": "x"}') == \
        (400, "invalid request structure")

    body = json.dumps({"app_name": cluster.table, "scenario": "bulk_load"}).encode()
    status, text = fetch(meta, "/meta/app/usage_scenario", body)
    assert json.loads(text)["error"] == "ERR_OK", text
    assert json.loads(fetch(meta, "/meta/app_envs?name=%s" % cluster.table)[1])[
        "rocksdb.usage_scenario"] == "bulk_load"
    body = json.dumps({"app_name": cluster.table, "scenario": "normal"}).encode()
    assert json.loads(fetch(meta, "/meta/app/usage_scenario", body)[1])["error"] == "ERR_OK"
    body = json.dumps({"app_name": cluster.table, "scenario": "prefer_write"}).encode()
    assert fetch(meta, "/meta/app/usage_scenario", body) == \
        (400, "scenario should ony be 'normal' or 'bulk_load'")
    assert fetch(meta, "/meta/app_envs?name=no_such_table") == (200, "{}\n")

    # duplication: upstream's `null` for a table without any, and its errors
    assert fetch(meta, "/meta/app/duplication?name=%s" % cluster.table) == (200, "null")
    assert fetch(meta, "/meta/app/duplication") == (400, "name should not be empty")
    assert fetch(meta, "/meta/app/duplication?name=no_such_table") == (404, "ERR_APP_NOT_EXIST")
    # cold backup is on in the onebox config, and no policy exists
    assert fetch(meta, "/meta/backup_policy") == (200, "{}\n")
    assert fetch(meta, "/meta/backup_policy?colour=red") == (400, "Invalid parameter")
    assert fetch(meta, "/meta/app/query_bulk_load?name=x") == (404, "bulk load is not enabled")


def test_replica_pages(cluster, client, hk):
    _, replica = addrs(cluster)
    assert client.set(hk, "s", "v") == (OK, None)
    meta, _ = addrs(cluster)
    app_id = json.loads(fetch(meta, "/meta/app?name=%s" % cluster.table)[1])["general"]["app_id"]
    status, body = fetch(replica, "/replica/data_version?app_id=%s" % app_id)
    dv = json.loads(body)
    assert status == 200 and dv and all(v == {"data_version": "1"} for v in dv.values()), dv
    status, body = fetch(replica, "/replica/manual_compaction?app_id=%s" % app_id)
    assert set(json.loads(body)["status"]) == {"finished", "idle", "queuing", "running"}
    assert fetch(replica, "/replica/data_version") == (400, "app_id should not be empty")
    assert fetch(replica, "/replica/data_version?app_id=x") == (400, "invalid app_id=x")
    assert fetch(replica, "/replica/data_version?app_id=999") == (404, "app_id=999 not found")
    assert fetch(replica, "/replica/duplication?appid=%s" % app_id) in (
        (404, "no duplication assigned for app [appid=%s]" % app_id),
        (404, "no primary for app [appid=%s]" % app_id))
    assert fetch(replica, "/replica/duplication?appid=999") == \
        (404, "no primary for app [appid=999]")
    assert fetch(replica, "/replica/duplication") == (400, "appid should not be empty")
