/**
 * What a JobMessenger holds for a job (its edit times, a retry waiting, a settled reply, a delivery
 * under way) is let go when the job's delivery ends: delivered, given up, or the bot stopped. A
 * long-running bot sees many thousands of jobs; any state left behind for each would grow without
 * end. Observed through JobMessenger.heldFor / heldJobCount, on a farm of its own (PGlite, fake
 * renders) with a stand-in for discord.js's REST client.
 */
import { DiscordAPIError, type Client } from 'discord.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getJob, startLocalWorkers, submitJob, waitForJob, type FarmContext, type LocalWorkers } from '../../farm/index.ts';
import { FakeRenderer } from '../../farm/fake-renderer.ts';
import { JobMessenger, type JobStatePart } from '../../bot/delivery.ts';
import { CHEAP_BLEND, createTestDatabase, farmContext, GENEROUS_BUDGET, type TestDatabase } from '../helpers/db.ts';

const GUILD = '600000000000000001';
const CHANNEL = '700000000000000001';
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** How each edit of a job's message and each post in its channel ends; DMs always go through. */
type Answer = (method: string, route: string) => Promise<void>;

function restStub(posts: string[], answer: { current: Answer }): Client {
  const rest = {
    async patch(route: string, options?: { body?: { content?: string } }) {
      await answer.current('PATCH', route);
      posts.push(options?.body?.content ?? '');
      return {};
    },
    async post(route: string, options?: { body?: { content?: string } }) {
      if (route.startsWith(`/channels/${CHANNEL}/`)) await answer.current('POST', route);
      posts.push(options?.body?.content ?? '');
      return { id: '900000000000000001' };
    },
    async get(route: string) {
      return { id: route.split('/').pop(), name: 'Harbour Club' };
    },
  };
  return { rest, application: { id: '800000000000000001' }, user: { id: '800000000000000001' }, guilds: { cache: new Map([[GUILD, { name: 'Harbour Club' }]]) } } as unknown as Client;
}

const fine: Answer = async () => {};
/** Discord down for a while: a retry may succeed. */
const outage: Answer = async (method, route) => {
  throw new DiscordAPIError({ code: 0, message: 'Internal Server Error' }, 0, 500, method, route, {});
};
/** The channel is gone: no retry can succeed, so the job is given up. */
const channelGone: Answer = async (method, route) => {
  throw new DiscordAPIError({ code: 10003, message: 'Unknown Channel' }, 10003, 404, method, route, {});
};

let testDb: TestDatabase;
let farm: FarmContext;
let workers: LocalWorkers;
const messengers: JobMessenger[] = [];

function messenger(client: Client, opts: { editIntervalMs?: number } = {}): JobMessenger {
  const m = new JobMessenger(client, farm, { log: () => {}, retryDelayMs: 60_000, sweepIntervalMs: 60_000, claimSeconds: 60, ...opts });
  messengers.push(m);
  return m;
}

async function finishedJob(prompt: string): Promise<number> {
  const job = await submitJob(farm, { kind: 'blend', userId: 'owner-1', guildId: GUILD, channelId: CHANNEL, messageId: '500000000000000001', params: { ...CHEAP_BLEND, prompts: [prompt, 'a calm sea'] } });
  expect((await waitForJob(farm, job.id, { timeoutMs: 20_000 })).status).toBe('done');
  return job.id;
}

/** Waits (up to 5 s) until `done` holds, and returns whether it did. */
async function until(done: () => boolean | Promise<boolean>): Promise<boolean> {
  const deadline = Date.now() + 5000;
  while (!(await done())) {
    if (Date.now() > deadline) return false;
    await sleep(10);
  }
  return true;
}

beforeAll(async () => {
  testDb = await createTestDatabase('pglite');
  farm = farmContext(await testDb.open(), { budget: GENEROUS_BUDGET });
  workers = await startLocalWorkers(farm, { renderer: () => new FakeRenderer({ models: ['demo'], steps: 1, stepMs: 1 }), log: () => {} });
}, 60_000);

