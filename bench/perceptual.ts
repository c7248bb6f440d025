/**
 * npx tsx bench/perceptual.ts [--ep cpu|cuda] — time of the built-in perceptual metric for 512x512
 * pairs (what latent blending measures after every stage): the JavaScript version, and the same
 * computation as an ONNX graph (models/perceptual-graph.ts, OnnxBuiltinMetric) on --ep, one pair
 * per call and 8 pairs per call. Results: bench/results/perceptual.md.
 */
import { parseArgs } from 'node:util';
import { OnnxBuiltinMetric, builtinDistance, type RawImage } from '../engine/index.ts';
import { builtinPerceptualGraph } from '../models/perceptual-graph.ts';

const { values } = parseArgs({ options: { ep: { type: 'string', default: 'cpu' } } });
const ep = values.ep as 'cpu' | 'cuda';
if (ep !== 'cpu' && ep !== 'cuda') throw new Error(`--ep must be cpu or cuda, got ${values.ep}`);

const a: RawImage = { data: new Uint8Array(512 * 512 * 3).map((_, i) => (i * 7919) % 251), width: 512, height: 512, channels: 3 };
const b: RawImage = { ...a, data: a.data.map((v) => (v + 3) % 256) };

async function time(label: string, pairsPerCall: number, run: () => unknown, repeats = 50): Promise<void> {
  for (let i = 0; i < 5; i++) await run();
  const times: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const t0 = performance.now();
    await run();
    times.push((performance.now() - t0) / pairsPerCall);
  }
  times.sort((x, y) => x - y);
  console.log(`${label}: min ${times[0].toFixed(2)} ms, median ${times[repeats >> 1].toFixed(2)} ms per 512x512 pair (${repeats} runs)`);
}

await time('built-in metric, JavaScript', 1, () => builtinDistance(a, b));
const metric = await OnnxBuiltinMetric.load(builtinPerceptualGraph(), { ep });
await time(`built-in metric, ONNX on ${ep}, 1 pair per call`, 1, () => metric.distance(a, b));
const eight = Array.from({ length: 8 }, () => [a, b] as const);
await time(`built-in metric, ONNX on ${ep}, 8 pairs per call`, 8, () => metric.distances(eight), 20);
await metric.release();
