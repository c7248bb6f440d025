// Follow-ups of finished movies: an extension stores only its new prompts and seeds, links to the
// movie it continues, and its renderer is handed that whole movie; re-rolls and further extensions
// of an extended movie see the whole movie too, and the whole movie counts towards the prompt limit.
import { readFileSync } from 'node:fs';
import { MAX_UPSCALED_VIDEO_PIXELS } from '../../engine/index.ts';
import { sql } from 'drizzle-orm';
import { describe, expect, it, vi } from 'vitest';
import { type FarmDb, queryRows } from '../../db/client.ts';
import type { FarmContext } from '../../farm/config.ts';
import { DuplicateFollowUpError } from '../../farm/follow-up-rule.ts';
import { DuplicateUpscaleError, FarmError, NoCapableWorkerError, ParentVideoGoneError } from '../../farm/errors.ts';
import { followUpParams, followUpRefusal, followUpsFor, parentMovieParams, submitFollowUp } from '../../farm/follow-up.ts';
import { JobParamsError, parseJobParams } from '../../farm/job-params.ts';
import { cancelJob, getJob, getJobInputs, retryJob, submitJob } from '../../farm/jobs.ts';
import { LIMITS } from '../../farm/limits.ts';
import { movieOf } from '../../farm/movie.ts';
import { estimateGpuSeconds } from '../../farm/policy/cost.ts';
import type { Renderer } from '../../farm/renderer.ts';
import { pruneFarm } from '../../farm/retention.ts';
import type { ClaimedJob, WorkerCapabilities } from '../../farm/types.ts';
import { waitForJob } from '../../farm/wait.ts';
import { claimJob, claimSpecificJob, completeJob, releaseJob } from '../../farm/queue.ts';
import { getBudget } from '../../farm/policy/budget.ts';
import { canRun, jobNeeds, markWorkerStopped, registerWorker } from '../../farm/worker-registry.ts';
import { FarmWorker } from '../../farm/worker.ts';
import { BACKENDS, CHEAP_BLEND, countRows, farmContext, GENEROUS_BUDGET, type TestDatabase } from '../helpers/db.ts';
import { pastFollowUpWindow } from '../helpers/follow-ups.ts';
import { useTestFarm } from '../helpers/farm.ts';

const PHOTO = readFileSync(new URL('../fixtures/photos/coffee.png', import.meta.url));
const OTHER = readFileSync(new URL('../fixtures/photos/chelsea-crop.png', import.meta.url));

/** Renders nothing; remembers every job it was handed (with its parent). */
function recordingRenderer(model: string, seen: ClaimedJob[], upscalers?: string[]): Renderer {
  return {
    // The model takes pictures too (as one with a VAE encoder does).
    capabilities: () => ({ models: [model], modelAbilities: { [model]: ['text', 'picture'] }, maxPixels: 10_000_000, executionProvider: 'test', upscalers }),
    async render(job) {
      seen.push(job);
      return { video: Buffer.from(`video of ${job.id}`), format: 'mp4', metadata: {}, gpuSeconds: 0.01 };
    },
  };
}

