// What the public status data gives away, and what it costs to serve: a cancelled job's reason
// names no user (the operator's view still does), workers are "worker N" without id, host or
// device, concurrent /status/data requests share one snapshot, the hour's buckets come out as
// before, and /status/events refuses clients past its cap with 503 and Retry-After.
import http from 'node:http';
import { sql } from 'drizzle-orm';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_STATUS_EVENT_CLIENTS, type OpsServer, sharedSnapshots, startOpsServer, type StatusSource } from '../../../apps/http/server.ts';
import { cancelJob, cancelReason, type FarmActivity, getJob, OPERATOR_CANCEL_REASON, setStatusPageVisibility, submitJob } from '../../../farm/index.ts';
import { cancelledByText } from '../../../farm/failure.ts';
import { BACKENDS, CHEAP_BLEND } from '../../helpers/db.ts';
import { type OpsFarm, startOpsFarm, STATUS_TOKEN, until } from './helpers.ts';

const OWNER = '444444444444444444';
const MODERATOR = '555555555555555555';

describe.each(BACKENDS)('public status data on %s', (backend) => {
  let f: OpsFarm;
  beforeAll(async () => {
    f = await startOpsFarm(backend);
    await setStatusPageVisibility(f.farm, 'g-public', 'public');
    // The model's only worker has stopped: jobs stay queued until cancelled.
    const idle = await f.worker('parked');
    await idle.stop('release', 0);
  });
  afterAll(async () => {
    await f?.close();
  });

  const submit = (prompts: string[]) => submitJob(f.farm, { kind: 'blend', userId: OWNER, guildId: 'g-public', params: { ...CHEAP_BLEND, prompts, model: 'parked' } });
  const full = async () => (await f.get('/status/data', { authorization: `Bearer ${STATUS_TOKEN}` })).json<FarmActivity>();

  it("says who cancelled a job as owner, moderator or operator, never by user id; the operator's view keeps the id", async () => {
    const byOwner = await submit(['own a', 'own b']);
    const byModerator = await submit(['mod a', 'mod b']);
    const byOperator = await submit(['op a', 'op b']);
    await cancelJob(f.farm, byOwner.id, cancelReason(OWNER));
    await cancelJob(f.farm, byModerator.id, cancelReason(MODERATOR));
    await cancelJob(f.farm, byOperator.id, OPERATOR_CANCEL_REASON);
    // Stored: the full reason for operators, the owner's line without an id.
    expect(await getJob(f.farm, byModerator.id)).toMatchObject({ error: `cancelled by ${MODERATOR}`, userError: 'cancelled by a moderator' });
    expect((await getJob(f.farm, byOwner.id))?.userError).toBe('cancelled by its owner');
    expect((await getJob(f.farm, byOperator.id))?.userError).toBe("cancelled by the farm's operator");

    const publicView = await f.get('/status/data');
    expect(publicView.text).not.toContain(OWNER);
    expect(publicView.text).not.toContain(MODERATOR);
    const pub = publicView.json<FarmActivity>();
    const shown = [...pub.recent, ...pub.failures];
    expect(shown.find((j) => j.id === byOwner.id)).toMatchObject({ prompts: ['own a', 'own b'], error: 'cancelled by its owner' });
    expect(shown.find((j) => j.id === byModerator.id)).toMatchObject({ prompts: ['mod a', 'mod b'], error: 'cancelled by a moderator' });
    expect(shown.find((j) => j.id === byOperator.id)?.error).toBe("cancelled by the farm's operator");

    const operator = await full();
    expect([...operator.recent, ...operator.failures].find((j) => j.id === byModerator.id)).toMatchObject({ error: `cancelled by ${MODERATOR}`, userId: OWNER });
  });

  it('hides the id in a job cancelled before userError left it out', async () => {
    const old = await submit(['old a', 'old b']);
    await cancelJob(f.farm, old.id, cancelReason(MODERATOR));
    // As an older release stored it: the reason, id included, as the owner's line too.
    await f.db.db.execute(sql`update jobs set user_error = error where id = ${old.id}`);
    const publicView = await f.get('/status/data');
    expect(publicView.text).not.toContain(MODERATOR);
    const pub = publicView.json<FarmActivity>();
    expect([...pub.recent, ...pub.failures].find((j) => j.id === old.id)?.error).toBe('cancelled by a moderator');
  });

  it('shows workers as "worker N" with state and GPU or CPU, without id, host or device; the full view has them', async () => {
    const worker = await f.worker('busy', { steps: 400, stepMs: 50 });
    const job = await submitJob(f.farm, { kind: 'blend', userId: OWNER, guildId: 'g-public', params: { ...CHEAP_BLEND, model: 'busy' } });
    await until(async () => (await getJob(f.farm, job.id))?.status === 'running');

    const publicView = await f.get('/status/data');
    expect(publicView.text).not.toContain('w-busy');
    expect(publicView.text).not.toContain('w-parked');
    const pub = publicView.json<FarmActivity>();
    expect(pub.workers.length).toBeGreaterThan(0);
    for (const w of pub.workers) {
      expect(w).not.toHaveProperty('id');
      expect(w).not.toHaveProperty('host');
      expect(w).not.toHaveProperty('device');
      expect(w.name).toMatch(/^worker \d+$/);
      expect(['GPU', 'CPU', 'other']).toContain(w.executionProvider);
    }
    const busy = pub.workers.find((w) => w.jobs.includes(job.id));
    expect(busy).toMatchObject({ online: true, executionProvider: 'other' });
    // The running job names its worker as the list does.
    expect(pub.running.find((j) => j.id === job.id)?.workerId).toBe(busy?.name);

    const operator = await full();
    const named = operator.workers.find((w) => w.id === 'w-busy');
    expect(named).toMatchObject({ name: 'w-busy', executionProvider: 'fake', jobs: [job.id] });
    expect(typeof named?.host).toBe('string');
    expect(operator.running.find((j) => j.id === job.id)?.workerId).toBe('w-busy');
    await cancelJob(f.farm, job.id, OPERATOR_CANCEL_REASON);
    await worker.stop('release', 0);
  });

  it('counts the last hour in buckets: finished and failed by finished_at, the wait of first claims by started_at', async () => {
    const done = await submit(['done a', 'done b']);
    const failed = await submit(['failed a', 'failed b']);
    const old = await submit(['old a', 'old b']);
    // A fresh hour for this test: every other job of this database moved out of it.
    await f.db.db.execute(sql`update jobs set finished_at = now() - interval '3 hours', started_at = now() - interval '3 hours' where finished_at is not null or started_at is not null`);
    await f.db.db.execute(
      sql`update jobs set status = 'done', attempts = 1, created_at = now() - interval '10 minutes', started_at = now() - interval '8 minutes', finished_at = now() - interval '7 minutes' where id = ${done.id}`,
    );
    await f.db.db.execute(sql`update jobs set status = 'failed', attempts = 2, started_at = now() - interval '32 minutes', finished_at = now() - interval '31 minutes' where id = ${failed.id}`);
    await f.db.db.execute(sql`update jobs set status = 'done', attempts = 1, started_at = now() - interval '2 hours', finished_at = now() - interval '2 hours' where id = ${old.id}`);

    const { hour } = (await f.get('/status/data')).json<FarmActivity>();
    expect(hour).toHaveLength(12);
    expect(hour.map((b) => b.finished)).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]);
    expect(hour.map((b) => b.failed)).toEqual([0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    expect(hour.map((b) => (b.meanWaitSeconds === null ? null : Math.round(b.meanWaitSeconds)))).toEqual([null, null, null, null, null, null, null, null, null, null, 120, null]);
    expect(Date.parse(hour[11].start) - Date.parse(hour[0].start)).toBe(55 * 60_000);
  });

  it('says who cancelled in words of its own (cancelledByText)', () => {
    expect(cancelledByText({ userId: 'u', error: 'cancelled by u' })).toBe('cancelled by its owner');
    expect(cancelledByText({ userId: 'u', error: 'cancelled by m' })).toBe('cancelled by a moderator');
    expect(cancelledByText({ userId: 'u', error: OPERATOR_CANCEL_REASON })).toBe("cancelled by the farm's operator");
    expect(cancelledByText({ userId: 'u', error: 'cancelled' })).toBe('cancelled');
  });
});

