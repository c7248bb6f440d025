// float16 conversion is checked three ways: exhaustively over all half bit
// patterns, against a slow reference that picks the nearest half by search
// (straight from the IEEE 754 definition), and against onnxruntime's own Cast.

import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { float16ToFloat32, float32ToFloat16, fromHalf, toHalf } from '../../../engine/tensor/fp16.ts';
import { GraphBuilder } from '../../../models/onnx/index.ts';

const isHalfNaN = (h: number): boolean => (h & 0x7c00) === 0x7c00 && (h & 0x03ff) !== 0;

/** Value of a half bit pattern computed from the definition, independent of the code under test. */
function halfValueByDefinition(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  if (exp === 0) return sign * frac * 2 ** -24;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

// Non-negative finite halves in increasing order (bit pattern i has value ascending with i),
// plus 2^16 standing in for infinity: IEEE rounds to infinity exactly when the
// unbounded-exponent result would be 2^16 or more, and 0x7c00 is even, as 2^16's "mantissa" is.
const positiveValues: number[] = [];
for (let h = 0; h <= 0x7c00; h++) positiveValues.push(h === 0x7c00 ? 65536 : halfValueByDefinition(h));

/** Slow reference: nearest half by binary search, ties to the even bit pattern. */
function referenceToHalf(x: number): number {
  if (Number.isNaN(x)) return 0x7e00;
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a >= 65536) return sign | 0x7c00;
  let lo = 0;
  let hi = positiveValues.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (positiveValues[mid] <= a) lo = mid;
    else hi = mid;
  }
  const dLo = a - positiveValues[lo];
  const dHi = positiveValues[hi] - a;
  const pick = dLo < dHi ? lo : dHi < dLo ? hi : lo % 2 === 0 ? lo : hi;
  return sign | pick;
}

/** Deterministic 32-bit generator (xorshift). */
function xorshift(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
}

