/**
 * node dist/gpu-ort-vs-builder.mjs [--ep cuda] [--shape check|tiny] [--batches 2,8,16] [--latent 64]
 *   [--repeats 10] [--device 0] [--out DIR] [--work DIR] [--dtype float16|float32]
 *
 * ONNX Runtime's own Stable Diffusion optimizer against the project's fused builder, on the same
 * UNet (issue 12): the plain synthetic UNet (models/synthetic-unet.ts, fp32, random weights) is
 * written as a one-component pipeline folder and rewritten by scripts/ort-optimize.sh (the command
 * models/README.md gives users; --target cuda: fp16 and every fusion, on the CPU: the CPU-kernel
 * fusions, fp32); the builder makes the plain and the fused graph ('cuda' fusion on CUDA,
 * 'cpu-safe' elsewhere) from the same weights. Each graph is timed in ms per call at each batch
 * (latent --latent, 77 text tokens, median of --repeats after a warm-up), and its output is
 * compared with the plain graph's (‖x − plain‖ / ‖plain‖). Also each graph's node count and
 * com.microsoft ops. Writes ort-vs-builder.json and ort-vs-builder.md to --out.
 *
 * Needs python3 with onnx, onnxruntime and sympy for the ORT rows (the device has them); without
 * it those rows say why and the builder's rows are still measured. Exit code 1 if a graph fails
 * to load or run, the optimizer fails (other than Python lacking it or having numpy 2.4 or later, which skip its row), or a graph disagrees with
 * the plain fp32 one beyond the limit (fp32: 1e-4; fp16: 1e-2 or twice the plain fp16 graph's own
 * error, whichever is larger). scripts/gpu-run.sh
 * runs it last; test/scripts/ort-vs-builder.test.ts runs it on the CPU with the tiny shape.
 */
import { parseArgs } from 'node:util';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import * as ort from 'onnxruntime-node';
import { floatTensor, numericTensor, readFloat } from '../engine/index.ts';
import { deviceName, gpuEp, median, relativeError, testFloats, wholeNumber, wholeNumbers } from '../bench/gpu-common.ts';
import { CUDA_CHECK_UNET, SYNTHETIC_MODEL_OPTIONS, TINY_UNET, syntheticUNet, type SyntheticGraph, type WeightCache } from '../models/synthetic-unet.ts';

const run = promisify(execFile);
const { values } = parseArgs({
  options: {
    ep: { type: 'string', default: 'cuda' },
    shape: { type: 'string', default: 'check' },
    batches: { type: 'string', default: '2,8,16' },
    latent: { type: 'string', default: '64' },
    repeats: { type: 'string', default: '10' },
    device: { type: 'string', default: '0' },
    out: { type: 'string', default: '.' },
    work: { type: 'string', default: 'models/.cache/ort-vs-builder' },
    dtype: { type: 'string' },
  },
});
const ep = gpuEp(values.ep);
if (values.shape !== 'check' && values.shape !== 'tiny') throw new Error(`--shape must be check or tiny, got ${values.shape}`);
const batches = wholeNumbers('batches', values.batches!);
const latent = wholeNumber('latent', values.latent!);
const repeats = wholeNumber('repeats', values.repeats!);
const deviceId = Number(values.device);
const providers: ort.InferenceSession.ExecutionProviderConfig[] = ep === 'cuda' ? [{ name: 'cuda', deviceId }] : ['cpu'];
/** fp16 on a GPU (as users run it), fp32 on the CPU (which lacks fp16 kernels for much of it); --dtype overrides. */
const dtype = (values.dtype ?? (ep === 'cuda' ? 'float16' : 'float32')) as 'float16' | 'float32';
if (dtype !== 'float16' && dtype !== 'float32') throw new Error(`--dtype must be float16 or float32, got ${values.dtype}`);
const tolerance = dtype === 'float16' ? 1e-2 : 1e-4;
const base = values.shape === 'tiny' ? TINY_UNET : CUDA_CHECK_UNET;
const work = resolve(values.work!);

interface Row {
  graph: string;
  nodes?: number;
  contrib?: Record<string, number>;
  ms?: Record<string, number>;
  relVsPlain?: number;
  ok: boolean;
  note?: string;
}

