/**
 * The project's own small Stable Diffusion pipelines in the exact diffusers/optimum ONNX layout,
 * built from code (no downloads). They serve as the built-in demo model and as test models.
 *
 * The UNet is not a trained network but the *exact* noise predictor for a known data distribution:
 * latents x0 ~ N(mu(c), s^2 I), where mu(c) is a smooth colour pattern whose offsets, amplitudes,
 * spatial frequencies and phases come from the text embedding c. For x_t = sqrt(abar) x0 + sqrt(1-abar) eps
 * the optimal prediction is
 *     E[eps | x_t] = sqrt(1-abar) (x_t - sqrt(abar) mu) / (abar s^2 + 1 - abar)
 * so a correct sampler must land on N(mu, s^2), classifier-free guidance g lands on the mean
 * mu_u + g (mu_c - mu_u), different prompts give different pictures, and the same seed gives the
 * same picture. abar(t) comes from the scheduler's own beta table, interpolated in log-sigma like
 * diffusers does for fractional (Karras) timesteps.
 *
 * Tokens map to fixed random vectors (BOS/EOS/pad map to zero, so padding does not dilute a prompt);
 * the "VAE decoder" is a fixed colour mix, a tanh and an 8x bilinear upsampling.
 */
import { mkdir, writeFile, rm } from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { GraphBuilder, saveModel } from './onnx/index.ts';
import { writeClipTokenizerFiles } from './tokenizer-files.ts';
import { DDIMScheduler, SeededRandom, float32ToFloat16 } from '../engine/index.ts';

export const DEMO_SPEC_VERSION = 2;

export interface DemoModelSpec {
  dtype: 'float32' | 'float16';
  prediction: 'epsilon' | 'v_prediction';
  xl: boolean;
  /** Timestep input type; real SD 1.5 exports take int64, others float. */
  timestepType: 'float32' | 'float16' | 'int64';
  /** Put the large embedding tables in an external weights file next to model.onnx. */
  externalData: boolean;
  /** Default image size written into the folder's blendfarm.json. */
  size: number;
}

export const demoSpecs = {
  /** The built-in demo model (also the main fp32 test model). */
  demo: { dtype: 'float32', prediction: 'epsilon', xl: false, timestepType: 'float32', externalData: true, size: 256 },
  fp16: { dtype: 'float16', prediction: 'epsilon', xl: false, timestepType: 'int64', externalData: false, size: 256 },
  vpred: { dtype: 'float32', prediction: 'v_prediction', xl: false, timestepType: 'float32', externalData: false, size: 256 },
  xl: { dtype: 'float16', prediction: 'epsilon', xl: true, timestepType: 'float16', externalData: false, size: 256 },
} satisfies Record<string, DemoModelSpec>;

/** The distribution the demo UNet is exact for; tests read these to check where samplers land. */
export const DEMO_DATA_STD = 0.5;
export const VOCAB = 49408;
export const TEXT_WIDTH = 32;
export const TEXT_WIDTH_2 = 48;
export const POOLED_WIDTH = 24;
const CHANNELS = 4;
const PARAMS = 5;
const VAE_SCALE = 0.18215;

/** The noise schedule the demo models are trained for, written to scheduler/scheduler_config.json. */
function schedulerConfig(prediction: DemoModelSpec['prediction']) {
  return {
    _class_name: 'PNDMScheduler',
    num_train_timesteps: 1000,
    beta_start: 0.00085,
    beta_end: 0.012,
    beta_schedule: 'scaled_linear',
    steps_offset: 1,
    set_alpha_to_one: false,
    skip_prk_steps: true,
    clip_sample: false,
    prediction_type: prediction,
    timestep_spacing: 'leading',
  };
}

/** log sigma(t) for every training timestep, from the schedulers' own alphas_cumprod table. */
export function logSigmaTable(): Float32Array {
  const abar = new DDIMScheduler(schedulerConfig('epsilon')).alphasCumprod;
  return Float32Array.from(abar, (a) => Math.log(Math.sqrt((1 - a) / a)));
}

export function gaussianTable(seed: number, rows: number, cols: number, scale: number): Float32Array {
  const rng = new SeededRandom(seed);
  const out = new Float32Array(rows * cols);
  for (let i = 0; i < out.length; i++) out[i] = rng.nextGaussian() * scale;
  return out;
}

