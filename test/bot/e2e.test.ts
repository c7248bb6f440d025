/**
 * The bot end to end: the real discord.js client against the fake Discord, a real farm on PGlite,
 * and a real render worker running the engine (demo model) in a worker thread.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buttonsOf, type FakeDiscord, type FakeUser, type StoredMessage } from '../fake-discord/index.ts';
import { hasVideo, startBotFarm, startTestBot, stopBotFarm } from '../helpers/bot-farm.ts';
import type { TestDatabase } from '../helpers/db.ts';
import {
  getArtifact,
  getJob,
  submitJob,
  waitForJob,
  LIMITS,
  listJobs,
  movieOf,
  startLocalWorkers,
  updateGuildSettings,
  type FarmContext,
  type Job,
  type LocalWorkers,
  type ThreadRenderer,
} from '../../farm/index.ts';
import { BOT_INTENTS, type RunningBot } from '../../bot/bot.ts';
import { probeVideo } from '../../engine/index.ts';
import { deployCommands } from '../../apps/bot/deploy-commands.ts';
import { testModelDir } from '../../models/paths.ts';

const RENDER_TIMEOUT = 90_000;
let modelCache: string;
let fake: FakeDiscord;
let alice: FakeUser;
let bob: FakeUser;
let testDb: TestDatabase;
let farm: FarmContext;
let renderer: ThreadRenderer;
let workers: LocalWorkers;
let bot: RunningBot;

const start = () => startTestBot(fake, farm);

beforeAll(async () => {
  // Upscalers are converted from their npm packages on first use: into an empty cache, as on a fresh clone.
  modelCache = await mkdtemp(join(tmpdir(), 'blendfarm-e2e-models-'));
  process.env.BLENDFARM_MODEL_CACHE = modelCache;
  const running = await startBotFarm({ members: ['alice', 'bob'], renderer: { engine: { modelDir: testModelDir('demo') } } });
  ({ fake, testDb, farm, workers, bot } = running);
  renderer = running.renderer!;
  ({ alice, bob } = running.users);
});

afterAll(async () => {
  await stopBotFarm({ bot, workers, renderer, testDb, fake });
  delete process.env.BLENDFARM_MODEL_CACHE;
  if (modelCache) await rm(modelCache, { recursive: true, force: true });
});

/**
 * A small video of alice's, rendered by the farm and posted into the channel with its buttons (a job
 * with a channel and no interaction, as the operator CLI makes): the bot's sizes start at 512 pixels,
 * and the upscaling network runs on the CPU in these tests.
 */
async function postedVideo(prompts: string[], side: number): Promise<{ job: Job; message: StoredMessage }> {
  const job = await submitJob(farm, {
    kind: 'blend',
    userId: alice.id,
    guildId: fake.guild().id,
    channelId: fake.guild().channels[0].id,
    params: { prompts, width: side, height: side, durationSeconds: 1, fps: 6, quality: 'draft' },
  });
  expect((await waitForJob(farm, job.id, { timeoutMs: RENDER_TIMEOUT })).status).toBe('done');
  const message = await fake.waitForMessage((m) => m.content?.includes(`#${job.id}:`) === true && hasVideo(m) && buttonsOf(m).length > 0, 20_000);
  return { job: (await getJob(farm, job.id))!, message };
}

async function blend(user: FakeUser, options: Record<string, unknown>) {
  const handle = fake.sendSlashCommand({ commandName: 'blend', user, options: { quality: 'draft', duration: 1, ...options } });
  return handle;
}

