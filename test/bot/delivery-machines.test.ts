/**
 * Delivery with bot processes on several machines (bot/delivery.ts): the reply's grace measured on
 * the database's clock, not a machine's that is seconds off; a claimant of its own for each process,
 * even two containers with one host name and pid 1; and a video stored as a file this machine cannot
 * read, told as storage's fault (the operator gets the file and its error), not Discord's. One farm
 * (PGlite) with finished jobs written as a worker leaves them, and a stand-in for discord.js's REST
 * client that records the posts.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'drizzle-orm';
import type { Client } from 'discord.js';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { getJob, type FarmContext } from '../../farm/index.ts';
import { defaultClaimant, DELIVERY_REPLY_GRACE_MS, JobMessenger, type MessengerOptions } from '../../bot/delivery.ts';
import { queryRows } from '../../db/client.ts';
import { CHEAP_BLEND, createTestDatabase, farmContext, GENEROUS_BUDGET, type TestDatabase } from '../helpers/db.ts';

interface Post {
  by: string;
  route: string;
  content?: string;
}

/** What discord.js's REST client does for the messenger, recorded; `hold` decides how each edit ends. */
function restStub(by: string, posts: Post[], hold: () => Promise<void> = async () => {}): Client {
  const rest = {
    async patch(route: string, options?: { body?: { content?: string } }) {
      posts.push({ by, route, content: options?.body?.content });
      await hold();
      return {};
    },
    async post(route: string, options?: { body?: { content?: string } }) {
      posts.push({ by, route, content: options?.body?.content });
      return { id: '900000000000000001' };
    },
    async get(route: string) {
      return { id: route.split('/').pop(), name: 'Harbour Club' };
    },
  };
  return { rest, application: { id: '800000000000000001' }, user: { id: '800000000000000001' }, guilds: { cache: new Map() } } as unknown as Client;
}

const OWNER = '400000000000000001';
const GUILD = '600000000000000001';
const CHANNEL = '700000000000000001';

let testDb: TestDatabase;
let farm: FarmContext;
let artifactDir: string;
const messengers: JobMessenger[] = [];
const logs: string[] = [];

function messenger(client: Client, opts: MessengerOptions = {}): JobMessenger {
  const m = new JobMessenger(client, farm, { log: (l) => logs.push(l), ...opts });
  messengers.push(m);
  return m;
}

interface Finished {
  status: 'done' | 'failed';
  /** Asked for by a command whose reply is not recorded yet: its token, no message. */
  awaitingReply?: boolean;
  /** How long before the database's now() it was submitted (default: just now). */
  submittedSecondsAgo?: number;
}

/** A job finished just now by the database's clock, as a worker leaves it. */
async function finishedJob({ status, awaitingReply = false, submittedSecondsAgo = 0 }: Finished): Promise<number> {
  await farm.db.db.execute(sql`insert into users (id) values (${OWNER}) on conflict do nothing`);
  const params = JSON.stringify({ ...CHEAP_BLEND, model: 'demo' });
  const [row] = await queryRows<{ id: number }>(
    farm.db.db,
    sql`insert into jobs (kind, user_id, guild_id, channel_id, message_id, interaction_token, interaction_expires_at, params, model, pixels, status, error, user_error, created_at, started_at, finished_at)
        values ('blend', ${OWNER}, ${GUILD}, ${CHANNEL}, ${awaitingReply ? null : '500000000000000001'}, ${awaitingReply ? 'token-1' : null},
                ${awaitingReply ? sql`now() + interval '15 minutes'` : null}, ${params}::jsonb, 'demo', 4096, ${status},
                ${status === 'failed' ? 'the render broke' : null}, ${status === 'failed' ? 'The render failed.' : null},
                now() - make_interval(secs => ${submittedSecondsAgo}), now(), now())
        returning id`,
  );
  return Number(row.id);
}

const deliveredAt = async (jobId: number) => (await getJob(farm, jobId))!.deliveredAt;

beforeAll(async () => {
  testDb = await createTestDatabase('pglite');
  artifactDir = fs.mkdtempSync(path.join(os.tmpdir(), 'blendfarm-bot-artifacts-'));
  farm = farmContext(await testDb.open(), { budget: GENEROUS_BUDGET, artifactDir });
}, 60_000);

afterEach(() => {
  vi.restoreAllMocks();
});

afterAll(async () => {
  for (const m of messengers) await m.stop();
  await testDb?.drop();
  fs.rmSync(artifactDir, { recursive: true, force: true });
});

/** This machine's clock `skewMs` off the database's (the messenger's own monotonic clock is `monotonic`). */
function machineClockOff(skewMs: number): void {
  const real = Date.now.bind(Date);
  vi.spyOn(Date, 'now').mockImplementation(() => real() + skewMs);
}

