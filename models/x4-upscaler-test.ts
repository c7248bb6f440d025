/**
 * A small Stable Diffusion x4 upscaler with the real model's interface, built from code, for tests:
 *
 *   model_index.json                          StableDiffusionUpscalePipeline, max_noise_level 350
 *   scheduler/scheduler_config.json           the released DDIM config (v_prediction, scaled_linear)
 *   low_res_scheduler/scheduler_config.json   the released DDPM config (linear betas)
 *   tokenizer/, text_encoder/model.onnx       the demo model's (CLIP BPE, 32-wide embeddings)
 *   unet/model.onnx                           sample [B, 7, h, w] (4 latent + 3 low-res image channels),
 *                                             timestep int64 [1], encoder_hidden_states, class_labels int64 [B]
 *   vae_decoder/model.onnx + config.json      latent_sample [B, 4, h, w] -> sample [B, 3, 4h, 4w], scaling_factor 0.08333
 *
 * Predictable behaviour: the UNet is the exact v-predictor for latents x0 ~ N(mu, s^2 I) where mu's
 * first three channels are the noise-free low-res image (the conditioning divided by
 * sqrt(abar_low[noise_level]), undoing the DDPM scaling the pipeline applied) and the fourth is the
 * mean of the text embedding. The VAE decoder multiplies by the scaling factor, takes the first three
 * channels and enlarges them 4x (bilinear). So a correct pipeline returns the low-res image enlarged,
 * plus the conditioning noise; a pipeline that forgets the scaling factor, the channel order, the
 * noise level or v-prediction does not.
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { GraphBuilder, saveModel } from './onnx/index.ts';
import { writeClipTokenizerFiles } from './tokenizer-files.ts';
import { demoSpecs, textEncoderGraph, TEXT_WIDTH } from './demo-model.ts';
import { TEST_MODELS_DIR } from './paths.ts';

export const X4_TEST_VERSION = 2;
export const X4_TEST_MODEL_DIR = join(TEST_MODELS_DIR, 'x4-upscaler');
/** The data spread around mu the test UNet is exact for. */
export const X4_TEST_DATA_STD = 0.02;
export const X4_VAE_SCALING_FACTOR = 0.08333;

/** stabilityai/stable-diffusion-x4-upscaler scheduler/scheduler_config.json. */
export const X4_SCHEDULER_CONFIG = {
  _class_name: 'DDIMScheduler',
  beta_end: 0.02,
  beta_schedule: 'scaled_linear',
  beta_start: 0.0001,
  clip_sample: false,
  num_train_timesteps: 1000,
  prediction_type: 'v_prediction',
  set_alpha_to_one: false,
  steps_offset: 1,
  trained_betas: null,
};

/** stabilityai/stable-diffusion-x4-upscaler low_res_scheduler/scheduler_config.json. */
export const X4_LOW_RES_SCHEDULER_CONFIG = {
  _class_name: 'DDPMScheduler',
  beta_end: 0.02,
  beta_schedule: 'linear',
  beta_start: 0.0001,
  clip_sample: true,
  num_train_timesteps: 1000,
  trained_betas: null,
  variance_type: 'fixed_small',
};

/** alphas_cumprod as diffusers builds them (float32 steps). */
function alphasCumprod(schedule: 'linear' | 'scaled_linear', start: number, end: number, n: number): Float32Array {
  const out = new Float32Array(n);
  let acc = 1;
  for (let i = 0; i < n; i++) {
    const f = n === 1 ? 0 : i / (n - 1);
    const beta = schedule === 'linear' ? start + f * (end - start) : (Math.sqrt(start) + f * (Math.sqrt(end) - Math.sqrt(start))) ** 2;
    acc = Math.fround(acc * Math.fround(1 - Math.fround(beta)));
    out[i] = acc;
  }
  return out;
}

