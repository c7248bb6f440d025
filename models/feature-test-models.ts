/**
 * Test models for what real exports have and the demo models do not: each is a copy of a demo test
 * model with one component replaced by a small graph that has exactly the inputs, dtypes and config
 * of the real thing, and computes something a test can check against a formula.
 *
 * - `lcm`: unet/config.json has time_cond_proj_dim 8 and the UNet takes `timestep_cond`
 *   [batch, 8] (and an int64 [batch] timestep, as older exports do). Its out_sample is the
 *   timestep_cond vector tiled over each item's latent, so a test reads back the guidance embedding
 *   the engine fed.
 * - `fp16-vae` (force_upcast: true) and `fp16-vae-noflag` (force_upcast: false): an fp16 VAE decoder
 *   that overflows in fp16 the way SDXL's does: rgb = conv1x1(z) (fp16 weights), and an fp16
 *   intermediate of rgb x 1e5 is inf wherever |rgb| > 0.655, which turns into NaN; in fp32 the same
 *   graph gives tanh(rgb), nearest-upsampled 8x.
 * - `fp16-vae-external`: the same decoder with its fp16 conv weights in an external data file, which the
 *   engine cannot upcast in memory, so it must refuse with a message naming the fix.
 * - `xl-nohidden`: the SDXL test model with text encoders that have no hidden_states.N outputs.
 */
