// T01BasicTest: single-key operations through the upstream Java client: set/get/del, exist, ttl,
// sortKeyCount, empty/binary/large values and keys, overwrites, and the client-level (table name
// argument) API, with the results the upstream C++ server gives.
package org.apache.pegasus.rscompat;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.Random;
import org.apache.pegasus.client.ClientOptions;
import org.apache.pegasus.client.PException;
import org.apache.pegasus.client.PegasusClientFactory;
import org.apache.pegasus.client.PegasusClientInterface;
import org.apache.pegasus.client.PegasusTableInterface;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;

@Order(1)
public class T01BasicTest extends CompatBase {

  @Test
  @Order(1)
  void setGetDelExist() throws PException {
    byte[] hk = b(key("basic"));
    table.set(hk, b("k1"), b("v1"), TIMEOUT_MS);
    assertValue("v1", table.get(hk, b("k1"), TIMEOUT_MS), "get after set");
    assertTrue(table.exist(hk, b("k1"), TIMEOUT_MS), "exist after set");
    assertEquals(-1, table.ttl(hk, b("k1"), TIMEOUT_MS), "ttl of a record without TTL");

    table.set(hk, b("k1"), b("v1-overwritten"), TIMEOUT_MS);
    assertValue("v1-overwritten", table.get(hk, b("k1"), TIMEOUT_MS), "get after overwrite");

    table.del(hk, b("k1"), TIMEOUT_MS);
    assertNull(table.get(hk, b("k1"), TIMEOUT_MS), "get after del");
    assertFalse(table.exist(hk, b("k1"), TIMEOUT_MS), "exist after del");
    assertEquals(-2, table.ttl(hk, b("k1"), TIMEOUT_MS), "ttl of a missing record");
    // deleting a missing record is not an error
    table.del(hk, b("k1"), TIMEOUT_MS);
    table.del(b(key("never-written")), b("x"), TIMEOUT_MS);
    assertNull(table.get(b(key("never-written")), b("x"), TIMEOUT_MS));
  }

  @Test
  @Order(2)
  void emptyValueAndEmptySortKey() throws PException {
    byte[] hk = b(key("empty"));
    table.set(hk, b("ev"), new byte[0], TIMEOUT_MS);
    byte[] v = table.get(hk, b("ev"), TIMEOUT_MS);
    assertNotNull(v, "an empty value is a value, not a missing record");
    assertEquals(0, v.length);
    assertTrue(table.exist(hk, b("ev"), TIMEOUT_MS));

    table.set(hk, new byte[0], b("empty-sort-key"), TIMEOUT_MS);
    assertValue("empty-sort-key", table.get(hk, new byte[0], TIMEOUT_MS), "empty sort key");
    assertValue("empty-sort-key", table.get(hk, null, TIMEOUT_MS), "null sort key");
    assertEquals(2, table.sortKeyCount(hk, TIMEOUT_MS));
    table.del(hk, new byte[0], TIMEOUT_MS);
    assertNull(table.get(hk, new byte[0], TIMEOUT_MS));
    assertEquals(1, table.sortKeyCount(hk, TIMEOUT_MS));
  }

  @Test
  @Order(3)
  void binaryKeysAndValues() throws PException {
    byte[] hk = new byte[] {0, 1, 2, (byte) 0xff, (byte) 0x80, 'j', 0};
    byte[] sk = new byte[] {(byte) 0xfe, 0, 0, 7};
    byte[] val = new byte[1024];
    for (int i = 0; i < val.length; i++) {
      val[i] = (byte) i;
    }
    table.set(hk, sk, val, TIMEOUT_MS);
    assertArrayEquals(val, table.get(hk, sk, TIMEOUT_MS));
    assertTrue(table.exist(hk, sk, TIMEOUT_MS));
    table.del(hk, sk, TIMEOUT_MS);
    assertNull(table.get(hk, sk, TIMEOUT_MS));
  }

  @Test
  @Order(4)
  void largeValuesAndLongKeys() throws PException {
    // within the client's default write limits (value <= 400 KiB, keys <= 1024 bytes)
    byte[] hk = b(key("large"));
    byte[] val = new byte[400 * 1000];
    new Random(42).nextBytes(val);
    table.set(hk, b("big"), val, TIMEOUT_MS);
    assertArrayEquals(val, table.get(hk, b("big"), TIMEOUT_MS));
    String longHk = (key("h") + "-").repeat(200).substring(0, 1000);
    String longSk = "s".repeat(1000);
    table.set(b(longHk), b(longSk), b("long-keys"), TIMEOUT_MS);
    assertValue("long-keys", table.get(b(longHk), b(longSk), TIMEOUT_MS), "long keys");

    // past them, with the client's write limit turned off (ClientOptions.enableWriteLimit)
    PegasusClientInterface unlimited =
        PegasusClientFactory.createClient(
            ClientOptions.builder()
                .metaServers(box().metaList())
                .operationTimeout(Duration.ofMillis(TIMEOUT_MS))
                .enablePerfCounter(false)
                .enableWriteLimit(false)
                .build());
    try {
      PegasusTableInterface t = unlimited.openTable(TABLE);
      byte[] big = new byte[900 * 1024];
      new Random(7).nextBytes(big);
      String sk = "k".repeat(3000);
      t.set(hk, b(sk), big, TIMEOUT_MS);
      assertArrayEquals(big, t.get(hk, b(sk), TIMEOUT_MS));
      assertArrayEquals(big, table.get(hk, b(sk), TIMEOUT_MS));
    } finally {
      unlimited.close();
    }
  }

  @Test
  @Order(5)
  void sortKeyCountAndManyHashKeys() throws PException {
    byte[] hk = b(key("count"));
    assertEquals(0, table.sortKeyCount(hk, TIMEOUT_MS));
    for (int i = 0; i < 25; i++) {
      table.set(hk, b(String.format("s%02d", i)), b("v" + i), TIMEOUT_MS);
    }
    assertEquals(25, table.sortKeyCount(hk, TIMEOUT_MS));
    // one hash key in every partition, so every primary serves a write and a read
    for (int p = 0; p < Onebox.PARTITION_COUNT; p++) {
      byte[] h = b(hashKeyInPartition(key("part"), p));
      table.set(h, b("p"), b("partition-" + p), TIMEOUT_MS);
    }
    for (int p = 0; p < Onebox.PARTITION_COUNT; p++) {
      byte[] h = b(hashKeyInPartition(key("part"), p));
      assertValue("partition-" + p, table.get(h, b("p"), TIMEOUT_MS), "partition " + p);
    }
  }

  @Test
  @Order(6)
  void clientLevelApi() throws PException {
    byte[] hk = b(key("client-api"));
    client.set(TABLE, hk, b("a"), b("1"));
    client.set(TABLE, hk, b("b"), b("2"), 0);
    assertValue("1", client.get(TABLE, hk, b("a")), "client.get");
    assertTrue(client.exist(TABLE, hk, b("b")));
    assertEquals(2, client.sortKeyCount(TABLE, hk));
    assertEquals(-1, client.ttl(TABLE, hk, b("a")));
    client.del(TABLE, hk, b("a"));
    assertNull(client.get(TABLE, hk, b("a")));
    assertEquals(1, client.sortKeyCount(TABLE, hk));
  }
}
