// Acceptance tests of "requests under load as upstream serves them", through the upstream Go
// client: 2,000 writes in flight at once to one partition all succeed (they are queued and
// batched, not refused), and two writes (or increments) of one key sent back to back on one
// connection are applied in the order they were sent.
package compat

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc64"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/incubator-pegasus/go-client/idl/base"
	"github.com/apache/incubator-pegasus/go-client/idl/rrdb"
	"github.com/apache/incubator-pegasus/go-client/rpc"
	"github.com/apache/incubator-pegasus/go-client/session"
)

const (
	pipeConcurrentWrites = 2000
	pipeOrderKeys        = 3000
	pipeIncrKeys         = 1000
	// pipeWindow key pairs (2 requests each, spread over the partitions) are sent before the
	// replies of the window are read; the next window follows.
	pipeWindow    = 50
	pipeTimeout   = 30 * time.Second
	pipeTimeoutMs = uint32(pipeTimeout / time.Millisecond)
)

var errCodeRe = regexp.MustCompile(`ERR_[A-Z0-9_]+`)

// errKind is the server's error code named in a client error (or the whole text).
func errKind(err error) string {
	if m := errCodeRe.FindString(err.Error()); m != "" {
		return m
	}
	return err.Error()
}

func kindsString(kinds map[string]int) string {
	keys := make([]string, 0, len(kinds))
	for k := range kinds {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s x%d", k, kinds[k])
	}
	return strings.Join(parts, ", ")
}

// TestPipelineConcurrentWritesOnePartition sets 2,000 sort keys of one hash key (so one
// partition) from 2,000 goroutines released at once. The client has one connection per replica
// server and writes every request on it without waiting for earlier replies, so all 2,000 are
// in flight to one primary together. Every one must succeed (upstream queues client writes
// behind the two-phase commit window and batches them), then read back with its value.
func TestPipelineConcurrentWritesOnePartition(t *testing.T) {
	setup(t)
	h := hk(t, "h")
	sk := func(i int) []byte { return []byte(fmt.Sprintf("s%05d", i)) }
	val := func(i int) []byte { return []byte(fmt.Sprintf("v%05d-%s", i, strings.Repeat("x", 64))) }

	ctx, cancel := context.WithTimeout(context.Background(), pipeTimeout)
	defer cancel()
	start := make(chan struct{})
	errs := make([]error, pipeConcurrentWrites)
	var wg sync.WaitGroup
	for i := 0; i < pipeConcurrentWrites; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			errs[i] = tb.Set(ctx, h, sk(i), val(i))
		}(i)
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	elapsed := time.Since(t0)
	kinds := map[string]int{}
	var sample []string
	for i, err := range errs {
		if err != nil {
			kinds[errKind(err)]++
			if len(sample) < 3 {
				sample = append(sample, fmt.Sprintf("%s: %v", sk(i), err))
			}
		}
	}
	failed := 0
	for _, n := range kinds {
		failed += n
	}
	t.Logf("%d concurrent sets to partition %d: %d failed in %v (%s)",
		pipeConcurrentWrites, partitionOf(h), failed, elapsed.Round(time.Millisecond), kindsString(kinds))
	if failed > 0 {
		t.Fatalf("%d of %d concurrent sets to one partition failed: %s; e.g. %s",
			failed, pipeConcurrentWrites, kindsString(kinds), strings.Join(sample, "; "))
	}

	keys := make([]pipeKey, pipeConcurrentWrites)
	for i := range keys {
		keys[i] = pipeKey{h, sk(i), val(i)}
	}
	rctx, rcancel := context.WithTimeout(context.Background(), pipeTimeout)
	defer rcancel()
	if bad := readBack(rctx, keys); len(bad) > 0 {
		t.Fatalf("%d of %d acknowledged sets read back wrong, e.g. %s",
			len(bad), pipeConcurrentWrites, strings.Join(bad[:min(3, len(bad))], "; "))
	}
}

type pipeKey struct{ hashKey, sortKey, want []byte }

