/**
 * The JSON lines code under test logs (lifecycle events, audit lines): Workers
 * Logs' view of them, captured in the test's isolate, where the objects run too.
 */

/** Captures the JSON lines logged while `fn` runs (other output is ignored). */
export async function logged(fn: () => Promise<void>): Promise<Record<string, unknown>[]> {
  const lines: Record<string, unknown>[] = [];
  const realLog = console.log;
  console.log = (...args: unknown[]) => {
    try {
      lines.push(JSON.parse(String(args[0])) as Record<string, unknown>);
    } catch {
      // not a JSON line
    }
  };
  try {
    await fn();
  } finally {
    console.log = realLog;
  }
  return lines;
}
