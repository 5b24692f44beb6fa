// T05IncrCasTest: the read-modify-write operations through the upstream Java client: incr (as in
// upstream TestIncr, with its TTL rules, non-integer and overflow errors), checkAndSet with the
// check types, checkAndMutate (as in upstream TestCheckAndMutate) and compareExchange.
package org.apache.pegasus.rscompat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.util.ArrayList;
import java.util.List;
import org.apache.pegasus.client.CheckAndMutateOptions;
import org.apache.pegasus.client.CheckAndSetOptions;
import org.apache.pegasus.client.CheckType;
import org.apache.pegasus.client.Mutations;
import org.apache.pegasus.client.PException;
import org.apache.pegasus.client.PegasusTableInterface.CheckAndMutateResult;
import org.apache.pegasus.client.PegasusTableInterface.CheckAndSetResult;
import org.apache.pegasus.client.PegasusTableInterface.CompareExchangeResult;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;

@Order(5)
public class T05IncrCasTest extends CompatBase {

  /** upstream TestIncr.testIncr. */
  @Test
  @Order(1)
  void incr() throws PException {
    byte[] hk = b(key("incr"));
    byte[] sk = b("0");
    table.set(hk, sk, new byte[0], TIMEOUT_MS);
    assertEquals(100, table.incr(hk, sk, 100, TIMEOUT_MS), "incr on an empty value");
    assertEquals(-1, table.ttl(hk, sk, TIMEOUT_MS));
    assertEquals(100, table.incr(hk, sk, 0, TIMEOUT_MS), "incr 0");
    assertEquals(99, table.incr(hk, sk, -1, TIMEOUT_MS), "incr -1");
    assertValue("99", table.get(hk, sk, TIMEOUT_MS), "stored as decimal text");
    table.del(hk, sk, TIMEOUT_MS);
    assertEquals(200, table.incr(hk, sk, 200, TIMEOUT_MS), "incr on a missing record");
    assertEquals(-1, table.ttl(hk, sk, TIMEOUT_MS));

    assertEquals(201, table.incr(hk, sk, 1, 10, TIMEOUT_MS), "incr with ttl 10");
    int ttl = table.ttl(hk, sk, TIMEOUT_MS);
    assertTrue(ttl > 0 && ttl <= 10, "ttl after incr with ttl 10: " + ttl);
    assertEquals(202, table.incr(hk, sk, 1, TIMEOUT_MS), "incr with ttl 0 keeps the ttl");
    ttl = table.ttl(hk, sk, TIMEOUT_MS);
    assertTrue(ttl > 0 && ttl <= 10, "ttl after incr with ttl 0: " + ttl);
    assertEquals(203, table.incr(hk, sk, 1, 20, TIMEOUT_MS));
    ttl = table.ttl(hk, sk, TIMEOUT_MS);
    assertTrue(ttl > 10 && ttl <= 20, "ttl after incr with ttl 20: " + ttl);
    assertEquals(204, table.incr(hk, sk, 1, -1, TIMEOUT_MS), "incr with ttl -1 clears the ttl");
    assertEquals(-1, table.ttl(hk, sk, TIMEOUT_MS));

    // the client-level API
    assertEquals(210, client.incr(TABLE, hk, sk, 6));
  }

  @Test
  @Order(2)
  void incrErrors() throws PException {
    byte[] hk = b(key("incr-err"));
    table.set(hk, b("text"), b("abc"), TIMEOUT_MS);
    expectRocksdbError(() -> table.incr(hk, b("text"), 1, TIMEOUT_MS), "incr on a non-integer");
    assertValue("abc", table.get(hk, b("text"), TIMEOUT_MS), "value after a failed incr");

    table.set(hk, b("max"), b(Long.toString(Long.MAX_VALUE)), TIMEOUT_MS);
    expectRocksdbError(() -> table.incr(hk, b("max"), 1, TIMEOUT_MS), "incr overflow");
    assertValue(Long.toString(Long.MAX_VALUE), table.get(hk, b("max"), TIMEOUT_MS), "unchanged");
    assertEquals(Long.MAX_VALUE - 1, table.incr(hk, b("max"), -1, TIMEOUT_MS));
  }

  interface Call {
    Object run() throws PException;
  }

