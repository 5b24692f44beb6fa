// T04AsyncTest: the Java client's async API (openTable(...).asyncSet etc.) and pipelining: many
// requests in flight at once, and ordered writes on one connection as in upstream
// TestBatch.testBatchCustomRequest (async incr +1 then +2 on one key, not waiting: [1, 3]).
package org.apache.pegasus.rscompat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import org.apache.pegasus.client.CheckAndMutateOptions;
import org.apache.pegasus.client.CheckAndSetOptions;
import org.apache.pegasus.client.CheckType;
import org.apache.pegasus.client.Mutations;
import org.apache.pegasus.client.PException;
import org.apache.pegasus.client.PegasusTableInterface.CheckAndMutateResult;
import org.apache.pegasus.client.PegasusTableInterface.CheckAndSetResult;
import org.apache.pegasus.client.PegasusTableInterface.CompareExchangeResult;
import org.apache.pegasus.client.PegasusTableInterface.MultiGetResult;
import org.apache.pegasus.client.PegasusTableInterface.MultiGetSortKeysResult;
import org.apache.pegasus.client.request.BatchWithResponse;
import org.apache.pegasus.thirdparty.io.netty.util.concurrent.Future;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;

@Order(4)
public class T04AsyncTest extends CompatBase {

  /** Waits for an async result; a failed future rethrows its cause. */
  static <T> T await(Future<T> f) throws Exception {
    try {
      return f.get(3L * TIMEOUT_MS, TimeUnit.MILLISECONDS);
    } catch (ExecutionException e) {
      throw e.getCause() instanceof Exception ? (Exception) e.getCause() : e;
    } catch (TimeoutException e) {
      throw new AssertionError("an async call did not complete in " + 3 * TIMEOUT_MS + " ms");
    }
  }

  @Test
  @Order(1)
  void everyAsyncOperation() throws Exception {
    byte[] hk = b(key("async"));
    await(table.asyncSet(hk, b("k1"), b("v1"), TIMEOUT_MS));
    await(table.asyncSet(hk, b("k2"), b("v2"), 3600, TIMEOUT_MS));
    assertValue("v1", await(table.asyncGet(hk, b("k1"), TIMEOUT_MS)), "asyncGet");
    assertTrue(await(table.asyncExist(hk, b("k2"), TIMEOUT_MS)));
    int ttl = await(table.asyncTTL(hk, b("k2"), TIMEOUT_MS));
    assertTrue(ttl > 3500 && ttl <= 3600, "asyncTTL: " + ttl);
    assertEquals(-1, (int) await(table.asyncTTL(hk, b("k1"), TIMEOUT_MS)));
    assertEquals(-2, (int) await(table.asyncTTL(hk, b("none"), TIMEOUT_MS)));

    await(table.asyncMultiSet(hk, kvs("m1", "x1", "m2", "x2", "m3", "x3"), TIMEOUT_MS));
    assertEquals(5L, (long) await(table.asyncSortKeyCount(hk, TIMEOUT_MS)));
    MultiGetResult r =
        await(table.asyncMultiGet(hk, Arrays.asList(b("m1"), b("m3"), b("k1")), TIMEOUT_MS));
    assertEquals(Arrays.asList("k1", "m1", "m3"), sortKeys(r.getValues()));
    MultiGetSortKeysResult sk = await(table.asyncMultiGetSortKeys(hk, TIMEOUT_MS));
    assertEquals(5, sk.keys.size());
    assertTrue(sk.allFetched);

    await(table.asyncMultiDel(hk, Arrays.asList(b("m1"), b("m2")), TIMEOUT_MS));
    await(table.asyncDel(hk, b("k2"), TIMEOUT_MS));
    assertNull(await(table.asyncGet(hk, b("k2"), TIMEOUT_MS)));
    assertFalse(await(table.asyncExist(hk, b("m1"), TIMEOUT_MS)));
    assertEquals(2L, (long) await(table.asyncSortKeyCount(hk, TIMEOUT_MS)));

    assertEquals(5L, (long) await(table.asyncIncr(hk, b("n"), 5, TIMEOUT_MS)));
    assertEquals(3L, (long) await(table.asyncIncr(hk, b("n"), -2, 0, TIMEOUT_MS)));

    CheckAndSetOptions co = new CheckAndSetOptions();
    co.returnCheckValue = true;
    CheckAndSetResult cs =
        await(table.asyncCheckAndSet(hk, b("n"), CheckType.CT_VALUE_INT_EQUAL, b("3"),
            b("n-ok"), b("yes"), co, TIMEOUT_MS));
    assertTrue(cs.isSetSucceed());
    assertTrue(cs.isCheckValueExist());
    assertValue("3", cs.getCheckValue(), "returned check value");
    assertValue("yes", await(table.asyncGet(hk, b("n-ok"), TIMEOUT_MS)), "set by asyncCheckAndSet");

    Mutations mu = new Mutations();
    mu.set(b("cm1"), b("c1"));
    mu.del(b("k1"));
    CheckAndMutateResult cm =
        await(table.asyncCheckAndMutate(hk, b("n-ok"), CheckType.CT_VALUE_BYTES_EQUAL, b("yes"),
            mu, new CheckAndMutateOptions(), TIMEOUT_MS));
    assertTrue(cm.isMutateSucceed());
    assertValue("c1", await(table.asyncGet(hk, b("cm1"), TIMEOUT_MS)), "set by asyncCheckAndMutate");
    assertNull(await(table.asyncGet(hk, b("k1"), TIMEOUT_MS)), "deleted by asyncCheckAndMutate");

    CompareExchangeResult ce =
        await(table.asyncCompareExchange(hk, b("cm1"), b("c1"), b("c2"), 0, TIMEOUT_MS));
    assertTrue(ce.isSetSucceed());
    ce = await(table.asyncCompareExchange(hk, b("cm1"), b("c1"), b("c3"), 0, TIMEOUT_MS));
    assertFalse(ce.isSetSucceed());
    assertValue("c2", ce.getActualValue(), "actual value after a failed compareExchange");
  }