/** Token embedding table: special tokens (BOS 49406, EOS/pad 49407, SD2 pad "!" = 0) are zero. */
export function embeddingTable(seed: number, width: number): Float32Array {
  const e = gaussianTable(seed, VOCAB, width, 0.35);
  for (const id of [0, 49406, 49407]) e.fill(0, id * width, (id + 1) * width);
  return e;
}

/** Small helper over GraphBuilder for float graphs in a model dtype (also used by the image test models). */
export class Net {
  constructor(
    readonly g: GraphBuilder,
    readonly dtype: 'float32' | 'float16',
  ) {}
  c(values: number[] | Float32Array, dims?: number[]): string {
    return this.g.constant(values, dims);
  }
  i64(values: number[], dims?: number[]): string {
    return this.g.constant(values, dims ?? [values.length], 'int64');
  }
  op(type: string, inputs: string[], attrs?: Record<string, unknown>): string {
    return this.g.op(type, inputs, attrs as never);
  }
  /** A float model input, cast to float32 for the arithmetic. */
  input(name: string, shape: Array<number | string>): string {
    const v = this.g.input(name, this.dtype, shape);
    return this.dtype === 'float16' ? this.op('Cast', [v], { to: 1 }) : v;
  }
  output(value: string, name: string, shape: Array<number | string>): void {
    const v = this.dtype === 'float16' ? this.op('Cast', [value], { to: 10 }) : value;
    this.g.output(v, name, this.dtype, shape);
  }
  /** A weight table, stored in the model's dtype and used as float32. */
  weight(name: string, data: Float32Array, dims: number[]): string {
    if (this.dtype === 'float16') {
      const w = this.g.initializer(name, 'float16', dims, float32ToFloat16(data));
      return this.op('Cast', [w], { to: 1 });
    }
    return this.g.initializer(name, 'float32', dims, data);
  }
}

export function textEncoderGraph(spec: DemoModelSpec, which: 1 | 2): GraphBuilder {
  const g = new GraphBuilder(which === 1 ? 'text_encoder' : 'text_encoder_2');
  const n = new Net(g, spec.dtype);
  const width = which === 1 ? TEXT_WIDTH : TEXT_WIDTH_2;
  const ids = g.input('input_ids', 'int32', ['batch', 'sequence']);
  // Gather on the stored table first (cheap), then cast the 77 rows, not the 49408.
  const tableData = embeddingTable(which === 1 ? 11 : 12, width);
  const table =
    spec.dtype === 'float16'
      ? g.initializer('embeddings.token_embedding.weight', 'float16', [VOCAB, width], float32ToFloat16(tableData))
      : g.initializer('embeddings.token_embedding.weight', 'float32', [VOCAB, width], tableData);
  const gathered = n.op('Gather', [table, ids], { axis: 0 });
  const hidden = spec.dtype === 'float16' ? n.op('Cast', [gathered], { to: 1 }) : gathered;
  const pooledSum = n.op('ReduceSum', [hidden, n.i64([1])], { keepdims: 0 });
  const shape = ['batch', 'sequence', width];
  n.output(hidden, 'last_hidden_state', shape);
  if (which === 1) n.output(pooledSum, 'pooler_output', ['batch', width]);
  else {
    const proj = n.weight('text_projection.weight', gaussianTable(13, width, POOLED_WIDTH, 1 / Math.sqrt(width)), [width, POOLED_WIDTH]);
    n.output(n.op('Tanh', [n.op('MatMul', [pooledSum, proj])]), 'text_embeds', ['batch', POOLED_WIDTH]);
  }
  if (spec.xl) {
    // SDXL pipelines read the penultimate hidden state (hidden_states.1 of 0..2 here): make the
    // others different so picking the wrong layer shows up in tests.
    n.output(n.op('Mul', [hidden, n.c([0.5])]), 'hidden_states.0', shape);
    n.output(n.op('Identity', [hidden]), 'hidden_states.1', shape);
    n.output(n.op('Mul', [hidden, n.c([-1])]), 'hidden_states.2', shape);
  }
  return g;
}

