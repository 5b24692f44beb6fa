// T02MultiTest: hash-key operations through the upstream Java client: multiSet, multiGet by sort
// keys and by range (inclusive/exclusive bounds, sort key filters, reverse, noValue, count limits),
// multiGetSortKeys, multiDel, delRange and sortKeyCount.
package org.apache.pegasus.rscompat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.apache.commons.lang3.tuple.Pair;
import org.apache.pegasus.client.DelRangeOptions;
import org.apache.pegasus.client.FilterType;
import org.apache.pegasus.client.MultiGetOptions;
import org.apache.pegasus.client.PException;
import org.apache.pegasus.client.PegasusTableInterface.MultiGetResult;
import org.apache.pegasus.client.PegasusTableInterface.MultiGetSortKeysResult;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;

@Order(2)
public class T02MultiTest extends CompatBase {
  // sort keys a1..a3, b1..b2, c1..c2, x (values "v-<sk>")
  private static final List<String> KEYS = Arrays.asList("a1", "a2", "a3", "b1", "b2", "c1", "c2", "x");

  private static byte[] fill(String tag) throws PException {
    byte[] hk = b(key(tag));
    List<Pair<byte[], byte[]>> l = new ArrayList<>();
    for (String k : KEYS) {
      l.add(Pair.of(b(k), b("v-" + k)));
    }
    table.multiSet(hk, l, TIMEOUT_MS);
    return hk;
  }

  private static Map<String, String> expect(String... sks) {
    Map<String, String> m = new TreeMap<>();
    for (String k : sks) {
      m.put(k, "v-" + k);
    }
    return m;
  }

  @Test
  @Order(1)
  void multiSetMultiGet() throws PException {
    byte[] hk = fill("multi");
    assertEquals(KEYS.size(), table.sortKeyCount(hk, TIMEOUT_MS));

    // all sort keys (empty list), in order
    MultiGetResult r = table.multiGet(hk, new ArrayList<>(), TIMEOUT_MS);
    assertTrue(r.isAllFetched());
    assertEquals(KEYS, sortKeys(r.getValues()));
    assertEquals(expect(KEYS.toArray(new String[0])), asMap(r.getValues()));

    // given sort keys, one missing
    r = table.multiGet(hk, Arrays.asList(b("b2"), b("a1"), b("nope")), TIMEOUT_MS);
    assertTrue(r.isAllFetched());
    assertEquals(expect("a1", "b2"), asMap(r.getValues()));

    // a count limit on the whole hash key
    r = table.multiGet(hk, new ArrayList<>(), 3, 1000000, TIMEOUT_MS);
    assertFalse(r.isAllFetched(), "3 of 8 records fetched");
    assertEquals(Arrays.asList("a1", "a2", "a3"), sortKeys(r.getValues()));

    // a missing hash key
    r = table.multiGet(b(key("multi-none")), new ArrayList<>(), TIMEOUT_MS);
    assertTrue(r.isAllFetched());
    assertEquals(0, r.getValues().size());

    // the client-level API
    List<Pair<byte[], byte[]>> out = new ArrayList<>();
    assertTrue(client.multiGet(TABLE, hk, Arrays.asList(b("c1"), b("x")), out));
    assertEquals(expect("c1", "x"), asMap(out));

    // sort keys only
    MultiGetSortKeysResult sk = table.multiGetSortKeys(hk, TIMEOUT_MS);
    assertTrue(sk.allFetched);
    List<String> names = new ArrayList<>();
    for (byte[] k : sk.keys) {
      names.add(s(k));
    }
    assertEquals(KEYS, names);
    sk = table.multiGetSortKeys(hk, 2, 1000000, TIMEOUT_MS);
    assertFalse(sk.allFetched);
    assertEquals(2, sk.keys.size());
  }

