// Scanner protocol through the Go client: hash-key scans (GET_SCANNER + several SCAN
// round trips, ranges, NoValue, filters), full-table unordered scans over all partitions,
// and closing scanners mid-way (CLEAR_SCANNER gets no reply and must not hurt the session).
package compat

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/apache/incubator-pegasus/go-client/pegasus"
)

const scanKeyCount = 25

func scanKey(i int) string { return fmt.Sprintf("s%03d", i) }
func scanVal(i int) string { return fmt.Sprintf("value-%03d", i) }

func setupScan(t *testing.T) []byte {
	h := hk(t, "h")
	keys := make([]string, scanKeyCount)
	vals := make([]string, scanKeyCount)
	for i := range keys {
		keys[i], vals[i] = scanKey(i), scanVal(i)
	}
	must(t, tb.MultiSet(ctxT(t), h, bss(keys...), bss(vals...)), "MultiSet")
	return h
}

// expectedScan lists the indexes i in [from, to] whose sort key passes keep.
func expectedScan(from, to int, keep func(sk string) bool) []int {
	var out []int
	for i := from; i <= to && i < scanKeyCount; i++ {
		if keep == nil || keep(scanKey(i)) {
			out = append(out, i)
		}
	}
	return out
}

func checkScan(t *testing.T, name string, h []byte, res []scanned, want []int, noValue bool) {
	t.Helper()
	got := make([]string, len(res))
	for i, r := range res {
		got[i] = string(r.sortKey)
		if !bytes.Equal(r.hashKey, h) {
			t.Fatalf("%s: record %d has hash key %q, want %q", name, i, r.hashKey, h)
		}
	}
	exp := make([]string, len(want))
	for i, w := range want {
		exp[i] = scanKey(w)
	}
	if strings.Join(got, ",") != strings.Join(exp, ",") {
		t.Fatalf("%s: got sort keys [%s], want [%s]", name, strings.Join(got, ","), strings.Join(exp, ","))
	}
	for i, r := range res {
		if noValue {
			if len(r.value) != 0 {
				t.Fatalf("%s: NoValue returned value %q", name, r.value)
			}
		} else if string(r.value) != scanVal(want[i]) {
			t.Fatalf("%s: value of %s = %q, want %q", name, r.sortKey, r.value, scanVal(want[i]))
		}
	}
}

