// T07ScanTest: scanners through the upstream Java client, after upstream TestScan: a hash-key
// scanner over ranges (inclusive/exclusive, one point, void span), batch sizes, sort key filters
// and noValue; unordered scanners (split counts, hash and sort key filters, asyncNext, early close).
package org.apache.pegasus.rscompat;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import org.apache.commons.lang3.tuple.Pair;
import org.apache.pegasus.client.FilterType;
import org.apache.pegasus.client.PException;
import org.apache.pegasus.client.PegasusScannerInterface;
import org.apache.pegasus.client.ScanOptions;
import org.apache.pegasus.thirdparty.io.netty.util.concurrent.Future;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;

@Order(7)
public class T07ScanTest extends CompatBase {
  private static final char[] CCH =
      "_0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ".toCharArray();
  private static final int HASH_KEYS = 60;
  private static final int PER_HASH_KEY = 10;

  private static String prefix; // every hash key of this class starts with it
  private static String bigHashKey; // 400 random sort keys
  private static TreeMap<String, TreeMap<String, String>> base; // hash key -> sort key -> value

  private static String randomString(Random r, int len) {
    char[] c = new char[len];
    for (int i = 0; i < len; i++) {
      c[i] = CCH[r.nextInt(CCH.length)];
    }
    return new String(c);
  }

  @BeforeAll
  static void fill() throws PException {
    prefix = key("scan") + "-";
    bigHashKey = prefix + "big";
    base = new TreeMap<>();
    Random r = new Random(20240601);
    TreeMap<String, String> big = new TreeMap<>();
    while (big.size() < 400) {
      big.put(randomString(r, 1 + r.nextInt(12)), randomString(r, r.nextInt(30)));
    }
    base.put(bigHashKey, big);
    for (int i = 0; i < HASH_KEYS; i++) {
      TreeMap<String, String> m = new TreeMap<>();
      for (int j = 0; j < PER_HASH_KEY; j++) {
        m.put(String.format("s%02d", j), randomString(r, 8));
      }
      base.put(String.format("%sh%02d", prefix, i), m);
    }
    for (Map.Entry<String, TreeMap<String, String>> e : base.entrySet()) {
      List<Pair<byte[], byte[]>> l = new ArrayList<>();
      for (Map.Entry<String, String> kv : e.getValue().entrySet()) {
        l.add(Pair.of(b(kv.getKey()), b(kv.getValue())));
      }
      // multiSet in chunks of 100
      for (int i = 0; i < l.size(); i += 100) {
        table.multiSet(b(e.getKey()), l.subList(i, Math.min(l.size(), i + 100)), TIMEOUT_MS);
      }
    }
  }

  /** Drains a hash scanner into sort key -> value, checking the hash key and the order. */
  private static TreeMap<String, String> drain(PegasusScannerInterface sc, String hk)
      throws PException {
    assertNotNull(sc);
    TreeMap<String, String> got = new TreeMap<>();
    String last = null;
    Pair<Pair<byte[], byte[]>, byte[]> item;
    while ((item = sc.next()) != null) {
      assertEquals(hk, s(item.getLeft().getLeft()));
      String sk = s(item.getLeft().getRight());
      assertTrue(last == null || last.compareTo(sk) < 0, "sort keys out of order: " + last
          + " then " + sk);
      last = sk;
      got.put(sk, s(item.getRight()));
    }
    sc.close();
    return got;
  }

  /** Drains unordered scanners into hash key -> sort key -> value; fails on a duplicate. */
  private static TreeMap<String, TreeMap<String, String>> drainAll(
      List<PegasusScannerInterface> scanners, boolean onlyOurs) throws PException {
    TreeMap<String, TreeMap<String, String>> got = new TreeMap<>();
    for (PegasusScannerInterface sc : scanners) {
      Pair<Pair<byte[], byte[]>, byte[]> item;
      while ((item = sc.next()) != null) {
        String hk = s(item.getLeft().getLeft());
        if (onlyOurs && !hk.startsWith(prefix)) {
          continue;
        }
        String prev = got.computeIfAbsent(hk, k -> new TreeMap<>())
            .put(s(item.getLeft().getRight()), s(item.getRight()));
        assertNull(prev, "record returned twice: " + hk + "/" + s(item.getLeft().getRight()));
      }
      sc.close();
    }
    return got;
  }

  private static String nth(Iterator<String> it, int n) {
    for (int i = 0; i < n; i++) {
      it.next();
    }
    return it.next();
  }

  @Test
  @Order(1)
  void hashScanAll() throws PException {
    TreeMap<String, String> want = base.get(bigHashKey);
    assertEquals(want, drain(table.getScanner(b(bigHashKey), new byte[0], new byte[0],
        new ScanOptions()), bigHashKey), "default options");
    for (int batch : new int[] {1, 7, 1000}) {
      ScanOptions o = new ScanOptions();
      o.batchSize = batch;
      assertEquals(want, drain(table.getScanner(b(bigHashKey), new byte[0], new byte[0], o), bigHashKey),
          "batch size " + batch);
    }
    // the client-level API
    assertEquals(want, drain(client.getScanner(TABLE, b(bigHashKey), new byte[0], new byte[0],
        new ScanOptions()), bigHashKey), "client.getScanner");
  }