  @Test
  @Order(2)
  void multiGetRange() throws PException {
    byte[] hk = fill("range");
    MultiGetOptions o = new MultiGetOptions();
    MultiGetResult r = table.multiGet(hk, b("a2"), b("c1"), o, TIMEOUT_MS);
    assertEquals(Arrays.asList("a2", "a3", "b1", "b2"), sortKeys(r.getValues()), "[a2, c1)");
    assertTrue(r.isAllFetched());

    o = new MultiGetOptions();
    o.startInclusive = false;
    o.stopInclusive = true;
    r = table.multiGet(hk, b("a2"), b("c1"), o, TIMEOUT_MS);
    assertEquals(Arrays.asList("a3", "b1", "b2", "c1"), sortKeys(r.getValues()), "(a2, c1]");

    o = new MultiGetOptions();
    r = table.multiGet(hk, b("b"), new byte[0], o, TIMEOUT_MS);
    assertEquals(Arrays.asList("b1", "b2", "c1", "c2", "x"), sortKeys(r.getValues()), "[b, end)");

    o = new MultiGetOptions();
    o.sortKeyFilterType = FilterType.FT_MATCH_PREFIX;
    o.sortKeyFilterPattern = b("a");
    r = table.multiGet(hk, new byte[0], new byte[0], o, TIMEOUT_MS);
    assertEquals(expect("a1", "a2", "a3"), asMap(r.getValues()), "prefix a");

    o = new MultiGetOptions();
    o.sortKeyFilterType = FilterType.FT_MATCH_POSTFIX;
    o.sortKeyFilterPattern = b("2");
    r = table.multiGet(hk, new byte[0], new byte[0], o, TIMEOUT_MS);
    assertEquals(expect("a2", "b2", "c2"), asMap(r.getValues()), "postfix 2");

    o = new MultiGetOptions();
    o.sortKeyFilterType = FilterType.FT_MATCH_ANYWHERE;
    o.sortKeyFilterPattern = b("1");
    r = table.multiGet(hk, new byte[0], new byte[0], o, 2, 1000000, TIMEOUT_MS);
    assertEquals(Arrays.asList("a1", "b1"), sortKeys(r.getValues()), "anywhere 1, at most 2");
    assertFalse(r.isAllFetched());

    // reverse: the last records of the range, returned in ascending order
    o = new MultiGetOptions();
    o.reverse = true;
    r = table.multiGet(hk, new byte[0], new byte[0], o, 3, 1000000, TIMEOUT_MS);
    assertEquals(Arrays.asList("c1", "c2", "x"), sortKeys(r.getValues()), "reverse, at most 3");
    assertFalse(r.isAllFetched());
    o = new MultiGetOptions();
    o.reverse = true;
    r = table.multiGet(hk, new byte[0], new byte[0], o, TIMEOUT_MS);
    assertEquals(KEYS, sortKeys(r.getValues()), "reverse, all");
    assertTrue(r.isAllFetched());

    // noValue: keys with empty values
    o = new MultiGetOptions();
    o.noValue = true;
    r = table.multiGet(hk, b("b1"), b("c2"), o, TIMEOUT_MS);
    assertEquals(Arrays.asList("b1", "b2", "c1"), sortKeys(r.getValues()), "noValue [b1, c2)");
    for (Pair<byte[], byte[]> p : r.getValues()) {
      assertEquals(0, p.getRight().length, "noValue returned a value for " + s(p.getLeft()));
    }

    // an empty range
    o = new MultiGetOptions();
    r = table.multiGet(hk, b("c1"), b("a1"), o, TIMEOUT_MS);
    assertEquals(0, r.getValues().size(), "[c1, a1)");
  }

  @Test
  @Order(3)
  void multiDelAndDelRange() throws PException {
    byte[] hk = fill("mdel");
    table.multiDel(hk, Arrays.asList(b("a1"), b("b2"), b("missing")), TIMEOUT_MS);
    assertNull(table.get(hk, b("a1"), TIMEOUT_MS));
    assertNull(table.get(hk, b("b2"), TIMEOUT_MS));
    assertEquals(KEYS.size() - 2, table.sortKeyCount(hk, TIMEOUT_MS));
    MultiGetResult r = table.multiGet(hk, new ArrayList<>(), TIMEOUT_MS);
    assertEquals(expect("a2", "a3", "b1", "c1", "c2", "x"), asMap(r.getValues()));

    // delRange [a3, c2): a3, b1, c1
    table.delRange(hk, b("a3"), b("c2"), new DelRangeOptions(), TIMEOUT_MS);
    r = table.multiGet(hk, new ArrayList<>(), TIMEOUT_MS);
    assertEquals(expect("a2", "c2", "x"), asMap(r.getValues()));

    // multiDel of everything left, then the hash key is empty
    table.multiDel(hk, Arrays.asList(b("a2"), b("c2"), b("x")), TIMEOUT_MS);
    assertEquals(0, table.sortKeyCount(hk, TIMEOUT_MS));
    assertEquals(0, table.multiGet(hk, new ArrayList<>(), TIMEOUT_MS).getValues().size());
  }

  @Test
  @Order(4)
  void multiSetOverwritesAndTtl() throws PException {
    byte[] hk = fill("mset2");
    table.multiSet(hk, kvs("a1", "new-a1", "z9", "v-z9"), 3600, TIMEOUT_MS);
    assertValue("new-a1", table.get(hk, b("a1"), TIMEOUT_MS), "overwritten by multiSet");
    int ttl = table.ttl(hk, b("z9"), TIMEOUT_MS);
    assertTrue(ttl > 3500 && ttl <= 3600, "ttl of a multiSet record with 3600 s: " + ttl);
    assertEquals(-1, table.ttl(hk, b("a2"), TIMEOUT_MS));
    assertEquals(KEYS.size() + 1, table.sortKeyCount(hk, TIMEOUT_MS));
  }
}
