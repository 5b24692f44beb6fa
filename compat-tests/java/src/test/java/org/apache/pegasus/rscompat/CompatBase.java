// CompatBase: what every test class of the Java-client suite shares: the onebox (through
// OneboxExtension), a client built with ClientOptions (meta list, 5 s operation timeout, perf
// counters off) and the table "temp" opened once it answers on every partition, plus key helpers.
package org.apache.pegasus.rscompat;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.apache.commons.lang3.tuple.Pair;
import org.apache.pegasus.client.ClientOptions;
import org.apache.pegasus.client.PException;
import org.apache.pegasus.client.PegasusClientFactory;
import org.apache.pegasus.client.PegasusClientInterface;
import org.apache.pegasus.client.PegasusTableInterface;
import org.apache.pegasus.rpc.Table;
import org.apache.pegasus.tools.Tools;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.extension.ExtendWith;

@ExtendWith(OneboxExtension.class)
public abstract class CompatBase {
  public static final int TIMEOUT_MS = 5000;
  public static final String TABLE = Onebox.TABLE;
  /** A prefix unique to this run, so every class writes keys of its own. */
  public static final String RUN = "j" + Long.toString(System.currentTimeMillis() % 100000000L, 36);

  protected static PegasusClientInterface client;
  protected static PegasusTableInterface table;

  @BeforeAll
  static void openSharedClient() throws PException {
    client = newClient(box().metaList());
    table = openReady(client, 120_000);
  }

  @AfterAll
  static void closeSharedClient() {
    if (client != null) {
      client.close();
      client = null;
      table = null;
    }
  }

  public static Onebox box() {
    return OneboxExtension.onebox();
  }

  /** A client of the upstream library, configured as a user would with ClientOptions. */
  public static PegasusClientInterface newClient(String metaList) throws PException {
    ClientOptions opts =
        ClientOptions.builder()
            .metaServers(metaList)
            .operationTimeout(Duration.ofMillis(TIMEOUT_MS))
            .metaQueryTimeout(Duration.ofMillis(TIMEOUT_MS))
            .enablePerfCounter(false)
            .asyncWorkers(4)
            .build();
    return PegasusClientFactory.createClient(opts);
  }

  /**
   * Opens the table and waits until a read on every partition succeeds (the table may still be
   * moving into place right after start or a restart).
   */
  public static PegasusTableInterface openReady(PegasusClientInterface c, long timeoutMs)
      throws PException {
    long deadline = System.currentTimeMillis() + timeoutMs;
    PException last = null;
    PegasusTableInterface t = null;
    while (System.currentTimeMillis() < deadline) {
      try {
        if (t == null) {
          t = c.openTable(TABLE);
        }
        for (int p = 0; p < Onebox.PARTITION_COUNT; p++) {
          t.get(b(hashKeyInPartition("probe", p)), b("probe"), TIMEOUT_MS);
        }
        return t;
      } catch (PException e) {
        last = e;
        Onebox.sleep(500);
      }
    }
    throw new PException("table " + TABLE + " did not answer on every partition in "
        + timeoutMs + " ms", last);
  }

  /** The partition the client routes a hash key to (upstream's crc64 % partition count). */
  public static int partitionOf(byte[] hashKey) {
    return (int) Table.remainder_unsigned(Tools.dsn_crc64(hashKey), Onebox.PARTITION_COUNT);
  }

  /** The first hash key "prefix-i" (i = 0, 1, ...) that falls into partition p. */
  public static String hashKeyInPartition(String prefix, int p) {
    for (int i = 0; ; i++) {
      String hk = prefix + "-" + i;
      if (partitionOf(b(hk)) == p) {
        return hk;
      }
    }
  }

  public static byte[] b(String s) {
    return s.getBytes(StandardCharsets.UTF_8);
  }

  public static String s(byte[] v) {
    return v == null ? null : new String(v, StandardCharsets.UTF_8);
  }

  /** A key unique to this run and test class: RUN-<tag>. */
  public static String key(String tag) {
    return RUN + "-" + tag;
  }

  public static List<Pair<byte[], byte[]>> kvs(String... keysAndValues) {
    List<Pair<byte[], byte[]>> l = new ArrayList<>();
    for (int i = 0; i < keysAndValues.length; i += 2) {
      l.add(Pair.of(b(keysAndValues[i]), b(keysAndValues[i + 1])));
    }
    return l;
  }

  /** sortKey=value pairs as an ordered string map, for assertions that print well. */
  public static Map<String, String> asMap(List<Pair<byte[], byte[]>> l) {
    Map<String, String> m = new TreeMap<>();
    for (Pair<byte[], byte[]> p : l) {
      m.put(s(p.getLeft()), s(p.getRight()));
    }
    return m;
  }

  /** The sort keys of a multi-get result, in the order the server returned them. */
  public static List<String> sortKeys(List<Pair<byte[], byte[]>> l) {
    List<String> r = new ArrayList<>();
    for (Pair<byte[], byte[]> p : l) {
      r.add(s(p.getLeft()));
    }
    return r;
  }

  public static void assertValue(String want, byte[] got, String what) {
    if (want == null) {
      assertEquals(null, s(got), what);
    } else {
      assertArrayEquals(b(want), got, what + ": got " + s(got));
    }
  }
}
