/**
 * Latent blending on the predictable demo model: real onnxruntime, real ffmpeg/ffprobe.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StableDiffusionPipeline } from '../../../engine/index.ts';
import { LatentBlender, type TransitionProgress } from '../../../engine/blend/transition.ts';
import { renderMovie } from '../../../engine/blend/movie.ts';
import { segmentsToVideo } from '../../../engine/blend/video.ts';
import { BuiltinPerceptualMetric, OnnxLpipsMetric } from '../../../engine/blend/perceptual.ts';
import { concatKeyframes, concatPlans, planFrames, renderFrames } from '../../../engine/video/frames.ts';
import { probeVideo } from '../../../engine/video/probe.ts';
import { GraphBuilder, saveModel } from '../../../models/onnx/index.ts';
import { testModelDir } from '../../../models/paths.ts';
import { meanAbsDiff } from '../../helpers/demo.ts';

const SIZE = { width: 128, height: 128 };
const PROMPTS = { promptA: 'a red sunset over the sea', promptB: 'a green forest in spring' };

let pipe: StableDiffusionPipeline;
let blender: LatentBlender;
let dir: string;
beforeAll(async () => {
  pipe = await StableDiffusionPipeline.load(testModelDir('demo'));
  blender = new LatentBlender(pipe);
  dir = await mkdtemp(join(tmpdir(), 'blendfarm-blend-'));
});
afterAll(async () => {
  await pipe?.release();
  await rm(dir, { recursive: true, force: true });
});

describe('the transition tree', () => {
  it('grows where gaps are largest, from parents of earlier stages, and the gaps even out', async () => {
    const results = [];
    for (const maxBranches of [5, 9, 17]) {
      const r = await blender.transition({ ...PROMPTS, seedA: 1, seedB: 2, ...SIZE, maxBranches, order: 'sequential' });
      expect(r.frames).toHaveLength(maxBranches);
      expect(r.gaps).toHaveLength(maxBranches - 1);
      // Sorted fractions from 0 to 1, each branch injected after its parents.
      const fr = r.frames.map((f) => f.fract);
      expect(fr[0]).toBe(0);
      expect(fr[fr.length - 1]).toBe(1);
      for (let i = 1; i < fr.length; i++) expect(fr[i]).toBeGreaterThan(fr[i - 1]);
      for (const h of r.history) {
        expect(h.splitGap).toBe(h.largestGap);
        const parents = h.parents.map((p) => r.frames.find((f) => f.fract === p)!);
        for (const p of parents) expect(p.injIdx).toBeLessThan(h.injIdx);
        expect(h.fract).toBeGreaterThan(h.parents[0]);
        expect(h.fract).toBeLessThan(h.parents[1]);
      }
      results.push(r);
    }
    const [small, , large] = results;
    console.log('max/mean gap by branches:', results.map((r) => `${r.frames.length}: ${r.maxGap.toFixed(3)}/${r.meanGap.toFixed(3)}`).join(', '));
    expect(large.maxGap).toBeLessThan(small.maxGap);
    expect(large.maxGap / large.meanGap).toBeLessThan(2.5);
    expect(large.metric).toMatch(/^builtin/);
  });

  it('batched stages agree with the one-at-a-time order and need fewer UNet calls', async () => {
    const opts = { ...PROMPTS, seedA: 3, seedB: 4, ...SIZE, maxBranches: 13 };
    const seq = await blender.transition({ ...opts, order: 'sequential' });
    const bat = await blender.transition({ ...opts, order: 'batched' });
    expect(bat.frames).toHaveLength(seq.frames.length);
    const seqFr = seq.frames.map((f) => f.fract);
    const shared = bat.frames.filter((f) => seqFr.includes(f.fract));
    expect(shared.length / bat.frames.length).toBeGreaterThanOrEqual(0.8);
    // A branch with the same lineage (fraction, injection step, parents, recursively) starts from the
    // same latents in both orders, so it must be the same image: batching changes nothing but speed.
    const sameLineage = (f: number): boolean => {
      if (f === 0 || f === 1) return true;
      const a = bat.history.find((h) => h.fract === f);
      const b = seq.history.find((h) => h.fract === f);
      if (!a || !b || a.injIdx !== b.injIdx || a.parents.join() !== b.parents.join()) return false;
      return a.parents.every(sameLineage);
    };
    let compared = 0;
    for (const f of shared) {
      if (!sameLineage(f.fract)) continue;
      const other = seq.frames.find((g) => g.fract === f.fract)!;
      expect(meanAbsDiff(f.image.data, other.image.data)).toBeLessThan(0.01);
      compared++;
    }
    expect(compared).toBeGreaterThanOrEqual(7);
    expect(Math.abs(bat.meanGap - seq.meanGap) / seq.meanGap).toBeLessThan(0.1);
    expect(bat.maxGap).toBeLessThan(seq.maxGap * 1.25);
    expect(bat.unetCalls).toBeLessThan(seq.unetCalls);
  });

  it('the same seeds give the same keyframes; drawn seeds are reported', async () => {
    const a = await blender.transition({ ...PROMPTS, seedA: 11, seedB: 12, ...SIZE, maxBranches: 7 });
    const b = await blender.transition({ ...PROMPTS, seedA: 11, seedB: 12, ...SIZE, maxBranches: 7 });
    expect(a.seeds).toEqual([11, 12]);
    a.frames.forEach((f, i) => expect(Buffer.from(f.image.data).equals(Buffer.from(b.frames[i].image.data))).toBe(true));
    const drawn = await blender.transition({ ...PROMPTS, ...SIZE, maxBranches: 3 });
    expect(drawn.seeds.every((s) => Number.isSafeInteger(s) && s >= 0)).toBe(true);
    const again = await blender.transition({ ...PROMPTS, seedA: drawn.seeds[0], seedB: drawn.seeds[1], ...SIZE, maxBranches: 3 });
    expect(Buffer.from(again.frames[1].image.data).equals(Buffer.from(drawn.frames[1].image.data))).toBe(true);
  });

  it('the ends are the two prompts: each keyframe matches a plain render of its prompt and seed', async () => {
    const r = await blender.transition({ ...PROMPTS, seedA: 5, seedB: 6, ...SIZE, maxBranches: 3, branch1Crossfeed: { power: 0, range: 0, decay: 0 } });
    const a = await pipe.generate({ prompt: PROMPTS.promptA, seed: 5, ...SIZE });
    const b = await pipe.generate({ prompt: PROMPTS.promptB, seed: 6, ...SIZE });
    expect(meanAbsDiff(r.frames[0].image.data, a.images[0].data)).toBeLessThan(0.01);
    expect(meanAbsDiff(r.frames[2].image.data, b.images[0].data)).toBeLessThan(0.01);
  });

  it('reports progress (stages, branches, eta, previews) a few times a second at most, and cancels within one UNet call', async () => {
    const events: TransitionProgress[] = [];
    await blender.transition({ ...PROMPTS, seedA: 1, seedB: 2, ...SIZE, maxBranches: 9, progressIntervalMs: 0, onProgress: (p) => events.push(p) });
    expect(events.at(-1)!.phase).toBe('done');
    expect(events.at(-1)!.branchesDone).toBe(9);
    expect(events.some((e) => e.preview && e.preview[0] === 0xff && e.preview[1] === 0xd8)).toBe(true);
    expect(events.some((e) => e.phase === 'branches' && e.stage >= 1 && e.etaSeconds !== null)).toBe(true);

    const throttled: number[] = [];
    await blender.transition({ ...PROMPTS, seedA: 1, seedB: 2, ...SIZE, maxBranches: 9, progressIntervalMs: 60_000, onProgress: () => throttled.push(1) });
    expect(throttled.length).toBeLessThanOrEqual(2); // the first event and the final one

    const ac = new AbortController();
    let callsAtAbort = -1;
    const run = blender.transition({
      ...PROMPTS,
      ...SIZE,
      maxBranches: 30,
      progressIntervalMs: 0,
      signal: ac.signal,
      onProgress: (p) => {
        if (p.phase === 'branches' && callsAtAbort < 0) {
          callsAtAbort = pipe.unet.calls;
          ac.abort();
        }
      },
    });
    await expect(run).rejects.toThrow(/cancelled/);
    expect(pipe.unet.calls - callsAtAbort).toBeLessThanOrEqual(1);
  });

  it('takes LPIPS from an ONNX model when one is configured, and says so', async () => {
    // A stand-in with LPIPS's interface: two [1,3,H,W] images in [-1,1] -> a distance.
    const g = new GraphBuilder('lpips');
    const a = g.input('in0', 'float32', [1, 3, 'h', 'w']);
    const b = g.input('in1', 'float32', [1, 3, 'h', 'w']);
    g.output(g.op('ReduceMean', [g.op('Abs', [g.op('Sub', [a, b])])], { keepdims: 0 }), 'distance', 'float32', []);
    await saveModel(dir, 'lpips.onnx', g.toModel());
    const metric = await OnnxLpipsMetric.load(join(dir, 'lpips.onnx'));
    const r = await new LatentBlender(pipe, metric).transition({ ...PROMPTS, seedA: 1, seedB: 2, ...SIZE, maxBranches: 5 });
    expect(r.metric).toMatch(/^lpips-onnx/);
    // Mean |a-b| over [-1,1] pixels: twice the 0..255 mean abs difference over 255.
    const expected = (2 * meanAbsDiff(r.frames[0].image.data, r.frames[1].image.data)) / 255;
    expect(r.gaps[0]).toBeCloseTo(expected, 4);
    await metric.release();
  });

  it('the built-in metric is zero for identical images and grows with visible change', async () => {
    const m = new BuiltinPerceptualMetric();
    const img = (v: number) => ({ data: new Uint8Array(64 * 64 * 3).fill(v), width: 64, height: 64, channels: 3 as const });
    expect(await m.distance(img(100), img(100))).toBe(0);
    const small = await m.distance(img(100), img(110));
    const big = await m.distance(img(100), img(200));
    expect(big).toBeGreaterThan(small);
    expect(await m.distance(img(110), img(100))).toBeCloseTo(small, 12);
  });
});

describe('movies and videos', () => {
  it('chains segments through the shared keyframe: joins without a repeated or jumping frame', async () => {
    const movie = await renderMovie(pipe, { prompts: ['a red sunset', 'a green forest', 'a blue ocean'], seeds: [1, 2, 3], ...SIZE, maxBranches: 7 });
    expect(movie.segments).toHaveLength(2);
    expect(movie.seeds).toEqual([1, 2, 3]);
    const [s1, s2] = movie.segments;
    // Segment 2 starts from segment 1's end keyframe, not a re-render of it.
    expect(s2.keyframes[0]).toBe(s1.keyframes.at(-1));
    const keyframes = concatKeyframes(movie.segments.map((s) => s.keyframes));
    expect(keyframes).toHaveLength(13);
    const plan = concatPlans(movie.segments.map((s) => ({ keyframeCount: s.keyframes.length, plan: planFrames(s.keyframes.length, 24) })));
    expect(plan).toHaveLength(47);
    const frames = [...renderFrames(keyframes, plan)];
    const steps = frames.slice(1).map((f, i) => meanAbsDiff(f.data, frames[i].data));
    const join = 23; // frames[23] is the shared keyframe; steps[22] leads in, steps[23] leads out
    expect(steps[join - 1]).toBeGreaterThan(0);
    expect(steps[join]).toBeGreaterThan(0);
    const sorted = [...steps].sort((x, y) => x - y);
    const median = sorted[Math.floor(sorted.length / 2)];
    expect(Math.max(steps[join - 1], steps[join])).toBeLessThan(4 * median);
  });

  it('the circular walk loops: the frame after its last is its first, which is not repeated', async () => {
    const movie = await renderMovie(pipe, { prompts: ['a red sunset', 'a green forest'], seeds: [1, 2], mode: 'circular', walkFrames: 6, steps: 6, ...SIZE });
    const kf = movie.segments[0].keyframes;
    expect(kf).toHaveLength(6);
    expect(Buffer.from(kf[0].data).equals(Buffer.from(kf[5].data))).toBe(false);
    // Closing the loop (last -> first) is a step like the others, not a jump and not a repeat.
    const steps = kf.map((f, i) => meanAbsDiff(f.data, kf[(i + 1) % kf.length].data));
    expect(Math.min(...steps)).toBeGreaterThan(0);
    expect(steps[5]).toBeLessThan(2 * Math.max(...steps.slice(0, 5)));
    expect(meanAbsDiff(kf[0].data, kf[3].data)).toBeGreaterThan(5);
  });

  for (const mode of ['embedding-walk', 'noise-mixing', 'seed-slerp'] as const) {
    it(`${mode}: renders a transition whose ends are the two prompts and joins movie segments on one frame`, async () => {
      const movie = await renderMovie(pipe, { prompts: ['a red sunset', 'a green forest', 'a blue ocean'], seeds: [1, 2, 3], mode, walkFrames: 4, steps: 6, ...SIZE });
      const [s1, s2] = movie.segments;
      expect(s1.keyframes).toHaveLength(4);
      expect(meanAbsDiff(s1.keyframes[0].data, s1.keyframes[3].data)).toBeGreaterThan(5);
      // The end of segment 1 and the start of segment 2 are the same image (rendered twice, identically).
      expect(meanAbsDiff(s1.keyframes[3].data, s2.keyframes[0].data)).toBeLessThan(0.05);
    });
  }

  it('writes MP4 with the frame count and duration asked for (ffprobe), and a movie with per-segment durations', async () => {
    const r = await blender.transition({ ...PROMPTS, seedA: 1, seedB: 2, ...SIZE, maxBranches: 7 });
    const out = join(dir, 't.mp4');
    const enc = await segmentsToVideo([{ keyframes: r.frames.map((f) => f.image), gaps: r.gaps }], { fps: 12, duration: 2, out });
    const probe = await probeVideo(out);
    expect(probe.codec).toBe('h264');
    expect(probe.frames).toBe(24);
    expect(probe.durationSeconds).toBeCloseTo(2, 1);
    expect(enc.frames).toBe(24);

    const movie = await renderMovie(pipe, { prompts: ['a', 'b', 'c'], seeds: [1, 2, 3], ...SIZE, maxBranches: 4 });
    const out2 = join(dir, 'm.webm');
    await segmentsToVideo(movie.segments, { fps: 10, duration: [1, 2], format: 'webm', out: out2, plan: 'gap-weighted' });
    const p2 = await probeVideo(out2);
    expect(p2.codec).toBe('vp9');
    expect(p2.frames).toBe(30);
  });

  it('respects a size limit by re-encoding', async () => {
    const r = await blender.transition({ ...PROMPTS, seedA: 1, seedB: 2, width: 256, height: 256, maxBranches: 9 });
    const free = await segmentsToVideo([{ keyframes: r.frames.map((f) => f.image) }], { fps: 24, duration: 3 });
    const limit = Math.floor(free.sizeBytes * 0.5);
    const fitted = await segmentsToVideo([{ keyframes: r.frames.map((f) => f.image) }], { fps: 24, duration: 3, maxBytes: limit });
    expect(fitted.sizeBytes).toBeLessThanOrEqual(limit);
    expect(fitted.bytes.length).toBe(fitted.sizeBytes);
    expect(fitted.attempts.length).toBeGreaterThan(1);
  });
});

describe('compute budget', () => {
  it('plans the tree from measured step times: a bigger budget buys more branches', async () => {
    const small = await blender.transition({ ...PROMPTS, seedA: 1, seedB: 2, ...SIZE, computeSeconds: 0.05 });
    const big = await blender.transition({ ...PROMPTS, seedA: 1, seedB: 2, ...SIZE, computeSeconds: 0.6 });
    expect(small.frames.length).toBeGreaterThanOrEqual(2);
    expect(big.frames.length).toBeGreaterThan(small.frames.length);
    expect(big.timings.unetStepSeconds).toBeGreaterThan(0);
  });
});

describe('renderVideo: one request in, one finished video out', () => {
  it('renders a 3-prompt movie request to MP4 bytes with seeds, thumbnail and monotone progress', async () => {
    const { renderVideo } = await import('../../../engine/render.ts');
    const fractions: number[] = [];
    const out = await renderVideo(
      pipe,
      { prompts: ['a red sunset', 'a green forest', 'a blue ocean'], seeds: [1, undefined, 3], ...SIZE, maxBranches: 5, duration: 1, fps: 10 },
      { onProgress: (p) => fractions.push(p.fraction), progressIntervalMs: 0 },
    );
    expect(out.seeds[0]).toBe(1);
    expect(out.seeds[2]).toBe(3);
    expect(Number.isSafeInteger(out.seeds[1])).toBe(true);
    expect(out.keyframes).toBe(9);
    expect(out.frames).toBe(20);
    const probe = await probeVideo(out.video);
    expect([probe.codec, probe.frames, probe.width, probe.height]).toEqual(['h264', 20, 128, 128]);
    expect(out.thumbnail.subarray(1, 4).toString()).toBe('PNG');
    expect(fractions.at(-1)).toBe(1);
    for (let i = 1; i < fractions.length; i++) expect(fractions[i]).toBeGreaterThanOrEqual(fractions[i - 1]);
  });
});

describe('extend', () => {
  it('recovers a movie’s last keyframe exactly and continues from it; the parent’s frames are kept as they were, not re-encoded', async () => {
    const { renderVideo } = await import('../../../engine/render.ts');
    const { recoverEndpoint } = await import('../../../engine/blend/movie.ts');
    const { decodeVideoFrames } = await import('../../../engine/video/decode.ts');
    const base = { ...SIZE, maxBranches: 5, fps: 8, duration: 1 };
    const parentMovie = await renderMovie(pipe, { prompts: ['a red sunset', 'a green forest'], seeds: [1, 2], ...SIZE, maxBranches: 5 });
    const end = await recoverEndpoint(pipe, { prompts: ['a red sunset', 'a green forest'], seeds: [1, 2], ...SIZE });
    expect(Buffer.from(end.image.data).equals(Buffer.from(parentMovie.segments[0].keyframes.at(-1)!.data))).toBe(true);

    const parent = await renderVideo(pipe, { prompts: ['a red sunset', 'a green forest'], seeds: [1, 2], ...base });
    const extended = await renderVideo(pipe, { prompts: ['a blue ocean'], seeds: [3], ...base, extend: { prompts: ['a red sunset', 'a green forest'], seeds: [1, 2], video: parent.video } });
    const direct = await renderVideo(pipe, { prompts: ['a red sunset', 'a green forest', 'a blue ocean'], seeds: [1, 2, 3], ...base });
    expect(extended.seeds).toEqual([1, 2, 3]);
    expect(extended.frames).toBe(16);
    const [e, d] = await Promise.all([decodeVideoFrames(extended.video, 128, 128), decodeVideoFrames(direct.video, 128, 128)]);
    expect(e).toHaveLength(16);
    expect(d).toHaveLength(16);
    // Same movie as rendering all three prompts at once, up to video compression.
    for (const i of [0, 7, 8, 15]) expect(meanAbsDiff(e[i].data, d[i].data)).toBeLessThan(6);
    // The parent's 8 frames were joined by stream copy: they decode bit for bit as before.
    const p = await decodeVideoFrames(parent.video, 128, 128);
    expect(p).toHaveLength(8);
    for (let i = 0; i < 8; i++) expect(Buffer.from(e[i].data).equals(Buffer.from(p[i].data)), `frame ${i}`).toBe(true);
  });

  it('a gif extension has no stream-copy join: the parent is decoded and the whole movie encoded once', async () => {
    const { renderVideo } = await import('../../../engine/render.ts');
    const { probeVideo } = await import('../../../engine/video/probe.ts');
    const base = { ...SIZE, maxBranches: 3, fps: 8, duration: 1, format: 'gif' as const };
    const parent = await renderVideo(pipe, { prompts: ['a red sunset', 'a green forest'], seeds: [1, 2], ...base });
    const extended = await renderVideo(pipe, { prompts: ['a blue ocean'], seeds: [3], ...base, extend: { prompts: ['a red sunset', 'a green forest'], seeds: [1, 2], video: parent.video } });
    expect(extended.frames).toBe(16);
    expect([(await probeVideo(extended.video)).format, (await probeVideo(extended.video)).frames]).toEqual(['gif', 16]);
  });

  it('continues a movie that ends at a picture from that picture’s keyframe, not the prompt’s', async () => {
    const { renderVideo } = await import('../../../engine/render.ts');
    const { decodeVideoFrames } = await import('../../../engine/video/decode.ts');
    const photo = readFileSync(new URL('../../fixtures/photos/coffee.png', import.meta.url));
    const base = { ...SIZE, maxBranches: 5, fps: 8, duration: 1 };
    const old = { prompts: ['a red sunset', 'a green forest'], seeds: [1, 2] };
    const pictures = [{ index: 1, image: photo, strength: 0.5 }];
    const parent = await renderVideo(pipe, { ...old, ...base, images: pictures });
    const extended = await renderVideo(pipe, { prompts: ['a blue ocean'], seeds: [3], ...base, extend: { ...old, images: pictures, video: parent.video } });
    const direct = await renderVideo(pipe, { prompts: [...old.prompts, 'a blue ocean'], seeds: [1, 2, 3], ...base, images: pictures });
    // Without the pictures the extension would start on the prompt's own keyframe.
    const blind = await renderVideo(pipe, { prompts: ['a blue ocean'], seeds: [3], ...base, extend: { ...old, video: parent.video } });
    const [e, d, b] = await Promise.all([extended, direct, blind].map((v) => decodeVideoFrames(v.video, 128, 128)));
    expect(e).toHaveLength(16);
    // Same movie as rendering all three prompts with the picture at once, up to video compression.
    for (const i of [0, 7, 8, 15]) expect(meanAbsDiff(e[i].data, d[i].data)).toBeLessThan(6);
    expect(meanAbsDiff(b[8].data, d[8].data)).toBeGreaterThan(12);
  });
});
