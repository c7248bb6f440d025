// The engine adapter's upscale jobs: the parent's finished video, every frame through a trained
// super-resolution network (esrgan-slim, converted from its npm package into a fresh cache here, so
// nothing depends on an earlier run), encoded under the job's maxBytes: the largest size that fits.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRenderer, workerUpscalers } from '../../../apps/worker/engine-renderer.ts';
import { decodeVideoFrames, encodeVideo, probeVideo, type RawImage } from '../../../engine/index.ts';
import { parseJobParams } from '../../../farm/job-params.ts';
import { RenderError, type Renderer, type RenderResult } from '../../../farm/renderer.ts';
import type { ClaimedJob, JobProgress } from '../../../farm/types.ts';
import { X4_TEST_MODEL_DIR } from '../../../models/x4-upscaler-test.ts';

const W = 64;
const H = 64;
let cache: string;
let renderer: Renderer;
let parentVideo: Buffer;
let sourceFrames: RawImage[];

/** Soft shapes with some texture: what a render looks like, and what a size limit bites on. */
function frame(i: number): RawImage {
  const data = new Uint8Array(W * H * 3);
  for (let y = 0; y < H; y++)
    for (let x = 0; x < W; x++) {
      const o = (y * W + x) * 3;
      const ring = Math.hypot(x - 20 - i * 3, y - 32) < 12 ? 200 : 40;
      data[o] = ring;
      data[o + 1] = Math.round(128 + 100 * Math.sin((x + i) / 5) * Math.cos(y / 7));
      data[o + 2] = (x * 7 + y * 13 + i * 29) % 256;
    }
  return { data, width: W, height: H, channels: 3 };
}

function upscaleJob(params: object, video: Uint8Array = parentVideo): ClaimedJob {
  const parent = parseJobParams('blend', { prompts: ['a red ring', 'a blue sea'], seeds: [5, 6], width: W, height: H, durationSeconds: 1, fps: 6 });
  return {
    id: 9,
    kind: 'upscale',
    userId: 'u',
    params: parseJobParams('upscale', { ...parent, ...params }),
    model: 'demo',
    pixels: 0,
    attempt: 1,
    maxAttempts: 3,
    parentJobId: 8,
    reservedGpuSeconds: 10,
    leaseToken: 't',
    parent: { id: 8, params: parent, movie: { prompts: parent.prompts, seeds: parent.seeds }, artifact: { format: 'mp4', bytes: video, meta: { seeds: [5, 6] } } },
  };
}

async function render(job: ClaimedJob, progress: JobProgress[] = []): Promise<RenderResult> {
  return renderer.render(job, { signal: new AbortController().signal, onProgress: (p) => progress.push(p) });
}

function meanAbs(a: Uint8Array, b: Uint8Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += Math.abs(a[i] - b[i]);
  return s / a.length;
}

beforeAll(async () => {
  cache = await mkdtemp(join(tmpdir(), 'blendfarm-upscaler-cache-'));
  process.env.BLENDFARM_MODEL_CACHE = cache;
  sourceFrames = Array.from({ length: 6 }, (_, i) => frame(i));
  parentVideo = (await encodeVideo(sourceFrames, { format: 'mp4', fps: 6, width: W, height: H, crf: 12 })).bytes;
  sourceFrames = await decodeVideoFrames(parentVideo, W, H);
  renderer = createRenderer({ threads: 2 });
});

afterAll(async () => {
  await renderer?.close?.();
  delete process.env.BLENDFARM_MODEL_CACHE;
  await rm(cache, { recursive: true, force: true });
});

