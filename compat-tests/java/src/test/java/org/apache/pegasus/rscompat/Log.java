// Log: timestamped progress lines of the Java-client suite (to stdout and target/rscompat-logs/
// suite.log), and report lines (figures such as failover times and failed-write counts) that the
// SummaryListener repeats in the final summary (target/rscompat-logs/report.txt).
package org.apache.pegasus.rscompat;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.LocalTime;
import java.time.format.DateTimeFormatter;

public final class Log {
  private static final DateTimeFormatter TS = DateTimeFormatter.ofPattern("HH:mm:ss.SSS");

  private Log() {}

  static String now() {
    return LocalTime.now().format(TS);
  }

  public static synchronized void info(String msg) {
    String line = "[javacompat " + now() + "] " + msg;
    System.out.println(line);
    append("suite.log", line);
  }

  /** A line for the final summary: also logged. */
  public static synchronized void report(String msg) {
    info(msg);
    append("report.txt", msg);
  }

  static Path reportFile() {
    return Onebox.logDir().resolve("report.txt");
  }

  private static void append(String file, String line) {
    try {
      Path dir = Onebox.logDir();
      Files.createDirectories(dir);
      Files.writeString(dir.resolve(file), line + "\n", StandardCharsets.UTF_8,
          StandardOpenOption.CREATE, StandardOpenOption.APPEND);
    } catch (IOException e) {
      System.err.println("cannot write " + file + ": " + e);
    }
  }
}