// readBack gets every key with 16 readers; it returns a line for each value that differs.
func readBack(ctx context.Context, keys []pipeKey) []string {
	var mu sync.Mutex
	var bad []string
	next := make(chan pipeKey)
	var wg sync.WaitGroup
	for r := 0; r < 16; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range next {
				v, err := tb.Get(ctx, k.hashKey, k.sortKey)
				if err != nil || string(v) != string(k.want) {
					mu.Lock()
					bad = append(bad, fmt.Sprintf("%s/%s: %q %v, want %q", k.hashKey, k.sortKey,
						trunc(v), err, trunc(k.want)))
					mu.Unlock()
				}
			}
		}()
	}
	for _, k := range keys {
		next <- k
	}
	close(next)
	wg.Wait()
	sort.Strings(bad)
	return bad
}

// ---- requests pipelined on one connection ----
//
// The client's API is synchronous: Set/Incr block the calling goroutine until the reply, and
// calls from several goroutines reach the session's single writer goroutine (an unbuffered
// channel) in an order the caller cannot observe or control. So the public API cannot send
// "first A, then B without waiting for A". The tests below therefore pipeline with the
// client's own wire layer: session.MarshallPegasusRpc and session.ReadRpcResponse (the codec
// its sessions use) on an rpc.RpcConn, writing request after request on one connection as
// the session's writer does, and reading the replies afterwards. Routing follows the client:
// partition = crc64(hash key) % partition count, sent to the primary the meta names.

// clusterMetas are the meta servers setup() connected to.
func clusterMetas() []string {
	var metas []string
	for _, a := range strings.Split(os.Getenv("PEGASUS_META"), ",") {
		if a = strings.TrimSpace(a); a != "" {
			metas = append(metas, a)
		}
	}
	if len(metas) == 0 {
		metas = []string{fmt.Sprintf("127.0.0.1:%d", defaultMetaPortBase+1)}
	}
	return metas
}

type pipeRouter struct {
	appID     int32
	primaries []string // primary address of each partition
}

func newPipeRouter(t *testing.T) *pipeRouter {
	t.Helper()
	mm := session.NewMetaManager(clusterMetas(), session.NewNodeSession)
	defer mm.Close()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	resp, err := mm.QueryConfig(ctx, tableName)
	must(t, err, "QueryConfig")
	if resp.Err != nil && resp.Err.Errno != base.ERR_OK.String() {
		t.Fatalf("QueryConfig(%s): %s", tableName, resp.Err.Errno)
	}
	r := &pipeRouter{appID: resp.AppID, primaries: make([]string, len(resp.Partitions))}
	for i, pc := range resp.Partitions {
		if pc.Primary == nil || pc.Primary.GetRawAddress() == 0 {
			t.Fatalf("partition %d has no primary", i)
		}
		r.primaries[i] = pc.Primary.GetAddress()
	}
	if len(r.primaries) == 0 {
		t.Fatalf("table %s has no partitions", tableName)
	}
	return r
}

// pipeOp is one request and, once answered, its reply.
type pipeOp struct {
	hashKey []byte
	name    string
	args    session.RpcRequestArgs
	// reply: a header error (e.g. ERR_CAPACITY_EXCEEDED), else the response's error field and,
	// for incr, the new value.
	answered bool
	err      error
	code     int32
	newValue int64
}

func (o *pipeOp) failure() string {
	switch {
	case !o.answered:
		return "no reply"
	case o.err != nil:
		return errKind(o.err)
	case o.code != 0:
		return fmt.Sprintf("error %d", o.code)
	}
	return ""
}

func encodeKey(hashKey, sortKey []byte) *base.Blob {
	data := make([]byte, 2+len(hashKey)+len(sortKey))
	binary.BigEndian.PutUint16(data, uint16(len(hashKey)))
	copy(data[2:], hashKey)
	copy(data[2+len(hashKey):], sortKey)
	return &base.Blob{Data: data}
}

func putOp(hashKey, sortKey, value []byte) *pipeOp {
	req := &rrdb.UpdateRequest{Key: encodeKey(hashKey, sortKey), Value: &base.Blob{Data: value}}
	return &pipeOp{hashKey: hashKey, name: "RPC_RRDB_RRDB_PUT", args: &rrdb.RrdbPutArgs{Update: req}}
}

func incrOp(hashKey, sortKey []byte, by int64) *pipeOp {
	req := &rrdb.IncrRequest{Key: encodeKey(hashKey, sortKey), Increment: by}
	return &pipeOp{hashKey: hashKey, name: "RPC_RRDB_RRDB_INCR", args: &rrdb.RrdbIncrArgs{Request: req}}
}

