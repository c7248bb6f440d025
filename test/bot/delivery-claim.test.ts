/**
 * A finished job is posted once, even with two bot processes (shards) sweeping the same farm and a
 * delivery that takes longer than its claim; and a bot that stops posts nothing more nor gives a
 * job up. Two JobMessengers (each a bot process, with its own claimant) on one farm (PGlite, fake
 * renders) and a stand-in for discord.js's REST client that records the posts and holds them up
 * as a test needs.
 */
import { randomBytes } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { DiscordAPIError, type Client } from 'discord.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getJob, startLocalWorkers, submitJob, waitForJob, type ClaimedJob, type FarmContext, type LocalWorkers, type RenderContext, type RenderResult } from '../../farm/index.ts';
import { FakeRenderer } from '../../farm/fake-renderer.ts';
import { JobMessenger, type MessengerOptions } from '../../bot/delivery.ts';
import { queryRows } from '../../db/client.ts';
import { CHEAP_BLEND, createTestDatabase, farmContext, GENEROUS_BUDGET, type TestDatabase } from '../helpers/db.ts';

/** The fake renderer, but "[big]" in a prompt makes a 30 000-byte "video" (no decoder reads it). */
class BigRenderer extends FakeRenderer {
  override async render(job: ClaimedJob, context: RenderContext): Promise<RenderResult> {
    const result = await super.render(job, context);
    return job.params.prompts.join(' ').includes('[big]') ? { ...result, video: randomBytes(30_000), format: 'mp4', mime: 'video/mp4' } : result;
  }
}

interface Post {
  by: string;
  route: string;
  content?: string;
}

/**
 * What discord.js's REST client does for the messenger, recorded; `hold` decides how each edit of a
 * job's message ends. `guildIds`: the servers this process's gateway shard serves.
 */
function restStub(by: string, posts: Post[], hold: (route: string, content?: string) => Promise<void> = async () => {}, guildIds: string[] = []): Client {
  const rest = {
    async patch(route: string, options?: { body?: { content?: string } }) {
      posts.push({ by, route, content: options?.body?.content });
      await hold(route, options?.body?.content);
      return {};
    },
    async post(route: string, options?: { body?: { content?: string } }) {
      posts.push({ by, route, content: options?.body?.content });
      return { id: '900000000000000001' };
    },
    // GET /guilds/:id: a server's name, as Discord answers any process of a bot in that server.
    async get(route: string) {
      posts.push({ by, route });
      return { id: route.split('/').pop(), name: 'Harbour Club' };
    },
  };
  return { rest, application: { id: '800000000000000001' }, user: { id: '800000000000000001' }, guilds: { cache: new Map(guildIds.map((id) => [id, {}])) } } as unknown as Client;
}

/** Who holds the job's delivery claim (not on Job). */
const claimantOf = async (jobId: number) => (await queryRows<{ by: string | null }>(farm.db.db, sql`select delivery_claimed_by as by from jobs where id = ${jobId}`))[0]?.by ?? null;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const CHANNEL = '700000000000000001';

let testDb: TestDatabase;
let farm: FarmContext;
let workers: LocalWorkers;
const messengers: JobMessenger[] = [];
const logs: string[] = [];

function messenger(client: Client, opts: MessengerOptions): JobMessenger {
  const m = new JobMessenger(client, farm, { log: (l) => logs.push(l), retryDelayMs: 50, sweepIntervalMs: 50, ...opts });
  messengers.push(m);
  return m;
}

/** A finished job with a message in CHANNEL (as a command's reply whose token has expired). */
async function finishedJob(prompt: string, params: Record<string, unknown> = {}): Promise<number> {
  const job = await submitJob(farm, { kind: 'blend', userId: 'owner-1', guildId: '600000000000000001', channelId: CHANNEL, messageId: '500000000000000001', params: { ...CHEAP_BLEND, prompts: [prompt, 'a calm sea'], ...params } });
  expect((await waitForJob(farm, job.id, { timeoutMs: 20_000 })).status).toBe('done');
  return job.id;
}

beforeAll(async () => {
  testDb = await createTestDatabase('pglite');
  farm = farmContext(await testDb.open(), { budget: GENEROUS_BUDGET });
  workers = await startLocalWorkers(farm, { renderer: () => new BigRenderer({ models: ['demo'], steps: 1, stepMs: 1 }), log: () => {} });
}, 60_000);

afterAll(async () => {
  for (const m of messengers) await m.stop();
  await workers?.stop('release');
  await testDb?.drop();
});