function unetGraph(spec: DemoModelSpec): GraphBuilder {
  const g = new GraphBuilder('unet');
  const n = new Net(g, spec.dtype);
  const ctxWidth = spec.xl ? TEXT_WIDTH + TEXT_WIDTH_2 : TEXT_WIDTH;
  const x = n.input('sample', ['batch', CHANNELS, 'height', 'width']);
  const tsRaw = g.input('timestep', spec.timestepType, [1]);
  const ctx = n.input('encoder_hidden_states', ['batch', 'sequence', ctxWidth]);

  // Prompt summary: sum over tokens (special tokens embed to zero), plus SDXL's pooled embedding.
  let summary = n.op('ReduceSum', [ctx, n.i64([1])], { keepdims: 0 });
  let summaryWidth = ctxWidth;
  if (spec.xl) {
    const pooled = n.input('text_embeds', ['batch', POOLED_WIDTH]);
    g.input('time_ids', spec.dtype, ['batch', 6]);
    summary = n.op('Concat', [summary, pooled], { axis: 1 });
    summaryWidth += POOLED_WIDTH;
  }
  const mu = promptMean(n, x, summary, summaryWidth);
  const { abar, sa, s1a } = noiseLevel(n, tsRaw);
  const s2 = DEMO_DATA_STD * DEMO_DATA_STD;
  const denom = n.op('Add', [n.op('Mul', [abar, n.c([s2 - 1])]), n.c([1])]);
  const resid = n.op('Sub', [x, n.op('Mul', [sa, mu])]);
  const eps = n.op('Div', [n.op('Mul', [s1a, resid]), denom]);
  let out = eps;
  if (spec.prediction === 'v_prediction') {
    const x0 = n.op('Add', [mu, n.op('Div', [n.op('Mul', [n.op('Mul', [sa, n.c([s2])]), resid]), denom])]);
    out = n.op('Sub', [n.op('Mul', [sa, eps]), n.op('Mul', [s1a, x0])]);
  }
  n.output(out, 'out_sample', ['batch', CHANNELS, 'height', 'width']);
  return g;
}

/**
 * The demo UNet's data mean mu(c): a smooth colour pattern (4 x h x w, h and w taken from the
 * latents `x`) whose offsets, amplitudes, spatial frequencies and phases come from the prompt
 * summary vector (batch x summaryWidth).
 */
export function promptMean(n: Net, x: string, summary: string, summaryWidth: number): string {
  const g = n.g;
  const w = n.weight('mu.weight', gaussianTable(21, summaryWidth, CHANNELS * PARAMS, 0.9 / Math.sqrt(summaryWidth)), [summaryWidth, CHANNELS * PARAMS]);
  const b = n.weight('mu.bias', gaussianTable(22, 1, CHANNELS * PARAMS, 0.6), [CHANNELS * PARAMS]);
  const params = n.op('Reshape', [n.op('Tanh', [n.op('Add', [n.op('MatMul', [summary, w]), b])]), n.i64([-1, PARAMS, CHANNELS, 1, 1])]);
  const p = (k: number) => n.op('Gather', [params, g.constant([k], [], 'int64')], { axis: 1 });
  const [offset, amp, fx, fy, phase] = [0, 1, 2, 3, 4].map(p);

  // Normalised pixel coordinates u = x / width, v = y / height, from the input's dynamic shape.
  const shape = n.op('Shape', [x]);
  const dimAt = (k: number) => n.op('Gather', [shape, g.constant([k], [], 'int64')], { axis: 0 });
  const coords = (dim: string, reshapeTo: number[]) => {
    const r = n.op('Cast', [n.op('Range', [g.constant([0], [], 'int64'), dim, g.constant([1], [], 'int64')])], { to: 1 });
    return n.op('Reshape', [n.op('Div', [r, n.op('Cast', [dim], { to: 1 })]), n.i64(reshapeTo)]);
  };
  const v = coords(dimAt(2), [1, 1, -1, 1]);
  const u = coords(dimAt(3), [1, 1, 1, -1]);
  const twoPi = n.c([2 * Math.PI * 2]); // frequencies in [-2, 2] cycles per image
  const arg = n.op('Add', [
    n.op('Mul', [n.op('Add', [n.op('Mul', [fx, u]), n.op('Mul', [fy, v])]), twoPi]),
    n.op('Mul', [phase, n.c([Math.PI])]),
  ]);
  return n.op('Add', [n.op('Mul', [offset, n.c([0.9])]), n.op('Mul', [n.op('Mul', [amp, n.c([0.7])]), n.op('Cos', [arg])])]);
}