function opCounts(model: SyntheticGraph): { nodes: number; contrib: Record<string, number> } {
  const contrib: Record<string, number> = {};
  const nodes = model.graph.toGraphProto(new Set()).node;
  for (const n of nodes) if (n.domain === 'com.microsoft') contrib[n.opType] = (contrib[n.opType] ?? 0) + 1;
  return { nodes: nodes.length, contrib };
}


/** Feeds by the session's own input types (the optimizer's fp16 graph takes fp16 everywhere). */
function feeds(session: ort.InferenceSession, batch: number): Record<string, ort.Tensor> {
  const type = (name: string) => {
    const m = session.inputMetadata.find((x) => x.name === name);
    return m && m.isTensor ? m.type : 'float32';
  };
  return {
    sample: floatTensor(type('sample'), testFloats(batch * 4 * latent * latent, 1), [batch, 4, latent, latent]),
    timestep: numericTensor(type('timestep'), [321], [1]),
    encoder_hidden_states: floatTensor(type('encoder_hidden_states'), testFloats(batch * 77 * base.crossAttentionDim, 2), [batch, 77, base.crossAttentionDim]),
  };
}

async function measure(label: string, source: string | Uint8Array, counts: { nodes: number; contrib: Record<string, number> } | undefined, reference?: Float32Array, limit = tolerance): Promise<{ row: Row; out?: Float32Array }> {
  const row: Row = { graph: label, ...counts, ok: false };
  let session: ort.InferenceSession | undefined;
  try {
    const options: ort.InferenceSession.SessionOptions = { executionProviders: providers, graphOptimizationLevel: 'all' };
    session = typeof source === 'string' ? await ort.InferenceSession.create(source, options) : await ort.InferenceSession.create(source, options);
    const first = batches[0];
    const out = Float32Array.from(readFloat((await session.run(feeds(session, first)))[session.outputNames[0]]));
    row.ms = {};
    for (const b of batches) {
      const f = feeds(session, b);
      await session.run(f);
      const times: number[] = [];
      for (let i = 0; i < repeats; i++) {
        const t0 = performance.now();
        await session.run(f);
        times.push(performance.now() - t0);
      }
      row.ms[String(b)] = +median(times, (t) => t).toFixed(2);
    }
    if (reference) {
      const c = relativeError(out, reference);
      row.relVsPlain = +c.rel.toExponential(2);
      row.ok = c.finite && c.rel < limit;
      if (!row.ok) row.note = c.finite ? `differs from the reference by ${c.rel.toExponential(2)} (limit ${limit.toExponential(1)})` : 'non-finite output';
    } else row.ok = out.every(Number.isFinite);
    console.log(`${label}: ${batches.map((b) => `b${b} ${row.ms![String(b)]} ms`).join(', ')}${row.relVsPlain !== undefined ? `, vs plain ${row.relVsPlain}` : ''}`);
    return { row, out };
  } catch (err) {
    row.note = String(err).split('\n')[0].slice(0, 300);
    console.log(`${label}: FAILED ${row.note}`);
    return { row };
  } finally {
    await session?.release();
  }
}

await mkdir(work, { recursive: true });
const weights: WeightCache = [];
const plainFp32 = syntheticUNet({ ...base, dtype: 'float32', timestepType: 'float32' }, { weights });
const plain = dtype === 'float32' ? plainFp32 : syntheticUNet({ ...base, dtype, timestepType: 'float32' }, { weights });
const fusion = ep === 'cuda' ? 'cuda' : 'cpu-safe';
const fused = syntheticUNet({ ...base, dtype, timestepType: 'float32' }, { fusion, weights });

const rows: Row[] = [];
// The reference is the plain fp32 graph. On a GPU the fp16 graphs are also judged against it: the
// limit is the larger of `tolerance` and twice the plain fp16 graph's own error, so a graph fails
// for what its fusions changed, not for fp16 rounding (ORT's fp16 conversion also makes the
// timestep and time embedding fp16, which the builder keeps in fp32).
const plainFp32Model = plainFp32.graph.toModel(SYNTHETIC_MODEL_OPTIONS).model;
const reference = await measure('plain (float32)', plainFp32Model, opCounts(plainFp32));
rows.push(reference.row);
let limit = tolerance;
if (dtype === 'float16') {
  const plain16 = await measure('plain (float16)', plain.graph.toModel(SYNTHETIC_MODEL_OPTIONS).model, opCounts(plain), reference.out);
  rows.push(plain16.row);
  limit = Math.max(tolerance, 2 * (plain16.row.relVsPlain ?? 0));
}
rows.push((await measure(`project builder, '${fusion}' fusion`, fused.graph.toModel(SYNTHETIC_MODEL_OPTIONS).model, opCounts(fused), reference.out, limit)).row);