describe('/blend end to end', () => {
  let finished: StoredMessage;
  let parentId: number;

  it('registers the commands and asks only for the intents it needs', () => {
    expect(fake.commands(fake.guild().id).map((c) => c.name).sort()).toEqual(['blend', 'budget', 'cancel', 'movie', 'queue', 'settings', 'vary']);
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
    // Pressed on the job's own message: they see the job, so they are told whose it is (not the neutral answer).
    const refusal = await fake.waitForMessage((m) => m.ephemeral && /can re-roll it/.test(m.content ?? ''), 10_000);
    expect(refusal.content).toBe('Only the person who made this video (or a moderator) can re-roll it; make your own with /blend, /movie or /vary.');
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

  it('Upscale makes the same video 4x per side with a trained network, linked to its parent and paid by the presser', async () => {
    // A small video (the network runs on the CPU here), posted with its buttons like any finished job.
    const { job: parent, message } = await postedVideo(['a red sunset over the sea', 'a green forest in spring'], 128);
    const parentVideo = await probeVideo(message.attachments[0].bytes);
    const press = fake.pressButton({ messageId: message.id, customId: `bf:upscale:${parent.id}`, user: alice });
    expect((await press.waitForResponse()).type).toBe(5);
    const done = await press.waitForOriginal(hasVideo, RENDER_TIMEOUT);
    const probe = await probeVideo(done.attachments[0].bytes);
    expect([probe.width, probe.height]).toEqual([parentVideo.width * 4, parentVideo.height * 4]);
    expect([probe.width, probe.height]).toEqual([512, 512]);
    expect(probe.frames).toBe(parentVideo.frames);
    expect(done.content).toMatch(new RegExp(`Upscale\\*\\* #\\d+ of #${parent.id}:`));
    expect(done.content).toMatch(/Upscaled 4× with esrgan-slim/);
    const [job] = await listJobs(farm, { order: 'newest', limit: 1 });
    expect([job.kind, job.parentJobId, job.userId, job.params.seeds, job.params.upscaleFactor]).toEqual(['upscale', parent.id, alice.id, parent.params.seeds, 4]);
    expect(job.chargedGpuSeconds).toBeGreaterThan(0);
    expect((await getArtifact(farm, job.id))?.meta).toMatchObject({ upscaler: 'esrgan-slim', scale: 4 });
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
  it('an empty prompt gets a private message at once, naming the option, and no job', async () => {
    const before = (await listJobs(farm, {})).length;
    const handle = await blend(alice, { from: '   ', to: 'a dog' });
    const r = await handle.waitForResponse();
    expect(r.type).toBe(4); // answered, not deferred: the farm's validator ran before deferring
    expect(r.ephemeral).toBe(true);
    expect(String(r.data?.content)).toMatch(/`from` must not be empty/);
    expect((await listJobs(farm, {})).length).toBe(before);
  });

  it('a job over the budget is refused with the numbers, privately', async () => {
    await updateGuildSettings(farm, fake.guild().id, { refillGpuSeconds: 0 });
    const handle = await blend(bob, { from: 'a cat', to: 'a dog', quality: 'max' });
    const msg = await fake.waitForMessage((m) => m.ephemeral && /GPU-seconds/.test(m.content ?? ''), 10_000);
    expect(msg.content).toMatch(/needs about [\d.]+ GPU-seconds? but you have [\d.]+ GPU-seconds? left/);
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

describe('delivery under Discord’s limits', () => {
  it('renders to fit the server’s upload limit, and re-encodes when Discord still says 413', async () => {
    fake.setAttachmentSizeLimit(60_000);
    const handle = await blend(alice, { from: 'a quiet harbour', to: 'a busy market', duration: 3 });
    const done = await handle.waitForOriginal(hasVideo, RENDER_TIMEOUT);
    expect(done.attachments[0].bytes.length).toBeLessThanOrEqual(60_000);
    const [job] = await listJobs(farm, { order: 'newest', limit: 1 });
    expect(job.params.maxBytes).toBe(60_000);

    // The limit drops after submission: the upload is refused (40005) and the bot shrinks the video.
    fake.setAttachmentSizeLimit(10 * 1024 * 1024);
    const second = await blend(alice, { from: 'a snowy field', to: 'a desert at noon', duration: 3 });
    await second.waitForResponse();
    fake.setAttachmentSizeLimit(25_000);
    const shrunk = await second.waitForOriginal(hasVideo, RENDER_TIMEOUT);
    expect(shrunk.attachments[0].bytes.length).toBeLessThanOrEqual(25_000);
    expect(shrunk.content).toMatch(/Re-encoded .* to fit/);
    expect(fake.requests.some((r) => r.errorCode === 40005)).toBe(true);
    fake.setAttachmentSizeLimit(10 * 1024 * 1024);
  });

  it('after the interaction token expires, the result still lands in the same message (bot-authenticated edit)', async () => {
    const handle = await blend(alice, { from: 'a red kite', to: 'a blue kite' });
    const first = await handle.waitForOriginal((m) => /Queued|%|Starting/.test(m.content ?? ''), 10_000);
    fake.expireToken(handle.token);
    const done = await fake.waitForMessage((m) => m.id === first.id && hasVideo(m), RENDER_TIMEOUT);
    expect(done.attachments).toHaveLength(1);
    expect(fake.requests.some((r) => r.errorCode === 50027)).toBe(true);
    expect(fake.requests.some((r) => r.method === 'PATCH' && r.path === `/channels/${done.channelId}/messages/${first.id}` && r.status === 200)).toBe(true);
  });
});

describe('forms, reactions and the other commands', () => {
  it('/movie without prompts opens a form; its prompts become a movie', async () => {
    const open = fake.sendSlashCommand({ commandName: 'movie', user: alice, options: { quality: 'draft', duration: 1 } });
    expect((await open.waitForResponse()).type).toBe(9);
    const submit = fake.submitModal({ to: open, values: { prompts: 'a red sunset\na green forest\n\na blue ocean' } });
    const done = await submit.waitForOriginal(hasVideo, RENDER_TIMEOUT);
    const probe = await probeVideo(done.attachments[0].bytes);
    expect(probe.frames).toBe(24); // two segments of 1 s at 12 fps, the join shown once
    const [job] = await listJobs(farm, { order: 'newest', limit: 1 });
    expect([job.kind, job.params.prompts.length, job.params.durationSeconds]).toEqual(['movie', 3, 1]);
  });

  it('/movie with prompts separated by | and a refusal for a single prompt', async () => {
    const bad = fake.sendSlashCommand({ commandName: 'movie', user: alice, options: { prompts: 'only one' } });
    const r = await bad.waitForResponse();
    expect([r.type, r.ephemeral]).toEqual([4, true]);
    expect(String(r.data?.content)).toMatch(new RegExp(`needs ${LIMITS.prompts.min} to ${LIMITS.prompts.max} prompts`));
  });

  it('Extend continues a finished movie from its last frame', async () => {
    const handle = await blend(alice, { from: 'a red sunset', to: 'a green forest', seed: 5 });
    const done = await handle.waitForOriginal(hasVideo, RENDER_TIMEOUT);
    const parentId = Number(/bf:extend:(\d+)/.exec(buttonsOf(done).map((b) => b.customId).join(' '))![1]);
    const open = fake.pressButton({ messageId: done.id, customId: `bf:extend:${parentId}`, user: alice });
    expect((await open.waitForResponse()).type).toBe(9);
    const submit = fake.submitModal({ to: open, values: { prompts: 'a blue ocean' } });
    const extended = await submit.waitForOriginal(hasVideo, RENDER_TIMEOUT);
    const probe = await probeVideo(extended.attachments[0].bytes);
    expect(probe.frames).toBe(24);
    expect(extended.content).toMatch(new RegExp(`Extension\\*\\* #\\d+ of #${parentId}: a red sunset → a green forest → a blue ocean`));
    const [job] = await listJobs(farm, { order: 'newest', limit: 1 });
    // The extension stores its own prompt and links its parent; the movie is both.
    expect([job.kind, job.parentJobId, job.params.prompts]).toEqual(['extend', parentId, ['a blue ocean']]);
    const movie = await movieOf(farm.db.db, job);
    expect(movie.prompts).toEqual(['a red sunset', 'a green forest', 'a blue ocean']);
    expect(movie.seeds.slice(0, 2)).toEqual([5, 6]);
  });

  it('format webp posts an animated WebP, and Extend continues it (decoding the WebP, then one encode)', async () => {
    const handle = await blend(alice, { from: 'a red sunset', to: 'a green forest', seed: 5, format: 'webp' });
    const done = await handle.waitForOriginal(hasVideo, RENDER_TIMEOUT);
    const file = done.attachments.find((a) => a.filename.endsWith('.webp'))!;
    expect(file.contentType).toBe('image/webp');
    const probe = await probeVideo(file.bytes);
    expect([probe.format, probe.frames, probe.width, probe.height]).toEqual(['webp', 12, 512, 512]);
    const parentId = Number(/bf:extend:(\d+)/.exec(buttonsOf(done).map((b) => b.customId).join(' '))![1]);
    const open = fake.pressButton({ messageId: done.id, customId: `bf:extend:${parentId}`, user: alice });
    expect((await open.waitForResponse()).type).toBe(9);
    const extended = await fake.submitModal({ to: open, values: { prompts: 'a blue ocean' } }).waitForOriginal(hasVideo, RENDER_TIMEOUT);
    const whole = await probeVideo(extended.attachments.find((a) => a.filename.endsWith('.webp'))!.bytes);
    expect([whole.format, whole.frames]).toEqual(['webp', 24]);
  });

  it('🔍 on a finished video upscales it 4x for whoever reacts (the owner here), in a reply', async () => {
    const { job: small, message: posted } = await postedVideo(['a moth', 'a lamp'], 64);
    fake.addReaction({ messageId: posted.id, emoji: '🔍', user: alice });
    const reply = await fake.waitForMessage((m) => m.content?.includes(`of #${small.id}:`) === true && hasVideo(m), RENDER_TIMEOUT);
    expect(reply.content).toMatch(/Upscaled 4× with esrgan-slim/);
    expect(reply.content).toMatch(new RegExp(`^<@${alice.id}> `));
    const probe = await probeVideo(reply.attachments[0].bytes);
    expect([probe.width, probe.height]).toEqual([256, 256]);
    const [job] = await listJobs(farm, { order: 'newest', limit: 1 });
    expect([job.kind, job.parentJobId, job.userId]).toEqual(['upscale', small.id, alice.id]);
  });

  it('🔁 on a finished video re-rolls it for its owner; a stranger’s reaction does nothing', async () => {
    const handle = await blend(alice, { from: 'a moth', to: 'a lamp' });
    const done = await handle.waitForOriginal(hasVideo, RENDER_TIMEOUT);
    const before = (await listJobs(farm, {})).length;
    expect(fake.addReaction({ messageId: done.id, emoji: '🔁', user: bob }).delivered).toBe(true);
    fake.addReaction({ messageId: done.id, emoji: '🔁', user: alice });
    const reply = await fake.waitForMessage((m) => m.id !== done.id && /Re-roll.*a moth/.test(m.content ?? '') && hasVideo(m), RENDER_TIMEOUT);
    // A reply that names the owner, edited into the finished video.
    expect(reply.content).toMatch(new RegExp(`^<@${alice.id}> `));
    const after = await listJobs(farm, {});
    expect(after.length).toBe(before + 1);
    expect(after.at(-1)!.userId).toBe(alice.id);
  });

  it('/budget, /queue and /cancel answer privately with real numbers', async () => {
    const b = fake.sendSlashCommand({ commandName: 'budget', user: alice });
    const budget = await b.waitForOriginal((m) => /GPU-seconds/.test(m.content ?? ''), 10_000);
    expect(budget.ephemeral).toBe(true);
    expect(budget.content).toMatch(/available/);
    const q = fake.sendSlashCommand({ commandName: 'queue', user: alice });
    const queue = await q.waitForOriginal((m) => /worker/.test(m.content ?? ''), 10_000);
    expect(queue.content).toMatch(/\*\*1\*\* worker online/);

    const none = fake.sendSlashCommand({ commandName: 'cancel', user: bob });
    expect((await none.waitForOriginal((m) => /cancel/i.test(m.content ?? ''), 10_000)).content).toMatch(/no queued or running job to cancel/);
  });

  it('the Cancel button stops a render and refunds; only the owner may press it', async () => {
    const handle = await blend(alice, { from: 'a long, slow render', to: 'that will be cancelled', quality: 'max', duration: 10 });
    const queued = await handle.waitForOriginal((m) => buttonsOf(m).some((b) => b.customId?.startsWith('bf:cancel:')), 10_000);
    const cancelId = buttonsOf(queued).find((b) => b.customId?.startsWith('bf:cancel:'))!.customId!;
    const jobId = Number(cancelId.split(':')[2]);
    const stranger = fake.pressButton({ messageId: queued.id, customId: cancelId, user: bob });
    // Pressed on the job's own message: they see the job, so they are told whose it is.
    expect((await stranger.waitForOriginal((m) => Boolean(m.content), 10_000)).content).toBe('Only the person who asked for this render (or a moderator) can cancel it.');
    const press = fake.pressButton({ messageId: queued.id, customId: cancelId, user: alice });
    const answer = await press.waitForOriginal((m) => /Cancelled job/.test(m.content ?? ''), 10_000);
    expect(answer.ephemeral).toBe(true);
    // Their own job: their budget.
    expect(answer.content).toMatch(new RegExp(`^Cancelled job #${jobId}; [\\d.]+ GPU-seconds went back to your budget\\.$`));
    const final = await handle.waitForOriginal((m) => /Cancelled\./.test(m.content ?? ''), 30_000);
    expect(final.content).toMatch(/\nCancelled\. Unused GPU-seconds went back to your budget\.$/);
    expect(buttonsOf(final)).toHaveLength(0);
    expect((await getJob(farm, jobId))?.status).toBe('cancelled');
  });

  it('/settings needs Manage Server and changes the limits', async () => {
    const denied = fake.sendSlashCommand({ commandName: 'settings', user: bob, subcommand: 'show', memberPermissions: 0n, ignoreCommandPermissions: true });
    const d = await denied.waitForOriginal((m) => /Manage Server/.test(m.content ?? ''), 10_000);
    expect(d.ephemeral).toBe(true);
    const set = fake.sendSlashCommand({ commandName: 'settings', user: alice, subcommand: 'set', options: { refill: 1234, 'max-jobs': 7 }, memberPermissions: 1n << 5n });
    const s = await set.waitForOriginal((m) => /Refill/.test(m.content ?? ''), 10_000);
    expect(s.content).toMatch(/\*\*1234 GPU-seconds\*\*/);
    expect(s.content).toMatch(/per member: \*\*7\*\*/);
    await updateGuildSettings(farm, fake.guild().id, { refillGpuSeconds: null, maxActiveJobs: null });
  });

  it('server defaults from /settings apply when a member leaves an option out', async () => {
    await deployCommands({ token: fake.token, guildId: fake.guild().id, apiBase: fake.restBase });
    const set = fake.sendSlashCommand({ commandName: 'settings', user: alice, subcommand: 'defaults', options: { size: 'landscape', duration: 2, format: 'gif' }, memberPermissions: 1n << 5n });
    expect((await set.waitForOriginal((m) => /Render defaults/.test(m.content ?? ''), 10_000)).content).toMatch(/Render defaults: (?=.*size landscape)(?=.*duration 2 s)(?=.*format gif)/);
    const handle = fake.sendSlashCommand({ commandName: 'blend', user: alice, options: { from: 'a fern', to: 'a palm', quality: 'draft', format: 'mp4' } });
    const done = await handle.waitForOriginal(hasVideo, RENDER_TIMEOUT);
    const probe = await probeVideo(done.attachments[0].bytes);
    expect([probe.codec, probe.width, probe.height, probe.frames]).toEqual(['h264', 768, 512, 24]);
    const reset = fake.sendSlashCommand({ commandName: 'settings', user: alice, subcommand: 'defaults', options: { reset: true }, memberPermissions: 1n << 5n });
    expect((await reset.waitForOriginal((m) => /Render defaults/.test(m.content ?? ''), 10_000)).content).toMatch(/Render defaults: none/);
  });
});
