# Hash-key operations through pypegasus3: multi_set, multi_get (point and range modes with
# inclusivity, limits, reverse, no_value, sort-key filters), get_sort_keys, multi_del, sort_key_count.
from pgharness import OK, NOT_FOUND, INCOMPLETE, K_INVALID_ARGUMENT, MultiGetOptions, filter_type


def _fill(client, hk, n=10):
    # multi_set str()-converts keys and values, so they must be str (bytes would be stored as
    # their repr "b'...'").
    kvs = {"sk%02d" % i: "v%02d" % i for i in range(n)}
    assert client.multi_set(hk, kvs) == (OK, None)
    return {k.encode(): v.encode() for k, v in kvs.items()}


def _opts(start_inclusive=True, stop_inclusive=False, no_value=False, reverse=False,
          ftype=filter_type.FT_NO_FILTER, pattern=""):
    o = MultiGetOptions()
    o.start_inclusive = start_inclusive
    o.stop_inclusive = stop_inclusive
    o.no_value = no_value
    o.reverse = reverse
    o.sortkey_filter_type = ftype
    o.sortkey_filter_pattern = pattern
    return o


def _sub(data, *idx):
    return {("sk%02d" % i).encode(): data[("sk%02d" % i).encode()] for i in idx}


def test_multi_set_then_get_each(client, hk):
    data = _fill(client, hk)
    for k, v in data.items():
        assert client.get(hk, k) == (OK, v)
    assert client.ttl(hk, "sk00") == (OK, -1)


def test_multi_set_with_ttl(client, hk):
    assert client.multi_set(hk, {"a": "1", "b": "2"}, ttl=600) == (OK, None)
    for sk in ("a", "b"):
        code, secs = client.ttl(hk, sk)
        assert code == OK and 597 <= secs <= 600


def test_multi_set_empty_is_invalid_argument(client, hk):
    # empty kvs -> rocksdb kInvalidArgument (4), returned raw by the client
    assert client.multi_set(hk, {}) == (K_INVALID_ARGUMENT, None)


def test_multi_get_point(client, hk):
    data = _fill(client, hk)
    # found keys only; a missing key is simply absent; code 0
    code, kvs = client.multi_get(hk, {"sk01", "sk05", "nope"})
    assert code == OK
    assert kvs == _sub(data, 1, 5)
    # keys come back as bytes sort keys (no hash key), values as bytes
    assert all(isinstance(k, bytes) and isinstance(v, bytes) for k, v in kvs.items())


def test_multi_get_point_no_value(client, hk):
    _fill(client, hk)
    assert client.multi_get(hk, {"sk02", "sk03"}, no_value=True) == (
        OK, {b"sk02": b"", b"sk03": b""})


def test_multi_get_point_all_missing(client, hk):
    assert client.multi_get(hk, {"x", "y"}) == (OK, {})


def test_multi_get_point_count_limit(client, hk):
    data = _fill(client, hk)
    req = {"sk%02d" % i for i in range(6)}
    code, kvs = client.multi_get(hk, req, max_kv_count=2)
    # limit hit before all requested keys were read -> kIncomplete (7) -> 38
    assert code == INCOMPLETE
    assert len(kvs) == 2
    assert all(data[k] == v for k, v in kvs.items())
    # limit equal to the number of found keys is complete
    code, kvs = client.multi_get(hk, {"sk00", "sk01"}, max_kv_count=2)
    assert (code, kvs) == (OK, _sub(data, 0, 1))


def test_multi_get_range_all(client, hk):
    data = _fill(client, hk)
    # sortkey_set=None (or an empty set) -> range mode over the whole hash key
    assert client.multi_get(hk, None) == (OK, data)
    assert client.multi_get(hk, set()) == (OK, data)


def test_get_sort_keys(client, hk):
    data = _fill(client, hk)
    assert client.get_sort_keys(hk) == (OK, {k: b"" for k in data})
    assert client.get_sort_keys(hk + "-none") == (OK, {})


def test_multi_get_range_count_limit(client, hk):
    data = _fill(client, hk)
    # range mode stops after 3 records while more remain -> incomplete, first 3 in order
    assert client.multi_get(hk, None, max_kv_count=3) == (INCOMPLETE, _sub(data, 0, 1, 2))