describe('a delivery is posted once across bot processes', () => {
  it('a post held up past the claim’s length: the claim is renewed, so the other process, sweeping all along, posts nothing', async () => {
    const jobId = await finishedJob('a slow harbour');
    const posts: Post[] = [];
    // Shard A's edit takes 1.5 s, three times its 0.5 s claim (a shrink or a rate limit can take minutes).
    const a = messenger(restStub('A', posts, () => sleep(1500)), { claimant: 'shard-a', claimSeconds: 0.5 });
    const b = messenger(restStub('B', posts), { claimant: 'shard-b', claimSeconds: 0.5 });
    const delivering = a.deliver(jobId);
    await sleep(50);
    // Shard B sweeps the undelivered jobs every 50 ms meanwhile.
    const deadline = Date.now() + 2000;
    while (Date.now() < deadline) {
      await b.sweep();
      await sleep(50);
    }
    await delivering;
    expect(posts.map((p) => p.by)).toEqual(['A']);
    expect((await getJob(farm, jobId))!.deliveredAt).not.toBeNull();
  });

  it('a claim another process has taken over meanwhile: nothing more is posted, and the job is left to that process', async () => {
    const jobId = await finishedJob('[big] a taken-over lighthouse', { maxBytes: 40_000 });
    const posts: Post[] = [];
    // Discord answers A's first post (30 000 bytes) with 413, after shard B has taken the job over
    // (A's claim ran out while it was held up): A's smaller copy is then never posted.
    const a = messenger(
      restStub('A', posts, async (route) => {
        await farm.db.db.execute(sql`update jobs set delivery_claimed_by = 'shard-b', delivery_claim_expires_at = now() + interval '1 minute' where id = ${jobId}`);
        throw new DiscordAPIError({ code: 40005, message: 'Request entity too large' }, 40005, 413, 'PATCH', route, {});
      }),
      { claimant: 'shard-a', claimSeconds: 60 },
    );
    await a.deliver(jobId);
    expect(posts.map((p) => p.by)).toEqual(['A']);
    const job = (await getJob(farm, jobId))!;
    expect(job.deliveredAt).toBeNull();
    expect(logs).toContain(`[bot] job ${jobId}: another bot process is delivering it now; nothing posted here`);
    expect(logs.some((l) => l.includes(`job ${jobId}`) && /not attached|given up|failed/.test(l))).toBe(false);
  });
});

describe('giving a delivery up in a process that does not serve the server', () => {
  it('the DM names the server, asked of Discord', async () => {
    const jobId = await finishedJob('a vanished pier');
    const posts: Post[] = [];
    // The channel is gone (10003: given up at once); this process's shard serves another server.
    const gone = (method: string, route: string) => new DiscordAPIError({ code: 10003, message: 'Unknown Channel' }, 10003, 404, method, route, {});
    const client = restStub('B', posts, async (route) => {
      throw gone('PATCH', route);
    }, ['600000000000000003']);
    const rest = client.rest as unknown as { post: (route: string, options?: { body?: { content?: string } }) => Promise<unknown> };
    const post = rest.post.bind(rest);
    rest.post = async (route, options) => {
      if (route.startsWith(`/channels/${CHANNEL}/`)) throw gone('POST', route);
      return post(route, options);
    };
    const b = messenger(client, { claimant: 'shard-b' });
    await b.deliver(jobId);
    const dm = posts.find((p) => p.content?.includes("I won't try to post"));
    expect(dm?.content).toContain(`<#${CHANNEL}> in **Harbour Club**`);
    expect(posts.some((p) => p.route === '/guilds/600000000000000001')).toBe(true);
  });
});

describe('progress edits across bot processes', () => {
  it('only the process whose shard serves the job’s server edits its progress; the result is posted once', async () => {
    const guildId = '600000000000000002';
    const posts: Post[] = [];
    // Both listen to the farm's events; A's shard serves the job's server, B's another one.
    const a = messenger(restStub('A', posts, async () => {}, [guildId]), { claimant: 'shard-a', editIntervalMs: 10 });
    const b = messenger(restStub('B', posts, async () => {}, ['600000000000000003']), { claimant: 'shard-b', editIntervalMs: 10 });
    await Promise.all([a.start(), b.start()]);
    try {
      const job = await submitJob(farm, { kind: 'blend', userId: 'owner-1', guildId, channelId: CHANNEL, messageId: '500000000000000002', params: { ...CHEAP_BLEND, prompts: ['[fake ms=400] a slow heron', 'a calm sea'] } });
      expect((await waitForJob(farm, job.id, { timeoutMs: 20_000 })).status).toBe('done');
      const deadline = Date.now() + 5000;
      while ((await getJob(farm, job.id))!.deliveredAt === null && Date.now() < deadline) await sleep(20);
      // (Both also sweep the earlier tests' undelivered jobs: only this job's posts count.)
      const mine = posts.filter((p) => p.content?.includes(`#${job.id}:`));
      const progress = mine.filter((p) => !p.content!.includes('seeds '));
      expect(progress.length).toBeGreaterThan(0);
      expect(new Set(progress.map((p) => p.by))).toEqual(new Set(['A']));
      expect(mine.filter((p) => p.content!.includes('seeds '))).toHaveLength(1);
    } finally {
      // Listening and sweeping no more: the next tests' jobs are theirs.
      await Promise.all([a.stop(), b.stop()]);
    }
  });
});