func TestHashKeyScan(t *testing.T) {
	setup(t)
	h := setupScan(t)
	all := func(string) bool { return true }
	type tc struct {
		name        string
		start, stop string
		mod         func(o *pegasus.ScannerOptions)
		want        []int
		noValue     bool
	}
	filter := func(ft pegasus.FilterType, p string) func(o *pegasus.ScannerOptions) {
		return func(o *pegasus.ScannerOptions) { o.SortKeyFilter = pegasus.Filter{Type: ft, Pattern: b(p)} }
	}
	cases := []tc{
		{"all, default batch", "", "", nil, expectedScan(0, 24, all), false},
		{"all, batch 4", "", "", func(o *pegasus.ScannerOptions) { o.BatchSize = 4 }, expectedScan(0, 24, all), false},
		{"all, batch 1", "", "", func(o *pegasus.ScannerOptions) { o.BatchSize = 1 }, expectedScan(0, 24, all), false},
		{"all, batch = count", "", "", func(o *pegasus.ScannerOptions) { o.BatchSize = scanKeyCount }, expectedScan(0, 24, all), false},
		{"[s005,s010)", "s005", "s010", func(o *pegasus.ScannerOptions) { o.BatchSize = 2 }, expectedScan(5, 9, all), false},
		{"(s005,s010]", "s005", "s010", func(o *pegasus.ScannerOptions) {
			o.BatchSize = 3
			o.StartInclusive = false
			o.StopInclusive = true
		}, expectedScan(6, 10, all), false},
		{"[s005,s005]", "s005", "s005", func(o *pegasus.ScannerOptions) { o.StopInclusive = true }, expectedScan(5, 5, all), false},
		{"from s020", "s020", "", func(o *pegasus.ScannerOptions) { o.BatchSize = 2 }, expectedScan(20, 24, all), false},
		{"until s003", "", "s003", nil, expectedScan(0, 2, all), false},
		{"NoValue", "", "", func(o *pegasus.ScannerOptions) { o.BatchSize = 7; o.NoValue = true }, expectedScan(0, 24, all), true},
		{"prefix s01", "", "", func(o *pegasus.ScannerOptions) {
			o.BatchSize = 3
			o.SortKeyFilter = pegasus.Filter{Type: pegasus.FilterTypeMatchPrefix, Pattern: b("s01")}
		}, expectedScan(10, 19, all), false},
		{"postfix 5", "", "", func(o *pegasus.ScannerOptions) {
			o.BatchSize = 1
			filter(pegasus.FilterTypeMatchPostfix, "5")(o)
		}, expectedScan(0, 24, func(sk string) bool { return strings.HasSuffix(sk, "5") }), false},
		{"anywhere 02", "", "", func(o *pegasus.ScannerOptions) {
			o.BatchSize = 2
			filter(pegasus.FilterTypeMatchAnywhere, "02")(o)
		}, expectedScan(0, 24, func(sk string) bool { return strings.Contains(sk, "02") }), false},
		{"anywhere in range", "s010", "s022", func(o *pegasus.ScannerOptions) {
			o.BatchSize = 2
			o.StopInclusive = true
			filter(pegasus.FilterTypeMatchAnywhere, "2")(o)
		}, expectedScan(10, 22, func(sk string) bool { return strings.Contains(sk, "2") }), false},
		{"filter matches nothing", "", "", func(o *pegasus.ScannerOptions) {
			o.BatchSize = 4
			filter(pegasus.FilterTypeMatchPostfix, "zz")(o)
		}, nil, false},
	}
	for _, c := range cases {
		o := pegasus.NewScanOptions()
		if c.mod != nil {
			c.mod(o)
		}
		var start, stop []byte
		if c.start != "" {
			start = b(c.start)
		}
		if c.stop != "" {
			stop = b(c.stop)
		}
		s, err := tb.GetScanner(ctxT(t), h, start, stop, o)
		must(t, err, "GetScanner "+c.name)
		checkScan(t, c.name, h, drain(t, s), c.want, c.noValue)
	}

	// scanning a hash key with no data completes immediately
	s, err := tb.GetScanner(ctxT(t), hk(t, "empty"), nil, nil, pegasus.NewScanOptions())
	must(t, err, "GetScanner empty")
	if res := drain(t, s); len(res) != 0 {
		t.Fatalf("scan of empty hash key returned %d records", len(res))
	}
	// an empty interval is rejected by the client
	if _, err := tb.GetScanner(ctxT(t), h, b("s010"), b("s005"), pegasus.NewScanOptions()); err == nil {
		t.Fatalf("GetScanner with start > stop: expected error")
	}
	// unsupported filter type -> server kInvalidArgument -> Next reports an error (no retry)
	o := pegasus.NewScanOptions()
	o.SortKeyFilter = pegasus.Filter{Type: pegasus.FilterType(9), Pattern: b("x")}
	s, err = tb.GetScanner(ctxT(t), h, nil, nil, o)
	must(t, err, "GetScanner bad filter")
	if _, _, _, _, err := s.Next(ctxT(t)); err == nil {
		t.Fatalf("scan with unsupported filter type: expected error")
	}
	_ = s.Close()
	// calling Next after completion keeps reporting completion
	s, err = tb.GetScanner(ctxT(t), h, b("s000"), b("s002"), pegasus.NewScanOptions())
	must(t, err, "GetScanner")
	for i := 0; i < 4; i++ {
		done, _, _, _, err := s.Next(ctxT(t))
		must(t, err, "Next")
		if done != (i >= 2) {
			t.Fatalf("Next #%d: completed=%v", i, done)
		}
	}
	_ = s.Close()
}