def test_multi_get_range_size_limit(client, hk):
    data = _fill(client, hk)
    # each record is 4 key bytes + 3 value bytes = 7; iteration stops once the accumulated
    # size reaches max_kv_size: 7, 14, 21 >= 20 -> 3 records
    assert client.multi_get(hk, None, max_kv_size=20) == (INCOMPLETE, _sub(data, 0, 1, 2))


def test_multi_get_range_skips_empty_sort_key_without_start_inclusive(client, hk):
    # multi_get(hk, None) leaves start_inclusive unset (absent -> false), and the range starts
    # at the bare hash key, so upstream's "exclusive start" skips the record whose sort key is
    # empty. sort_key_count and scanners still see it.
    assert client.set(hk, "", b"root") == (OK, None)
    assert client.set(hk, "a", b"A") == (OK, None)
    assert client.multi_get(hk, None) == (OK, {b"a": b"A"})
    assert client.sort_key_count(hk) == (OK, 2)
    # multi_get_opt with start_inclusive=True includes it
    assert client.multi_get_opt(hk, "", "", _opts()) == (OK, {b"": b"root", b"a": b"A"})
    assert client.multi_get(hk, {""}) == (OK, {b"": b"root"})


def test_multi_get_opt_ranges(client, hk):
    data = _fill(client, hk)
    # default options: [start, stop)
    assert client.multi_get_opt(hk, "sk03", "sk07", _opts()) == (OK, _sub(data, 3, 4, 5, 6))
    # (start, stop]
    assert client.multi_get_opt(hk, "sk03", "sk07", _opts(False, True)) == (
        OK, _sub(data, 4, 5, 6, 7))
    # [start, stop]
    assert client.multi_get_opt(hk, "sk03", "sk07", _opts(True, True)) == (
        OK, _sub(data, 3, 4, 5, 6, 7))
    # (start, stop)
    assert client.multi_get_opt(hk, "sk03", "sk07", _opts(False, False)) == (
        OK, _sub(data, 4, 5, 6))
    # bounds that are not existing keys
    assert client.multi_get_opt(hk, "sk035", "sk065", _opts()) == (OK, _sub(data, 4, 5, 6))
    # empty start / empty stop = open ends
    assert client.multi_get_opt(hk, "", "sk02", _opts()) == (OK, _sub(data, 0, 1))
    assert client.multi_get_opt(hk, "sk08", "", _opts()) == (OK, _sub(data, 8, 9))
    # empty stop ignores stop_inclusive
    assert client.multi_get_opt(hk, "sk08", "", _opts(True, True)) == (OK, _sub(data, 8, 9))
    assert client.multi_get_opt(hk, "", "", _opts()) == (OK, data)


def test_multi_get_opt_empty_ranges(client, hk):
    _fill(client, hk)
    # start > stop, and start == stop unless both inclusive: empty, complete
    assert client.multi_get_opt(hk, "sk07", "sk03", _opts()) == (OK, {})
    assert client.multi_get_opt(hk, "sk05", "sk05", _opts(True, False)) == (OK, {})
    assert client.multi_get_opt(hk, "sk05", "sk05", _opts(False, True)) == (OK, {})
    assert client.multi_get_opt(hk, "sk05", "sk05", _opts(True, True)) == (
        OK, {b"sk05": b"v05"})


def test_multi_get_opt_no_value(client, hk):
    _fill(client, hk, 4)
    assert client.multi_get_opt(hk, "", "", _opts(no_value=True)) == (
        OK, {b"sk00": b"", b"sk01": b"", b"sk02": b"", b"sk03": b""})


