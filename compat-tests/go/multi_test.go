// Multi-key operations under one hash key through the Go client: MultiSet/MultiGet,
// MultiGetRange and every MultiGetOptions field, MultiDel, DelRange and SortKeyCount.
package compat

import (
	"strings"
	"testing"

	"github.com/apache/incubator-pegasus/go-client/pegasus"
)

var multiKeys = []string{"a1", "a2", "a3", "b1", "b2", "c1", "c2", "x"}

func multiVal(sk string) string { return "v_" + sk }

// setupMulti writes multiKeys (value "v_<sk>") under a fresh hash key.
func setupMulti(t *testing.T, name string) []byte {
	h := hk(t, name)
	vals := make([]string, len(multiKeys))
	for i, k := range multiKeys {
		vals[i] = multiVal(k)
	}
	must(t, tb.MultiSet(ctxT(t), h, bss(multiKeys...), bss(vals...)), "MultiSet")
	return h
}

// expectKVs renders the expected "k=v_k" list for the given sort keys.
func expectKVs(keys ...string) string {
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + multiVal(k)
	}
	return strings.Join(parts, ",")
}

func opts(mod func(o *pegasus.MultiGetOptions)) *pegasus.MultiGetOptions {
	o := &pegasus.MultiGetOptions{
		StartInclusive: true,
		StopInclusive:  false,
		SortKeyFilter:  pegasus.Filter{Type: pegasus.FilterTypeNoFilter},
		MaxFetchCount:  0,
		MaxFetchSize:   0,
	}
	if mod != nil {
		mod(o)
	}
	return o
}

func TestMultiSetMultiGet(t *testing.T) {
	setup(t)
	h := setupMulti(t, "h")

	// point lookups: found keys only, in (ascending) request order
	kvs, all, err := tb.MultiGet(ctxT(t), h, bss("a1", "a3", "nope", "x"))
	must(t, err, "MultiGet")
	if got, want := kvString(kvs), expectKVs("a1", "a3", "x"); got != want || !all {
		t.Fatalf("MultiGet(points) = %q,%v want %q,true", got, all, want)
	}

	// only missing keys -> nil, allFetched
	kvs, all, err = tb.MultiGet(ctxT(t), h, bss("nope1", "nope2"))
	must(t, err, "MultiGet missing")
	if kvs != nil || !all {
		t.Fatalf("MultiGet(missing) = %q,%v want nil,true", kvString(kvs), all)
	}

	// no sort keys -> whole hash key (ascending)
	kvs, all, err = tb.MultiGet(ctxT(t), h, nil)
	must(t, err, "MultiGet all")
	if got, want := kvString(kvs), expectKVs(multiKeys...); got != want || !all {
		t.Fatalf("MultiGet(all) = %q,%v want %q,true", got, all, want)
	}

	// missing hash key
	kvs, all, err = tb.MultiGet(ctxT(t), hk(t, "nohash"), nil)
	must(t, err, "MultiGet missing hash")
	if kvs != nil || !all {
		t.Fatalf("MultiGet(missing hash) = %q,%v", kvString(kvs), all)
	}

	// MultiSet overwrites existing keys and adds new ones; empty sort key and empty value allowed
	must(t, tb.MultiSet(ctxT(t), h, bss("", "a1", "zz"), bss("root", "new_a1", "")), "MultiSet overwrite")
	kvs, _, err = tb.MultiGet(ctxT(t), h, bss("", "a1", "zz"))
	must(t, err, "MultiGet overwrite")
	if got := kvString(kvs); got != "=root,a1=new_a1,zz=" {
		t.Fatalf("MultiGet after overwrite = %q", got)
	}
	cnt, err := tb.SortKeyCount(ctxT(t), h)
	must(t, err, "SortKeyCount")
	if cnt != int64(len(multiKeys)+2) {
		t.Fatalf("SortKeyCount = %d, want %d", cnt, len(multiKeys)+2)
	}

	// NoValue on point lookups
	kvs, _, err = tb.MultiGetOpt(ctxT(t), h, bss("a2", "b1"), opts(func(o *pegasus.MultiGetOptions) { o.NoValue = true }))
	must(t, err, "MultiGetOpt novalue")
	if got := kvString(kvs); got != "a2=,b1=" {
		t.Fatalf("MultiGetOpt(points, NoValue) = %q", got)
	}

	// client-side validation
	if err := tb.MultiSet(ctxT(t), h, nil, nil); err == nil {
		t.Fatalf("MultiSet with no keys: expected error")
	}
	if err := tb.MultiSet(ctxT(t), h, bss("a"), bss("1", "2")); err == nil {
		t.Fatalf("MultiSet with mismatched lengths: expected error")
	}
}

