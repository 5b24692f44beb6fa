// T06TtlTest: TTLs through the upstream Java client: set/multiSet/batchSet/checkAndSet/incr with a
// TTL, ttl() reading it back, and expiry a few seconds later as every read path sees it (get,
// exist, ttl, multiGet, sortKeyCount, hash scanner, batchGet).
package org.apache.pegasus.rscompat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.apache.commons.lang3.tuple.Pair;
import org.apache.pegasus.client.CheckAndSetOptions;
import org.apache.pegasus.client.CheckType;
import org.apache.pegasus.client.PException;
import org.apache.pegasus.client.PegasusScannerInterface;
import org.apache.pegasus.client.PegasusTableInterface.MultiGetResult;
import org.apache.pegasus.client.ScanOptions;
import org.apache.pegasus.client.SetItem;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;

@Order(6)
public class T06TtlTest extends CompatBase {
  private static final int SHORT_TTL = 3;

  @Test
  @Order(1)
  void ttlReadBack() throws PException {
    byte[] hk = b(key("ttl"));
    table.set(hk, b("long"), b("v"), 86400, TIMEOUT_MS);
    int ttl = table.ttl(hk, b("long"), TIMEOUT_MS);
    assertTrue(ttl > 86390 && ttl <= 86400, "ttl of a 86400 s record: " + ttl);
    table.set(hk, b("none"), b("v"), 0, TIMEOUT_MS);
    assertEquals(-1, table.ttl(hk, b("none"), TIMEOUT_MS), "ttl 0 means no TTL");
    // overwriting without a TTL removes the TTL
    table.set(hk, b("long"), b("v2"), TIMEOUT_MS);
    assertEquals(-1, table.ttl(hk, b("long"), TIMEOUT_MS), "after an overwrite without TTL");
    assertEquals(-2, table.ttl(hk, b("missing"), TIMEOUT_MS));
  }

  @Test
  @Order(2)
  void expiry() throws Exception {
    byte[] hk = b(key("expire"));
    byte[] hk2 = b(key("expire-batch"));
    table.set(hk, b("keep"), b("kept"), TIMEOUT_MS);
    table.set(hk, b("s1"), b("short"), SHORT_TTL, TIMEOUT_MS);
    table.multiSet(hk, kvs("m1", "x", "m2", "y"), SHORT_TTL, TIMEOUT_MS);
    table.batchSet(Arrays.asList(new SetItem(hk2, b("b1"), b("z"), SHORT_TTL),
        new SetItem(hk2, b("b2"), b("kept-b2"), 0)), TIMEOUT_MS);
    CheckAndSetOptions co = new CheckAndSetOptions();
    co.setValueTTLSeconds = SHORT_TTL;
    assertTrue(table.checkAndSet(hk, b("c1"), CheckType.CT_VALUE_NOT_EXIST, null, b("c1"),
        b("cas"), co, TIMEOUT_MS).isSetSucceed());
    assertEquals(7, table.incr(hk, b("n1"), 7, SHORT_TTL, TIMEOUT_MS));

    // alive now
    for (String sk : new String[] {"s1", "m1", "m2", "c1", "n1"}) {
      assertTrue(table.exist(hk, b(sk), TIMEOUT_MS), sk + " before expiry");
      int ttl = table.ttl(hk, b(sk), TIMEOUT_MS);
      assertTrue(ttl > 0 && ttl <= SHORT_TTL, sk + " ttl before expiry: " + ttl);
    }
    assertEquals(6, table.sortKeyCount(hk, TIMEOUT_MS));
    assertValue("z", table.get(hk2, b("b1"), TIMEOUT_MS), "b1 before expiry");

    Thread.sleep(SHORT_TTL * 1000L + 1500L);

    for (String sk : new String[] {"s1", "m1", "m2", "c1", "n1"}) {
      assertNull(table.get(hk, b(sk), TIMEOUT_MS), sk + " after expiry");
      assertFalse(table.exist(hk, b(sk), TIMEOUT_MS), sk + " exist after expiry");
      assertEquals(-2, table.ttl(hk, b(sk), TIMEOUT_MS), sk + " ttl after expiry");
    }
    assertValue("kept", table.get(hk, b("keep"), TIMEOUT_MS), "record without TTL");
    MultiGetResult r = table.multiGet(hk, new ArrayList<>(), TIMEOUT_MS);
    assertEquals(Arrays.asList("keep"), sortKeys(r.getValues()), "multiGet after expiry");
    r = table.multiGet(hk, Arrays.asList(b("s1"), b("m1"), b("keep")), TIMEOUT_MS);
    assertEquals(Arrays.asList("keep"), sortKeys(r.getValues()), "multiGet by keys after expiry");
    assertEquals(1, table.sortKeyCount(hk, TIMEOUT_MS), "sortKeyCount after expiry");

    List<String> scanned = new ArrayList<>();
    PegasusScannerInterface sc = table.getScanner(hk, new byte[0], new byte[0], new ScanOptions());
    Pair<Pair<byte[], byte[]>, byte[]> item;
    while ((item = sc.next()) != null) {
      scanned.add(s(item.getLeft().getRight()));
    }
    sc.close();
    assertEquals(Arrays.asList("keep"), scanned, "hash scan after expiry");

    List<byte[]> values = new ArrayList<>();
    table.batchGet(Arrays.asList(Pair.of(hk2, b("b1")), Pair.of(hk2, b("b2"))), values, TIMEOUT_MS);
    assertNull(values.get(0), "batchSet record after expiry");
    assertValue("kept-b2", values.get(1), "batchSet record without TTL");

    // an expired record counts as missing for incr and check_and_set
    assertEquals(1, table.incr(hk, b("n1"), 1, TIMEOUT_MS), "incr on an expired record");
    assertTrue(table.checkAndSet(hk, b("c1"), CheckType.CT_VALUE_NOT_EXIST, null, b("c1"),
        b("again"), new CheckAndSetOptions(), TIMEOUT_MS).isSetSucceed(),
        "NOT_EXIST on an expired record");
  }
}
