// Single-client latency benchmark using the upstream Pegasus Go client: N sequential
// Set calls, then N sequential Get calls; prints p50/p99/avg latency (µs) and ops/s.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/apache/incubator-pegasus/go-client/config"
	"github.com/apache/incubator-pegasus/go-client/pegasus"
)

func report(name string, lat []time.Duration, total time.Duration) {
	sorted := append([]time.Duration(nil), lat...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	var sum time.Duration
	for _, d := range sorted {
		sum += d
	}
	pct := func(p float64) time.Duration {
		if len(sorted) == 0 {
			return 0
		}
		idx := int(p*float64(len(sorted))+0.5) - 1
		if idx < 0 {
			idx = 0
		}
		if idx >= len(sorted) {
			idx = len(sorted) - 1
		}
		return sorted[idx]
	}
	us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1000 }
	avg := time.Duration(0)
	if len(sorted) > 0 {
		avg = sum / time.Duration(len(sorted))
	}
	fmt.Printf("%-4s n=%d p50=%.1fus p99=%.1fus avg=%.1fus ops/s=%.0f\n",
		name, len(sorted), us(pct(0.50)), us(pct(0.99)), us(avg), float64(len(sorted))/total.Seconds())
}

func main() {
	meta := flag.String("meta", "127.0.0.1:34601", "comma-separated meta server addresses")
	table := flag.String("table", "temp", "table name")
	n := flag.Int("n", 2000, "number of Set and of Get operations")
	valueSize := flag.Int("value-size", 100, "value size in bytes")
	timeout := flag.Duration("timeout", 5*time.Second, "per-operation timeout")
	flag.Parse()

	var metas []string
	for _, m := range strings.Split(*meta, ",") {
		if m = strings.TrimSpace(m); m != "" {
			metas = append(metas, m)
		}
	}
	client := pegasus.NewClient(config.Config{MetaServers: metas})
	defer client.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	tb, err := client.OpenTable(ctx, *table)
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "open table %s: %v\n", *table, err)
		os.Exit(1)
	}

	value := make([]byte, *valueSize)
	for i := range value {
		value[i] = byte('a' + i%26)
	}
	prefix := fmt.Sprintf("bench_%d_", time.Now().UnixNano())
	hashKey := func(i int) []byte { return []byte(fmt.Sprintf("%s%d", prefix, i)) }
	sortKey := []byte("s")

	run := func(name string, op func(i int) error) {
		lat := make([]time.Duration, 0, *n)
		start := time.Now()
		for i := 0; i < *n; i++ {
			t0 := time.Now()
			if err := op(i); err != nil {
				fmt.Fprintf(os.Stderr, "%s #%d failed: %v\n", name, i, err)
				os.Exit(1)
			}
			lat = append(lat, time.Since(t0))
		}
		report(name, lat, time.Since(start))
	}

	run("set", func(i int) error {
		ctx, cancel := context.WithTimeout(context.Background(), *timeout)
		defer cancel()
		return tb.Set(ctx, hashKey(i), sortKey, value)
	})
	run("get", func(i int) error {
		ctx, cancel := context.WithTimeout(context.Background(), *timeout)
		defer cancel()
		v, err := tb.Get(ctx, hashKey(i), sortKey)
		if err == nil && len(v) != len(value) {
			err = fmt.Errorf("got %d-byte value, want %d", len(v), len(value))
		}
		return err
	})
}
