// Worker-side metrics: a Renderer wrapper that times every attempt on this worker and reads the
// engine's own timings from the result's metadata (the render runs in a worker thread, so the
// numbers cross back with the result):
//   metadata.renderSeconds, metadata.encodeSeconds   engine/render.ts (diffusion+blending, video encode)
//   metadata.timings                                 engine/pipeline/timings.ts RenderTimings, for transitions and /vary
//                                                    animations alike (the engine adapter passes it on):
//     .unet: [{ batch, calls, ms }]                  UNet session runs per batch size
//     .vaeDecode: { calls, ms }                      VAE decodes
// Whatever a renderer does not report is simply not observed.
import { Counter, Histogram, type Registry } from 'prom-client';
import type { RenderTimings } from '../../engine/index.ts';
import type { ClaimedJob, RenderContext, Renderer, RenderResult } from '../../farm/index.ts';

// Labels: job kind, execution provider, batch size, outcome: all bounded.
const SECONDS = [0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600];
const MILLISECONDS = [1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000];

export interface RenderMetrics {
  /** The same renderer, with every render() timed and its engine timings observed. */
  wrap(renderer: Renderer): Renderer & { close(): Promise<void> };
}

export function renderMetrics(registry: Registry): RenderMetrics {
  const attempts = new Histogram({
    name: 'blendfarm_worker_attempt_seconds',
    help: 'Wall time of render attempts on this worker, by job kind, execution provider and outcome (ok, error, aborted)',
    labelNames: ['kind', 'execution_provider', 'outcome'] as const,
    buckets: SECONDS,
    registers: [registry],
  });
  const engineRender = new Histogram({
    name: 'blendfarm_engine_render_seconds',
    help: 'Engine time to diffuse and blend all frames of a job (metadata.renderSeconds), by execution provider',
    labelNames: ['execution_provider'] as const,
    buckets: SECONDS,
    registers: [registry],
  });
  const encode = new Histogram({
    name: 'blendfarm_engine_encode_seconds',
    help: 'Engine time to encode the video (metadata.encodeSeconds, re-encodes to fit a size included), by execution provider',
    labelNames: ['execution_provider'] as const,
    buckets: [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
    registers: [registry],
  });
  const unet = new Histogram({
    name: 'blendfarm_unet_call_milliseconds',
    help: 'Milliseconds per UNet call (the mean of each job, once per call), by batch size and execution provider',
    labelNames: ['batch_size', 'execution_provider'] as const,
    buckets: MILLISECONDS,
    registers: [registry],
  });
  const vae = new Histogram({
    name: 'blendfarm_vae_decode_milliseconds',
    help: 'Milliseconds per VAE decode (the mean of each job, once per decode), by execution provider',
    labelNames: ['execution_provider'] as const,
    buckets: MILLISECONDS,
    registers: [registry],
  });
  const gpuSeconds = new Counter({
    name: 'blendfarm_worker_gpu_seconds_total',
    help: 'GPU-seconds measured by renderers on this worker (successful attempts), by execution provider',
    labelNames: ['execution_provider'] as const,
    registers: [registry],
  });

  const reencodes = new Counter({
    name: 'blendfarm_engine_reencodes_total',
    help: 'Videos the engine encoded again, smaller, to fit the requested size limit (metadata.shrunk)',
    labelNames: ['execution_provider'] as const,
    registers: [registry],
  });

  const observe = (provider: string, result: RenderResult) => {
    const meta = result.metadata ?? {};
    const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : undefined);
    const renderSeconds = num(meta.renderSeconds);
    if (renderSeconds !== undefined) engineRender.observe({ execution_provider: provider }, renderSeconds);
    const encodeSeconds = num(meta.encodeSeconds);
    if (encodeSeconds !== undefined) encode.observe({ execution_provider: provider }, encodeSeconds);
    // Crossed a thread (and maybe a renderer other than the engine's): checked, not trusted.
    const timings = (meta.timings ?? {}) as Partial<RenderTimings>;
    const count = (v: unknown) => (Number.isInteger(v) && (v as number) > 0 ? (v as number) : undefined);
    for (const entry of Array.isArray(timings.unet) ? timings.unet : []) {
      const [calls, ms, batch] = [count(entry?.calls), num(entry?.ms), count(entry?.batch)];
      if (calls === undefined || ms === undefined || batch === undefined) continue;
      for (let i = 0; i < calls; i++) unet.observe({ batch_size: String(batch), execution_provider: provider }, ms / calls);
    }
    const decodes = timings.vaeDecode;
    const [decodeCalls, decodeMs] = [count(decodes?.calls), num(decodes?.ms)];
    if (decodeCalls !== undefined && decodeMs !== undefined) {
      for (let i = 0; i < decodeCalls; i++) vae.observe({ execution_provider: provider }, decodeMs / decodeCalls);
    }
    if (meta.shrunk === true) reencodes.inc({ execution_provider: provider });
    if (num(result.gpuSeconds) !== undefined) gpuSeconds.inc({ execution_provider: provider }, result.gpuSeconds);
  };

  return {
    wrap(renderer) {
      const provider = renderer.capabilities().executionProvider;
      const render = async (job: ClaimedJob, context: RenderContext): Promise<RenderResult> => {
        const started = performance.now();
        const labels = { kind: job.kind, execution_provider: provider };
        try {
          const result = await renderer.render(job, context);
          attempts.observe({ ...labels, outcome: 'ok' }, (performance.now() - started) / 1000);
          observe(provider, result);
          return result;
        } catch (error) {
          attempts.observe({ ...labels, outcome: context.signal.aborted ? 'aborted' : 'error' }, (performance.now() - started) / 1000);
          throw error;
        }
      };
      return { capabilities: () => renderer.capabilities(), render, close: async () => renderer.close?.() };
    },
  };
}
