// Polling waits for tests: the condition is checked every 25 ms until it holds or time runs out.

/** Resolves once `check()` holds; throws "timed out waiting for <what>" after `timeoutMs`. */
export async function until(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}
