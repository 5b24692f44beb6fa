// OneboxExtension: JUnit 5 extension that starts the suite's one onebox before the first test
// class that uses it and keeps it in the root store, so JUnit closes (stops and clears) it once
// after the last test class. A failed start is not retried by later classes.
package org.apache.pegasus.rscompat;

import org.junit.jupiter.api.extension.BeforeAllCallback;
import org.junit.jupiter.api.extension.ExtensionContext;

public final class OneboxExtension implements BeforeAllCallback {
  private static volatile Onebox current;
  private static volatile RuntimeException startError;

  @Override
  public synchronized void beforeAll(ExtensionContext context) {
    if (startError != null) {
      throw new IllegalStateException("the onebox failed to start earlier", startError);
    }
    ExtensionContext.Store store = context.getRoot().getStore(ExtensionContext.Namespace.GLOBAL);
    current =
        store.getOrComputeIfAbsent(
            "pegasus-rscompat-onebox",
            k -> {
              Onebox box = new Onebox();
              try {
                box.start();
              } catch (RuntimeException e) {
                startError = e;
                box.close();
                throw e;
              }
              return box;
            },
            Onebox.class);
  }

  /** The running onebox (valid from a test class's @BeforeAll on). */
  public static Onebox onebox() {
    if (current == null) {
      throw new IllegalStateException("the onebox is not started");
    }
    return current;
  }
}