/** A status source whose snapshots resolve when the test says, counting how many were asked for. */
function slowSource(): StatusSource & { calls: boolean[]; release(): void } {
  let release!: () => void;
  let gate = new Promise<void>((resolve) => (release = resolve));
  const calls: boolean[] = [];
  return {
    calls,
    release() {
      release();
      gate = new Promise<void>((resolve) => (release = resolve));
    },
    async snapshot(full) {
      const n = calls.push(full);
      await gate;
      return { n, full };
    },
    async subscribe() {
      return async () => {};
    },
  };
}

describe('the status server under load', () => {
  let server: OpsServer | undefined;
  afterAll(async () => {
    await server?.close();
  });

  async function start(source: StatusSource, extra: { statusSnapshotMaxAgeMs?: number; maxStatusEventClients?: number } = {}): Promise<OpsServer> {
    await server?.close();
    server = await startOpsServer({ host: '127.0.0.1', port: 0, registry: new Registry(), readiness: [], status: source, statusToken: STATUS_TOKEN, role: 'bot', ...extra });
    return server;
  }

  it('makes one snapshot per view for concurrent /status/data requests, and serves it again for a while', async () => {
    const source = slowSource();
    const { url } = await start(source, { statusSnapshotMaxAgeMs: 60_000 });
    const pending = [fetch(`${url}/status/data`), fetch(`${url}/status/data`), fetch(`${url}/status/data`, { headers: { authorization: `Bearer ${STATUS_TOKEN}` } })];
    await until(() => source.calls.length >= 2);
    // Time for a request that would make a snapshot of its own to get there.
    await new Promise((resolve) => setTimeout(resolve, 200));
    source.release();
    const bodies = await Promise.all(pending.map(async (p) => (await p).json()));
    expect(bodies).toEqual([
      { n: 1, full: false },
      { n: 1, full: false },
      { n: 2, full: true },
    ]);
    expect(await (await fetch(`${url}/status/data`)).json()).toEqual({ n: 1, full: false });
    expect(source.calls).toEqual([false, true]);
  });

  it('makes a new snapshot once the last is older than its maximum age, and after one that failed', async () => {
    let clock = 0;
    let n = 0;
    let fail = true;
    const get = sharedSnapshots(
      async (key: string) => {
        n += 1;
        if (fail) throw new Error('database away');
        return `${key}${n}`;
      },
      2000,
      () => clock,
    );
    await expect(get('a')).rejects.toThrow('database away');
    fail = false;
    expect(await get('a')).toBe('a2');
    clock = 1999;
    expect(await get('a')).toBe('a2');
    clock = 2000;
    expect(await get('a')).toBe('a3');
  });

  it(`refuses /status/events clients past its cap with 503 and Retry-After (default ${MAX_STATUS_EVENT_CLIENTS})`, async () => {
    expect(MAX_STATUS_EVENT_CLIENTS).toBe(100);
    const { url } = await start(slowSource(), { maxStatusEventClients: 2 });
    const open = (): Promise<{ status: number; retryAfter?: string; req: http.ClientRequest; res: http.IncomingMessage }> =>
      new Promise((resolve, reject) => {
        const req = http.get(`${url}/status/events`, (res) => resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'] as string | undefined, req, res }));
        req.on('error', reject);
      });
    const first = await open();
    const second = await open();
    expect([first.status, second.status]).toEqual([200, 200]);
    const third = await open();
    expect(third.status).toBe(503);
    expect(Number(third.retryAfter)).toBeGreaterThan(0);
    third.res.resume();
    // A closed stream frees its place.
    first.req.destroy();
    let again: Awaited<ReturnType<typeof open>> | undefined;
    await until(async () => {
      again?.req.destroy();
      again = await open();
      return again.status === 200;
    });
    second.req.destroy();
    again?.req.destroy();
  });
});