describe.each(BACKENDS)('follow-ups on %s', (backend) => {
  let testDb: TestDatabase;
  let db: FarmDb;
  let farm: FarmContext;

  useTestFarm(backend, { budget: GENEROUS_BUDGET }, (t) => ({ testDb, db, farm } = t));

  it('extends a movie with its new prompts only, and hands the renderer the whole movie it continues', async () => {
    const seen: ClaimedJob[] = [];
    const worker = new FarmWorker({ farm, renderer: recordingRenderer('chain', seen), id: 'w-chain', log: () => {} });
    await worker.start();
    try {
      const params = { ...CHEAP_BLEND, model: 'chain' };
      const movie = await submitJob(farm, { kind: 'movie', userId: 'ann', params: { ...params, prompts: ['a', 'b'], seeds: [1, 2] } });
      await waitForJob(farm, movie.id, { timeoutMs: 20_000 });

      const first = await submitFollowUp(farm, { kind: 'extend', parentJobId: movie.id, userId: 'ann', options: { prompts: ['c'] } });
      expect(first.parentJobId).toBe(movie.id);
      expect(first.params.prompts).toEqual(['c']);
      expect(first.params.seeds).toHaveLength(1);
      // Priced as the whole movie it completes, as before extensions stored only their new prompts.
      expect(first.reservedGpuSeconds).toBe(estimateGpuSeconds(first.params, farm.config.cost, 3));
      await waitForJob(farm, first.id, { timeoutMs: 20_000 });
      const handed = seen.find((job) => job.id === first.id)!;
      expect(handed.params.prompts).toEqual(['c']);
      expect(handed.parent).toMatchObject({ id: movie.id, movie: { prompts: ['a', 'b'], seeds: [1, 2] } });
      expect(Buffer.from(handed.parent!.artifact!.bytes).toString()).toBe(`video of ${movie.id}`);

      // An extension of the extension continues the whole chain.
      const second = await submitFollowUp(farm, { kind: 'extend', parentJobId: first.id, userId: 'ann', options: { prompts: ['d', 'e'] } });
      expect(second.params.prompts).toEqual(['d', 'e']);
      await waitForJob(farm, second.id, { timeoutMs: 20_000 });
      expect(seen.find((job) => job.id === second.id)!.parent!.movie).toEqual({ prompts: ['a', 'b', 'c'], seeds: [1, 2, first.params.seeds[0]] });
      expect(await movieOf(db.db, (await getJob(farm, second.id))!)).toEqual({ prompts: ['a', 'b', 'c', 'd', 'e'], seeds: [1, 2, ...first.params.seeds, ...second.params.seeds] });

      // A re-roll of an extended movie renders the whole movie again.
      const reroll = await submitFollowUp(farm, { kind: 'reroll', parentJobId: second.id, userId: 'ann' });
      expect(reroll.params.prompts).toEqual(['a', 'b', 'c', 'd', 'e']);
      expect((await parentMovieParams(farm, (await getJob(farm, second.id))!)).prompts).toEqual(['a', 'b', 'c', 'd', 'e']);
      await waitForJob(farm, reroll.id, { timeoutMs: 20_000 });
    } finally {
      await worker.stop();
    }
  });

  it('extends a movie that starts and ends at pictures: the renderer gets them, and a re-roll of the extension keeps them', async () => {
    const seen: ClaimedJob[] = [];
    const worker = new FarmWorker({ farm, renderer: recordingRenderer('pics', seen, ['esrgan-slim']), id: 'w-pics', log: () => {} });
    await worker.start();
    try {
      const params = { ...CHEAP_BLEND, model: 'pics', prompts: ['a', 'b'], seeds: [1, 2], images: [{ index: 0, strength: 0.4 }, { index: 1, strength: 0.7 }] };
      const movie = await submitJob(farm, { kind: 'blend', userId: 'ann', params, inputs: { 'image-1': PHOTO, 'image-2': OTHER } });
      expect(followUpsFor(movie)).toContain('extend');
      await waitForJob(farm, movie.id, { timeoutMs: 20_000 });

      const first = await submitFollowUp(farm, { kind: 'extend', parentJobId: movie.id, userId: 'ann', options: { prompts: ['c'] } });
      // The extension stores its prompt only; the pictures stay with the movie's first job.
      expect(first.params.images).toBeUndefined();
      expect(Object.keys(await getJobInputs(farm, first.id))).toEqual([]);
      await waitForJob(farm, first.id, { timeoutMs: 20_000 });
      const handed = seen.find((job) => job.id === first.id)!;
      expect(handed.parent!.movie!.images).toEqual([
        { index: 0, strength: 0.4, jobId: movie.id, input: 'image-1' },
        { index: 1, strength: 0.7, jobId: movie.id, input: 'image-2' },
      ]);
      expect(Object.keys(handed.parent!.pictures!)).toEqual(['image-1', 'image-2']);
      expect(Buffer.from(handed.parent!.pictures!['image-2'].bytes).equals(OTHER)).toBe(true);

      // Further along the chain the pictures keep their movie-wide indices.
      const second = await submitFollowUp(farm, { kind: 'extend', parentJobId: first.id, userId: 'ann', options: { prompts: ['d'] } });
      await waitForJob(farm, second.id, { timeoutMs: 20_000 });
      expect(seen.find((job) => job.id === second.id)!.parent!.movie).toMatchObject({ prompts: ['a', 'b', 'c'], images: [{ index: 0 }, { index: 1 }] });

      // A re-roll renders the whole movie again with its pictures, copied to the new job.
      const reroll = await submitFollowUp(farm, { kind: 'reroll', parentJobId: second.id, userId: 'ann' });
      expect(reroll.params.prompts).toEqual(['a', 'b', 'c', 'd']);
      expect(reroll.params.images).toEqual([{ index: 0, strength: 0.4 }, { index: 1, strength: 0.7 }]);
      const copied = await getJobInputs(farm, reroll.id);
      expect(Object.keys(copied)).toEqual(['image-1', 'image-2']);
      expect(Buffer.from(copied['image-1'].bytes).equals(PHOTO)).toBe(true);
      await waitForJob(farm, reroll.id, { timeoutMs: 20_000 });
      // An upscale of the extension re-renders nothing and needs no pictures.
      const upscale = await submitFollowUp(farm, { kind: 'upscale', parentJobId: second.id, userId: 'ann' });
      expect(upscale.params.images).toBeUndefined();
    } finally {
      await worker.stop();
    }
  });

  it('counts the whole movie towards the prompt limit, however the extension is submitted', async () => {
    const max = LIMITS.prompts.max;
    const params = { ...CHEAP_BLEND, model: 'long' };
    const worker = new FarmWorker({ farm, renderer: recordingRenderer('long', []), id: 'w-long', log: () => {} });
    await worker.start();
    try {
      const movie = await submitJob(farm, { kind: 'movie', userId: 'bo', params: { ...params, prompts: ['a', 'b'] } });
      await waitForJob(farm, movie.id, { timeoutMs: 20_000 });
      const filler = Array.from({ length: max - 2 - 1 }, (_, i) => `p${i}`);
      const extended = await submitJob(farm, { kind: 'extend', userId: 'bo', parentJobId: movie.id, params: { ...params, prompts: filler } });
      expect((await waitForJob(farm, extended.id, { timeoutMs: 20_000 })).status).toBe('done');
      // The movie has max - 1 prompts now: one more fits, two do not.
      await expect(submitJob(farm, { kind: 'extend', userId: 'bo', parentJobId: extended.id, params: { ...params, prompts: ['x', 'y'] } })).rejects.toThrow(
        `This movie has ${max - 1} prompts; an extension may bring it to at most ${max}.`,
      );
      const last = await submitJob(farm, { kind: 'extend', userId: 'bo', parentJobId: extended.id, params: { ...params, prompts: ['x'] } });
      expect(last).toMatchObject({ kind: 'extend' });
      await expect(submitJob(farm, { kind: 'extend', userId: 'bo', params: { ...params, prompts: ['x'] } })).rejects.toBeInstanceOf(FarmError);
      await waitForJob(farm, last.id, { timeoutMs: 20_000 });
    } finally {
      await worker.stop();
    }
  });

  it('upscales: linked to the parent, charged to whoever asks, and only for a worker with the upscaler and the room', async () => {
    const seen: ClaimedJob[] = [];
    const worker = new FarmWorker({ farm, renderer: recordingRenderer('up', seen), id: 'w-up', log: () => {} });
    await worker.start();
    let parentId: number;
    try {
      const parent = await submitJob(farm, { kind: 'blend', userId: 'cy', params: { ...CHEAP_BLEND, model: 'up' } });
      parentId = parent.id;
      expect((await waitForJob(farm, parent.id, { timeoutMs: 20_000 })).status).toBe('done');
      // Online, but without upscalers: refused at submission, saying what the workers have.
      const refused = await submitFollowUp(farm, { kind: 'upscale', parentJobId: parent.id, userId: 'dee', requireCapableWorker: true }).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(NoCapableWorkerError);
      expect((refused as Error).message).toMatch(/can upscale 4x to 65536 pixels per frame \(they have no upscalers/);
    } finally {
      await worker.stop();
    }
    const small = { models: [], maxPixels: 128 * 128, executionProvider: 'test', upscalers: ['esrgan-slim'] };
    const x4 = { models: [], maxPixels: 10_000_000, executionProvider: 'test', upscalers: ['x4-diffusion'] };
    const big = { models: [], maxPixels: 10_000_000, executionProvider: 'test', upscalers: ['esrgan-slim'] };
    await registerWorker(farm, { id: 'w-small', host: 'h', pid: 1, capabilities: small, concurrency: 1 });
    // 4x of 64x64 is 256x256: more than w-small takes.
    const tooBig = await submitFollowUp(farm, { kind: 'upscale', parentJobId: parentId, userId: 'dee', requireCapableWorker: true }).catch((e: unknown) => e);
    expect((tooBig as Error).message).toMatch(/they have the upscalers esrgan-slim and take at most 16384 pixels per frame/);
    await registerWorker(farm, { id: 'w-big', host: 'h', pid: 2, capabilities: big, concurrency: 1 });
    const named = await submitFollowUp(farm, { kind: 'upscale', parentJobId: parentId, userId: 'dee', options: { upscaler: 'esrgan-medium' }, requireCapableWorker: true }).catch((e: unknown) => e);
    expect(named).toMatchObject({ code: 'no_capable_worker', upscaler: 'esrgan-medium' });

    const before = await getBudget(farm, 'dee');
    const job = await submitFollowUp(farm, { kind: 'upscale', parentJobId: parentId, userId: 'dee', requireCapableWorker: true });
    expect(job).toMatchObject({ kind: 'upscale', parentJobId: parentId, userId: 'dee', pixels: 256 * 256 });
    expect(job.params).toMatchObject({ upscaleFactor: 4, width: 64, height: 64 });
    expect(job.params.upscaler).toBeUndefined();
    expect(job.reservedGpuSeconds).toBe(estimateGpuSeconds(job.params, farm.config.cost));
    expect((await getBudget(farm, 'dee')).heldGpuSeconds).toBeCloseTo(before.heldGpuSeconds + job.reservedGpuSeconds, 3);
    expect((await getBudget(farm, 'cy')).heldGpuSeconds).toBe(0);

    // Not for a worker without room; x4-diffusion makes the 4x one, not the 2x one...
    expect(await claimJob(farm, 'w-small', small)).toBeUndefined();
    const twoX = await submitFollowUp(farm, { kind: 'upscale', parentJobId: parentId, userId: 'dee', options: { upscaleFactor: 2 } });
    const byX4 = await claimJob(farm, 'w-x4', x4);
    expect(byX4?.id).toBe(job.id);
    await releaseJob(farm, byX4!);
    // ...nor to one that cannot make 2x; nor to a renderer of the parent's model that has no upscaler.
    expect(await claimJob(farm, 'w-model', { models: ['up'], maxPixels: 10_000_000, executionProvider: 'test' })).toBeUndefined();
    const first = await claimJob(farm, 'w-big', big);
    const second = await claimJob(farm, 'w-big', big);
    expect([first?.id, second?.id].sort()).toEqual([job.id, twoX.id].sort());
    await markWorkerStopped(farm, 'w-small');
    await markWorkerStopped(farm, 'w-big');

  });

  /** Claims job `id` for `workerId` and stores a one-byte video for it. */
  async function finish(id: number, workerId: string, capabilities: WorkerCapabilities): Promise<void> {
    const claimed = await claimSpecificJob(farm, workerId, id, capabilities);
    expect(claimed?.id).toBe(id);
    const artifact = { format: 'mp4', mime: 'video/mp4', sizeBytes: 1, meta: {}, data: Buffer.from('v') };
    expect(await completeJob(farm, claimed!, { artifact, gpuSeconds: 0.01 })).toBe(true);
  }

  /** Deletes the video of job `id` the way retention does (finished 40 days ago, artifactDays 30). */
  async function pruneVideoOf(id: number): Promise<void> {
    await db.db.execute(sql`update jobs set finished_at = now() - interval '40 days' where id = ${id}`);
    await pruneFarm(farmContext(db, { retention: { artifactDays: 30, jobDays: 0, maxArtifactBytes: 0 } }));
    expect(await countRows(db, 'artifacts', sql`job_id = ${id}`)).toBe(0);
  }

  const refusalOf = (submission: Promise<unknown>): Promise<FarmError | undefined> => submission.then(() => undefined, (e: unknown) => e as FarmError);

  it('refuses, however it is submitted, an upscale or extension its parent cannot have: unfinished, an upscale again, a variation, a video no longer stored', async () => {
    const caps: WorkerCapabilities = { models: ['rule'], modelAbilities: { rule: ['text', 'picture', 'variation'] }, maxPixels: 10_000_000, executionProvider: 'test', upscalers: ['esrgan-slim'] };
    await registerWorker(farm, { id: 'w-rule', host: 'test', pid: 1, concurrency: 1, capabilities: caps });
    const params = { ...CHEAP_BLEND, model: 'rule' };
    // submitJob itself, as a front end that builds the parameters with followUpParams would call it.
    const extend = (parentJobId: number) => submitJob(farm, { kind: 'extend', userId: 'eve', parentJobId, params: { ...params, prompts: ['c'] } });

    // Not finished (queued, then cancelled): by submitJob and submitFollowUp alike.
    const unfinished = await submitJob(farm, { kind: 'blend', userId: 'eve', params });
    expect(await refusalOf(extend(unfinished.id))).toMatchObject({ code: 'invalid_state', message: `Job ${unfinished.id} is queued; only a finished video can be extended: wait until it is done, then ask again.` });
    expect(await refusalOf(submitFollowUp(farm, { kind: 'upscale', parentJobId: unfinished.id, userId: 'eve' }))).toMatchObject({
      code: 'invalid_state',
      message: `Job ${unfinished.id} is queued; only a finished video can be upscaled: wait until it is done, then ask again.`,
    });
    await cancelJob(farm, unfinished.id);
    expect(await refusalOf(extend(unfinished.id))).toMatchObject({ code: 'invalid_state', message: `Job ${unfinished.id} is cancelled, so it has no video to extend; re-roll it to render it again, then extend the re-roll.` });

    // An upscale of an upscale, with the parameters followUpParams makes for it.
    const blend = await submitJob(farm, { kind: 'blend', userId: 'eve', params });
    await finish(blend.id, 'w-rule', caps);
    const upscale = await submitFollowUp(farm, { kind: 'upscale', parentJobId: blend.id, userId: 'eve' });
    await finish(upscale.id, 'w-rule', caps);
    const again = followUpParams('upscale', await parentMovieParams(farm, (await getJob(farm, upscale.id))!));
    expect(await refusalOf(submitJob(farm, { kind: 'upscale', userId: 'eve', parentJobId: upscale.id, params: again }))).toMatchObject({
      code: 'invalid_state',
      message: `This video is already an upscale; upscale the original video (#${blend.id}) with a larger factor instead.`,
    });

    // An extension of a variation animation.
    const vary = await submitJob(farm, { kind: 'vary', userId: 'eve', params: { model: 'rule', prompts: [], width: 64, height: 64, variation: { variations: 2, intermediate: 2 } }, inputs: { 'start-image': PHOTO } });
    await finish(vary.id, 'w-rule', caps);
    expect(await refusalOf(extend(vary.id))).toMatchObject({ code: 'invalid_state', message: 'A variation animation can only be re-rolled; to extend it, start a new /vary from a frame of it.' });

    // The video retention deleted: refused before anything is written or reserved, whoever submits it.
    await pruneVideoOf(blend.id);
    const held = (await getBudget(farm, 'eve')).heldGpuSeconds;
    const children = await countRows(db, 'jobs', sql`parent_job_id = ${blend.id}`);
    const gone = await refusalOf(submitFollowUp(farm, { kind: 'extend', parentJobId: blend.id, userId: 'eve', options: { prompts: ['c'] } }));
    expect(gone).toBeInstanceOf(ParentVideoGoneError);
    expect(gone).toMatchObject({
      code: 'invalid_state',
      jobId: blend.id,
      message: `The video of job ${blend.id} is no longer stored (finished videos are deleted after a while), so it can't be extended any more; re-roll it to render it again, or start a new /blend or /movie.`,
    });
    expect((await refusalOf(submitFollowUp(farm, { kind: 'upscale', parentJobId: blend.id, userId: 'eve' })))?.message).toBe(
      `The video of job ${blend.id} is no longer stored (finished videos are deleted after a while), so it can't be upscaled any more; re-roll it to render it again, or start a new /blend or /movie.`,
    );
    expect(await refusalOf(extend(blend.id))).toBeInstanceOf(ParentVideoGoneError);
    expect(await countRows(db, 'jobs', sql`parent_job_id = ${blend.id}`)).toBe(children);
    expect((await getBudget(farm, 'eve')).heldGpuSeconds).toBe(held);
    // A re-roll renders from the parameters, so it still works.
    const reroll = await submitFollowUp(farm, { kind: 'reroll', parentJobId: blend.id, userId: 'eve' });
    expect(reroll).toMatchObject({ kind: 'reroll', parentJobId: blend.id, status: 'queued' });
    await cancelJob(farm, reroll.id);

    // A retry of an extension whose parent's video went meanwhile: the same refusal; the job stays as it was.
    const movie = await submitJob(farm, { kind: 'blend', userId: 'eve', params });
    await finish(movie.id, 'w-rule', caps);
    const stranded = await extend(movie.id);
    await cancelJob(farm, stranded.id);
    await pruneVideoOf(movie.id);
    expect(await refusalOf(retryJob(farm, stranded.id))).toMatchObject({ code: 'invalid_state', jobId: movie.id, message: expect.stringContaining(`The video of job ${movie.id} is no longer stored`) });
    expect((await getJob(farm, stranded.id))?.status).toBe('cancelled');
    await markWorkerStopped(farm, 'w-rule');
  });

  it('routes an extension of a movie with pictures only to a worker whose model takes pictures (the engine re-renders its last keyframe from them)', async () => {
    const withEncoder: WorkerCapabilities = { models: ['enc'], modelAbilities: { enc: ['text', 'picture'] }, maxPixels: 10_000_000, executionProvider: 'test' };
    const textOnly: WorkerCapabilities = { models: ['enc'], modelAbilities: { enc: ['text'] }, maxPixels: 10_000_000, executionProvider: 'test' };
    await registerWorker(farm, { id: 'w-enc', host: 'test', pid: 1, concurrency: 1, capabilities: withEncoder });
    const params = { ...CHEAP_BLEND, model: 'enc' };
    const pictured = await submitJob(farm, { kind: 'blend', userId: 'fay', params: { ...params, images: [{ index: 1, strength: 0.5 }] }, inputs: { 'image-2': PHOTO } });
    await finish(pictured.id, 'w-enc', withEncoder);
    const plain = await submitJob(farm, { kind: 'blend', userId: 'fay', params });
    await finish(plain.id, 'w-enc', withEncoder);

    const extension = await submitFollowUp(farm, { kind: 'extend', parentJobId: pictured.id, userId: 'fay', options: { prompts: ['c'] } });
    // Found from the whole movie at submission and stored with the job; the extension itself has no pictures.
    expect(extension.params).toMatchObject({ prompts: ['c'], movieHasPictures: true });
    expect(extension.params.images).toBeUndefined();
    expect((await getJob(farm, extension.id))?.params.movieHasPictures).toBe(true);
    const need = jobNeeds('extend', extension.params);
    expect(need.ability).toBe('picture');
    expect(canRun(textOnly, need)).toBe(false);
    expect(canRun(withEncoder, need)).toBe(true);
    // The claim applies the same rule: a worker whose model has no VAE encoder gets nothing.
    expect(await claimJob(farm, 'w-text', textOnly)).toBeUndefined();
    const claimed = await claimJob(farm, 'w-enc', withEncoder);
    expect(claimed?.id).toBe(extension.id);
    await completeJob(farm, claimed!, { artifact: { format: 'mp4', mime: 'video/mp4', sizeBytes: 1, meta: {}, data: Buffer.from('v') }, gpuSeconds: 0.01 });
    // Further along the chain too, however it is submitted.
    const deeper = await submitJob(farm, { kind: 'extend', userId: 'fay', parentJobId: extension.id, params: { ...params, prompts: ['d'] } });
    expect(deeper.params.movieHasPictures).toBe(true);
    expect(await claimJob(farm, 'w-text', textOnly)).toBeUndefined();
    await cancelJob(farm, deeper.id);
    // An extension stored without it (by an older version) gets it when retried.
    await db.db.execute(sql`update jobs set params = params - 'movieHasPictures' where id = ${deeper.id}`);
    expect((await retryJob(farm, deeper.id)).params.movieHasPictures).toBe(true);
    expect(await claimJob(farm, 'w-text', textOnly)).toBeUndefined();
    await cancelJob(farm, deeper.id);

    // An extension of a movie without pictures needs text only: the text-only worker takes it.
    const plainExtension = await submitFollowUp(farm, { kind: 'extend', parentJobId: plain.id, userId: 'fay', options: { prompts: ['c'] } });
    expect(plainExtension.params.movieHasPictures).toBeUndefined();
    expect((await claimJob(farm, 'w-text', textOnly))?.id).toBe(plainExtension.id);
    await cancelJob(farm, plainExtension.id);
    // Only the farm sets it.
    expect(() => parseJobParams('extend', { prompts: ['c'], movieHasPictures: true })).toThrow('unknown parameter "movieHasPictures"');

    // With only the text-only worker online, a bot submission (requireCapableWorker) is refused, saying why.
    await markWorkerStopped(farm, 'w-enc');
    await registerWorker(farm, { id: 'w-text', host: 'test', pid: 2, concurrency: 1, capabilities: textOnly });
    await pastFollowUpWindow(db);
    const refused = await refusalOf(submitFollowUp(farm, { kind: 'extend', parentJobId: pictured.id, userId: 'fay', options: { prompts: ['d'] }, requireCapableWorker: true }));
    expect(refused).toBeInstanceOf(NoCapableWorkerError);
    expect(refused?.message).toMatch(/can use model "enc" to continue this movie: it starts or ends at a picture, and re-rendering its last keyframe from that picture needs a model with a VAE encoder; make a new \/movie instead/);
    await markWorkerStopped(farm, 'w-text');
  });
  // A worker whose "fu" model takes text and pictures, whose "inpaint" model only inpaints, with an upscaler.
  const FU_CAPS: WorkerCapabilities = { models: ['fu', 'inpaint'], modelAbilities: { fu: ['text', 'picture'], inpaint: ['inpaint'] }, maxPixels: 10_000_000, executionProvider: 'test', upscalers: ['esrgan-slim'] };

  it('re-rolls and extends an upscale from the video it upscaled: its pictures, its inpainting and its size', async () => {
    await registerWorker(farm, { id: 'w-fu', host: 'test', pid: 1, concurrency: 1, capabilities: FU_CAPS });
    const params = { ...CHEAP_BLEND, model: 'fu', prompts: ['a', 'b'], images: [{ index: 0, strength: 0.4 }, { index: 1, strength: 0.7 }] };
    const blend = await submitJob(farm, { kind: 'blend', userId: 'gus', params, inputs: { 'image-1': PHOTO, 'image-2': OTHER } });
    await finish(blend.id, 'w-fu', FU_CAPS);
    const upscale = await submitFollowUp(farm, { kind: 'upscale', parentJobId: blend.id, userId: 'gus' });
    expect(upscale.params.images).toBeUndefined();
    await finish(upscale.id, 'w-fu', FU_CAPS);
    const upscaled = (await getJob(farm, upscale.id))!;
    // The buttons on an upscale: no second Upscale; Re-roll and Extend (of the video it upscaled).
    expect(followUpsFor(upscaled)).toEqual(['reroll', 'extend']);

    // Re-roll: the picture blend again (not a text-only blend), at its size, linked to it, with its pictures copied.
    const reroll = await submitFollowUp(farm, { kind: 'reroll', parentJobId: upscale.id, userId: 'gus' });
    expect(reroll).toMatchObject({ kind: 'reroll', parentJobId: blend.id, model: 'fu', pixels: 64 * 64 });
    expect(reroll.params).toMatchObject({ prompts: ['a', 'b'], width: 64, height: 64, images: [{ index: 0, strength: 0.4 }, { index: 1, strength: 0.7 }] });
    expect(reroll.params.upscaleFactor).toBeUndefined();
    expect(reroll.params.seeds).not.toEqual(blend.params.seeds);
    const copied = await getJobInputs(farm, reroll.id);
    expect(Object.keys(copied)).toEqual(['image-1', 'image-2']);
    expect(Buffer.from(copied['image-2'].bytes).equals(OTHER)).toBe(true);
    expect(jobNeeds('reroll', reroll.params).ability).toBe('picture');

    // Extend: an extension of the picture blend (its video, at its size), which the renderer is handed
    // with the movie's pictures, so the join re-renders the last keyframe from the end picture.
    const extension = await submitFollowUp(farm, { kind: 'extend', parentJobId: upscale.id, userId: 'gus', options: { prompts: ['c'] } });
    expect(extension).toMatchObject({ kind: 'extend', parentJobId: blend.id, pixels: 64 * 64 });
    expect(extension.params).toMatchObject({ prompts: ['c'], width: 64, height: 64, movieHasPictures: true });
    expect((await movieOf(db.db, extension)).images).toEqual([
      { index: 0, strength: 0.4, jobId: blend.id, input: 'image-1' },
      { index: 1, strength: 0.7, jobId: blend.id, input: 'image-2' },
    ]);
    // Submitted straight to the upscale (not through submitFollowUp), it is refused, naming the job to extend.
    const direct = await refusalOf(submitJob(farm, { kind: 'extend', userId: 'gus', parentJobId: upscale.id, params: { ...CHEAP_BLEND, model: 'fu', prompts: ['c'] } }));
    expect(direct).toMatchObject({
      code: 'invalid_state',
      message: `Job ${upscale.id} is an upscale; an extension continues the movie it upscaled: extend job ${blend.id} instead (upscale the extension afterwards).`,
    });
    for (const id of [reroll.id, extension.id]) await cancelJob(farm, id);

    // An inpainting movie: the re-roll of its upscale inpaints again on the inpainting model (before,
    // it lost the inpainting and was refused: no known worker's inpainting model does text-to-video).
    const inpainted = await submitJob(farm, { kind: 'blend', userId: 'gus', params: { ...CHEAP_BLEND, model: 'inpaint', inpaint: { mask: 'picture' } }, inputs: { 'inpaint-image': PHOTO, 'inpaint-mask': OTHER } });
    await finish(inpainted.id, 'w-fu', FU_CAPS);
    const inpaintUpscale = await submitFollowUp(farm, { kind: 'upscale', parentJobId: inpainted.id, userId: 'gus' });
    await finish(inpaintUpscale.id, 'w-fu', FU_CAPS);
    const inpaintReroll = await submitFollowUp(farm, { kind: 'reroll', parentJobId: inpaintUpscale.id, userId: 'gus' });
    expect(inpaintReroll).toMatchObject({ parentJobId: inpainted.id, model: 'inpaint' });
    expect(inpaintReroll.params.inpaint).toEqual({ mask: 'picture' });
    expect(Object.keys(await getJobInputs(farm, inpaintReroll.id))).toEqual(['inpaint-image', 'inpaint-mask']);
    const inpaintExtension = await submitFollowUp(farm, { kind: 'extend', parentJobId: inpaintUpscale.id, userId: 'gus', options: { prompts: ['c'] } });
    expect(inpaintExtension).toMatchObject({ parentJobId: inpainted.id, model: 'inpaint' });
    expect(inpaintExtension.params.inpaint).toEqual({ mask: 'picture' });
    expect(Object.keys(await getJobInputs(farm, inpaintExtension.id))).toEqual(['inpaint-image', 'inpaint-mask']);
    for (const id of [inpaintReroll.id, inpaintExtension.id]) await cancelJob(farm, id);
    await markWorkerStopped(farm, 'w-fu');
  });

  it('offers no Extend on a movie with the most prompts a movie may have, and refuses one, however it is asked for', async () => {
    const max = LIMITS.prompts.max;
    await registerWorker(farm, { id: 'w-fu', host: 'test', pid: 1, concurrency: 1, capabilities: FU_CAPS });
    const full = await submitJob(farm, { kind: 'movie', userId: 'hal', params: { ...CHEAP_BLEND, model: 'fu', prompts: Array.from({ length: max }, (_, i) => `p${i}`) } });
    await finish(full.id, 'w-fu', FU_CAPS);
    const message = `This movie already has ${max} prompts, the most a movie may have, so it can't be extended; start a new /movie to go on from its last prompt.`;
    expect(followUpRefusal('extend', full)).toBe(message);
    expect(followUpsFor(full)).toEqual(['upscale', 'reroll']);
    const children = await countRows(db, 'jobs', sql`parent_job_id = ${full.id}`);
    expect(await refusalOf(submitFollowUp(farm, { kind: 'extend', parentJobId: full.id, userId: 'hal', options: { prompts: ['more'] } }))).toMatchObject({ code: 'invalid_state', message });
    expect(await refusalOf(submitJob(farm, { kind: 'extend', userId: 'hal', parentJobId: full.id, params: { ...CHEAP_BLEND, model: 'fu', prompts: ['more'] } }))).toMatchObject({ code: 'invalid_state', message });
    expect(await countRows(db, 'jobs', sql`parent_job_id = ${full.id}`)).toBe(children);

    // Brought to the most by an extension (whose own parameters list one prompt): the whole movie counts.
    const almost = await submitJob(farm, { kind: 'movie', userId: 'hal', params: { ...CHEAP_BLEND, model: 'fu', prompts: Array.from({ length: max - 1 }, (_, i) => `p${i}`) } });
    await finish(almost.id, 'w-fu', FU_CAPS);
    expect(followUpsFor(almost)).toContain('extend');
    const last = await submitFollowUp(farm, { kind: 'extend', parentJobId: almost.id, userId: 'hal', options: { prompts: ['the end'] } });
    await finish(last.id, 'w-fu', FU_CAPS);
    const whole = { ...last, params: await parentMovieParams(farm, last) };
    expect(followUpsFor(whole)).toEqual(['upscale', 'reroll']);
    expect(followUpRefusal('extend', whole)).toBe(message);
    expect((await refusalOf(submitFollowUp(farm, { kind: 'extend', parentJobId: last.id, userId: 'hal', options: { prompts: ['more'] } })))?.message).toBe(message);
    // Its upscale lists the whole movie: no Extend there either.
    const upscale = await submitFollowUp(farm, { kind: 'upscale', parentJobId: last.id, userId: 'hal' });
    expect(followUpsFor(upscale)).toEqual(['reroll']);
    await cancelJob(farm, upscale.id);
    await markWorkerStopped(farm, 'w-fu');
  });

  it('refuses an upscale its owner already has queued or running on the same parent, and allows it again once that one is done', async () => {
    await registerWorker(farm, { id: 'w-fu', host: 'test', pid: 1, concurrency: 1, capabilities: FU_CAPS });
    const parent = await submitJob(farm, { kind: 'blend', userId: 'ida', params: { ...CHEAP_BLEND, model: 'fu' } });
    await finish(parent.id, 'w-fu', FU_CAPS);
    const first = await submitFollowUp(farm, { kind: 'upscale', parentJobId: parent.id, userId: 'ida' });
    const held = (await getBudget(farm, 'ida')).heldGpuSeconds;
    const children = await countRows(db, 'jobs', sql`parent_job_id = ${parent.id}`);
    const message = `You already have this upscale of job #${parent.id} queued: job #${first.id} (4x); its video is posted when it is done. To ask again, cancel job #${first.id} first.`;
    const again = await refusalOf(submitFollowUp(farm, { kind: 'upscale', parentJobId: parent.id, userId: 'ida' }));
    expect(again).toBeInstanceOf(DuplicateUpscaleError);
    expect(again).toMatchObject({ code: 'invalid_state', existingJobId: first.id, parentJobId: parent.id, message });
    // However it is submitted; nothing written or reserved.
    const same = followUpParams('upscale', await parentMovieParams(farm, parent));
    expect((await refusalOf(submitJob(farm, { kind: 'upscale', userId: 'ida', parentJobId: parent.id, params: same })))?.message).toBe(message);
    expect(await countRows(db, 'jobs', sql`parent_job_id = ${parent.id}`)).toBe(children);
    expect((await getBudget(farm, 'ida')).heldGpuSeconds).toBe(held);

    // Running: still refused. Another factor, another upscaler or another person is another request.
    const claimed = await claimSpecificJob(farm, 'w-fu', first.id, FU_CAPS);
    expect(claimed?.id).toBe(first.id);
    expect((await refusalOf(submitFollowUp(farm, { kind: 'upscale', parentJobId: parent.id, userId: 'ida' })))?.message).toBe(message.replace('queued:', 'rendering:'));
    const twoX = await submitFollowUp(farm, { kind: 'upscale', parentJobId: parent.id, userId: 'ida', options: { upscaleFactor: 2 } });
    const named = await submitFollowUp(farm, { kind: 'upscale', parentJobId: parent.id, userId: 'ida', options: { upscaler: 'esrgan-slim' } });
    const other = await submitFollowUp(farm, { kind: 'upscale', parentJobId: parent.id, userId: 'jo' });
    // Re-rolls and extensions may be asked for twice (their seeds or prompts differ); pressed, once the first press's window has passed.
    const rerolls = [await submitFollowUp(farm, { kind: 'reroll', parentJobId: parent.id, userId: 'ida' })];
    await pastFollowUpWindow(db);
    rerolls.push(await submitFollowUp(farm, { kind: 'reroll', parentJobId: parent.id, userId: 'ida' }));
    expect(await completeJob(farm, claimed!, { artifact: { format: 'mp4', mime: 'video/mp4', sizeBytes: 1, meta: {}, data: Buffer.from('v') }, gpuSeconds: 0.01 })).toBe(true);

    // Done: the same upscale may be asked for again; two at the same moment make one job.
    const submit = () => submitFollowUp(farm, { kind: 'upscale', parentJobId: parent.id, userId: 'ida' });
    const results = await Promise.allSettled([submit(), submit()]);
    const made = results.filter((r): r is PromiseFulfilledResult<Awaited<ReturnType<typeof submit>>> => r.status === 'fulfilled');
    expect(made).toHaveLength(1);
    const refused = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(refused?.reason).toBeInstanceOf(DuplicateUpscaleError);
    expect(refused?.reason).toMatchObject({ existingJobId: made[0].value.id });
    // Cancelled: allowed again; a retry of the cancelled one while a new one is queued is a duplicate too.
    await cancelJob(farm, made[0].value.id);
    const replacement = await submit();
    expect(await refusalOf(retryJob(farm, made[0].value.id))).toMatchObject({ code: 'invalid_state', existingJobId: replacement.id });
    for (const job of [twoX, named, other, ...rerolls, replacement]) await cancelJob(farm, job.id);
    await markWorkerStopped(farm, 'w-fu');
  });

  it('refuses an upscale whose whole video would be more than the engine’s MAX_UPSCALED_VIDEO_PIXELS, however it is submitted, naming the largest factor that fits; nothing stored or reserved', async () => {
    await registerWorker(farm, { id: 'w-fu', host: 'test', pid: 1, concurrency: 1, capabilities: FU_CAPS });
    expect(MAX_UPSCALED_VIDEO_PIXELS).toBe(2_000_000_000);
    // 400 frames of 512x512: at 4x (2048x2048 a frame) 1.68 gigapixels, within the limit.
    const movie = await submitJob(farm, { kind: 'movie', userId: 'max', params: { ...CHEAP_BLEND, model: 'fu', width: 512, height: 512, durationSeconds: 20, fps: 20 } });
    await finish(movie.id, 'w-fu', FU_CAPS);
    // Extended by one prompt, the whole movie has 800 frames: 4x would make 3.36 gigapixels, 3x 1.89.
    const extension = await submitFollowUp(farm, { kind: 'extend', parentJobId: movie.id, userId: 'max', options: { prompts: ['a green owl'] } });
    await finish(extension.id, 'w-fu', FU_CAPS);

    const before = await getBudget(farm, 'max');
    const jobsBefore = await countRows(db, 'jobs');
    const ledgerBefore = await countRows(db, 'budget_ledger');
    const message =
      "Invalid job parameters: this video upscaled 4x would be 800 frames of 2048x2048 (2 transitions of 20 s at 20 fps), 3.4 gigapixels in all, more than the farm's 2-gigapixel limit for an upscaled video; " +
      '3x fits (1.9 gigapixels): upscale it 3x instead.';
    // Asked for 4x: submitFollowUp, and submitJob with the parameters followUpParams makes.
    const refused = await refusalOf(submitFollowUp(farm, { kind: 'upscale', parentJobId: extension.id, userId: 'max', requireCapableWorker: true, options: { upscaleFactor: 4 } }));
    expect(refused).toBeInstanceOf(JobParamsError);
    expect(refused?.message).toBe(message);
    const params = followUpParams('upscale', await parentMovieParams(farm, (await getJob(farm, extension.id))!), { upscaleFactor: 4 });
    expect(params.prompts).toHaveLength(3);
    expect((await refusalOf(submitJob(farm, { kind: 'upscale', userId: 'max', parentJobId: extension.id, params })))?.message).toBe(message);
    // x4-diffusion makes 4x only: the factor that fits needs another upscaler.
    expect((await refusalOf(submitFollowUp(farm, { kind: 'upscale', parentJobId: extension.id, userId: 'max', options: { upscaler: 'x4-diffusion' } })))?.message).toBe(
      message.replace('upscale it 3x instead', 'upscale it 3x with another upscaler (x4-diffusion makes 4x only) instead'),
    );
    // Nothing stored, reserved or charged.
    expect(await countRows(db, 'jobs')).toBe(jobsBefore);
    expect(await countRows(db, 'budget_ledger')).toBe(ledgerBefore);
    const after = await getBudget(farm, 'max');
    expect([after.balanceGpuSeconds, after.heldGpuSeconds]).toEqual([before.balanceGpuSeconds, before.heldGpuSeconds]);

    // Within the limit: the movie before its extension at 4x, the extended one at 3x (a retry too).
    // Asked without a factor (the Upscale button, 🔍), each gets the largest that fits.
    const whole = await submitFollowUp(farm, { kind: 'upscale', parentJobId: movie.id, userId: 'max' });
    expect(whole.params).toMatchObject({ upscaleFactor: 4, prompts: movie.params.prompts });
    const threeX = await submitFollowUp(farm, { kind: 'upscale', parentJobId: extension.id, userId: 'max' });
    expect(threeX).toMatchObject({ kind: 'upscale', status: 'queued', parentJobId: extension.id, params: { upscaleFactor: 3, prompts: params.prompts } });
    await cancelJob(farm, threeX.id);
    expect((await retryJob(farm, threeX.id)).status).toBe('queued');
    for (const job of [whole, threeX]) await cancelJob(farm, job.id);
    // An upscale stored before the rule existed (4x of the extended movie) is refused when retried, as it would be at submission.
    await db.db.execute(sql`update jobs set params = jsonb_set(params, '{upscaleFactor}', '4') where id = ${threeX.id}`);
    const retried = await refusalOf(retryJob(farm, threeX.id));
    expect(retried).toBeInstanceOf(JobParamsError);
    expect(retried?.message).toBe(message);
    expect((await getJob(farm, threeX.id))?.status).toBe('cancelled');

    // However long the movie, no factor fits: it says how many frames would, at the smallest.
    const long = await submitJob(farm, { kind: 'movie', userId: 'max', params: { ...CHEAP_BLEND, model: 'fu', prompts: Array.from({ length: 16 }, (_, i) => `scene ${i + 1}`), width: 512, height: 512, durationSeconds: 30, fps: 60 } });
    await finish(long.id, 'w-fu', FU_CAPS);
    expect((await refusalOf(submitFollowUp(farm, { kind: 'upscale', parentJobId: long.id, userId: 'max', options: { upscaleFactor: 2 } })))?.message).toBe(
      "Invalid job parameters: this video upscaled 2x would be 27000 frames of 1024x1024 (15 transitions of 30 s at 60 fps), 28.3 gigapixels in all, more than the farm's 2-gigapixel limit for an upscaled video; " +
        'at 2x at most 1907 frames of 512x512 fit: upscale a shorter movie (fewer prompts, seconds per transition or fps) or a smaller one.',
    );
    expect(await countRows(db, 'jobs', sql`parent_job_id = ${long.id}`)).toBe(0);
    await markWorkerStopped(farm, 'w-fu');
  });

  const RT_CAPS: WorkerCapabilities = {
    models: ['rt', 'inpaint', 'variation'],
    modelAbilities: { rt: ['text', 'picture'], inpaint: ['inpaint'], variation: ['variation'] },
    maxPixels: 10_000_000,
    executionProvider: 'test',
    upscalers: ['esrgan-slim'],
  };
  /** A job row as stored, every column. */
  const rowOf = async (id: number) => (await queryRows<Record<string, unknown>>(db.db, sql`select * from jobs where id = ${id}`))[0];

  it('retries every kind of job with its stored parameters as they were (submission’s rules read their own output unchanged)', async () => {
    await registerWorker(farm, { id: 'w-rt', host: 'test', pid: 1, concurrency: 1, capabilities: RT_CAPS });
    const base = { ...CHEAP_BLEND, model: 'rt' };
    const pictured = await submitJob(farm, {
      kind: 'blend',
      userId: 'rae',
      params: { ...base, prompts: ['  a red fox ', 'a blue whale'], images: [{ index: 1, strength: 0.7 }, { index: 0 }], guidance: 7.5, maxBytes: 8 * 1024 * 1024, quality: 'draft', seeds: [null, 5] },
      inputs: { 'image-1': PHOTO, 'image-2': OTHER },
    });
    await finish(pictured.id, 'w-rt', RT_CAPS);
    const made = [
      await submitJob(farm, { kind: 'movie', userId: 'rae', params: { ...base, prompts: ['a', 'b', 'c'], negativePrompt: ' blurry ', format: 'webm' } }),
      await submitJob(farm, { kind: 'blend', userId: 'rae', params: { ...base, model: 'inpaint', inpaint: { mask: 'picture' } }, inputs: { 'inpaint-image': PHOTO, 'inpaint-mask': OTHER } }),
      await submitJob(farm, { kind: 'blend', userId: 'rae', params: { ...base, model: 'inpaint', inpaint: { mask: 'centre' } }, inputs: { 'inpaint-image': PHOTO } }),
      await submitJob(farm, { kind: 'vary', userId: 'rae', params: { model: 'variation', prompts: ['a cat'], width: 64, height: 64, steps: 2, variation: { variations: 2 } }, inputs: { 'start-image': PHOTO } }),
      await submitFollowUp(farm, { kind: 'reroll', parentJobId: pictured.id, userId: 'rae' }),
      await submitFollowUp(farm, { kind: 'extend', parentJobId: pictured.id, userId: 'rae', options: { prompts: [' a green owl '] } }),
      await submitFollowUp(farm, { kind: 'upscale', parentJobId: pictured.id, userId: 'rae', options: { upscaleFactor: 2, upscaler: 'esrgan-slim' } }),
      await submitFollowUp(farm, { kind: 'upscale', parentJobId: pictured.id, userId: 'sam' }),
    ];
    const extension = made[5];
    expect(extension.params).toMatchObject({ prompts: ['a green owl'], movieHasPictures: true });
    for (const job of made) {
      await cancelJob(farm, job.id);
      const stored = (await rowOf(job.id)).params;
      const retried = await retryJob(farm, job.id);
      expect([job.kind, retried.status]).toEqual([job.kind, 'queued']);
      expect(retried.params).toEqual(job.params);
      expect((await rowOf(job.id)).params).toEqual(stored);
      await cancelJob(farm, job.id);
    }
    // An extension stored without movieHasPictures (by an older version) still learns it.
    await db.db.execute(sql`update jobs set params = params - 'movieHasPictures' where id = ${extension.id}`);
    expect((await retryJob(farm, extension.id)).params).toEqual(extension.params);
    await cancelJob(farm, extension.id);
    await markWorkerStopped(farm, 'w-rt');
  });

  it('refuses to retry a job stored before a rule of submission existed, in the words a submission would get; the job and the budget as they were', async () => {
    await registerWorker(farm, { id: 'w-rt', host: 'test', pid: 1, concurrency: 1, capabilities: RT_CAPS });
    const base = { ...CHEAP_BLEND, model: 'rt' };
    const movie = await submitJob(farm, { kind: 'movie', userId: 'old', params: { ...base, prompts: ['a', 'b', 'c'] } });
    await cancelJob(farm, movie.id);
    // Stored by a version that allowed more steps and longer prompts than now.
    const long = 'x'.repeat(LIMITS.promptLength.max + 1);
    await db.db.execute(sql`update jobs set params = jsonb_set(jsonb_set(params, '{steps}', to_jsonb(${LIMITS.steps.max + 1}::int)), '{prompts,1}', to_jsonb(${long}::text)) where id = ${movie.id}`);
    // An extension stored when the movie it continues left room for its prompts: the whole movie's limit applies too.
    const parent = await submitJob(farm, { kind: 'movie', userId: 'old', params: { ...base, prompts: ['a', 'b', 'c'] } });
    await finish(parent.id, 'w-rt', RT_CAPS);
    const extension = await submitFollowUp(farm, { kind: 'extend', parentJobId: parent.id, userId: 'old', options: { prompts: ['d'] } });
    await cancelJob(farm, extension.id);
    const most = LIMITS.prompts.max - LIMITS.prompts.min;
    const prompts = Array.from({ length: most }, (_, i) => `scene ${i + 1}`);
    await db.db.execute(sql`update jobs set params = params || jsonb_build_object('prompts', ${JSON.stringify(prompts)}::jsonb, 'seeds', ${JSON.stringify(prompts.map((_, i) => i))}::jsonb) where id = ${extension.id}`);

    const rows = [await rowOf(movie.id), await rowOf(extension.id)];
    const budget = await getBudget(farm, 'old');
    const ledger = await countRows(db, 'budget_ledger');
    const events = await countRows(db, 'job_events');

    const retried = await refusalOf(retryJob(farm, movie.id));
    expect(retried).toBeInstanceOf(JobParamsError);
    expect(retried?.message).toBe(
      `Invalid job parameters: prompt 2 must be at most ${LIMITS.promptLength.max} characters (got ${LIMITS.promptLength.max + 1}); ` +
        `steps must be an integer between ${LIMITS.steps.min} and ${LIMITS.steps.max} (got ${LIMITS.steps.max + 1}).`,
    );
    // The same refusal a submission of those parameters gets.
    const submitted = await refusalOf(submitJob(farm, { kind: 'movie', userId: 'old', params: rows[0].params }));
    expect(submitted).toBeInstanceOf(JobParamsError);
    expect(submitted?.message).toBe(retried?.message);

    const extensionRefused = await refusalOf(retryJob(farm, extension.id));
    expect(extensionRefused).toMatchObject({ code: 'invalid_params', message: `This movie has 3 prompts; an extension may bring it to at most ${LIMITS.prompts.max}.` });
    expect((await refusalOf(submitJob(farm, { kind: 'extend', userId: 'old', parentJobId: parent.id, params: rows[1].params })))?.message).toBe(extensionRefused?.message);

    // Nothing queued, reserved or recorded.
    expect([await rowOf(movie.id), await rowOf(extension.id)]).toEqual(rows);
    const after = await getBudget(farm, 'old');
    expect([after.balanceGpuSeconds, after.heldGpuSeconds]).toEqual([budget.balanceGpuSeconds, budget.heldGpuSeconds]);
    expect(await countRows(db, 'budget_ledger')).toBe(ledger);
    expect(await countRows(db, 'job_events')).toBe(events);
    await markWorkerStopped(farm, 'w-rt');
  });

  // Concurrent transactions need two connections: Postgres only (PGlite runs one at a time).
  it.skipIf(backend === 'pglite')('checks for a duplicate upscale inside the transaction that queues it: two submissions at once make one job', async () => {
    await registerWorker(farm, { id: 'w-fu', host: 'test', pid: 1, concurrency: 1, capabilities: FU_CAPS });
    const parent = await submitJob(farm, { kind: 'blend', userId: 'lou', params: { ...CHEAP_BLEND, model: 'fu' } });
    await finish(parent.id, 'w-fu', FU_CAPS);
    const submit = () => submitFollowUp(farm, { kind: 'upscale', parentJobId: parent.id, userId: 'lou' }).then((job) => job, (e: unknown) => e as Error);
    let results: Array<Awaited<ReturnType<typeof submit>>> = [];
    // Both submissions get as far as they can while the user's row is held (the policy's admission
    // waits for it): each has checked its parent, neither has written its job.
    await db.db.transaction(async (tx) => {
      await tx.execute(sql`select id from users where id = 'lou' for update`);
      const both = Promise.all([submit(), submit()]);
      const early = await Promise.race([both, new Promise((resolve) => setTimeout(() => resolve('waiting'), 400))]);
      expect(early).toBe('waiting');
      void both.then((r) => (results = r));
    });
    await vi.waitFor(() => expect(results).toHaveLength(2), { timeout: 10_000 });
    const made = results.filter((r) => !(r instanceof Error));
    const refused = results.filter((r) => r instanceof Error);
    expect(made).toHaveLength(1);
    expect(refused[0]).toBeInstanceOf(DuplicateUpscaleError);
    expect(refused[0]).toMatchObject({ existingJobId: (made[0] as { id: number }).id });
    expect(await countRows(db, 'jobs', sql`parent_job_id = ${parent.id} and kind = 'upscale'`)).toBe(1);
    await cancelJob(farm, (made[0] as { id: number }).id);
    await markWorkerStopped(farm, 'w-fu');
  });

  it('makes one job of a re-roll or an extension its member asks twice within SAME_FOLLOW_UP_WINDOW_SECONDS (a double press), naming it; another member, another job, or after the window: a new job', async () => {
    await registerWorker(farm, { id: 'w-fu', host: 'test', pid: 1, concurrency: 1, capabilities: FU_CAPS });
    const parent = await submitJob(farm, { kind: 'blend', userId: 'max', params: { ...CHEAP_BLEND, model: 'fu' } });
    await finish(parent.id, 'w-fu', FU_CAPS);
    const other = await submitJob(farm, { kind: 'blend', userId: 'max', params: { ...CHEAP_BLEND, model: 'fu' } });
    await finish(other.id, 'w-fu', FU_CAPS);
    const reroll = (userId = 'max', parentJobId = parent.id) => submitFollowUp(farm, { kind: 'reroll', parentJobId, userId, press: true });
    const extend = () => submitFollowUp(farm, { kind: 'extend', parentJobId: parent.id, userId: 'max', options: { prompts: ['c'] }, press: true });
    const followUps = () => countRows(db, 'jobs', sql`parent_job_id = ${parent.id}`);
    const reserved = async () => (await getBudget(farm, 'max')).heldGpuSeconds;

    const first = await reroll();
    const held = await reserved();
    const again = await refusalOf(reroll());
    expect(again).toBeInstanceOf(DuplicateFollowUpError);
    expect(again).toMatchObject({ code: 'invalid_state', existingJobId: first.id });
    expect(again?.message).toBe(`Your re-roll of #${parent.id} is already queued as job #${first.id}. Asking again within 5 seconds makes no second job; for another re-roll, ask again after that.`);
    // Nothing made or charged for the second press.
    expect(await followUps()).toBe(1);
    expect(await reserved()).toBe(held);
    // The same press of someone else (a moderator), or on another job, or another follow-up, is another request.
    const byOther = await reroll('ned');
    const ofOther = await reroll('max', other.id);
    const extension = await extend();
    expect(await refusalOf(extend())).toMatchObject({ existingJobId: extension.id, message: expect.stringMatching(/^Your extension of #\d+ is already queued as job #\d+\./) });
    // A deliberate second re-roll, after the window: a new job.
    await pastFollowUpWindow(db);
    const second = await reroll();
    expect(second.id).not.toBe(first.id);
    expect(await followUps()).toBe(4);
    // A refused request is not a press to answer the next with: asking again at once is judged afresh.
    await pastFollowUpWindow(db);
    const bad = await refusalOf(submitFollowUp(farm, { kind: 'reroll', parentJobId: parent.id, userId: 'max', options: { maxBytes: 5 }, press: true }));
    expect(bad).toBeInstanceOf(JobParamsError);
    const afterRefusal = await reroll();
    expect(await followUps()).toBe(5);
    // Not a press (the farm CLI, a script): asked twice at once, made twice.
    const scripted = [await submitFollowUp(farm, { kind: 'reroll', parentJobId: other.id, userId: 'max' }), await submitFollowUp(farm, { kind: 'reroll', parentJobId: other.id, userId: 'max' })];
    expect(scripted[0].id).not.toBe(scripted[1].id);
    for (const job of [first, byOther, extension, second, afterRefusal, ...scripted]) await cancelJob(farm, job.id);
    await cancelJob(farm, ofOther.id);
    await markWorkerStopped(farm, 'w-fu');
  });

  // Two bot processes (two connections) given the same press at once: Postgres only (PGlite runs one statement at a time).
  it.skipIf(backend === 'pglite')('makes one job of the same re-roll asked through two bot processes at once; the other is told it is on its way, then its job number', async () => {
    await registerWorker(farm, { id: 'w-fu', host: 'test', pid: 1, concurrency: 1, capabilities: FU_CAPS });
    const parent = await submitJob(farm, { kind: 'blend', userId: 'oz', params: { ...CHEAP_BLEND, model: 'fu' } });
    await finish(parent.id, 'w-fu', FU_CAPS);
    const processes = await Promise.all([1, 2].map(async () => ({ db: await testDb.open({ migrate: false, poolSize: 2 }), config: farm.config })));
    const submit = (through: FarmContext) => submitFollowUp(through, { kind: 'reroll', parentJobId: parent.id, userId: 'oz', press: true }).then((job) => job, (e: unknown) => e as Error);
    const settled: Array<Awaited<ReturnType<typeof submit>>> = [];
    let both: Promise<unknown> = Promise.resolve();
    // While the user's row is held (the admission waits for it) one press has taken the request and
    // waits; the other is answered meanwhile.
    await db.db.transaction(async (tx) => {
      await tx.execute(sql`select id from users where id = 'oz' for update`);
      both = Promise.all(processes.map((through) => submit(through).then((r) => settled.push(r))));
      await vi.waitFor(() => expect(settled).toHaveLength(1), { timeout: 10_000 });
    });
    await both;
    const results = settled;
    const made = results.filter((r) => !(r instanceof Error));
    const refused = results.filter((r) => r instanceof Error);
    expect(made).toHaveLength(1);
    expect(refused[0]).toBeInstanceOf(DuplicateFollowUpError);
    expect(refused[0]).toMatchObject({ existingJobId: null });
    expect((refused[0] as Error).message).toMatch(/^Your re-roll of #\d+ is already on its way; its message will appear in a moment\./);
    // Once it is queued, a repeat through either process names it.
    for (const through of processes) expect(await submit(through)).toMatchObject({ existingJobId: (made[0] as { id: number }).id });
    expect(await countRows(db, 'jobs', sql`parent_job_id = ${parent.id} and kind = 'reroll'`)).toBe(1);
    await cancelJob(farm, (made[0] as { id: number }).id);
    await markWorkerStopped(farm, 'w-fu');
  });

  it('renders a follow-up for the upload limit it is asked with (where the button was pressed), else the parent’s', async () => {
    await registerWorker(farm, { id: 'w-fu', host: 'test', pid: 1, concurrency: 1, capabilities: FU_CAPS });
    const parent = await submitJob(farm, { kind: 'blend', userId: 'kit', params: { ...CHEAP_BLEND, model: 'fu', maxBytes: 50 * 1024 * 1024 } });
    await finish(parent.id, 'w-fu', FU_CAPS);
    const jobs = [];
    for (const kind of ['upscale', 'reroll', 'extend'] as const) {
      const options = { maxBytes: 10 * 1024 * 1024, ...(kind === 'extend' ? { prompts: ['c'] } : {}) };
      const job = await submitFollowUp(farm, { kind, parentJobId: parent.id, userId: 'kit', options });
      expect([kind, job.params.maxBytes]).toEqual([kind, 10 * 1024 * 1024]);
      expect((await getJob(farm, job.id))?.params.maxBytes).toBe(10 * 1024 * 1024);
      jobs.push(job);
    }
    // Without one, the parent's; a value out of range is refused by the job parameters' own rule.
    await pastFollowUpWindow(db);
    const inherited = await submitFollowUp(farm, { kind: 'reroll', parentJobId: parent.id, userId: 'kit' });
    expect(inherited.params.maxBytes).toBe(50 * 1024 * 1024);
    await pastFollowUpWindow(db);
    const bad = await refusalOf(submitFollowUp(farm, { kind: 'reroll', parentJobId: parent.id, userId: 'kit', options: { maxBytes: 5 } }));
    expect(bad).toBeInstanceOf(JobParamsError);
    expect(bad?.message).toBe('Invalid job parameters: maxBytes must be an integer between 10000 and 2000000000 (got 5).');
    for (const job of [...jobs, inherited]) await cancelJob(farm, job.id);
    await markWorkerStopped(farm, 'w-fu');
  });
});