/** abar(t), sqrt(abar) and sqrt(1 - abar) at the (possibly fractional) timestep input `tsRaw`. */
export function noiseLevel(n: Net, tsRaw: string): { abar: string; sa: string; s1a: string } {
  const g = n.g;
  // abar(t) from the log-sigma table, linearly interpolated for fractional timesteps.
  const tf = n.op('Cast', [tsRaw], { to: 1 });
  const lo = n.op('Clip', [n.op('Floor', [tf]), n.c([0], []), n.c([999], [])]);
  const hi = n.op('Min', [n.op('Add', [lo, n.c([1])]), n.c([999])]);
  const frac = n.op('Sub', [tf, lo]);
  const table = g.initializer('noise_schedule.log_sigma', 'float32', [1000], logSigmaTable());
  const at = (idx: string) => n.op('Gather', [table, n.op('Cast', [idx], { to: 7 })], { axis: 0 });
  const logSigma = n.op('Add', [n.op('Mul', [at(lo), n.op('Sub', [n.c([1]), frac])]), n.op('Mul', [at(hi), frac])]);
  const sigma2 = n.op('Exp', [n.op('Mul', [logSigma, n.c([2])])]);
  const abar = n.op('Reciprocal', [n.op('Add', [sigma2, n.c([1])])]);
  const sa = n.op('Sqrt', [abar]);
  const s1a = n.op('Sqrt', [n.op('Sub', [n.c([1]), abar])]);
  return { abar, sa, s1a };
}

/** Fixed latent-to-colour mix; shared by the decoder and (inverted) by the encoder. */
export const COLOUR_MIX = [
  [0.95, 0.1, -0.15, 0.35],
  [-0.1, 0.9, 0.2, -0.3],
  [0.2, -0.15, 0.95, 0.25],
];

export function vaeDecoderGraph(spec: DemoModelSpec): GraphBuilder {
  const g = new GraphBuilder('vae_decoder');
  const n = new Net(g, spec.dtype);
  const z = n.op('Mul', [n.input('latent_sample', ['batch', CHANNELS, 'latent_height', 'latent_width']), n.c([VAE_SCALE])]);
  const wts = n.weight('conv.weight', Float32Array.from(COLOUR_MIX.flat()), [3, CHANNELS, 1, 1]);
  const rgb = n.op('Tanh', [n.op('Conv', [z, wts], { kernel_shape: [1, 1] })]);
  const up = n.op('Resize', [rgb, '', n.c([1, 1, 8, 8])], { mode: 'linear' });
  n.output(up, 'sample', ['batch', 3, 'height', 'width']);
  return g;
}

export function vaeEncoderGraph(spec: DemoModelSpec): GraphBuilder {
  const g = new GraphBuilder('vae_encoder');
  const n = new Net(g, spec.dtype);
  const img = n.input('sample', ['batch', 3, 'height', 'width']);
  const pooled = n.op('AveragePool', [img], { kernel_shape: [8, 8], strides: [8, 8] });
  // atanh, clipped away from +-1, undoes the decoder's tanh.
  const c = n.op('Clip', [pooled, n.c([-0.995], []), n.c([0.995], [])]);
  const atanh = n.op('Mul', [n.op('Log', [n.op('Div', [n.op('Add', [n.c([1]), c]), n.op('Sub', [n.c([1]), c])])]), n.c([0.5])]);
  const pinv = pseudoInverse(COLOUR_MIX).map((row) => row.map((v) => v / VAE_SCALE));
  const wts = n.weight('conv.weight', Float32Array.from(pinv.flat()), [CHANNELS, 3, 1, 1]);
  n.output(n.op('Conv', [atanh, wts], { kernel_shape: [1, 1] }), 'latent_sample', ['batch', CHANNELS, 'latent_height', 'latent_width']);
  return g;
}

/** Moore-Penrose inverse of a 3x4 matrix A: A^T (A A^T)^-1. */
export function pseudoInverse(a: number[][]): number[][] {
  const aat = a.map((r) => a.map((s) => r.reduce((acc, v, k) => acc + v * s[k], 0)));
  const inv = invert3(aat);
  return a[0].map((_, j) => inv[0].map((_, i) => a.reduce((acc, row, k) => acc + row[j] * inv[k][i], 0)));
}

