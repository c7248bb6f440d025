// A farm with the operations server on a free port, a stand-in renderer worker, and the logs
// captured as lines: what the ops tests share.
import { Writable } from 'node:stream';
import type { FarmDb } from '../../../db/client.ts';
import { FakeRenderer, type FakeRendererOptions } from '../../../farm/fake-renderer.ts';
import { type FarmContext, FarmWorker } from '../../../farm/index.ts';
import { createLogger, lineLogger, type Logger } from '../../../apps/log.ts';
import { createRegistry, type Ops, startOps } from '../../../apps/http/ops.ts';
import { renderMetrics } from '../../../apps/http/render-metrics.ts';
import { type Backend, createTestDatabase, farmContext, GENEROUS_BUDGET, type TestDatabase } from '../../helpers/db.ts';

/** Made-up secrets: the logs must never contain them. */
export const STATUS_TOKEN = 'operator-token-0123456789abcdef';
export const DB_PASSWORD = 'hunter2-db-password';
export const DISCORD_TOKEN = 'MTIzNDU2Nzg5MDEyMzQ1Njc4.GhIjKl.abcdefghijklmnopqrstuvwxyz0123456789';

export interface OpsFarm {
  testDb: TestDatabase;
  db: FarmDb;
  farm: FarmContext;
  ops: Ops;
  logger: Logger;
  /** Every log line written so far. */
  lines: string[];
  worker(model: string, options?: FakeRendererOptions): Promise<FarmWorker>;
  get(path: string, headers?: Record<string, string>): Promise<{ status: number; text: string; json<T = unknown>(): T }>;
  close(): Promise<void>;
}

export async function startOpsFarm(backend: Backend, options: { statusSnapshotMaxAgeMs?: number } = {}): Promise<OpsFarm> {
  const testDb = await createTestDatabase(backend);
  const db = await testDb.open();
  const farm = farmContext(db, { budget: GENEROUS_BUDGET });
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      lines.push(...chunk.toString().split('\n').filter(Boolean));
      callback();
    },
  });
  const logger = createLogger({ name: 'test', format: 'json', destination, secrets: [STATUS_TOKEN, DB_PASSWORD, DISCORD_TOKEN] });
  const registry = createRegistry('bot');
  // Tests read /status/data right after changing the farm: unless asked otherwise, a finished
  // snapshot is not served again (statusSnapshotMaxAgeMs 0; concurrent requests still share one).
  // status-data.test.ts covers the sharing, status-page.test.ts the page under the default.
  const ops = await startOps(
    { role: 'bot', farm, host: '127.0.0.1', port: 0, statusToken: STATUS_TOKEN, logger, countJobEvents: true, statusPage: true, statusSnapshotMaxAgeMs: options.statusSnapshotMaxAgeMs ?? 0 },
    registry,
  );
  const metrics = renderMetrics(registry);
  const workers: FarmWorker[] = [];
  return {
    testDb,
    db,
    farm,
    ops,
    logger,
    lines,
    async worker(model, options = {}) {
      const renderer = metrics.wrap(new FakeRenderer({ models: [model], maxPixels: 1024 * 1024, ...options }));
      const worker = new FarmWorker({ farm, renderer, id: `w-${model}`, log: lineLogger(logger, { workerId: `w-${model}` }) });
      await worker.start();
      workers.push(worker);
      return worker;
    },
    async get(path, headers = {}) {
      const res = await fetch(`${ops.server.url}${path}`, { headers });
      const text = await res.text();
      return { status: res.status, text, json: <T>() => JSON.parse(text) as T };
    },
    async close() {
      await Promise.all(workers.map((w) => w.stop('release', 0)));
      await ops.stop();
      await testDb.drop();
    },
  };
}

/** The value of one sample in Prometheus text format (labels in any order), or undefined. */
export function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const have = Object.fromEntries([...(match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(match[3]);
  }
  return undefined;
}

/** Resolves once `condition` holds, checked every 50 ms; the test's timeout bounds the wait. */
export async function until(condition: () => boolean | Promise<boolean>): Promise<void> {
  while (!(await condition())) await new Promise((resolve) => setTimeout(resolve, 50));
}