// closeScanner closes a scanner; when a scan context is still held the client sends
// CLEAR_SCANNER, which the server never answers, so the client's 100 ms wait may time out.
func closeScanner(t *testing.T, s pegasus.Scanner) {
	t.Helper()
	if err := s.Close(); err != nil && !errors.Is(err, context.DeadlineExceeded) &&
		!strings.Contains(err.Error(), "deadline exceeded") {
		t.Fatalf("Scanner.Close: unexpected error %v", err)
	}
}

func TestScannerCloseMidway(t *testing.T) {
	setup(t)
	h := setupScan(t)
	for round := 0; round < 3; round++ {
		o := pegasus.NewScanOptions()
		o.BatchSize = 3
		s, err := tb.GetScanner(ctxT(t), h, nil, nil, o)
		must(t, err, "GetScanner")
		// read 5 records: the first batch is consumed and a second SCAN holds a live context
		for i := 0; i < 5; i++ {
			done, gh, sk, v, err := s.Next(ctxT(t))
			must(t, err, "Next")
			if done || !bytes.Equal(gh, h) || string(sk) != scanKey(i) || string(v) != scanVal(i) {
				t.Fatalf("round %d Next #%d: done=%v key=%q/%q value=%q", round, i, done, gh, sk, v)
			}
		}
		closeScanner(t, s)
		if _, _, _, _, err := s.Next(ctxT(t)); err == nil {
			t.Fatalf("Next on a closed scanner: expected error")
		}

		// the connection to the same replica keeps working after CLEAR_SCANNER
		sk := b(fmt.Sprintf("after-close-%d", round))
		must(t, tb.Set(ctxT(t), h, sk, b("ok")), "Set after close")
		expectGet(t, h, sk, b("ok"))
		kvs, _, err := tb.MultiGet(ctxT(t), h, bss(scanKey(0), scanKey(24)))
		must(t, err, "MultiGet after close")
		if got := kvString(kvs); got != scanKey(0)+"="+scanVal(0)+","+scanKey(24)+"="+scanVal(24) {
			t.Fatalf("MultiGet after close: %q", got)
		}
		must(t, tb.Del(ctxT(t), h, sk), "Del after close")
	}
	// a full scan afterwards still sees exactly the data
	o := pegasus.NewScanOptions()
	o.BatchSize = 4
	s, err := tb.GetScanner(ctxT(t), h, nil, nil, o)
	must(t, err, "GetScanner")
	checkScan(t, "after closes", h, drain(t, s), expectedScan(0, 24, nil), false)

	// closing a scanner before the first Next and twice in a row is harmless
	s, err = tb.GetScanner(ctxT(t), h, nil, nil, pegasus.NewScanOptions())
	must(t, err, "GetScanner")
	closeScanner(t, s)
	closeScanner(t, s)
	expectGet(t, h, b(scanKey(3)), b(scanVal(3)))
}

