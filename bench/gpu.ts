/**
 * npm run bench:gpu -- --ep cpu|cuda --shape tiny|tiny-fp16|sd15 [--out bench/results] [--device 0]
 *   [--batches 1,2,4,8,16] [--latent 64] [--repeats N] [--size 512] [--steps 20] [--depth 0.5]
 *   [--branches 24] [--transition-repeats N] [--max-batch N] [--cache DIR] [--ops A,B,...]
 *
 * One run, one report: UNet ms per call at each batch size for the plain graph and the fused one
 * (ONNX Runtime contrib ops, models/synthetic-unet.ts; 'cuda' fusion on CUDA, 'cpu-safe'
 * elsewhere, or exactly the contrib ops --ops names: scripts/gpu-run.sh passes those that passed
 * the fusion check), VAE decode ms, and the reference transition (SD 1.5 size: 512x512, 20 steps,
 * depth 0.5, 24 branches) rendered by the engine's LatentBlender one branch at a time (batch 2,
 * the reference's order) and in batched stages, wall time and ratio; peak GPU memory from an
 * nvidia-smi poller (null on the CPU). Every model is generated on the machine that runs it
 * (random weights, SD shapes) into --cache. Writes gpu.json (schema below) and updates this
 * run's section of gpu.md in --out. CI runs it on the tiny shape on the CPU
 * (test/bench/gpu.test.ts); a GPU host runs the bundle (scripts/gpu-run.sh).
 *
 * gpu.json: { gpu, date, unet_ms: { plain: { "1": ms, ... }, fused: { ... } }, vae_decode_ms,
 *             transition: { sequential_s, batched_s, ratio }, peak_gpu_mib, fused_ops: [...] }
 */
import { parseArgs } from 'node:util';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdir, readFile, rm, writeFile, symlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import * as ort from 'onnxruntime-node';
import { deviceName, GPU_EPS, gpuEp, median, relativeError, wholeNumbers } from './gpu-common.ts';
import { choiceOption, numberOption, runCli } from '../apps/cli-kit.ts';
import { DEVICE_FLAG } from '../apps/cli/common.ts';
import { DEFAULT_DEVICE_ID, LatentBlender, StableDiffusionPipeline, createPerceptualMetric, float32ToFloat16, float16ToFloat32, timingTotals, timingsSince, type BatchTiming, type TransitionResult } from '../engine/index.ts';
import { builtinPerceptualGraph } from '../models/perceptual-graph.ts';
import { ensureDemoModel } from '../models/demo-model.ts';
import { DEMO_MODEL_DIR, MODELS_ROOT } from '../models/paths.ts';
import { GraphBuilder, saveModel } from '../models/onnx/index.ts';
import {
  SD15_UNET,
  SD15_VAE,
  SYNTHETIC_BUILDER_VERSION,
  SYNTHETIC_MODEL_OPTIONS,
  TINY_UNET,
  TINY_VAE,
  FUSED_OPS,
  fusionFor,
  resolveFusedOps,
  syntheticUNet,
  syntheticVaeDecoder,
  type FusedOp,
  type FusionOptions,
  type SyntheticGraph,
  type SyntheticUNetShape,
  type SyntheticVaeShape,
  type WeightCache,
} from '../models/synthetic-unet.ts';

interface Preset {
  unet: SyntheticUNetShape;
  vae: SyntheticVaeShape;
  batches: string;
  latent: number;
  repeats: number;
  size: number;
  steps: number;
  depth: number;
  branches: number;
  transitionRepeats: number;
}

/** sd15 is the issue's reference; tiny is the same benchmark small enough for a CPU. */
const PRESETS: Record<string, Preset> = {
  sd15: { unet: SD15_UNET, vae: SD15_VAE, batches: '1,2,4,8,16', latent: 64, repeats: 10, size: 512, steps: 20, depth: 0.5, branches: 24, transitionRepeats: 1 },
  tiny: { unet: TINY_UNET, vae: TINY_VAE, batches: '1,2,4,8,16', latent: 32, repeats: 3, size: 256, steps: 10, depth: 0.5, branches: 8, transitionRepeats: 1 },
  /** tiny in fp16, as sd15 runs on a GPU: the fp16 paths checked on a CPU (test/bench/gpu.test.ts). */
  'tiny-fp16': {
    unet: { ...TINY_UNET, dtype: 'float16' },
    vae: { ...TINY_VAE, dtype: 'float16' },
    batches: '1,2',
    latent: 16,
    repeats: 1,
    size: 128,
    steps: 6,
    depth: 0.5,
    branches: 4,
    transitionRepeats: 1,
  },
};

