# Single-key operations through pypegasus3: set/get/remove/ttl/exist, binary and large values,
# and the exact (code, value) tuples the client returns for each.
import pytest

from pgharness import OK, NOT_FOUND


def test_set_get_roundtrip(client, hk):
    assert client.set(hk, "k1", b"v1") == (OK, None)        # put returns raw rocksdb code 0
    assert client.get(hk, "k1") == (OK, b"v1")
    # overwrite
    assert client.set(hk, "k1", b"v1-new") == (OK, None)
    assert client.get(hk, "k1") == (OK, b"v1-new")


def test_str_arguments_are_utf8(client, hk):
    # str hash/sort keys and values are UTF-8 encoded by the client
    assert client.set(hk, "cl\u00e9", "h\u00e9llo \u2603") == (OK, None)
    assert client.get(hk, "cl\u00e9".encode("utf-8")) == (OK, "h\u00e9llo \u2603".encode("utf-8"))
    assert client.get(hk.encode("utf-8"), "cl\u00e9") == (OK, "h\u00e9llo \u2603".encode("utf-8"))


def test_get_missing(client, hk):
    # rocksdb kNotFound (1) is converted by the client to ERR_OBJECT_NOT_FOUND (23); the
    # server sends an empty value blob
    assert client.get(hk, "missing") == (NOT_FOUND, b"")
    assert client.get(hk + "-never-written", "x") == (NOT_FOUND, b"")


def test_remove(client, hk):
    assert client.set(hk, "r", b"x") == (OK, None)
    assert client.get(hk, "r") == (OK, b"x")
    assert client.remove(hk, "r") == (OK, None)
    assert client.get(hk, "r") == (NOT_FOUND, b"")
    # removing a missing key is not an error
    assert client.remove(hk, "r") == (OK, None)
    assert client.remove(hk, "never-existed") == (OK, None)
    # re-set after remove
    assert client.set(hk, "r", b"again") == (OK, None)
    assert client.get(hk, "r") == (OK, b"again")


def test_empty_value_is_found(client, hk):
    assert client.set(hk, "empty", b"") == (OK, None)
    assert client.get(hk, "empty") == (OK, b"")
    assert client.ttl(hk, "empty") == (OK, -1)


def test_empty_sort_key(client, hk):
    assert client.set(hk, "", b"hk-only") == (OK, None)
    assert client.get(hk, "") == (OK, b"hk-only")
    assert client.ttl(hk, "") == (OK, -1)
    assert client.remove(hk, "") == (OK, None)
    assert client.get(hk, "") == (NOT_FOUND, b"")


def test_binary_values(client, hk):
    vals = {
        "zeros": b"\x00\x00\x00",
        "ff": b"\xff\xff\xff\xff",
        "mixed": bytes(range(256)),
        "nul-mid": b"a\x00b\xffc",
    }
    for sk, v in vals.items():
        assert client.set(hk, sk, v) == (OK, None)
    for sk, v in vals.items():
        assert client.get(hk, sk) == (OK, v)


def test_binary_hash_and_sort_keys_point_ops(client, run_id):
    # Point operations accept arbitrary bytes keys (scans would fail to decode them client-side,
    # so these keys are removed again before the test ends).
    bhk = run_id.encode() + b"-bin-\x00\xff\x01"
    bsk = b"\xff\x00\xfe"
    assert client.set(bhk, bsk, b"\x00v\xff") == (OK, None)
    assert client.get(bhk, bsk) == (OK, b"\x00v\xff")
    assert client.ttl(bhk, bsk) == (OK, -1)
    assert client.remove(bhk, bsk) == (OK, None)
    assert client.get(bhk, bsk) == (NOT_FOUND, b"")


def test_large_value(client, hk):
    big = bytes((i * 7 + 3) % 256 for i in range(100 * 1024))
    assert client.set(hk, "big", big) == (OK, None)
    code, got = client.get(hk, "big")
    assert code == OK
    assert len(got) == len(big)
    assert got == big
    code, kvs = client.multi_get(hk, {"big"})
    assert code == OK and kvs == {b"big": big}


def test_ttl_no_ttl(client, hk):
    assert client.set(hk, "t", b"v") == (OK, None)
    assert client.ttl(hk, "t") == (OK, -1)     # -1 means no TTL


def test_ttl_with_ttl(client, hk):
    assert client.set(hk, "t", b"v", ttl=1000) == (OK, None)
    code, secs = client.ttl(hk, "t")
    assert code == OK
    assert 997 <= secs <= 1000
    assert client.get(hk, "t") == (OK, b"v")


def test_ttl_missing(client, hk):
    # not found: code converted to 23, ttl_seconds left at its default 0
    assert client.ttl(hk, "nope") == (NOT_FOUND, 0)


def test_overwrite_clears_or_sets_ttl(client, hk):
    assert client.set(hk, "t", b"v1", ttl=500) == (OK, None)
    code, secs = client.ttl(hk, "t")
    assert code == OK and 497 <= secs <= 500
    # a plain set (ttl=0 -> expire_ts 0) replaces the record, so the TTL is gone
    assert client.set(hk, "t", b"v2") == (OK, None)
    assert client.ttl(hk, "t") == (OK, -1)
    assert client.set(hk, "t", b"v3", ttl=800) == (OK, None)
    code, secs = client.ttl(hk, "t")
    assert code == OK and 797 <= secs <= 800
    assert client.get(hk, "t") == (OK, b"v3")


def test_exist(client, hk):
    # exist() is ttl() under the hood, so it returns (code, ttl_seconds)
    assert client.set(hk, "e", b"v") == (OK, None)
    assert client.exist(hk, "e") == (OK, -1)
    assert client.exist(hk, "not-there") == (NOT_FOUND, 0)


@pytest.mark.parametrize("n", [1, 50])
def test_many_keys_across_partitions(client, run_id, n):
    # keys hashed over different partitions all round-trip
    keys = ["%s-spread-%d-%d" % (run_id, n, i) for i in range(n)]
    for i, k in enumerate(keys):
        assert client.set(k, "s", ("val-%d" % i).encode()) == (OK, None)
    for i, k in enumerate(keys):
        assert client.get(k, "s") == (OK, ("val-%d" % i).encode())
