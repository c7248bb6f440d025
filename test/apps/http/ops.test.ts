// The operations server against a real farm (Postgres and PGlite) with a stand-in renderer:
// a job's wait and render land in the histograms and the queue gauge goes back to zero,
// refusals are counted, logs are JSON lines with job ids and no secrets, the status data hides
// private prompts without the operator token, and /readyz follows the database.
import { readFileSync } from 'node:fs';
import { sql } from 'drizzle-orm';
import pg from 'pg';
import { Writable } from 'node:stream';
import { discordRestMetrics, startOps } from '../../../apps/http/ops.ts';
import { createLogger } from '../../../apps/log.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BudgetExceededError, type FarmActivity, setStatusPageVisibility, submitJob, waitForJob } from '../../../farm/index.ts';
import { BACKENDS, CHEAP_BLEND, createTestDatabase, farmContext, TEST_PG_URL } from '../../helpers/db.ts';
import { DB_PASSWORD, DISCORD_TOKEN, type OpsFarm, sample, startOpsFarm, STATUS_TOKEN, until } from './helpers.ts';

describe.each(BACKENDS)('operations server on %s', (backend) => {
  let f: OpsFarm;
  beforeAll(async () => {
    f = await startOpsFarm(backend);
  });
  afterAll(async () => {
    await f?.close();
  });

  it('shows a finished job in the wait and render histograms, and the queue back at zero', async () => {
    await f.worker('ops', { steps: 3, stepMs: 20 });
    const job = await submitJob(f.farm, { kind: 'blend', userId: 'alice', params: { ...CHEAP_BLEND, model: 'ops' } });
    const done = await waitForJob(f.farm, job.id, { timeoutMs: 20_000 });
    expect(done.status).toBe('done');

    // The done event reaches the metrics through LISTEN/NOTIFY, possibly just after waitForJob.
    let text = '';
    await until(async () => {
      text = (await f.get('/metrics')).text;
      return sample(text, 'blendfarm_job_render_seconds_count', { kind: 'blend' }) === 1;
    });
    expect(sample(text, 'blendfarm_job_wait_seconds_count', { kind: 'blend' })).toBe(1);
    expect(sample(text, 'blendfarm_job_wait_seconds_sum', { kind: 'blend' })).toBeGreaterThanOrEqual(0);
    const renderSum = sample(text, 'blendfarm_job_render_seconds_sum', { kind: 'blend' })!;
    expect(renderSum).toBeCloseTo((done.finishedAt!.getTime() - done.startedAt!.getTime()) / 1000, 2);
    expect(sample(text, 'blendfarm_job_render_seconds_bucket', { kind: 'blend', le: '+Inf' })).toBe(1);
    expect(sample(text, 'blendfarm_jobs', { status: 'queued', model: 'ops' })).toBe(0);
    expect(sample(text, 'blendfarm_jobs', { status: 'running', model: 'ops' })).toBe(0);
    expect(sample(text, 'blendfarm_jobs_finished_total', { kind: 'blend', status: 'done' })).toBe(1);
    expect(sample(text, 'blendfarm_gpu_seconds_charged_total', { kind: 'blend' })).toBeCloseTo(done.chargedGpuSeconds!, 3);
    expect(sample(text, 'blendfarm_workers_online')).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'blendfarm_worker_heartbeat_age_seconds', { worker: 'w-ops' })).toBeGreaterThanOrEqual(0);
    expect(sample(text, 'blendfarm_worker_slots', { worker: 'w-ops' })).toBe(1);
    expect(sample(text, 'blendfarm_worker_attempt_seconds_count', { kind: 'blend', execution_provider: 'fake', outcome: 'ok' })).toBe(1);
    // Standard process metrics, and no prompt or user id anywhere in the exposition.
    expect(text).toContain('process_cpu_user_seconds_total');
    expect(text).not.toContain('alice');
    expect(text).not.toContain('red fox');

    // One JSON line per event, with job id, worker id, attempt and duration.
    const events = f.lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    const doneLine = events.find((e) => e.jobId === job.id && e.event === 'done');
    expect(doneLine).toMatchObject({ workerId: 'w-ops', attempt: 1, kind: 'blend', level: 30 });
    expect(doneLine?.renderSeconds).toBeCloseTo(renderSum, 3);
    expect(events.find((e) => e.jobId === job.id && e.event === 'claimed')).toMatchObject({ workerId: 'w-ops', attempt: 1 });
    const workerLine = events.find((e) => e.jobId === job.id && typeof e.durationSeconds === 'number');
    expect(workerLine).toMatchObject({ workerId: 'w-ops' });
  });

  it('counts failed attempts by cause, and refusals by reason', async () => {
    await f.worker('flaky', { steps: 2, stepMs: 5 });
    const job = await submitJob(f.farm, { kind: 'movie', userId: 'bob', params: { ...CHEAP_BLEND, prompts: ['[fake fail=1] a', 'b', 'c'], model: 'flaky' } });
    expect((await waitForJob(f.farm, job.id, { timeoutMs: 20_000 })).status).toBe('done');
    const poor = farmContext(f.db, { budget: { refillGpuSeconds: 1 } });
    const refused = await submitJob(poor, { kind: 'blend', userId: 'carol', params: { ...CHEAP_BLEND, width: 1024, height: 1024, steps: 50, model: 'flaky' } }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(BudgetExceededError);

    let text = '';
    await until(async () => {
      text = (await f.get('/metrics')).text;
      return sample(text, 'blendfarm_jobs_finished_total', { kind: 'movie', status: 'done' }) === 1;
    });
    expect(sample(text, 'blendfarm_job_attempt_failures_total', { kind: 'movie', cause: 'render_error', outcome: 'retried' })).toBe(1);
    expect(sample(text, 'blendfarm_job_wait_seconds_count', { kind: 'movie' })).toBe(2);
    expect(sample(text, 'blendfarm_submissions_refused_total', { reason: 'budget_exceeded' })).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'blendfarm_worker_attempt_seconds_count', { kind: 'movie', execution_provider: 'fake', outcome: 'error' })).toBe(1);
    const retry = f.lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((e) => e.jobId === job.id && e.event === 'retrying');
    expect(retry).toMatchObject({ level: 40, cause: 'render_error', attempt: 1 });
  });

  it('never writes a secret to the logs', () => {
    f.logger.info({ token: STATUS_TOKEN, databaseUrl: `postgres://app:${DB_PASSWORD}@db/farm`, nested: { password: DB_PASSWORD } }, `connecting with ${DISCORD_TOKEN}`);
    f.logger.warn(`could not reach postgresql://app:${encodeURIComponent('p@ss/word')}@db:5432/farm`);
    f.logger.error(new Error(`login failed for token ${DISCORD_TOKEN} and "${DB_PASSWORD}"`), 'gateway');
    const all = f.lines.join('\n');
    for (const secret of [STATUS_TOKEN, DB_PASSWORD, DISCORD_TOKEN, 'p%40ss%2Fword']) expect(all).not.toContain(secret);
    const last = f.lines.slice(-3).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(last[0]).toMatchObject({ token: '***', databaseUrl: '***', nested: { password: '***' }, msg: 'connecting with ***' });
    expect(last[1].msg).toBe('could not reach postgresql://app:***@db:5432/farm');
    expect(JSON.stringify(last[2])).toContain('login failed for token ***');
  });

  it("shows a public server's failure as its owner is told it; the worker's own text only with the operator token", async () => {
    await setStatusPageVisibility(f.farm, 'g-shown', 'public');
    await f.worker('faulty', { steps: 2, stepMs: 5 });
    const job = await submitJob(f.farm, { kind: 'blend', userId: 'fay', guildId: 'g-shown', params: { ...CHEAP_BLEND, prompts: ['[fake permanent] a', 'b'], model: 'faulty' } });
    expect((await waitForJob(f.farm, job.id, { timeoutMs: 20_000 })).status).toBe('failed');
    const publicView = await f.get('/status/data');
    expect(publicView.json<FarmActivity>().failures.find((j) => j.id === job.id)).toMatchObject({
      prompts: ['[fake permanent] a', 'b'],
      error: `something went wrong on the farm's side, not with your request; the farm's operator can look it up as job ${job.id}`,
    });
    expect(publicView.text).not.toContain('fake permanent failure');
    const full = (await f.get('/status/data', { authorization: `Bearer ${STATUS_TOKEN}` })).json<FarmActivity>();
    expect(full.failures.find((j) => j.id === job.id)?.error).toBe('fake permanent failure');
  });

  it('hides prompts of private servers and user ids without the operator token', async () => {
    await setStatusPageVisibility(f.farm, 'g-open', 'public');
    // The only worker for this model has stopped: the farm knows the model, so it accepts the jobs,
    // and they stay queued for the status page to show.
    const idle = await f.worker('nobody-runs-this');
    await idle.stop('release', 0);
    const open = await submitJob(f.farm, { kind: 'blend', userId: 'dora', guildId: 'g-open', params: { ...CHEAP_BLEND, prompts: ['open sea', 'open sky'], model: 'nobody-runs-this' } });
    const closed = await submitJob(f.farm, { kind: 'blend', userId: 'eve', guildId: 'g-closed', params: { ...CHEAP_BLEND, prompts: ['secret garden', 'secret door'], model: 'nobody-runs-this' } });

    const publicView = await f.get('/status/data');
    expect(publicView.status).toBe(200);
    expect(publicView.text).not.toContain('secret garden');
    expect(publicView.text).not.toContain('"eve"');
    expect(publicView.text).not.toContain('"userId"');
    const pub = publicView.json<FarmActivity>();
    expect(pub.view).toBe('public');
    expect(pub.queued.find((j) => j.id === open.id)?.prompts).toEqual(['open sea', 'open sky']);
    expect(pub.queued.find((j) => j.id === closed.id)).toMatchObject({ public: false, kind: 'blend', model: 'nobody-runs-this' });
    expect(pub.queue.find((q) => q.model === 'nobody-runs-this')).toEqual({ model: 'nobody-runs-this', queued: 2, running: 0 });

    const full = (await f.get('/status/data', { authorization: `Bearer ${STATUS_TOKEN}` })).json<FarmActivity>();
    expect(full.view).toBe('full');
    expect(full.queued.find((j) => j.id === closed.id)).toMatchObject({ prompts: ['secret garden', 'secret door'], userId: 'eve', guildId: 'g-closed' });

    const wrong = await f.get('/status/data', { authorization: 'Bearer not-the-token' });
    expect(wrong.status).toBe(401);
    expect(wrong.json<{ error: string }>().error).toMatch(/BLENDFARM_STATUS_TOKEN/);
    expect(wrong.text).not.toContain('secret garden');

    const gauge = (await f.get('/metrics')).text;
    expect(sample(gauge, 'blendfarm_jobs', { status: 'queued', model: 'nobody-runs-this' })).toBe(2);
  });

  it('serves every metric the Grafana dashboard and the Prometheus example use', () => {
    discordRestMetrics(f.ops.registry);
    const registered = new Set(f.ops.registry.getMetricsAsArray().map((m) => (m as unknown as { name: string }).name));
    const used = (file: string) => [...readFileSync(new URL(`../../../ops/${file}`, import.meta.url), 'utf8').matchAll(/\b(blendfarm_[a-z_0-9]+?)(?:_bucket|_count|_sum)?\b/g)].map((m) => m[1]);
    const names = [...new Set([...used('grafana/blendfarm.json'), ...used('prometheus.yml')])].filter((n) => !n.startsWith('blendfarm-'));
    expect(names.length).toBeGreaterThan(10);
    expect(names.filter((n) => !registered.has(n))).toEqual([]);
  });

  it('says why /readyz fails by the database error\'s code and message', async () => {
    await f.db.db.execute(sql`alter table drizzle.__drizzle_migrations rename to __drizzle_migrations_away`);
    try {
      const down = await f.get('/readyz');
      expect(down.status).toBe(503);
      expect(down.json()).toMatchObject({ ready: false, checks: { database: expect.stringMatching(/^the database check failed \(42P01: relation "drizzle.__drizzle_migrations" does not exist\)$/) } });
    } finally {
      await f.db.db.execute(sql`alter table drizzle.__drizzle_migrations_away rename to __drizzle_migrations`);
    }
    expect((await f.get('/readyz')).status).toBe(200);
  });

  it('exports the /readyz checks as blendfarm_ready (1 or 0 by check), for alerts on a process that answers but is not ready', async () => {
    let modelLoaded = false;
    f.ops.addReadiness({ name: 'test-model', check: async () => modelLoaded || 'the model is still loading' });
    const ready = async () => {
      const text = (await f.get('/metrics')).text;
      return { database: sample(text, 'blendfarm_ready', { check: 'database' }), model: sample(text, 'blendfarm_ready', { check: 'test-model' }) };
    };
    try {
      expect(await ready()).toEqual({ database: 1, model: 0 });
      await f.db.db.execute(sql`alter table drizzle.__drizzle_migrations rename to __drizzle_migrations_away`);
      try {
        expect(await ready()).toEqual({ database: 0, model: 0 });
      } finally {
        await f.db.db.execute(sql`alter table drizzle.__drizzle_migrations_away rename to __drizzle_migrations`);
      }
    } finally {
      // The check stays registered: ready from here on, for the tests after this one.
      modelLoaded = true;
    }
    expect(await ready()).toEqual({ database: 1, model: 1 });
    expect((await f.get('/readyz')).json()).toMatchObject({ ready: true, checks: { database: 'ok', 'test-model': 'ok' } });
  });

  it('answers /healthz, and /readyz with the database check', async () => {
    const health = await f.get('/healthz');
    expect(health.status).toBe(200);
    expect(health.json()).toMatchObject({ ok: true, role: 'bot' });
    const ready = await f.get('/readyz');
    expect(ready.status).toBe(200);
    expect(ready.json()).toMatchObject({ ready: true, checks: { database: 'ok' } });
    expect((await f.get('/nothing-here')).status).toBe(404);
  });
});

