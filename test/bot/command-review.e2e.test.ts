/**
 * What a user review of the commands found, through the real discord.js client against the fake
 * Discord (a farm on PGlite, quick fake renders): /vary takes every frame count its picker offers
 * (one that does not split is rendered as the nearest that does, and said so), /blend's strength
 * says what the engine does with it, /settings defaults reset with values resets and then sets,
 * /movie with one comma-separated prompt says what to separate prompts with, and a member who
 * sees someone else's video is told whose it is to re-roll (button) or upscale (reaction, by DM).
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buttonsOf, type FakeDiscord, type FakeUser, type InteractionHandle, type StoredMessage } from '../fake-discord/index.ts';
import { type BotFarm, hasVideo, startBotFarm, stopBotFarm } from '../helpers/bot-farm.ts';
import { until } from '../helpers/until.ts';
import { getGuildSettings, LIMITS, listJobs, MAX_SPLITTABLE_VARIATION_FRAMES, nearestSplittableVariationFrames, variationFrames, variationShape, type FarmContext, type Job } from '../../farm/index.ts';
import { commands } from '../../bot/commands/index.ts';
import { noJobOfYoursText } from '../../bot/permissions.ts';

const PHOTO = readFileSync(new URL('../fixtures/photos/coffee.png', import.meta.url));
const picture = { filename: 'picture.png', bytes: PHOTO, contentType: 'image/png' };
const MANAGE_GUILD = 1n << 5n;

let running: BotFarm | undefined;
let fake: FakeDiscord;
let alice: FakeUser;
let bob: FakeUser;
let farm: FarmContext;
const logs: string[] = [];

beforeAll(async () => {
  running = await startBotFarm({ members: ['alice', 'bob'], renderer: { fake: { steps: 2, stepMs: 5 } }, log: (m) => logs.push(m) });
  ({ fake, farm } = running);
  ({ alice, bob } = running.users);
}, 90_000);

afterAll(() => stopBotFarm(running ?? {}));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const finished = (m: StoredMessage) => hasVideo(m) && buttonsOf(m).some((b) => b.customId?.startsWith('bf:reroll:'));
const newest = async (): Promise<Job> => (await listJobs(farm, { order: 'newest', limit: 1 }))[0];

type OptionJson = { name: string; description: string; min_value?: number; max_value?: number; options?: OptionJson[] };
const optionOf = (command: string, name: string): OptionJson => (commands.find((c) => c.data.name === command)!.data.toJSON() as unknown as { options: OptionJson[] }).options.find((o) => o.name === name)!;

/** The private follow-ups of an interaction, once `count` have come. */
async function followUps(handle: InteractionHandle, count = 1): Promise<StoredMessage[]> {
  await until(() => handle.followUps().length >= count, 15_000, 'a follow-up');
  return handle.followUps();
}

describe('/vary frames', () => {
  it('the picker offers up to the largest count that splits (599 within 600), and every count in it renders', () => {
    const frames = optionOf('vary', 'frames');
    expect([frames.min_value, frames.max_value]).toEqual([LIMITS.variationFrames.min, MAX_SPLITTABLE_VARIATION_FRAMES]);
    expect(MAX_SPLITTABLE_VARIATION_FRAMES).toBe(599);
    expect(variationShape(600)).toBeUndefined();
    for (let f = LIMITS.variationFrames.min; f <= MAX_SPLITTABLE_VARIATION_FRAMES; f++) {
      const near = nearestSplittableVariationFrames(f);
      const shape = variationShape(near)!;
      expect(variationFrames({ ...shape, noiseShift: 0 })).toBe(near);
      expect(Math.abs(near - f)).toBeLessThanOrEqual(3);
      if (variationShape(f)) expect(near).toBe(f);
    }
    expect([62, 72, 80, 90].map(nearestSplittableVariationFrames)).toEqual([63, 73, 81, 91]);
    // Not a number (Discord sends none, the function is exported): the default, not an endless loop.
    expect(nearestSplittableVariationFrames(Number.NaN)).toBe(nearestSplittableVariationFrames(Number.POSITIVE_INFINITY));
    expect(variationShape(nearestSplittableVariationFrames(Number.NaN))).toBeDefined();
  });

  it('90 frames: rendered as 91, and the member is told so privately', async () => {
    const handle = fake.sendSlashCommand({ commandName: 'vary', user: alice, options: { image: picture, frames: 90, quality: 'draft' } });
    await handle.waitForOriginal(hasVideo, 20_000);
    const job = await newest();
    expect([job.kind, job.userId, variationFrames(job.params.variation!)]).toEqual(['vary', alice.id, 91]);
    const [note] = await followUps(handle);
    expect(note.ephemeral).toBe(true);
    expect(note.content).toBe("90 frames can't be split evenly into variations; rendering 91.");
    expect(handle.original()!.content).not.toMatch(/cannot be split/);
  });

  it('a count that splits is rendered as asked, with no note', async () => {
    const handle = fake.sendSlashCommand({ commandName: 'vary', user: alice, options: { image: picture, frames: 5, quality: 'draft' } });
    await handle.waitForOriginal(hasVideo, 20_000);
    expect(variationFrames((await newest()).params.variation!)).toBe(5);
    await sleep(200);
    expect(handle.followUps()).toEqual([]);
  });
});