describe('a progress edit under way when the job finishes', () => {
  it('lands before the result, not after it (the message ends with the video)', async () => {
    const guildId = '600000000000000004';
    const landed: string[] = [];
    // Discord takes 600 ms over each progress edit (a slow connection, a rate limit), none over the result.
    const hold = async (_route: string, content?: string) => {
      if (!content?.includes('seeds ')) await sleep(600);
      landed.push(content ?? '');
    };
    const a = messenger(restStub('A', [], hold, [guildId]), { claimant: 'shard-a', editIntervalMs: 10 });
    await a.start();
    try {
      const job = await submitJob(farm, { kind: 'blend', userId: 'owner-1', guildId, channelId: CHANNEL, messageId: '500000000000000004', params: { ...CHEAP_BLEND, prompts: ['[fake ms=150] a quick egret', 'a calm sea'] } });
      expect((await waitForJob(farm, job.id, { timeoutMs: 20_000 })).status).toBe('done');
      const deadline = Date.now() + 5000;
      while ((await getJob(farm, job.id))!.deliveredAt === null && Date.now() < deadline) await sleep(20);
      await sleep(800); // any edit still held has landed
      const mine = landed.filter((c) => c.includes(`#${job.id}:`));
      expect(mine.length).toBeGreaterThan(1);
      expect(mine.at(-1)).toContain('seeds ');
    } finally {
      await a.stop();
    }
  });
});

describe('a bot that stops', () => {
  it('posts nothing more for a delivery under way (its shrink stopped) and does not give it up: the next bot delivers it', async () => {
    const jobId = await finishedJob('[big] a stopped windmill', { maxBytes: 10_000 });
    const posts: Post[] = [];
    const a = messenger(restStub('A', posts), { claimant: 'shard-a', claimSeconds: 0.5 });
    const delivering = a.deliver(jobId);
    await a.stop();
    await delivering;
    expect(posts).toEqual([]);
    expect((await getJob(farm, jobId))!.deliveredAt).toBeNull();
    expect(logs).toContain(`[bot] delivering job ${jobId} stopped with the bot; the next one delivers it`);
    // The next bot: the video does not fit 10 000 bytes and cannot be re-encoded, which its message says.
    await sleep(600); // the stopped bot's claim runs out
    const next = messenger(restStub('B', posts), { claimant: 'shard-b' });
    await next.deliver(jobId);
    expect(posts.map((p) => p.by)).toEqual(['B']);
    expect((await getJob(farm, jobId))!.deliveredAt).not.toBeNull();
  });

  it('releases the claim of a delivery it stopped, so another bot delivers it at once, not when the claim runs out', async () => {
    const jobId = await finishedJob('[big] a released mill', { maxBytes: 10_000 });
    const posts: Post[] = [];
    // A two-minute claim: were it kept, the other bot could not deliver the job for two minutes.
    const a = messenger(restStub('A', posts), { claimant: 'shard-a', claimSeconds: 120 });
    const b = messenger(restStub('B', posts), { claimant: 'shard-b', claimSeconds: 120 });
    const delivering = a.deliver(jobId);
    // A's claim is taken (its shrink is under way) before it stops.
    const deadline = Date.now() + 5000;
    while ((await claimantOf(jobId)) !== 'shard-a' && Date.now() < deadline) await sleep(5);
    await a.stop();
    await delivering;
    expect(posts).toEqual([]);
    expect((await getJob(farm, jobId))!.deliveredAt).toBeNull();
    expect(await claimantOf(jobId)).toBeNull();
    await b.deliver(jobId);
    expect(posts.map((p) => p.by)).toEqual(['B']);
    expect((await getJob(farm, jobId))!.deliveredAt).not.toBeNull();
  });

  it('a sweep that ends after stop() leaves no timer behind', async () => {
    const m = messenger(restStub('C', []), { claimant: 'shard-c' });
    const starting = m.start();
    await m.stop();
    await starting;
    expect((m as unknown as { sweepTimer?: NodeJS.Timeout }).sweepTimer).toBeUndefined();
  });
});
