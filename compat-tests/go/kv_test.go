// Single-key operations through the Go client: Set/Get/Del, TTL/Exist, expiry,
// BatchGet, binary and large values, and the client's partition hash function.
package compat

import (
	"bytes"
	"hash/crc64"
	"math/rand"
	"testing"
	"time"

	"github.com/apache/incubator-pegasus/go-client/pegasus"
)

// TestCRC64CheckValues checks the partition hash used by the tests (no server needed).
func TestCRC64CheckValues(t *testing.T) {
	cases := map[string]uint64{
		"123456789": 0xAE8B14860A799888,
		"a":         0x8C2F8445B4CBFC3C,
		"hashkey":   0x1299D9B06672773A,
		"":          0,
	}
	for in, want := range cases {
		if got := crc64.Checksum([]byte(in), pegasusCRC64); got != want {
			t.Errorf("crc64(%q) = %#x, want %#x", in, got, want)
		}
	}
}

func TestSetGetDel(t *testing.T) {
	setup(t)
	h := hk(t, "h")

	// missing key -> nil value, no error
	expectGet(t, h, b("s1"), nil)

	must(t, tb.Set(ctxT(t), h, b("s1"), b("v1")), "Set")
	expectGet(t, h, b("s1"), b("v1"))

	// overwrite
	must(t, tb.Set(ctxT(t), h, b("s1"), b("v2")), "Set overwrite")
	expectGet(t, h, b("s1"), b("v2"))

	// empty sort key is a distinct, valid key
	expectGet(t, h, b(""), nil)
	must(t, tb.Set(ctxT(t), h, b(""), b("v-empty-sk")), "Set empty sortkey")
	expectGet(t, h, b(""), b("v-empty-sk"))
	expectGet(t, h, b("s1"), b("v2"))

	// empty value: stored, Get returns an empty (not missing) value; Exist/TTL see it
	must(t, tb.Set(ctxT(t), h, b("ev"), b("")), "Set empty value")
	v := mustGet(t, h, b("ev"))
	if len(v) != 0 {
		t.Fatalf("Get empty value: got %q", v)
	}
	ok, err := tb.Exist(ctxT(t), h, b("ev"))
	must(t, err, "Exist empty value")
	if !ok {
		t.Fatalf("Exist(empty value) = false, want true")
	}
	if ttl := mustTTL(t, h, b("ev")); ttl != -1 {
		t.Fatalf("TTL(empty value) = %d, want -1", ttl)
	}

	// a different hash key with the same sort key is independent
	h2 := hk(t, "other")
	expectGet(t, h2, b("s1"), nil)

	// delete
	must(t, tb.Del(ctxT(t), h, b("s1")), "Del")
	expectGet(t, h, b("s1"), nil)
	expectGet(t, h, b(""), b("v-empty-sk"))
	// deleting a missing key succeeds
	must(t, tb.Del(ctxT(t), h, b("s1")), "Del missing")
	must(t, tb.Del(ctxT(t), h, b("never-existed")), "Del never existed")
	must(t, tb.Del(ctxT(t), h, b("")), "Del empty sortkey")
	expectGet(t, h, b(""), nil)

	// client-side validation: empty / nil hash key rejected without contacting the server
	if err := tb.Set(ctxT(t), b(""), b("s"), b("v")); err == nil {
		t.Fatalf("Set with empty hashkey: expected error")
	}
	if _, err := tb.Get(ctxT(t), nil, b("s")); err == nil {
		t.Fatalf("Get with nil hashkey: expected error")
	}
}