describe('upscale jobs in the engine adapter', () => {
  it('offers the installed networks, the chosen (default esrgan-slim) first; x4-diffusion only from a valid folder', () => {
    const offered = renderer.capabilities().upscalers!;
    expect(offered[0]).toBe('esrgan-slim');
    expect(offered).toContain('esrgan-medium');
    expect(offered).not.toContain('x4-diffusion');
    expect(workerUpscalers({ x4UpscalerDir: X4_TEST_MODEL_DIR })).toContain('x4-diffusion');
    expect(workerUpscalers({ x4UpscalerDir: X4_TEST_MODEL_DIR, upscaler: 'x4-diffusion' })[0]).toBe('x4-diffusion');
    expect(workerUpscalers({ x4UpscalerDir: join(cache, 'nothing-here') })).not.toContain('x4-diffusion');
    expect(() => workerUpscalers({ upscaler: 'x4-diffusion' })).toThrow(/BLENDFARM_UPSCALER is x4-diffusion.*BLENDFARM_X4_UPSCALER_DIR/);
  });

  it('upscales the parent video 4x per side with esrgan-slim: same frames, each one its source frame made bigger', async () => {
    const progress: JobProgress[] = [];
    const out = await render(upscaleJob({ upscaleFactor: 4 }), progress);
    const probe = await probeVideo(out.video);
    expect([probe.width, probe.height, probe.frames]).toEqual([W * 4, H * 4, 6]);
    expect(out.metadata).toMatchObject({ upscaler: 'esrgan-slim', scale: 4, requestedScale: 4, sourceWidth: W, sourceHeight: H, seeds: [5, 6] });
    expect(out.metadata.reducedFrom).toBeUndefined();
    expect(progress.some((p) => p.stage === 'upscaling' && p.framesTotal === 6)).toBe(true);
    // Each output frame, shrunk back, is its source frame: the network upscaled these pixels.
    const frames = await decodeVideoFrames(Buffer.from(out.video), W * 4, H * 4);
    for (const i of [0, 5]) {
      const back = await sharp(frames[i].data, { raw: { width: W * 4, height: H * 4, channels: 3 } }).resize(W, H, { kernel: 'cubic' }).raw().toBuffer();
      expect(meanAbs(new Uint8Array(back), sourceFrames[i].data)).toBeLessThan(8);
    }
  });

  it('names the upscaler it was asked for, and refuses one this worker does not have', async () => {
    const out = await render(upscaleJob({ upscaleFactor: 2, upscaler: 'esrgan-medium', format: 'webm' }));
    expect(out.metadata).toMatchObject({ upscaler: 'esrgan-medium', scale: 2 });
    expect(out.format).toBe('webm');
    const err = await render(upscaleJob({ upscaleFactor: 4, upscaler: 'x4-diffusion' })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RenderError);
    expect((err as RenderError).retryable).toBe(false);
    expect((err as Error).message).toMatch(/cannot upscale 4x with x4-diffusion \(it has esrgan-slim/);
    // About this worker, not the request: the operator's.
    expect((err as RenderError).userMessage).toBeUndefined();
  });

  it('delivers the largest size that fits maxBytes when the full size does not, and says so', async () => {
    const full = await render(upscaleJob({ upscaleFactor: 4, format: 'gif' }));
    const maxBytes = Math.max(10_000, Math.floor(full.video.byteLength * 0.6));
    expect(full.video.byteLength).toBeGreaterThan(maxBytes);
    const out = await render(upscaleJob({ upscaleFactor: 4, format: 'gif', maxBytes }));
    expect(out.video.byteLength).toBeLessThanOrEqual(maxBytes);
    const probe = await probeVideo(out.video);
    expect(out.metadata).toMatchObject({ upscaler: 'esrgan-slim', reducedFrom: 4, shrunk: true });
    const scale = out.metadata.scale as number;
    expect(scale).toBeLessThan(4);
    expect(scale).toBeGreaterThan(1);
    expect(probe.width).toBe(Math.round(W * scale));
    expect(probe.frames).toBe(6);
  });

  it('fails for good when the parent video is gone', async () => {
    const job = { ...upscaleJob({}), parent: undefined };
    const err = await render(job).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RenderError);
    expect((err as RenderError).retryable).toBe(false);
    expect((err as Error).message).toMatch(/video to upscale \(job 8\) is gone/);
    expect((err as RenderError).userMessage).toBe((err as Error).message);
  });
});