// pipeConn is one connection to a replica server carrying pipelined requests.
type pipeConn struct {
	addr    string
	conn    *rpc.RpcConn
	codec   *session.PegasusCodec
	seq     int32
	pending map[int32]*pipeOp
}

type pipeConns struct {
	router *pipeRouter
	conns  map[string]*pipeConn
}

func newPipeConns(t *testing.T) *pipeConns {
	pc := &pipeConns{router: newPipeRouter(t), conns: map[string]*pipeConn{}}
	t.Cleanup(func() {
		for _, c := range pc.conns {
			c.conn.Close()
		}
	})
	return pc
}

func (pc *pipeConns) conn(t *testing.T, addr string) *pipeConn {
	t.Helper()
	c := pc.conns[addr]
	if c == nil {
		c = &pipeConn{addr: addr, conn: rpc.NewRpcConn(addr), codec: session.NewPegasusCodec(),
			pending: map[int32]*pipeOp{}}
		must(t, c.conn.TryConnect(), "connect "+addr)
		pc.conns[addr] = c
	}
	return c
}

// run writes every op, in slice order, on the connection to its partition's primary without
// waiting for any reply, then reads the replies of all of them.
func (pc *pipeConns) run(t *testing.T, ops []*pipeOp) {
	t.Helper()
	n := uint64(len(pc.router.primaries))
	for _, op := range ops {
		hash := crc64.Checksum(op.hashKey, pegasusCRC64)
		pidx := int32(hash % n)
		c := pc.conn(t, pc.router.primaries[pidx])
		c.seq++
		gpid := &base.Gpid{Appid: pc.router.appID, PartitionIndex: pidx}
		call, err := session.MarshallPegasusRpc(c.codec, c.seq, gpid, hash, op.args, op.name, pipeTimeoutMs)
		must(t, err, "marshal "+op.name)
		must(t, c.conn.Write(call.RawReq), "write to "+c.addr)
		c.pending[c.seq] = op
	}
	for _, c := range pc.conns {
		for len(c.pending) > 0 {
			r, err := session.ReadRpcResponse(c.conn, c.codec)
			if err != nil || r == nil {
				t.Fatalf("reading replies from %s (%d outstanding): %v", c.addr, len(c.pending), err)
			}
			op := c.pending[r.SeqId]
			if op == nil {
				t.Fatalf("%s answered sequence id %d, which is not outstanding", c.addr, r.SeqId)
			}
			delete(c.pending, r.SeqId)
			op.answered, op.err = true, r.Err
			switch res := r.Result.(type) {
			case *rrdb.RrdbPutResult:
				if !res.IsSetSuccess() {
					t.Fatalf("%s: reply to %s without a response", c.addr, op.name)
				}
				op.code = res.GetSuccess().GetError()
			case *rrdb.RrdbIncrResult:
				if !res.IsSetSuccess() {
					t.Fatalf("%s: reply to %s without a response", c.addr, op.name)
				}
				op.code = res.GetSuccess().GetError()
				op.newValue = res.GetSuccess().GetNewValue_()
			case nil:
				if op.err == nil {
					t.Fatalf("%s: reply to %s without a result", c.addr, op.name)
				}
			default:
				t.Fatalf("%s: unexpected reply %T to %s", c.addr, r.Result, op.name)
			}
		}
	}
}