  /** The call must fail with the server's kInvalidArgument (the client says "rocksdb error: 4"). */
  static void expectRocksdbError(Call c, String what) {
    try {
      Object r = c.run();
      fail(what + ": expected an error, got " + r);
    } catch (PException e) {
      assertTrue(e.getMessage() != null && e.getMessage().contains("rocksdb error: 4"),
          what + ": unexpected error " + e);
    }
  }

  @Test
  @Order(3)
  void checkAndSetNotExistAndExist() throws PException {
    byte[] hk = b(key("cas"));
    CheckAndSetOptions o = new CheckAndSetOptions();
    o.returnCheckValue = true;
    CheckAndSetResult r =
        table.checkAndSet(hk, b("k"), CheckType.CT_VALUE_NOT_EXIST, null, b("k"), b("v1"), o,
            TIMEOUT_MS);
    assertTrue(r.isSetSucceed());
    assertTrue(r.isCheckValueReturned());
    assertFalse(r.isCheckValueExist());
    assertValue("v1", table.get(hk, b("k"), TIMEOUT_MS), "set by check_and_set");

    r = table.checkAndSet(hk, b("k"), CheckType.CT_VALUE_NOT_EXIST, null, b("k"), b("v2"), o,
        TIMEOUT_MS);
    assertFalse(r.isSetSucceed());
    assertTrue(r.isCheckValueExist());
    assertValue("v1", r.getCheckValue(), "check value");
    assertValue("v1", table.get(hk, b("k"), TIMEOUT_MS), "not changed by a failed check");

    // no check value asked for
    o.returnCheckValue = false;
    r = table.checkAndSet(hk, b("k"), CheckType.CT_VALUE_EXIST, null, b("k"), b("v3"), o,
        TIMEOUT_MS);
    assertTrue(r.isSetSucceed());
    assertFalse(r.isCheckValueReturned());

    // set a different sort key, with a TTL
    o = new CheckAndSetOptions();
    o.setValueTTLSeconds = 3600;
    r = table.checkAndSet(hk, b("k"), CheckType.CT_VALUE_BYTES_EQUAL, b("v3"), b("other"),
        b("o1"), o, TIMEOUT_MS);
    assertTrue(r.isSetSucceed());
    assertValue("o1", table.get(hk, b("other"), TIMEOUT_MS), "set on another sort key");
    int ttl = table.ttl(hk, b("other"), TIMEOUT_MS);
    assertTrue(ttl > 3500 && ttl <= 3600, "ttl of the check_and_set value: " + ttl);
    assertEquals(-1, table.ttl(hk, b("k"), TIMEOUT_MS));

    // empty value: exists, but NOT_EXIST_OR_EMPTY and NOT_EMPTY see it as empty
    table.set(hk, b("e"), new byte[0], TIMEOUT_MS);
    o = new CheckAndSetOptions();
    o.returnCheckValue = true;
    r = table.checkAndSet(hk, b("e"), CheckType.CT_VALUE_NOT_EMPTY, null, b("e"), b("x"), o,
        TIMEOUT_MS);
    assertFalse(r.isSetSucceed());
    assertTrue(r.isCheckValueExist());
    r = table.checkAndSet(hk, b("e"), CheckType.CT_VALUE_NOT_EXIST_OR_EMPTY, null, b("e"),
        b("filled"), o, TIMEOUT_MS);
    assertTrue(r.isSetSucceed());
    assertValue("filled", table.get(hk, b("e"), TIMEOUT_MS), "after NOT_EXIST_OR_EMPTY");
  }

