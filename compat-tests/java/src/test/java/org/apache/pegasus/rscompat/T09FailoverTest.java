// T09FailoverTest: servers restarted under load, as upstream's client tests do: writers (sync
// threads and an async writer) run while `run.sh stop_onebox_instance -r 1` / `start_onebox_instance
// -r 1` restarts a replica server, then while the leader meta is stopped and started. Writes must
// succeed again on every partition afterwards and every acknowledged write must read back; failed
// writes are only counted (and reported). Runs last: it disturbs the cluster.
package org.apache.pegasus.rscompat;

import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import org.apache.pegasus.client.PException;
import org.apache.pegasus.client.PegasusClientInterface;
import org.apache.pegasus.client.PegasusTableInterface;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;

@Order(9)
public class T09FailoverTest extends CompatBase {
  private static final int WRITER_THREADS = 3;

  /**
   * Waits until a write succeeds on every partition (each retried until deadline); returns the
   * milliseconds it took, or fails.
   */
  static long awaitAllPartitionsWritable(PegasusTableInterface t, String what, long timeoutMs) {
    long t0 = System.currentTimeMillis();
    for (int p = 0; p < Onebox.PARTITION_COUNT; p++) {
      byte[] hk = b(hashKeyInPartition(key("fo-probe"), p));
      PException last = null;
      while (true) {
        try {
          t.set(hk, b("probe"), b("x"), TIMEOUT_MS);
          break;
        } catch (PException e) {
          last = e;
          if (System.currentTimeMillis() - t0 > timeoutMs) {
            throw new AssertionError(what + ": partition " + p + " still refuses writes after "
                + timeoutMs + " ms; last error: " + last, last);
          }
          Onebox.sleep(200);
        }
      }
    }
    return System.currentTimeMillis() - t0;
  }

  private static void finish(LoadRunner load, String name, long sinceMs) throws Exception {
    load.stop();
    long acked = load.ackedWrites();
    Log.report(String.format("%s: %d writes attempted, %d acknowledged, %d failed; longest "
        + "time a writer went without a success %s; test took %.1f s", name,
        load.attemptedWrites(), acked, load.failedWrites(), load.maxGap(),
        (System.currentTimeMillis() - sinceMs) / 1000.0));
    for (String e : load.errorSummary()) {
      Log.report("  " + name + " client error: " + e);
    }
    PegasusClientInterface reader = newClient(box().metaList());
    try {
      PegasusTableInterface rt = openReady(reader, 60_000);
      List<String> problems = load.verify(rt, System.currentTimeMillis() + 60_000);
      if (!problems.isEmpty()) {
        List<String> head = problems.subList(0, Math.min(20, problems.size()));
        for (String p : head) {
          Log.report("  " + name + " PROBLEM: " + p);
        }
        throw new AssertionError(name + ": " + problems.size() + " problems after the restart, "
            + "e.g. " + head);
      }
      Log.report("  " + name + ": all " + acked + " acknowledged writes read back");
    } finally {
      reader.close();
    }
    assertTrue(acked > 0, name + ": no write was acknowledged at all");
  }

  @Test
  @Order(1)
  void replicaRestartUnderLoad() throws Exception {
    long t0 = System.currentTimeMillis();
    LoadRunner load = new LoadRunner(table, key("fo-replica"), WRITER_THREADS, TIMEOUT_MS).start();
    try {
      Onebox.sleep(3000);
      long before = load.ackedWrites();
      assertTrue(before > 0, "writers made no progress before the restart");
      box().stopInstance("-r", 1);
      long stopped = System.currentTimeMillis();
      awaitAllPartitionsWritable(table, "after stopping replica1", 90_000);
      Log.report(String.format("replica restart: every partition writable %.1f s after replica1 "
          + "stopped", (System.currentTimeMillis() - stopped) / 1000.0));
      Onebox.sleep(2000);
      box().startInstance("-r", 1);
      long started = System.currentTimeMillis();
      awaitAllPartitionsWritable(table, "after starting replica1", 60_000);
      Onebox.sleep(3000);
      assertTrue(load.staleMs() < 2 * TIMEOUT_MS,
          "a writer has had no success for " + load.staleMs() + " ms after the restart");
      finish(load, "replica restart", t0);
      long healthy = box().waitHealthy(90_000);
      Log.report(healthy < 0
          ? "replica restart: the table is NOT fully replicated (3 replicas per partition) 90 s "
              + "after replica1 restarted"
          : String.format("replica restart: table fully replicated again %.1f s after replica1 "
              + "started", (System.currentTimeMillis() - started) / 1000.0));
      assertTrue(healthy >= 0, "replica1 did not rejoin every partition within 90 s");
    } finally {
      load.stop();
    }
  }

  @Test
  @Order(2)
  void leaderMetaRestartUnderLoad() throws Exception {
    long t0 = System.currentTimeMillis();
    String leader = box().leader(box().metas());
    assertNotNull(leader, "no leader meta among " + box().metas());
    int idx = Onebox.metaIndex(leader);
    LoadRunner load = new LoadRunner(table, key("fo-meta"), WRITER_THREADS, TIMEOUT_MS).start();
    try {
      Onebox.sleep(2000);
      box().stopInstance("-m", idx);
      long stopped = System.currentTimeMillis();
      List<String> others = new ArrayList<>(box().metas());
      others.remove(leader);
      String next = box().waitLeader(others, null, 60_000);
      Log.report(String.format("meta restart: leader %s (meta%d) stopped; %s leads %.1f s later",
          leader, idx, next, (System.currentTimeMillis() - stopped) / 1000.0));
      assertNotEquals(leader, next);

      // a new client given all metas, the stopped one first, works through the new leader
      List<String> order = new ArrayList<>();
      order.add(leader);
      order.addAll(others);
      PegasusClientInterface c = newClient(String.join(",", order));
      try {
        PegasusTableInterface t = openReady(c, 60_000);
        awaitAllPartitionsWritable(t, "new client while the old leader is down", 60_000);
      } finally {
        c.close();
      }

      box().startInstance("-m", idx);
      Onebox.sleep(3000);
      String after = box().waitLeader(box().metas(), null, 30_000);
      Log.report("meta restart: meta" + idx + " restarted; leader now " + after);
      awaitAllPartitionsWritable(table, "after the meta restart", 60_000);
      Onebox.sleep(2000);
      assertTrue(load.staleMs() < 2 * TIMEOUT_MS,
          "a writer has had no success for " + load.staleMs() + " ms after the meta restart");
      finish(load, "meta restart", t0);
    } finally {
      load.stop();
    }
  }
}
