// The operator CLI, run in-process against both back ends: --json shapes (documented in
// farm/README.md), exit codes, and --wait (on PGlite it renders in the same process).
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sql } from 'drizzle-orm';
import { describe, expect, it } from 'vitest';
import { type FarmDb, queryRows } from '../../db/client.ts';
import { farmCli, USAGE } from '../../apps/farm-cli/main.ts';
import { UPSCALE_FACTORS } from '../../farm/limits.ts';
import { loadConfig, settings } from '../../config/index.ts';
import { farmConfigFrom } from '../../farm/config.ts';
import { farmActivity } from '../../farm/activity.ts';
import { FAKE_WARNING, FakeRenderer } from '../../farm/fake-renderer.ts';
import { updateGuildSettings } from '../../farm/guilds.ts';
import { FarmWorker } from '../../farm/worker.ts';
import { markWorkerStopped, registerWorker } from '../../farm/worker-registry.ts';
import { runTool } from '../helpers/cli.ts';
import { BACKENDS, CHEAP_BLEND, farmContext, GENEROUS_BUDGET, type TestDatabase } from '../helpers/db.ts';
import { recordEvent } from '../../farm/events.ts';
import { submitJob } from '../../farm/jobs.ts';
import { claimJob, completeJob, failAttempt } from '../../farm/queue.ts';
import type { ClaimedJob } from '../../farm/types.ts';
import { useTestFarm } from '../helpers/farm.ts';
import { useTempDir } from '../helpers/temp-dir.ts';

const ENV = {
  BLENDFARM_RENDERER: 'farm/fake-renderer.ts',
  // Videos stay in memory: the default spool folder (./data/spool) would be inside the checkout.
  BLENDFARM_SPOOL_DIR: 'off',
  BLENDFARM_RENDERER_OPTIONS: '{"stepMs":5,"models":["demo"]}',
  BLENDFARM_LEASE_SECONDS: '2',
  BLENDFARM_HEARTBEAT_SECONDS: '0.25',
  BLENDFARM_POLL_INTERVAL_MS: '50',
  BLENDFARM_REFILL_GPU_SECONDS: '1000',
  BLENDFARM_MAX_ACTIVE_JOBS: '20',
};

const JOB_KEYS = [
  'attempts', 'channelId', 'chargedGpuSeconds', 'createdAt', 'deliveredAt', 'error', 'finishedAt', 'guildId', 'id', 'kind', 'maxAttempts',
  'messageId', 'params', 'parentJobId', 'progress', 'reservedGpuSeconds', 'spentGpuSeconds', 'startedAt', 'status', 'userError', 'userId', 'workerId',
];