  @Test
  @Order(4)
  void checkAndSetCompareTypes() throws PException {
    byte[] hk = b(key("cas-types"));
    table.set(hk, b("s"), b("hello world"), TIMEOUT_MS);
    table.set(hk, b("i"), b("10"), TIMEOUT_MS);
    Object[][] cases = {
      {"s", CheckType.CT_VALUE_MATCH_ANYWHERE, "o w", true},
      {"s", CheckType.CT_VALUE_MATCH_ANYWHERE, "xyz", false},
      {"s", CheckType.CT_VALUE_MATCH_PREFIX, "hello", true},
      {"s", CheckType.CT_VALUE_MATCH_PREFIX, "world", false},
      {"s", CheckType.CT_VALUE_MATCH_POSTFIX, "world", true},
      {"s", CheckType.CT_VALUE_MATCH_POSTFIX, "hello", false},
      {"s", CheckType.CT_VALUE_BYTES_LESS, "hello worle", true},
      {"s", CheckType.CT_VALUE_BYTES_LESS, "hello world", false},
      {"s", CheckType.CT_VALUE_BYTES_LESS_OR_EQUAL, "hello world", true},
      {"s", CheckType.CT_VALUE_BYTES_EQUAL, "hello world", true},
      {"s", CheckType.CT_VALUE_BYTES_EQUAL, "hello", false},
      {"s", CheckType.CT_VALUE_BYTES_GREATER_OR_EQUAL, "hello world", true},
      {"s", CheckType.CT_VALUE_BYTES_GREATER, "hello worlc", true},
      {"s", CheckType.CT_VALUE_BYTES_GREATER, "hello world", false},
      {"i", CheckType.CT_VALUE_INT_LESS, "20", true},
      {"i", CheckType.CT_VALUE_INT_LESS, "10", false},
      {"i", CheckType.CT_VALUE_INT_LESS_OR_EQUAL, "10", true},
      {"i", CheckType.CT_VALUE_INT_EQUAL, "10", true},
      {"i", CheckType.CT_VALUE_INT_EQUAL, "11", false},
      {"i", CheckType.CT_VALUE_INT_GREATER_OR_EQUAL, "10", true},
      {"i", CheckType.CT_VALUE_INT_GREATER, "9", true},
      {"i", CheckType.CT_VALUE_INT_GREATER, "10", false},
    };
    List<String> wrong = new ArrayList<>();
    CheckAndSetOptions o = new CheckAndSetOptions();
    o.returnCheckValue = true;
    int n = 0;
    for (Object[] c : cases) {
      String out = "out-" + (n++);
      CheckAndSetResult r =
          table.checkAndSet(hk, b((String) c[0]), (CheckType) c[1], b((String) c[2]), b(out),
              b("set"), o, TIMEOUT_MS);
      boolean want = (Boolean) c[3];
      boolean stored = table.get(hk, b(out), TIMEOUT_MS) != null;
      if (r.isSetSucceed() != want || stored != want || !r.isCheckValueExist()) {
        wrong.add(c[1] + " " + c[2] + ": setSucceed=" + r.isSetSucceed() + " stored=" + stored);
      }
    }
    assertTrue(wrong.isEmpty(), "check types with the wrong outcome: " + wrong);

    // a missing check record fails a compare, it is not an error
    CheckAndSetResult r =
        table.checkAndSet(hk, b("nope"), CheckType.CT_VALUE_INT_LESS, b("5"), b("x"), b("x"), o,
            TIMEOUT_MS);
    assertFalse(r.isSetSucceed());
    assertFalse(r.isCheckValueExist());
    // int compare on a non-integer value or operand: kInvalidArgument
    expectRocksdbError(
        () -> table.checkAndSet(hk, b("s"), CheckType.CT_VALUE_INT_LESS, b("5"), b("x"), b("x"),
            new CheckAndSetOptions(), TIMEOUT_MS),
        "int compare on a non-integer value");
    expectRocksdbError(
        () -> table.checkAndSet(hk, b("i"), CheckType.CT_VALUE_INT_LESS, b("abc"), b("x"), b("x"),
            new CheckAndSetOptions(), TIMEOUT_MS),
        "int compare with a non-integer operand");
    assertNull(table.get(hk, b("x"), TIMEOUT_MS));
  }

