// Real worker processes (apps/worker/main.ts with the stand-in renderer): one killed with
// SIGKILL mid-render has its job finished elsewhere exactly once; one sent SIGTERM finishes its
// job and exits cleanly (one Ctrl-C delivered twice is one request; a second signal later hands
// the job back). On PGlite the killed process also leaves a stale lock behind, which
// the next opener takes over.
import { once } from 'node:events';
import { sql } from 'drizzle-orm';
import { afterEach, describe, expect, it } from 'vitest';
import { queryRows } from '../../../db/client.ts';
import { auditBalance } from '../../../farm/policy/budget.ts';
import { decodeFakeVideo, FakeRenderer } from '../../../farm/fake-renderer.ts';
import { getArtifact, getJob, submitJob } from '../../../farm/jobs.ts';
import { waitForJob } from '../../../farm/wait.ts';
import { FarmWorker } from '../../../farm/worker.ts';
import { registerWorker } from '../../../farm/worker-registry.ts';
import { type Backend, BACKENDS, CHEAP_BLEND, countRows, createTestDatabase, farmContext, GENEROUS_BUDGET, type TestDatabase } from '../../helpers/db.ts';
import { startWorkerProcess, waitForOutput, type WorkerProcess } from '../../helpers/worker-process.ts';

/** The process's log messages (the msg of each JSON line), one per line. */
function messages(child: WorkerProcess): string {
  return child
    .output()
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      try {
        return String((JSON.parse(line) as { msg?: unknown }).msg ?? line);
      } catch {
        return line;
      }
    })
    .join('\n');
}

/** A failed attempt is retried at once. */
const NO_BACKOFF = { BLENDFARM_RETRY_BACKOFF_SECONDS: '0' };

let testDb: TestDatabase | undefined;
let child: WorkerProcess | undefined;

afterEach(async () => {
  if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await testDb?.drop();
  testDb = undefined;
});

/** Submits through a short-lived handle: a PGlite directory must be free for the child. */
async function submitOne(backend: Backend, prompts: string[]) {
  testDb = await createTestDatabase(backend);
  const db = await testDb.open();
  const job = await submitJob(farmContext(db, { budget: GENEROUS_BUDGET }), { kind: 'blend', userId: 'victim', params: { ...CHEAP_BLEND, prompts, model: 'proc' } });
  await db.close();
  return job;
}

describe.each(BACKENDS)('worker processes on %s', (backend) => {
  it('finishes the job of a worker killed with SIGKILL exactly once, elsewhere', async () => {
    const job = await submitOne(backend, ['a slow render', 'b']);
    child = startWorkerProcess(testDb!, { id: 'doomed', rendererOptions: { models: ['proc'], steps: 100, stepMs: 100 }, env: NO_BACKOFF });
    await waitForOutput(child, new RegExp(`job ${job.id}: attempt 1 of 3 started`));
    child.kill('SIGKILL');
    await once(child, 'exit');

    const db = await testDb!.open(); // PGlite: takes over the dead process's lock
    const farm = farmContext(db, { budget: GENEROUS_BUDGET });
    expect((await getJob(farm, job.id))?.status).toBe('running');
    const rescuer = new FarmWorker({ farm, renderer: new FakeRenderer({ models: ['proc'], stepMs: 5 }), id: 'rescuer', log: () => {} });
    await rescuer.start();
    const done = await waitForJob(farm, job.id, { timeoutMs: 20_000 });
    await rescuer.stop();

    expect(done).toMatchObject({ status: 'done', attempts: 2, workerId: 'rescuer' });
    expect(decodeFakeVideo((await getArtifact(farm, job.id))!.bytes).attempt).toBe(2);
    expect(await countRows(db, 'artifacts', sql`job_id = ${job.id}`)).toBe(1);
    const history = await queryRows<{ type: string; data: { workerId?: string; error?: string } }>(
      db.db,
      sql`select type, data from job_events where job_id = ${job.id} order by id`,
    );
    expect(history.map((e) => e.type)).toEqual(['queued', 'claimed', 'retrying', 'claimed', 'done']);
    expect(history[1].data.workerId).toBe('doomed');
    expect(history[2].data.error).toMatch(/worker doomed stopped renewing its lease during attempt 1/);
    const audit = await auditBalance(db.db, 'victim');
    expect(audit.balanceMs).toBe(audit.ledgerSumMs);
  });
});

