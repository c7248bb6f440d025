/**
 * Reference fixtures made by Python (test/fixtures/tiny-sd-optimum, tiny-sd-variation): a
 * reference.json whose `arrays` index float32 runs of one reference.bin, and the comparisons the
 * tests make against them.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';

export interface ReferenceArray {
  data: Float32Array;
  shape: number[];
}

/** reference.json (as `meta`) and a reader of its named arrays from reference.bin. */
export function readReference(dir: string): { meta: any; ref: (name: string) => ReferenceArray } {
  const meta = JSON.parse(readFileSync(join(dir, 'reference.json'), 'utf8'));
  const bin = readFileSync(join(dir, 'reference.bin'));
  const floats = new Float32Array(bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength));
  const ref = (name: string): ReferenceArray => {
    const a = meta.arrays[name];
    if (!a) throw new Error(`no array ${name} in ${dir}`);
    return { data: floats.subarray(a.offset, a.offset + a.length), shape: a.shape };
  };
  return { meta, ref };
}

/** Largest |a - b| (the lengths must agree). */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Largest |a - b| relative to the reference's own scale (max |b|). */
export function relDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let scale = 0;
  for (let i = 0; i < b.length; i++) scale = Math.max(scale, Math.abs(b[i]));
  return maxAbsDiff(a, b) / scale;
}
