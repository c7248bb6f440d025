/**
 * The follow-up buttons and the Extend form through the real discord.js client against the fake
 * Discord, on both database back ends, with the fake renderer: a movie with the most prompts a movie
 * may have offers no Extend and a stale Extend button is refused privately without a form; the form
 * asks for no more prompts than the movie has room for; Re-roll and Extend on an upscale of a picture
 * blend act on the blend, pictures included; Upscale on a video too long to upscale 4x upscales it
 * at the largest factor that fits, and an Upscale or 🔍 of one too long even at 2x is refused
 * privately with the farm's limit; a follow-up is rendered for the
 * upload limit of the server where its button was pressed, not the parent's; Re-roll pressed again
 * a moment after its job is queued (a double click) makes no second job and names the first.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buttonsOf, type FakeDiscord, type FakeGuild, type FakeUser, type InteractionHandle, type StoredMessage } from '../../fake-discord/index.ts';
import { BACKENDS } from '../../helpers/db.ts';
import { type BotFarm, hasVideo, startBotFarm, stopBotFarm } from '../../helpers/bot-farm.ts';
import { getJob, getJobInputs, LIMITS, listJobs, movieOf, submitJob, waitForJob, type FarmContext, type Job, type JobParamsInput } from '../../../farm/index.ts';
import { privateReason } from '../../helpers/replies.ts';

const PHOTO = readFileSync(new URL('../../fixtures/photos/coffee.png', import.meta.url));
const MIB = 1024 * 1024;

describe.each(BACKENDS)('follow-up buttons and the Extend form (%s)', (backend) => {
  let fake: FakeDiscord;
  let home: FakeGuild;
  let alice: FakeUser;
  let running: BotFarm | undefined;
  let farm: FarmContext;

  const actionsOn = (m: StoredMessage) => buttonsOf(m).map((b) => b.customId!.split(':')[1]);
  const newest = async (): Promise<Job> => (await listJobs(farm, { order: 'newest', limit: 1 }))[0];
  const prompts = (n: number) => Array.from({ length: n }, (_, i) => `scene ${i + 1}`);

  /** A finished job of alice's, posted into the channel by delivery with its buttons (as the operator CLI's jobs are). */
  async function posted(kind: 'blend' | 'movie', params: JobParamsInput, inputs?: Record<string, Uint8Array>): Promise<{ job: Job; message: StoredMessage }> {
    const job = await submitJob(farm, { kind, userId: alice.id, guildId: home.id, channelId: home.channels[0].id, params: { durationSeconds: 1, fps: 4, width: 64, height: 64, quality: 'draft', ...params }, inputs });
    expect((await waitForJob(farm, job.id, { timeoutMs: 20_000 })).status).toBe('done');
    const message = await fake.waitForMessage((m) => m.content?.includes(`#${job.id}:`) === true && hasVideo(m) && buttonsOf(m).length > 0, 20_000);
    return { job: (await getJob(farm, job.id))!, message };
  }

  function press(message: StoredMessage, action: string, jobId: number, replayed = false): InteractionHandle {
    return fake.pressButton({ messageId: message.id, customId: `bf:${action}:${jobId}`, user: alice, replayed });
  }

  /** The text input of the form a press was answered with. */
  async function formField(open: InteractionHandle): Promise<{ label: string; max_length: number }> {
    const response = await open.waitForResponse();
    expect(response.type).toBe(9);
    const [row] = (response.data as { components: Array<{ components: Array<{ label: string; max_length: number }> }> }).components;
    return row.components[0];
  }

  beforeAll(async () => {
    running = await startBotFarm({ members: ['alice'], backend, renderer: { fake: { steps: 2, stepMs: 5 } }, messenger: { editIntervalMs: 100, retryDelayMs: 100 } });
    ({ fake, farm } = running);
    home = fake.guild('Blendfarm');
    alice = running.users.alice;
  }, 90_000);

  afterAll(() => stopBotFarm(running ?? {}));

  it(`a movie with ${LIMITS.prompts.max} prompts has no Extend button (also when an extension brought it there), and a stale one is refused privately, without a form`, async () => {
    const max = LIMITS.prompts.max;
    const { job: full, message } = await posted('movie', { prompts: prompts(max) });
    expect(actionsOn(message)).toEqual(['upscale', 'reroll']);
    const before = (await listJobs(farm, {})).length;
    const stale = press(message, 'extend', full.id, true);
    const refusal = await stale.waitForResponse();
    expect([refusal.type, refusal.ephemeral]).toEqual([4, true]);
    expect(refusal.data?.content).toBe(`This movie already has ${max} prompts, the most a movie may have, so it can't be extended; start a new /movie to go on from its last prompt.`);
    expect((await listJobs(farm, {})).length).toBe(before);

    // One short of the most: Extend asks for one more prompt; the extension's own message has no Extend.
    const { job: almost, message: almostMessage } = await posted('movie', { prompts: prompts(max - 1) });
    expect(actionsOn(almostMessage)).toEqual(['upscale', 'reroll', 'extend']);
    const open = press(almostMessage, 'extend', almost.id);
    expect(await formField(open)).toMatchObject({ label: 'Next prompt (room for one more)', max_length: LIMITS.promptLength.max + 2 });
    const extended = await fake.submitModal({ to: open, values: { prompts: 'the end' } }).waitForOriginal((m) => hasVideo(m) && buttonsOf(m).length > 0, 20_000);
    const extension = await newest();
    expect([extension.kind, extension.parentJobId, extension.params.prompts]).toEqual(['extend', almost.id, ['the end']]);
    expect(actionsOn(extended)).toEqual(['upscale', 'reroll']);
  });

  it('the Extend form asks for no more prompts than the movie has room for, and refuses more privately before answering', async () => {
    const max = LIMITS.prompts.max;
    const { job, message } = await posted('movie', { prompts: prompts(max - 2) });
    const open = press(message, 'extend', job.id);
    expect(await formField(open)).toMatchObject({ label: 'Next prompts, one per line (at most 2)', max_length: 2 * (LIMITS.promptLength.max + 2) });
    const before = (await listJobs(farm, {})).length;
    const refused = await fake.submitModal({ to: open, values: { prompts: 'one\ntwo\nthree' } }).waitForResponse();
    // Answered privately at once: nothing public was deferred.
    expect([refused.type, refused.ephemeral]).toEqual([4, true]);
    expect(refused.data?.content).toBe(`This movie has ${max - 2} prompts; an extension may bring it to at most ${max}.`);
    expect((await listJobs(farm, {})).length).toBe(before);
  });

  it('Re-roll and Extend on an upscale of a picture blend act on the blend: its pictures, its size', async () => {
    const { job: blend, message } = await posted('blend', { prompts: ['a cup of coffee', 'a cup of tea'], images: [{ index: 0, strength: 0.5 }] }, { 'image-1': PHOTO });
    const upscaling = press(message, 'upscale', blend.id);
    const upscaled = await upscaling.waitForOriginal((m) => hasVideo(m) && buttonsOf(m).length > 0, 20_000);
    const upscale = await newest();
    expect([upscale.kind, upscale.parentJobId, upscale.params.images]).toEqual(['upscale', blend.id, undefined]);
    expect(actionsOn(upscaled)).toEqual(['reroll', 'extend']);

    await press(upscaled, 'reroll', upscale.id).waitForOriginal((m) => hasVideo(m), 20_000);
    const reroll = await newest();
    expect([reroll.kind, reroll.parentJobId, reroll.params.width, reroll.params.upscaleFactor]).toEqual(['reroll', blend.id, 64, undefined]);
    expect(reroll.params.images).toEqual([{ index: 0, strength: 0.5 }]);
    expect(Buffer.from((await getJobInputs(farm, reroll.id))['image-1'].bytes).equals(PHOTO)).toBe(true);

    const open = press(upscaled, 'extend', upscale.id);
    expect((await formField(open)).label).toBe(`Next prompts, one per line (at most ${LIMITS.prompts.max - 2})`);
    await fake.submitModal({ to: open, values: { prompts: 'a cup of cocoa' } }).waitForOriginal((m) => hasVideo(m), 20_000);
    const extension = await newest();
    expect([extension.kind, extension.parentJobId, extension.params.prompts, extension.params.movieHasPictures]).toEqual(['extend', blend.id, ['a cup of cocoa'], true]);
    expect((await movieOf(farm.db.db, extension)).images).toEqual([{ index: 0, strength: 0.5, jobId: blend.id, input: 'image-1' }]);
  });

  it('Upscale on a video too long to upscale 4x upscales it at the largest factor that fits', async () => {
    // 900 frames of 512x512: 3.8 gigapixels at 4x and 2.1 at 3x, more than the engine's MAX_UPSCALED_VIDEO_PIXELS (2); 0.9 at 2x.
    const { job, message } = await posted('movie', { prompts: ['a desert', 'an oasis'], width: 512, height: 512, durationSeconds: 30, fps: 30 });
    const upscaled = await press(message, 'upscale', job.id).waitForOriginal((m) => hasVideo(m) && buttonsOf(m).length > 0, 20_000);
    const upscale = await newest();
    expect([upscale.kind, upscale.parentJobId, upscale.params.upscaleFactor]).toEqual(['upscale', job.id, 2]);
    expect(upscaled.content).toMatch(/^\*\*Upscale\*\* #/);
  });

  it('an Upscale or 🔍 of a video too long to upscale even at 2x is refused privately, saying the farm’s limit; nothing queued', async () => {
    // 1800 frames of 1024x1024: 7.5 gigapixels at 2x, more than the engine's MAX_UPSCALED_VIDEO_PIXELS (2).
    const { job, message } = await posted('movie', { prompts: ['a desert', 'an oasis'], width: 1024, height: 1024, durationSeconds: 30, fps: 60 });
    const why =
      "That request can't be rendered: this video upscaled 4x would be 1800 frames of 4096x4096 (1 transition of 30 s at 60 fps), 30.2 gigapixels in all, more than the farm's 2-gigapixel limit for an upscaled video, " +
      'and even 2x would be 7.5 gigapixels; at 2x at most 476 frames of 1024x1024 fit: upscale a shorter movie (fewer prompts, seconds per transition or fps) or a smaller one.';
    const before = (await listJobs(farm, {})).length;
    const pressed = press(message, 'upscale', job.id);
    // The public placeholder is resolved and removed; the reason goes to the presser alone.
    const placeholder = await pressed.waitForOriginal((m) => m.deleted, 10_000);
    expect(fake.edits(placeholder).map((r) => r.content)).toEqual(['This render could not start; the reason was sent to you privately.']);
    const [reason] = pressed.followUps();
    expect([reason.ephemeral, reason.content]).toEqual([true, why]);

    // 🔍 does what the button does: the reason by DM, the reaction taken off.
    const since = Date.now();
    expect(fake.addReaction({ messageId: message.id, emoji: '🔍', user: alice }).delivered).toBe(true);
    const dm = await fake.waitForMessage((m) => m.channelId === fake.dmChannel(alice)?.id && m.createdAt >= since, 15_000);
    expect(dm.content).toBe(`Your 🔍 on job #${job.id} in <#${message.channelId}> did not upscale it. ${why}`);
    expect((await listJobs(farm, {})).length).toBe(before);
  });

  it('a follow-up is rendered for the upload limit where its button was pressed, not the parent’s', async () => {
    // Made while the server had a 50 MiB limit; the boost has lapsed since.
    const { job: parent, message } = await posted('blend', { prompts: ['a lighthouse', 'a storm'], maxBytes: 50 * MIB });
    fake.setAttachmentSizeLimit(60_000, home.id);
    try {
      await press(message, 'upscale', parent.id).waitForOriginal((m) => hasVideo(m), 20_000);
      const upscale = await newest();
      expect([upscale.kind, upscale.params.maxBytes]).toEqual(['upscale', 60_000]);
      await press(message, 'reroll', parent.id).waitForOriginal((m) => hasVideo(m), 20_000);
      const reroll = await newest();
      expect([reroll.kind, reroll.params.maxBytes]).toEqual(['reroll', 60_000]);
      const open = press(message, 'extend', parent.id);
      await open.waitForResponse();
      await fake.submitModal({ to: open, values: { prompts: 'a calm sea' } }).waitForOriginal((m) => hasVideo(m), 20_000);
      const extension = await newest();
      expect([extension.kind, extension.params.maxBytes]).toEqual(['extend', 60_000]);
    } finally {
      fake.setAttachmentSizeLimit(10 * MIB, home.id);
    }
  });
  it('Re-roll pressed again right after its job is queued (a double click) makes no second job: the second press is told privately which job it is', async () => {
    const { job, message } = await posted('blend', { prompts: ['a lighthouse', 'a storm'] });
    const first = press(message, 'reroll', job.id);
    await first.waitForOriginal((m) => m.content?.includes('queued') === true || hasVideo(m), 20_000);
    const [reroll] = (await listJobs(farm, {})).filter((j) => j.parentJobId === job.id);
    expect(reroll?.kind).toBe('reroll');
    const again = press(message, 'reroll', job.id);
    expect(await privateReason(again)).toBe(`Your re-roll of #${job.id} is already queued as job #${reroll.id}. Asking again within 5 seconds makes no second job; for another re-roll, ask again after that.`);
    expect((await listJobs(farm, {})).filter((j) => j.parentJobId === job.id).map((j) => j.id)).toEqual([reroll.id]);
  });
});
