// SummaryListener: JUnit Platform listener (registered in META-INF/services) that times every
// test and, at the end, writes a summary (tests run/passed/failed/skipped, wall time including the
// onebox start and stop, failures, and the report lines of Log.report) to
// target/rscompat-logs/summary.txt and stdout; run-tests.sh prints that file.
package org.apache.pegasus.rscompat;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.junit.platform.engine.TestExecutionResult;
import org.junit.platform.launcher.TestExecutionListener;
import org.junit.platform.launcher.TestIdentifier;
import org.junit.platform.launcher.TestPlan;

public class SummaryListener implements TestExecutionListener {
  private long planStart;
  private final Map<String, Long> starts = new ConcurrentHashMap<>();
  private final List<String> lines = new ArrayList<>();
  private final List<String> failures = new ArrayList<>();
  private int run;
  private int passed;
  private int failed;
  private int skipped;
  private TestPlan plan;

  @Override
  public void testPlanExecutionStarted(TestPlan testPlan) {
    plan = testPlan;
    planStart = System.nanoTime();
    try {
      Files.createDirectories(Onebox.logDir());
      Files.deleteIfExists(Log.reportFile());
    } catch (IOException e) {
      // the report is best effort
    }
  }

  private String name(TestIdentifier id) {
    String cls = plan.getParent(id).map(TestIdentifier::getDisplayName).orElse("");
    return cls.isEmpty() ? id.getDisplayName() : cls + "." + id.getDisplayName();
  }

  @Override
  public void executionStarted(TestIdentifier id) {
    starts.put(id.getUniqueId(), System.nanoTime());
    if (id.isTest()) {
      Log.info("test " + name(id) + " ...");
    }
  }

  @Override
  public void executionSkipped(TestIdentifier id, String reason) {
    if (id.isTest()) {
      skipped++;
      synchronized (lines) {
        lines.add(String.format("  SKIP %-62s %s", name(id), reason));
      }
    }
  }

  @Override
  public void executionFinished(TestIdentifier id, TestExecutionResult result) {
    Long t0 = starts.remove(id.getUniqueId());
    double secs = t0 == null ? 0 : (System.nanoTime() - t0) / 1e9;
    boolean ok = result.getStatus() == TestExecutionResult.Status.SUCCESSFUL;
    String why = result.getThrowable().map(t -> firstLine(String.valueOf(t))).orElse("");
    synchronized (lines) {
      if (id.isTest()) {
        run++;
        if (ok) {
          passed++;
        } else {
          failed++;
          failures.add(name(id) + ": " + why);
        }
        lines.add(String.format("  %-4s %-62s %6.1f s", ok ? "ok" : "FAIL", name(id), secs));
        Log.info("test " + name(id) + (ok ? " ok" : " FAILED: " + why)
            + String.format(" (%.1f s)", secs));
      } else if (!ok && id.getParentId().isPresent()) {
        // a class whose set-up or tear-down failed
        failures.add(id.getDisplayName() + " (container): " + why);
        lines.add(String.format("  FAIL %-62s (set-up/tear-down) %s", id.getDisplayName(), why));
      }
    }
  }

  private static String firstLine(String s) {
    int nl = s.indexOf('\n');
    s = nl < 0 ? s : s.substring(0, nl);
    return s.length() > 400 ? s.substring(0, 400) + "..." : s;
  }

  @Override
  public void testPlanExecutionFinished(TestPlan testPlan) {
    double secs = (System.nanoTime() - planStart) / 1e9;
    StringBuilder sb = new StringBuilder();
    sb.append("==== Java client (pegasus-client 2.6.0-SNAPSHOT) compat summary ====\n");
    synchronized (lines) {
      for (String l : lines) {
        sb.append(l).append('\n');
      }
    }
    Path report = Log.reportFile();
    if (Files.exists(report)) {
      sb.append("-- report --\n");
      try {
        for (String l : Files.readAllLines(report, StandardCharsets.UTF_8)) {
          sb.append("  ").append(l).append('\n');
        }
      } catch (IOException e) {
        sb.append("  (cannot read ").append(report).append(")\n");
      }
    }
    if (!failures.isEmpty()) {
      sb.append("-- failures --\n");
      for (String f : failures) {
        sb.append("  ").append(f).append('\n');
      }
    }
    sb.append(String.format("tests run: %d, passed: %d, failed: %d, skipped: %d%s; time %.1f s "
        + "(with the onebox start and stop)%n", run, passed, failed, skipped,
        failures.size() > failed ? ", set-up failures: " + (failures.size() - failed) : "", secs));
    String text = sb.toString();
    System.out.print(text);
    try {
      Files.writeString(Onebox.logDir().resolve("summary.txt"), text, StandardCharsets.UTF_8);
    } catch (IOException e) {
      System.err.println("cannot write the summary: " + e);
    }
  }
}