func TestTTLAndExist(t *testing.T) {
	setup(t)
	h := hk(t, "h")

	// missing key -> -2, Exist false
	if ttl := mustTTL(t, h, b("missing")); ttl != -2 {
		t.Fatalf("TTL(missing) = %d, want -2", ttl)
	}
	ok, err := tb.Exist(ctxT(t), h, b("missing"))
	must(t, err, "Exist")
	if ok {
		t.Fatalf("Exist(missing) = true")
	}

	// no TTL -> -1
	must(t, tb.Set(ctxT(t), h, b("nottl"), b("v")), "Set")
	if ttl := mustTTL(t, h, b("nottl")); ttl != -1 {
		t.Fatalf("TTL(no ttl) = %d, want -1", ttl)
	}
	ok, err = tb.Exist(ctxT(t), h, b("nottl"))
	must(t, err, "Exist")
	if !ok {
		t.Fatalf("Exist(existing) = false")
	}

	// SetTTL 100s -> remaining seconds in (90, 100]
	must(t, tb.SetTTL(ctxT(t), h, b("ttl"), b("v"), 100*time.Second), "SetTTL")
	expectGet(t, h, b("ttl"), b("v"))
	if ttl := mustTTL(t, h, b("ttl")); ttl < 90 || ttl > 100 {
		t.Fatalf("TTL after SetTTL(100s) = %d, want within [90,100]", ttl)
	}

	// plain Set overwrites and clears the TTL
	must(t, tb.Set(ctxT(t), h, b("ttl"), b("v2")), "Set over ttl")
	if ttl := mustTTL(t, h, b("ttl")); ttl != -1 {
		t.Fatalf("TTL after overwrite without ttl = %d, want -1", ttl)
	}

	// empty sort key with TTL
	must(t, tb.SetTTL(ctxT(t), h, b(""), b("v"), 1000*time.Second), "SetTTL empty sortkey")
	if ttl := mustTTL(t, h, b("")); ttl < 990 || ttl > 1000 {
		t.Fatalf("TTL(empty sortkey, 1000s) = %d", ttl)
	}

	// MultiSetOpt with TTL applies to every kv
	must(t, tb.MultiSetOpt(ctxT(t), h, bss("m1", "m2"), bss("x", "y"), 200*time.Second), "MultiSetOpt ttl")
	for _, s := range []string{"m1", "m2"} {
		if ttl := mustTTL(t, h, b(s)); ttl < 190 || ttl > 200 {
			t.Fatalf("TTL(%s) after MultiSetOpt(200s) = %d", s, ttl)
		}
	}

	// Incr keeps the existing TTL (client sends expire_ts_seconds = 0)
	must(t, tb.SetTTL(ctxT(t), h, b("cnt"), b("5"), 100*time.Second), "SetTTL counter")
	n, err := tb.Incr(ctxT(t), h, b("cnt"), 1)
	must(t, err, "Incr")
	if n != 6 {
		t.Fatalf("Incr = %d, want 6", n)
	}
	if ttl := mustTTL(t, h, b("cnt")); ttl < 90 || ttl > 100 {
		t.Fatalf("TTL after Incr = %d, want kept within [90,100]", ttl)
	}

	// deleted key -> -2
	must(t, tb.Del(ctxT(t), h, b("nottl")), "Del")
	if ttl := mustTTL(t, h, b("nottl")); ttl != -2 {
		t.Fatalf("TTL(deleted) = %d, want -2", ttl)
	}
}

func TestExpiry(t *testing.T) {
	setup(t)
	h := hk(t, "h")
	must(t, tb.MultiSet(ctxT(t), h, bss("keep1", "keep2"), bss("k1", "k2")), "MultiSet")
	must(t, tb.SetTTL(ctxT(t), h, b("exp"), b("gone-soon"), 2*time.Second), "SetTTL 2s")
	must(t, tb.MultiSetOpt(ctxT(t), h, bss("exp2", "exp3"), bss("a", "b"), 2*time.Second), "MultiSetOpt 2s")
	expectGet(t, h, b("exp"), b("gone-soon"))
	if ttl := mustTTL(t, h, b("exp")); ttl < 0 || ttl > 2 {
		t.Fatalf("TTL right after SetTTL(2s) = %d, want 0..2", ttl)
	}
	time.Sleep(3500 * time.Millisecond)

	expectGet(t, h, b("exp"), nil)
	expectGet(t, h, b("exp2"), nil)
	if ttl := mustTTL(t, h, b("exp")); ttl != -2 {
		t.Fatalf("TTL(expired) = %d, want -2", ttl)
	}
	ok, err := tb.Exist(ctxT(t), h, b("exp"))
	must(t, err, "Exist")
	if ok {
		t.Fatalf("Exist(expired) = true")
	}
	// multi-get (point and range), sortkey count and scans skip expired records
	kvs, all, err := tb.MultiGet(ctxT(t), h, bss("exp", "exp2", "keep1"))
	must(t, err, "MultiGet")
	if got := kvString(kvs); got != "keep1=k1" || !all {
		t.Fatalf("MultiGet after expiry = %q,%v", got, all)
	}
	kvs, all, err = tb.MultiGetRange(ctxT(t), h, nil, nil)
	must(t, err, "MultiGetRange")
	if got := kvString(kvs); got != "keep1=k1,keep2=k2" || !all {
		t.Fatalf("MultiGetRange after expiry = %q,%v", got, all)
	}
	cnt, err := tb.SortKeyCount(ctxT(t), h)
	must(t, err, "SortKeyCount")
	if cnt != 2 {
		t.Fatalf("SortKeyCount after expiry = %d, want 2", cnt)
	}
	opts := pegasus.NewScanOptions()
	opts.BatchSize = 1
	s, err := tb.GetScanner(ctxT(t), h, nil, nil, opts)
	must(t, err, "GetScanner")
	res := drain(t, s)
	if len(res) != 2 || string(res[0].sortKey) != "keep1" || string(res[1].sortKey) != "keep2" {
		t.Fatalf("scan after expiry returned %d records", len(res))
	}
	// Incr on an expired record starts from 0
	n, err := tb.Incr(ctxT(t), h, b("exp"), 7)
	must(t, err, "Incr expired")
	if n != 7 {
		t.Fatalf("Incr on expired record = %d, want 7", n)
	}
	if ttl := mustTTL(t, h, b("exp")); ttl != -1 {
		t.Fatalf("TTL after Incr on expired = %d, want -1", ttl)
	}
}

