// A real worker process (apps/worker/main.ts, the stand-in renderer, BLENDFARM_HTTP_PORT=0) whose
// model fails to load at first: /readyz answers 503 with the reason, the log says it in one line,
// and the worker becomes ready (200) once the model loads — by the retry 5 s later, or at once by a
// job that loaded it.
import { afterEach, describe, expect, it } from 'vitest';
import { submitJob } from '../../../farm/jobs.ts';
import { waitForJob } from '../../../farm/wait.ts';
import { CHEAP_BLEND, createTestDatabase, farmContext, GENEROUS_BUDGET, type TestDatabase } from '../../helpers/db.ts';
import { startWorkerProcess, waitForOutput, type WorkerProcess } from '../../helpers/worker-process.ts';

async function readyz(base: string): Promise<{ status: number; body: { ready: boolean; checks: Record<string, string> } }> {
  const res = await fetch(`${base}/readyz`);
  return { status: res.status, body: (await res.json()) as { ready: boolean; checks: Record<string, string> } };
}

let testDb: TestDatabase | undefined;
let child: WorkerProcess | undefined;

afterEach(async () => {
  if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  child = undefined;
  await testDb?.drop();
  testDb = undefined;
});

/** Starts the worker; resolves with its ops server's address once its first warm-up has failed. */
async function workerWhoseModelFailed(rendererOptions: object): Promise<string> {
  testDb = await createTestDatabase('postgres');
  child = startWorkerProcess(testDb, { id: 'readyz', rendererOptions: { models: ['proc'], steps: 2, stepMs: 5, ...rendererOptions }, env: { BLENDFARM_HTTP_PORT: '0' } });
  const [, base] = await waitForOutput(child, /HTTP: (http:\/\/[^/\s"]+)\/metrics/);
  await waitForOutput(child, /the model did not load \(try 1\): fake model load failure \(warm-up 1 of the \d+ set to fail\); the worker stays unready and tries again in 5 s/);
  const down = await readyz(base);
  expect(down.status).toBe(503);
  expect(down.body.ready).toBe(false);
  expect(down.body.checks.database).toBe('ok');
  expect(down.body.checks.model).toMatch(/^the model did not load: fake model load failure \(warm-up 1 of the \d+ set to fail\) \(try 1; next try in [1-5] s\)$/);
  return base;
}

describe('worker process readiness', () => {
  it('goes from 503 to 200 on /readyz when the model loads on the retry after a failed warm-up', async () => {
    const base = await workerWhoseModelFailed({ warmUpFailures: 1 });
    const deadline = Date.now() + 20_000;
    let ready = await readyz(base);
    while (ready.status !== 200 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      ready = await readyz(base);
    }
    expect(ready).toEqual({ status: 200, body: expect.objectContaining({ ready: true, checks: { database: 'ok', model: 'ok' } }) });
    expect(child!.output()).toMatch(/the model loaded on try 2; the worker is ready/);
    // A worker has no status page: / lists what it serves, instead of redirecting to a 404.
    const root = await fetch(`${base}/`, { redirect: 'manual' });
    expect([root.status, await root.text()]).toEqual([404, 'Nothing at /. Try /metrics, /healthz, /readyz.\n']);
  });

  it('goes from 503 to 200 as soon as a job that loaded the model is done', async () => {
    // No warm-up can load this model: only a render does.
    const base = await workerWhoseModelFailed({ warmUpFailures: 1_000 });
    const db = await testDb!.open();
    const farm = farmContext(db, { budget: GENEROUS_BUDGET });
    const job = await submitJob(farm, { kind: 'blend', userId: 'readyz', params: { ...CHEAP_BLEND, model: 'proc' } });
    await waitForJob(farm, job.id, { timeoutMs: 20_000 });
    await waitForOutput(child!, /the model loaded on try 2; the worker is ready/, 3_000);
    expect(await readyz(base)).toEqual({ status: 200, body: expect.objectContaining({ ready: true, checks: { database: 'ok', model: 'ok' } }) });
  });
});