describe.each(BACKENDS)('farm CLI on %s', (backend) => {
  let db: FarmDb;

  async function cli(...argv: string[]): Promise<{ code: number; stdout: string; stderr: string; json: any }> {
    const out: string[] = [];
    const err: string[] = [];
    const code = await farmCli(argv, { db, env: ENV, stdout: (t) => out.push(t), stderr: (t) => err.push(t) });
    const stdout = out.join('\n');
    return { code, stdout, stderr: err.join('\n'), json: argv.includes('--json') && stdout ? JSON.parse(stdout) : undefined };
  }

  useTestFarm(backend, {}, (t) => ({ db } = t));

  it('fetch refuses an --out in a missing folder in one line, before reading anything', async () => {
    const { code, stdout, stderr } = await cli('fetch', '1', '--out', '/nonexistent-folder-bf/x.mp4');
    expect([code, stdout]).toEqual([2, '']);
    expect(stderr).toContain('--out /nonexistent-folder-bf/x.mp4: there is no folder /nonexistent-folder-bf; create it or give another path');
    expect(stderr).not.toMatch(/ENOENT/);
  });

  it('submits a blend and prints the documented job shape', async () => {
    const { code, json } = await cli('submit', 'blend', 'a red fox', 'a blue whale', '--user', 'op-1', '--size', '256x128', '--quality', 'draft', '--seed', '7', '--seed', '8', '--json');
    expect(code).toBe(0);
    expect(Object.keys(json)).toEqual(['job']);
    expect(Object.keys(json.job).sort()).toEqual(JOB_KEYS);
    expect(json.job).toMatchObject({ kind: 'blend', status: 'queued', userId: 'op-1', attempts: 0, maxAttempts: 3, parentJobId: null });
    expect(json.job.params).toMatchObject({ prompts: ['a red fox', 'a blue whale'], seeds: [7, 8], width: 256, height: 128, steps: 4 });
    expect(json.job.reservedGpuSeconds).toBeGreaterThan(0);
    expect(new Date(json.job.createdAt).getTime()).toBeGreaterThan(0);
  });

  it('waits for a movie to finish and reports the artifact', async () => {
    // Postgres: a worker elsewhere does the work. PGlite: the CLI renders in its own process.
    const worker = backend === 'postgres' ? new FarmWorker({ farm: { db, config: farmConfigFrom(loadConfig(ENV)) }, renderer: new FakeRenderer({ models: ['demo'], stepMs: 5 }), log: () => {} }) : undefined;
    await worker?.start();
    const { code, json } = await cli('submit', 'movie', 'dawn', 'noon', 'dusk', '--user', 'op-2', '--quality', 'draft', '--wait', '--timeout', '30', '--json');
    await worker?.stop();
    expect(code).toBe(0);
    expect(json.job).toMatchObject({ kind: 'movie', status: 'done', attempts: 1 });
    expect(json.job.spentGpuSeconds).toBeGreaterThan(0);
    expect(json.artifact).toMatchObject({ format: 'mp4', mime: 'video/mp4', meta: { renderer: 'fake', prompts: ['dawn', 'noon', 'dusk'] } });
    expect(json.artifact.sizeBytes).toBeGreaterThan(0);

    const reroll = await cli('submit', 'reroll', '--parent', String(json.job.id), '--user', 'op-3', '--json');
    expect(reroll.code).toBe(0);
    expect(reroll.json.job).toMatchObject({ kind: 'reroll', parentJobId: json.job.id, userId: 'op-3', params: { prompts: ['dawn', 'noon', 'dusk'] } });
  });

  it('prints the warnings stored with a result after --wait and in show (a prompt the engine cut)', async () => {
    const worker = backend === 'postgres' ? new FarmWorker({ farm: { db, config: farmConfigFrom(loadConfig(ENV)) }, renderer: new FakeRenderer({ models: ['demo'], stepMs: 5 }), log: () => {} }) : undefined;
    await worker?.start();
    const waited = await cli('submit', 'blend', '[fake warn] a long kite', 'a cloud', '--user', 'op-warn', '--quality', 'draft', '--wait', '--timeout', '30');
    await worker?.stop();
    expect(waited.code).toBe(0);
    const lines = waited.stdout.split('\n');
    expect(lines[0]).toMatch(/^Job (\d+) done: /);
    expect(lines.slice(1)).toEqual([`warning: ${FAKE_WARNING}`]);
    const id = /^Job (\d+)/.exec(lines[0])![1];
    // Aligned with the other keys in show's block.
    expect((await cli('show', id)).stdout.split('\n').filter((line) => line.startsWith('warning:')).map((line) => line.replace(/^warning: +/, 'warning: '))).toEqual([`warning: ${FAKE_WARNING}`]);
    // A result without warnings prints none.
    const quiet = await cli('show', String((await cli('submit', 'blend', 'x', 'y', '--user', 'op-warn', '--json')).json.job.id));
    expect(quiet.stdout).not.toContain('warning:');
  });

  it('shows status, budgets, cancels and retries', async () => {
    const submitted = (await cli('submit', 'blend', 'x', 'y', '--user', 'op-4', '--json')).json.job;
    const status = await cli('status', '--json');
    expect(status.code).toBe(0);
    expect(Object.keys(status.json)).toEqual(['database', 'counts', 'running', 'queued', 'recent', 'workers']);
    expect(status.json.counts.queued).toBeGreaterThanOrEqual(1);
    expect(status.json.queued.find((j: { id: number }) => j.id === submitted.id).position).toBeGreaterThanOrEqual(1);
    expect(status.json.recent[0].status).toBe('done');
    expect(status.json.workers.length).toBeGreaterThanOrEqual(1);
    expect(Object.keys(status.json.workers[0]).sort()).toEqual(['capabilities', 'concurrency', 'heartbeatAt', 'host', 'id', 'online', 'pid', 'runningJobs', 'startedAt', 'stoppedAt']);

    const budget = await cli('budget', '--user', 'op-4', '--grant', '25', '--note', 'thanks', '--json');
    expect(budget.json).toMatchObject({ userId: 'op-4', refillGpuSeconds: 1000, activeJobs: 1, maxActiveJobs: 20 });
    expect(budget.json.balanceGpuSeconds).toBeCloseTo(1025 - submitted.reservedGpuSeconds, 3);
    expect(budget.json.heldGpuSeconds).toBeCloseTo(submitted.reservedGpuSeconds, 3);
    expect(budget.json.ledger[0]).toMatchObject({ kind: 'grant', amountGpuSeconds: 25, note: 'thanks' });
    // A negative grant as an operator types it (node's parseArgs alone read "-5" as a flag: "ambiguous").
    const taken = await cli('budget', '--user', 'op-4', '--grant', '-5', '--note', '-5 for a test', '--json');
    expect(taken.code).toBe(0);
    expect(taken.json.ledger[0]).toMatchObject({ kind: 'grant', amountGpuSeconds: -5, note: '-5 for a test' });

    const cancelled = await cli('cancel', String(submitted.id), '--json');
    expect(cancelled.json).toMatchObject({ cancelled: true, refundedGpuSeconds: submitted.reservedGpuSeconds, job: { status: 'cancelled' } });
    expect((await cli('cancel', String(submitted.id), '--json')).json.cancelled).toBe(false);
    expect((await cli('cancel', String(submitted.id))).stdout).toBe(`Job ${submitted.id} had already been cancelled; nothing to cancel.`);
    const retried = await cli('retry', String(submitted.id), '--json');
    expect(retried.json.job).toMatchObject({ id: submitted.id, status: 'queued', attempts: 0 });
  });

  it('budget reads: says when a refill is due and whose limits it shows, and applies nothing', async () => {
    const farm = { db, config: farmConfigFrom(loadConfig(ENV)) };
    await updateGuildSettings(farm, 'g-roles-cli', { refillGpuSeconds: 1200, role: { roleId: 'patron', override: { refillGpuSeconds: 3000 } } });
    await cli('submit', 'blend', 'x', 'y', '--user', 'op-due', '--json');
    // The period ends: the refill is due, and only the member's next request applies it.
    await db.db.execute(sql`update users set last_refill_at = now() - interval '2 days' where id = 'op-due'`);
    const ledger = async () => (await queryRows<{ n: number }>(db.db, sql`select count(*)::int as n from budget_ledger where user_id = 'op-due'`))[0].n;
    const entries = await ledger();

    const plain = await cli('budget', '--user', 'op-due');
    expect(plain.code).toBe(0);
    expect(plain.stdout).toContain("a refill to 1000 is due: the member's next request applies it, with the limits of where it is made (limits outside any server; --guild ID for a server's).");
    const inServer = await cli('budget', '--user', 'op-due', '--guild', 'g-roles-cli', '--json');
    expect(inServer.json).toMatchObject({ refillDue: true, limitsComplete: false, refillGpuSeconds: 1200 });
    expect((await cli('budget', '--user', 'op-due', '--guild', 'g-roles-cli')).stdout).toContain(
      "a refill to 1200 is due: the member's next request applies it, with the limits of where it is made (limits without the member's roles: this server's role overrides may give more).",
    );
    expect(await ledger()).toBe(entries);

    // Once a request applied it: the next one, and no scope note for a server whose limits are complete.
    await cli('submit', 'blend', 'x', 'y', '--user', 'op-due', '--json');
    const after = await cli('budget', '--user', 'op-due', '--guild', 'g-plain-cli');
    expect(after.stdout).toMatch(/; tops up to 1000 every 86400 s, next at \d{4}-\d{2}-\d{2}T[^ ]+Z\.$/);
  });

  it('budget says what a due refill adds when the period gave a smaller allowance already: 1 after a raise from 90 to 91, in text and --json', async () => {
    const farm = { db, config: farmConfigFrom(loadConfig(ENV)) };
    const here = { guildId: 'g-raise-cli', roleIds: [] };
    await updateGuildSettings(farm, 'g-raise-cli', { refillGpuSeconds: 90 });
    // Refilled to 90 here, 2 of them used (a worker of its own, known to the farm before the job comes).
    const worker = { models: ['m-raise'], maxPixels: 1 << 30, executionProvider: 'test' };
    await registerWorker(farm, { id: 'w-raise', host: 'test', pid: 1, concurrency: 1, capabilities: worker });
    const job = await submitJob(farm, { kind: 'blend', userId: 'op-raise', ...here, params: { ...CHEAP_BLEND, model: 'm-raise' } });
    const claimed = (await claimJob(farm, 'w-raise', worker)) as ClaimedJob;
    expect(claimed.id).toBe(job.id);
    await completeJob(farm, claimed, { artifact: { format: 'mp4', mime: 'video/mp4', sizeBytes: 1, meta: {}, data: Buffer.from('x') }, gpuSeconds: 2 });
    await markWorkerStopped(farm, 'w-raise');
    await updateGuildSettings(farm, 'g-raise-cli', { refillGpuSeconds: 91 });

    const raised = await cli('budget', '--user', 'op-raise', '--guild', 'g-raise-cli', '--json');
    expect(raised.json).toMatchObject({ balanceGpuSeconds: 88, refillDue: true, refillGpuSeconds: 91, refillAddsGpuSeconds: 1, refilledWithinPeriodGpuSeconds: 90 });
    expect(Object.keys(raised.json).slice(-3)).toEqual(['refillAddsGpuSeconds', 'refilledWithinPeriodGpuSeconds', 'ledger']);
    expect((await cli('budget', '--user', 'op-raise', '--guild', 'g-raise-cli')).stdout).toBe(
      "op-raise: 88 GPU-seconds left (0 held by 0/20 active jobs); a refill is due: the member's next request with these limits adds 1 GPU-second (refilled to 90 within the period; a larger allowance adds only the difference).",
    );
    // The farm's 1000 outside servers: 1000 less the 90, not the top-up to 1000 (912).
    const outside = await cli('budget', '--user', 'op-raise', '--json');
    expect(outside.json).toMatchObject({ refillDue: true, refillGpuSeconds: 1000, refillAddsGpuSeconds: 910, refilledWithinPeriodGpuSeconds: 90 });

    // An ordinary due refill (a new period) is worded as before, and its JSON names no cap.
    await db.db.execute(sql`update users set last_refill_at = now() - interval '2 days' where id = 'op-raise'`);
    await db.db.execute(sql`update budget_ledger set created_at = created_at - interval '2 days' where user_id = 'op-raise'`);
    const ordinary = await cli('budget', '--user', 'op-raise', '--guild', 'g-raise-cli', '--json');
    expect(ordinary.json).toMatchObject({ refillDue: true, refillAddsGpuSeconds: 3, refilledWithinPeriodGpuSeconds: null });
    expect((await cli('budget', '--user', 'op-raise', '--guild', 'g-raise-cli')).stdout).toContain(
      "a refill to 91 is due: the member's next request applies it, with the limits of where it is made.",
    );
    // Nothing due: both null.
    await submitJob(farm, { kind: 'blend', userId: 'op-raise', ...here, params: { ...CHEAP_BLEND, model: 'm-raise' } });
    expect((await cli('budget', '--user', 'op-raise', '--guild', 'g-raise-cli', '--json')).json).toMatchObject({ refillDue: false, refillAddsGpuSeconds: null, refilledWithinPeriodGpuSeconds: null });
  });

  it('upscales with the farm\'s factors (2|3|4) and a named --upscaler', async () => {
    expect(USAGE).toContain(`--factor ${UPSCALE_FACTORS.join('|')}] [--upscaler ID]`);
    const worker = backend === 'postgres' ? new FarmWorker({ farm: { db, config: farmConfigFrom(loadConfig(ENV)) }, renderer: new FakeRenderer({ models: ['demo'], stepMs: 5 }), log: () => {} }) : undefined;
    await worker?.start();
    const parent = await cli('submit', 'blend', 'a kite', 'a cloud', '--user', 'op-up', '--quality', 'draft', '--wait', '--timeout', '30', '--json');
    await worker?.stop();
    expect(parent.json.job.status).toBe('done');
    const id = String(parent.json.job.id);

    const three = await cli('submit', 'upscale', '--parent', id, '--user', 'op-up', '--factor', '3', '--upscaler', 'esrgan-medium', '--json');
    expect(three.code).toBe(0);
    expect(three.json.job).toMatchObject({ kind: 'upscale', parentJobId: parent.json.job.id, params: { upscaleFactor: 3, upscaler: 'esrgan-medium' } });

    // A factor the farm does not make, and the flags on another kind: bad command lines.
    const five = await cli('submit', 'upscale', '--parent', id, '--user', 'op-up', '--factor', '5');
    expect(five.code).toBe(2);
    expect(five.stderr).toContain(`--factor must be one of ${UPSCALE_FACTORS.join(', ')}, got "5"`);
    const onReroll = await cli('submit', 'reroll', '--parent', id, '--user', 'op-up', '--upscaler', 'esrgan-medium');
    expect(onReroll.code).toBe(2);
    expect(onReroll.stderr).toContain('--factor and --upscaler are for submit upscale, not reroll.');
    // Render options a follow-up does not take are refused by name, not dropped (seeds were drawn at random, exit 0).
    const jobCount = async () => Number(((await db.db.execute(sql`select count(*) as n from jobs`)) as unknown as { rows: Array<{ n: unknown }> }).rows[0].n);
    const jobsBefore = await jobCount();
    const seeded = await cli('submit', 'extend', 'a forest in fog', '--parent', id, '--user', 'op-up', '--seed', '3', '--fps', '24', '--json');
    expect(seeded.code).toBe(2);
    expect(seeded.json.error.message).toBe("submit extend does not take --seed, --fps: a follow-up renders with its parent's settings; it takes the next prompt(s) (with the parent's settings, new seeds).");
    for (const [kind, flag] of [['reroll', '--duration'], ['upscale', '--format'], ['extend', '--size']] as const) {
      const r = await cli('submit', kind, ...(kind === 'extend' ? ['more'] : []), '--parent', id, '--user', 'op-up', flag, flag === '--size' ? '64x64' : flag === '--format' ? 'gif' : '2');
      expect([r.code, r.stderr.includes(`submit ${kind} does not take ${flag}`)], `${kind} ${flag}`).toEqual([2, true]);
    }
    const prompted = await cli('submit', 'reroll', 'a new prompt', '--parent', id, '--user', 'op-up');
    expect([prompted.code, prompted.stderr.includes('submit reroll takes no prompts (got "a new prompt")')]).toEqual([2, true]);
    expect(await jobCount()).toBe(jobsBefore); // nothing was queued
    // The farm's rule for upscalers of one scale: x4-diffusion makes 4x only.
    const fixed = await cli('submit', 'upscale', '--parent', id, '--user', 'op-up', '--factor', '2', '--upscaler', 'x4-diffusion', '--json');
    expect(fixed.code).toBe(1);
    expect(fixed.json.error.code).toBe('invalid_params');
    expect(fixed.json.error.issues.join(' ')).toContain('x4-diffusion cannot make 2x');
  });

  it('explains refusals in JSON with exit status 1, and bad command lines with 2', async () => {
    const invalid = await cli('submit', 'blend', 'only one prompt', '--user', 'op-5', '--fps', '500', '--json');
    expect(invalid.code).toBe(1);
    expect(invalid.json.error).toMatchObject({ code: 'invalid_params', issues: ['a blend needs exactly 2 prompts (got 1)', 'fps must be an integer between 1 and 60 (got 500)'] });

    const tooBig = await cli('submit', 'blend', 'a', 'b', '--user', 'op-5', '--size', '2048x2048', '--quality', 'max', '--duration', '30', '--json');
    expect(tooBig.code).toBe(1);
    expect(tooBig.json.error).toMatchObject({ code: 'budget_exceeded', balanceGpuSeconds: 1000, refillGpuSeconds: 1000 });
    expect(tooBig.json.error.costGpuSeconds).toBeGreaterThan(1000);

    const missing = await cli('retry', '999999', '--json');
    expect(missing.json.error.code).toBe('not_found');

    expect((await cli('submit', 'blend', 'a', 'b')).code).toBe(2);
    // vary needs a picture the CLI does not upload: a usage error, not a follow-up of the parent.
    const vary = await cli('submit', 'vary', '--parent', '1', '--user', 'op-5');
    expect(vary.code).toBe(2);
    expect(vary.stderr).toContain('submit needs a kind: blend, movie, reroll, upscale or extend (got "vary").');
    const unknown = await cli('frobnicate');
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('Unknown command "frobnicate"');
    expect((await cli('submit', 'blend', 'a', 'b', '--user', 'u', '--fps', 'fast')).stderr).toContain('--fps must be a whole number, got "fast"');
  });

  it('makes a server\'s prompts public on the status page, and private again', async () => {
    const farm = { db, config: farmConfigFrom(loadConfig(ENV)) };
    const submitted = (await cli('submit', 'blend', 'harbour at dawn', 'harbour at dusk', '--user', 'op-6', '--guild', 'g-cli', '--json')).json.job;
    // Queued, or already picked up by a worker of an earlier test: wherever the status page lists it.
    const publicJob = async () => {
      const view = await farmActivity(farm, { full: false });
      return [...view.queued, ...view.running, ...view.recent, ...view.failures].find((j) => j.id === submitted.id);
    };
    expect(await publicJob()).toMatchObject({ public: false });
    expect((await publicJob())?.prompts).toBeUndefined();

    const opened = await cli('guild', 'g-cli', 'status-page', 'public', '--json');
    expect(opened.code).toBe(0);
    expect(opened.json).toEqual({ guildId: 'g-cli', statusPage: 'public' });
    expect(await publicJob()).toMatchObject({ public: true, prompts: ['harbour at dawn', 'harbour at dusk'] });

    const closed = await cli('guild', 'g-cli', 'status-page', 'private');
    expect(closed.code).toBe(0);
    expect(closed.stdout).toContain('hidden from the public status page');
    expect((await publicJob())?.prompts).toBeUndefined();

    // Strict: exactly one setting and one value, no other flags; the server id follows the farm's id rule.
    for (const argv of [
      ['guild', 'g-cli'],
      ['guild', 'g-cli', 'status-page', 'open'],
      ['guild', 'g-cli', 'status-page', 'public', 'now'],
      ['guild', 'g-cli', 'budget', 'public'],
      ['guild', 'g-cli', 'status-page', 'public', '--user', 'op-6'],
    ]) {
      const bad = await cli(...argv);
      expect(bad.code, argv.join(' ')).toBe(2);
      expect(bad.stderr).toMatch(/status-page/);
    }
    const badId = await cli('guild', 'g cli', 'status-page', 'public', '--json');
    expect(badId.code).toBe(1);
    expect(badId.json.error).toMatchObject({ code: 'invalid_params', field: 'guild id' });
    expect((await publicJob())?.prompts).toBeUndefined();
  });

  it('show prints the job as an aligned key: value block: owner, parameters, attempts, times, GPU time, video, parent and follow-ups', async () => {
    const worker = backend === 'postgres' ? new FarmWorker({ farm: { db, config: farmConfigFrom(loadConfig(ENV)) }, renderer: new FakeRenderer({ models: ['demo'], stepMs: 5 }), log: () => {} }) : undefined;
    await worker?.start();
    const done = await cli('submit', 'blend', 'a red fox', 'a blue whale', '--user', 'op-show', '--guild', 'g-show', '--negative', 'blurry', '--seed', '7', '--seed', '8', '--size', '256x128', '--quality', 'draft', '--fps', '8', '--wait', '--timeout', '30', '--json');
    await worker?.stop();
    expect(done.json.job.status).toBe('done');
    const id = done.json.job.id as number;
    const reroll = (await cli('submit', 'reroll', '--parent', String(id), '--user', 'op-show', '--json')).json.job;

    const shown = await cli('show', String(id));
    expect([shown.code, shown.stderr]).toEqual([0, '']);
    const lines = shown.stdout.split('\n');
    // Aligned: every value starts in the same column.
    const column = lines[0].indexOf(String(id));
    for (const line of lines) expect(line, line).toMatch(new RegExp(`^[a-z0-9 -]+: *\\S.*$`));
    for (const line of lines) expect(line.slice(0, column).trimEnd().endsWith(':') && line[column] !== ' ', line).toBe(true);
    const value = (key: string) => lines.find((line) => line.startsWith(`${key}:`))?.slice(column);
    expect(value('job')).toBe(String(id));
    expect(value('kind')).toBe('blend');
    expect(value('status')).toBe('done');
    expect(value('user')).toBe('op-show');
    expect(value('guild')).toBe('g-show');
    expect(value('model')).toBe('demo');
    expect(value('prompt 1')).toBe('"a red fox" (seed 7)');
    expect(value('prompt 2')).toBe('"a blue whale" (seed 8)');
    expect(value('negative')).toBe('"blurry"');
    expect(value('size')).toBe('256x128');
    expect(value('fps')).toBe('8');
    expect(value('steps')).toBe(String(done.json.job.params.steps));
    expect(value('duration')).toBe(`${done.json.job.params.durationSeconds} s per transition`);
    expect(value('format')).toBe('mp4');
    expect(value('attempts')).toBe('1/3');
    expect(value('worker')).toBe(done.json.job.workerId);
    expect(value('progress')).toMatch(/^100% /);
    expect(value('created')).toBe(done.json.job.createdAt);
    expect(value('started')).toMatch(new RegExp(`^${done.json.job.startedAt} \\(after \\d+\\.\\d s queued\\)$`));
    expect(value('finished')).toMatch(new RegExp(`^${done.json.job.finishedAt} \\(ran \\d+\\.\\d s, \\d+\\.\\d s in all\\)$`));
    expect(value('reserved')).toBe(`${done.json.job.reservedGpuSeconds} GPU-seconds`);
    expect(value('spent')).toMatch(/^[\d.]+ GPU-seconds$/);
    expect(value('charged')).toMatch(/^[\d.]+ GPU-seconds$/);
    expect(value('video')).toBe(`${done.json.artifact.sizeBytes} bytes, video/mp4 (mp4)`);
    expect(value('fetch')).toBe(`npm run farm -- fetch ${id} --out job-${id}.mp4`);
    expect(value('follow-ups')).toBe(`job ${reroll.id} (reroll, ${reroll.status})`);
    // Absent values are left out: no error, no parent, no delivery.
    expect(value('error') ?? value('parent') ?? value('delivered') ?? value('user error')).toBeUndefined();

    // The follow-up names its parent; the full error for operators, and the owner's line apart when it differs.
    await db.db.execute(sql`update jobs set status = 'failed', error = ${'worker w-1: onnxruntime exploded\nat line 2'}, user_error = 'The render failed; try again.' where id = ${reroll.id}`);
    const child = (await cli('show', String(reroll.id))).stdout.split('\n');
    const at = child[0].indexOf(String(reroll.id));
    const childValue = (key: string) => child.find((line) => line.startsWith(`${key}:`))?.slice(at);
    expect(childValue('parent')).toBe(`job ${id} (blend, done)`);
    expect(childValue('status')).toBe('failed');
    expect(childValue('error')).toBe('worker w-1: onnxruntime exploded');
    expect(child[child.findIndex((line) => line.startsWith('error:')) + 1]).toBe(`${' '.repeat(at)}at line 2`);
    expect(childValue('user error')).toBe('The render failed; try again.');
    expect(childValue('video')).toBeUndefined();

    // --json is as it was.
    const json = await cli('show', String(id), '--json');
    expect(Object.keys(json.json)).toEqual(['job', 'artifact']);
    expect(Object.keys(json.json.job).sort()).toEqual(JOB_KEYS);
  });

  it('with --json answers usage errors in JSON on stdout too (exit 2), for every command; text mode unchanged', async () => {
    for (const [argv, message] of [
      [['show', 'abc'], 'show needs a job id'],
      [['show'], 'show needs a job id'],
      [['cancel', 'x'], 'cancel needs a job id'],
      [['retry'], 'retry needs a job id'],
      [['fetch', '1'], 'fetch needs --out FILE.'],
      [['fetch', '1', '--out', '/nonexistent-folder-bf/x.mp4'], 'there is no folder /nonexistent-folder-bf'],
      [['submit', 'blend', 'a', 'b'], 'submit needs --user ID'],
      [['submit', 'blend', 'a', 'b', '--user', 'u', '--fps', 'fast'], '--fps must be a whole number, got "fast"'],
      [['submit', 'reroll', '--user', 'u'], 'submit reroll needs --parent JOB'],
      [['budget'], 'budget needs --user ID.'],
      [['guild', 'g-json', 'status-page', 'open'], 'status-page is public or private (got "open")'],
      [['frobnicate'], 'Unknown command "frobnicate"'],
      [['status', '--bogus'], "Unknown option '--bogus'"],
      [[], 'A command is needed'],
    ] as Array<[string[], string]>) {
      const r = await cli(...argv, '--json');
      expect([r.code, r.stderr], argv.join(' ')).toEqual([2, '']);
      expect(Object.keys(r.json), argv.join(' ')).toEqual(['error']);
      expect(r.json.error.code).toBe('usage');
      expect(r.json.error.message, argv.join(' ')).toContain(message);
    }
    // Text mode: on stderr with the pointer to --help, nothing on stdout.
    const text = await cli('show', 'abc');
    expect([text.code, text.stdout]).toEqual([2, '']);
    expect(text.stderr).toContain('show needs a job id: a whole number from 1 to 9007199254740991 (got "abc")');
    expect(text.stderr).toContain('Run `npm run farm -- --help` for usage.');
    // --help with --json: the usage text in JSON.
    const help = await cli('--help', '--json');
    expect([help.code, help.json]).toEqual([0, { usage: USAGE }]);
    expect(USAGE).toContain('fetch JOB --out FILE [--json]');
    // A refusal of the farm stays exit 1, in JSON.
    const missing = await cli('show', '999999', '--json');
    expect([missing.code, missing.json]).toEqual([1, { error: { code: 'not_found', message: 'There is no job 999999; check the id (farm status lists jobs).' } }]);
  });

  it('a --wait whose --timeout runs out exits 124 (not 1 like a failed job), says the job goes on and how to follow it', async () => {
    expect(USAGE).toMatch(/Exit status:\n\s+0 +done/);
    expect(USAGE).toMatch(/\n\s+1 +the farm refused .*\n.*the job failed or was cancelled/);
    expect(USAGE).toMatch(/\n\s+2 +bad command line/);
    expect(USAGE).toMatch(/\n\s+124 +--wait --timeout ran out before the job finished \(the job goes on\)/);
    // Postgres: no worker runs, the job stays queued. PGlite: this process renders it, 200 ms a step, and hands it back.
    const waited = await cli('submit', 'blend', '[fake ms=200] a slow kite', 'a cloud', '--user', 'op-timeout', '--quality', 'draft', '--wait', '--timeout', '0.3');
    expect([waited.code, waited.stdout]).toEqual([124, '']);
    const id = /Job (\d+) is still (queued|running) after waiting 0\.3 s; only the wait stopped/.exec(waited.stderr)?.[1];
    expect(id, waited.stderr).toBeDefined();
    expect(waited.stderr).toContain(`\`npm run farm -- show ${id}\` to follow it`);
    const after = await cli('show', id!, '--json');
    expect(['queued', 'running']).toContain(after.json.job.status);

    const asJson = await cli('submit', 'blend', '[fake ms=200] a slow kite', 'a cloud', '--user', 'op-timeout', '--quality', 'draft', '--wait', '--timeout', '0.3', '--json');
    expect(asJson.code).toBe(124);
    expect(Object.keys(asJson.json)).toEqual(['error', 'job']);
    expect(asJson.json.error.code).toBe('timed_out');
    expect(asJson.json.error.message).toContain(`\`npm run farm -- show ${asJson.json.job.id}\` to follow it`);
    expect(['queued', 'running']).toContain(asJson.json.job.status);
    for (const job of [id!, String(asJson.json.job.id)]) expect((await cli('cancel', job)).code).toBe(0);

    // A job that fails is still exit 1.
    const worker = backend === 'postgres' ? new FarmWorker({ farm: { db, config: farmConfigFrom(loadConfig(ENV)) }, renderer: new FakeRenderer({ models: ['demo'], stepMs: 5 }), log: () => {} }) : undefined;
    await worker?.start();
    const failed = await cli('submit', 'blend', '[fake permanent] a kite', 'a cloud', '--user', 'op-timeout', '--quality', 'draft', '--wait', '--timeout', '30');
    await worker?.stop();
    expect(failed.code).toBe(1);
    expect(failed.stdout).toMatch(/^Job \d+ failed: /);
  });

  it('guild GUILD status-page without a value shows the setting and whether it is the default', async () => {
    const fresh = await cli('guild', 'g-never', 'status-page');
    expect([fresh.code, fresh.stderr]).toEqual([0, '']);
    expect(fresh.stdout).toBe('Server g-never: status page private (the default: never set): its prompts are hidden from the public status page (operators with the token still see them).');
    expect((await cli('guild', 'g-never', 'status-page', '--json')).json).toEqual({ guildId: 'g-never', statusPage: 'private', default: true });

    expect((await cli('guild', 'g-shown', 'status-page', 'public')).code).toBe(0);
    const opened = await cli('guild', 'g-shown', 'status-page');
    expect([opened.code, opened.stdout]).toEqual([0, 'Server g-shown: status page public: its prompts (and errors) show on the public status page.']);
    expect((await cli('guild', 'g-shown', 'status-page', '--json')).json).toEqual({ guildId: 'g-shown', statusPage: 'public', default: false });

    expect((await cli('guild', 'g-shown', 'status-page', 'private')).code).toBe(0);
    expect((await cli('guild', 'g-shown', 'status-page', '--json')).json).toEqual({ guildId: 'g-shown', statusPage: 'private', default: false });
    expect((await cli('guild', 'g-shown', 'status-page')).stdout).toBe('Server g-shown: status page private: its prompts are hidden from the public status page (operators with the token still see them).');
    // The id is checked as when setting it.
    const badId = await cli('guild', 'g bad', 'status-page', '--json');
    expect(badId.code).toBe(1);
    expect(badId.json.error).toMatchObject({ code: 'invalid_params', field: 'guild id' });
  });

  it('says a failed query by the database error, without the SQL or its parameters', async () => {
    await db.db.execute(sql`alter table users rename to users_away`);
    try {
      const r = await cli('budget', '--user', 'op-secret-user');
      expect(r.code).toBe(1);
      expect(r.stderr).toBe('The database refused the request: 42P01: relation "users" does not exist');
    } finally {
      await db.db.execute(sql`alter table users_away rename to users`);
    }
  });
});

