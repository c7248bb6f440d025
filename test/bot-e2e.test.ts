/**
 * The bot end to end: the real discord.js client against the fake Discord, a real farm on PGlite,
 * and a real render worker running the engine (demo model) in a worker thread.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeDiscord, buttonsOf, type FakeDiscord, type FakeUser, type StoredMessage } from './fake-discord/index.ts';
import { createTestDatabase, farmContext, GENEROUS_BUDGET, type TestDatabase } from './helpers/db.ts';
import type { FarmContext } from '../farm/config.ts';
import type { FarmDb } from '../db/client.ts';
import { createThreadRenderer, type ThreadRenderer } from '../farm/thread-renderer.ts';
import { startLocalWorkers, type LocalWorkers } from '../farm/local.ts';
import { getJob, listJobs } from '../farm/jobs.ts';
import { updateGuildSettings } from '../farm/guilds.ts';
import { startBot, BOT_INTENTS, type RunningBot } from '../bot/bot.ts';
import { deployCommands } from '../bot/deploy-commands.ts';
import { probeVideo } from '../engine/video/probe.ts';
import { testModelDir } from '../models/paths.ts';

const RENDER_TIMEOUT = 90_000;
let fake: FakeDiscord;
let alice: FakeUser;
let bob: FakeUser;
let testDb: TestDatabase;
let db: FarmDb;
let farm: FarmContext;
let renderer: ThreadRenderer;
let workers: LocalWorkers;
let bot: RunningBot;

async function start(): Promise<RunningBot> {
  return startBot({ token: fake.token, apiBase: fake.restBase, farm, log: () => {}, messenger: { editIntervalMs: 150, retryDelayMs: 200 } });
}

const hasVideo = (m: StoredMessage) => m.attachments.some((a) => /\.(mp4|gif|webm)$/.test(a.filename));

beforeAll(async () => {
  fake = await startFakeDiscord({ guilds: [{ name: 'Blendfarm', channels: ['renders'] }] });
  alice = fake.createUser({ username: 'alice' });
  bob = fake.createUser({ username: 'bob' });
  fake.addMember(alice);
  fake.addMember(bob);
  testDb = await createTestDatabase('pglite');
  db = await testDb.open();
  farm = farmContext(db, { budget: GENEROUS_BUDGET });
  renderer = await createThreadRenderer({ module: 'farm/engine-renderer.ts', rendererOptions: { modelDir: testModelDir('demo') }, threads: 1 });
  workers = await startLocalWorkers(farm, { renderer, log: () => {} });
  await deployCommands({ token: fake.token, guildId: fake.guild().id, apiBase: fake.restBase });
  bot = await start();
});

afterAll(async () => {
  await bot?.stop();
  await workers?.stop('release');
  await renderer?.close();
  await testDb?.drop();
  await fake?.close();
});

async function blend(user: FakeUser, options: Record<string, unknown>) {
  const handle = fake.sendSlashCommand({ commandName: 'blend', user, options: { quality: 'draft', duration: 1, ...options } });
  return handle;
}

describe('/blend end to end', () => {
  let finished: StoredMessage;
  let parentId: number;

  it('registers the commands and asks only for the intents it needs', () => {
    expect(fake.commands(fake.guild().id).map((c) => c.name).sort()).toEqual(['blend', 'budget', 'cancel', 'movie', 'queue', 'settings']);
    expect(fake.lastIdentify?.intentNames.sort()).toEqual(['GuildMessageReactions', 'Guilds']);
    expect(BOT_INTENTS).toHaveLength(2);
  });

  it('defers at once, edits progress, and ends with an MP4 that ffprobe accepts, with buttons', async () => {
    const handle = await blend(alice, { from: 'a red sunset over the sea', to: 'a green forest in spring', seed: 42 });
    const response = await handle.waitForResponse();
    expect(response.type).toBe(5); // deferred: accepted within Discord's 3 s
    finished = await handle.waitForOriginal(hasVideo, RENDER_TIMEOUT);
    const video = finished.attachments.find((a) => a.filename.endsWith('.mp4'))!;
    const probe = await probeVideo(video.bytes);
    expect(probe.codec).toBe('h264');
    expect(probe.frames).toBe(12); // 1 s at the default 12 fps
    expect(finished.content).toMatch(/seeds 42, 43/);
    const ids = buttonsOf(finished).map((b) => b.customId);
    parentId = Number(/^bf:upscale:(\d+)$/.exec(ids[0]!)![1]);
    expect(ids).toEqual([`bf:upscale:${parentId}`, `bf:reroll:${parentId}`, `bf:extend:${parentId}`]);
    // The message went through queued and progress states before the video.
    const texts = fake.edits(handle).map((r) => r.content ?? '');
    expect(texts.some((t) => /Queued/.test(t))).toBe(true);
    expect(texts.some((t) => /\d+%/.test(t))).toBe(true);
    const job = await getJob(farm, parentId);
    expect(job?.status).toBe('done');
    expect(job?.deliveredAt).not.toBeNull();
  });

  it('a stranger cannot re-roll or upscale someone else’s video', async () => {
    const before = (await listJobs(farm, {})).length;
    const press = fake.pressButton({ messageId: finished.id, customId: `bf:reroll:${parentId}`, user: bob });
    await press.waitForResponse();
    const refusal = await fake.waitForMessage((m) => m.ephemeral && /belongs to/.test(m.content ?? ''), 10_000);
    expect(refusal.content).toMatch(/only they \(or a moderator\)/);
    expect((await listJobs(farm, {})).length).toBe(before);
  });

  it('Re-roll by the owner makes a new job linked to the parent, with new seeds, also after a bot restart', async () => {
    await bot.stop();
    bot = await start();
    const press = fake.pressButton({ messageId: finished.id, customId: `bf:reroll:${parentId}`, user: alice });
    expect((await press.waitForResponse()).type).toBe(5);
    const done = await press.waitForOriginal(hasVideo, RENDER_TIMEOUT);
    const jobs = await listJobs(farm, { order: 'newest', limit: 1 });
    expect(jobs[0].kind).toBe('reroll');
    expect(jobs[0].parentJobId).toBe(parentId);
    expect(jobs[0].userId).toBe(alice.id);
    expect(jobs[0].params.prompts).toEqual(['a red sunset over the sea', 'a green forest in spring']);
    expect(jobs[0].params.seeds).not.toEqual([42, 43]);
    expect(done.content).toMatch(/Re-roll/);
  });

  it('Upscale renders the same transition at twice the size', async () => {
    const press = fake.pressButton({ messageId: finished.id, customId: `bf:upscale:${parentId}`, user: alice });
    const done = await press.waitForOriginal(hasVideo, RENDER_TIMEOUT);
    const probe = await probeVideo(done.attachments[0].bytes);
    expect([probe.width, probe.height]).toEqual([1024, 1024]);
    const [job] = await listJobs(farm, { order: 'newest', limit: 1 });
    expect([job.kind, job.parentJobId, job.params.seeds]).toEqual(['upscale', parentId, [42, 43]]);
  });

  it('retries a 429 from Discord and still delivers', async () => {
    fake.failNext({ route: '/webhooks/:applicationId/:token/messages/@original', method: 'PATCH', status: 429, retryAfter: 0.2, times: 2 });
    const handle = await blend(alice, { from: 'a castle', to: 'a submarine' });
    const done = await handle.waitForOriginal(hasVideo, RENDER_TIMEOUT);
    expect(done.attachments).toHaveLength(1);
    expect(fake.requests.filter((r) => r.status === 429).length).toBeGreaterThanOrEqual(2);
  });
});

describe('refusals', () => {
  it('an empty prompt gets a private message and no job', async () => {
    const before = (await listJobs(farm, {})).length;
    const handle = await blend(alice, { from: '   ', to: 'a dog' });
    const r = await handle.waitForResponse();
    expect(r.type).toBe(4);
    expect(r.ephemeral).toBe(true);
    expect(String(r.data?.content)).toMatch(/`from` prompt is empty/);
    expect((await listJobs(farm, {})).length).toBe(before);
  });

  it('a job over the budget is refused with the numbers, privately', async () => {
    await updateGuildSettings(farm, fake.guild().id, { refillGpuSeconds: 0 });
    const handle = await blend(bob, { from: 'a cat', to: 'a dog', quality: 'max' });
    const msg = await fake.waitForMessage((m) => m.ephemeral && /GPU-seconds/.test(m.content ?? ''), 10_000);
    expect(msg.content).toMatch(/needs about [\d.]+ GPU-seconds but only [\d.]+ are left/);
    expect(handle.response?.type).toBe(5);
    await updateGuildSettings(farm, fake.guild().id, { refillGpuSeconds: null });
  });

  it('no worker online: says so instead of queueing a job that cannot start', async () => {
    await workers.stop('release');
    const handle = await blend(alice, { from: 'a cat', to: 'a dog' });
    const msg = await fake.waitForMessage((m) => m.ephemeral && /No render worker is online/.test(m.content ?? ''), 10_000);
    expect(msg.content).toMatch(/try again in a few minutes/i);
    expect(handle.response?.type).toBe(5);
    workers = await startLocalWorkers(farm, { renderer, log: () => {} });
  });
});
