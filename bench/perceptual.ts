/**
 * npx tsx bench/perceptual.ts [--ep cpu|cuda] [--out DIR] — time of the built-in perceptual metric
 * for 512x512 pairs (what latent blending measures after every stage): the JavaScript version, and
 * the same computation as an ONNX graph (models/perceptual-graph.ts, OnnxBuiltinMetric) on --ep,
 * one pair per call and 8 pairs per call. First it checks that the graph on --ep gives the
 * JavaScript values (largest relative difference over pairs at 512x512, 768x512 and an odd size
 * with partial chroma blocks; exit code 1 above 1e-4). With --out, writes perceptual.json there.
 * scripts/gpu-run.sh runs the bundle (dist/bench-perceptual.mjs) on CUDA. Results:
 * bench/results/perceptual.md.
 */
import { parseArgs } from 'node:util';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { OnnxBuiltinMetric, builtinDistance, type RawImage } from '../engine/index.ts';
import { builtinPerceptualGraph } from '../models/perceptual-graph.ts';
import { runParsed } from '../apps/cli-kit.ts';
import { GPU_EPS, gpuEp } from './gpu-common.ts';

const DEFAULT_EP = 'cpu';
/** The largest relative difference between the ONNX graph and the JavaScript metric that passes. */
const MAX_REL_DIFF = 1e-4;

const USAGE = `Usage: npx tsx bench/perceptual.ts [--ep ${GPU_EPS.join('|')}] [--out DIR]

Time of the built-in perceptual metric per 512x512 pair: the JavaScript version, and the same
computation as an ONNX graph on --ep, 1 and 8 pairs per call, after checking that the graph gives the
JavaScript values (exit status 1 when the largest relative difference is above ${MAX_REL_DIFF}).
Prints the times on stdout (recorded results: bench/results/perceptual.md).
  --ep NAME   execution provider: ${GPU_EPS.join(', ')} (default ${DEFAULT_EP})
  --out DIR   also write perceptual.json there (default: none)
`;

/** The command line, checked (a bad one is a UsageError: one line, exit 2); undefined for --help. */
function options(argv: string[]) {
  const { values } = parseArgs({ args: argv, options: { help: { type: 'boolean', short: 'h' }, ep: { type: 'string', default: DEFAULT_EP }, out: { type: 'string' } } });
  if (values.help) return undefined;
  return { ep: gpuEp(values.ep), out: values.out };
}

const a: RawImage = { data: new Uint8Array(512 * 512 * 3).map((_, i) => (i * 7919) % 251), width: 512, height: 512, channels: 3 };
const b: RawImage = { ...a, data: a.data.map((v) => (v + 3) % 256) };

/** A frame with texture at every scale, different for each seed. */
function frame(w: number, h: number, seed: number): RawImage {
  const data = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++)
      for (let c = 0; c < 3; c++) data[(y * w + x) * 3 + c] = Math.round(127 + 90 * Math.sin(x * 0.07 * (c + 1) + seed) * Math.cos(y * 0.05 + seed * c) + 30 * Math.sin((x * 13 + y * 7 + seed) * 1.7));
  return { data, width: w, height: h, channels: 3 };
}

const report: { ep: string; date: string; maxRelDiff?: number; ms: Record<string, { min: number; median: number }> } = { ep: '', date: '', ms: {} };

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
  report.ms[label] = { min: +times[0].toFixed(3), median: +times[repeats >> 1].toFixed(3) };
}

async function bench(args: NonNullable<ReturnType<typeof options>>): Promise<number> {
  const { ep } = args;
  Object.assign(report, { ep, date: new Date().toISOString() });
  const metric = await OnnxBuiltinMetric.load(builtinPerceptualGraph(), { ep });
  let worst = 0;
  for (const [w, h] of [[512, 512], [768, 512], [97, 131]]) {
    const pairs = [1, 2, 3].map((s) => [frame(w, h, 0), frame(w, h, s)] as const);
    const got = await metric.distances(pairs);
    pairs.forEach(([x, y], i) => {
      const want = builtinDistance(x, y);
      worst = Math.max(worst, Math.abs(got[i] - want) / want);
    });
  }
  report.maxRelDiff = +worst.toExponential(2);
  console.log(`ONNX graph on ${ep} vs JavaScript: largest relative difference ${worst.toExponential(2)} (limit ${MAX_REL_DIFF})`);
  await time('built-in metric, JavaScript', 1, () => builtinDistance(a, b));
  await time(`built-in metric, ONNX on ${ep}, 1 pair per call`, 1, () => metric.distance(a, b));
  const eight = Array.from({ length: 8 }, () => [a, b] as const);
  await time(`built-in metric, ONNX on ${ep}, 8 pairs per call`, 8, () => metric.distances(eight), 20);
  await metric.release();
  if (args.out) {
    await mkdir(args.out, { recursive: true });
    await writeFile(join(args.out, 'perceptual.json'), JSON.stringify(report, null, 2) + '\n');
  }
  return worst <= MAX_REL_DIFF ? 0 : 1;
}

await runParsed(USAGE, options, bench);
