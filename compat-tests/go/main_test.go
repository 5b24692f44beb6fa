// Test harness for the Go-client compatibility suite: connects the real upstream
// Pegasus Go client to a cluster (PEGASUS_META, or a onebox started via ../../run.sh)
// and provides shared helpers used by the other *_test.go files.
package compat

import (
	"bytes"
	"context"
	"fmt"
	"hash/crc64"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/incubator-pegasus/go-client/config"
	"github.com/apache/incubator-pegasus/go-client/pegasus"
)

const (
	defaultMetaPortBase    = 25600
	defaultReplicaPortBase = 25800
	opTimeout              = 10 * time.Second
	// errTimeout bounds operations that are expected to fail on the server side:
	// the Go client retries server-side rocksdb errors with back-off until the
	// context deadline, so such calls always take this long.
	errTimeout = 2 * time.Second
)

var (
	client    pegasus.Client
	tb        pegasus.TableConnector
	tableName string
	// partitionCount is the expected partition count of the table (PEGASUS_PARTITION_COUNT, default 8).
	partitionCount = 8
	// runPrefix makes every key written by this run unique.
	runPrefix string
)

func repoRoot() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "../.."
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

func runOnebox(env []string, action string) error {
	cmd := exec.Command("bash", filepath.Join(repoRoot(), "run.sh"), action)
	cmd.Dir = repoRoot()
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout = os.Stderr
	cmd.Stderr = os.Stderr
	return cmd.Run()
}

// waitReady opens the table and performs a write+read on keys spread over all partitions
// until everything succeeds or the deadline passes.
func waitReady(metas []string, deadline time.Time) error {
	client = pegasus.NewClient(config.Config{MetaServers: metas})
	var lastErr error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		t, err := client.OpenTable(ctx, tableName)
		cancel()
		if err != nil {
			lastErr = err
			time.Sleep(500 * time.Millisecond)
			continue
		}
		tb = t
		ok := true
		for i := 0; i < 4*partitionCount && ok; i++ {
			hk := []byte(fmt.Sprintf("%sready_%d", runPrefix, i))
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := tb.Set(ctx, hk, []byte("s"), []byte("v")); err != nil {
				lastErr, ok = err, false
			} else if v, err := tb.Get(ctx, hk, []byte("s")); err != nil || string(v) != "v" {
				lastErr, ok = fmt.Errorf("probe get: %q %v", v, err), false
			} else if err := tb.Del(ctx, hk, []byte("s")); err != nil {
				lastErr, ok = err, false
			}
			cancel()
		}
		if ok {
			return nil
		}
		time.Sleep(500 * time.Millisecond)
	}
	return fmt.Errorf("cluster not ready: %v", lastErr)
}

func TestMain(m *testing.M) {
	rnd := rand.New(rand.NewSource(time.Now().UnixNano()))
	runPrefix = fmt.Sprintf("gocompat_%d_%06x_", time.Now().Unix(), rnd.Intn(1<<24))
	tableName = os.Getenv("PEGASUS_TABLE")
	if tableName == "" {
		tableName = "temp"
	}
	if s := os.Getenv("PEGASUS_PARTITION_COUNT"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			fmt.Fprintf(os.Stderr, "bad PEGASUS_PARTITION_COUNT %q\n", s)
			os.Exit(2)
		}
		partitionCount = n
	}
	code := m.Run()
	if !teardown() && code == 0 {
		code = 1
	}
	os.Exit(code)
}

var (
	setupOnce sync.Once
	setupErr  error
	// oneboxEnv/oneboxDir are set when this process started its own onebox cluster.
	oneboxEnv []string
	oneboxDir string
)

// setup connects to the cluster on first use (so `go test -run XXX` starts nothing):
// PEGASUS_META if set, otherwise a onebox started with ../../run.sh start_onebox.
func setup(t *testing.T) {
	t.Helper()
	setupOnce.Do(func() { setupErr = startCluster() })
	if setupErr != nil {
		t.Fatalf("cluster setup failed: %v", setupErr)
	}
}

func startCluster() error {
	var metas []string
	if m := os.Getenv("PEGASUS_META"); m != "" {
		for _, a := range strings.Split(m, ",") {
			if a = strings.TrimSpace(a); a != "" {
				metas = append(metas, a)
			}
		}
	} else {
		dir, err := os.MkdirTemp("", "pegasus-go-compat-")
		if err != nil {
			return err
		}
		oneboxDir = dir
		oneboxEnv = []string{
			"ONEBOX_DIR=" + dir,
			fmt.Sprintf("META_PORT_BASE=%d", defaultMetaPortBase),
			fmt.Sprintf("REPLICA_PORT_BASE=%d", defaultReplicaPortBase),
		}
		metas = []string{fmt.Sprintf("127.0.0.1:%d", defaultMetaPortBase+1)}
		if err := runOnebox(oneboxEnv, "start_onebox"); err != nil {
			return fmt.Errorf("run.sh start_onebox (ONEBOX_DIR=%s): %v", dir, err)
		}
	}
	return waitReady(metas, time.Now().Add(90*time.Second))
}

