// T03BatchTest: the Java client's batch operations (requests fanned out over partitions):
// batchSet/batchGet/batchGet2/batchDel, batchMultiSet/batchMultiGet/batchMultiDel,
// batchGetByPartitions (the batch_get RPC), and the request/* Batch helpers as in upstream TestBatch.
package org.apache.pegasus.rscompat;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.apache.commons.lang3.tuple.Pair;
import org.apache.pegasus.client.HashKeyData;
import org.apache.pegasus.client.PException;
import org.apache.pegasus.client.PegasusTableInterface.MultiGetResult;
import org.apache.pegasus.client.SetItem;
import org.apache.pegasus.client.request.Delete;
import org.apache.pegasus.client.request.DeleteBatch;
import org.apache.pegasus.client.request.Get;
import org.apache.pegasus.client.request.GetBatch;
import org.apache.pegasus.client.request.MultiDelete;
import org.apache.pegasus.client.request.MultiDeleteBatch;
import org.apache.pegasus.client.request.MultiGet;
import org.apache.pegasus.client.request.MultiGetBatch;
import org.apache.pegasus.client.request.MultiSet;
import org.apache.pegasus.client.request.MultiSetBatch;
import org.apache.pegasus.client.request.Set;
import org.apache.pegasus.client.request.SetBatch;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;

@Order(3)
public class T03BatchTest extends CompatBase {

  @Test
  @Order(1)
  void batchSetGetDel() throws PException {
    List<SetItem> items = new ArrayList<>();
    List<Pair<byte[], byte[]>> keys = new ArrayList<>();
    for (int i = 0; i < 40; i++) {
      byte[] hk = b(key("bset-" + i));
      items.add(new SetItem(hk, b("s" + i), b("v" + i), i % 4 == 0 ? 3600 : 0));
      keys.add(Pair.of(hk, b("s" + i)));
    }
    table.batchSet(items, TIMEOUT_MS);

    List<byte[]> values = new ArrayList<>();
    table.batchGet(keys, values, TIMEOUT_MS);
    assertEquals(40, values.size());
    for (int i = 0; i < 40; i++) {
      assertValue("v" + i, values.get(i), "batchGet " + i);
    }
    int ttl = table.ttl(keys.get(4).getLeft(), keys.get(4).getRight(), TIMEOUT_MS);
    assertTrue(ttl > 3500 && ttl <= 3600, "ttl of a batchSet item with 3600 s: " + ttl);

    // delete the even ones; batchGet2 reports each result
    List<Pair<byte[], byte[]>> even = new ArrayList<>();
    for (int i = 0; i < 40; i += 2) {
      even.add(keys.get(i));
    }
    table.batchDel(even, TIMEOUT_MS);
    List<Pair<PException, byte[]>> results = new ArrayList<>();
    int ok = table.batchGet2(keys, results, TIMEOUT_MS);
    assertEquals(40, ok, "batchGet2 success count");
    for (int i = 0; i < 40; i++) {
      assertNull(results.get(i).getLeft(), "batchGet2 error of " + i);
      assertValue(i % 2 == 0 ? null : "v" + i, results.get(i).getRight(), "batchGet2 " + i);
    }

    // batchSet2 / batchDel2 report per-item errors (none here)
    List<PException> errs = new ArrayList<>();
    assertEquals(items.size(), table.batchSet2(items, errs, TIMEOUT_MS));
    for (PException e : errs) {
      assertNull(e);
    }
    errs.clear();
    assertEquals(keys.size(), table.batchDel2(keys, errs, TIMEOUT_MS));
    values.clear();
    table.batchGet(keys, values, TIMEOUT_MS);
    for (byte[] v : values) {
      assertNull(v);
    }
  }

  @Test
  @Order(2)
  void batchMultiSetGetDel() throws PException {
    List<HashKeyData> data = new ArrayList<>();
    for (int i = 0; i < 12; i++) {
      HashKeyData d = new HashKeyData(b(key("bmulti-" + i)));
      for (int j = 0; j < 5; j++) {
        d.addData(b("s" + j), b("v" + i + "-" + j));
      }
      data.add(d);
    }
    table.batchMultiSet(data, 0, TIMEOUT_MS);

    List<Pair<byte[], List<byte[]>>> req = new ArrayList<>();
    for (int i = 0; i < 12; i++) {
      req.add(Pair.of(b(key("bmulti-" + i)), new ArrayList<>())); // all sort keys
    }
    List<HashKeyData> got = new ArrayList<>();
    table.batchMultiGet(req, got, TIMEOUT_MS);
    assertEquals(12, got.size());
    for (int i = 0; i < 12; i++) {
      HashKeyData d = got.get(i);
      assertArrayEquals(b(key("bmulti-" + i)), d.hashKey);
      assertTrue(d.isAllFetched());
      assertEquals(5, d.values.size(), "records of hash key " + i);
      for (int j = 0; j < 5; j++) {
        assertEquals("s" + j, s(d.values.get(j).getLeft()));
        assertEquals("v" + i + "-" + j, s(d.values.get(j).getRight()));
      }
    }

    // delete s0 and s1 of every hash key
    List<Pair<byte[], List<byte[]>>> del = new ArrayList<>();
    for (int i = 0; i < 12; i++) {
      del.add(Pair.of(b(key("bmulti-" + i)), Arrays.asList(b("s0"), b("s1"))));
    }
    table.batchMultiDel(del, TIMEOUT_MS);
    List<Pair<PException, HashKeyData>> got2 = new ArrayList<>();
    assertEquals(12, table.batchMultiGet2(req, got2, TIMEOUT_MS));
    for (int i = 0; i < 12; i++) {
      assertNull(got2.get(i).getLeft());
      assertEquals(Arrays.asList("s2", "s3", "s4"), sortKeys(got2.get(i).getRight().values));
    }
  }

