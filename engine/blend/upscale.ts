/**
 * Upscaling a finished transition: every keyframe is enlarged (Lanczos), encoded back to latents,
 * partly re-noised and denoised again at the new size ("hires fix" / img2img), with its own
 * conditioning (the prompts mixed at its fraction) so the model redraws detail that the small render
 * could not hold. All keyframes share one noise seed and one strength, so neighbouring frames stay
 * as close as they were: refinement does not introduce flicker. Keyframes are refined in batches.
 *
 * The reference implementation used Stable Diffusion's x4 upscaler model as a second latent-blending
 * pass; this works with any pipeline that has a VAE encoder and needs no extra model.
 */
import type { StableDiffusionPipeline } from '../pipeline/stable-diffusion.ts';
import { InvalidRequestError } from '../errors.ts';
import { lerpEmbedding } from '../pipeline/text-encoder.ts';
import { sharpOf, type RawImage } from '../image.ts';
import { latentNoise } from '../noise.ts';
import { dampedGuidance } from './transition.ts';
import { denoiseLockstep, throwIfCancelled } from '../pipeline/denoise.ts';
import { img2imgStartIndex } from './img2img.ts';

export interface UpscaleOptions {
  /** Linear factor: 2 gives 4x the pixels. */
  factor?: number;
  /** How much of the diffusion to redo, 0..1 (0.3: keep composition, redraw detail). */
  strength?: number;
  seed: number;
  steps?: number;
  guidance?: number;
  negativePrompt?: string;
  signal?: AbortSignal;
  onFrames?: (done: number, total: number) => void;
}

export interface UpscaleSegment {
  promptA: string;
  promptB: string;
  keyframes: RawImage[];
  fracts: number[];
}

// img2img's start step: one rule, shared with picture endpoints (img2img.ts).
export { img2imgStartIndex } from './img2img.ts';

async function enlarge(img: RawImage, width: number, height: number): Promise<RawImage> {
  const buf = await (await sharpOf(img.data, { raw: { width: img.width, height: img.height, channels: 3 } }))
    .resize(width, height, { kernel: 'lanczos3', fit: 'fill' })
    .raw()
    .toBuffer();
  return { data: new Uint8Array(buf.buffer, buf.byteOffset, buf.length), width, height, channels: 3 };
}

export async function upscaleSegments<S extends UpscaleSegment>(pipe: StableDiffusionPipeline, segments: S[], opts: UpscaleOptions): Promise<S[]> {
  const encoder = pipe.vaeEncoder;
  if (!encoder) throw new InvalidRequestError(`the model ${pipe.folder.name} has no vae_encoder/model.onnx, which upscaling needs`);
  const factor = opts.factor ?? 2;
  const strength = opts.strength ?? 0.35;
  if (!(strength > 0 && strength <= 1)) throw new InvalidRequestError(`upscale strength must be in (0, 1], got ${strength}; 0.3 keeps the composition and redraws detail`);
  if (!(Number.isFinite(factor) && factor > 0)) throw new InvalidRequestError(`upscale factor must be a positive number, got ${factor}; 2 doubles each side`);
  const first = segments[0]?.keyframes[0];
  if (!first) throw new InvalidRequestError('give at least one segment with keyframes to upscale');
  // The new size, rounded to the model's own VAE scale factor (pixels per latent cell).
  const f = pipe.vaeScaleFactor;
  const width = Math.round((first.width * factor) / f) * f;
  const height = Math.round((first.height * factor) / f) * f;
  const [h, w] = pipe.latentSize(width, height);
  const r = pipe.resolve({ prompt: segments[0].promptA, steps: opts.steps, guidance: opts.guidance, width, height, seed: opts.seed });
  const neg = opts.negativePrompt ?? '';
  const per = pipe.latentChannels * h * w;
  const noise = latentNoise(opts.seed, per);
  const total = segments.reduce((a, s) => a + s.keyframes.length, 0);
  let done = 0;
  const out: S[] = [];
  // A keyframe shared by two segments (a movie's join) is refined once and reused.
  const refined = new Map<RawImage, RawImage>();

  for (const seg of segments) {
    const { cond: cA, uncond: uA } = await pipe.encodePrompt(seg.promptA, neg);
    const { cond: cB, uncond: uB } = await pipe.encodePrompt(seg.promptB, neg);
    const todo = seg.keyframes.map((img, k) => ({ img, f: seg.fracts[k] })).filter((x) => !refined.has(x.img));
    if (todo.length > 0) {
      // One shared seed and start step for all keyframes keeps neighbours as alike as before.
      const schedulers = todo.map(() => pipe.scheduler(r.steps, r.scheduler, opts.seed));
      const timesteps = schedulers[0].timesteps;
      const first = img2imgStartIndex(r.steps, strength, timesteps.length);
      for (const s of schedulers) s.setBeginIndex(first);
      const xs: Float32Array[] = [];
      for (const [k, item] of todo.entries()) {
        const { latent } = await encoder.encode(await enlarge(item.img, width, height));
        xs.push(schedulers[k].addNoise(latent, noise, timesteps[first]) as Float32Array);
      }
      const final = await denoiseLockstep({
        unet: pipe.unet,
        latentSize: [h, w],
        schedulers,
        xs,
        from: first,
        cond: todo.map((b) => lerpEmbedding(cA, cB, b.f)),
        uncond: todo.map((b) => lerpEmbedding(uA, uB, b.f)),
        guidance: todo.map((b) => dampedGuidance(r.guidance, b.f, 0.5)),
        signal: opts.signal,
      });
      for (const [k, item] of todo.entries()) {
        throwIfCancelled(opts.signal);
        refined.set(item.img, await pipe.vae.decode(final[k], h, w));
        opts.onFrames?.(++done, total);
      }
    }
    out.push({ ...seg, keyframes: seg.keyframes.map((img) => refined.get(img)!) });
  }
  return out;
}