  /** The gist of upstream TestCheckAndMutate.testValueNotExist / testValueExist. */
  @Test
  @Order(5)
  void checkAndMutate() throws PException {
    byte[] hk = b(key("cam"));
    CheckAndMutateOptions o = new CheckAndMutateOptions();
    o.returnCheckValue = true;
    Mutations m = new Mutations();
    m.set(b("k1"), b("v1"));
    CheckAndMutateResult r =
        table.checkAndMutate(hk, b("k1"), CheckType.CT_VALUE_NOT_EXIST, null, m, o, TIMEOUT_MS);
    assertTrue(r.isMutateSucceed());
    assertTrue(r.isCheckValueReturned());
    assertFalse(r.isCheckValueExist());
    assertValue("v1", table.get(hk, b("k1"), TIMEOUT_MS), "k1");

    // several mutations of one key in one request: the last one wins, or none applies
    m.set(b("k1"), b("v2"));
    r = table.checkAndMutate(hk, b("k1"), CheckType.CT_VALUE_NOT_EXIST, null, m, o, TIMEOUT_MS);
    assertFalse(r.isMutateSucceed());
    assertTrue(r.isCheckValueExist());
    assertValue("v1", r.getCheckValue(), "check value");
    assertValue("v1", table.get(hk, b("k1"), TIMEOUT_MS), "k1 unchanged");
    r = table.checkAndMutate(hk, b("k1"), CheckType.CT_VALUE_EXIST, null, m, o, TIMEOUT_MS);
    assertTrue(r.isMutateSucceed());
    assertValue("v2", table.get(hk, b("k1"), TIMEOUT_MS), "k1 = last mutation");

    // sets with a TTL and deletes of other sort keys, checked on k1
    table.set(hk, b("gone"), b("x"), TIMEOUT_MS);
    Mutations m2 = new Mutations();
    m2.set(b("k2"), b("v-k2"), 3600);
    m2.set(b("k3"), b("v-k3"));
    m2.del(b("gone"));
    r = table.checkAndMutate(hk, b("k1"), CheckType.CT_VALUE_BYTES_EQUAL, b("v2"), m2,
        new CheckAndMutateOptions(), TIMEOUT_MS);
    assertTrue(r.isMutateSucceed());
    assertFalse(r.isCheckValueReturned());
    assertValue("v-k2", table.get(hk, b("k2"), TIMEOUT_MS), "k2");
    assertValue("v-k3", table.get(hk, b("k3"), TIMEOUT_MS), "k3");
    assertNull(table.get(hk, b("gone"), TIMEOUT_MS), "deleted by check_and_mutate");
    int ttl = table.ttl(hk, b("k2"), TIMEOUT_MS);
    assertTrue(ttl > 3500 && ttl <= 3600, "ttl of a check_and_mutate set: " + ttl);
    assertEquals(-1, table.ttl(hk, b("k3"), TIMEOUT_MS));

    // a failing check applies nothing
    Mutations m3 = new Mutations();
    m3.del(b("k2"));
    m3.set(b("k4"), b("v4"));
    r = table.checkAndMutate(hk, b("k1"), CheckType.CT_VALUE_MATCH_PREFIX, b("zz"), m3, o,
        TIMEOUT_MS);
    assertFalse(r.isMutateSucceed());
    assertValue("v2", r.getCheckValue(), "check value");
    assertValue("v-k2", table.get(hk, b("k2"), TIMEOUT_MS), "k2 kept");
    assertNull(table.get(hk, b("k4"), TIMEOUT_MS), "k4 not set");
    expectRocksdbError(
        () -> table.checkAndMutate(hk, b("k1"), CheckType.CT_VALUE_INT_GREATER, b("1"), m3,
            new CheckAndMutateOptions(), TIMEOUT_MS),
        "check_and_mutate int compare on a non-integer value");
  }

  @Test
  @Order(6)
  void compareExchange() throws PException {
    byte[] hk = b(key("cex"));
    CompareExchangeResult r = table.compareExchange(hk, b("k"), b("a"), b("b"), 0, TIMEOUT_MS);
    assertFalse(r.isSetSucceed(), "compareExchange on a missing record");
    assertNull(r.getActualValue());
    assertNull(table.get(hk, b("k"), TIMEOUT_MS));

    table.set(hk, b("k"), b("a"), TIMEOUT_MS);
    r = table.compareExchange(hk, b("k"), b("a"), b("b"), 0, TIMEOUT_MS);
    assertTrue(r.isSetSucceed());
    assertValue("b", table.get(hk, b("k"), TIMEOUT_MS), "after a successful exchange");
    r = table.compareExchange(hk, b("k"), b("a"), b("c"), 0, TIMEOUT_MS);
    assertFalse(r.isSetSucceed());
    assertValue("b", r.getActualValue(), "actual value");
    r = table.compareExchange(hk, b("k"), b("b"), b("d"), 3600, TIMEOUT_MS);
    assertTrue(r.isSetSucceed());
    int ttl = table.ttl(hk, b("k"), TIMEOUT_MS);
    assertTrue(ttl > 3500 && ttl <= 3600, "ttl after compareExchange with 3600 s: " + ttl);
  }
}
