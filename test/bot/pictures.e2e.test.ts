/**
 * Pictures in, through the bot end to end: the real discord.js client against the fake Discord
 * (attachments on slash-command options, served from its CDN), a real farm on PGlite, and one
 * engine worker with the demo model, the inpainting test model (BLENDFARM_INPAINT_MODEL_DIR) and
 * the image-variation test model (BLENDFARM_VARIATION_MODEL_DIR).
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import sharp from 'sharp';
import { buttonsOf, type FakeDiscord, type FakeUser, type InteractionHandle, type StoredMessage } from '../fake-discord/index.ts';
import { type BotFarm, downloadsOf, hasVideo, startBotFarm, stopBotFarm } from '../helpers/bot-farm.ts';
import { countRows } from '../helpers/db.ts';
import { meanAbsDiff } from '../helpers/demo.ts';
import { getJobInputs, listJobs, listWorkers, type FarmContext, type FarmDb } from '../../farm/index.ts';
import { decodeVideoFrames, probeVideo } from '../../engine/index.ts';
import { testModelDir } from '../../models/paths.ts';

const RENDER_TIMEOUT = 120_000;
const PHOTO = readFileSync(new URL('../fixtures/photos/coffee.png', import.meta.url));
let running: BotFarm | undefined;
let fake: FakeDiscord;
let alice: FakeUser;
let db: FarmDb;
let farm: FarmContext;

const png = (bytes: Buffer) => ({ filename: 'picture.png', bytes, contentType: 'image/png' });
/** Columns x0..x1 of a 512-wide RGB frame. */
const columns = (f: { data: Uint8Array }, x0: number, x1: number) => {
  const px: number[] = [];
  for (let y = 0; y < 512; y += 2) for (let x = x0; x < x1; x += 2) px.push(...f.data.subarray((y * 512 + x) * 3, (y * 512 + x) * 3 + 3));
  return Uint8Array.from(px);
};

beforeAll(async () => {
  running = await startBotFarm({
    members: ['alice'],
    renderer: { engine: { modelDir: testModelDir('demo'), inpaintModelDir: testModelDir('inpaint'), variationModelDir: testModelDir('variation') } },
  });
  ({ fake, db, farm } = running);
  alice = running.users.alice;
});

afterAll(() => stopBotFarm(running ?? {}));

