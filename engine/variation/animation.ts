/**
 * Variation animations (zzbuzzard/sd-variant-anim, generate_lerp.py): every variation is a variant
 * of the previous frame. Between generations the image embedding is nudged by CLIP guidance
 * (clip-guidance.ts); `intermediate` frames lerp embedding and starting noise from one variation to
 * the next; the noise moves only `noiseShift` of the way to fresh noise per variation
 * (1 = independent noise, 0 = the same noise throughout), renormalised to stay standard normal.
 *
 * Frames: frame 0 is a variation of the user's picture; then for each of `variations`
 * generations, `intermediate` frames whose last is the new variation (1 + variations x intermediate).
 */
import type { RawImage } from '../image.ts';
import { drawSeed, latentNoise, stepNoise } from '../noise.ts';
import { InvalidRequestError } from '../errors.ts';
import { throwIfCancelled } from '../pipeline/denoise.ts';
import { clipGuidanceDefaults, clipGuidanceShift, cosine, type ClipGuidanceOptions } from './clip-guidance.ts';
import type { ImageVariationPipeline } from './pipeline.ts';

export interface VariationOptions {
  /**
   * The start picture at any size (decodeImage): the model's CLIP processor resizes and crops it,
   * as diffusers' pipeline does with the picture it is given (the render size does not crop it).
   */
  image: RawImage;
  /** Generations after the first variation (the source's -n). Default 10. */
  variations?: number;
  /** Frames per generation, the variation included (--intermediate). Default 8; 1 = no in-between frames. */
  intermediate?: number;
  /** How far the noise moves to fresh noise per generation (--noise-shift-prop). Default 0.4. */
  noiseShift?: number;
  /** Denoising steps (-s). Default: the model's (20). */
  steps?: number;
  /** Classifier-free guidance (-gs). Default: the model's (4). */
  guidance?: number;
  positivePrompts?: string[];
  negativePrompts?: string[];
  /** Partial CLIP guidance settings (-cp, -cn, --opt-repeats); defaults 30, 30, 10. */
  clip?: Partial<ClipGuidanceOptions>;
  width?: number;
  height?: number;
  seed?: number;
  signal?: AbortSignal;
  onFrames?: (done: number, total: number, preview?: RawImage) => void;
}

export interface VariationFrameInfo {
  /** Generation the frame belongs to (0 = first variation). */
  generation: number;
  /** Whether it is a variation itself (the others are in-between frames). */
  variation: boolean;
  /** Cosine similarity of the frame's conditioning embedding with each positive / negative prompt (mean). */
  positiveSimilarity: number | null;
  negativeSimilarity: number | null;
}

export interface VariationResult {
  frames: RawImage[];
  info: VariationFrameInfo[];
  seed: number;
  steps: number;
  guidance: number;
  width: number;
  height: number;
  /** Conditioning embedding of each variation (after CLIP guidance). */
  embeddings: Float32Array[];
  seconds: number;
}

/** The source's defaults (generate_lerp.py / util.py). */
export const variationDefaults = {
  variations: 10,
  intermediate: 8,
  noiseShift: 0.4,
  ...clipGuidanceDefaults,
} as const;

/** Most frames one animation may render (the farm may narrow this). */
export const MAX_VARIATION_FRAMES = 600;