const DEFAULTS = { ep: 'cpu', shape: 'tiny', out: 'bench/results', cache: join(MODELS_ROOT, '.cache', 'gpu-bench'), device: String(DEFAULT_DEVICE_ID) } as const;

/** "tiny 1,2,4,8,16; sd15 ..." for one preset field: a --help default that depends on --shape. */
const perShape = (key: keyof Preset) => Object.entries(PRESETS).map(([name, p]) => `${name} ${String(p[key])}`).join('; ');

const USAGE = `Usage: npm run bench:gpu -- [--ep ${GPU_EPS.join('|')}] [--shape ${Object.keys(PRESETS).join('|')}] [--out DIR] [--cache DIR] [--device N]
  [--batches LIST] [--latent N] [--repeats N] [--size PX] [--steps N] [--depth X] [--branches N]
  [--transition-repeats N] [--max-batch N] [--ops A,B,...]

UNet ms per call by batch size, plain graph vs fused (ONNX Runtime contrib ops), VAE decode ms, and a
transition rendered one branch at a time vs in batched stages, with peak GPU memory (nvidia-smi, CUDA
only). The models (random weights, SD shapes) are generated on this machine into --cache. Writes
gpu.json and this run's section of gpu.md in --out (recorded results: bench/results/gpu.md).
  --ep NAME               execution provider: ${GPU_EPS.join(', ')} (default ${DEFAULTS.ep})
  --shape NAME            ${Object.keys(PRESETS).join(', ')} (default ${DEFAULTS.shape}); sets the defaults below
  --out DIR               where gpu.json and gpu.md go (default ${DEFAULTS.out})
  --cache DIR             where the generated models are kept (default ${DEFAULTS.cache})
  --device N              the CUDA device (default ${DEFAULTS.device})
  --batches LIST          UNet batch sizes (default: ${perShape('batches')})
  --latent N              UNet latent side (default: ${perShape('latent')})
  --repeats N             timed calls per UNet batch and VAE variant (default: ${perShape('repeats')})
  --size PX               transition and VAE image side (default: ${perShape('size')})
  --steps N               transition steps (default: ${perShape('steps')})
  --depth X               transition depth strength, 0 to 1 (default: ${perShape('depth')})
  --branches N            transition branches (default: ${perShape('branches')})
  --transition-repeats N  timed transitions per order; the median is shown (default: ${perShape('transitionRepeats')})
  --max-batch N           the engine's UNet batch limit (default: the engine's)
  --ops A,B,...           exactly these fused ops, of ${FUSED_OPS.cuda.join(', ')} (default: all of them on CUDA,
                          ${FUSED_OPS[fusionFor('cpu')].join(', ')} elsewhere)
`;

/** The command line, checked (a bad one is a UsageError: one line, exit 2); undefined for --help. */
function options(argv: string[]) {
  const { values } = parseArgs({
    args: argv,
    options: {
      help: { type: 'boolean', short: 'h' },
      ep: { type: 'string', default: DEFAULTS.ep },
      shape: { type: 'string', default: DEFAULTS.shape },
      out: { type: 'string', default: DEFAULTS.out },
      cache: { type: 'string', default: DEFAULTS.cache },
      device: { type: 'string', default: DEFAULTS.device },
      batches: { type: 'string' },
      latent: { type: 'string' },
      repeats: { type: 'string' },
      size: { type: 'string' },
      steps: { type: 'string' },
      depth: { type: 'string' },
      branches: { type: 'string' },
      'transition-repeats': { type: 'string' },
      'max-batch': { type: 'string' },
      ops: { type: 'string' },
    },
  });
  if (values.help) return undefined;
  const shapeName = choiceOption('shape', values.shape, PRESETS)!;
  const preset = PRESETS[shapeName];
  const whole = (name: keyof typeof values, fallback: number) => numberOption(name, values[name] as string | undefined, { integer: true, min: 1 }) ?? fallback;
  const ep = gpuEp(values.ep);
  const ops = values.ops?.split(',').map((o) => o.trim()).filter(Boolean);
  for (const op of ops ?? []) choiceOption('ops', op, FUSED_OPS.cuda);
  return {
    shapeName,
    preset,
    ep,
    deviceId: numberOption('device', values.device, DEVICE_FLAG)!,
    fusedOps: ops === undefined ? FUSED_OPS[fusionFor(ep)] : resolveFusedOps(ops),
    cache: values.cache,
    out: values.out,
    cfg: {
      batches: wholeNumbers('batches', values.batches ?? preset.batches),
      latent: whole('latent', preset.latent),
      repeats: whole('repeats', preset.repeats),
      size: whole('size', preset.size),
      steps: whole('steps', preset.steps),
      depth: numberOption('depth', values.depth, { min: 0, max: 1 }) ?? preset.depth,
      branches: whole('branches', preset.branches),
      transitionRepeats: whole('transition-repeats', preset.transitionRepeats),
      maxBatch: numberOption('max-batch', values['max-batch'], { integer: true, min: 1 }),
    },
  };
}

