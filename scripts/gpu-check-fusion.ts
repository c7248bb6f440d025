/**
 * node dist/gpu-check-fusion.mjs [--ep cuda] [--out DIR] [--device 0] [--shape check|tiny] [--dtype float16|float32]
 *
 * Plain vs fused synthetic UNet and VAE decoder on a GPU, for the contrib ops that have no CPU
 * kernel: each op alone (so a failing kernel is named) and the full 'cuda' fusion, on
 * CUDA_CHECK_UNET (SD 1.5's first two levels, fp16: the channel counts those kernels accept).
 * Fresh inputs per check; pass if ‖fused − plain‖ / ‖plain‖ < 1e-2 (fp16) and every output is
 * finite. Prints a table, writes fusion-check.json to --out, exits 1 if any check fails. With
 * `--ep cpu` it checks the cpu-safe fusion and the CPU stand-ins of NhwcConv and PackedQkv
 * (the CUDA-only ops cannot load there). scripts/gpu-run.sh runs it before the benchmark and
 * benchmarks only the ops that passed (fusion-check.json -> `bench:gpu --ops`).
 */
import { parseArgs } from 'node:util';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { floatTensor, numericTensor, readFloat } from '../engine/index.ts';
import { relativeError, testFloats } from '../bench/gpu-common.ts';
import {
  CUDA_CHECK_UNET,
  CUDA_ONLY_OPS,
  FUSED_OPS,
  SD15_VAE,
  SYNTHETIC_MODEL_OPTIONS,
  TINY_UNET,
  TINY_VAE,
  resolveFusedOps,
  syntheticUNet,
  syntheticVaeDecoder,
  type FusedOp,
  type FusionOptions,
  type SyntheticGraph,
  type WeightCache,
} from '../models/synthetic-unet.ts';

const { values } = parseArgs({ options: { ep: { type: 'string', default: 'cuda' }, out: { type: 'string', default: '.' }, device: { type: 'string', default: '0' }, shape: { type: 'string', default: 'check' }, dtype: { type: 'string' } } });
const ep = values.ep!;
const providers: ort.InferenceSession.ExecutionProviderConfig[] = ep === 'cuda' ? [{ name: 'cuda', deviceId: Number(values.device) }] : ['cpu'];
const TOLERANCE = 1e-2;
// The CPU provider lacks fp16 kernels for much of the graph: a CPU dry run checks in float32
// (--dtype float16 runs the fp16 paths there too, for what has CPU kernels).
const dtype = (values.dtype ?? (ep === 'cuda' ? 'float16' : 'float32')) as 'float16' | 'float32';
if (dtype !== 'float16' && dtype !== 'float32') throw new Error(`--dtype must be float16 or float32, got ${values.dtype}`);
// 'check': the smallest shapes every CUDA-only kernel accepts; 'tiny': seconds on a CPU (dry runs of scripts/gpu-run.sh).
if (values.shape !== 'check' && values.shape !== 'tiny') throw new Error(`--shape must be check or tiny, got ${values.shape}`);
const UNET_SHAPE = { ...(values.shape === 'tiny' ? TINY_UNET : CUDA_CHECK_UNET), dtype } as const;
const VAE_SHAPE = { ...(values.shape === 'tiny' ? TINY_VAE : SD15_VAE), dtype } as const;

const open = (g: SyntheticGraph) => ort.InferenceSession.create(g.graph.toModel(SYNTHETIC_MODEL_OPTIONS).model, { executionProviders: providers, graphOptimizationLevel: 'all' });
const tensor = (n: number, seed: number, dims: number[]) => floatTensor(dtype, testFloats(n, seed), dims);
// A copy: readFloat may hand back the tensor's own memory.
const read = (t: ort.Tensor) => Float32Array.from(readFloat(t));

interface Check {
  model: string;
  ops: string;
  rel: number | null;
  finite: boolean;
  pass: boolean;
  error?: string;
}
const checks: Check[] = [];

async function check(model: 'unet' | 'vae', label: string, plainSession: ort.InferenceSession, opts: FusionOptions, weights: WeightCache, feeds: () => Record<string, ort.Tensor>) {
  const build = model === 'unet' ? () => syntheticUNet(UNET_SHAPE, { ...opts, weights }) : () => syntheticVaeDecoder(VAE_SHAPE, { ...opts, weights });
  try {
    const fused = await open(build());
    let worst = 0;
    let finite = true;
    for (let k = 0; k < 2; k++) {
      const f = feeds();
      const ref = read(Object.values(await plainSession.run(f))[0]);
      const out = read(Object.values(await fused.run(f))[0]);
      const c = relativeError(out, ref);
      worst = Math.max(worst, c.rel);
      finite &&= c.finite;
    }
    await fused.release();
    checks.push({ model, ops: label, rel: worst, finite, pass: finite && worst < TOLERANCE });
  } catch (err) {
    checks.push({ model, ops: label, rel: null, finite: false, pass: false, error: String(err).split('\n')[0].slice(0, 300) });
  }
  await save();
  const c = checks.at(-1)!;
  console.log(`${c.pass ? 'PASS' : 'FAIL'} ${model} ${label}: ${c.rel === null ? c.error : `rel ${c.rel.toExponential(2)}${c.finite ? '' : ' NOT FINITE'}`}`);
}

