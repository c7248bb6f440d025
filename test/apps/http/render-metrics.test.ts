// The worker's engine histograms from a real render: the engine adapter (demo model) reports the
// UNet runs per batch size and the VAE decodes of each render, and the metrics wrapper observes
// exactly that many calls; the engine's report matches its own call counters.
import { Registry } from 'prom-client';
import { afterAll, describe, expect, it } from 'vitest';
import { createRenderer } from '../../../apps/worker/engine-renderer.ts';
import { renderMetrics } from '../../../apps/http/render-metrics.ts';
import { renderVideo, StableDiffusionPipeline, type RenderTimings } from '../../../engine/index.ts';
import { parseJobParams } from '../../../farm/job-params.ts';
import type { ClaimedJob } from '../../../farm/types.ts';
import { ensureDemoModel } from '../../../models/demo-model.ts';
import { DEMO_MODEL_DIR } from '../../../models/paths.ts';
import { CHEAP_BLEND } from '../../helpers/db.ts';
import { sample } from './helpers.ts';

const job: ClaimedJob = {
  id: 1,
  kind: 'blend',
  userId: 'u',
  params: parseJobParams('blend', { ...CHEAP_BLEND, steps: 4, maxBranches: 3, seeds: [3, 4] }),
  model: 'demo',
  pixels: 0,
  attempt: 1,
  maxAttempts: 3,
  parentJobId: null,
  reservedGpuSeconds: 10,
  leaseToken: 't',
};

describe('engine timings in the worker metrics', () => {
  const closers: Array<() => Promise<void>> = [];
  afterAll(async () => {
    for (const close of closers) await close();
  });

  it('fills the UNet and VAE histograms with the calls the engine reports for a render', async () => {
    const registry = new Registry();
    const renderer = renderMetrics(registry).wrap(createRenderer({ threads: 2 }));
    closers.push(() => renderer.close());
    const provider = renderer.capabilities().executionProvider;
    const result = await renderer.render(job, { signal: new AbortController().signal, onProgress: () => {} });
    const timings = result.metadata.timings as RenderTimings;
    expect(timings.unet.length).toBeGreaterThan(0);
    expect(timings.vaeDecode.calls).toBeGreaterThanOrEqual(result.metadata.keyframes as number);

    const text = await registry.metrics();
    for (const { batch, calls, ms } of timings.unet) {
      expect(calls).toBeGreaterThan(0);
      const labels = { batch_size: String(batch), execution_provider: provider };
      expect(sample(text, 'blendfarm_unet_call_milliseconds_count', labels)).toBe(calls);
      expect(sample(text, 'blendfarm_unet_call_milliseconds_sum', labels)).toBeCloseTo(ms, 3);
    }
    const unetCounts = text.split('\n').filter((l) => l.startsWith('blendfarm_unet_call_milliseconds_count'));
    expect(unetCounts).toHaveLength(timings.unet.length);
    expect(sample(text, 'blendfarm_vae_decode_milliseconds_count', { execution_provider: provider })).toBe(timings.vaeDecode.calls);
    expect(sample(text, 'blendfarm_vae_decode_milliseconds_sum', { execution_provider: provider })).toBeCloseTo(timings.vaeDecode.ms, 3);

    // A second render is reported on its own, not on top of the first.
    const again = await renderer.render(job, { signal: new AbortController().signal, onProgress: () => {} });
    const second = again.metadata.timings as RenderTimings;
    expect(second.vaeDecode.calls).toBe(timings.vaeDecode.calls);
    const after = await registry.metrics();
    expect(sample(after, 'blendfarm_vae_decode_milliseconds_count', { execution_provider: provider })).toBe(2 * timings.vaeDecode.calls);
  });

  it('reports what the UNet and VAE counted during the render', async () => {
    const pipe = await StableDiffusionPipeline.load(await ensureDemoModel(DEMO_MODEL_DIR), { threads: 2 });
    closers.push(() => pipe.release());
    const [calls, items, decodes] = [pipe.unet.calls, pipe.unet.items, pipe.vae.calls];
    const out = await renderVideo(pipe, { prompts: ['a red fox', 'a blue whale'], seeds: [3, 4], width: 64, height: 64, steps: 4, maxBranches: 3, duration: 1, fps: 4 });
    expect(out.timings.unet.reduce((n, t) => n + t.calls, 0)).toBe(pipe.unet.calls - calls);
    expect(out.timings.unet.reduce((n, t) => n + t.batch * t.calls, 0)).toBe(pipe.unet.items - items);
    expect(out.timings.vaeDecode.calls).toBe(pipe.vae.calls - decodes);
    for (const t of [...out.timings.unet, out.timings.vaeDecode]) expect(Number.isFinite(t.ms) && t.ms >= 0).toBe(true);
  });
});
