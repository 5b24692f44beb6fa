// Onebox: the private cluster the Java-client suite runs against. It drives ../../run.sh with its
// own ONEBOX_DIR (a temp dir) and ports (metas 27101-27103, replicas 27201-27203, ZooKeeper 27300),
// 3 metas + 3 replicas serving table "temp" with 8 partitions, and stops and clears it at the end.
package org.apache.pegasus.rscompat;

import java.io.File;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.extension.ExtensionContext;

public final class Onebox implements ExtensionContext.Store.CloseableResource {
  // Ports of this suite; the Go suite uses 25600/25800, the Python suites 24600/24800, 26600/26800,
  // 27600/27800, 28600/28800 with ZooKeeper on 23181, and 29600/29800.
  public static final int META_PORT_BASE = 27100;
  public static final int REPLICA_PORT_BASE = 27200;
  public static final int ZK_PORT = 27300;
  public static final int META_COUNT = 3;
  public static final int REPLICA_COUNT = 3;
  public static final String TABLE = "temp";
  public static final int PARTITION_COUNT = 8;

  private final Path repoRoot;
  private final Path runSh;
  private final Path logDir;
  private final Path runLog;
  private final Path base;
  private final Path oneboxDir;
  private final String serverBin;

  Onebox() {
    repoRoot =
        Paths.get(System.getProperty("rscompat.repoRoot", "../..")).toAbsolutePath().normalize();
    String runShEnv = System.getenv("PEGASUS_RUN_SH");
    runSh = runShEnv != null && !runShEnv.isEmpty() ? Paths.get(runShEnv) : repoRoot.resolve("run.sh");
    logDir = logDir();
    runLog = logDir.resolve("run_sh.log");
    try {
      Files.createDirectories(logDir);
      base = Files.createTempDirectory("pegasus-javacompat-");
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    oneboxDir = base.resolve("onebox");
    serverBin = findServerBin();
  }

  /** Where the suite writes its logs and reports (target/rscompat-logs under Maven). */
  public static Path logDir() {
    return Paths.get(System.getProperty("rscompat.logDir", "target/rscompat-logs"))
        .toAbsolutePath()
        .normalize();
  }

  private String findServerBin() {
    String env = System.getenv("PEGASUS_SERVER_BIN");
    if (env != null && !env.isEmpty()) {
      return env;
    }
    String target = System.getenv("CARGO_TARGET_DIR");
    if (target == null || target.isEmpty()) {
      target = System.getProperty("user.home") + "/.cache/pegasus-rs/target";
    }
    for (Path p :
        new Path[] {
          Paths.get(target, "release", "pegasus_server"),
          repoRoot.resolve("target/release/pegasus_server")
        }) {
      if (Files.isExecutable(p)) {
        return p.toString();
      }
    }
    return null; // run.sh builds it
  }

  public void start() {
    Log.info("starting onebox in " + oneboxDir + " (" + META_COUNT + " metas on "
        + metaList() + ", " + REPLICA_COUNT + " replicas from " + (REPLICA_PORT_BASE + 1)
        + ", ZooKeeper on " + ZK_PORT + ", server " + serverBin + ")");
    long t0 = System.nanoTime();
    run(600, "start_onebox", "-m", "" + META_COUNT, "-r", "" + REPLICA_COUNT, "-a", TABLE,
        "-p", "" + PARTITION_COUNT);
    Log.info(String.format("onebox is up after %.1f s", (System.nanoTime() - t0) / 1e9));
  }

  /** The metas as the client takes them: "127.0.0.1:27101,127.0.0.1:27102,127.0.0.1:27103". */
  public String metaList() {
    return String.join(",", metas());
  }

  public List<String> metas() {
    List<String> l = new ArrayList<>();
    for (int i = 1; i <= META_COUNT; i++) {
      l.add(metaAddr(i));
    }
    return l;
  }

  public static String metaAddr(int i) {
    return "127.0.0.1:" + (META_PORT_BASE + i);
  }

  public static String replicaAddr(int i) {
    return "127.0.0.1:" + (REPLICA_PORT_BASE + i);
  }

  /** Index (1-based) of the meta with this address, or -1. */
  public static int metaIndex(String addr) {
    for (int i = 1; i <= META_COUNT; i++) {
      if (metaAddr(i).equals(addr.trim())) {
        return i;
      }
    }
    return -1;
  }

  /** The current leader meta as `pegasus_server leader <metas>` reports it, or null. */
  public String leader(List<String> metas) {
    String bin = serverBinOfOnebox();
    ProcResult r = exec(30, Arrays.asList(bin, "leader", String.join(",", metas)), null);
    if (r.rc != 0 || r.output.isBlank()) {
      return null;
    }
    String[] lines = r.output.trim().split("\n");
    String last = lines[lines.length - 1].trim();
    return metaIndex(last) > 0 ? last : null;
  }

  /** Polls `leader` until a meta other than `not` leads; fails after timeoutMs. */
  public String waitLeader(List<String> metas, String not, long timeoutMs) {
    long deadline = System.currentTimeMillis() + timeoutMs;
    String last = null;
    while (System.currentTimeMillis() < deadline) {
      last = leader(metas);
      if (last != null && !last.equals(not)) {
        return last;
      }
      sleep(300);
    }
    throw new AssertionError(
        "no meta leader" + (not != null ? " other than " + not : "") + " among " + metas
            + " after " + timeoutMs + " ms (last answer: " + last + ")");
  }

  /**
   * Waits until `pegasus_server probe` says every partition has its primary and all its
   * secondaries and answers; returns the milliseconds waited, or -1 after timeoutMs.
   */
  public long waitHealthy(long timeoutMs) {
    long t0 = System.currentTimeMillis();
    while (System.currentTimeMillis() - t0 < timeoutMs) {
      ProcResult r = exec(30, Arrays.asList(serverBinOfOnebox(), "probe", metaList(), TABLE), null);
      if (r.rc == 0) {
        return System.currentTimeMillis() - t0;
      }
      sleep(1000);
    }
    return -1;
  }

  public void stopInstance(String role, int id) {
    Log.info("run.sh stop_onebox_instance " + role + " " + id);
    run(120, "stop_onebox_instance", role, "" + id);
  }

  public void startInstance(String role, int id) {
    Log.info("run.sh start_onebox_instance " + role + " " + id);
    run(300, "start_onebox_instance", role, "" + id);
  }

  private String serverBinOfOnebox() {
    // run.sh links the binary it chose into every instance directory
    Path link = oneboxDir.resolve("meta1/pegasus_server");
    if (Files.exists(link)) {
      return link.toString();
    }
    return serverBin != null ? serverBin : "pegasus_server";
  }

  /** Runs `run.sh args...` with this onebox's environment; its output goes to run_sh.log. */
  public void run(int timeoutSec, String... args) {
    List<String> cmd = new ArrayList<>();
    cmd.add("bash");
    cmd.add(runSh.toString());
    cmd.addAll(Arrays.asList(args));
    appendRunLog(
        String.format("%n==== %s run.sh %s (ONEBOX_DIR=%s)%n", Log.now(), String.join(" ", args),
            oneboxDir));
    ProcResult r = exec(timeoutSec, cmd, runLog.toFile());
    if (r.rc != 0) {
      throw new IllegalStateException(
          "run.sh " + String.join(" ", args) + " exited " + r.rc + "; last lines of " + runLog
              + ":\n" + tail(runLog, 40));
    }
  }

  private ProcResult exec(int timeoutSec, List<String> cmd, File appendTo) {
    ProcessBuilder pb = new ProcessBuilder(cmd);
    Map<String, String> env = pb.environment();
    env.put("ONEBOX_DIR", oneboxDir.toString());
    env.put("META_PORT_BASE", "" + META_PORT_BASE);
    env.put("REPLICA_PORT_BASE", "" + REPLICA_PORT_BASE);
    env.put("ZK_PORT", "" + ZK_PORT);
    env.putIfAbsent("ONEBOX_WAIT_SECONDS", "180");
    if (serverBin != null) {
      env.put("PEGASUS_SERVER_BIN", serverBin);
    }
    pb.directory(repoRoot.toFile());
    pb.redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")));
    pb.redirectErrorStream(true);
    Path out = null;
    try {
      if (appendTo != null) {
        pb.redirectOutput(ProcessBuilder.Redirect.appendTo(appendTo));
      } else {
        out = Files.createTempFile(base, "exec-", ".out");
        pb.redirectOutput(out.toFile());
      }
      Process p = pb.start();
      if (!p.waitFor(timeoutSec, TimeUnit.SECONDS)) {
        p.destroyForcibly();
        p.waitFor(10, TimeUnit.SECONDS);
        throw new IllegalStateException(cmd + " did not finish within " + timeoutSec + " s");
      }
      String text = out != null ? Files.readString(out, StandardCharsets.UTF_8) : "";
      return new ProcResult(p.exitValue(), text);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    } finally {
      if (out != null) {
        try {
          Files.deleteIfExists(out);
        } catch (IOException ignored) {
          // a leftover temp file is removed with the base dir
        }
      }
    }
  }

  private void appendRunLog(String s) {
    try {
      Files.writeString(runLog, s, StandardCharsets.UTF_8,
          java.nio.file.StandardOpenOption.CREATE, java.nio.file.StandardOpenOption.APPEND);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  static String tail(Path p, int lines) {
    try {
      List<String> all = Files.readAllLines(p, StandardCharsets.UTF_8);
      return String.join("\n", all.subList(Math.max(0, all.size() - lines), all.size()));
    } catch (IOException e) {
      return "(cannot read " + p + ": " + e + ")";
    }
  }

  /** Stops the onebox, keeps copies of its logs under the log dir, and removes its directory. */
  @Override
  public void close() {
    if (!Files.isDirectory(oneboxDir)) {
      deleteTree(base);
      return;
    }
    try {
      run(180, "stop_onebox");
    } catch (RuntimeException e) {
      Log.info("stop_onebox failed: " + e.getMessage());
    }
    copyLogs();
    if ("1".equals(System.getenv("PEGASUS_KEEP_ONEBOX"))) {
      Log.info("PEGASUS_KEEP_ONEBOX=1: kept the onebox at " + oneboxDir);
      return;
    }
    try {
      run(180, "clear_onebox");
    } catch (RuntimeException e) {
      Log.info("clear_onebox failed: " + e.getMessage());
    }
    deleteTree(base);
  }

  /**
   * Copies every instance's pegasus_server.log, config.ini and log files (data/log) and
   * ZooKeeper's log.
   */
  private void copyLogs() {
    Path dest = logDir.resolve("onebox");
    deleteTree(dest);
    try (Stream<Path> s = Files.walk(oneboxDir, 4)) {
      for (Path p : (Iterable<Path>) s::iterator) {
        String name = p.getFileName().toString();
        boolean serverLog = p.getParent() != null && p.getParent().endsWith(Paths.get("data", "log"))
            && Files.isRegularFile(p, LinkOption.NOFOLLOW_LINKS);
        if (name.equals("pegasus_server.log") || name.equals("config.ini")
            || name.equals("zookeeper.log") || serverLog) {
          Path to = dest.resolve(oneboxDir.relativize(p));
          Files.createDirectories(to.getParent());
          Files.copy(p, to, StandardCopyOption.REPLACE_EXISTING);
        }
      }
      Log.info("server logs copied to " + dest);
    } catch (IOException e) {
      Log.info("copying the onebox logs failed: " + e);
    }
  }

  private static void deleteTree(Path p) {
    if (!Files.exists(p)) {
      return;
    }
    try (Stream<Path> s = Files.walk(p)) {
      s.sorted(Comparator.reverseOrder()).forEach(f -> f.toFile().delete());
    } catch (IOException e) {
      // best effort
    }
  }

  static void sleep(long ms) {
    try {
      Thread.sleep(ms);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    }
  }

  private static final class ProcResult {
    final int rc;
    final String output;

    ProcResult(int rc, String output) {
      this.rc = rc;
      this.output = output;
    }
  }
}
