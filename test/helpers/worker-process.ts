/**
 * A real worker process (apps/worker/main.ts) for tests: the farm settings of a test database, the
 * stand-in renderer (farm/fake-renderer.ts) with `rendererOptions`, fast leases and polling, and
 * its stdout and stderr kept for waitForOutput.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { FAST_CONFIG, type TestDatabase } from './db.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export type WorkerProcess = ChildProcess & { output: () => string };

export function startWorkerProcess(testDb: TestDatabase, options: { id: string; rendererOptions: object; env?: Record<string, string> }): WorkerProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', 'apps/worker/main.ts'], {
    cwd: ROOT,
    env: {
      ...process.env,
      ...testDb.env,
      BLENDFARM_RENDERER: 'farm/fake-renderer.ts',
      BLENDFARM_RENDERER_OPTIONS: JSON.stringify(options.rendererOptions),
      BLENDFARM_WORKER_ID: options.id,
      BLENDFARM_LEASE_SECONDS: String(FAST_CONFIG.leaseSeconds),
      BLENDFARM_HEARTBEAT_SECONDS: String(FAST_CONFIG.heartbeatSeconds),
      BLENDFARM_POLL_INTERVAL_MS: '50',
      ...options.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let text = '';
  child.stdout?.on('data', (chunk: Buffer) => (text += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (text += chunk.toString()));
  return Object.assign(child, { output: () => text });
}

/** Waits until the process has written a line matching `pattern`; fails if it exits first or the time runs out. */
export async function waitForOutput(child: WorkerProcess, pattern: RegExp, timeoutMs = 30_000): Promise<RegExpExecArray> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const match = pattern.exec(child.output());
    if (match) return match;
    if (child.exitCode !== null) throw new Error(`worker exited early:\n${child.output()}`);
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${pattern}:\n${child.output()}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