  @Test
  @Order(2)
  void hashScanRanges() throws PException {
    TreeMap<String, String> all = base.get(bigHashKey);
    String start = nth(all.keySet().iterator(), 37);
    String stop = nth(all.keySet().iterator(), 250);
    Object[][] bounds = {{true, true}, {true, false}, {false, true}, {false, false}};
    for (Object[] bd : bounds) {
      ScanOptions o = new ScanOptions();
      o.startInclusive = (Boolean) bd[0];
      o.stopInclusive = (Boolean) bd[1];
      o.batchSize = 50;
      assertEquals(all.subMap(start, o.startInclusive, stop, o.stopInclusive),
          drain(table.getScanner(b(bigHashKey), b(start), b(stop), o), bigHashKey),
          "range start " + (o.startInclusive ? "[" : "(") + " stop " + (o.stopInclusive ? "]" : ")"));
    }
    // one point [start, start]; [start, start) is empty; a void span [stop, start]
    ScanOptions o = new ScanOptions();
    o.startInclusive = true;
    o.stopInclusive = true;
    PegasusScannerInterface sc = table.getScanner(b(bigHashKey), b(start), b(start), o);
    Pair<Pair<byte[], byte[]>, byte[]> item = sc.next();
    assertNotNull(item, "[start, start]");
    assertEquals(start, s(item.getLeft().getRight()));
    assertNull(sc.next());
    sc.close();
    o.stopInclusive = false;
    sc = table.getScanner(b(bigHashKey), b(start), b(start), o);
    assertNull(sc.next(), "[start, start)");
    sc.close();
    o.stopInclusive = true;
    sc = table.getScanner(b(bigHashKey), b(stop), b(start), o);
    assertNull(sc.next(), "[stop, start]");
    sc.close();
    // from start to the end, and from the beginning to stop
    o = new ScanOptions();
    assertEquals(all.tailMap(start, true),
        drain(table.getScanner(b(bigHashKey), b(start), new byte[0], o), bigHashKey), "[start, )");
    assertEquals(all.headMap(stop, false),
        drain(table.getScanner(b(bigHashKey), new byte[0], b(stop), o), bigHashKey), "[, stop)");
  }

  @Test
  @Order(3)
  void hashScanFiltersAndNoValue() throws PException {
    TreeMap<String, String> all = base.get(bigHashKey);
    String pfx = all.firstKey().substring(0, 1);
    for (FilterType ft :
        new FilterType[] {FilterType.FT_MATCH_PREFIX, FilterType.FT_MATCH_POSTFIX,
          FilterType.FT_MATCH_ANYWHERE}) {
      String pat = ft == FilterType.FT_MATCH_PREFIX ? pfx : "a";
      TreeMap<String, String> want = new TreeMap<>();
      for (Map.Entry<String, String> e : all.entrySet()) {
        boolean m = ft == FilterType.FT_MATCH_PREFIX ? e.getKey().startsWith(pat)
            : ft == FilterType.FT_MATCH_POSTFIX ? e.getKey().endsWith(pat)
            : e.getKey().contains(pat);
        if (m) {
          want.put(e.getKey(), e.getValue());
        }
      }
      ScanOptions o = new ScanOptions();
      o.sortKeyFilterType = ft;
      o.sortKeyFilterPattern = b(pat);
      o.batchSize = 10;
      TreeMap<String, String> got =
          drain(table.getScanner(b(bigHashKey), new byte[0], new byte[0], o), bigHashKey);
      assertTrue(want.size() > 0, "the data has matches for " + ft + " " + pat);
      assertEquals(want, got, "sort key filter " + ft + " '" + pat + "'");
    }
    ScanOptions o = new ScanOptions();
    o.noValue = true;
    TreeMap<String, String> got =
        drain(table.getScanner(b(bigHashKey), new byte[0], new byte[0], o), bigHashKey);
    assertEquals(all.keySet(), got.keySet(), "noValue keys");
    for (String v : got.values()) {
      assertEquals("", v, "noValue returned a value");
    }
  }

  @Test
  @Order(4)
  void unorderedScanners() throws PException {
    List<PegasusScannerInterface> scanners = table.getUnorderedScanners(3, new ScanOptions());
    assertEquals(3, scanners.size(), "3 scanners over 8 partitions");
    assertEquals(base, drainAll(scanners, true), "3 unordered scanners");

    ScanOptions o = new ScanOptions();
    o.batchSize = 13;
    scanners = table.getUnorderedScanners(100, o);
    assertEquals(Onebox.PARTITION_COUNT, scanners.size(), "one scanner per partition at most");
    assertEquals(base, drainAll(scanners, true), "one scanner per partition, batch size 13");

    // the client-level API with one scanner
    scanners = client.getUnorderedScanners(TABLE, 1, new ScanOptions());
    assertEquals(1, scanners.size());
    assertEquals(base, drainAll(scanners, true), "1 unordered scanner");
  }