describe('farm CLI when the database cannot be opened', () => {
  let dir: string;
  useTempDir('blendfarm-farm-open-', (d) => (dir = d));

  async function run(env: NodeJS.ProcessEnv, ...argv: string[]) {
    const out: string[] = [];
    const err: string[] = [];
    const code = await farmCli(argv, { env, stdout: (t) => out.push(t), stderr: (t) => err.push(t) });
    return { code, stdout: out.join('\n'), stderr: err.join('\n') };
  }

  it('with --json says a .env it cannot read in JSON on stdout (exit 1), as the process runs', async () => {
    // A folder named .env: process.loadEnvFile cannot read it.
    await mkdir(join(dir, '.env'));
    const env = Object.fromEntries(Object.values(settings).map((spec) => [spec.env, undefined]));
    const r = await runTool('apps/farm-cli/main.ts', ['status', '--json'], { cwd: dir, env, timeoutMs: 60_000 });
    expect([r.code, r.stderr]).toEqual([1, '']);
    const { error } = JSON.parse(r.stdout);
    expect(error).toEqual({ code: 'error', message: expect.stringContaining('.env') });
    // Text mode as before: the same message on stderr.
    const text = await runTool('apps/farm-cli/main.ts', ['status'], { cwd: dir, env, timeoutMs: 60_000 });
    expect([text.code, text.stdout]).toEqual([1, '']);
    expect(text.stderr).toContain(`error: ${error.message}`);
  });

  it('says what openDatabase says (where, why and what to do), not its bare cause', async () => {
    // A folder that cannot be made: its parent is a file.
    await writeFile(join(dir, 'a-file'), 'x');
    const dataDir = join(dir, 'a-file', 'pglite');
    const pglite = await run({ ...ENV, BLENDFARM_DATA_DIR: dataDir }, 'status');
    expect(pglite.code).toBe(1);
    expect(pglite.stderr).toBe(
      `BLENDFARM_DATA_DIR=${dataDir}: PGlite cannot write there (ENOTDIR). Set BLENDFARM_DATA_DIR to a folder this process may create and write to (default ./data/pglite), or set DATABASE_URL to use Postgres instead.`,
    );

    // Nothing listens on port 1: named with its password hidden, in --json too.
    const postgres = await run({ ...ENV, DATABASE_URL: 'postgres://op:s3cret-pw@127.0.0.1:1/farm' }, 'status', '--json');
    expect(postgres.code).toBe(1);
    expect(JSON.parse(postgres.stdout).error).toEqual({ code: 'error', message: 'Could not open Postgres at postgres://op:***@127.0.0.1:1/farm: ECONNREFUSED: connect ECONNREFUSED 127.0.0.1:1' });
    expect(postgres.stdout + postgres.stderr).not.toContain('s3cret-pw');
  });
});