describe('readiness when Postgres stops accepting connections', () => {
  let f: OpsFarm;
  let admin: pg.Client;
  let name: string;
  beforeAll(async () => {
    f = await startOpsFarm('postgres');
    name = new URL(f.testDb.url!).pathname.slice(1);
    admin = new pg.Client({ connectionString: TEST_PG_URL });
    await admin.connect();
  });
  afterAll(async () => {
    await admin?.query(`alter database "${name}" allow_connections true`).catch(() => {});
    await admin?.end();
    await f?.close();
  });

  it('goes unready while the database is unreachable and ready again after', async () => {
    expect((await f.get('/readyz')).status).toBe(200);
    // "Stop" this database: refuse new connections and end the open ones (the pool's and LISTEN's).
    await admin.query(`alter database "${name}" allow_connections false`);
    await admin.query('select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()', [name]);
    let down = await f.get('/readyz');
    await until(async () => {
      down = await f.get('/readyz');
      return down.status === 503;
    });
    const body = down.json<{ ready: boolean; checks: { database: string } }>();
    expect(body.ready).toBe(false);
    expect(body.checks.database).toMatch(/^the database (check failed \(.+\)|did not answer within \d+ ms)$/);
    expect((await f.get('/healthz')).status).toBe(200);

    await admin.query(`alter database "${name}" allow_connections true`);
    await until(async () => (await f.get('/readyz')).status === 200);
    expect((await f.get('/readyz')).json()).toMatchObject({ ready: true, checks: { database: 'ok' } });
  });

  it('keeps answering /metrics while the database is away: blendfarm_ready says so, the database gauges are left out, no query text anywhere', async () => {
    expect(sample((await f.get('/metrics')).text, 'blendfarm_ready', { check: 'database' })).toBe(1);
    await admin.query(`alter database "${name}" allow_connections false`);
    await admin.query('select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()', [name]);
    try {
      await until(async () => (await f.get('/readyz')).status === 503);
      const metrics = await f.get('/metrics');
      expect(metrics.status).toBe(200);
      expect(sample(metrics.text, 'blendfarm_ready', { check: 'database' })).toBe(0);
      expect(sample(metrics.text, 'process_cpu_user_seconds_total')).toBeGreaterThan(0);
      expect(sample(metrics.text, 'blendfarm_gpu_seconds_charged_total', { kind: 'blend' })).toBeGreaterThanOrEqual(0);
      // The gauges that read the database are left out, not answered with stale or made-up numbers.
      expect(metrics.text).not.toMatch(/^# TYPE blendfarm_jobs /m);
      expect(metrics.text).not.toMatch(/failed query|\bselect\b|params:/i);
      // Said once per metric in the log, with the database error's code, not the query.
      const leftOut = f.lines.filter((l) => l.includes('/metrics: blendfarm_jobs left out'));
      expect(leftOut).toHaveLength(1);
      expect(leftOut[0]).not.toMatch(/failed query|\bselect\b|params:/i);
      await f.get('/metrics');
      expect(f.lines.filter((l) => l.includes('/metrics: blendfarm_jobs left out'))).toHaveLength(1);
      // Whatever else fails for the database answers its code and message, not the query.
      const data = await f.get('/status/data');
      expect(data.status).toBe(500);
      expect(data.text).not.toMatch(/failed query|\bselect\b|params:/i);
    } finally {
      await admin.query(`alter database "${name}" allow_connections true`);
    }
    await until(async () => /^# TYPE blendfarm_jobs gauge$/m.test((await f.get('/metrics')).text));
    expect(sample((await f.get('/metrics')).text, 'blendfarm_ready', { check: 'database' })).toBe(1);
    expect(f.lines.some((l) => l.includes('/metrics: blendfarm_jobs is collected again'))).toBe(true);
  });
});

describe('the readiness timeout', () => {
  it('is one setting for /readyz and the blendfarm_ready gauge: a check that never answers reads "no answer within" that time in both', async () => {
    const testDb = await createTestDatabase('pglite');
    const db = await testDb.open();
    const logger = createLogger({ name: 'test', format: 'json', destination: new Writable({ write: (_chunk, _encoding, callback) => callback() }) });
    const ops = await startOps({ role: 'worker', farm: farmContext(db), host: '127.0.0.1', port: 0, logger, countJobEvents: false, statusPage: false, checkTimeoutMs: 300, readiness: [{ name: 'stuck', check: () => new Promise(() => {}) }] });
    try {
      const base = `http://127.0.0.1:${ops.server.port}`;
      const ready = await fetch(`${base}/readyz`);
      expect(ready.status).toBe(503);
      expect(await ready.json()).toMatchObject({ ready: false, checks: { database: 'ok', stuck: 'no answer within 300 ms' } });
      const metrics = await (await fetch(`${base}/metrics`)).text();
      expect(sample(metrics, 'blendfarm_ready', { check: 'stuck' })).toBe(0);
      expect(sample(metrics, 'blendfarm_ready', { check: 'database' })).toBe(1);
    } finally {
      await ops.stop();
      await db.close();
      await testDb.drop();
    }
  });
});
