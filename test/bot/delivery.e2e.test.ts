/**
 * Getting a queued job's video to its owner when Discord misbehaves: the real discord.js client
 * against the fake Discord, a farm on PGlite and quick fake renders ("[fake ms=N]" slows one down).
 * Short retry and sweep intervals stand in for the production ones (DELIVERY_* in bot/delivery.ts).
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buttonsOf, DEFAULT_EVERYONE_PERMISSIONS, Permissions, type FakeDiscord, type FakeGuild, type FakeUser, type InteractionHandle, type StoredMessage } from '../fake-discord/index.ts';
import { DEFAULT_BOT_PERMISSIONS } from '../fake-discord/state.ts';
import { type BotFarm, hasVideo, startBotFarm, stopBotFarm } from '../helpers/bot-farm.ts';
import { getJob, listJobs, waitForJob, type ClaimedJob, type FarmContext, type Job, type RenderContext, type RenderResult } from '../../farm/index.ts';
import { FakeRenderer } from '../../farm/fake-renderer.ts';
import { encodeVideo } from '../../engine/index.ts';
import { sql } from 'drizzle-orm';
import { queryRows } from '../../db/client.ts';
import { pastFollowUpWindow } from '../helpers/follow-ups.ts';
import { privateReason } from '../helpers/replies.ts';

const WEBHOOK_ORIGINAL = '/webhooks/:applicationId/:token/messages/@original';

let fake: FakeDiscord;
let home: FakeGuild;
let locked: FakeGuild;
/** Takes uploads of at most 20 000 bytes. */
let small: FakeGuild;
/** 48 frames of 128×128 noise: far more than 20 000 bytes, and 2.4 MB decoded. */
let noiseVideo: Buffer;
let alice: FakeUser;
let running: BotFarm | undefined;
let farm: FarmContext;
const logs: string[] = [];

const isQueued = (m: StoredMessage) => buttonsOf(m).some((b) => b.customId?.startsWith('bf:cancel:'));
const jobIdOn = (m: StoredMessage, action: string) => Number(buttonsOf(m).find((b) => b.customId?.startsWith(`bf:${action}:`))!.customId!.split(':')[2]);
const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const until = async (check: () => boolean | Promise<boolean>, timeoutMs: number, what: string) => {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
};

/**
 * The fake renderer, but a prompt with "[noise]" gets a real video of noise (noiseVideo) and one
 * with "[garbage]" bytes no decoder reads, both far larger than the Small server takes.
 */
class LargeVideoRenderer extends FakeRenderer {
  override async render(job: ClaimedJob, context: RenderContext): Promise<RenderResult> {
    const result = await super.render(job, context);
    const prompt = job.params.prompts.join(' ');
    if (prompt.includes('[noise]')) return { ...result, video: noiseVideo, format: 'mp4', mime: 'video/mp4' };
    if (prompt.includes('[garbage]')) return { ...result, video: randomBytes(60_000), format: 'mp4', mime: 'video/mp4' };
    return result;
  }
}

function blend(prompt: string, opts: { channelId?: string; guildId?: string } = {}): InteractionHandle {
  return fake.sendSlashCommand({ commandName: 'blend', user: alice, ...opts, options: { from: prompt, to: 'a calm sea', quality: 'draft', duration: 1 } });
}

/** The job an interaction made (its token is stored on the job). */
async function jobOf(run: InteractionHandle): Promise<Job> {
  let job: Job | undefined;
  await until(async () => (job = (await listJobs(farm, { userId: alice.id })).find((j) => j.interactionToken === run.token)) !== undefined, 10_000, 'the job of the interaction');
  return job!;
}

/** The bot's DMs to alice about job `id` (none before the bot has opened a DM channel with her). */
const dmsAbout = (id: number) => {
  const dm = fake.dmChannel(alice);
  return dm ? fake.messages(dm.id).filter((m) => new RegExp(`#${id}\\b`).test(m.content)) : [];
};

/** A job's delivery events as an operator reads them from job_events: delivered, or undeliverable and why. */
const deliveryEvents = (jobId: number) =>
  queryRows<{ type: string; reason: string | null }>(running!.db.db, sql`select type, data->>'reason' as reason from job_events where job_id = ${jobId} and type in ('delivered', 'undeliverable') order by id`);