// The command line first: --help or a bad one (exit 2) ends here, before anything is generated or measured.
let parsed: ReturnType<typeof options>;
await runCli(async () => {
  parsed = options(process.argv.slice(2));
  if (!parsed) process.stdout.write(USAGE);
});
if (!parsed) process.exit();
const { shapeName, preset, ep, deviceId, fusedOps, cfg } = parsed;
// The fusion's name when the ops are exactly one, else the ops themselves (folder names, reports).
const fusion = (Object.entries(FUSED_OPS).find(([, ops]) => ops.length === fusedOps.length && ops.every((o) => fusedOps.includes(o)))?.[0] ?? `ops-${[...fusedOps].sort().join('+')}`) as string;
const cacheDir = resolve(parsed.cache, shapeName);
const outDir = resolve(parsed.out);
const log = (s: string) => console.log(`[bench:gpu ${((performance.now() - T0) / 1000).toFixed(1)}s] ${s}`);
const T0 = performance.now();

// --- peak GPU memory: nvidia-smi polled in a child process, max per phase ---

class GpuMemoryPoller {
  private child?: ChildProcess;
  private phase = 'start';
  readonly peaks = new Map<string, number>();
  baseline: number | null = null;

  start(): void {
    this.child = spawn('nvidia-smi', ['--query-gpu=memory.used', '--format=csv,noheader,nounits', '-i', String(deviceId), '-lms', '100'], { stdio: ['ignore', 'pipe', 'ignore'] });
    this.child.on('error', (err) => log(`nvidia-smi poller failed: ${err.message}`));
    let buf = '';
    this.child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      const lines = buf.split('\n');
      buf = lines.pop()!;
      for (const line of lines) {
        const mib = Number(line.trim());
        if (!Number.isFinite(mib)) continue;
        this.baseline ??= mib;
        this.peaks.set(this.phase, Math.max(this.peaks.get(this.phase) ?? 0, mib));
      }
    });
  }
  mark(phase: string): void {
    this.phase = phase;
  }
  async stop(): Promise<number | null> {
    await new Promise((r) => setTimeout(r, 300));
    this.child?.kill();
    return this.peaks.size ? Math.max(...this.peaks.values()) : null;
  }
}

// --- models, generated once per shape into the cache ---

async function writeModel(dir: string, built: SyntheticGraph): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  await saveModel(dir, 'model.onnx', built.graph.toModel({ ...SYNTHETIC_MODEL_OPTIONS, externalData: { location: 'model.onnx_data' } }), 'model.onnx_data');
}

/** A CLIP-sized stand-in text encoder: token embeddings plus positions, [B, 77, width], so the UNet's cross-attention has SD's width. */
function syntheticTextEncoder(width: number): GraphBuilder {
  const g = new GraphBuilder('text_encoder');
  const ids = g.input('input_ids', 'int64', ['batch', 'sequence']);
  const rows = 1024;
  const table = Float32Array.from({ length: rows * width }, (_, i) => Math.sin(i * 0.618 + (i % 7)));
  const pos = Float32Array.from({ length: 77 * width }, (_, i) => 0.1 * Math.cos(i * 0.37));
  const tok = g.op('Gather', [g.constant(table, [rows, width]), g.op('Mod', [ids, g.constant([rows], [], 'int64')])], { axis: 0 });
  g.output(g.op('Add', [tok, g.constant(pos, [77, width])]), 'last_hidden_state', 'float32', ['batch', 'sequence', width]);
  return g;
}

