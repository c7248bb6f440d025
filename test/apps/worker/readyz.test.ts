// A real worker process (apps/worker/main.ts, the stand-in renderer, BLENDFARM_HTTP_PORT=0) whose
// model fails to load at first: /readyz answers 503 with the reason, the log says it in one line,
// and the worker becomes ready (200) once the model loads — by the retry 5 s later, or at once by a
// job that loaded it.
import { afterEach, describe, expect, it } from 'vitest';
import { getJob, submitJob } from '../../../farm/jobs.ts';
import { waitForJob } from '../../../farm/wait.ts';
import { CHEAP_BLEND, createTestDatabase, farmContext, GENEROUS_BUDGET, type TestDatabase } from '../../helpers/db.ts';
import { startWorkerProcess, waitForOutput, type WorkerProcess } from '../../helpers/worker-process.ts';

async function readyz(base: string): Promise<{ status: number; body: { ready: boolean; checks: Record<string, string> } }> {
  const res = await fetch(`${base}/readyz`);
  return { status: res.status, body: (await res.json()) as { ready: boolean; checks: Record<string, string> } };
}

let testDb: TestDatabase | undefined;
let child: WorkerProcess | undefined;
let healthy: WorkerProcess | undefined;

afterEach(async () => {
  if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  child = undefined;
  if (healthy && healthy.exitCode === null && healthy.signalCode === null) healthy.kill('SIGKILL');
  healthy = undefined;
  await testDb?.drop();
  testDb = undefined;
});

/** Starts the worker; resolves with its ops server's address once its first warm-up has failed. */
async function workerWhoseModelFailed(rendererOptions: object): Promise<string> {
  testDb = await createTestDatabase('postgres');
  child = startWorkerProcess(testDb, { id: 'readyz', rendererOptions: { models: ['proc'], steps: 2, stepMs: 5, ...rendererOptions }, env: { BLENDFARM_HTTP_PORT: '0' } });
  const [, base] = await waitForOutput(child, /HTTP: (http:\/\/[^/\s"]+)\/metrics/);
  await waitForOutput(child, /the model did not load \(try 1\): fake model load failure \(warm-up 1 of the \d+ set to fail\); the worker stays unready, claims no job on it, and tries again in 5 s/);
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
    expect(ready).toEqual({ status: 200, body: expect.objectContaining({ ready: true, checks: { database: 'ok', model: 'ok', renders: 'ok' } }) });
    expect(child!.output()).toMatch(/the model loaded on try 2; the worker is ready/);
    // A worker has no status page: / lists what it serves, instead of redirecting to a 404.
    const root = await fetch(`${base}/`, { redirect: 'manual' });
    expect([root.status, await root.text()]).toEqual([404, 'Nothing at /. Try /metrics, /healthz, /readyz.\n']);
  });

  it('claims no job on a model that did not load: the job waits, unspent, and a healthy worker renders it', async () => {
    // No warm-up can load this model.
    const base = await workerWhoseModelFailed({ warmUpFailures: 1_000 });
    await waitForOutput(child!, /claiming no job on proc: the renderer says the model did not load/);
    const db = await testDb!.open();
    const farm = farmContext(db, { budget: GENEROUS_BUDGET });
    const job = await submitJob(farm, { kind: 'blend', userId: 'readyz', params: { ...CHEAP_BLEND, model: 'proc' } });
    await new Promise((r) => setTimeout(r, 1_500));
    expect(await getJob(farm, job.id)).toMatchObject({ status: 'queued', attempts: 0 });
    expect(child!.output()).not.toMatch(new RegExp(`job ${job.id}: attempt`));
    healthy = startWorkerProcess(testDb!, { id: 'readyz-ok', rendererOptions: { models: ['proc'], steps: 2, stepMs: 5 } });
    const done = await waitForJob(farm, job.id, { timeoutMs: 30_000 });
    expect(done).toMatchObject({ status: 'done', attempts: 1, workerId: 'readyz-ok' });
    expect((await readyz(base)).status).toBe(503);
  });

  it('hands back a job it cannot render (a worker fault) without using an attempt, stops claiming that model, and says so on /readyz', async () => {
    testDb = await createTestDatabase('postgres');
    child = startWorkerProcess(testDb, { id: 'readyz-fault', rendererOptions: { models: ['proc'], steps: 2, stepMs: 5 }, env: { BLENDFARM_HTTP_PORT: '0' } });
    const [, base] = await waitForOutput(child, /HTTP: (http:\/\/[^/\s"]+)\/metrics/);
    const db = await testDb.open();
    const farm = farmContext(db, { budget: GENEROUS_BUDGET });
    const job = await submitJob(farm, { kind: 'blend', userId: 'readyz', params: { ...CHEAP_BLEND, prompts: ['[fake workerfault] a', 'b'], model: 'proc' } });
    await waitForOutput(child, new RegExp(`job ${job.id}: this worker cannot render it \\(fake worker fault: the model folder is gone\\); handed back to the queue without using an attempt`));
    expect(await getJob(farm, job.id)).toMatchObject({ status: 'queued', attempts: 0 });
    const down = await readyz(base);
    expect(down.status).toBe(503);
    expect(down.body.checks.renders).toMatch(/^claims no job on model "proc" for [1-5] s: fake worker fault: the model folder is gone$/);
    // On the model the warm-up loads: the model check says it too, and the warm-up tries it again 5 s later.
    expect(down.body.checks.model).toMatch(/^the model did not load: fake worker fault: the model folder is gone \(try 1; next try in [1-5] s\)$/);
    expect(child.output()).toMatch(/the model did not load \(in a render\): fake worker fault: the model folder is gone; the worker stays unready, claims no job on it, and tries again in 5 s/);
  });
});