describe('pictures through the bot', () => {
  let fromImage: { message: StoredMessage; jobId: number };

  it('the worker advertises each model with what it can do', async () => {
    const [worker] = await listWorkers(farm);
    expect(worker.capabilities.models).toEqual(['demo', 'inpaint', 'variation']);
    expect(worker.capabilities.modelAbilities).toEqual({ demo: ['text', 'picture'], inpaint: ['inpaint', 'picture'], variation: ['variation'] });
  });

  it('/blend from_image at a low strength: the first frame follows the picture', async () => {
    const handle = fake.sendSlashCommand({ commandName: 'blend', user: alice, options: { from: 'a red house', to: 'a blue boat', from_image: png(PHOTO), strength: 0.05, quality: 'draft', duration: 1 } });
    expect((await handle.waitForResponse()).type).toBe(5);
    const message = await handle.waitForOriginal(hasVideo, RENDER_TIMEOUT);
    const video = message.attachments.find((a) => a.filename.endsWith('.mp4'))!;
    const frames = await decodeVideoFrames(video.bytes, 512, 512);
    const photo = await sharp(PHOTO).resize(512, 512, { fit: 'cover' }).removeAlpha().raw().toBuffer();
    // The test model's VAE is no identity, so "follows" is relative: the first frame is much nearer the picture than the last.
    expect(meanAbsDiff(frames[0].data, photo)).toBeLessThan(0.7 * meanAbsDiff(frames[frames.length - 1].data, photo));
    const [job] = await listJobs(farm, { order: 'newest', limit: 1 });
    expect(job.params.images).toEqual([{ index: 0, strength: 0.05 }]);
    const inputs = await getJobInputs(farm, job.id);
    expect(Object.keys(inputs)).toEqual(['image-1']);
    expect(Buffer.from(inputs['image-1'].bytes).equals(PHOTO)).toBe(true);
    expect(inputs['image-1'].mime).toBe('image/png');
    fromImage = { message, jobId: job.id };
  }, RENDER_TIMEOUT);

  it('a re-roll of a picture job still has the picture', async () => {
    const press = fake.pressButton({ messageId: fromImage.message.id, customId: buttonsOf(fromImage.message).find((b) => /reroll/.test(b.customId ?? ''))!.customId!, user: alice });
    const done = await press.waitForOriginal(hasVideo, RENDER_TIMEOUT);
    const [job] = await listJobs(farm, { order: 'newest', limit: 1 });
    expect([job.kind, job.parentJobId, job.status]).toEqual(['reroll', fromImage.jobId, 'done']);
    expect(job.params.images).toEqual([{ index: 0, strength: 0.05 }]);
    expect(Buffer.from((await getJobInputs(farm, job.id))['image-1'].bytes).equals(PHOTO)).toBe(true);
    const frames = await decodeVideoFrames(done.attachments.find((a) => a.filename.endsWith('.mp4'))!.bytes, 512, 512);
    const photo = await sharp(PHOTO).resize(512, 512, { fit: 'cover' }).removeAlpha().raw().toBuffer();
    expect(meanAbsDiff(frames[0].data, photo)).toBeLessThan(0.7 * meanAbsDiff(frames[frames.length - 1].data, photo));
  }, RENDER_TIMEOUT);

  it('Extend on a movie that starts at a picture continues it; the picture stays with the first job', async () => {
    const extend = buttonsOf(fromImage.message).find((b) => /extend/.test(b.customId ?? ''))!.customId!;
    const open = fake.pressButton({ messageId: fromImage.message.id, customId: extend, user: alice });
    expect((await open.waitForResponse()).type).toBe(9);
    const done = await fake.submitModal({ to: open, values: { prompts: 'a green tree' } }).waitForOriginal(hasVideo, RENDER_TIMEOUT);
    expect(done.content).toMatch(new RegExp(`Extension\\*\\* #\\d+ of #${fromImage.jobId}: a red house → a blue boat → a green tree`));
    const [job] = await listJobs(farm, { order: 'newest', limit: 1 });
    expect([job.kind, job.parentJobId, job.status, job.params.images]).toEqual(['extend', fromImage.jobId, 'done', undefined]);
    expect(Object.keys(await getJobInputs(farm, job.id))).toEqual([]);
    const parentVideo = fromImage.message.attachments.find((a) => a.filename.endsWith('.mp4'))!.bytes;
    const [before, after] = await Promise.all([decodeVideoFrames(parentVideo, 512, 512), decodeVideoFrames(done.attachments.find((a) => a.filename.endsWith('.mp4'))!.bytes, 512, 512)]);
    // The whole movie: the parent's frames (starting at the picture), then the new part from its last frame.
    expect(after.length).toBeGreaterThan(before.length);
    expect(meanAbsDiff(after[0].data, before[0].data)).toBeLessThan(6);
    // The new part starts at the parent's last frame (shown once: its first frame after the join is
    // one frame step into the new transition). How far one step goes depends on how many branches
    // the budget allowed, so the join is measured against the new part's own steps: no jump larger
    // than its largest step between frames, and small beside the whole new part's change.
    const join = meanAbsDiff(after[before.length].data, before.at(-1)!.data);
    let largestStep = 0;
    for (let k = before.length; k + 1 < after.length; k++) largestStep = Math.max(largestStep, meanAbsDiff(after[k + 1].data, after[k].data));
    const whole = meanAbsDiff(after.at(-1)!.data, before.at(-1)!.data);
    console.log(`extension join: ${join.toFixed(2)}, largest step in the new part ${largestStep.toFixed(2)}, whole new part ${whole.toFixed(2)}`);
    expect(join).toBeLessThanOrEqual(1.5 * largestStep + 2);
    expect(join).toBeLessThan(0.6 * whole);
  }, RENDER_TIMEOUT);

  it('a file whose Discord metadata breaks a limit (type, size, pixels) is refused privately at once: no deferral, no download, nothing queued', async () => {
    const before = { jobs: await countRows(db, 'jobs') };
    const refusedAtOnce = async (handle: InteractionHandle, text: RegExp) => {
      const r = await handle.waitForResponse();
      expect([r.type, r.data?.flags]).toEqual([4, 64]);
      expect(r.data?.content).toMatch(text);
      expect(downloadsOf(fake, handle)).toEqual([]);
    };
    await refusedAtOnce(
      fake.sendSlashCommand({ commandName: 'blend', user: alice, options: { from: 'a', to: 'b', from_image: png(Buffer.alloc(11 * 1024 * 1024, 7)) } }),
      /`from_image` is 11 MiB, more than the 10 MiB limit; use a smaller PNG, JPEG or WebP picture/,
    );
    await refusedAtOnce(
      fake.sendSlashCommand({ commandName: 'vary', user: alice, options: { image: { filename: 'doc.pdf', bytes: Buffer.from('%PDF-1.4'), contentType: 'application/pdf' } } }),
      /`image` is application\/pdf, not a picture/,
    );
    // A small file of many pixels: Discord reports its width and height (6000x5000, from the PNG header).
    const huge = await sharp({ create: { width: 6000, height: 5000, channels: 3, background: '#ffffff' } }).png({ palette: true, colours: 2 }).toBuffer();
    const pixels = fake.sendSlashCommand({ commandName: 'blend', user: alice, options: { from: 'a', to: 'b', image: png(PHOTO), mask: png(huge) } });
    expect(Object.values((pixels.payload.data as { resolved: { attachments: object } }).resolved.attachments).map((a: { width?: number; height?: number }) => [a.width, a.height])).toContainEqual([6000, 5000]);
    await refusedAtOnce(pixels, /`mask` is 6000x5000 \(30\.0 megapixels\), more than the 25-megapixel limit; use a smaller picture/);
    await refusedAtOnce(fake.sendSlashCommand({ commandName: 'blend', user: alice, options: { from: 'a', to: 'b', image: png(PHOTO) } }), /needs a mask: attach `mask`.*or pick `mask_preset`/);
    expect(await countRows(db, 'jobs')).toBe(before.jobs);
  }, 30_000);

  it('a corrupt file (its metadata passes) is refused after the deferral: the reason privately, naming the option, the public placeholder removed', async () => {
    const before = { jobs: await countRows(db, 'jobs') };
    const handle = fake.sendSlashCommand({ commandName: 'blend', user: alice, options: { from: 'a', to: 'b', to_image: png(Buffer.from('hello, not a picture')) } });
    expect(await handle.waitForResponse()).toMatchObject({ type: 5, ephemeral: false });
    const placeholder = await handle.waitForOriginal((m) => m.deleted, 10_000);
    expect(fake.edits(placeholder).map((r) => r.content)).toEqual(['This render could not start; the reason was sent to you privately.']);
    const [reason] = handle.followUps();
    expect([reason.ephemeral, reason.content]).toEqual([true, "That request can't be rendered: `to_image` is not a picture that can be read; use a PNG, JPEG or WebP file."]);
    expect(downloadsOf(fake, handle).map((d) => d.status)).toEqual([200]);
    expect(await countRows(db, 'jobs')).toBe(before.jobs);
  }, 30_000);

  it('a download that fails after the deferral says what happened and what to do, privately', async () => {
    const handle = fake.sendSlashCommand({ commandName: 'vary', user: alice, options: { image: { ...png(PHOTO), cdnStatus: 404 } } });
    expect((await handle.waitForResponse()).type).toBe(5);
    await handle.waitForOriginal((m) => m.deleted, 10_000);
    const [reason] = handle.followUps();
    expect(reason.ephemeral).toBe(true);
    expect(reason.content).toBe("The `image` attachment could not be downloaded from Discord (Discord's CDN answered HTTP 404), so nothing was queued; run the command again with the picture attached.");
  }, 30_000);

  it('a download longer than the size Discord declared is cut off and refused, privately, nothing queued', async () => {
    const before = { jobs: await countRows(db, 'jobs') };
    const handle = fake.sendSlashCommand({ commandName: 'vary', user: alice, options: { image: { ...png(PHOTO), declaredSize: 1000 } } });
    expect((await handle.waitForResponse()).type).toBe(5);
    await handle.waitForOriginal((m) => m.deleted, 10_000);
    const [reason] = handle.followUps();
    expect(reason.ephemeral).toBe(true);
    expect(reason.content).toBe('The `image` attachment could not be downloaded from Discord (it was larger than the 1000 bytes Discord said it has), so nothing was queued; run the command again with the picture attached.');
    expect(await countRows(db, 'jobs')).toBe(before.jobs);
  }, 30_000);

  it('a picture from a slow CDN (2.5 s, more than the old 2 s download limit) is rendered; the interaction was deferred before the download', async () => {
    const handle = fake.sendSlashCommand({ commandName: 'vary', user: alice, options: { image: { ...png(PHOTO), cdnDelayMs: 2500 }, frames: 2, quality: 'draft' } });
    await handle.waitForOriginal(hasVideo, RENDER_TIMEOUT);
    const deferral = handle.response!;
    const [download] = downloadsOf(fake, handle);
    expect([deferral.type, deferral.ephemeral]).toEqual([5, false]);
    expect(deferral.latencyMs).toBeLessThan(2000);
    expect([download.status, download.durationMs >= 2500]).toEqual([200, true]);
    // Discord had the deferral before the bot asked the CDN for the picture.
    expect(download.at).toBeGreaterThanOrEqual(deferral.at);
    const [job] = await listJobs(farm, { order: 'newest', limit: 1 });
    expect([job.kind, job.status]).toEqual(['vary', 'done']);
    expect(Buffer.from((await getJobInputs(farm, job.id))['start-image'].bytes).equals(PHOTO)).toBe(true);
  }, RENDER_TIMEOUT);

  it('/blend image + mask_preset on the inpainting model: the unmasked half stays constant across frames', async () => {
    const handle = fake.sendSlashCommand({ commandName: 'blend', user: alice, options: { from: 'a red house', to: 'a blue boat', image: png(PHOTO), mask_preset: 'left', quality: 'draft', duration: 1 } });
    const message = await handle.waitForOriginal(hasVideo, RENDER_TIMEOUT);
    const [job] = await listJobs(farm, { order: 'newest', limit: 1 });
    expect([job.model, job.params.inpaint]).toEqual(['inpaint', { mask: 'left' }]);
    const frames = await decodeVideoFrames(message.attachments.find((a) => a.filename.endsWith('.mp4'))!.bytes, 512, 512);
    expect(frames.length).toBe(12);
    // The right half (away from the mask edge) stays as the first frame has it; the left half changes.
    for (const f of frames) expect(meanAbsDiff(columns(f, 320, 512), columns(frames[0], 320, 512))).toBeLessThan(4);
    expect(meanAbsDiff(columns(frames[frames.length - 1], 0, 192), columns(frames[0], 0, 192))).toBeGreaterThan(10);
  }, RENDER_TIMEOUT);

  it('/vary makes a video with the frames asked for, on the variation model; its re-roll keeps the picture', async () => {
    const handle = fake.sendSlashCommand({ commandName: 'vary', user: alice, options: { image: png(PHOTO), frames: 5, positive: 'a red house', seed: 9, quality: 'draft' } });
    expect((await handle.waitForResponse()).type).toBe(5);
    const message = await handle.waitForOriginal(hasVideo, RENDER_TIMEOUT);
    const probe = await probeVideo(message.attachments.find((a) => a.filename.endsWith('.mp4'))!.bytes);
    expect(probe.frames).toBe(5);
    const [job] = await listJobs(farm, { order: 'newest', limit: 1 });
    expect([job.kind, job.model, job.params.prompts, job.params.seeds, job.params.variation]).toEqual(['vary', 'variation', ['a red house'], [9], { variations: 1, intermediate: 4, noiseShift: 0.4 }]);
    const press = fake.pressButton({ messageId: message.id, customId: buttonsOf(message).find((b) => /reroll/.test(b.customId ?? ''))!.customId!, user: alice });
    await press.waitForOriginal(hasVideo, RENDER_TIMEOUT);
    const [reroll] = await listJobs(farm, { order: 'newest', limit: 1 });
    expect([reroll.kind, reroll.parentJobId, reroll.status]).toEqual(['vary', job.id, 'done']);
    expect(Buffer.from((await getJobInputs(farm, reroll.id))['start-image'].bytes).equals(PHOTO)).toBe(true);
  }, 2 * RENDER_TIMEOUT);
});
