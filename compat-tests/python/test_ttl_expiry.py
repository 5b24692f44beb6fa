# TTL expiry through pypegasus3: records written with a 2 s TTL (set and multi_set) disappear
# from get/ttl/exist/multi_get/get_sort_keys/sort_key_count/scans after ~3 s; others stay.
import time

from pgharness import OK, NOT_FOUND, ScanOptions


def test_expiry(client, hk):
    assert client.set(hk, "e1", b"short", ttl=2) == (OK, None)
    assert client.multi_set(hk, {"m1": "short-m1", "m2": "short-m2"}, ttl=2) == (OK, None)
    assert client.set(hk, "p1", b"forever") == (OK, None)
    assert client.multi_set(hk, {"p2": "forever-2"}) == (OK, None)
    # a key that gets a TTL and is then overwritten without one must survive
    assert client.set(hk, "p3", b"was-short", ttl=2) == (OK, None)
    assert client.set(hk, "p3", b"now-forever") == (OK, None)

    # right after writing, everything is visible; remaining TTL is 1..2 s
    assert client.get(hk, "e1") == (OK, b"short")
    code, secs = client.ttl(hk, "e1")
    assert code == OK and 1 <= secs <= 2, secs
    code, secs = client.ttl(hk, "m2")
    assert code == OK and 1 <= secs <= 2, secs
    assert client.ttl(hk, "p1") == (OK, -1)
    assert client.sort_key_count(hk) == (OK, 6)

    time.sleep(3.2)

    # expired records read as not found everywhere
    assert client.get(hk, "e1") == (NOT_FOUND, b"")
    assert client.get(hk, "m1") == (NOT_FOUND, b"")
    assert client.ttl(hk, "e1") == (NOT_FOUND, 0)
    assert client.exist(hk, "m2") == (NOT_FOUND, 0)
    survivors = {b"p1": b"forever", b"p2": b"forever-2", b"p3": b"now-forever"}
    assert client.multi_get(hk, {"e1", "m1", "m2", "p1", "p2", "p3"}) == (OK, survivors)
    assert client.multi_get(hk, None) == (OK, survivors)
    assert client.get_sort_keys(hk) == (OK, {k: b"" for k in survivors})
    assert client.sort_key_count(hk) == (OK, 3)
    opts = ScanOptions()
    opts.batch_size = 2
    got = client.scan_all(client.get_scanner(hk, "", "~", opts))
    assert got == [((hk, k.decode()), v) for k, v in sorted(survivors.items())]
    assert client.ttl(hk, "p3") == (OK, -1)

    # an expired key can be written again
    assert client.set(hk, "e1", b"revived") == (OK, None)
    assert client.get(hk, "e1") == (OK, b"revived")
    assert client.ttl(hk, "e1") == (OK, -1)
    # removing an expired key is fine
    assert client.remove(hk, "m1") == (OK, None)
    assert client.sort_key_count(hk) == (OK, 4)