  @Test
  @Order(5)
  void unorderedScannersWithFilters() throws PException {
    // hash key prefix: exactly this class's data (as upstream testHashKeyFilteringScan)
    ScanOptions o = new ScanOptions();
    o.hashKeyFilterType = FilterType.FT_MATCH_PREFIX;
    o.hashKeyFilterPattern = b(prefix);
    assertEquals(base, drainAll(table.getUnorderedScanners(4, o), false), "hash key prefix");

    // hash key postfix and anywhere
    o = new ScanOptions();
    o.hashKeyFilterType = FilterType.FT_MATCH_POSTFIX;
    o.hashKeyFilterPattern = b("scan-h07");
    TreeMap<String, TreeMap<String, String>> want = new TreeMap<>();
    want.put(prefix + "h07", base.get(prefix + "h07"));
    assertEquals(want, drainAll(table.getUnorderedScanners(8, o), false), "hash key postfix");

    o = new ScanOptions();
    o.hashKeyFilterType = FilterType.FT_MATCH_ANYWHERE;
    o.hashKeyFilterPattern = b("scan-h1");
    o.batchSize = 4;
    want = new TreeMap<>();
    for (int i = 10; i < 20; i++) {
      String hk = String.format("%sh%02d", prefix, i);
      want.put(hk, base.get(hk));
    }
    assertEquals(want, drainAll(table.getUnorderedScanners(8, o), false), "hash key anywhere");

    // hash key prefix + sort key postfix, keys only
    o = new ScanOptions();
    o.hashKeyFilterType = FilterType.FT_MATCH_PREFIX;
    o.hashKeyFilterPattern = b(prefix + "h");
    o.sortKeyFilterType = FilterType.FT_MATCH_POSTFIX;
    o.sortKeyFilterPattern = b("3");
    o.noValue = true;
    TreeMap<String, TreeMap<String, String>> got = drainAll(table.getUnorderedScanners(2, o), false);
    assertEquals(HASH_KEYS, got.size(), "hash keys with a sort key ending in 3");
    for (Map.Entry<String, TreeMap<String, String>> e : got.entrySet()) {
      TreeMap<String, String> m = new TreeMap<>();
      m.put("s03", "");
      assertEquals(m, e.getValue(), "records of " + e.getKey());
    }
  }

  @Test
  @Order(6)
  void asyncNextAndEarlyClose() throws Exception {
    List<PegasusScannerInterface> scanners = table.getUnorderedScanners(3, new ScanOptions());
    TreeMap<String, TreeMap<String, String>> got = new TreeMap<>();
    for (PegasusScannerInterface sc : scanners) {
      while (true) {
        Future<Pair<Pair<byte[], byte[]>, byte[]>> f = sc.asyncNext();
        Pair<Pair<byte[], byte[]>, byte[]> item = f.get(3L * TIMEOUT_MS, TimeUnit.MILLISECONDS);
        if (item == null) {
          break;
        }
        String hk = s(item.getLeft().getLeft());
        if (hk.startsWith(prefix)) {
          got.computeIfAbsent(hk, k -> new TreeMap<>())
              .put(s(item.getLeft().getRight()), s(item.getRight()));
        }
      }
      sc.close();
    }
    assertEquals(base, got, "asyncNext");

    // many asyncNext calls in flight on one scanner (upstream testConcurrentCallAsyncScan)
    ScanOptions o = new ScanOptions();
    o.batchSize = 10;
    PegasusScannerInterface sc = table.getScanner(b(bigHashKey), new byte[0], new byte[0], o);
    List<Future<Pair<Pair<byte[], byte[]>, byte[]>>> fs = new ArrayList<>();
    for (int i = 0; i < 450; i++) {
      fs.add(sc.asyncNext());
    }
    List<String> keys = new ArrayList<>();
    for (Future<Pair<Pair<byte[], byte[]>, byte[]>> f : fs) {
      Pair<Pair<byte[], byte[]>, byte[]> item = f.get(3L * TIMEOUT_MS, TimeUnit.MILLISECONDS);
      if (item != null) {
        keys.add(s(item.getLeft().getRight()));
      }
    }
    sc.close();
    assertEquals(new ArrayList<>(base.get(bigHashKey).keySet()), keys, "450 asyncNext in flight");

    // close a scanner after a few records, then scan again
    o = new ScanOptions();
    o.batchSize = 5;
    sc = table.getScanner(b(bigHashKey), new byte[0], new byte[0], o);
    for (int i = 0; i < 12; i++) {
      assertNotNull(sc.next());
    }
    sc.close();
    List<PegasusScannerInterface> us = table.getUnorderedScanners(8, o);
    for (PegasusScannerInterface u : us) {
      u.next();
      u.close();
    }
    assertEquals(base.get(bigHashKey),
        drain(table.getScanner(b(bigHashKey), new byte[0], new byte[0], new ScanOptions()),
            bigHashKey), "a full scan after closed scanners");
    assertArrayEquals(b(base.get(bigHashKey).firstEntry().getValue()),
        table.get(b(bigHashKey), b(base.get(bigHashKey).firstKey()), TIMEOUT_MS));
  }
}
