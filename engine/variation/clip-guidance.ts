/**
 * CLIP guidance on an image embedding, as zzbuzzard/sd-variant-anim does between generations:
 * gradient steps on the embedding e itself for the loss
 *
 *     L(e) = s_neg * mean_j cos(e, n_j) - s_pos * mean_i cos(e, p_i)
 *
 * (p_i, n_j: unit CLIP text embeddings of the positive / negative prompts, in the same space as the
 * image embedding), e <- e - grad L(e), `repeats` times. The gradient is closed-form:
 * d cos(e, t) / de = (t - cos(e, t) * e_hat) / |e| for a unit t, so no autograd is needed.
 */
import { InvalidRequestError } from '../errors.ts';

export interface ClipGuidanceOptions {
  /** Weight of moving towards the positive prompts (the source's --clip-positive-scale). */
  positiveScale: number;
  /** Weight of moving away from the negative prompts (--clip-negative-scale). */
  negativeScale: number;
  /** Gradient steps per generation (--opt-repeats); 0 turns guidance off. */
  repeats: number;
}

/** The source's generic defaults: towards "high quality", away from "simple texture". */
export const clipGuidanceDefaults = {
  positiveScale: 30,
  negativeScale: 30,
  repeats: 10,
  positivePrompts: ['realistic HD photograph', 'professional photograph', '3D realistic materials', 'complex image', 'intricate detailed'],
  negativePrompts: [
    'simple texture',
    'abstract image',
    'repeating pattern',
    'abstract shapes',
    'cartoon',
    'human face',
    'oversaturated',
    'blurry photograph',
    'smooth low contrast',
  ],
} as const;

export function unit(v: Float32Array): Float32Array {
  let n = 0;
  for (const x of v) n += x * x;
  n = Math.sqrt(n);
  if (!(n > 0)) throw new InvalidRequestError('a CLIP guidance prompt has an all-zero text embedding (e.g. only punctuation); give it some words');
  return Float32Array.from(v, (x) => x / n);
}

export function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += a[i] * b[i];
    aa += a[i] * a[i];
    bb += b[i] * b[i];
  }
  return ab / Math.sqrt(aa * bb);
}

/** The embedding after `repeats` gradient steps (a new array; `embedding` is left as it is). */
export function clipGuidanceShift(embedding: Float32Array, positives: Float32Array[], negatives: Float32Array[], opts: ClipGuidanceOptions): Float32Array {
  const d = embedding.length;
  const e = Float64Array.from(embedding);
  const pos = positives.map(unit);
  const neg = negatives.map(unit);
  for (const t of [...pos, ...neg]) {
    if (t.length !== d) throw new InvalidRequestError(`CLIP guidance text embeddings are ${t.length} wide but the image embedding is ${d}; the text encoder must be the CLIP model's text tower with projection`);
  }
  const terms: Array<{ t: Float32Array; w: number }> = [
    ...pos.map((t) => ({ t, w: -opts.positiveScale / pos.length })),
    ...neg.map((t) => ({ t, w: opts.negativeScale / neg.length })),
  ];
  if (terms.length === 0) return Float32Array.from(embedding);
  const grad = new Float64Array(d);
  for (let r = 0; r < opts.repeats; r++) {
    let norm = 0;
    for (const x of e) norm += x * x;
    norm = Math.sqrt(norm);
    if (!(norm > 0)) break;
    grad.fill(0);
    for (const { t, w } of terms) {
      let c = 0;
      for (let i = 0; i < d; i++) c += t[i] * e[i];
      c /= norm;
      for (let i = 0; i < d; i++) grad[i] += (w * (t[i] - (c * e[i]) / norm)) / norm;
    }
    for (let i = 0; i < d; i++) e[i] -= grad[i];
  }
  return Float32Array.from(e);
}