  @Test
  @Order(2)
  void manyInFlight() throws Exception {
    int n = 2000;
    List<Future<Void>> sets = new ArrayList<>(n);
    for (int i = 0; i < n; i++) {
      sets.add(table.asyncSet(b(key("inflight-" + (i % 97))), b("s" + i), b("v" + i), TIMEOUT_MS));
    }
    for (Future<Void> f : sets) {
      await(f);
    }
    List<Future<byte[]>> gets = new ArrayList<>(n);
    for (int i = 0; i < n; i++) {
      gets.add(table.asyncGet(b(key("inflight-" + (i % 97))), b("s" + i), TIMEOUT_MS));
    }
    for (int i = 0; i < n; i++) {
      assertValue("v" + i, await(gets.get(i)), "async get " + i);
    }
  }

  /** upstream TestBatch.testBatchCustomRequest: a BatchWithResponse of two incrs on one key. */
  @Test
  @Order(3)
  void orderedIncrPairs() throws Exception {
    List<String> bad = new ArrayList<>();
    for (int i = 0; i < 200; i++) {
      byte[] hk = b(key("incr-pair-" + i));
      List<long[]> incs = Arrays.asList(new long[] {1}, new long[] {2});
      List<Long> results = new ArrayList<>();
      BatchWithResponse<long[], Long> batch =
          new BatchWithResponse<long[], Long>(table, TIMEOUT_MS) {
            @Override
            protected Future<Long> asyncCommit(long[] inc) {
              return table.asyncIncr(hk, b("sortKeyIncr"), inc[0], timeout);
            }
          };
      batch.commit(incs, results);
      if (results.get(0) != 1L || results.get(1) != 3L) {
        bad.add("pair " + i + ": " + results);
      }
    }
    assertTrue(bad.isEmpty(), "async incr +1 then +2 must give [1, 3]; wrong: " + bad);
  }

  /** All 400 incrs of 200 fresh keys in flight at once; per key still [1, 3]. */
  @Test
  @Order(4)
  void orderedIncrAllInFlight() throws Exception {
    List<Future<Long>> first = new ArrayList<>();
    List<Future<Long>> second = new ArrayList<>();
    for (int i = 0; i < 200; i++) {
      byte[] hk = b(key("incr-flight-" + i));
      first.add(table.asyncIncr(hk, b("c"), 1, TIMEOUT_MS));
      second.add(table.asyncIncr(hk, b("c"), 2, TIMEOUT_MS));
    }
    List<String> bad = new ArrayList<>();
    for (int i = 0; i < 200; i++) {
      long a = await(first.get(i));
      long c = await(second.get(i));
      if (a != 1 || c != 3) {
        bad.add("key " + i + ": [" + a + ", " + c + "]");
      }
    }
    assertTrue(bad.isEmpty(), "async incr +1 then +2 must give [1, 3]; wrong: " + bad);
  }

  @Test
  @Order(5)
  void asyncErrorsArePExceptions() throws Exception {
    byte[] hk = b(key("async-err"));
    await(table.asyncSet(hk, b("text"), b("not-a-number"), TIMEOUT_MS));
    try {
      long v = await(table.asyncIncr(hk, b("text"), 1, TIMEOUT_MS));
      throw new AssertionError("incr on a non-integer value returned " + v);
    } catch (PException e) {
      assertTrue(e.getMessage().contains("rocksdb error: 4"), "incr error: " + e.getMessage());
    }
    assertValue("not-a-number", await(table.asyncGet(hk, b("text"), TIMEOUT_MS)), "unchanged");
  }
}