function unetGraph(): GraphBuilder {
  const g = new GraphBuilder('unet');
  const sample = g.input('sample', 'float32', ['batch', 7, 'height', 'width']);
  const timestep = g.input('timestep', 'int64', [1]);
  const hidden = g.input('encoder_hidden_states', 'float32', ['batch', 'sequence', TEXT_WIDTH]);
  const labels = g.input('class_labels', 'int64', ['batch']);
  const i64 = (v: number[]) => g.constant(v, [v.length], 'int64');
  const c = (v: number) => g.constant([v], []);

  const abarT = g.constant(alphasCumprod('scaled_linear', 0.0001, 0.02, 1000));
  const abar = g.op('Reshape', [g.op('Gather', [abarT, timestep], { axis: 0 }), i64([1, 1, 1, 1])]);
  const lowT = g.constant(alphasCumprod('linear', 0.0001, 0.02, 1000));
  const low = g.op('Reshape', [g.op('Gather', [lowT, labels], { axis: 0 }), i64([-1, 1, 1, 1])]);

  const x = g.op('Slice', [sample, i64([0]), i64([4]), i64([1])]);
  const img = g.op('Slice', [sample, i64([4]), i64([7]), i64([1])]);
  const clean = g.op('Div', [img, g.op('Sqrt', [low])]);
  // mu = [clean RGB, mean(text)]: RGB through a 1x1 conv, the fourth channel from the text.
  const mix = g.constant([1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0], [4, 3, 1, 1]);
  const rgb = g.op('Conv', [clean, mix], { kernel_shape: [1, 1] });
  const text = g.op('Reshape', [g.op('ReduceMean', [hidden], { axes: [1, 2], keepdims: 1 }), i64([-1, 1, 1, 1])]);
  const mu = g.op('Add', [rgb, g.op('Mul', [text, g.constant([0, 0, 0, 1], [1, 4, 1, 1])])]);

  const s2 = c(X4_TEST_DATA_STD ** 2);
  const sa = g.op('Sqrt', [abar]);
  const one = c(1);
  const s1a = g.op('Sqrt', [g.op('Sub', [one, abar])]);
  const denom = g.op('Add', [g.op('Mul', [abar, s2]), g.op('Sub', [one, abar])]);
  const resid = g.op('Sub', [x, g.op('Mul', [sa, mu])]);
  const eps = g.op('Div', [g.op('Mul', [s1a, resid]), denom]);
  const x0 = g.op('Add', [mu, g.op('Div', [g.op('Mul', [g.op('Mul', [sa, s2]), resid]), denom])]);
  const v = g.op('Sub', [g.op('Mul', [sa, eps]), g.op('Mul', [s1a, x0])]);
  g.output(v, 'out_sample', 'float32', ['batch', 4, 'height', 'width']);
  return g;
}

function vaeDecoderGraph(): GraphBuilder {
  const g = new GraphBuilder('vae_decoder');
  const z = g.input('latent_sample', 'float32', ['batch', 4, 'latent_height', 'latent_width']);
  const i64 = (v: number[]) => g.constant(v, [v.length], 'int64');
  const latents = g.op('Mul', [z, g.constant([X4_VAE_SCALING_FACTOR], [])]);
  const rgb = g.op('Slice', [latents, i64([0]), i64([3]), i64([1])]);
  const up = g.op('Resize', [rgb, '', g.constant([1, 1, 4, 4])], { mode: 'linear' });
  g.output(up, 'sample', 'float32', ['batch', 3, 'height', 'width']);
  return g;
}

async function writeJson(file: string, value: unknown): Promise<void> {
  await writeFile(file, `${JSON.stringify(value, null, 2)}\n`);
}

export async function buildX4TestModel(dir: string = X4_TEST_MODEL_DIR): Promise<string> {
  await rm(dir, { recursive: true, force: true });
  const save = async (component: string, g: GraphBuilder) => {
    await saveModel(join(dir, component), 'model.onnx', g.toModel({ irVersion: 9, opset: 17, producer: 'blendfarm x4-upscaler-test' }));
  };
  await save('text_encoder', textEncoderGraph(demoSpecs.demo, 1));
  await save('unet', unetGraph());
  await save('vae_decoder', vaeDecoderGraph());
  await writeClipTokenizerFiles(join(dir, 'tokenizer'));
  for (const sub of ['scheduler', 'low_res_scheduler']) await mkdir(join(dir, sub), { recursive: true });
  await writeJson(join(dir, 'scheduler', 'scheduler_config.json'), X4_SCHEDULER_CONFIG);
  await writeJson(join(dir, 'low_res_scheduler', 'scheduler_config.json'), X4_LOW_RES_SCHEDULER_CONFIG);
  await writeJson(join(dir, 'vae_decoder', 'config.json'), { scaling_factor: X4_VAE_SCALING_FACTOR, latent_channels: 4, block_out_channels: [128, 256, 512] });
  await writeJson(join(dir, 'unet', 'config.json'), { in_channels: 7, out_channels: 4, num_class_embeds: 1000, cross_attention_dim: TEXT_WIDTH });
  await writeJson(join(dir, 'model_index.json'), {
    _class_name: 'StableDiffusionUpscalePipeline',
    _diffusers_version: '0.30.0',
    max_noise_level: 350,
    low_res_scheduler: ['diffusers', 'DDPMScheduler'],
    scheduler: ['diffusers', 'DDIMScheduler'],
    text_encoder: ['optimum', 'ORTModelTextEncoder'],
    tokenizer: ['transformers', 'CLIPTokenizer'],
    unet: ['optimum', 'ORTModelUnet'],
    vae_decoder: ['optimum', 'ORTModelVaeDecoder'],
  });
  await writeJson(join(dir, 'blendfarm-test.json'), { version: X4_TEST_VERSION });
  return dir;
}

export async function ensureX4TestModel(dir: string = X4_TEST_MODEL_DIR): Promise<string> {
  const marker = join(dir, 'blendfarm-test.json');
  if (existsSync(marker)) {
    try {
      if (JSON.parse(readFileSync(marker, 'utf8')).version === X4_TEST_VERSION) return dir;
    } catch {
      // rebuild
    }
  }
  return buildX4TestModel(dir);
}
