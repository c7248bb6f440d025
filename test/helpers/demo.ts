/**
 * Reading the demo model's known distribution back out of its UNet: at x = 0 the closed-form
 * predictor returns eps = -sqrt(1-abar) sqrt(abar) mu / (abar s^2 + 1 - abar), so mu follows from
 * one UNet call (v-prediction models: v = -sqrt(1-abar) mu / (...)). With guidance g the same call yields the guided mean mu_u + g (mu_c - mu_u).
 */
import { cp, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { StableDiffusionPipeline } from '../../engine/index.ts';
import { DEMO_DATA_STD, logSigmaTable } from '../../models/demo-model.ts';
import { testModelDir } from '../../models/paths.ts';

export async function demoMean(pipe: StableDiffusionPipeline, prompt: string, opts: { negative?: string; guidance?: number; width: number; height: number }): Promise<Float32Array> {
  const { cond, uncond } = await pipe.encodePrompt(prompt, opts.negative ?? '');
  const h = opts.height / 8;
  const w = opts.width / 8;
  const per = pipe.latentChannels * h * w;
  const t = 500;
  const eps = await pipe.unet.predict({ latents: new Float32Array(per), count: 1, latentSize: [h, w], timestep: t, cond: [cond], uncond: [uncond], guidance: [opts.guidance ?? 1] });
  const sigma = Math.exp(logSigmaTable()[t]);
  const abar = 1 / (1 + sigma * sigma);
  const s2 = DEMO_DATA_STD ** 2;
  const denom = abar * s2 + 1 - abar;
  // v-prediction at x = 0 gives v = -sqrt(1-abar) mu / denom (the sqrt(abar) factors cancel).
  const vPred = pipe.folder.schedulerConfig.prediction_type === 'v_prediction';
  const k = vPred ? -denom / Math.sqrt(1 - abar) : -denom / (Math.sqrt(1 - abar) * Math.sqrt(abar));
  return eps.map((e) => e * k);
}

/** Mean and standard deviation of (x - mu) / s: ~0 and ~1 when x is a sample of N(mu, s^2). */
export function standardized(x: Float32Array, mu: Float32Array, s = DEMO_DATA_STD): { mean: number; std: number } {
  let sum = 0;
  let sq = 0;
  for (let i = 0; i < x.length; i++) {
    const z = (x[i] - mu[i]) / s;
    sum += z;
    sq += z * z;
  }
  const mean = sum / x.length;
  return { mean, std: Math.sqrt(sq / x.length - mean * mean) };
}

export function meanAbsDiff(a: Uint8Array, b: Uint8Array): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d += Math.abs(a[i] - b[i]);
  return d / a.length;
}

/** A copy of the demo model, as `dir`/`name`, with its blendfarm.json / scheduler_config.json edited. */
export async function demoVariant(dir: string, name: string, edit: { meta?: (m: Record<string, any>) => void; config?: (c: Record<string, any>) => void }): Promise<string> {
  const target = join(dir, name);
  await cp(testModelDir('demo'), target, { recursive: true });
  for (const [file, fn] of [['blendfarm.json', edit.meta], [join('scheduler', 'scheduler_config.json'), edit.config]] as const) {
    if (!fn) continue;
    const json = JSON.parse(await readFile(join(target, file), 'utf8'));
    fn(json);
    await writeFile(join(target, file), JSON.stringify(json));
  }
  return target;
}