func TestMultiGetRange(t *testing.T) {
	setup(t)
	h := setupMulti(t, "h")
	cases := []struct {
		name        string
		start, stop string
		o           *pegasus.MultiGetOptions
		want        []string
	}{
		{"default [a2,b2)", "a2", "b2", pegasus.DefaultMultiGetOptions, []string{"a2", "a3", "b1"}},
		{"(a2,b2]", "a2", "b2", opts(func(o *pegasus.MultiGetOptions) { o.StartInclusive = false; o.StopInclusive = true }), []string{"a3", "b1", "b2"}},
		{"[a2,b2]", "a2", "b2", opts(func(o *pegasus.MultiGetOptions) { o.StopInclusive = true }), []string{"a2", "a3", "b1", "b2"}},
		{"(a2,b2)", "a2", "b2", opts(func(o *pegasus.MultiGetOptions) { o.StartInclusive = false }), []string{"a3", "b1"}},
		{"bounds not present", "a25", "b15", opts(nil), []string{"a3", "b1"}},
		{"open start", "", "b1", opts(nil), []string{"a1", "a2", "a3"}},
		{"open stop", "c1", "", opts(nil), []string{"c1", "c2", "x"}},
		{"open stop, stop-inclusive ignored", "c2", "", opts(func(o *pegasus.MultiGetOptions) { o.StopInclusive = true }), []string{"c2", "x"}},
		{"all", "", "", opts(nil), multiKeys},
		{"[b1,b1]", "b1", "b1", opts(func(o *pegasus.MultiGetOptions) { o.StopInclusive = true }), []string{"b1"}},
		{"[b1,b1) empty", "b1", "b1", opts(nil), nil},
		{"start > stop empty", "c1", "a1", opts(nil), nil},
		{"past the end", "y", "", opts(nil), nil},
	}
	for _, c := range cases {
		var start, stop []byte
		if c.start != "" {
			start = b(c.start)
		}
		if c.stop != "" {
			stop = b(c.stop)
		}
		kvs, all, err := tb.MultiGetRangeOpt(ctxT(t), h, start, stop, c.o)
		must(t, err, c.name)
		if got, want := kvString(kvs), expectKVs(c.want...); got != want || !all {
			t.Errorf("%s: got %q,allFetched=%v want %q,true", c.name, got, all, want)
		}
		if len(c.want) == 0 && kvs != nil {
			t.Errorf("%s: want nil result", c.name)
		}
	}
}

