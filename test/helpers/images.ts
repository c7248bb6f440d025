import type { RawImage } from '../../engine/index.ts';

/**
 * A deterministic noisy RGB picture (an LCG per byte): every value differs from its neighbours, so a
 * misplaced pixel shows, and it compresses badly, so encoded sizes are meaningful and repeatable.
 */
export function noiseImage(width: number, height: number, seed = 1): RawImage {
  let s = seed >>> 0;
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < data.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    data[i] = s >>> 24;
  }
  return { data, width, height, channels: 3 };
}