afterAll(async () => {
  for (const m of messengers) await m.stop();
  await workers?.stop('release');
  await testDb?.drop();
});

describe('per-job state in a JobMessenger', () => {
  it('progress edit times and a settled reply are held while the job renders, and nothing once it is delivered', async () => {
    const posts: string[] = [];
    const m = messenger(restStub(posts, { current: fine }), { editIntervalMs: 10 });
    await m.start();
    const job = await submitJob(farm, { kind: 'blend', userId: 'owner-1', guildId: GUILD, channelId: CHANNEL, messageId: '500000000000000002', params: { ...CHEAP_BLEND, prompts: ['[fake ms=600] a slow heron', 'a calm sea'] } });
    m.replySettled(job.id); // as bot/submit.ts says once its reply is recorded
    const seen = new Set<JobStatePart>();
    const finished = waitForJob(farm, job.id, { timeoutMs: 20_000 });
    let over = false;
    void finished.finally(() => (over = true));
    while (!over) {
      for (const part of m.heldFor(job.id)) seen.add(part);
      await sleep(5);
    }
    expect((await finished).status).toBe('done');
    // While it rendered: the time of its last progress edit, and its settled reply.
    expect(seen).toContain('lastEditAt');
    expect(seen).toContain('replySettledAt');
    expect(await until(async () => (await getJob(farm, job.id))!.deliveredAt !== null)).toBe(true);
    expect(await until(() => m.heldJobCount === 0)).toBe(true);
    expect(m.heldFor(job.id)).toEqual([]);
    expect(posts.filter((p) => p.includes(`#${job.id}:`) && p.includes('seeds '))).toHaveLength(1);
    await m.stop();
  });

  it('a failed delivery holds its retry until the job is given up, then nothing', async () => {
    const jobId = await finishedJob('a vanished pier');
    const answer = { current: outage };
    const posts: string[] = [];
    const m = messenger(restStub(posts, answer));
    await m.deliver(jobId);
    expect(m.heldFor(jobId)).toEqual(['retry']);
    expect((await getJob(farm, jobId))!.deliveredAt).toBeNull();
    answer.current = channelGone;
    await m.deliver(jobId);
    expect((await getJob(farm, jobId))!.deliveredAt).not.toBeNull(); // marked undeliverable
    expect(posts.some((p) => p.includes("I won't try to post"))).toBe(true); // the owner's DM
    expect(m.heldFor(jobId)).toEqual([]);
    expect(m.heldJobCount).toBe(0);
  });

  it('a failed delivery delivered later: its retry is let go', async () => {
    const jobId = await finishedJob('a late lighthouse');
    const answer = { current: outage };
    const m = messenger(restStub([], answer));
    await m.deliver(jobId);
    expect(m.heldFor(jobId)).toEqual(['retry']);
    answer.current = fine;
    await m.deliver(jobId);
    expect((await getJob(farm, jobId))!.deliveredAt).not.toBeNull();
    expect(m.heldJobCount).toBe(0);
  });

  it('stop() lets go of everything: retries waiting, a delivery under way', async () => {
    const failing = await finishedJob('a stormy quay');
    const slow = await finishedJob('a slow ferry');
    const answer = { current: outage };
    const m = messenger(restStub([], answer));
    await m.deliver(failing);
    expect(m.heldFor(failing)).toEqual(['retry']);
    // Discord holds the next post up for a while (the bot waits up to DELIVERY_STOP_WAIT_MS for it).
    answer.current = () => sleep(300);
    const delivering = m.deliver(slow);
    expect(await until(() => m.heldFor(slow).includes('claimRenewal'))).toBe(true);
    expect(m.heldFor(slow)).toContain('delivery');
    expect(m.heldJobCount).toBe(2);
    await m.stop();
    await delivering;
    expect(m.heldFor(failing)).toEqual([]);
    expect(m.heldFor(slow)).toEqual([]);
    expect(m.heldJobCount).toBe(0);
  });
});