export async function renderVariations(pipe: ImageVariationPipeline, opts: VariationOptions): Promise<VariationResult> {
  const started = performance.now();
  const r = pipe.resolve(opts);
  const variations = opts.variations ?? variationDefaults.variations;
  const intermediate = opts.intermediate ?? variationDefaults.intermediate;
  const noiseShift = opts.noiseShift ?? variationDefaults.noiseShift;
  if (!Number.isInteger(variations) || variations < 1) throw new InvalidRequestError(`variations must be a whole number of at least 1, got ${variations}`);
  if (!Number.isInteger(intermediate) || intermediate < 1 || intermediate > 60) throw new InvalidRequestError(`intermediate must be a whole number from 1 to 60 (frames per variation), got ${intermediate}`);
  const total = 1 + variations * intermediate;
  if (total > MAX_VARIATION_FRAMES) throw new InvalidRequestError(`${variations} variations x ${intermediate} frames each is ${total} frames, more than ${MAX_VARIATION_FRAMES}; ask for fewer`);
  if (!(noiseShift >= 0 && noiseShift <= 1)) throw new InvalidRequestError(`noise shift must be between 0 (same noise) and 1 (fresh noise per variation), got ${noiseShift}`);
  const clip: ClipGuidanceOptions = {
    positiveScale: opts.clip?.positiveScale ?? variationDefaults.positiveScale,
    negativeScale: opts.clip?.negativeScale ?? variationDefaults.negativeScale,
    repeats: opts.clip?.repeats ?? variationDefaults.repeats,
  };
  if (!(clip.positiveScale >= 0) || !(clip.negativeScale >= 0)) throw new InvalidRequestError('CLIP guidance scales must be 0 or more');
  if (!Number.isInteger(clip.repeats) || clip.repeats < 0 || clip.repeats > 100) throw new InvalidRequestError(`CLIP guidance repeats must be a whole number from 0 to 100, got ${clip.repeats}`);
  const seed = opts.seed ?? drawSeed();
  const positivePrompts = opts.positivePrompts ?? [...variationDefaults.positivePrompts];
  const negativePrompts = opts.negativePrompts ?? [...variationDefaults.negativePrompts];
  const pos = await Promise.all(positivePrompts.map((p) => pipe.encodeText(p)));
  const neg = await Promise.all(negativePrompts.map((p) => pipe.encodeText(p)));
  const guide = async (img: RawImage) => clipGuidanceShift(await pipe.encodeImage(img), pos, neg, clip);
  const mean = (e: Float32Array, ts: Float32Array[]) => (ts.length ? ts.reduce((a, t) => a + cosine(e, t), 0) / ts.length : null);

  const [h, w] = pipe.latentSize(r.width, r.height);
  const count = pipe.latentChannels * h * w;
  const render = { ...r, seed, signal: opts.signal };
  const frames: RawImage[] = [];
  const info: VariationFrameInfo[] = [];
  const embeddings: Float32Array[] = [];

  let emb = await guide(opts.image);
  let noise = latentNoise(seed, count);
  const [first] = await pipe.render([emb], [noise], render);
  frames.push(first);
  embeddings.push(emb);
  info.push({ generation: 0, variation: true, positiveSimilarity: mean(emb, pos), negativeSimilarity: mean(emb, neg) });
  opts.onFrames?.(frames.length, total, first);

  for (let g = 1; g <= variations; g++) {
    throwIfCancelled(opts.signal);
    const goal = await guide(frames[frames.length - 1]);
    const fresh = stepNoise(seed, g, count);
    const embs: Float32Array[] = [];
    const noises: Float32Array[] = [];
    for (let k = 1; k <= intermediate; k++) {
      const t = k / intermediate;
      embs.push(Float32Array.from(emb, (v, i) => v + (goal[i] - v) * t));
      const tn = t * noiseShift;
      const norm = Math.sqrt(tn * tn + (1 - tn) * (1 - tn));
      noises.push(Float32Array.from(noise, (v, i) => (v + (fresh[i] - v) * tn) / norm));
    }
    const images = await pipe.render(embs, noises, render);
    images.forEach((img, k) => {
      frames.push(img);
      info.push({ generation: g, variation: k === intermediate - 1, positiveSimilarity: mean(embs[k], pos), negativeSimilarity: mean(embs[k], neg) });
    });
    emb = goal;
    noise = noises[noises.length - 1];
    embeddings.push(goal);
    opts.onFrames?.(frames.length, total, frames[frames.length - 1]);
  }
  return { frames, info, seed, steps: r.steps, guidance: r.guidance, width: r.width, height: r.height, embeddings, seconds: (performance.now() - started) / 1000 };
}
