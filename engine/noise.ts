/**
 * Seeded Gaussian noise of our own, so the same seed gives the same latents on every machine
 * and every Node version (Math.random is unseeded and engine-specific).
 *
 * Generator: xoshiro128** (32-bit integer ops only, exact in JS), seeded through splitmix32 from
 * the seed's low and high 32-bit halves. Normals: Box-Muller with both outputs used, in float64.
 */
import { InvalidRequestError } from './errors.ts';

/** Largest seed the engine accepts: seeds are 32-bit (drawSeed draws 32 bits; callers narrow from here, never widen). */
export const MAX_SEED = 0xffffffff;

/** The engine's one seed rule: a whole number from 0 to MAX_SEED (32 bits). */
function checkSeed(seed: number): void {
  if (!Number.isInteger(seed) || seed < 0 || seed > MAX_SEED) throw new InvalidRequestError(`seed must be a whole number from 0 to ${MAX_SEED}, got ${seed}`);
}

function splitmix32(state: number): [number, number] {
  state = (state + 0x9e3779b9) | 0;
  let z = state;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  z ^= z >>> 16;
  return [state, z >>> 0];
}

export class SeededRandom {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;
  private spare: number | null = null;

  constructor(seed: number) {
    checkSeed(seed);
    const lo = seed >>> 0;
    const hi = Math.floor(seed / 2 ** 32) >>> 0;
    let st = lo ^ Math.imul(hi, 0x27d4eb2d);
    const out: number[] = [];
    for (let i = 0; i < 4; i++) {
      const [next, z] = splitmix32(st);
      st = next;
      out.push(z);
    }
    [this.s0, this.s1, this.s2, this.s3] = out;
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1; // all-zero state never moves
  }

  /** Uniform 32-bit unsigned integer. */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Uniform in [0, 1) with 53 random bits. */
  nextFloat(): number {
    const a = this.nextUint32() >>> 5;
    const b = this.nextUint32() >>> 6;
    return (a * 67108864 + b) / 9007199254740992;
  }

  /** Standard normal sample. */
  nextGaussian(): number {
    if (this.spare !== null) {
      const s = this.spare;
      this.spare = null;
      return s;
    }
    let u = 0;
    while (u === 0) u = this.nextFloat();
    const v = this.nextFloat();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /** `count` standard normal samples as float32 (latent noise). */
  gaussianArray(count: number): Float32Array {
    const out = new Float32Array(count);
    for (let i = 0; i < count; i++) out[i] = this.nextGaussian();
    return out;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** Noise for one image's latents (C x H x W), a pure function of the seed. */
export function latentNoise(seed: number, count: number): Float32Array {
  return new SeededRandom(seed).gaussianArray(count);
}

/** A fresh random seed for when the user gave none (reported back so the result can be reproduced). */
export function drawSeed(): number {
  // crypto, not Math.random: seeds drawn by many workers at the same moment must not collide.
  // 32 bits, like the seeds users type into /blend (any seed up to MAX_SEED still works).
  const buf = new Uint32Array(1);
  globalThis.crypto.getRandomValues(buf);
  return buf[0];
}

/**
 * Seed of the noise a sampler injects after step `step` of the trajectory seeded `seed` (LCM): a
 * pure function of both, independent of the seed's latent-noise stream. Latent blending derives a
 * branch's injected noise from its two end seeds' step noises, so all branches share it.
 */
export function stepNoiseSeed(seed: number, step: number): number {
  checkSeed(seed);
  // The step comes from a scheduler, never from a request: a bad one is a programming error.
  if (!Number.isInteger(step) || step < 0) throw new RangeError(`step must be a whole number >= 0, got ${step}`);
  let [st, z] = splitmix32((seed >>> 0) ^ 0x6a09e667);
  [st, z] = splitmix32(st ^ z ^ (Math.floor(seed / 2 ** 32) >>> 0));
  [, z] = splitmix32(st ^ Math.imul(step + 1, 0x9e3779b1));
  return z >>> 0;
}

/** The standard-normal noise injected after step `step` of the trajectory seeded `seed` (`count` values). */
export function stepNoise(seed: number, step: number, count: number): Float32Array {
  return new SeededRandom(stepNoiseSeed(seed, step)).gaussianArray(count);
}
