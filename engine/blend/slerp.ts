/**
 * Spherical interpolation of whole latent tensors, computed in float64. Latents are high-dimensional
 * Gaussians: a straight lerp between two of them passes through low-norm (washed-out) territory,
 * slerp keeps the norm.
 */
export function slerp(p0: Float32Array, p1: Float32Array, t: number, out = new Float32Array(p0.length)): Float32Array {
  if (p0.length !== p1.length) throw new RangeError(`slerp: length ${p0.length} vs ${p1.length}`);
  if (t === 0) {
    out.set(p0);
    return out;
  }
  if (t === 1) {
    out.set(p1);
    return out;
  }
  let dot = 0;
  let n0 = 0;
  let n1 = 0;
  for (let i = 0; i < p0.length; i++) {
    dot += p0[i] * p1[i];
    n0 += p0[i] * p0[i];
    n1 += p1[i] * p1[i];
  }
  const denom = Math.sqrt(n0) * Math.sqrt(n1);
  const cos = denom > 0 ? Math.max(-1 + 1e-7, Math.min(1 - 1e-7, dot / denom)) : 1;
  let a: number;
  let b: number;
  if (Math.abs(cos) > 0.9995) {
    // Nearly parallel: sin(theta) ~ 0 makes the slerp weights ill-conditioned; lerp is exact enough.
    a = 1 - t;
    b = t;
  } else {
    const theta = Math.acos(cos);
    const s = Math.sin(theta);
    a = Math.sin((1 - t) * theta) / s;
    b = Math.sin(t * theta) / s;
  }
  for (let i = 0; i < p0.length; i++) out[i] = a * p0[i] + b * p1[i];
  return out;
}
