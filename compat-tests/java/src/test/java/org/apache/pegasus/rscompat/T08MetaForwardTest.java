// T08MetaForwardTest: meta forwarding with 3 metas: the upstream client configured with a meta
// list whose first meta is not the leader (found with `pegasus_server leader`), and clients given
// only one non-leader meta, must open the table and read and write on every partition.
package org.apache.pegasus.rscompat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import org.apache.pegasus.client.PException;
import org.apache.pegasus.client.PegasusClientInterface;
import org.apache.pegasus.client.PegasusScannerInterface;
import org.apache.pegasus.client.PegasusTableInterface;
import org.apache.pegasus.client.ScanOptions;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;

@Order(8)
public class T08MetaForwardTest extends CompatBase {

  private static List<String> nonLeaders(String leader) {
    List<String> l = new ArrayList<>(box().metas());
    l.remove(leader);
    return l;
  }

  /** Writes and reads a record on every partition, and scans them back. */
  private static void exercise(PegasusClientInterface c, String tag) throws PException {
    PegasusTableInterface t = openReady(c, 60_000);
    for (int p = 0; p < Onebox.PARTITION_COUNT; p++) {
      byte[] hk = b(hashKeyInPartition(key(tag), p));
      t.set(hk, b("s"), b(tag + p), TIMEOUT_MS);
      t.multiSet(hk, kvs("m1", "a", "m2", "b"), TIMEOUT_MS);
    }
    for (int p = 0; p < Onebox.PARTITION_COUNT; p++) {
      byte[] hk = b(hashKeyInPartition(key(tag), p));
      assertValue(tag + p, t.get(hk, b("s"), TIMEOUT_MS), tag + " partition " + p);
      assertEquals(3, t.sortKeyCount(hk, TIMEOUT_MS));
    }
    ScanOptions o = new ScanOptions();
    o.hashKeyFilterType = org.apache.pegasus.client.FilterType.FT_MATCH_PREFIX;
    o.hashKeyFilterPattern = b(key(tag) + "-");
    int n = 0;
    for (PegasusScannerInterface sc : t.getUnorderedScanners(8, o)) {
      while (sc.next() != null) {
        n++;
      }
      sc.close();
    }
    assertEquals(3 * Onebox.PARTITION_COUNT, n, tag + ": records scanned");
  }

  @Test
  @Order(1)
  void firstMetaIsNotTheLeader() throws PException {
    String leader = box().leader(box().metas());
    assertNotNull(leader, "pegasus_server leader found no leader among " + box().metas());
    List<String> order = nonLeaders(leader);
    order.add(leader);
    Log.report("meta forwarding: leader " + leader + "; client meta list " + order);
    PegasusClientInterface c = newClient(String.join(",", order));
    try {
      exercise(c, "fwd-list");
      // a second table handle opens through the same (now known) leader
      PegasusTableInterface t2 = c.openTable(TABLE);
      assertTrue(t2.exist(b(hashKeyInPartition(key("fwd-list"), 0)), b("s"), TIMEOUT_MS));
    } finally {
      c.close();
    }
  }

  @Test
  @Order(2)
  void onlyANonLeaderMeta() throws PException {
    String leader = box().leader(box().metas());
    assertNotNull(leader);
    for (String m : nonLeaders(leader)) {
      PegasusClientInterface c = newClient(m);
      try {
        exercise(c, "fwd-only-" + Onebox.metaIndex(m));
      } finally {
        c.close();
      }
    }
  }
}