/** Everything the bot showed for an interaction: its reply (even deleted) and its follow-ups. */
const interactionMessages = (run: InteractionHandle) => fake.messages(undefined, { includeDeleted: true }).filter((m) => m.interactionId === run.id);

beforeAll(async () => {
  const frames = Array.from({ length: 48 }, () => ({ data: new Uint8Array(randomBytes(128 * 128 * 3)), width: 128, height: 128, channels: 3 as const }));
  noiseVideo = (await encodeVideo(frames, { format: 'mp4', fps: 12, width: 128, height: 128, crf: 10 })).bytes;
  running = await startBotFarm({
    guilds: [
      { name: 'Home', channels: ['renders', 'doomed', 'hidden'] },
      // Invited without Attach Files: no render can be posted there.
      { name: 'Locked', channels: ['lobby'], botPermissions: DEFAULT_BOT_PERMISSIONS & ~Permissions.AttachFiles, everyonePermissions: DEFAULT_EVERYONE_PERMISSIONS & ~Permissions.AttachFiles },
      { name: 'Small', channels: ['tiny'], attachmentSizeLimit: 20_000 },
      // The bot may post in threads only (Send Messages in Threads, not Send Messages): it cannot unarchive one.
      { name: 'Threads only', channels: ['forum-ish'], botPermissions: DEFAULT_BOT_PERMISSIONS & ~Permissions.SendMessages, everyonePermissions: DEFAULT_EVERYONE_PERMISSIONS & ~Permissions.SendMessages },
    ],
    members: [{ username: 'alice', guilds: ['Home', 'Locked', 'Small', 'Threads only'] }],
    renderer: () => new LargeVideoRenderer({ models: ['demo'], steps: 2, stepMs: 5 }),
    log: (m) => logs.push(m),
    // The bot decodes at most 100 kB of frames to shrink a video (a quarter of the side at least).
    messenger: { editIntervalMs: 100, retryDelayMs: 100, maxRetryDelayMs: 300, sweepIntervalMs: 150, shrink: { maxRawBytes: 100_000 } },
  });
  ({ fake, farm } = running);
  alice = running.users.alice;
  home = fake.guild('Home');
  locked = fake.guild('Locked');
  small = fake.guild('Small');
}, 90_000);

afterAll(() => stopBotFarm(running ?? {}));

