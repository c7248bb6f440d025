/**
 * A job failed by a reaper when its lease ran out on its last attempt, whose worker had spooled the
 * finished render, becomes done when the spool stores it (farm/spool.ts, queue.ts completeLocked).
 * Delivery posts the video then, whether the failure was posted long before or is being posted at
 * that moment: the post of the failure cannot mark the job delivered once it is done. A
 * JobMessenger on a PGlite farm (no workers: the test claims, reaps and completes the job itself)
 * and a stand-in for discord.js's REST client that records the edits of the job's message.
 */
import type { Client } from 'discord.js';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { getJob, reapExpiredLeases, submitJob, type FarmContext } from '../../farm/index.ts';
import { claimJob, completeJob } from '../../farm/queue.ts';
import type { WorkerCapabilities } from '../../farm/types.ts';
import { JobMessenger } from '../../bot/delivery.ts';
import { CHEAP_BLEND, createTestDatabase, expireLease, farmContext, GENEROUS_BUDGET, type TestDatabase } from '../helpers/db.ts';

interface Edit {
  content: string;
  files: number;
}

/** discord.js's REST client as the messenger uses it, recording every edit; `hold` decides when each edit ends. */
function restStub(edits: Edit[], hold: (edit: Edit) => Promise<void> = async () => {}): Client {
  const rest = {
    async patch(_route: string, options: { body?: { content?: string }; files?: unknown[] }) {
      const edit = { content: options.body?.content ?? '', files: options.files?.length ?? 0 };
      edits.push(edit);
      await hold(edit);
      return {};
    },
    async post() {
      return { id: '900000000000000001' };
    },
  };
  return { rest, application: { id: '800000000000000001' }, user: { id: '800000000000000001' }, guilds: { cache: new Map() } } as unknown as Client;
}

const CAPS: WorkerCapabilities = { models: ['*'], maxPixels: 1 << 30, executionProvider: 'test' };
const VIDEO = { format: 'webm', mime: 'video/webm', sizeBytes: 5, meta: {}, data: Buffer.from('video') };

let testDb: TestDatabase;
let farm: FarmContext;
const messengers: JobMessenger[] = [];

beforeAll(async () => {
  testDb = await createTestDatabase('pglite');
  farm = farmContext(await testDb.open(), { budget: GENEROUS_BUDGET, maxAttempts: 1 });
}, 60_000);

afterAll(async () => {
  for (const m of messengers) await m.stop();
  await testDb?.drop();
});

function messenger(client: Client): JobMessenger {
  const m = new JobMessenger(client, farm, { log: () => {}, retryDelayMs: 50, sweepIntervalMs: 60_000 });
  messengers.push(m);
  return m;
}

/** A job with a message, on its last attempt, failed by a reaper past the grace; returns it and the lease its worker rendered under. */
async function reapedJob(prompt: string) {
  const job = await submitJob(farm, { kind: 'blend', userId: 'owner-1', guildId: '600000000000000001', channelId: '700000000000000001', messageId: '500000000000000001', params: { ...CHEAP_BLEND, prompts: [prompt, 'a calm sea'] } });
  const lease = await claimJob(farm, 'w-lost', CAPS);
  expect(lease?.id).toBe(job.id);
  await expireLease(farm.db, job.id, farm.config.lastAttemptGraceSeconds + 1);
  expect(await reapExpiredLeases(farm)).toBe(1);
  expect((await getJob(farm, job.id))?.status).toBe('failed');
  return { job, lease: lease! };
}

async function until(check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

it('a failure posted long before: the video is posted once its spooled render makes the job done', async () => {
  const edits: Edit[] = [];
  const m = messenger(restStub(edits));
  await m.start();
  const { job, lease } = await reapedJob('posted before');
  await until(async () => (await getJob(farm, job.id))?.deliveredAt !== null);
  expect(edits).toHaveLength(1);
  expect(edits[0].files).toBe(0);

  expect(await completeJob(farm, lease, { artifact: VIDEO, gpuSeconds: 0.5 })).toBe(true);
  await until(async () => (await getJob(farm, job.id))?.deliveredAt !== null);
  expect(edits).toHaveLength(2);
  expect(edits[1].files).toBe(1);
  expect(await getJob(farm, job.id)).toMatchObject({ status: 'done' });
  await m.stop();
});

it('a failure being posted when the job becomes done: the post cannot mark it delivered, and the video is posted after it', async () => {
  const edits: Edit[] = [];
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  let reachedHold!: () => void;
  const reached = new Promise<void>((r) => (reachedHold = r));
  // The first edit (the failure) is held until the job is done.
  const m = messenger(
    restStub(edits, async (edit) => {
      if (edits.indexOf(edit) !== 0) return;
      reachedHold();
      await held;
    }),
  );
  const { job, lease } = await reapedJob('posted during');
  const delivery = m.deliver(job.id);
  await Promise.race([reached, delivery.then(() => Promise.reject(new Error('delivered without posting')))]);
  expect(await completeJob(farm, lease, { artifact: VIDEO, gpuSeconds: 0.5 })).toBe(true);
  release();
  await delivery;

  expect(edits.map((e) => e.files)).toEqual([0, 1]);
  const done = await getJob(farm, job.id);
  expect(done).toMatchObject({ status: 'done' });
  expect(done?.deliveredAt).not.toBeNull();
});