describe('/blend strength', () => {
  it('says what the engine does: 0.2 keeps the picture, 0.8 only its layout, 1 redoes it all', () => {
    const strength = optionOf('blend', 'strength');
    expect(strength.description).toBe('How much of each picture is redone: 0.2 keeps it, 0.8 only its layout, 1 all of it (default 0.5)');
    expect(strength.description.length).toBeLessThanOrEqual(100);
    expect([strength.min_value, strength.max_value]).toEqual([LIMITS.imageStrength.min, LIMITS.imageStrength.max]);
  });
});

describe('/settings defaults reset with values', () => {
  const settings = (options: Record<string, string | number | boolean>) =>
    fake.sendSlashCommand({ commandName: 'settings', user: alice, subcommand: 'defaults', options, memberPermissions: MANAGE_GUILD }).waitForOriginal((m) => /Render defaults/.test(m.content ?? ''), 10_000);

  it('forgets the old defaults, then sets the ones given, and says so', async () => {
    await settings({ size: 'landscape', format: 'gif' });
    const reply = await settings({ reset: true, quality: 'high' });
    expect(reply.ephemeral).toBe(true);
    expect(reply.content!.split('\n').slice(0, 2)).toEqual(['Forgot the previous render defaults, then set quality high.', 'Render defaults: quality high.']);
    expect((await getGuildSettings(farm, fake.guild().id)).defaults).toEqual({ quality: 'high' });
  });

  it('reset alone forgets them all', async () => {
    const reply = await settings({ reset: true });
    expect(reply.content!.split('\n')[0]).toBe('Forgot all render defaults.');
    expect(reply.content).toMatch(/^Render defaults: none \(/m);
    expect((await getGuildSettings(farm, fake.guild().id)).defaults).toEqual({});
  });
});

describe('/movie with one prompt that looks like a list', () => {
  const HINT = 'A movie needs 2 to 16 prompts (got 1): separate prompts with |, e.g. `a lighthouse | a storm at sea | a calm dawn`.';

  for (const prompts of ['a,b,c', 'a lighthouse; a storm', 'a lighthouse\na storm']) {
    it(`${JSON.stringify(prompts)}: says to separate prompts with |, nothing queued`, async () => {
      const before = (await listJobs(farm, {})).length;
      const handle = fake.sendSlashCommand({ commandName: 'movie', user: alice, options: { prompts, quality: 'draft' } });
      const reply = await handle.waitForOriginal(() => true, 10_000);
      expect(reply.ephemeral).toBe(true);
      expect(reply.content).toBe(HINT);
      expect((await listJobs(farm, {})).length).toBe(before);
    });
  }

  it('one prompt without such a separator gets the farm’s refusal, with no hint', async () => {
    const reply = await fake.sendSlashCommand({ commandName: 'movie', user: alice, options: { prompts: 'a lighthouse', quality: 'draft' } }).waitForOriginal(() => true, 10_000);
    expect(reply.content).toMatch(/2 to 16 prompts \(got 1\)/);
    expect(reply.content).not.toMatch(/separate/);
  });
});

describe('someone else’s video', () => {
  let video: StoredMessage;
  let jobId: number;

  beforeAll(async () => {
    video = await fake.sendSlashCommand({ commandName: 'blend', user: alice, options: { from: 'a lantern', to: 'a calm sea', quality: 'draft', duration: 1 } }).waitForOriginal(finished, 20_000);
    jobId = Number(buttonsOf(video).find((b) => b.customId?.startsWith('bf:reroll:'))!.customId!.split(':')[2]);
  });

  it('Re-roll pressed by another member on its message: whose it is to re-roll, privately; nothing queued', async () => {
    const press = fake.pressButton({ messageId: video.id, customId: `bf:reroll:${jobId}`, user: bob });
    const answer = await press.waitForOriginal((m) => m.interactionId === press.id, 10_000);
    expect(answer.ephemeral).toBe(true);
    expect(answer.content).toBe('Only the person who made this video (or a moderator) can re-roll it; make your own with /blend, /movie or /vary.');
    expect((await listJobs(farm, { userId: bob.id })).length).toBe(0);
  });

  it('its job number replayed on another message, or typed into /cancel: the neutral answer', async () => {
    const other = await fake.sendSlashCommand({ commandName: 'blend', user: bob, options: { from: 'a kite', to: 'a cloud', quality: 'draft', duration: 1 } }).waitForOriginal(finished, 20_000);
    const press = fake.pressButton({ messageId: other.id, customId: `bf:reroll:${jobId}`, user: bob, replayed: true });
    expect((await press.waitForOriginal((m) => m.interactionId === press.id, 10_000)).content).toBe(noJobOfYoursText(jobId, 're-roll'));
    const cancel = fake.sendSlashCommand({ commandName: 'cancel', user: bob, options: { job: jobId } });
    expect((await cancel.waitForOriginal((m) => /isn't one you can/.test(m.content ?? ''), 10_000)).content).toBe(noJobOfYoursText(jobId, 'cancel'));
  });

  it('🔍 by another member: told by DM whose it is to upscale, the reaction removed, nothing queued or posted', async () => {
    const since = Date.now();
    const before = (await listJobs(farm, {})).length;
    expect(fake.addReaction({ messageId: video.id, emoji: '🔍', user: bob }).delivered).toBe(true);
    const dm = await fake.waitForMessage((m) => m.channelId === fake.dmChannel(bob)?.id && m.createdAt >= since, 15_000);
    expect(dm.content).toBe(`Your 🔍 on job #${jobId} in <#${video.channelId}> did not upscale it. Only the person who made this video (or a moderator) can upscale it; make your own with /blend, /movie or /vary.`);
    await until(() => !(fake.message(video.id)!.reactions.get('🔍')?.has(bob.id) ?? false), 5000, 'the reaction removed');
    await sleep(200);
    expect(fake.messages(video.channelId).filter((m) => m.createdAt >= since)).toEqual([]);
    expect((await listJobs(farm, {})).length).toBe(before);
  });

  it('🔁 by another member whose DMs are closed: only the log hears of it, the channel sees nothing', async () => {
    const since = Date.now();
    fake.failNext({ route: `/channels/${fake.dmChannel(bob)!.id}/messages`, method: 'POST', status: 403, code: 50007, message: 'Cannot send messages to this user' });
    fake.addReaction({ messageId: video.id, emoji: '🔁', user: bob });
    await until(() => logs.some((l) => l.includes(`user ${bob.id}'s 🔁 on job ${jobId} could not be sent by DM`)), 10_000, 'the log line');
    await until(() => !(fake.message(video.id)!.reactions.get('🔁')?.has(bob.id) ?? false), 5000, 'the reaction removed');
    await sleep(300);
    expect(fake.messages(video.channelId, { includeDeleted: true }).filter((m) => m.createdAt >= since)).toEqual([]);
    fake.clearFaults();
  });
});