describe('once a job is queued it is never refused', () => {
  it('the queued message cannot be shown (webhook 500s): no "could not start", nothing deleted, the video posted later as a new message', async () => {
    // Every try of the queued edit and of the plain "Job #N is queued" fails (discord.js tries each 4 times).
    fake.failNext({ route: WEBHOOK_ORIGINAL, method: 'PATCH', status: 500, times: 8 });
    const run = blend('[fake ms=1000] a lighthouse');
    const job = await jobOf(run);
    await until(() => logs.some((l) => l.includes(`job ${job.id} is queued, but its message could not be shown`)), 15_000, 'the log line');
    expect((await getJob(farm, job.id))!.status).toMatch(/queued|running/);
    // The interaction's token runs out before the render ends: the video comes as a new message.
    fake.expireToken(run.token);
    const posted = await fake.waitForMessage((m) => m.content.includes(`#${job.id}:`) && hasVideo(m), 20_000);
    expect(posted.interactionId).toBeNull();
    expect(posted.channelId).toBe(home.channels[0].id);
    expect(posted.content).toMatch(new RegExp(`^<@${alice.id}> `));
    expect(posted.mentions).toEqual([alice.id]);
    await until(async () => (await getJob(farm, job.id))!.deliveredAt !== null, 5000, 'delivered');
    const stored = (await getJob(farm, job.id))!;
    expect([stored.status, stored.messageId]).toEqual(['done', posted.id]);
    // The reply was never turned into a refusal, deleted, or followed by a private message.
    const shown = interactionMessages(run);
    expect(shown).toHaveLength(1);
    expect(shown[0].deleted).toBe(false);
    expect(shown.some((m) => m.ephemeral || /could not start/.test(m.content) || m.revisions.some((r) => /could not start/.test(r.content)))).toBe(false);
    expect(fake.unhandled).toEqual([]);
  });

  it('when only the first edit fails, the reply says "Job #N is queued" and the video lands in it', async () => {
    fake.failNext({ route: WEBHOOK_ORIGINAL, method: 'PATCH', status: 500, times: 4 });
    const run = blend('[fake ms=300] a windmill');
    const queued = await run.waitForOriginal((m) => /^Job #\d+ is queued/.test(m.content), 15_000);
    const job = await jobOf(run);
    expect(queued.content).toContain(`Job #${job.id} is queued`);
    expect(jobIdOn(queued, 'cancel')).toBe(job.id);
    const done = await run.waitForOriginal(hasVideo, 20_000);
    expect(done.content).toContain(`#${job.id}:`);
    expect(interactionMessages(run).filter((m) => m.ephemeral || m.deleted)).toEqual([]);
  });
});

describe('delivery rides out outages and gives up only on what cannot succeed', () => {
  it('a 503 outage longer than five tries: delivered once Discord answers again', async () => {
    const run = blend('[fake ms=200] a fox');
    await run.waitForOriginal(isQueued, 10_000);
    const job = await jobOf(run);
    const before = logs.length;
    fake.failNext({ route: new RegExp(`/webhooks/[^/]+/${escape(run.token)}/messages/@original`), method: 'PATCH', status: 503, times: 100_000 });
    expect((await waitForJob(farm, job.id, { timeoutMs: 20_000 })).status).toBe('done');
    await until(() => logs.slice(before).some((l) => l.includes(`delivering job ${job.id} failed (attempt 7`)), 30_000, 'a seventh failed attempt');
    expect((await getJob(farm, job.id))!.deliveredAt).toBeNull();
    fake.clearFaults();
    const done = await run.waitForOriginal(hasVideo, 10_000);
    expect(done.content).toContain(`#${job.id}:`);
    await until(async () => (await getJob(farm, job.id))!.deliveredAt !== null, 5000, 'delivered');
  });

  it('a deleted channel: the job is given up (marked undeliverable, and why) and its owner told by DM; a newer job is still delivered', async () => {
    const doomed = fake.channel('doomed', home.id);
    const lost = blend('[fake ms=500] a ghost ship', { channelId: doomed.id });
    await lost.waitForOriginal(isQueued, 10_000);
    const lostJob = await jobOf(lost);
    fake.deleteChannel(doomed.id);
    const newer = blend('[fake ms=300] a harbour');
    const newerJob = await jobOf(newer);
    const dm = await fake.waitForMessage((m) => m.channelId === fake.dmChannel(alice)?.id && m.content.includes(`#${lostJob.id}`), 20_000);
    expect(dm.content).toMatch(/could not post it in <#\d+>.*: that channel no longer exists\. Run the command again in another channel\./);
    expect(dm.content).toContain(`I won't try to post job #${lostJob.id} again`);
    const lostNow = (await getJob(farm, lostJob.id))!;
    expect(lostNow.status).toBe('done');
    expect(lostNow.deliveredAt).not.toBeNull();
    expect(logs.some((l) => l.includes(`job ${lostJob.id} given up`) && l.includes('that channel no longer exists'))).toBe(true);
    const done = await newer.waitForOriginal(hasVideo, 20_000);
    expect(done.content).toContain(`#${newerJob.id}:`);
    // An operator finds the job nobody got, and why; the one posted is just delivered.
    expect(await deliveryEvents(lostJob.id)).toEqual([{ type: 'undeliverable', reason: expect.stringContaining(`channel ${doomed.id} of server ${home.id}: that channel no longer exists`) }]);
    await until(async () => (await getJob(farm, newerJob.id))!.deliveredAt !== null, 5000, 'delivered');
    expect(await deliveryEvents(newerJob.id)).toEqual([{ type: 'delivered', reason: null }]);
    // Given up once: no retries, one DM.
    await new Promise((r) => setTimeout(r, 600));
    expect(dmsAbout(lostJob.id)).toHaveLength(1);
    expect(logs.some((l) => l.includes(`delivering job ${lostJob.id} failed`))).toBe(false);
  });

  it('token expired and no access to the channel (403 50001): given up at once, the owner told by DM, and a failed DM only logged', async () => {
    const hidden = fake.channel('hidden', home.id);
    const run = blend('[fake ms=500] an owl', { channelId: hidden.id });
    await run.waitForOriginal(isQueued, 10_000);
    const job = await jobOf(run);
    fake.expireToken(run.token);
    const inHidden = `/channels/${hidden.id}/messages`;
    fake.failNext({ route: new RegExp(`^${inHidden}/\\d+$`), method: 'PATCH', status: 403, code: 50001, message: 'Missing Access', times: 100_000 });
    fake.failNext({ route: new RegExp(`^${inHidden}$`), method: 'POST', status: 403, code: 50001, message: 'Missing Access', times: 100_000 });
    const dm = await fake.waitForMessage((m) => m.channelId === fake.dmChannel(alice)?.id && m.content.includes(`#${job.id}`), 20_000);
    expect(dm.content).toContain('I can no longer see that channel');
    expect(dm.content).toContain('View Channel, Send Messages, Attach Files and Embed Links');
    expect((await getJob(farm, job.id))!.deliveredAt).not.toBeNull();

    // Same again, and this time alice does not accept DMs (50007): logged, nothing else.
    const second = blend('[fake ms=500] a bat', { channelId: hidden.id });
    await second.waitForOriginal(isQueued, 10_000);
    const secondJob = await jobOf(second);
    fake.expireToken(second.token);
    fake.failNext({ route: new RegExp(`^/channels/${fake.dmChannel(alice)!.id}/messages$`), method: 'POST', status: 403, code: 50007, message: 'Cannot send messages to this user' });
    await until(() => logs.some((l) => l.includes(`job ${secondJob.id}: the DM telling user ${alice.id} it could not be posted failed too`)), 20_000, 'the failed DM logged');
    expect((await getJob(farm, secondJob.id))!.deliveredAt).not.toBeNull();
    fake.clearFaults();
  });
});

describe('a reply in a thread archived since', () => {
  const archived = (id: string) => fake.channel(id).thread!.archived;

  it('archived but not locked: the bot unarchives it and the video lands in the reply, with no retry', async () => {
    const thread = fake.addThread({ name: 'heron ideas', parent: 'renders' }, home.id);
    const run = blend('[fake ms=600] a heron', { channelId: thread.id });
    await run.waitForOriginal(isQueued, 10_000);
    const job = await jobOf(run);
    fake.setThread(thread.id, { archived: true });
    const done = await run.waitForOriginal(hasVideo, 20_000);
    expect(done.content).toContain(`#${job.id}:`);
    expect(done.channelId).toBe(thread.id);
    expect(archived(thread.id)).toBe(false);
    await until(async () => (await getJob(farm, job.id))!.deliveredAt !== null, 5000, 'delivered');
    expect(logs.some((l) => l.includes(`delivering job ${job.id} failed`) || l.includes(`job ${job.id} given up`))).toBe(false);
    expect(dmsAbout(job.id)).toEqual([]);
    // The progress edits refused meanwhile are said once, not once per progress event.
    expect(logs.filter((l) => l.includes(`job ${job.id}`) && /progress edit/.test(l))).toEqual([`[bot] job ${job.id}: its thread has been archived; no more progress edits (the result will reopen it)`]);
    // The same once the interaction's token is gone: the bot's own edit of the reply, after unarchiving.
    const late = blend('[fake ms=600] a stork', { channelId: thread.id });
    await late.waitForOriginal(isQueued, 10_000);
    const lateJob = await jobOf(late);
    fake.expireToken(late.token);
    fake.setThread(thread.id, { archived: true });
    const lateDone = await late.waitForOriginal(hasVideo, 20_000);
    expect(lateDone.content).toContain(`#${lateJob.id}:`);
    expect(archived(thread.id)).toBe(false);
  });

  it('locked by a moderator: given up at once (no day of retries), the thread left as it is, the owner told by DM', async () => {
    const thread = fake.addThread({ name: 'closed ideas', parent: 'renders' }, home.id);
    const run = blend('[fake ms=600] a crane', { channelId: thread.id });
    await run.waitForOriginal(isQueued, 10_000);
    const job = await jobOf(run);
    fake.setThread(thread.id, { archived: true, locked: true });
    const dm = await fake.waitForMessage((m) => m.channelId === fake.dmChannel(alice)?.id && m.content.includes(`#${job.id}`), 20_000);
    expect(dm.content).toMatch(/could not post it in <#\d+> in \*\*Home\*\*: its thread was locked by a moderator\. /);
    expect(dm.content).toContain(`I won't try to post job #${job.id} again`);
    expect((await getJob(farm, job.id))!.deliveredAt).not.toBeNull();
    expect(fake.channel(thread.id).thread).toMatchObject({ archived: true, locked: true });
    expect(logs.some((l) => l.includes(`delivering job ${job.id} failed`))).toBe(false);
    expect(logs.some((l) => l.includes(`job ${job.id} given up`) && l.includes('its thread was locked'))).toBe(true);
    expect(await deliveryEvents(job.id)).toEqual([{ type: 'undeliverable', reason: expect.stringContaining('its thread was locked by a moderator') }]);
    // Locked but not archived, the token gone: the fallback post is refused (160005), given up the same way.
    fake.setThread(thread.id, { archived: false, locked: false });
    const second = blend('[fake ms=600] an ibis', { channelId: thread.id });
    await second.waitForOriginal(isQueued, 10_000);
    const secondJob = await jobOf(second);
    fake.expireToken(second.token);
    // Its reply is gone (deleted by a moderator), so the bot posts a new message.
    fake.failNext({ route: new RegExp(`^/channels/${thread.id}/messages/\\d+$`), method: 'PATCH', status: 404, code: 10008, message: 'Unknown Message', times: 100_000 });
    fake.setThread(thread.id, { locked: true });
    const secondDm = await fake.waitForMessage((m) => m.channelId === fake.dmChannel(alice)?.id && m.content.includes(`#${secondJob.id}`), 20_000);
    expect(secondDm.content).toContain('its thread was locked by a moderator');
    // Archived, not locked, but the bot may not unarchive it (Send Messages): given up at once too.
    const threadsOnly = fake.guild('Threads only');
    const other = fake.addThread({ name: 'ideas', parent: 'forum-ish' }, threadsOnly.id);
    const third = blend('[fake ms=600] a swan', { guildId: threadsOnly.id, channelId: other.id });
    await third.waitForOriginal(isQueued, 10_000);
    const thirdJob = await jobOf(third);
    fake.setThread(other.id, { archived: true });
    const thirdDm = await fake.waitForMessage((m) => m.channelId === fake.dmChannel(alice)?.id && m.content.includes(`#${thirdJob.id}`), 20_000);
    expect(thirdDm.content).toContain('its thread was archived and I may not reopen it');
    expect(fake.channel(other.id).thread!.archived).toBe(true);
    expect(logs.some((l) => l.includes(`delivering job ${thirdJob.id} failed`))).toBe(false);
    expect(logs.some((l) => l.includes(`delivering job ${secondJob.id} failed`))).toBe(false);
    fake.clearFaults();
  });
});

describe('a video too large for its channel that cannot be shrunk here', () => {
  const settled = async (job: Job, run: InteractionHandle) => {
    const done = await run.waitForOriginal((m) => /is not attached/.test(m.content), 20_000);
    await until(async () => (await getJob(farm, job.id))!.deliveredAt !== null, 5000, 'delivered');
    // No retries: nothing more is tried, edited or logged for it.
    const edits = fake.edits(run).length;
    await new Promise((r) => setTimeout(r, 800));
    expect(fake.edits(run).length).toBe(edits);
    expect(logs.some((l) => l.includes(`delivering job ${job.id} failed`))).toBe(false);
    expect(logs.filter((l) => l.startsWith(`[bot] job ${job.id}: its `) && l.includes('video is not attached'))).toHaveLength(1);
    expect(dmsAbout(job.id)).toEqual([]);
    return done;
  };

  it('too large to decode in the bot: one clear message (sizes, what to do) with seeds and buttons, marked delivered, no retries', async () => {
    expect(noiseVideo.length).toBeGreaterThan(20_000);
    const run = blend('[noise] static', { guildId: small.id });
    const job = await jobOf(run);
    expect(job.params.maxBytes).toBe(20_000);
    const done = await settled(job, run);
    expect(done.attachments).toEqual([]);
    expect(done.content).toContain(`#${job.id}:`);
    expect(done.content).toContain('seeds ');
    expect(done.content).toContain(
      `The video is ${Math.ceil(noiseVideo.length / 1024)} KiB, more than the 20 KiB this server accepts for an upload, and it is too long and too large (48 frames of 128×128) to be re-encoded smaller here, so it is not attached. ` +
        'To get it here, render it again shorter, at a smaller size, or as webm (smaller files for the same quality); or a server admin can raise the upload limit with a higher Boost level.',
    );
    expect(buttonsOf(done).map((b) => b.customId?.split(':')[1])).toEqual(['upscale', 'reroll', 'extend']);
  });

  it('a video the bot cannot decode at all: the same, not retried for a day', async () => {
    const run = blend('[garbage] snow', { guildId: small.id });
    const job = await jobOf(run);
    const done = await settled(job, run);
    expect(done.attachments).toEqual([]);
    expect(done.content).toMatch(/The video is 59 KiB, more than the 20 KiB this server accepts for an upload, and it could not be re-encoded smaller, so it is not attached\./);
  });
});

describe('refused before queuing where the bot cannot post', () => {
  it('missing Attach Files: a private refusal naming it, and no job', async () => {
    const before = (await listJobs(farm, {})).length;
    const run = fake.sendSlashCommand({ commandName: 'blend', user: alice, guildId: locked.id, options: { from: 'a cat', to: 'a dog', quality: 'draft', duration: 1 } });
    const answer = await run.waitForResponse();
    expect([answer.type, answer.ephemeral]).toEqual([4, true]);
    expect(String(answer.data?.content)).toMatch(/missing the \*\*Attach Files\*\* permission here, so nothing was queued or charged/);
    expect(String(answer.data?.content)).toContain('View Channel, Send Messages, Attach Files and Embed Links');
    // /movie without prompts is refused before its form.
    const movie = fake.sendSlashCommand({ commandName: 'movie', user: alice, guildId: locked.id, options: { quality: 'draft' } });
    const movieAnswer = await movie.waitForResponse();
    expect([movieAnswer.type, movieAnswer.ephemeral]).toEqual([4, true]);
    expect(String(movieAnswer.data?.content)).toMatch(/Attach Files/);
    expect((await listJobs(farm, {})).length).toBe(before);
  });
});

describe('buttons', () => {
  it('Re-roll pressed twice quickly makes one job; the second press is told it is on its way, a late second press which job it is', async () => {
    const finished = await blend('a lantern').waitForOriginal((m) => hasVideo(m) && buttonsOf(m).some((b) => b.customId?.startsWith('bf:reroll:')), 20_000);
    const parentId = jobIdOn(finished, 'reroll');
    const before = (await listJobs(farm, { userId: alice.id })).length;
    const first = fake.pressButton({ messageId: finished.id, customId: `bf:reroll:${parentId}`, user: alice });
    const second = fake.pressButton({ messageId: finished.id, customId: `bf:reroll:${parentId}`, user: alice });
    const answers = await Promise.all([first, second].map((p) => p.waitForOriginal((m) => Boolean(m.content), 10_000)));
    const privateAnswers = answers.filter((m) => m.ephemeral);
    expect(privateAnswers).toHaveLength(1);
    expect(privateAnswers[0].content).toBe(`Your re-roll of #${parentId} is already on its way; its message will appear in a moment.`);
    const made = (await listJobs(farm, { userId: alice.id })).slice(before);
    expect(made.map((j) => [j.kind, j.parentJobId])).toEqual([['reroll', parentId]]);
    // Once that one is queued and its message recorded, a press within the same few seconds (a
    // double click whose second click came late, or another bot process) is told which job it is.
    await until(async () => (await getJob(farm, made[0].id))!.messageId !== null, 10_000, 'the re-roll’s message recorded');
    const late = fake.pressButton({ messageId: finished.id, customId: `bf:reroll:${parentId}`, user: alice });
    expect(await privateReason(late)).toMatch(new RegExp(`^Your re-roll of #${parentId} is already queued as job #${made[0].id}\\.`));
    expect((await listJobs(farm, { userId: alice.id })).slice(before)).toHaveLength(1);
    // A press after that window makes another job, as asked.
    await pastFollowUpWindow(farm.db);
    const third = fake.pressButton({ messageId: finished.id, customId: `bf:reroll:${parentId}`, user: alice });
    await third.waitForOriginal((m) => isQueued(m) || hasVideo(m), 10_000);
    expect((await listJobs(farm, { userId: alice.id })).slice(before)).toHaveLength(2);
  });
});
