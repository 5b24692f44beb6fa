# Throughput/latency benchmark through the real pypegasus3 client (the compat suite's venv):
# N writer threads, then N reader threads, against a running cluster; prints ops/s and
# P50/P99 latency in ms per phase. No assertions. Usage:
#   compat-tests/python/.venv/bin/python tools/bench_pacifica.py --meta 127.0.0.1:34601 \
#       --table temp --threads 8 --seconds 15
import argparse
import os
import sys
import threading
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "compat-tests", "python"))
import pgharness  # noqa: E402  (imports pypegasus from the venv, runs the Twisted reactor)
from pgharness import OK  # noqa: E402


def percentile(sorted_ms, q):
    if not sorted_ms:
        return float("nan")
    i = min(len(sorted_ms) - 1, max(0, int(round(q / 100.0 * len(sorted_ms))) - 1))
    return sorted_ms[i]


def run_phase(name, clients, seconds, op):
    """Runs op(client, thread_idx, i) in one thread per client for `seconds`; returns stats."""
    stop = threading.Event()
    lat = [[] for _ in clients]
    errs = [0 for _ in clients]
    done = [0 for _ in clients]

    def work(t):
        c, i = clients[t], 0
        while not stop.is_set():
            t0 = time.perf_counter()
            try:
                ok = op(c, t, i)
            except Exception:  # noqa: BLE001
                ok = False
            dt = (time.perf_counter() - t0) * 1000.0
            if ok:
                lat[t].append(dt)
            else:
                errs[t] += 1
            i += 1
            done[t] = i

    ts = [threading.Thread(target=work, args=(t,), daemon=True) for t in range(len(clients))]
    start = time.perf_counter()
    for th in ts:
        th.start()
    time.sleep(seconds)
    stop.set()
    for th in ts:
        th.join(timeout=60)
    elapsed = time.perf_counter() - start
    all_ms = sorted(x for l in lat for x in l)
    ok = len(all_ms)
    print("%-6s %8d ok %6d err  %9.1f ops/s  p50 %7.2f ms  p99 %7.2f ms  max %7.2f ms"
          % (name, ok, sum(errs), ok / elapsed, percentile(all_ms, 50), percentile(all_ms, 99),
             all_ms[-1] if all_ms else float("nan")), flush=True)
    return done


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--meta", default="127.0.0.1:34601", help="meta address list, comma separated")
    ap.add_argument("--table", default="temp")
    ap.add_argument("--threads", type=int, default=8, help="concurrent writer/reader threads")
    ap.add_argument("--seconds", type=float, default=15.0, help="duration of each phase")
    ap.add_argument("--value-size", type=int, default=100)
    ap.add_argument("--hash-keys", type=int, default=64, help="hash keys per thread")
    ap.add_argument("--timeout-ms", type=int, default=5000)
    args = ap.parse_args()

    metas = [m.strip() for m in args.meta.split(",") if m.strip()]
    prefix = "bench-%s" % uuid.uuid4().hex[:8]
    value = b"v" * args.value_size
    pgharness.start_reactor()
    clients = [pgharness.open_client(metas, args.table, deadline_s=60,
                                     timeout_ms=args.timeout_ms) for _ in range(args.threads)]
    print("bench: %d threads x %.0fs per phase, table %s at %s, value %d B, key prefix %s"
          % (args.threads, args.seconds, args.table, args.meta, args.value_size, prefix))

    def key(t, i):
        return "%s-t%d-h%d" % (prefix, t, i % args.hash_keys), "s%09d" % i

    def write(c, t, i):
        hk, sk = key(t, i)
        return c.set(hk, sk, value) == (OK, None)

    written = run_phase("write", clients, args.seconds, write)

    def read(c, t, i):
        n = max(1, written[t])
        hk, sk = key(t, (i * 7919) % n)
        r = c.get(hk, sk)
        return isinstance(r, tuple) and r[0] == OK

    run_phase("read", clients, args.seconds, read)
    for c in clients:
        c.close()
    pgharness.stop_reactor()


if __name__ == "__main__":
    main()
