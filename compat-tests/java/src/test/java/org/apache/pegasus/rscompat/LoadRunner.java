// LoadRunner: writers for the failover tests. Sync threads (set on fresh keys, plus an incr
// counter each) and one async writer (windows of asyncSet) run through one upstream client while
// servers restart; every write the client acknowledged is recorded, failures are counted by kind,
// and verify() reads every acknowledged record back afterwards.
package org.apache.pegasus.rscompat;

import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.commons.lang3.tuple.Pair;
import org.apache.pegasus.client.PException;
import org.apache.pegasus.client.PegasusTableInterface;
import org.apache.pegasus.client.PegasusTableInterface.MultiGetResult;
import org.apache.pegasus.thirdparty.io.netty.util.concurrent.Future;

final class LoadRunner {
  private static final int PER_HASH_KEY = 50;
  private static final int ASYNC_WINDOW = 20;
  private static final long PACE_MS = 2;

  private final PegasusTableInterface table;
  private final String tag;
  private final int syncThreads;
  private final int timeoutMs;
  private final List<Writer> writers = new ArrayList<>();
  private final List<Thread> threads = new ArrayList<>();
  private volatile boolean stop;
  private final Map<String, AtomicInteger> errorKinds = new ConcurrentHashMap<>();
  private final Map<String, String> errorSamples = new ConcurrentHashMap<>();

  LoadRunner(PegasusTableInterface table, String tag, int syncThreads, int timeoutMs) {
    this.table = table;
    this.tag = tag;
    this.syncThreads = syncThreads;
    this.timeoutMs = timeoutMs;
  }

  /** One writer's records: index i -> hash key tag-w<id>-<i/50>, sort key s<i>. */
  private final class Writer implements Runnable {
    final int id;
    final boolean async;
    final BitSet acked = new BitSet();
    int attempted;
    long failed;
    long incrAcked;
    long incrAttempted;
    volatile long lastSuccessMs = System.currentTimeMillis();
    long maxGapMs;
    long maxGapEndMs;

    Writer(int id, boolean async) {
      this.id = id;
      this.async = async;
    }

    String hashKey(int i) {
      return tag + "-w" + id + "-" + (i / PER_HASH_KEY);
    }

    String value(int i) {
      return tag + "/" + id + "/" + i;
    }

    byte[] counterKey() {
      return CompatBase.b(tag + "-counter-w" + id);
    }

    void success() {
      long now = System.currentTimeMillis();
      synchronized (this) {
        if (now - lastSuccessMs > maxGapMs) {
          maxGapMs = now - lastSuccessMs;
          maxGapEndMs = now;
        }
        lastSuccessMs = now;
      }
    }

    @Override
    public void run() {
      if (async) {
        runAsync();
        return;
      }
      for (int i = 0; !stop; i++) {
        attempted = i + 1;
        try {
          table.set(CompatBase.b(hashKey(i)), CompatBase.b("s" + i), CompatBase.b(value(i)),
              timeoutMs);
          synchronized (this) {
            acked.set(i);
          }
          success();
        } catch (PException e) {
          failed++;
          recordError("set", e);
        }
        if (i % 4 == 0) {
          incrAttempted++;
          try {
            table.incr(counterKey(), CompatBase.b("c"), 1, timeoutMs);
            incrAcked++;
            success();
          } catch (PException e) {
            failed++;
            recordError("incr", e);
          }
        }
        Onebox.sleep(PACE_MS);
      }
    }

    private void runAsync() {
      int i = 0;
      while (!stop) {
        List<Future<Void>> fs = new ArrayList<>();
        int first = i;
        for (int k = 0; k < ASYNC_WINDOW; k++, i++) {
          fs.add(table.asyncSet(CompatBase.b(hashKey(i)), CompatBase.b("s" + i),
              CompatBase.b(value(i)), timeoutMs));
        }
        attempted = i;
        for (int k = 0; k < fs.size(); k++) {
          Future<Void> f = fs.get(k);
          f.awaitUninterruptibly(3L * timeoutMs, TimeUnit.MILLISECONDS);
          if (f.isSuccess()) {
            synchronized (this) {
              acked.set(first + k);
            }
            success();
          } else {
            failed++;
            recordError("asyncSet", f.cause());
          }
        }
        Onebox.sleep(PACE_MS * 10);
      }
    }
  }

  private void recordError(String op, Throwable e) {
    String msg = op + ": " + (e == null ? "not completed" : String.valueOf(e));
    // one kind per message shape: numbers, addresses and gpids vary
    String kind = msg.replaceAll("[0-9]+", "#");
    if (kind.length() > 220) {
      kind = kind.substring(0, 220);
    }
    errorKinds.computeIfAbsent(kind, k -> new AtomicInteger()).incrementAndGet();
    errorSamples.putIfAbsent(kind, msg.length() > 600 ? msg.substring(0, 600) : msg);
  }