def test_multi_get_opt_limits_and_reverse(client, hk):
    data = _fill(client, hk)
    assert client.multi_get_opt(hk, "", "", _opts(), max_kv_count=4) == (
        INCOMPLETE, _sub(data, 0, 1, 2, 3))
    # reverse takes from the end; the server still returns them in ascending order
    assert client.multi_get_opt(hk, "", "", _opts(reverse=True), max_kv_count=3) == (
        INCOMPLETE, _sub(data, 7, 8, 9))
    assert client.multi_get_opt(hk, "", "", _opts(reverse=True)) == (OK, data)
    assert client.multi_get_opt(hk, "sk02", "sk06", _opts(reverse=True)) == (
        OK, _sub(data, 2, 3, 4, 5))
    assert client.multi_get_opt(hk, "sk02", "sk06", _opts(False, True, reverse=True)) == (
        OK, _sub(data, 3, 4, 5, 6))
    assert client.multi_get_opt(hk, "sk02", "sk06", _opts(reverse=True), max_kv_count=2) == (
        INCOMPLETE, _sub(data, 4, 5))


def test_multi_get_opt_sort_key_filters(client, hk):
    words = ["apple", "apricot", "banana", "grape", "pineapple", "ap"]
    assert client.multi_set(hk, {w: w.upper() for w in words}) == (OK, None)

    def run(ftype, pattern, start="", stop=""):
        code, kvs = client.multi_get_opt(hk, start, stop, _opts(ftype=ftype, pattern=pattern))
        assert code == OK
        return sorted(k.decode() for k in kvs)

    assert run(filter_type.FT_NO_FILTER, "zzz") == sorted(words)
    assert run(filter_type.FT_MATCH_PREFIX, "ap") == ["ap", "apple", "apricot"]
    assert run(filter_type.FT_MATCH_PREFIX, "apr") == ["apricot"]
    assert run(filter_type.FT_MATCH_POSTFIX, "ple") == ["apple", "pineapple"]
    assert run(filter_type.FT_MATCH_ANYWHERE, "an") == ["banana"]
    assert run(filter_type.FT_MATCH_ANYWHERE, "ap") == ["ap", "apple", "apricot", "grape",
                                                         "pineapple"]
    # empty pattern matches everything
    assert run(filter_type.FT_MATCH_ANYWHERE, "") == sorted(words)
    assert run(filter_type.FT_MATCH_PREFIX, "zz") == []
    # filter combined with a range
    assert run(filter_type.FT_MATCH_ANYWHERE, "ap", "b", "h") == ["grape"]
    # values are returned for filtered results
    assert client.multi_get_opt(hk, "", "", _opts(ftype=filter_type.FT_MATCH_POSTFIX,
                                                  pattern="cot")) == (OK, {b"apricot": b"APRICOT"})


def test_multi_get_opt_bad_filter_type(client, hk):
    _fill(client, hk, 2)
    code, kvs = client.multi_get_opt(hk, "", "", _opts(ftype=99, pattern="x"))
    assert (code, kvs) == (K_INVALID_ARGUMENT, {})


def test_multi_del(client, hk):
    data = _fill(client, hk)
    # count = number of sort keys in the request, whether they existed or not
    assert client.multi_del(hk, {"sk01", "sk02", "does-not-exist"}) == (OK, 3)
    code, kvs = client.multi_get(hk, None)
    assert code == OK
    assert kvs == {k: v for k, v in data.items() if k not in (b"sk01", b"sk02")}
    assert client.get(hk, "sk01") == (NOT_FOUND, b"")
    assert client.sort_key_count(hk) == (OK, 8)


def test_multi_del_empty_is_invalid_argument(client, hk):
    assert client.multi_del(hk, set()) == (K_INVALID_ARGUMENT, 0)


def test_sort_key_count(client, hk):
    assert client.sort_key_count(hk) == (OK, 0)
    _fill(client, hk, 7)
    assert client.sort_key_count(hk) == (OK, 7)
    assert client.set(hk, "extra", b"x") == (OK, None)
    assert client.sort_key_count(hk) == (OK, 8)
    assert client.remove(hk, "extra") == (OK, None)
    assert client.sort_key_count(hk) == (OK, 7)


def test_hash_keys_are_isolated(client, hk):
    # a hash key that is a prefix of another must not see the other's records
    assert client.multi_set(hk, {"a": "1"}) == (OK, None)
    assert client.multi_set(hk + "x", {"b": "2"}) == (OK, None)
    assert client.multi_get(hk, None) == (OK, {b"a": b"1"})
    assert client.sort_key_count(hk) == (OK, 1)
    assert client.multi_get(hk + "x", None) == (OK, {b"b": b"2"})