func TestMultiGetOptions(t *testing.T) {
	setup(t)
	h := setupMulti(t, "h")
	type tc struct {
		name string
		o    *pegasus.MultiGetOptions
		want []string
		all  bool
	}
	filter := func(ft pegasus.FilterType, p string) func(o *pegasus.MultiGetOptions) {
		return func(o *pegasus.MultiGetOptions) { o.SortKeyFilter = pegasus.Filter{Type: ft, Pattern: b(p)} }
	}
	cases := []tc{
		{"prefix b", opts(filter(pegasus.FilterTypeMatchPrefix, "b")), []string{"b1", "b2"}, true},
		{"prefix a3", opts(filter(pegasus.FilterTypeMatchPrefix, "a3")), []string{"a3"}, true},
		{"prefix none", opts(filter(pegasus.FilterTypeMatchPrefix, "q")), nil, true},
		{"postfix 2", opts(filter(pegasus.FilterTypeMatchPostfix, "2")), []string{"a2", "b2", "c2"}, true},
		{"anywhere 1", opts(filter(pegasus.FilterTypeMatchAnywhere, "1")), []string{"a1", "b1", "c1"}, true},
		{"anywhere c", opts(filter(pegasus.FilterTypeMatchAnywhere, "c")), []string{"c1", "c2"}, true},
		{"max count 3", opts(func(o *pegasus.MultiGetOptions) { o.MaxFetchCount = 3 }), []string{"a1", "a2", "a3"}, false},
		{"max count 1", opts(func(o *pegasus.MultiGetOptions) { o.MaxFetchCount = 1 }), []string{"a1"}, false},
		{"max count 100", opts(func(o *pegasus.MultiGetOptions) { o.MaxFetchCount = 100 }), multiKeys, true},
		// each record is 2 key bytes + 4 value bytes; the size limit is checked after adding a record
		{"max size 10", opts(func(o *pegasus.MultiGetOptions) { o.MaxFetchSize = 10 }), []string{"a1", "a2"}, false},
		{"reverse", opts(func(o *pegasus.MultiGetOptions) { o.Reverse = true }), multiKeys, true},
		{"reverse max count 3", opts(func(o *pegasus.MultiGetOptions) { o.Reverse = true; o.MaxFetchCount = 3 }), []string{"c1", "c2", "x"}, false},
		{"reverse prefix a max 2", opts(func(o *pegasus.MultiGetOptions) {
			o.Reverse = true
			o.MaxFetchCount = 2
			o.SortKeyFilter = pegasus.Filter{Type: pegasus.FilterTypeMatchPrefix, Pattern: b("a")}
		}), []string{"a2", "a3"}, false},
		{"filter + count", opts(func(o *pegasus.MultiGetOptions) {
			o.MaxFetchCount = 2
			o.SortKeyFilter = pegasus.Filter{Type: pegasus.FilterTypeMatchPostfix, Pattern: b("1")}
		}), []string{"a1", "b1"}, false},
	}
	for _, c := range cases {
		kvs, all, err := tb.MultiGetRangeOpt(ctxT(t), h, nil, nil, c.o)
		must(t, err, c.name)
		if got, want := kvString(kvs), expectKVs(c.want...); got != want || all != c.all {
			t.Errorf("%s: got %q,allFetched=%v want %q,%v", c.name, got, all, want, c.all)
		}
	}

	// NoValue: keys only, empty values
	kvs, all, err := tb.MultiGetRangeOpt(ctxT(t), h, b("b1"), b("c2"), opts(func(o *pegasus.MultiGetOptions) { o.NoValue = true }))
	must(t, err, "NoValue")
	if got := kvString(kvs); got != "b1=,b2=,c1=" || !all {
		t.Fatalf("NoValue: %q,%v", got, all)
	}
	for _, kv := range kvs {
		if len(kv.Value) != 0 {
			t.Fatalf("NoValue returned a value for %q", kv.SortKey)
		}
	}

	// unsupported filter type -> server kInvalidArgument; the client retries until its deadline
	if _, _, err := tb.MultiGetRangeOpt(errCtx(t), h, nil, nil, opts(func(o *pegasus.MultiGetOptions) {
		o.SortKeyFilter = pegasus.Filter{Type: pegasus.FilterType(9), Pattern: b("a")}
	})); err == nil {
		t.Fatalf("MultiGet with unsupported filter type: expected error")
	}

	// range + filter + inclusivity combined
	kvs, all, err = tb.MultiGetRangeOpt(ctxT(t), h, b("a2"), b("c1"), opts(func(o *pegasus.MultiGetOptions) {
		o.StartInclusive = false
		o.StopInclusive = true
		o.SortKeyFilter = pegasus.Filter{Type: pegasus.FilterTypeMatchPostfix, Pattern: b("1")}
	}))
	must(t, err, "range+filter")
	if got, want := kvString(kvs), expectKVs("b1", "c1"); got != want || !all {
		t.Fatalf("range+filter: %q,%v want %q", got, all, want)
	}
}