func TestUnorderedScanners(t *testing.T) {
	setup(t)
	// pick hash keys so that every partition holds at least 3 of them
	prefix := runPrefix + "unordered_"
	perPart := make(map[int]int)
	var hashKeys []string
	for i := 0; len(hashKeys) < 200 && (len(perPart) < partitionCount || minCount(perPart) < 3); i++ {
		h := fmt.Sprintf("%s%04d", prefix, i)
		hashKeys = append(hashKeys, h)
		perPart[partitionOf(b(h))]++
	}
	if len(perPart) != partitionCount {
		t.Fatalf("could not spread hash keys over %d partitions: %v", partitionCount, perPart)
	}
	want := make(map[string]string)
	for _, h := range hashKeys {
		must(t, tb.MultiSet(ctxT(t), b(h), bss("a", "b"), bss(h+"/a", h+"/b")), "MultiSet")
		want[h+"\x00a"] = h + "/a"
		want[h+"\x00b"] = h + "/b"
	}
	t.Cleanup(func() {
		for _, h := range hashKeys {
			ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
			_ = tb.MultiDel(ctx, b(h), bss("a", "b"))
			cancel()
		}
	})

	scanAll := func(name string, split int, o *pegasus.ScannerOptions, wantScanners int) map[string]string {
		t.Helper()
		scanners, err := tb.GetUnorderedScanners(ctxT(t), split, o)
		must(t, err, "GetUnorderedScanners "+name)
		if wantScanners > 0 && len(scanners) != wantScanners {
			t.Fatalf("%s: %d scanners, want %d", name, len(scanners), wantScanners)
		}
		got := make(map[string]string)
		for _, s := range scanners {
			for _, r := range drain(t, s) {
				if !strings.HasPrefix(string(r.hashKey), prefix) {
					continue // data from other tests or runs
				}
				k := string(r.hashKey) + "\x00" + string(r.sortKey)
				if _, dup := got[k]; dup {
					t.Fatalf("%s: record %q returned twice", name, k)
				}
				got[k] = string(r.value)
			}
		}
		return got
	}
	compare := func(name string, got map[string]string, noValue bool) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: got %d records, want %d (missing e.g. %q)", name, len(got), len(want), firstMissing(want, got))
		}
		for k, v := range want {
			gv, ok := got[k]
			if !ok {
				t.Fatalf("%s: missing record %q", name, k)
			}
			if noValue {
				v = ""
			}
			if gv != v {
				t.Fatalf("%s: record %q value %q, want %q", name, k, gv, v)
			}
		}
	}

	// one scanner per partition
	o := pegasus.NewScanOptions()
	o.BatchSize = 50
	compare("split=partitions", scanAll("split=partitions", partitionCount, o, partitionCount), false)
	// more splits than partitions -> still one per partition
	o = pegasus.NewScanOptions()
	o.BatchSize = 50
	o.NoValue = true
	compare("split>partitions novalue", scanAll("split>partitions", 4*partitionCount, o, partitionCount), true)
	// fewer scanners, each covering several partitions, with a server-side hash-key filter
	// and small batches (many SCAN round trips)
	o = pegasus.NewScanOptions()
	o.BatchSize = 5
	o.HashKeyFilter = pegasus.Filter{Type: pegasus.FilterTypeMatchPrefix, Pattern: b(prefix)}
	compare("split=3 hash prefix", scanAll("split=3", 3, o, 3), false)
	// sort-key filter applied server-side across all partitions
	o = pegasus.NewScanOptions()
	o.BatchSize = 7
	o.HashKeyFilter = pegasus.Filter{Type: pegasus.FilterTypeMatchPrefix, Pattern: b(prefix)}
	o.SortKeyFilter = pegasus.Filter{Type: pegasus.FilterTypeMatchPostfix, Pattern: b("b")}
	got := scanAll("sortkey filter", 1, o, 1)
	wantB := 0
	for k := range want {
		if strings.HasSuffix(k, "\x00b") {
			wantB++
			if got[k] != want[k] {
				t.Fatalf("sortkey filter: record %q = %q, want %q", k, got[k], want[k])
			}
		}
	}
	if len(got) != wantB {
		t.Fatalf("sortkey filter: got %d records, want %d", len(got), wantB)
	}

	// closing unordered scanners mid-way, then the table keeps working
	o = pegasus.NewScanOptions()
	o.BatchSize = 2
	scanners, err := tb.GetUnorderedScanners(ctxT(t), partitionCount, o)
	must(t, err, "GetUnorderedScanners")
	for _, s := range scanners {
		for i := 0; i < 3; i++ {
			done, _, _, _, err := s.Next(ctxT(t))
			must(t, err, "Next")
			if done {
				break
			}
		}
		closeScanner(t, s)
	}
	for _, h := range hashKeys[:partitionCount] {
		expectGet(t, b(h), b("a"), b(h+"/a"))
	}
	if _, err := tb.GetUnorderedScanners(ctxT(t), 0, pegasus.NewScanOptions()); err == nil {
		t.Fatalf("GetUnorderedScanners(0): expected error")
	}
}

func minCount(m map[int]int) int {
	min := -1
	for _, v := range m {
		if min < 0 || v < min {
			min = v
		}
	}
	return min
}

func firstMissing(want, got map[string]string) string {
	var keys []string
	for k := range want {
		if _, ok := got[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	if len(keys) == 0 {
		return ""
	}
	return keys[0]
}
