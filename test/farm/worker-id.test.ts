// One worker id, one process: a worker started under an id another live process heartbeats is
// refused; a holder that stopped heartbeating (or whose pid no longer runs here) is taken over;
// and a worker whose id another process took since it started stops without marking the newer
// holder offline, finishing the job it was rendering.
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import { sql } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import { queryRows } from '../../db/client.ts';
import type { FarmContext } from '../../farm/config.ts';
import { FakeRenderer } from '../../farm/fake-renderer.ts';
import { submitJob } from '../../farm/jobs.ts';
import { claimJob } from '../../farm/queue.ts';
import { waitForJob } from '../../farm/wait.ts';
import { FarmWorker } from '../../farm/worker.ts';
import { heartbeatWorker, listWorkers, markWorkerStopped, pidNamespace, registerWorker, WorkerIdInUseError, type WorkerIdHolder } from '../../farm/worker-registry.ts';
import { BACKENDS, CHEAP_BLEND, GENEROUS_BUDGET } from '../helpers/db.ts';
import { useTestFarm } from '../helpers/farm.ts';

const CAPS = { models: ['idm'], maxPixels: 1024 * 1024, executionProvider: 'test' };

describe.each(BACKENDS)('worker ids on %s', (backend) => {
  let farm: FarmContext;
  useTestFarm(backend, { budget: GENEROUS_BUDGET }, (t) => {
    farm = t.farm;
  });

  function worker(id: string, lines: string[], options: { stepMs?: number; onIdTaken?: (holder: WorkerIdHolder) => void } = {}) {
    const renderer = new FakeRenderer({ models: [`model-${id}`], maxPixels: 1024 * 1024, steps: 5, stepMs: options.stepMs ?? 1 });
    return new FarmWorker({ farm, renderer, id, log: (line) => lines.push(line), onIdTaken: options.onIdTaken });
  }

  /** Another machine's live worker under `id`: its row, heartbeated as its process would. */
  async function remoteWorker(id: string): Promise<{ instance: string; stop: () => void }> {
    const instance = randomUUID();
    await registerWorker(farm, { id, host: 'other-machine', pid: 4242, capabilities: CAPS, concurrency: 1, instance });
    const registration = { id, host: 'other-machine', pid: 4242, capabilities: CAPS, concurrency: 1, instance };
    const beat = setInterval(() => void heartbeatWorker(farm, registration), farm.config.heartbeatSeconds * 1000);
    return { instance, stop: () => clearInterval(beat) };
  }

  async function row(id: string) {
    return (await listWorkers(farm)).find((w) => w.id === id);
  }

  it('refuses to start under an id another machine’s worker still heartbeats, and writes nothing', async () => {
    const remote = await remoteWorker('gpu-shared');
    const lines: string[] = [];
    try {
      const error = await worker('gpu-shared', lines)
        .start()
        .then(() => undefined, (e: unknown) => e);
      expect(error).toBeInstanceOf(WorkerIdInUseError);
      expect((error as Error).message).toBe(
        'worker id "gpu-shared" is in use: the worker on host other-machine, pid 4242 still heartbeats under it. ' +
          'Give each worker its own BLENDFARM_WORKER_ID (the farm tells workers apart by it: their status, their jobs), or stop that worker first.',
      );
      expect(lines.join('\n')).toMatch(/worker id "gpu-shared" is held by the worker on host other-machine, pid 4242 \(last heartbeat \d+ s ago\); watching its heartbeat for 1\.5 s: this worker starts only if that one has stopped/);
      const held = await row('gpu-shared');
      expect(held).toMatchObject({ host: 'other-machine', pid: 4242, online: true, capabilities: { models: ['idm'] } });
    } finally {
      remote.stop();
    }
  });

  it('takes over an id whose holder on another machine stopped heartbeating without saying so', async () => {
    const remote = await remoteWorker('gpu-crashed');
    remote.stop(); // the machine died: its row is still fresh, but nothing renews it
    const lines: string[] = [];
    const w = worker('gpu-crashed', lines);
    await w.start();
    try {
      expect(lines.some((l) => l.includes('taking over worker id "gpu-crashed": the worker on host other-machine, pid 4242 stopped heartbeating'))).toBe(true);
      expect(await row('gpu-crashed')).toMatchObject({ host: os.hostname(), pid: process.pid, online: true, capabilities: { models: ['model-gpu-crashed'] } });
    } finally {
      await w.stop();
    }
  });

  it('taking over from a holder that only stopped heartbeating leaves its jobs to their leases (it may be rendering, cut off from the database)', async () => {
    const remote = await remoteWorker('gpu-cutoff');
    const job = await submitJob(farm, { kind: 'blend', userId: 'cutoff-user', params: { ...CHEAP_BLEND, model: 'idm' } });
    // The remote worker claimed it, then lost the database: no heartbeat, its lease still valid for a while.
    const claimed = await claimJob(farm, 'gpu-cutoff', CAPS);
    expect(claimed?.id).toBe(job.id);
    remote.stop();
    const lines: string[] = [];
    const w = new FarmWorker({ farm, renderer: new FakeRenderer({ models: ['other-model'], maxPixels: 1024 * 1024 }), id: 'gpu-cutoff', log: (l) => lines.push(l) });
    await w.start();
    try {
      expect(lines.some((l) => l.includes('stopped heartbeating'))).toBe(true);
      expect(lines.some((l) => l.includes('took back'))).toBe(false);
      const [row] = await queryRows<{ status: string; attempts: number; lease_token: string }>(farm.db.db, sql`select status, attempts, lease_token from jobs where id = ${job.id}`);
      expect(row).toEqual({ status: 'running', attempts: 1, lease_token: claimed!.leaseToken });
    } finally {
      await w.stop();
    }
  });

  it('takes over at once an id held by a pid of this machine that no longer runs (a restart after a crash)', async () => {
    const deadPid = spawnSync(process.execPath, ['-e', '0']).pid!;
    await registerWorker(farm, { id: 'gpu-restarted', host: os.hostname(), pid: deadPid, pidNamespace: pidNamespace(), capabilities: { ...CAPS, models: ['model-gpu-restarted'] }, concurrency: 1, instance: randomUUID() });
    // It was rendering a job when it died: the job goes back to the queue at once, not when its lease runs out.
    const job = await submitJob(farm, { kind: 'blend', userId: 'restart-user', params: { ...CHEAP_BLEND, model: 'model-gpu-restarted' } });
    const claimed = await claimJob(farm, 'gpu-restarted', { models: ['model-gpu-restarted'], maxPixels: 1 << 22, executionProvider: 'test' });
    expect(claimed?.id).toBe(job.id);
    const lines: string[] = [];
    const w = worker('gpu-restarted', lines);
    await w.start();
    try {
      // Settled by the pid, without watching the heartbeat.
      expect(lines.some((l) => l.includes('watching its heartbeat'))).toBe(false);
      expect(lines.some((l) => l.includes(`taking over worker id "gpu-restarted" from pid ${deadPid} on this machine, which no longer runs`))).toBe(true);
      expect(await row('gpu-restarted')).toMatchObject({ pid: process.pid, online: true });
      expect(lines).toContain('took back 1 job(s) the previous holder of this id was rendering');
      const [failedAttempt] = await queryRows<{ error: string }>(farm.db.db, sql`select data->>'error' as error from job_events where job_id = ${job.id} and type = 'retrying'`);
      expect(failedAttempt?.error).toBe(`the process that held worker id gpu-restarted (host ${os.hostname()}, pid ${deadPid}) ended during attempt 1`);
      // Rendered again by the new process, well before the 1.5 s lease of the first attempt would have run out and been reaped.
      const done = await waitForJob(farm, job.id, { timeoutMs: 20_000 });
      expect(done).toMatchObject({ status: 'done', attempts: 2, workerId: 'gpu-restarted' });
    } finally {
      await w.stop();
    }
  });

  it('watches, not takes over at once, a holder with this host name in another pid namespace (a container sharing the host name)', async () => {
    const deadHere = spawnSync(process.execPath, ['-e', '0']).pid!;
    const instance = randomUUID();
    const registration = { id: 'gpu-container', host: os.hostname(), pid: deadHere, pidNamespace: 'pid:[1]', capabilities: CAPS, concurrency: 1, instance };
    await registerWorker(farm, registration);
    // Alive in its own namespace: it heartbeats.
    const beat = setInterval(() => void heartbeatWorker(farm, registration), farm.config.heartbeatSeconds * 1000);
    const lines: string[] = [];
    try {
      await expect(worker('gpu-container', lines).start()).rejects.toBeInstanceOf(WorkerIdInUseError);
      expect(lines.some((l) => l.includes('watching its heartbeat'))).toBe(true);
    } finally {
      clearInterval(beat);
    }
  });

  it('refuses a second worker of this same process under a running one’s id, at once', async () => {
    const first = worker('gpu-twice', []);
    await first.start();
    try {
      const error = await worker('gpu-twice', []).start().then(() => undefined, (e: unknown) => e);
      expect((error as Error).message).toMatch(/^worker id "gpu-twice" is in use: another worker of this process runs under it\. /);
    } finally {
      await first.stop();
    }
    // Stopped, its id is free again for this process.
    const again = worker('gpu-twice', []);
    await again.start();
    await again.stop();
  });

  it('a worker’s heartbeat restores its row after an older worker version under the same id marked it stopped', async () => {
    const w = worker('gpu-mixed', []);
    await w.start();
    try {
      // What an older release's worker does when it stops: marks the id's row stopped, whoever holds it.
      await markWorkerStopped(farm, 'gpu-mixed');
      expect(await row('gpu-mixed')).toMatchObject({ online: false });
      await expect.poll(async () => (await row('gpu-mixed'))?.online, { timeout: 5_000 }).toBe(true);
    } finally {
      await w.stop();
    }
    expect(await row('gpu-mixed')).toMatchObject({ online: false });
  });

  it('a worker whose id another process took stops claiming, finishes its render, and leaves the newer holder online', async () => {
    const lines: string[] = [];
    let taken: WorkerIdHolder | undefined;
    const w = worker('gpu-dup', lines, { stepMs: 300, onIdTaken: (holder) => (taken = holder) });
    await w.start();
    const job = await submitJob(farm, { kind: 'blend', userId: 'dup-user', params: { ...CHEAP_BLEND, model: 'model-gpu-dup' } });
    await expect.poll(() => w.runningJobIds, { timeout: 10_000 }).toEqual([job.id]);

    // A second process is started under the same id (a copied configuration) while it renders.
    const remote = await remoteWorker('gpu-dup');
    try {
      await expect.poll(() => taken, { timeout: 10_000 }).toMatchObject({ host: 'other-machine', pid: 4242, instance: remote.instance });
      expect(lines.some((l) => l.startsWith("another worker took this worker's id since it started (host other-machine, pid 4242)"))).toBe(true);
      // Its render is finished (its lease is its own), then it stops.
      const done = await waitForJob(farm, job.id, { timeoutMs: 20_000 });
      expect(done.status).toBe('done');
      await w.stop();
      // The newer holder is still online: the stopping worker did not mark the row stopped.
      expect(await row('gpu-dup')).toMatchObject({ host: 'other-machine', online: true, stoppedAt: null });
    } finally {
      remote.stop();
    }
  });
});