func TestMultiDelDelRangeSortKeyCount(t *testing.T) {
	setup(t)
	h := setupMulti(t, "h")
	count := func() int64 {
		t.Helper()
		n, err := tb.SortKeyCount(ctxT(t), h)
		must(t, err, "SortKeyCount")
		return n
	}
	remaining := func() string {
		t.Helper()
		kvs, all, err := tb.MultiGetRangeOpt(ctxT(t), h, nil, nil, opts(func(o *pegasus.MultiGetOptions) { o.NoValue = true }))
		must(t, err, "MultiGetRange")
		if !all {
			t.Fatalf("allFetched = false")
		}
		return keysString(kvs)
	}
	if n := count(); n != int64(len(multiKeys)) {
		t.Fatalf("SortKeyCount = %d want %d", n, len(multiKeys))
	}
	n, err := tb.SortKeyCount(ctxT(t), hk(t, "nohash"))
	must(t, err, "SortKeyCount missing")
	if n != 0 {
		t.Fatalf("SortKeyCount(missing hash) = %d", n)
	}

	// MultiDel: existing and missing keys
	must(t, tb.MultiDel(ctxT(t), h, bss("a1", "b1", "nope")), "MultiDel")
	if got := remaining(); got != "a2,a3,b2,c1,c2,x" {
		t.Fatalf("after MultiDel: %q", got)
	}
	if n := count(); n != 6 {
		t.Fatalf("SortKeyCount after MultiDel = %d", n)
	}
	if err := tb.MultiDel(ctxT(t), h, nil); err == nil {
		t.Fatalf("MultiDel with no sort keys: expected error")
	}

	// DelRange default: [a3, c1)
	must(t, tb.DelRange(ctxT(t), h, b("a3"), b("c1")), "DelRange")
	if got := remaining(); got != "a2,c1,c2,x" {
		t.Fatalf("after DelRange [a3,c1): %q", got)
	}
	// DelRangeOpt (a2, c2]
	must(t, tb.DelRangeOpt(ctxT(t), h, b("a2"), b("c2"), &pegasus.DelRangeOptions{
		StartInclusive: false, StopInclusive: true,
		SortKeyFilter: pegasus.Filter{Type: pegasus.FilterTypeNoFilter},
	}), "DelRangeOpt")
	if got := remaining(); got != "a2,x" {
		t.Fatalf("after DelRangeOpt (a2,c2]: %q", got)
	}
	// DelRange with a filter deletes only matching keys
	must(t, tb.MultiSet(ctxT(t), h, bss("p1", "p2", "q1"), bss("1", "2", "3")), "MultiSet")
	must(t, tb.DelRangeOpt(ctxT(t), h, nil, nil, &pegasus.DelRangeOptions{
		StartInclusive: true,
		SortKeyFilter:  pegasus.Filter{Type: pegasus.FilterTypeMatchPrefix, Pattern: b("p")},
	}), "DelRangeOpt prefix")
	if got := remaining(); got != "a2,q1,x" {
		t.Fatalf("after DelRange prefix p: %q", got)
	}
	// DelRange whole hash key
	must(t, tb.DelRange(ctxT(t), h, nil, nil), "DelRange all")
	if got := remaining(); got != "" {
		t.Fatalf("after DelRange all: %q", got)
	}
	if n := count(); n != 0 {
		t.Fatalf("SortKeyCount after DelRange all = %d", n)
	}

	// DelRange over more keys than one scanner batch (1000) + MultiDel chunking
	many := make([]string, 1205)
	vals := make([]string, len(many))
	for i := range many {
		many[i] = "k" + strings.Repeat("0", 5-len(itoa(i))) + itoa(i)
		vals[i] = "v"
	}
	for i := 0; i < len(many); i += 400 {
		j := i + 400
		if j > len(many) {
			j = len(many)
		}
		must(t, tb.MultiSet(ctxT(t), h, bss(many[i:j]...), bss(vals[i:j]...)), "MultiSet many")
	}
	if n := count(); n != int64(len(many)) {
		t.Fatalf("SortKeyCount many = %d", n)
	}
	must(t, tb.DelRange(ctxT(t), h, nil, nil), "DelRange many")
	if n := count(); n != 0 {
		t.Fatalf("SortKeyCount after DelRange many = %d", n)
	}
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	s := ""
	for ; i > 0; i /= 10 {
		s = string(rune('0'+i%10)) + s
	}
	return s
}