function invert3(m: number[][]): number[][] {
  const [[a, b, c], [d, e, f], [g, h, i]] = m;
  const det = a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g);
  return [
    [(e * i - f * h) / det, (c * h - b * i) / det, (b * f - c * e) / det],
    [(f * g - d * i) / det, (a * i - c * g) / det, (c * d - a * f) / det],
    [(d * h - e * g) / det, (b * g - a * h) / det, (a * e - b * d) / det],
  ];
}

async function writeJson(file: string, value: unknown): Promise<void> {
  await writeFile(file, `${JSON.stringify(value, null, 2)}\n`);
}

/** Writes a complete pipeline folder for `spec` into `dir` (replacing what is there). */
export async function buildDemoModel(dir: string, spec: DemoModelSpec, name = 'blendfarm-demo'): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const save = async (component: string, g: GraphBuilder, external: boolean) => {
    await mkdir(join(dir, component), { recursive: true });
    const built = g.toModel({
      irVersion: 9,
      opset: 17,
      producer: 'blendfarm demo-model',
      docString: 'Closed-form noise predictor for a known latent distribution; not a trained model.',
      externalData: external ? { location: 'model.onnx_data', minBytes: 1 << 16 } : undefined,
    });
    await saveModel(join(dir, component), 'model.onnx', built, external ? 'model.onnx_data' : undefined);
  };
  await save('text_encoder', textEncoderGraph(spec, 1), spec.externalData);
  if (spec.xl) await save('text_encoder_2', textEncoderGraph(spec, 2), spec.externalData);
  await save('unet', unetGraph(spec), false);
  await save('vae_decoder', vaeDecoderGraph(spec), false);
  await save('vae_encoder', vaeEncoderGraph(spec), false);

  await writeClipTokenizerFiles(join(dir, 'tokenizer'));
  if (spec.xl) await writeClipTokenizerFiles(join(dir, 'tokenizer_2'));
  await mkdir(join(dir, 'scheduler'), { recursive: true });
  await writeJson(join(dir, 'scheduler', 'scheduler_config.json'), schedulerConfig(spec.prediction));
  await writeJson(join(dir, 'vae_decoder', 'config.json'), { scaling_factor: VAE_SCALE, latent_channels: CHANNELS });
  await writeJson(join(dir, 'unet', 'config.json'), { sample_size: spec.size / 8, in_channels: CHANNELS, cross_attention_dim: spec.xl ? TEXT_WIDTH + TEXT_WIDTH_2 : TEXT_WIDTH });
  await writeJson(join(dir, 'model_index.json'), {
    _class_name: spec.xl ? 'ORTStableDiffusionXLPipeline' : 'ORTStableDiffusionPipeline',
    _diffusers_version: '0.30.0',
    text_encoder: ['optimum', 'ORTModelTextEncoder'],
    ...(spec.xl ? { text_encoder_2: ['optimum', 'ORTModelTextEncoder'], tokenizer_2: ['transformers', 'CLIPTokenizer'] } : {}),
    unet: ['optimum', 'ORTModelUnet'],
    vae_decoder: ['optimum', 'ORTModelVaeDecoder'],
    vae_encoder: ['optimum', 'ORTModelVaeEncoder'],
    tokenizer: ['transformers', 'CLIPTokenizer'],
    scheduler: ['diffusers', 'PNDMScheduler'],
  });
  await writeJson(join(dir, 'blendfarm.json'), {
    name,
    demo: true,
    specVersion: DEMO_SPEC_VERSION,
    spec,
    family: spec.xl ? 'sdxl' : spec.prediction === 'v_prediction' ? 'sd2-v' : 'sd1',
    defaults: { width: spec.size, height: spec.size, steps: 12, guidance: 3, scheduler: 'dpmpp_2m' },
  });
}

/** Builds the folder unless an up-to-date copy is already there; returns the folder. */
export async function ensureDemoModel(dir: string, spec: DemoModelSpec = demoSpecs.demo, name?: string): Promise<string> {
  const marker = join(dir, 'blendfarm.json');
  if (existsSync(marker)) {
    try {
      const meta = JSON.parse(readFileSync(marker, 'utf8'));
      if (meta.specVersion === DEMO_SPEC_VERSION && JSON.stringify(meta.spec) === JSON.stringify(spec)) return dir;
    } catch {
      // Rebuild a damaged folder.
    }
  }
  await buildDemoModel(dir, spec, name);
  return dir;
}