// The same plain UNet (fp32, as exports are) through ONNX Runtime's optimizer.
const folder = join(work, `plain-${values.shape}`);
await rm(folder, { recursive: true, force: true });
await mkdir(join(folder, 'unet'), { recursive: true });
await writeFile(join(folder, 'unet', 'model.onnx'), plainFp32Model);
await writeFile(join(folder, 'model_index.json'), JSON.stringify({ _class_name: 'StableDiffusionPipeline' }));
// The optimizer's output for this precision: fp16 with every fusion on CUDA, fp16 or fp32 with the
// CPU-kernel fusions elsewhere (and fp32 always with those: its CUDA output is fp16).
const target = dtype === 'float32' ? 'cpu' : ep === 'cuda' ? 'cuda' : 'cpu-fp16';
const optimized = join(work, `ort-${target}-${values.shape}`);
const stats = join(work, `ort-${target}-${values.shape}.json`);
let ortNote: string | undefined;
await rm(optimized, { recursive: true, force: true });
try {
  await run('bash', ['scripts/ort-optimize.sh', '--target', target, folder, optimized, stats], { maxBuffer: 64 * 1024 * 1024 });
} catch (err) {
  const { code, stdout } = err as { code?: number; stdout?: string };
  const last = String(stdout ?? '').trim().split('\n').filter((l) => l.startsWith('ort-optimize:')).pop();
  ortNote = code === 5 || code === 6 ? `skipped: ${last}` : `the optimizer failed (exit ${code}): ${last ?? String(err).split('\n')[0]}`;
}
let ortVersion: string | undefined;
if (ortNote) {
  // Skipped (no optimizer in this Python) is not a failure of the comparison; a failed run is.
  rows.push({ graph: "ONNX Runtime's optimizer", ok: ortNote.startsWith('skipped:'), note: ortNote });
  console.log(`ONNX Runtime's optimizer: ${ortNote}`);
} else {
  const s = JSON.parse(await readFile(stats, 'utf8')) as { onnxruntime: string; components: { unet: { nodes: number; contrib: Record<string, number> } } };
  ortVersion = s.onnxruntime;
  rows.push((await measure(`ONNX Runtime ${s.onnxruntime} optimizer, --target ${target}`, join(optimized, 'unet', 'model.onnx'), s.components.unet, reference.out, limit)).row);
}

const report = { gpu: deviceName(ep, deviceId), ep, dtype, date: new Date().toISOString(), shape: values.shape, latent, repeats, batches, tolerance: limit, ortOptimizer: ortVersion ?? null, rows };
const out = resolve(values.out!);
await mkdir(out, { recursive: true });
await writeFile(join(out, 'ort-vs-builder.json'), JSON.stringify(report, null, 2) + '\n');
const md = [
  `### ONNX Runtime's optimizer vs the project's fused builder, same UNet (${report.gpu}, ${ep}, ${dtype})`,
  '',
  `${report.date.slice(0, 10)}. Synthetic UNet, \`${values.shape}\` shape, ${latent}x${latent} latents, 77 tokens, ms per call (median of ${repeats}); relative difference from the plain fp32 graph's output.`,
  '',
  `| graph | nodes | com.microsoft ops | ${batches.map((b) => `batch ${b} ms`).join(' | ')} | vs fp32 plain | |`,
  `|---|---|---|${batches.map(() => '---|').join('')}---|---|`,
  ...rows.map((r) => {
    const ops = r.contrib ? Object.entries(r.contrib).map(([op, n]) => `${op} ${n}`).join(', ') || 'none' : '-';
    return `| ${r.graph} | ${r.nodes ?? '-'} | ${ops} | ${batches.map((b) => r.ms?.[String(b)] ?? '-').join(' | ')} | ${r.relVsPlain ?? '-'} | ${r.ok ? (r.note ?? 'ok') : `failed: ${r.note}`} |`;
  }),
];
await writeFile(join(out, 'ort-vs-builder.md'), md.join('\n') + '\n');
process.exit(rows.every((r) => r.ok) ? 0 : 1);
