/**
 * npx tsx bench/perceptual.ts — time of the built-in perceptual metric for one 512x512 pair
 * (what latent blending measures after every branch). Results: bench/results/perceptual.md.
 */
import { builtinDistance } from '../engine/blend/perceptual.ts';

const a = { data: new Uint8Array(512 * 512 * 3).map((_, i) => (i * 7919) % 251), width: 512, height: 512, channels: 3 as const };
const b = { ...a, data: a.data.map((v) => (v + 3) % 256) };
for (let i = 0; i < 20; i++) builtinDistance(a, b);
const times: number[] = [];
for (let i = 0; i < 100; i++) {
  const t0 = performance.now();
  builtinDistance(a, b);
  times.push(performance.now() - t0);
}
times.sort((x, y) => x - y);
console.log(`built-in metric, 512x512 pair: min ${times[0].toFixed(2)} ms, median ${times[50].toFixed(2)} ms (100 runs)`);
