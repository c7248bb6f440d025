// IEEE 754 binary16 <-> binary32 conversion. Node 20 has no Float16Array, and
// onnxruntime-node exchanges float16 tensors as Uint16Array bit patterns.
//
// Float -> half rounds to nearest, ties to even, with overflow to ±inf and
// gradual underflow to subnormals; NaN stays NaN (made quiet, upper payload
// bits kept). Half -> float is exact. Both directions work on the raw bits
// through a Float32Array/Uint32Array pair, with no lookup tables.

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);
const scratchI32 = new Int32Array(scratchF32.buffer);

/** Half bits for the float32 whose bit pattern is `bits` (an unsigned 32-bit integer). */
function halfFromFloatBits(bits: number): number {
  const sign = (bits >>> 16) & 0x8000;
  const abs = bits & 0x7fffffff;

  if (abs >= 0x7f800000) {
    if (abs === 0x7f800000) return sign | 0x7c00;
    // NaN: keep the top payload bits and force the quiet bit, so a payload that
    // lives only in the dropped low bits cannot turn the NaN into infinity.
    return sign | 0x7c00 | 0x0200 | ((abs >>> 13) & 0x03ff);
  }

  // 65520 = 65504 + half an ulp; it and anything above round to infinity.
  if (abs >= 0x477ff000) return sign | 0x7c00;

  if (abs >= 0x38800000) {
    // Normal half (|x| >= 2^-14): rebias the exponent from 127 to 15, then round
    // the 13 dropped mantissa bits. A carry out of the mantissa correctly bumps
    // the exponent (e.g. 2047.9 -> 2048).
    const rebased = abs - 0x38000000;
    return sign | ((rebased + 0x0fff + ((rebased >>> 13) & 1)) >>> 13);
  }

  // |x| <= 2^-25 rounds to zero (2^-25 itself is a tie and goes to the even 0).
  if (abs <= 0x33000000) return sign;

  // Subnormal half: the result counts units of 2^-24. The float's value is
  // mantissa * 2^(exp - 150), so the shift below is (126 - exp), in [14, 24].
  const exp = abs >>> 23;
  const mantissa = (abs & 0x007fffff) | 0x00800000;
  const shift = 126 - exp;
  let q = mantissa >>> shift;
  const rest = mantissa & ((1 << shift) - 1);
  const halfway = 1 << (shift - 1);
  if (rest > halfway || (rest === halfway && (q & 1) === 1)) q++;
  // q may reach 0x400, which is exactly the bit pattern of the smallest normal.
  return sign | q;
}

/**
 * Float32 bits for the half bit pattern `h`, as a signed 32-bit integer (kept
 * signed so V8 stays on its int32 fast path when storing into an Int32Array).
 */
function floatBitsFromHalf(h: number): number {
  const sign = (h & 0x8000) << 16;
  const rest = h & 0x7fff;
  // Normal halves: shift exponent and mantissa into place and rebias 15 -> 127.
  if (rest >= 0x0400 && rest < 0x7c00) return sign | ((rest << 13) + 0x38000000);
  if (rest >= 0x7c00) return sign | 0x7f800000 | ((rest & 0x03ff) << 13);
  if (rest === 0) return sign;
  // Subnormal half: normalise so the leading 1 becomes the implicit bit.
  let e = 113;
  let m = rest;
  while ((m & 0x0400) === 0) {
    m <<= 1;
    e--;
  }
  return sign | (e << 23) | ((m & 0x03ff) << 13);
}

/**
 * Float32 bits for the double `x`, rounded to odd: when `x` is not exactly a
 * float32, the last mantissa bit is forced to 1 on x's side. Rounding to odd
 * first and then to nearest-even at fewer than 22 bits gives the same result
 * as rounding `x` directly; plain round-to-nearest first could manufacture a
 * false tie (1 + 2^-11 + 2^-40 would become 1 + 2^-11 and then round to 1).
 */
function floatBitsRoundedToOdd(x: number): number {
  scratchF32[0] = x;
  const bits = scratchU32[0];
  const f = scratchF32[0];
  if (f === x || (bits & 1) === 1 || f !== f || f === Infinity || f === -Infinity) return bits;
  // Float bits are sign-magnitude, so +1 / -1 moves the magnitude up / down.
  return Math.abs(f) < Math.abs(x) ? bits + 1 : bits - 1;
}

/** Nearest half (ties to even) to the number `x`, as a 16-bit pattern. */
export function toHalf(x: number): number {
  return halfFromFloatBits(floatBitsRoundedToOdd(x));
}

/** The value of the half with bit pattern `h` (only the low 16 bits are read). */
export function fromHalf(h: number): number {
  scratchI32[0] = floatBitsFromHalf(h & 0xffff);
  return scratchF32[0];
}

/**
 * Converts each value to the nearest half; returns the bit patterns. Plain
 * numbers are rounded once, straight from their double value.
 */
export function float32ToFloat16(src: Float32Array | number[]): Uint16Array {
  const n = src.length;
  const out = new Uint16Array(n);
  if (src instanceof Float32Array) {
    // Float32Array offsets are always 4-byte aligned, so its bits can be viewed in place.
    const bits = new Uint32Array(src.buffer, src.byteOffset, n);
    for (let i = 0; i < n; i++) out[i] = halfFromFloatBits(bits[i]);
  } else {
    for (let i = 0; i < n; i++) out[i] = halfFromFloatBits(floatBitsRoundedToOdd(src[i]));
  }
  return out;
}

/** Expands half bit patterns to float32 values (exact; NaN payloads are kept). */
export function float16ToFloat32(src: Uint16Array): Float32Array {
  const n = src.length;
  const out = new Float32Array(n);
  const bits = new Int32Array(out.buffer);
  for (let i = 0; i < n; i++) bits[i] = floatBitsFromHalf(src[i]);
  return out;
}