interface Models {
  unet: Record<'plain' | 'fused', string>;
  vae: Record<'plain' | 'fused', string>;
  pipeline: string;
  parameters: { unet: number; vae: number };
}


async function ensureModels(): Promise<Models> {
  const dir = (what: string) => join(cacheDir, `${what}-v${SYNTHETIC_BUILDER_VERSION}`);
  const unet = { plain: dir('unet-none'), fused: dir(`unet-${fusion}`) };
  const vae = { plain: dir('vae-none'), fused: dir(`vae-${fusion}`) };
  const pipeline = dir(`pipeline-${fusion}`);
  const manifest = join(cacheDir, `params-v${SYNTHETIC_BUILDER_VERSION}.json`);
  const built = (d: string) => existsSync(join(d, 'model.onnx'));
  const known = existsSync(manifest) ? (JSON.parse(await readFile(manifest, 'utf8')) as Models['parameters']) : undefined;
  // Only the missing folders are written (a new --ops set leaves the plain models as they are); the
  // plain one also when the parameter counts are not on record. Variants share one weight draw.
  const generate = async (folders: Record<'plain' | 'fused', string>, build: (opts: FusionOptions) => SyntheticGraph, count?: number): Promise<number> => {
    const weights: WeightCache = [];
    for (const [variant, ops] of [['plain', []], ['fused', fusedOps]] as const) {
      if (built(folders[variant]) && (variant === 'fused' || count !== undefined)) continue;
      const t0 = performance.now();
      const graph = build({ ops, weights });
      await writeModel(folders[variant], graph);
      count = graph.parameters;
      log(`generated ${shapeName} ${folders[variant].split('/').at(-1)} (${(graph.parameters / 1e6).toFixed(1)}M parameters) in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    }
    return count!;
  };
  const parameters = {
    unet: await generate(unet, (opts) => syntheticUNet(preset.unet, opts), known?.unet),
    vae: await generate(vae, (opts) => syntheticVaeDecoder(preset.vae, opts), known?.vae),
  };
  await writeFile(manifest, JSON.stringify(parameters));
  if (!existsSync(join(pipeline, 'model_index.json'))) {
    // The demo pipeline's tokenizer and scheduler, with the synthetic UNet and VAE (fused) and a
    // text encoder of the UNet's cross-attention width.
    const demo = await ensureDemoModel(DEMO_MODEL_DIR);
    await rm(pipeline, { recursive: true, force: true });
    await mkdir(pipeline, { recursive: true });
    for (const part of ['tokenizer', 'scheduler', 'model_index.json']) await cp(join(demo, part), join(pipeline, part), { recursive: true });
    await saveModel(join(pipeline, 'text_encoder'), 'model.onnx', syntheticTextEncoder(preset.unet.crossAttentionDim).toModel({ opset: 17 }));
    for (const [part, src] of [['unet', unet.fused], ['vae_decoder', vae.fused]] as const) {
      await mkdir(join(pipeline, part), { recursive: true });
      for (const f of ['model.onnx', 'model.onnx_data']) await symlink(join(src, f), join(pipeline, part, f));
    }
    await writeFile(join(pipeline, 'unet', 'config.json'), JSON.stringify({ sample_size: cfg.size / 8, in_channels: 4, cross_attention_dim: preset.unet.crossAttentionDim }));
    await writeFile(join(pipeline, 'vae_decoder', 'config.json'), JSON.stringify({ scaling_factor: 0.18215, latent_channels: 4, block_out_channels: preset.vae.channels }));
    await writeFile(join(pipeline, 'blendfarm.json'), JSON.stringify({ name: `synthetic-${shapeName}-${fusion}`, family: 'sd1' }));
  }
  return { unet, vae, pipeline, parameters };
}

// --- timing ---

async function openSession(dir: string): Promise<ort.InferenceSession> {
  const providers: ort.InferenceSession.ExecutionProviderConfig[] = ep === 'cuda' ? [{ name: 'cuda', deviceId }] : ['cpu'];
  return ort.InferenceSession.create(join(dir, 'model.onnx'), { executionProviders: providers, graphOptimizationLevel: 'all' });
}

const half = () => preset.unet.dtype === 'float16';
function floatTensor(n: number, dims: number[], seed: number): ort.Tensor {
  const f = Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37 + seed));
  return half() ? new ort.Tensor('float16', float32ToFloat16(f), dims) : new ort.Tensor('float32', f, dims);
}
const asFloat = (t: ort.Tensor) => (t.type === 'float16' ? float16ToFloat32(t.data as Uint16Array) : (t.data as Float32Array));

/** Median ms of `repeats` calls after 2 warm-ups; also the first output. */
async function time(session: ort.InferenceSession, feeds: Record<string, ort.Tensor>, repeats: number): Promise<{ ms: number; out: Float32Array }> {
  let out: Float32Array | undefined;
  const times: number[] = [];
  for (let i = 0; i < repeats + 2; i++) {
    const t0 = performance.now();
    const r = await session.run(feeds);
    if (i >= 2) times.push(performance.now() - t0);
    out ??= Float32Array.from(asFloat(Object.values(r)[0]));
  }
  return { ms: median(times, (t) => t), out: out! };
}

const round = (v: number, digits: number) => Number(v.toFixed(digits));

async function benchUNet(models: Models, poller?: GpuMemoryPoller) {
  const s = preset.unet;
  const L = cfg.latent;
  const ms: Record<'plain' | 'fused', Record<string, number>> = { plain: {}, fused: {} };
  const outs: Record<string, Float32Array> = {};
  for (const variant of ['plain', 'fused'] as const) {
    poller?.mark(`unet-${variant}`);
    const session = await openSession(models.unet[variant]);
    for (const batch of cfg.batches) {
      const feeds = {
        sample: floatTensor(batch * 4 * L * L, [batch, 4, L, L], 1),
        timestep: s.timestepType === 'int64' ? new ort.Tensor('int64', BigInt64Array.from([500n]), [1]) : new ort.Tensor('float32', [500], [1]),
        encoder_hidden_states: floatTensor(batch * 77 * s.crossAttentionDim, [batch, 77, s.crossAttentionDim], 2),
      };
      const r = await time(session, feeds, cfg.repeats);
      ms[variant][String(batch)] = round(r.ms, 2);
      outs[`${variant}-${batch}`] = r.out;
      log(`UNet ${variant} batch ${batch}: ${r.ms.toFixed(2)} ms`);
    }
    await session.release();
  }
  const agreement = Object.fromEntries(cfg.batches.map((b) => [String(b), relativeError(outs[`fused-${b}`], outs[`plain-${b}`]).rel]));
  return { ms, agreement };
}

async function benchVae(models: Models, poller?: GpuMemoryPoller) {
  const h = cfg.size / 8;
  const ms: Record<string, number> = {};
  const outs: Record<string, Float32Array> = {};
  for (const variant of ['plain', 'fused'] as const) {
    poller?.mark(`vae-${variant}`);
    const session = await openSession(models.vae[variant]);
    const vaeHalf = preset.vae.dtype === 'float16';
    const f = Float32Array.from({ length: 4 * h * h }, (_, i) => Math.sin(i * 0.11));
    const input = vaeHalf ? new ort.Tensor('float16', float32ToFloat16(f), [1, 4, h, h]) : new ort.Tensor('float32', f, [1, 4, h, h]);
    const r = await time(session, { latent_sample: input }, cfg.repeats);
    ms[variant] = round(r.ms, 2);
    outs[variant] = r.out;
    log(`VAE decode ${variant} ${cfg.size}x${cfg.size}: ${r.ms.toFixed(2)} ms`);
    await session.release();
  }
  return { ms, agreement: relativeError(outs.fused, outs.plain).rel };
}

/** "batch 2: 179 calls, 10.10 ms each; batch 14: …", smallest batch first (a guided item counts 2). */
function unetRunsText(runs: BatchTiming[]): string {
  return runs.map((t) => `batch ${t.batch}: ${t.calls} calls, ${(t.ms / t.calls).toFixed(2)} ms each`).join('; ');
}

async function benchTransition(models: Models, poller?: GpuMemoryPoller) {
  poller?.mark('transition');
  const pipe = await StableDiffusionPipeline.load(models.pipeline, { ep, deviceId, maxBatch: cfg.maxBatch });
  // The built-in gap metric on the same provider (ONNX on a GPU, JavaScript on the CPU), as a worker measures gaps.
  // No onFallback: a graph that does not open on the GPU fails the run instead of timing the JavaScript metric.
  const metric = await createPerceptualMetric(undefined, { ep, deviceId }, builtinPerceptualGraph);
  const blender = new LatentBlender(pipe, metric);
  const opts = {
    promptA: 'a lighthouse on a cliff at dusk, oil painting',
    promptB: 'a city of glass towers at noon, photograph',
    seedA: 1,
    seedB: 2,
    steps: cfg.steps,
    depthStrength: cfg.depth,
    width: cfg.size,
    height: cfg.size,
  };
  // Warm-up: session initialisation, allocator growth, kernel selection for the batch sizes.
  await blender.transition({ ...opts, maxBranches: Math.min(cfg.branches, 4), order: 'batched' });
  type Run = { seconds: number; unetSeconds: number; vaeSeconds: number; unetByBatch: BatchTiming[] };
  const runs: Record<'sequential' | 'batched', Run & { result: TransitionResult }> = {} as never;
  // Where the time went: UNet and VAE session runs (the engine's render timings), the rest is
  // the same in both orders (perceptual gaps, image conversion, scheduling) and caps their ratio.
  for (const order of ['sequential', 'batched'] as const) {
    const times: Run[] = [];
    let result: TransitionResult | undefined;
    for (let i = 0; i < cfg.transitionRepeats; i++) {
      const before = timingTotals(pipe);
      const t0 = performance.now();
      result = await blender.transition({ ...opts, maxBranches: cfg.branches, order });
      const spent = timingsSince(pipe, before);
      times.push({
        seconds: (performance.now() - t0) / 1000,
        unetSeconds: spent.unet.reduce((sum, t) => sum + t.ms, 0) / 1000,
        vaeSeconds: spent.vaeDecode.ms / 1000,
        unetByBatch: [...spent.unet].sort((a, b) => a.batch - b.batch),
      });
    }
    runs[order] = { ...median(times, (t) => t.seconds), result: result! };
    const r = result!;
    log(
      `transition ${order}: ${runs[order].seconds.toFixed(2)} s (UNet ${runs[order].unetSeconds.toFixed(2)} s, VAE ${runs[order].vaeSeconds.toFixed(2)} s), ${r.frames.length} frames, ${r.unetCalls} UNet calls, stages ${r.stages.map((s) => `${s.idx}x${s.stems}`).join(',')}`,
    );
  }
  const maxBatch = pipe.unet.maxBatch;
  await metric.release?.();
  await pipe.release();
  return { runs, maxBatch };
}

// --- run ---

await runCli(async () => {
  const poller = ep === 'cuda' ? new GpuMemoryPoller() : undefined;
  poller?.start();
  log(`ep ${ep}, shape ${shapeName}, fusion ${fusion}, ${JSON.stringify(cfg)}`);
  await mkdir(outDir, { recursive: true });
  // gpu.json is rewritten after each phase, so a run cut short still leaves what it measured (null for the rest).
  const result: {
    gpu: string;
    date: string;
    unet_ms: Record<'plain' | 'fused', Record<string, number>> | null;
    vae_decode_ms: number | null;
    transition: { sequential_s: number; batched_s: number; ratio: number } | null;
    peak_gpu_mib: number | null;
    fused_ops: readonly FusedOp[];
  } = { gpu: ep === 'cuda' ? deviceName(ep, deviceId) : `${deviceName(ep)} (${shapeName} shape)`, date: new Date().toISOString(), unet_ms: null, vae_decode_ms: null, transition: null, peak_gpu_mib: null, fused_ops: fusedOps };
  const save = async () => {
    result.peak_gpu_mib = poller?.peaks.size ? Math.max(...poller.peaks.values()) : null;
    await writeFile(join(outDir, 'gpu.json'), JSON.stringify(result, null, 2) + '\n');
  };
  const models = await ensureModels();
  const unet = await benchUNet(models, poller);
  result.unet_ms = unet.ms;
  await save();
  const vae = await benchVae(models, poller);
  result.vae_decode_ms = vae.ms.fused;
  await save();
  const transition = await benchTransition(models, poller);
  const seq = transition.runs.sequential;
  const bat = transition.runs.batched;
  result.transition = { sequential_s: round(seq.seconds, 3), batched_s: round(bat.seconds, 3), ratio: round(seq.seconds / bat.seconds, 3) };
  const peak = poller ? await poller.stop() : null;
  await save();

  const command = `npm run bench:gpu -- ${process.argv.slice(2).join(' ')}`.trim();
  const section = [
    `## ${result.date.slice(0, 10)}, ${result.gpu}, ${ep.toUpperCase()} EP, \`${shapeName}\` shape`,
    '',
    `\`${command}\``,
    '',
    `UNet: ${(models.parameters.unet / 1e6).toFixed(2)}M parameters, ${preset.unet.dtype}, ${cfg.latent}x${cfg.latent} latents, 77 text tokens, median of ${cfg.repeats} calls after 2 warm-ups. ` +
      `Fused = '${fusion}' (models/synthetic-unet.ts: ${fusedOps.join(', ')}); relative difference fused vs plain ‖f−p‖/‖p‖ per batch in the last column.`,
    '',
    '| batch | plain ms | fused ms | plain/fused | fused vs plain |',
    '| --- | --- | --- | --- | --- |',
    ...cfg.batches.map((b) => {
      const k = String(b);
      return `| ${b} | ${unet.ms.plain[k]} | ${unet.ms.fused[k]} | ${(unet.ms.plain[k] / unet.ms.fused[k]).toFixed(2)}x | ${unet.agreement[k].toExponential(1)} |`;
    }),
    '',
    `VAE decoder (${(models.parameters.vae / 1e6).toFixed(2)}M parameters, ${preset.vae.dtype}) at ${cfg.size}x${cfg.size}: plain ${vae.ms.plain} ms, fused ${vae.ms.fused} ms (fused vs plain ${vae.agreement.toExponential(1)}).`,
    '',
    `Transition through the engine (LatentBlender, fused UNet and VAE, UNet maxBatch ${transition.maxBatch}): ${cfg.size}x${cfg.size}, ${cfg.steps} steps, depth ${cfg.depth}, ${cfg.branches} branches, ` +
      `median of ${cfg.transitionRepeats} after a warm-up.`,
    '',
    '| order | wall time | frames | UNet calls | stages (step x branches) | UNet runs | VAE decodes | everything else | of which gaps |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...(['sequential', 'batched'] as const).map((o) => {
      const r = transition.runs[o];
      const rest = r.seconds - r.unetSeconds - r.vaeSeconds;
      return `| ${o} | ${r.seconds.toFixed(2)} s | ${r.result.frames.length} | ${r.result.unetCalls} | ${r.result.stages.map((s) => `${s.idx}x${s.stems}`).join(', ')} | ${r.unetSeconds.toFixed(2)} s | ${r.vaeSeconds.toFixed(2)} s | ${rest.toFixed(2)} s | ${r.result.timings.metricSeconds.toFixed(2)} s (${r.result.timings.metricPairs} pairs) |`;
    }),
    '',
    `Batched stages: **${result.transition.ratio}x** the speed of one branch at a time. Gaps measured by ${transition.runs.batched.result.metric}.`,
    '',
    // The UNet's cost by batch size, per order: both orders denoise the same items (same tree), so
    // the ratio's UNet part is what larger batches save per item (see "What caps the transition ratio").
    ...(['sequential', 'batched'] as const).map((o) => `UNet runs by batch, ${o}: ${unetRunsText(transition.runs[o].unetByBatch)}.`),
    '',
    peak === null
      ? 'Peak GPU memory: n/a (CPU run).'
      : `Peak GPU memory ${peak} MiB (nvidia-smi memory.used, polled every 100 ms; ${poller!.baseline} MiB before the first session). Per phase: ${[...poller!.peaks].map(([k, v]) => `${k} ${v}`).join(', ')} MiB.`,
    '',
  ];

  // gpu.md keeps one section per (ep, shape) between markers, so CPU and GPU figures sit side by side.
  const mdFile = join(outDir, 'gpu.md');
  const begin = `<!-- bench:gpu ${ep} ${shapeName} begin -->`;
  const end = `<!-- bench:gpu ${ep} ${shapeName} end -->`;
  const block = [begin, ...section, end].join('\n');
  const old = existsSync(mdFile) ? await readFile(mdFile, 'utf8') : '# GPU benchmark (`npm run bench:gpu`)\n\nWritten by bench/gpu.ts; see its header for what is measured.\n';
  const md = old.includes(begin) && old.includes(end) ? old.slice(0, old.indexOf(begin)) + block + old.slice(old.indexOf(end) + end.length) : `${old.trimEnd()}\n\n${block}\n`;
  await writeFile(mdFile, md);
  console.log(section.join('\n'));
  console.log(JSON.stringify(result));
});