// Graceful shutdown is the same code on both back ends; one real process run is enough.
describe('worker process on postgres', () => {
  it('finishes the running job and exits cleanly on SIGTERM', async () => {
    const job = await submitOne('postgres', ['a short render', 'b']);
    child = startWorkerProcess(testDb!, { id: 'polite', rendererOptions: { models: ['proc'], steps: 10, stepMs: 80 }, env: NO_BACKOFF });
    await waitForOutput(child, new RegExp(`job ${job.id}: attempt 1 of 3 started`));
    child.kill('SIGTERM');
    const [code] = await once(child, 'exit');
    expect(code).toBe(0);
    expect(child.output()).toMatch(/SIGTERM: finishing running jobs/);

    const db = await testDb!.open();
    const farm = farmContext(db);
    expect(await getJob(farm, job.id)).toMatchObject({ status: 'done', attempts: 1, workerId: 'polite' });
    const [worker] = await queryRows<{ stopped: boolean }>(db.db, sql`select stopped_at is not null as stopped from workers where id = 'polite'`);
    expect(worker.stopped).toBe(true);
  });

  it('takes one Ctrl-C delivered twice (the process group, then tsx passing it on) as one request: the job still finishes', async () => {
    const job = await submitOne('postgres', ['a short render', 'b']);
    child = startWorkerProcess(testDb!, { id: 'ctrl-c', rendererOptions: { models: ['proc'], steps: 10, stepMs: 100 }, env: NO_BACKOFF });
    await waitForOutput(child, new RegExp(`job ${job.id}: attempt 1 of 3 started`));
    child.kill('SIGINT');
    await new Promise((resolve) => setTimeout(resolve, 30));
    child.kill('SIGINT');
    const [code] = await once(child, 'exit');
    expect(code).toBe(0);
    const db = await testDb!.open();
    expect(await getJob(farmContext(db), job.id)).toMatchObject({ status: 'done', attempts: 1, workerId: 'ctrl-c' });
    expect(child.output()).toMatch(/SIGINT: finishing running jobs/);
    expect(child.output()).toMatch(/SIGINT again within 1 s: taken as the same request/);
    expect(child.output()).not.toMatch(/handing jobs back now/);
  });

  it('one worker id, one process: a second process under it refuses to start (exit 78); a worker whose id is taken finishes its job and exits 78', async () => {
    const job = await submitOne('postgres', ['a slow render', 'b']);
    child = startWorkerProcess(testDb!, { id: 'twin', rendererOptions: { models: ['proc'], steps: 30, stepMs: 100 }, env: NO_BACKOFF });
    await waitForOutput(child, new RegExp(`job ${job.id}: attempt 1 of 3 started`));

    // The same configuration started again, e.g. on a second machine or a second container.
    const second = startWorkerProcess(testDb!, { id: 'twin', rendererOptions: { models: ['proc'] } });
    const [secondCode] = await once(second, 'exit');
    expect(secondCode).toBe(78);
    expect(messages(second)).toMatch(/worker id "twin" is in use: the worker on host \S+, pid \d+ still heartbeats under it\. Give each worker its own BLENDFARM_WORKER_ID/);
    expect(second.output()).not.toMatch(/\n\s+at /); // no stack trace

    // Another process takes the id over meanwhile (both started at once): the first one notices at
    // its next heartbeat, finishes its render and exits 78 (EX_CONFIG), leaving the row to the newer holder.
    const db = await testDb!.open();
    const farm = farmContext(db);
    await registerWorker(farm, { id: 'twin', host: 'elsewhere', pid: 7, concurrency: 1, capabilities: { models: ['proc'], maxPixels: 1 << 20, executionProvider: 'test' } });
    const [code] = await once(child, 'exit');
    expect(code).toBe(78);
    expect(messages(child)).toMatch(/another worker took this worker's id since it started \(host elsewhere, pid 7\)/);
    // Logged as an error (pino level 50), not as news.
    const taken = child.output().split('\n').find((line) => line.includes("another worker took this worker's id"));
    expect(JSON.parse(taken!)).toMatchObject({ level: 50 });
    expect(await getJob(farm, job.id)).toMatchObject({ status: 'done', attempts: 1, workerId: 'twin' });
    const [row] = await queryRows<{ host: string; stopped: boolean }>(db.db, sql`select host, stopped_at is not null as stopped from workers where id = 'twin'`);
    expect(row).toEqual({ host: 'elsewhere', stopped: false });
  });

  it('hands the running job back at once on a second signal sent later', async () => {
    const job = await submitOne('postgres', ['a slow render', 'b']);
    child = startWorkerProcess(testDb!, { id: 'impatient', rendererOptions: { models: ['proc'], steps: 100, stepMs: 100 }, env: NO_BACKOFF });
    await waitForOutput(child, new RegExp(`job ${job.id}: attempt 1 of 3 started`));
    child.kill('SIGTERM');
    await waitForOutput(child, /SIGTERM: finishing running jobs/);
    await new Promise((resolve) => setTimeout(resolve, 1200));
    child.kill('SIGTERM');
    const [code] = await once(child, 'exit');
    expect(code).toBe(0);
    expect(child.output()).toMatch(/SIGTERM: handing jobs back now/);

    const db = await testDb!.open();
    expect(await getJob(farmContext(db), job.id)).toMatchObject({ status: 'queued', workerId: null });
  });
});