// teardown closes the client and stops a onebox started by this process. It keeps the
// onebox directory (for its logs) when setup failed; returns false if stopping failed.
func teardown() bool {
	if client != nil {
		_ = client.Close()
	}
	if oneboxEnv == nil {
		return true
	}
	ok := true
	if err := runOnebox(oneboxEnv, "stop_onebox"); err != nil {
		fmt.Fprintf(os.Stderr, "run.sh stop_onebox failed: %v\n", err)
		ok = false
	}
	if setupErr == nil && ok {
		_ = os.RemoveAll(oneboxDir)
	} else {
		fmt.Fprintf(os.Stderr, "onebox directory kept for inspection: %s\n", oneboxDir)
	}
	return ok
}

// ---- helpers ----

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	t.Cleanup(cancel)
	return ctx
}

func errCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), errTimeout)
	t.Cleanup(cancel)
	return ctx
}

// hk returns a hash key unique to this run and test.
func hk(t *testing.T, suffix string) []byte {
	return []byte(runPrefix + t.Name() + "_" + suffix)
}

func b(s string) []byte { return []byte(s) }

func bss(ss ...string) [][]byte {
	out := make([][]byte, len(ss))
	for i, s := range ss {
		out[i] = []byte(s)
	}
	return out
}

func must(t *testing.T, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: unexpected error: %v", what, err)
	}
}

func expectBytes(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: got %q, want %q", what, trunc(got), trunc(want))
	}
}

func trunc(v []byte) []byte {
	if len(v) > 64 {
		return append(append([]byte{}, v[:64]...), []byte("...")...)
	}
	return v
}

func mustGet(t *testing.T, h, s []byte) []byte {
	t.Helper()
	v, err := tb.Get(ctxT(t), h, s)
	must(t, err, fmt.Sprintf("Get(%q,%q)", h, s))
	return v
}

func expectGet(t *testing.T, h, s []byte, want []byte) {
	t.Helper()
	v := mustGet(t, h, s)
	if want == nil {
		if v != nil {
			t.Fatalf("Get(%q,%q): got %q, want nil (not found)", h, s, trunc(v))
		}
		return
	}
	expectBytes(t, fmt.Sprintf("Get(%q,%q)", h, s), v, want)
}

func mustTTL(t *testing.T, h, s []byte) int {
	t.Helper()
	ttl, err := tb.TTL(ctxT(t), h, s)
	must(t, err, fmt.Sprintf("TTL(%q,%q)", h, s))
	return ttl
}

// kvString renders a multi-get result as "k=v,k=v" for exact comparisons.
func kvString(kvs []*pegasus.KeyValue) string {
	parts := make([]string, len(kvs))
	for i, kv := range kvs {
		parts[i] = string(kv.SortKey) + "=" + string(kv.Value)
	}
	return strings.Join(parts, ",")
}

func keysString(kvs []*pegasus.KeyValue) string {
	parts := make([]string, len(kvs))
	for i, kv := range kvs {
		parts[i] = string(kv.SortKey)
	}
	return strings.Join(parts, ",")
}

// pegasusCRC64 is the CRC-64/Jones table used by all Pegasus clients and the server for partitioning.
var pegasusCRC64 = crc64.MakeTable(0x9A6C9329AC4BC9B5)

func partitionOf(hashKey []byte) int {
	return int(crc64.Checksum(hashKey, pegasusCRC64) % uint64(partitionCount))
}

type scanned struct {
	hashKey, sortKey, value []byte
}

// drain reads a scanner to completion (bounded) and closes it.
func drain(t *testing.T, s pegasus.Scanner) []scanned {
	t.Helper()
	defer s.Close()
	var out []scanned
	for i := 0; i < 1000000; i++ {
		done, h, sk, v, err := s.Next(ctxT(t))
		must(t, err, "Scanner.Next")
		if done {
			return out
		}
		out = append(out, scanned{append([]byte{}, h...), append([]byte{}, sk...), append([]byte{}, v...)})
	}
	t.Fatalf("scanner did not complete")
	return nil
}