import { cp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { GraphBuilder, saveModel } from './onnx/index.ts';
import { demoSpecs, ensureDemoModel, textEncoderGraph, DEMO_SPEC_VERSION } from './demo-model.ts';
import { float32ToFloat16 } from '../engine/index.ts';

/** Version of these builders; bump to rebuild. */
const FEATURE_VERSION = 2;

/** The LCM test UNet's timestep_cond width. */
export const LCM_TEST_DIM = 8;
/** The fp16 test VAE's 1x1 colour mix (3 x 4), exact in fp16. */
export const FP16_VAE_WEIGHTS = [
  [0.5, 0.25, -0.25, 0.125],
  [-0.25, 0.5, 0.25, -0.125],
  [0.25, -0.125, 0.5, 0.25],
];
/** The fp16 test VAE's output bias (a Constant node, to exercise constants too). */
export const FP16_VAE_BIAS = [0.0625, -0.0625, 0.125];
export const FP16_VAE_SCALE = 0.18215;

const save = async (dir: string, g: GraphBuilder, external = false) => {
  const built = g.toModel({ irVersion: 8, opset: 17, producer: 'blendfarm feature-test-models', externalData: external ? { location: 'model.onnx_data', minBytes: 20 } : undefined });
  await saveModel(dir, 'model.onnx', built, external ? 'model.onnx_data' : undefined);
};

function lcmUnet(): GraphBuilder {
  const g = new GraphBuilder('unet');
  const x = g.input('sample', 'float32', ['batch', 4, 'height', 'width']);
  g.input('timestep', 'int64', ['batch']);
  g.input('encoder_hidden_states', 'float32', ['batch', 'sequence', 32]);
  const cond = g.input('timestep_cond', 'float32', ['batch', LCM_TEST_DIM]);
  const shape = g.op('Shape', [x]);
  const perItem = g.op('ReduceProd', [g.op('Slice', [shape, g.constant([1], [1], 'int64'), g.constant([4], [1], 'int64')])], { keepdims: 1 });
  const reps = g.op('Concat', [g.constant([1], [1], 'int64'), g.op('Div', [perItem, g.constant([LCM_TEST_DIM], [1], 'int64')])], { axis: 0 });
  const tiled = g.op('Reshape', [g.op('Tile', [cond, reps]), shape]);
  g.output(tiled, 'out_sample', 'float32', ['batch', 4, 'height', 'width']);
  return g;
}

function fp16VaeDecoder(): GraphBuilder {
  const g = new GraphBuilder('vae_decoder');
  const z = g.op('Cast', [g.input('latent_sample', 'float16', ['batch', 4, 'latent_height', 'latent_width'])], { to: 1 });
  const w = g.op('Cast', [g.initializer('conv.weight', 'float16', [3, 4, 1, 1], float32ToFloat16(Float32Array.from(FP16_VAE_WEIGHTS.flat())))], { to: 1 });
  const scaled = g.op('Mul', [z, g.constant([FP16_VAE_SCALE])]);
  const bias = g.op('Cast', [g.op('Constant', [], { value: { tensor: { dtype: 'float16', dims: [1, 3, 1, 1], data: float32ToFloat16(Float32Array.from(FP16_VAE_BIAS)) } } })], { to: 1 });
  const rgb = g.op('Add', [g.op('Conv', [scaled, w], { kernel_shape: [1, 1] }), bias]);
  // The overflow: an fp16 intermediate of rgb x 1e5 (inf beyond 65504), and inf - inf = NaN.
  const big16 = g.op('Cast', [g.op('Mul', [rgb, g.constant([1e5])])], { to: 10 });
  const big = g.op('Cast', [big16], { to: 1 });
  const nan = g.op('Mul', [g.op('Sub', [big, big]), g.constant([0])]);
  const out = g.op('Add', [g.op('Tanh', [rgb]), nan]);
  const up = g.op('Resize', [out, '', g.constant([1, 1, 8, 8])], { mode: 'nearest', coordinate_transformation_mode: 'asymmetric', nearest_mode: 'floor' });
  g.output(g.op('Cast', [up], { to: 10 }), 'sample', 'float16', ['batch', 3, 'height', 'width']);
  return g;
}

async function writeJson(file: string, value: unknown): Promise<void> {
  await writeFile(file, `${JSON.stringify(value, null, 2)}\n`);
}

async function fresh(dir: string, from: string, name: string): Promise<boolean> {
  const marker = join(dir, 'feature-test.json');
  if (existsSync(marker)) {
    const m = JSON.parse(await readFile(marker, 'utf8'));
    if (m.version === FEATURE_VERSION && m.demoSpecVersion === DEMO_SPEC_VERSION && m.name === name) return false;
  }
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  await cp(from, dir, { recursive: true });
  return true;
}

async function finish(dir: string, name: string): Promise<void> {
  const meta = JSON.parse(await readFile(join(dir, 'blendfarm.json'), 'utf8'));
  await writeJson(join(dir, 'blendfarm.json'), { ...meta, name: `blendfarm-test-${name}` });
  await writeJson(join(dir, 'feature-test.json'), { version: FEATURE_VERSION, demoSpecVersion: DEMO_SPEC_VERSION, name });
}

export const featureTestModels = ['lcm', 'fp16-vae', 'fp16-vae-noflag', 'fp16-vae-external', 'xl-nohidden'] as const;
export type FeatureTestModel = (typeof featureTestModels)[number];

/** Builds (or keeps, when up to date) every feature test model under `root`; `demoDirs` are the built demo test models. */
export async function buildFeatureTestModels(root: string, demoDirs: { demo: string; xl: string }): Promise<Record<FeatureTestModel, string>> {
  const out = {} as Record<FeatureTestModel, string>;
  const dirOf = (n: FeatureTestModel) => (out[n] = join(root, n));

  if (await fresh(dirOf('lcm'), demoDirs.demo, 'lcm')) {
    const dir = out.lcm;
    await save(join(dir, 'unet'), lcmUnet());
    const cfg = JSON.parse(await readFile(join(dir, 'unet', 'config.json'), 'utf8'));
    await writeJson(join(dir, 'unet', 'config.json'), { ...cfg, time_cond_proj_dim: LCM_TEST_DIM });
    // An LCM export's blendfarm-less folder: drop the demo's explicit defaults so the engine's own LCM defaults apply.
    const meta = JSON.parse(await readFile(join(dir, 'blendfarm.json'), 'utf8'));
    delete meta.defaults;
    await writeJson(join(dir, 'blendfarm.json'), meta);
    await finish(dir, 'lcm');
  }
  for (const variant of ['fp16-vae', 'fp16-vae-noflag', 'fp16-vae-external'] as const) {
    if (!(await fresh(dirOf(variant), demoDirs.demo, variant))) continue;
    const dir = out[variant];
    await rm(join(dir, 'vae_decoder'), { recursive: true, force: true });
    await save(join(dir, 'vae_decoder'), fp16VaeDecoder(), variant === 'fp16-vae-external');
    await writeJson(join(dir, 'vae_decoder', 'config.json'), {
      _class_name: 'AutoencoderKL',
      block_out_channels: [128, 256, 512, 512],
      latent_channels: 4,
      scaling_factor: FP16_VAE_SCALE,
      force_upcast: variant !== 'fp16-vae-noflag',
    });
    await finish(dir, variant);
  }
  if (await fresh(dirOf('xl-nohidden'), demoDirs.xl, 'xl-nohidden')) {
    const dir = out['xl-nohidden'];
    // The same encoders without the hidden_states.N outputs (spec.xl off only drops those).
    const spec = { ...demoSpecs.xl, xl: false };
    for (const [component, which] of [['text_encoder', 1], ['text_encoder_2', 2]] as const) {
      await rm(join(dir, component, 'model.onnx'), { force: true });
      await save(join(dir, component), textEncoderGraph(spec, which));
    }
    await finish(dir, 'xl-nohidden');
  }
  return out;
}

export { ensureDemoModel };