  LoadRunner start() {
    for (int t = 0; t <= syncThreads; t++) {
      Writer w = new Writer(t, t == syncThreads);
      writers.add(w);
      Thread th = new Thread(w, tag + "-writer-" + t);
      th.setDaemon(true);
      threads.add(th);
      th.start();
    }
    return this;
  }

  void stop() throws InterruptedException {
    stop = true;
    for (Thread th : threads) {
      th.join(60_000);
      if (th.isAlive()) {
        throw new AssertionError("writer " + th.getName() + " did not stop");
      }
    }
  }

  /** Milliseconds since the oldest "last success" of the writers. */
  long staleMs() {
    long oldest = Long.MAX_VALUE;
    for (Writer w : writers) {
      oldest = Math.min(oldest, w.lastSuccessMs);
    }
    return System.currentTimeMillis() - oldest;
  }

  long ackedWrites() {
    long n = 0;
    for (Writer w : writers) {
      synchronized (w) {
        n += w.acked.cardinality() + w.incrAcked;
      }
    }
    return n;
  }

  long attemptedWrites() {
    long n = 0;
    for (Writer w : writers) {
      n += w.attempted + w.incrAttempted;
    }
    return n;
  }

  long failedWrites() {
    long n = 0;
    for (Writer w : writers) {
      n += w.failed;
    }
    return n;
  }

  /** The longest time a writer went without a success, and when it ended. */
  String maxGap() {
    long g = 0;
    long end = 0;
    for (Writer w : writers) {
      synchronized (w) {
        if (w.maxGapMs > g) {
          g = w.maxGapMs;
          end = w.maxGapEndMs;
        }
      }
    }
    return String.format("%.1f s (ending %s)", g / 1000.0,
        java.time.LocalTime.ofInstant(java.time.Instant.ofEpochMilli(end),
            java.time.ZoneId.systemDefault()));
  }

  /** "count x kind (sample)" lines, most frequent first. */
  List<String> errorSummary() {
    List<Map.Entry<String, AtomicInteger>> l = new ArrayList<>(errorKinds.entrySet());
    l.sort((a, b) -> b.getValue().get() - a.getValue().get());
    List<String> out = new ArrayList<>();
    for (Map.Entry<String, AtomicInteger> e : l) {
      out.add(e.getValue().get() + " x " + errorSamples.get(e.getKey()));
    }
    return out;
  }

  /**
   * Reads back every acknowledged record (multiGet per hash key, retried through transient
   * errors) and checks the counters: acked <= value <= attempted. Returns the problems found.
   */
  List<String> verify(PegasusTableInterface reader, long deadlineMs) throws InterruptedException {
    List<String> problems = new ArrayList<>();
    for (Writer w : writers) {
      TreeMap<String, List<Integer>> byHashKey = new TreeMap<>();
      synchronized (w) {
        for (int i = w.acked.nextSetBit(0); i >= 0; i = w.acked.nextSetBit(i + 1)) {
          byHashKey.computeIfAbsent(w.hashKey(i), k -> new ArrayList<>()).add(i);
        }
      }
      for (Map.Entry<String, List<Integer>> e : byHashKey.entrySet()) {
        List<byte[]> sks = new ArrayList<>();
        for (int i : e.getValue()) {
          sks.add(CompatBase.b("s" + i));
        }
        MultiGetResult r = retry(() -> reader.multiGet(CompatBase.b(e.getKey()), sks, timeoutMs),
            deadlineMs, problems, "multiGet " + e.getKey());
        if (r == null) {
          continue;
        }
        Map<String, String> got = CompatBase.asMap(r.getValues());
        for (int i : e.getValue()) {
          String v = got.get("s" + i);
          if (!w.value(i).equals(v)) {
            problems.add("acknowledged write lost: " + e.getKey() + "/s" + i + " = " + v
                + ", want " + w.value(i));
          }
        }
      }
      if (!w.async) {
        byte[] v = retry(() -> reader.get(w.counterKey(), CompatBase.b("c"), timeoutMs),
            deadlineMs, problems, "get counter " + w.id);
        long n = v == null ? 0 : Long.parseLong(CompatBase.s(v));
        if (n < w.incrAcked || n > w.incrAttempted) {
          problems.add("counter of writer " + w.id + " = " + n + ", want between "
              + w.incrAcked + " acknowledged and " + w.incrAttempted + " attempted incrs");
        }
      }
    }
    return problems;
  }

  interface Read<T> {
    T read() throws PException;
  }

  private static <T> T retry(Read<T> r, long deadlineMs, List<String> problems, String what)
      throws InterruptedException {
    PException last = null;
    do {
      try {
        return r.read();
      } catch (PException e) {
        last = e;
        Thread.sleep(500);
      }
    } while (System.currentTimeMillis() < deadlineMs);
    problems.add(what + " failed: " + last);
    return null;
  }
}