  @Test
  @Order(3)
  void batchGetByPartitions() throws PException {
    List<Pair<byte[], byte[]>> keys = new ArrayList<>();
    for (int i = 0; i < 30; i++) {
      byte[] hk = b(key("bpart-" + i));
      if (i % 3 != 0) {
        table.set(hk, b("s"), b("v" + i), TIMEOUT_MS);
      }
      keys.add(Pair.of(hk, b("s")));
    }
    List<Pair<PException, byte[]>> results = new ArrayList<>();
    int ok = table.batchGetByPartitions(keys, results, TIMEOUT_MS);
    assertEquals(30, results.size());
    for (int i = 0; i < 30; i++) {
      assertNull(results.get(i).getLeft(), "batchGetByPartitions error of " + i);
      assertValue(i % 3 == 0 ? null : "v" + i, results.get(i).getRight(), "record " + i);
    }
    assertEquals(30, ok, "batchGetByPartitions success count");
  }

  /** upstream TestBatch.testBatchSetDelGet / testBatchMultiSetDelGet, without the TTL sleep. */
  @Test
  @Order(4)
  void requestBatches() throws PException {
    List<Set> sets = new ArrayList<>();
    for (int i = 1; i <= 4; i++) {
      Set set = new Set(b(key("rb-" + i)), b("sortKeySet" + i), b("valueSet" + i));
      sets.add(i == 4 ? set.withTTLSeconds(3600) : set);
    }
    new SetBatch(table, TIMEOUT_MS).commit(sets);
    List<Delete> deletes = new ArrayList<>();
    deletes.add(new Delete(b(key("rb-1")), b("sortKeySet1")));
    deletes.add(new Delete(b(key("rb-2")), b("sortKeySet2")));
    new DeleteBatch(table, TIMEOUT_MS).commit(deletes);
    List<Get> gets = new ArrayList<>();
    for (int i = 1; i <= 4; i++) {
      gets.add(new Get(b(key("rb-" + i)), b("sortKeySet" + i)));
    }
    List<byte[]> results = new ArrayList<>();
    new GetBatch(table, TIMEOUT_MS).commit(gets, results);
    assertNull(results.get(0));
    assertNull(results.get(1));
    assertValue("valueSet3", results.get(2), "valueSet3");
    assertValue("valueSet4", results.get(3), "valueSet4 (ttl)");
    List<Pair<PException, byte[]>> withErrors = new ArrayList<>();
    new GetBatch(table, TIMEOUT_MS).commitWaitAllComplete(gets, withErrors);
    assertNull(withErrors.get(2).getLeft());
    assertValue("valueSet3", withErrors.get(2).getRight(), "commitWaitAllComplete");

    List<MultiSet> multiSets = new ArrayList<>();
    for (int i = 0; i < 3; i++) {
      MultiSet ms = new MultiSet(b(key("rbm-" + i)));
      for (int j = 0; j < 3; j++) {
        ms.add(b("sortKeyMultiSet" + j), b("valueMultiSet" + j));
      }
      multiSets.add(ms);
    }
    new MultiSetBatch(table, TIMEOUT_MS).commit(multiSets);
    List<MultiDelete> multiDeletes = new ArrayList<>();
    for (int i = 0; i < 2; i++) {
      MultiDelete md = new MultiDelete(b(key("rbm-" + i)));
      for (int j = 0; j < 3; j++) {
        md.add(b("sortKeyMultiSet" + j));
      }
      multiDeletes.add(md);
    }
    new MultiDeleteBatch(table, TIMEOUT_MS).commit(multiDeletes);
    List<MultiGet> multiGets = new ArrayList<>();
    for (int i = 0; i < 3; i++) {
      MultiGet mg = new MultiGet(b(key("rbm-" + i)));
      for (int j = 0; j < 3; j++) {
        mg.add(b("sortKeyMultiSet" + j));
      }
      multiGets.add(mg);
    }
    List<MultiGetResult> mres = new ArrayList<>();
    new MultiGetBatch(table, TIMEOUT_MS).commit(multiGets, mres);
    assertEquals(0, mres.get(0).getValues().size());
    assertEquals(0, mres.get(1).getValues().size());
    assertTrue(mres.get(2).isAllFetched());
    for (int j = 0; j < 3; j++) {
      assertEquals("sortKeyMultiSet" + j, s(mres.get(2).getValues().get(j).getLeft()));
      assertEquals("valueMultiSet" + j, s(mres.get(2).getValues().get(j).getRight()));
    }
  }
}