// The operator's review: a sentence's one full stop, not-found for fetch, --timeout's rules, the
// status page confirmations, what `show` says of retried and failed jobs, and status as one snapshot.
describe.each(BACKENDS)('farm CLI answers (review) on %s', (backend) => {
  let db: FarmDb;
  let testDb: TestDatabase;
  // The fake renderer's model: on PGlite the first test's --wait registers a worker that has it.
  const caps = { models: ['demo'], maxPixels: 1e7, executionProvider: 'test' };

  async function cli(...argv: string[]): Promise<{ code: number; stdout: string; stderr: string; json: any }> {
    const out: string[] = [];
    const err: string[] = [];
    const code = await farmCli(argv, { db, env: ENV, stdout: (t) => out.push(t), stderr: (t) => err.push(t) });
    const stdout = out.join('\n');
    return { code, stdout, stderr: err.join('\n'), json: argv.includes('--json') && stdout ? JSON.parse(stdout) : undefined };
  }
  const farmOn = (on: FarmDb) => farmContext(on, { budget: GENEROUS_BUDGET, retryBackoffSeconds: 0 });
  const jobsOf = async (user: string) => queryRows<{ id: number }>(db.db, sql`select id::int as id from jobs where user_id = ${user} order by id`);
  /** show's text as key -> value (values start in one column). */
  const shown = async (id: number) => {
    const r = await cli('show', String(id));
    expect([r.code, r.stderr]).toEqual([0, '']);
    const lines = r.stdout.split('\n');
    const column = lines[0].indexOf(String(id));
    return new Map(lines.filter((line) => /^[a-z]/.test(line)).map((line) => [line.slice(0, line.indexOf(':')), line.slice(column)]));
  };

  useTestFarm(backend, { budget: GENEROUS_BUDGET }, (t) => ({ db, testDb } = t));

  it('submit --wait of a failed job ends its line with one full stop when the error has its own', async () => {
    const waiting = cli('submit', 'blend', '[fake ms=1000] a kite', 'a cloud', '--user', 'op-period', '--quality', 'draft', '--wait', '--timeout', '30');
    let id: number | undefined;
    for (let i = 0; i < 200 && id === undefined; i++) {
      id = (await jobsOf('op-period'))[0]?.id;
      if (id === undefined) await new Promise((r) => setTimeout(r, 20));
    }
    expect(id).toBeDefined();
    const error = 'The render ran out of GPU memory; ask for a lower-quality render.';
    // Failed as a worker fails it (its row and its event), whether it was still queued or being rendered here.
    await db.db.transaction(async (tx) => {
      await tx.execute(sql`update jobs set status = 'failed', error = ${error}, finished_at = now(), worker_id = null, lease_token = null, lease_expires_at = null, progress = null where id = ${id}`);
      await recordEvent(tx, 'failed', { jobId: id!, userId: 'op-period', status: 'failed', attempt: 1, error });
    });
    const failed = await waiting;
    expect([failed.code, failed.stdout]).toEqual([1, `Job ${id} failed: ${error}`]);
  });

  it('fetch of a job that does not exist says so as every command does (exit 1); one without a video says that', async () => {
    const missing = await cli('fetch', '999999', '--out', 'job.mp4');
    expect([missing.code, missing.stdout, missing.stderr]).toEqual([1, '', 'There is no job 999999; check the id (farm status lists jobs).']);
    const asJson = await cli('fetch', '999999', '--out', 'job.mp4', '--json');
    expect([asJson.code, asJson.json]).toEqual([1, { error: { code: 'not_found', message: 'There is no job 999999; check the id (farm status lists jobs).' } }]);
    expect((await cli('show', '999999')).stderr).toBe('There is no job 999999; check the id (farm status lists jobs).');
    const queued = (await cli('submit', 'blend', 'x', 'y', '--user', 'op-fetch', '--json')).json.job;
    const early = await cli('fetch', String(queued.id), '--out', 'job.mp4');
    expect([early.code, early.stderr]).toEqual([1, `Job ${queued.id} has no finished video (yet); see \`npm run farm -- show ${queued.id}\`.`]);
    expect((await cli('cancel', String(queued.id))).code).toBe(0);
  });

  it('refuses --timeout without --wait, and a --timeout that is not above 0, before submitting anything (exit 2)', async () => {
    for (const argv of [
      ['submit', 'blend', 'a', 'b', '--user', 'op-to', '--timeout', '5'],
      ['status', '--timeout', '5'],
    ]) {
      const r = await cli(...argv);
      expect([r.code, r.stdout], argv.join(' ')).toEqual([2, '']);
      expect(r.stderr).toContain('--timeout only applies with --wait');
    }
    for (const value of ['0', '-1', '0.0']) {
      const r = await cli('submit', 'blend', 'a', 'b', '--user', 'op-to', '--wait', `--timeout=${value}`);
      expect([r.code, r.stdout], value).toEqual([2, '']);
      expect(r.stderr).toContain(`--timeout must be a number of seconds greater than 0, got "${value}"`);
    }
    const json = await cli('submit', 'blend', 'a', 'b', '--user', 'op-to', '--timeout', '5', '--json');
    expect([json.code, json.json.error.code]).toEqual([2, 'usage']);
    expect(await jobsOf('op-to')).toEqual([]);
  });

  it('guild status-page public|private confirms as the no-value form says the setting, with "now"', async () => {
    const opened = await cli('guild', 'g-par', 'status-page', 'public');
    expect([opened.code, opened.stdout]).toEqual([0, 'Server g-par: status page now public: its prompts (and errors) show on the public status page.']);
    const closed = await cli('guild', 'g-par', 'status-page', 'private');
    expect([closed.code, closed.stdout]).toEqual([0, 'Server g-par: status page now private: its prompts are hidden from the public status page (operators with the token still see them).']);
    expect((await cli('guild', 'g-par', 'status-page')).stdout).toBe('Server g-par: status page private: its prompts are hidden from the public status page (operators with the token still see them).');
  });

  it('show: the last attempt\'s worker, queued time since it was queued again, the previous error labelled, and a failed job\'s GPU time', async () => {
    const farm = farmOn(db);
    const job = await submitJob(farm, { kind: 'blend', userId: 'op-retry', params: { ...CHEAP_BLEND, model: 'demo' } });
    await new Promise((r) => setTimeout(r, 300));
    const first = (await claimJob(farm, 'gpu-1', caps)) as ClaimedJob;
    expect(first.id).toBe(job.id);
    expect(await failAttempt(farm, first, 'gpu-1: CUDA out of memory.')).toBe('retrying');

    // Queued again: the worker of the attempt that failed, its error as the previous one.
    const queued = await shown(job.id);
    expect(queued.get('status')).toBe('queued');
    expect(queued.get('worker')).toBe('gpu-1 (last attempt)');
    expect(queued.get('previous error')).toBe('gpu-1: CUDA out of memory.');
    expect(queued.has('error')).toBe(false);

    const second = (await claimJob(farm, 'gpu-2', caps)) as ClaimedJob;
    expect(second.attempt).toBe(2);
    const running = await shown(job.id);
    expect(running.get('worker')).toMatch(/^gpu-2 \(lease until \S+\)$/);
    expect(running.get('previous error')).toBe('gpu-1: CUDA out of memory.');
    // Queued time counts from its requeuing, not from its submission 0.3 s earlier.
    const started = /^\S+ \(after (\d+\.\d) s queued since it was queued again; (\d+\.\d) s after it was first submitted\)$/.exec(running.get('started') ?? '');
    expect(started, running.get('started')).not.toBeNull();
    expect(Number(started![1])).toBeLessThan(0.3);
    expect(Number(started![2])).toBeGreaterThanOrEqual(0.3);

    expect(await failAttempt(farm, second, 'gpu-2: CUDA out of memory again.', { permanent: true })).toBe('failed');
    const failed = await shown(job.id);
    expect(failed.get('status')).toBe('failed');
    expect(failed.get('worker')).toBe('gpu-2 (last attempt)');
    expect(failed.get('error')).toBe('gpu-2: CUDA out of memory again.');
    expect(failed.has('previous error')).toBe(false);
    expect(failed.get('spent')).toBe('none measured (it failed before a render finished; charged 0 GPU-seconds)');
    expect(failed.get('charged')).toBe('0 GPU-seconds');
  });

  it('status: counts and lists are one snapshot, and a list cut at its limit says so', async () => {
    const farm = farmOn(db);
    // A job queued between status' reads: counted and listed alike, never counted out and listed in.
    if (backend === 'postgres') {
      await submitJob(farm, { kind: 'blend', userId: 'op-snap', params: { ...CHEAP_BLEND, model: 'demo' } });
      const other = await testDb.open();
      const pool = (db.db as unknown as { $client: any }).$client;
      const { query, connect } = pool;
      let fired = false;
      const afterQuery = async (statement: unknown): Promise<void> => {
        const text = typeof statement === 'string' ? statement : (statement as { text?: string })?.text ?? '';
        if (fired || !/count\(\*\)/.test(text) || !/"jobs"/.test(text)) return;
        fired = true;
        await submitJob(farmOn(other), { kind: 'blend', userId: 'op-snap-2', params: { ...CHEAP_BLEND, model: 'demo' } });
      };
      const watched = (call: (...args: any[]) => any) =>
        async function (this: unknown, ...args: any[]) {
          const result = await call.apply(this, args);
          await afterQuery(args[0]);
          return result;
        };
      pool.query = watched(query);
      pool.connect = async function (this: unknown, ...args: any[]) {
        const client = await connect.apply(this, args);
        if (!client.reviewWatched) {
          client.query = watched(client.query);
          client.reviewWatched = true;
        }
        return client;
      };
      try {
        const status = await cli('status');
        expect(fired).toBe(true);
        const lines = status.stdout.split('\n');
        const counted = Number(/^Jobs: (\d+) queued, (\d+) running/.exec(lines[1])?.[1]);
        expect(lines.filter((line) => line.startsWith('  queued (')).length, status.stdout).toBe(counted);
        const asJson = await cli('status', '--json');
        expect(asJson.json.queued.length).toBe(asJson.json.counts.queued);
      } finally {
        pool.query = query;
        pool.connect = connect;
        await other.close();
      }
    }
    // More queued than the list holds (50): the list says how many it shows of how many.
    for (let i = 0; i < 52; i++) await submitJob(farm, { kind: 'blend', userId: `op-many-${i % 3}`, params: { ...CHEAP_BLEND, model: 'demo' } });
    const status = await cli('status');
    expect(status.code).toBe(0);
    const lines = status.stdout.split('\n');
    const counted = Number(/^Jobs: (\d+) queued/.exec(lines[1])?.[1]);
    expect(counted).toBeGreaterThan(50);
    expect(lines.filter((line) => line.startsWith('  queued (')).length).toBe(50);
    expect(lines).toContain(`  (showing the first 50 of ${counted} queued, in claim order)`);
    expect(status.stdout).not.toContain('running)');
  });
});