func TestBatchGet(t *testing.T) {
	setup(t)
	h1, h2 := hk(t, "a"), hk(t, "b")
	must(t, tb.Set(ctxT(t), h1, b("s1"), b("v1")), "Set")
	must(t, tb.Set(ctxT(t), h2, b(""), b("v2")), "Set")
	keys := []pegasus.CompositeKey{
		{HashKey: h1, SortKey: b("s1")},
		{HashKey: h1, SortKey: b("missing")},
		{HashKey: h2, SortKey: b("")},
		{HashKey: hk(t, "nohash"), SortKey: b("x")},
	}
	vals, err := tb.BatchGet(ctxT(t), keys)
	must(t, err, "BatchGet")
	if len(vals) != 4 {
		t.Fatalf("BatchGet returned %d values", len(vals))
	}
	expectBytes(t, "vals[0]", vals[0], b("v1"))
	if vals[1] != nil {
		t.Fatalf("vals[1] = %q, want nil", vals[1])
	}
	expectBytes(t, "vals[2]", vals[2], b("v2"))
	if vals[3] != nil {
		t.Fatalf("vals[3] = %q, want nil", vals[3])
	}
	if _, err := tb.BatchGet(ctxT(t), nil); err == nil {
		t.Fatalf("BatchGet(nil): expected error")
	}
}

func TestBinaryAndLargeValues(t *testing.T) {
	setup(t)
	h := append(hk(t, "bin"), 0x00, 0xFF, 0x01, 0x80)
	sk := []byte{0x00, 0xFF, 0x00, 0x7F}
	val := make([]byte, 512)
	for i := range val {
		val[i] = byte(i)
	}
	val = append(val, 0x00, 0x00, 0xFF, 0xFF)
	must(t, tb.Set(ctxT(t), h, sk, val), "Set binary")
	expectGet(t, h, sk, val)
	// a sort key that is a prefix of another must not collide
	must(t, tb.Set(ctxT(t), h, sk[:2], []byte{0xFF}), "Set prefix sortkey")
	expectGet(t, h, sk, val)
	expectGet(t, h, sk[:2], []byte{0xFF})

	// ~100 KB random value
	rnd := rand.New(rand.NewSource(42))
	big := make([]byte, 100*1024+7)
	rnd.Read(big)
	must(t, tb.Set(ctxT(t), h, b("big"), big), "Set 100KB")
	expectGet(t, h, b("big"), big)

	// multi-get returns binary sort keys and values byte-for-byte, ascending
	opts := *pegasus.DefaultMultiGetOptions
	opts.MaxFetchSize = 0 // no size limit so the 100 KB value does not cut the result
	kvs, all, err := tb.MultiGetRangeOpt(ctxT(t), h, nil, nil, &opts)
	must(t, err, "MultiGetRangeOpt")
	if !all || len(kvs) != 3 {
		t.Fatalf("MultiGetRange binary: %d kvs, allFetched=%v", len(kvs), all)
	}
	expectBytes(t, "kv0.sk", kvs[0].SortKey, sk[:2])
	expectBytes(t, "kv1.sk", kvs[1].SortKey, sk)
	expectBytes(t, "kv1.v", kvs[1].Value, val)
	expectBytes(t, "kv2.sk", kvs[2].SortKey, b("big"))
	expectBytes(t, "kv2.v", kvs[2].Value, big)

	// scan returns the binary hash key intact
	s, err := tb.GetScanner(ctxT(t), h, nil, nil, pegasus.NewScanOptions())
	must(t, err, "GetScanner")
	res := drain(t, s)
	if len(res) != 3 {
		t.Fatalf("scan binary: %d records", len(res))
	}
	for i, r := range res {
		if !bytes.Equal(r.hashKey, h) {
			t.Fatalf("scan[%d] hashKey = %x, want %x", i, r.hashKey, h)
		}
	}
	expectBytes(t, "scan[1].value", res[1].value, val)
	expectBytes(t, "scan[2].value", res[2].value, big)
}