describe("the reply's grace, on the database's clock", () => {
  it('a bot 20 s fast waits for the reply of a job submitted a moment ago, and posts once the grace has passed', async () => {
    const jobId = await finishedJob({ status: 'failed', awaitingReply: true });
    const posts: Post[] = [];
    let monotonic = 1_000;
    const m = messenger(restStub('fast', posts), { claimant: 'fast', monotonicNow: () => monotonic });
    machineClockOff(20_000);
    await m.deliver(jobId);
    // The "queued" reply is still on its way (another process shows it): a result now would be overwritten by it.
    expect(posts).toEqual([]);
    expect(await deliveredAt(jobId)).toBeNull();
    monotonic += DELIVERY_REPLY_GRACE_MS - 1_000;
    await m.deliver(jobId);
    expect(posts).toEqual([]);
    // The reply never recorded (its process died): posted once the grace is over (the clock lets
    // what it saw age a little slower than this machine's, DATABASE_CLOCK_DRIFT: 1 ms a second).
    monotonic += 1_100;
    await m.deliver(jobId);
    expect(posts.map((p) => p.content)).toEqual([expect.stringContaining('The render failed.')]);
    expect(await deliveredAt(jobId)).not.toBeNull();
  });

  it('a bot 2 minutes slow does not wait past the grace', async () => {
    const jobId = await finishedJob({ status: 'failed', awaitingReply: true });
    const posts: Post[] = [];
    let monotonic = 5_000;
    const m = messenger(restStub('slow', posts), { claimant: 'slow', monotonicNow: () => monotonic });
    machineClockOff(-120_000);
    await m.deliver(jobId);
    expect(posts).toEqual([]);
    monotonic += DELIVERY_REPLY_GRACE_MS + 100;
    await m.deliver(jobId);
    expect(posts).toHaveLength(1);
    expect(await deliveredAt(jobId)).not.toBeNull();
  });

  it('a job submitted longer ago than the grace by the database’s clock is posted at once, however slow this machine', async () => {
    const jobId = await finishedJob({ status: 'failed', awaitingReply: true, submittedSecondsAgo: DELIVERY_REPLY_GRACE_MS / 1000 + 5 });
    const posts: Post[] = [];
    const m = messenger(restStub('slow-old', posts), { claimant: 'slow-old', monotonicNow: () => 0 });
    machineClockOff(-60_000);
    await m.deliver(jobId);
    expect(posts).toHaveLength(1);
    expect(await deliveredAt(jobId)).not.toBeNull();
  });
});

describe('delivery claimants', () => {
  it('are this host and pid plus a random part, new for each messenger', () => {
    const pattern = new RegExp(`^bot-${os.hostname().replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}-${process.pid}-[0-9a-f]{8}$`);
    const [a, b] = [defaultClaimant(), defaultClaimant()];
    expect(a).toMatch(pattern);
    expect(b).toMatch(pattern);
    expect(a).not.toBe(b);
  });

  it('two bot processes with one host name and one pid (two containers, pid 1 each) post a result once', async () => {
    const jobId = await finishedJob({ status: 'failed' });
    const posts: Post[] = [];
    let letGo!: () => void;
    const held = new Promise<void>((resolve) => (letGo = resolve));
    // Both default claimants (here: the same host and pid); A's post is under way while B tries.
    const a = messenger(restStub('A', posts, () => held));
    const b = messenger(restStub('B', posts));
    const delivering = a.deliver(jobId);
    await vi.waitFor(() => expect(posts).toHaveLength(1));
    await b.deliver(jobId);
    letGo();
    await delivering;
    expect(posts.map((p) => p.by)).toEqual(['A']);
    expect(await deliveredAt(jobId)).not.toBeNull();
  });
});

describe('a video stored as a file this bot cannot read', () => {
  async function unreadableVideo(): Promise<{ jobId: number; file: string }> {
    const jobId = await finishedJob({ status: 'done' });
    const name = `job-${jobId}-attempt-1-0badf00d.mp4`;
    await farm.db.db.execute(sql`insert into artifacts (job_id, format, mime, size_bytes, path) values (${jobId}, 'mp4', 'video/mp4', 2048, ${name})`);
    // The worker wrote it on another machine: it is not in this bot's folder.
    return { jobId, file: path.join(artifactDir, name) };
  }

  it('is retried, the operator told the file and its error, and when given up its owner is told storage failed, not Discord', async () => {
    const { jobId, file } = await unreadableVideo();
    const posts: Post[] = [];
    const m = messenger(restStub('S', posts), { claimant: 'storage', retryDelayMs: 60_000 });
    await m.deliver(jobId);
    expect(logs).toContain(
      `[bot] delivering job ${jobId} failed (attempt 1, next try in 60 s): its video cannot be read from storage: ${file} (ENOENT). ` +
        `Set BLENDFARM_ARTIFACT_DIR on this bot process to the folder the workers keep videos in (it is ${artifactDir} here), one folder every machine reads`,
    );
    expect(posts).toEqual([]);
    expect(await deliveredAt(jobId)).toBeNull();
    expect(m.heldFor(jobId)).toEqual(['retry']);

    // Still failing when the time to give up has come.
    const late = messenger(restStub('L', posts), { claimant: 'storage-late', giveUpAfterMs: 0 });
    await late.deliver(jobId);
    const dm = posts.find((p) => p.content?.includes("I won't try to post"));
    expect(dm?.content).toContain(`Your video is finished, but I could not post it in <#${CHANNEL}> in **Harbour Club**: its video could not be read from the farm's storage. That is a fault on the bot's side, not in your request: tell the bot's operators, or run the command again to render it anew. I won't try to post job #${jobId} again.`);
    expect(dm?.content).not.toMatch(/Discord|ENOENT|\.mp4|blendfarm-bot-artifacts/);
    expect(await deliveredAt(jobId)).not.toBeNull();
    const givenUp = logs.find((l) => l.startsWith(`[bot] job ${jobId} given up:`));
    expect(givenUp).toContain(`its video could not be read from the farm's storage`);
    expect(givenUp).toContain(file);
    expect(givenUp).not.toContain('Discord kept failing');
  });
});
