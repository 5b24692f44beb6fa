# Durability across a cluster restart: write through pypegasus3, `run.sh stop_onebox` +
# `run.sh start_onebox` on the same ONEBOX_DIR, reconnect, and check every record (runs last).
import pytest

from pgharness import OK, NOT_FOUND, ScanOptions, log


@pytest.mark.restart
def test_data_survives_restart(cluster, run_id):
    if not cluster.managed:
        pytest.skip("PEGASUS_META points at an external cluster; restart needs the onebox launcher")
    # A client of its own: other restarting tests may have restarted servers the session's
    # client was connected to, and pypegasus3 does not reconnect such sessions.
    client = cluster.open_client()

    prefix = run_id + "-restart"
    hashes = ["%s-%02d" % (prefix, i) for i in range(16)]
    expected = {}
    for h in hashes:
        kvs = {"s%02d" % j: "%s/%02d" % (h, j) for j in range(8)}
        assert client.multi_set(h, kvs) == (OK, None)
        for s, v in kvs.items():
            expected[(h, s)] = v.encode()
    h0 = hashes[0]
    binv = bytes(range(256)) * 4
    assert client.set(h0, "bin", binv) == (OK, None)
    expected[(h0, "bin")] = binv
    assert client.set(h0, "ttl", b"long-ttl", ttl=3600) == (OK, None)
    expected[(h0, "ttl")] = b"long-ttl"
    # deletions must persist too
    assert client.remove(h0, "s00") == (OK, None)
    del expected[(h0, "s00")]
    assert client.multi_del(hashes[1], {"s01", "s02"}) == (OK, 2)
    del expected[(hashes[1], "s01")]
    del expected[(hashes[1], "s02")]
    # overwritten value: the latest one must win after replay
    assert client.set(hashes[2], "s03", b"v1") == (OK, None)
    assert client.set(hashes[2], "s03", b"v2-final") == (OK, None)
    expected[(hashes[2], "s03")] = b"v2-final"

    def check(c):
        for (h, s), v in expected.items():
            assert c.get(h, s) == (OK, v), (h, s)
        assert c.get(h0, "s00") == (NOT_FOUND, b"")
        assert c.get(hashes[1], "s01") == (NOT_FOUND, b"")
        code, secs = c.ttl(h0, "ttl")
        assert code == OK and 3000 < secs <= 3600, secs
        assert c.ttl(h0, "bin") == (OK, -1)
        for h in hashes:
            n = sum(1 for (hh, _) in expected if hh == h)
            assert c.sort_key_count(h) == (OK, n), h
        opts = ScanOptions()
        opts.batch_size = 5
        got = c.scan_all(c.get_scanner(hashes[3], "", "~", opts))
        want = sorted(((h, s), v) for (h, s), v in expected.items() if h == hashes[3])
        assert got == want
        seen = {}
        for sc in c.get_unordered_scanners(4, opts):
            while True:
                try:
                    item = c.next(sc)
                except UnicodeDecodeError:
                    continue
                if item is None:
                    break
                (h, s), v = item
                if h.startswith(prefix + "-"):
                    seen[(h, s)] = v
        assert seen == expected

    check(client)
    client.close()

    log("restarting onebox in %s" % cluster.onebox_dir)
    cluster.stop()
    cluster.start()

    c2 = cluster.open_client()
    try:
        check(c2)
        # and the restarted cluster accepts writes
        assert c2.set(h0, "after-restart", b"ok") == (OK, None)
        assert c2.get(h0, "after-restart") == (OK, b"ok")
    finally:
        c2.close()