// Most telling first (a run cut short by its time limit still says the most): the full fusion,
// then each CUDA-only op alone (names a failing kernel), then the CPU-capable set on this provider.
const cpuOps: FusedOp[] = [...FUSED_OPS['cpu-safe']];
const variants: Array<[string, FusionOptions]> =
  ep === 'cuda'
    ? [['cuda', { fusion: 'cuda' }], ...CUDA_ONLY_OPS.map((op): [string, FusionOptions] => [op, { ops: [op] }]), ['cpu-safe', { fusion: 'cpu-safe' }]]
    : [...cpuOps.map((op): [string, FusionOptions] => [op, { ops: [op] }]), ['cpu-safe', { fusion: 'cpu-safe' }], ['stand-ins', { fusion: 'cpu-safe', standIns: ['NhwcConv', 'PackedQkv'] }]];
const VAE_VARIANTS = ['cuda', 'GroupNorm', 'NhwcConv', 'MultiHeadAttention', 'cpu-safe', 'stand-ins'];
/**
 * The contrib ops a benchmark on this provider should use: all of the full fusion when it passed,
 * else the cpu-safe set (when it passed) and each CUDA-only op that passed alone in every model
 * that checked it. scripts/gpu-run.sh hands them to bench:gpu (--ops).
 */
function benchOps(): FusedOp[] {
  const passed = (label: string) => {
    const mine = checks.filter((c) => c.ops === label);
    return mine.length > 0 && mine.every((c) => c.pass);
  };
  const full = ep === 'cuda' ? 'cuda' : 'cpu-safe';
  if (passed(full)) return [...FUSED_OPS[full]];
  const ops: FusedOp[] = passed('cpu-safe') ? [...FUSED_OPS['cpu-safe']] : [];
  if (ep === 'cuda') ops.push(...CUDA_ONLY_OPS.filter(passed));
  // PackedQkv passed with MultiHeadAttention; without the cpu-safe set it brings it along.
  return resolveFusedOps(ops);
}
const save = () => writeFile(join(values.out!, 'fusion-check.json'), JSON.stringify({ ep, dtype, date: new Date().toISOString(), tolerance: TOLERANCE, benchOps: benchOps(), checks }, null, 2) + '\n');
await mkdir(values.out!, { recursive: true });

let seed = 0;
const unetWeights: WeightCache = [];
const plainUnet = await open(syntheticUNet(UNET_SHAPE, { weights: unetWeights }));
const unetFeeds = () => {
  seed++;
  const B = 2;
  const L = 32;
  return {
    sample: tensor(B * 4 * L * L, seed, [B, 4, L, L]),
    timestep: numericTensor(UNET_SHAPE.timestepType, [100 + seed * 37], [1]),
    encoder_hidden_states: tensor(B * 77 * UNET_SHAPE.crossAttentionDim, seed + 100, [B, 77, UNET_SHAPE.crossAttentionDim]),
  };
};
for (const [label, opts] of variants) await check('unet', label, plainUnet, opts, unetWeights, unetFeeds);
await plainUnet.release();

// The VAE decoder has no GEGLU, bias adds or time embedding: GroupNorm and attention are what fuse.
const vaeWeights: WeightCache = [];
const plainVae = await open(syntheticVaeDecoder(VAE_SHAPE, { weights: vaeWeights }));
const vaeFeeds = () => ({ latent_sample: tensor(4 * 32 * 32, ++seed, [1, 4, 32, 32]) });
const vaeVariants = variants.filter(([label]) => VAE_VARIANTS.includes(label));
if (!vaeVariants.some(([label]) => label === 'MultiHeadAttention')) vaeVariants.push(['MultiHeadAttention', { ops: ['MultiHeadAttention'] }]);
for (const [label, opts] of vaeVariants) await check('vae', label, plainVae, opts, vaeWeights, vaeFeeds);
await plainVae.release();

await save();
console.log(`${ep}, ${dtype}, ${values.shape === 'tiny' ? 'TINY_UNET and TINY_VAE' : 'CUDA_CHECK_UNET and SD15_VAE'} shapes, 2 fresh inputs each`);
console.log('| model | fused ops | ‖fused−plain‖/‖plain‖ | result |');
console.log('| --- | --- | --- | --- |');
for (const c of checks) console.log(`| ${c.model} | ${c.ops} | ${c.rel === null ? c.error : c.rel.toExponential(2)} | ${c.pass ? 'pass' : 'FAIL'} |`);
process.exitCode = checks.every((c) => c.pass) ? 0 : 1;