// TestPipelineSetOrder sends, for each of 3,000 keys (spread over the partitions), Set(k,
// "first") and right behind it on the same connection Set(k, "second"), without waiting for
// the first reply. Both must succeed and the stored value must be "second".
func TestPipelineSetOrder(t *testing.T) {
	setup(t)
	pc := newPipeConns(t)
	key := func(i int) ([]byte, []byte) { return hk(t, fmt.Sprintf("%05d", i)), []byte("s") }
	kinds := map[string]int{}
	var failedKeys []string
	var check []pipeKey
	t0 := time.Now()
	for lo := 0; lo < pipeOrderKeys; lo += pipeWindow {
		hi := min(lo+pipeWindow, pipeOrderKeys)
		var ops []*pipeOp
		for i := lo; i < hi; i++ {
			h, s := key(i)
			ops = append(ops, putOp(h, s, []byte(fmt.Sprintf("first-%d", i))),
				putOp(h, s, []byte(fmt.Sprintf("second-%d", i))))
		}
		pc.run(t, ops)
		for i := lo; i < hi; i++ {
			first, second := ops[2*(i-lo)], ops[2*(i-lo)+1]
			f1, f2 := first.failure(), second.failure()
			if f1 != "" || f2 != "" {
				for _, f := range []string{f1, f2} {
					if f != "" {
						kinds[f]++
					}
				}
				failedKeys = append(failedKeys, fmt.Sprintf("%d (first: %q, second: %q)", i, f1, f2))
				continue
			}
			h, s := key(i)
			check = append(check, pipeKey{h, s, []byte(fmt.Sprintf("second-%d", i))})
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), pipeTimeout)
	defer cancel()
	wrong := readBack(ctx, check)
	t.Logf("%d keys, set+set pipelined in windows of %d keys: %d keys with a failed set (%s), "+
		"%d keys not holding the second value, in %v", pipeOrderKeys, pipeWindow, len(failedKeys),
		kindsString(kinds), len(wrong), time.Since(t0).Round(time.Millisecond))
	if len(wrong) > 0 {
		t.Errorf("%d of %d keys do not hold the second of two pipelined sets, e.g. %s",
			len(wrong), pipeOrderKeys, strings.Join(wrong[:min(3, len(wrong))], "; "))
	}
	if len(failedKeys) > 0 {
		t.Errorf("%d of %d keys had a pipelined set fail (%s), e.g. %s", len(failedKeys),
			pipeOrderKeys, kindsString(kinds), strings.Join(failedKeys[:min(3, len(failedKeys))], "; "))
	}
}

// TestPipelineIncrOrder sends, for each of 1,000 fresh keys, incr +1 and right behind it on the
// same connection incr +2. The replies must be 1 and then 3.
func TestPipelineIncrOrder(t *testing.T) {
	setup(t)
	pc := newPipeConns(t)
	key := func(i int) ([]byte, []byte) { return hk(t, fmt.Sprintf("%05d", i)), []byte("n") }
	kinds := map[string]int{}
	outcomes := map[string]int{}
	var failedKeys, wrong []string
	t0 := time.Now()
	for lo := 0; lo < pipeIncrKeys; lo += pipeWindow {
		hi := min(lo+pipeWindow, pipeIncrKeys)
		var ops []*pipeOp
		for i := lo; i < hi; i++ {
			h, s := key(i)
			ops = append(ops, incrOp(h, s, 1), incrOp(h, s, 2))
		}
		pc.run(t, ops)
		for i := lo; i < hi; i++ {
			a, b := ops[2*(i-lo)], ops[2*(i-lo)+1]
			fa, fb := a.failure(), b.failure()
			if fa != "" || fb != "" {
				for _, f := range []string{fa, fb} {
					if f != "" {
						kinds[f]++
					}
				}
				failedKeys = append(failedKeys, fmt.Sprintf("%d (+1: %q, +2: %q)", i, fa, fb))
				continue
			}
			got := fmt.Sprintf("[%d,%d]", a.newValue, b.newValue)
			outcomes[got]++
			if got != "[1,3]" {
				wrong = append(wrong, fmt.Sprintf("key %d: %s", i, got))
			}
		}
	}
	t.Logf("%d fresh keys, incr +1 then +2 pipelined in windows of %d keys: results %s; %d keys "+
		"with a failed incr (%s), in %v", pipeIncrKeys, pipeWindow, kindsString(outcomes),
		len(failedKeys), kindsString(kinds), time.Since(t0).Round(time.Millisecond))
	if len(wrong) > 0 {
		t.Errorf("%d of %d keys: pipelined incr +1, +2 did not return [1,3], e.g. %s",
			len(wrong), pipeIncrKeys, strings.Join(wrong[:min(3, len(wrong))], "; "))
	}
	if len(failedKeys) > 0 {
		t.Errorf("%d of %d keys had a pipelined incr fail (%s), e.g. %s", len(failedKeys),
			pipeIncrKeys, kindsString(kinds), strings.Join(failedKeys[:min(3, len(failedKeys))], "; "))
	}
}