describe('float16 conversion', () => {
  it('round-trips all 65536 half bit patterns through float32', () => {
    const all = new Uint16Array(65536);
    for (let i = 0; i < all.length; i++) all[i] = i;
    const floats = float16ToFloat32(all);
    const back = float32ToFloat16(floats);
    for (let h = 0; h < 65536; h++) {
      const expected = halfValueByDefinition(h);
      if (isHalfNaN(h)) {
        if (!Number.isNaN(floats[h]) || !isHalfNaN(back[h])) throw new Error(`NaN 0x${h.toString(16)} lost`);
        continue;
      }
      if (!Object.is(floats[h], expected)) throw new Error(`0x${h.toString(16)} -> ${floats[h]}, expected ${expected}`);
      if (back[h] !== h) throw new Error(`0x${h.toString(16)} came back as 0x${back[h].toString(16)}`);
      // The scalar versions must agree with the array versions.
      if (!Object.is(fromHalf(h), expected) || toHalf(expected) !== h) throw new Error(`scalar mismatch at 0x${h.toString(16)}`);
    }
  });

  it('converts known values', () => {
    const cases: [number, number][] = [
      [1, 0x3c00],
      [-2, 0xc000],
      [0.1, 0x2e66],
      [65504, 0x7bff],
      [65519, 0x7bff],
      [65520, 0x7c00],
      [-65520, 0xfc00],
      [1e6, 0x7c00],
      [Infinity, 0x7c00],
      [-Infinity, 0xfc00],
      [2 ** -14, 0x0400],
      [2 ** -24, 0x0001],
      [5.96e-8, 0x0001],
      [2 ** -25, 0x0000], // exactly half the smallest subnormal: tie to even (zero)
      [2 ** -25 * 1.0000001, 0x0001], // just above the tie rounds up
      [3 * 2 ** -25, 0x0002], // tie between subnormals 1 and 2 goes to the even one
      [5 * 2 ** -25, 0x0002], // tie between subnormals 2 and 3 goes to the even one
      [1e-8, 0x0000],
      [-1e-8, 0x8000],
      [0, 0x0000],
      [-0, 0x8000],
      [1 + 2 ** -11, 0x3c00], // tie: 1 is even
      [1 + 3 * 2 ** -11, 0x3c02], // tie: 1 + 2^-9 is even
      [1 + 2 ** -11 + 2 ** -20, 0x3c01], // just above a tie rounds up
      [2047.5, 0x6800], // tie between 2047 (odd) and 2048: the carry moves into the exponent
      [2 ** -14 - 2 ** -25, 0x0400], // largest subnormal + half ulp carries into the smallest normal
    ];
    for (const [value, bits] of cases) {
      expect({ value, bits: toHalf(value) }).toEqual({ value, bits });
      expect(float32ToFloat16([value])[0]).toBe(bits);
      expect(float32ToFloat16(new Float32Array([value]))[0]).toBe(bits);
    }
    expect(fromHalf(0x3555)).toBeCloseTo(1 / 3, 3);

    // Doubles are rounded once: a value just past a tie must not be rounded to
    // the float32 tie first and then to even.
    const justAbove = 1 + 2 ** -11 + 2 ** -40;
    const justBelow = 1 + 3 * 2 ** -11 - 2 ** -40;
    expect(toHalf(justAbove)).toBe(0x3c01);
    expect(toHalf(-justAbove)).toBe(0xbc01);
    expect(toHalf(justBelow)).toBe(0x3c01);
    expect(Array.from(float32ToFloat16([justAbove, justBelow, 2 ** -25 + 2 ** -60]))).toEqual([0x3c01, 0x3c01, 0x0001]);
    // A Float32Array already holds the float32 tie, so ties-to-even applies to it.
    expect(float32ToFloat16(new Float32Array([justAbove]))[0]).toBe(0x3c00);
    expect(fromHalf(0x0001)).toBe(2 ** -24);
    expect(Object.is(fromHalf(0x8000), -0)).toBe(true);
    expect(fromHalf(0xfc00)).toBe(-Infinity);
  });

  it('keeps NaN as a quiet NaN in both directions', () => {
    for (const bits of [0x7fc00000, 0xffc00000, 0x7f800001, 0x7fbfffff, 0xff800001]) {
      const h = float32ToFloat16(new Float32Array(new Uint32Array([bits]).buffer))[0];
      expect(isHalfNaN(h)).toBe(true);
      expect(h & 0x0200).toBe(0x0200);
      expect(h & 0x8000).toBe(bits >>> 31 ? 0x8000 : 0);
    }
    expect(isHalfNaN(toHalf(NaN))).toBe(true);
    expect(Number.isNaN(fromHalf(0x7d01))).toBe(true);
    expect(Number.isNaN(float16ToFloat32(Uint16Array.from([0xfe00]))[0])).toBe(true);
  });

  it('matches a nearest-by-search reference on random floats', () => {
    const next = xorshift(12345);
    const n = 300_000;
    const bits = new Uint32Array(n);
    for (let i = 0; i < n; i++) {
      const r = next();
      const kind = i % 4;
      if (kind === 0) {
        bits[i] = r; // anywhere in float32, mostly far outside half range
      } else if (kind === 1) {
        // Exponents from below the subnormal range to above the overflow point.
        const exp = 98 + (next() % 48);
        bits[i] = ((r & 0x80000000) | (exp << 23) | (r & 0x7fffff)) >>> 0;
      } else if (kind === 2) {
        // Exact ties and their neighbours: the low 13 bits near 0x1000.
        const exp = 113 + (next() % 30);
        const low = 0x1000 + ((next() % 3) - 1);
        bits[i] = ((r & 0x80000000) | (exp << 23) | (r & 0x7fe000) | low) >>> 0;
      } else {
        // Ties within the subnormal range.
        const exp = 102 + (next() % 11);
        const shift = 126 - exp;
        const mantissa = ((r & 0x7fffff) >> shift << shift) | (1 << (shift - 1));
        bits[i] = ((r & 0x80000000) | (exp << 23) | (mantissa & 0x7fffff)) >>> 0;
      }
    }
    const floats = new Float32Array(bits.buffer);
    const halves = float32ToFloat16(floats);
    for (let i = 0; i < n; i++) {
      const x = floats[i];
      const expected = referenceToHalf(x);
      const got = halves[i];
      if (Number.isNaN(x) ? !isHalfNaN(got) : got !== expected) {
        throw new Error(`${x} (0x${bits[i].toString(16)}): got 0x${got.toString(16)}, expected 0x${expected.toString(16)}`);
      }
    }
  });

  it('matches the reference on doubles near ties (number[] input)', () => {
    const next = xorshift(999);
    const n = 100_000;
    const values: number[] = [];
    for (let i = 0; i < n; i++) {
      // A random finite half, moved by up to one half ulp plus a tiny double-only offset.
      const h = next() % 0x7c00;
      const v = positiveValues[h];
      const ulp = positiveValues[h + 1] - v;
      const sign = next() & 1 ? -1 : 1;
      const offset = ulp / 2 + (next() % 3 - 1) * ulp * 2 ** -30;
      values.push(sign * (v + offset));
    }
    const halves = float32ToFloat16(values);
    for (let i = 0; i < n; i++) {
      const expected = referenceToHalf(values[i]);
      if (halves[i] !== expected || toHalf(values[i]) !== expected) {
        throw new Error(`${values[i]}: got 0x${halves[i].toString(16)}, expected 0x${expected.toString(16)}`);
      }
    }
  });

  it('agrees bit-for-bit with onnxruntime Cast(float -> float16)', async () => {
    const g = new GraphBuilder('cast16');
    const x = g.input('x', 'float32', ['n']);
    g.output(g.op('Cast', [x], { to: 10 }), 'y', 'float16', ['n']);
    const session = await ort.InferenceSession.create(g.toModel().model);

    const next = xorshift(777);
    const n = 100_000;
    const bits = new Uint32Array(n);
    for (let i = 0; i < n; i++) {
      const r = next();
      const exp = i % 2 ? 100 + (next() % 45) : (r >>> 23) & 0xff;
      bits[i] = ((r & 0x807fffff) | (exp << 23)) >>> 0;
    }
    const special = [0, -0, 65504, 65519, 65520, -65520, 2 ** -24, 2 ** -25, 3 * 2 ** -25, 1 + 2 ** -11, Infinity, -Infinity, NaN];
    const floats = new Float32Array(n + special.length);
    floats.set(new Float32Array(bits.buffer));
    floats.set(special, n);

    const out = (await session.run({ x: new ort.Tensor('float32', floats, [floats.length]) })).y as ort.Tensor;
    await session.release();
    const theirs = out.data as Uint16Array;
    const ours = float32ToFloat16(floats);
    let compared = 0;
    for (let i = 0; i < floats.length; i++) {
      if (Number.isNaN(floats[i])) {
        expect(isHalfNaN(theirs[i]) && isHalfNaN(ours[i])).toBe(true);
        continue;
      }
      if (theirs[i] !== ours[i]) {
        throw new Error(`${floats[i]} (0x${floatBitsHex(floats[i])}): onnxruntime 0x${theirs[i].toString(16)}, ours 0x${ours[i].toString(16)}`);
      }
      compared++;
    }
    expect(compared).toBeGreaterThan(n - 1000);
  });
});

function floatBitsHex(x: number): string {
  return new Uint32Array(new Float32Array([x]).buffer)[0].toString(16);
}
