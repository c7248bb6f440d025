/**
 * Test models for the picture-input modes, with the real components' inputs and outputs and
 * closed-form behaviour a test can reason about (built from code in well under a second):
 *
 * - `inpaint`: the demo test model with an SD 2 inpainting UNet: sample [batch, 9, h, w] =
 *   [latents 4, mask 1, masked_image_latents 4] (diffusers' order), unet/config.json in_channels 9.
 *   It is the exact noise predictor for latents x0 ~ N(m * mu(c) + (1 - m) * y, s(m)^2): inside the
 *   mask (m = 1) the demo's prompt pattern mu(c) with std 0.5, outside it the masked-picture latents
 *   y with std INPAINT_KEEP_STD. So a correct pipeline (channel order, mask, masked picture) keeps
 *   the unmasked part of the picture and paints the prompt in the mask.
 *
 * - `variation`: an image-variation pipeline laid out like lambdalabs/sd-image-variations-diffusers
 *   exported to ONNX, plus a CLIP text encoder with projection for CLIP guidance:
 *     image_encoder/model.onnx   pixel_values [batch, 3, 224, 224] (CLIP-normalised) -> image_embeds [batch, D]:
 *                                the 2 x 2 average-pooled colours (12 values), times VARIATION_EMBED_SCALE * Q
 *                                (Q a fixed orthogonal 12 x 12 matrix)
 *     text_encoder/model.onnx    input_ids -> text_embeds [batch, D] (sum of fixed token vectors; BOS/EOS/pad are
 *                                zero) and last_hidden_state
 *     unet/model.onnx            encoder_hidden_states [batch, 1, D]: the exact noise predictor for latents whose
 *                                mean is the latent that decodes to the embedding's 2 x 2 colours (the inverse
 *                                of the encoder), std VARIATION_DATA_STD; so variation(encode(picture)) keeps
 *                                the picture's coarse colours and an embedding moved by guidance moves them
 *     vae_decoder, vae_encoder   the demo's
 *     feature_extractor/preprocessor_config.json, tokenizer/, scheduler/
 */
import { cp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { GraphBuilder, saveModel } from './onnx/index.ts';
import { COLOUR_MIX, DEMO_SPEC_VERSION, Net, VOCAB, demoSpecs, embeddingTable, gaussianTable, noiseLevel, promptMean, pseudoInverse, TEXT_WIDTH } from './demo-model.ts';
import { writeClipTokenizerFiles } from './tokenizer-files.ts';
import { CLIP_IMAGE_MEAN, CLIP_IMAGE_STD } from '../engine/index.ts';

const VERSION = 2;

/** Std of the inpainting test model's data outside the mask (latent units): the picture barely moves. */
export const INPAINT_KEEP_STD = 0.02;
/** Width of the variation test model's embeddings (2 x 2 regions x RGB). */
export const VARIATION_EMBED_DIM = 12;
export const VARIATION_EMBED_SCALE = 5;
export const VARIATION_DATA_STD = 0.05;

const save = async (dir: string, g: GraphBuilder) => {
  await mkdir(dir, { recursive: true });
  await saveModel(dir, 'model.onnx', g.toModel({ irVersion: 9, opset: 17, producer: 'blendfarm image-test-models' }));
};
const writeJson = (file: string, value: unknown) => writeFile(file, `${JSON.stringify(value, null, 2)}\n`);

function inpaintUnet(): GraphBuilder {
  const g = new GraphBuilder('unet');
  const n = new Net(g, 'float32');
  const all = n.input('sample', ['batch', 9, 'height', 'width']);
  const tsRaw = g.input('timestep', 'float32', [1]);
  const ctx = n.input('encoder_hidden_states', ['batch', 'sequence', TEXT_WIDTH]);
  const slice = (from: number, to: number) => n.op('Slice', [all, n.i64([from]), n.i64([to]), n.i64([1])]);
  const x = slice(0, 4);
  const m = slice(4, 5);
  const y = slice(5, 9);
  const summary = n.op('ReduceSum', [ctx, n.i64([1])], { keepdims: 0 });
  const mu = promptMean(n, x, summary, TEXT_WIDTH);
  const keep = n.op('Sub', [n.c([1]), m]);
  const target = n.op('Add', [n.op('Mul', [m, mu]), n.op('Mul', [keep, y])]);
  const s2 = n.op('Add', [n.op('Mul', [m, n.c([0.25])]), n.op('Mul', [keep, n.c([INPAINT_KEEP_STD ** 2])])]);
  const { abar, sa, s1a } = noiseLevel(n, tsRaw);
  const denom = n.op('Add', [n.op('Mul', [abar, n.op('Sub', [s2, n.c([1])])]), n.c([1])]);
  const eps = n.op('Div', [n.op('Mul', [s1a, n.op('Sub', [x, n.op('Mul', [sa, target])])]), denom]);
  n.output(eps, 'out_sample', ['batch', 4, 'height', 'width']);
  return g;
}

/** A fixed orthogonal 12 x 12 matrix (Gram-Schmidt of seeded Gaussian rows). */
export function variationBasis(): number[][] {
  const d = VARIATION_EMBED_DIM;
  const raw = gaussianTable(31, d, d, 1);
  const rows: number[][] = [];
  for (let i = 0; i < d; i++) {
    const v = Array.from(raw.subarray(i * d, (i + 1) * d));
    for (const r of rows) {
      const dot = r.reduce((a, x, k) => a + x * v[k], 0);
      for (let k = 0; k < d; k++) v[k] -= dot * r[k];
    }
    const norm = Math.hypot(...v);
    rows.push(v.map((x) => x / norm));
  }
  return rows;
}

function imageEncoder(): GraphBuilder {
  const g = new GraphBuilder('image_encoder');
  const n = new Net(g, 'float32');
  const px = n.input('pixel_values', ['batch', 3, 224, 224]);
  const pooled = n.op('Reshape', [n.op('AveragePool', [px], { kernel_shape: [112, 112], strides: [112, 112] }), n.i64([-1, VARIATION_EMBED_DIM])]);
  const q = variationBasis().flat().map((v) => v * VARIATION_EMBED_SCALE);
  const w = n.weight('visual_projection.weight', Float32Array.from(q), [VARIATION_EMBED_DIM, VARIATION_EMBED_DIM]);
  n.output(n.op('MatMul', [pooled, w]), 'image_embeds', ['batch', VARIATION_EMBED_DIM]);
  return g;
}

function textEncoderWithProjection(): GraphBuilder {
  const g = new GraphBuilder('text_encoder');
  const n = new Net(g, 'float32');
  const ids = g.input('input_ids', 'int32', ['batch', 'sequence']);
  const table = g.initializer('embeddings.token_embedding.weight', 'float32', [VOCAB, VARIATION_EMBED_DIM], embeddingTable(41, VARIATION_EMBED_DIM));
  const hidden = n.op('Gather', [table, ids], { axis: 0 });
  n.output(hidden, 'last_hidden_state', ['batch', 'sequence', VARIATION_EMBED_DIM]);
  n.output(n.op('ReduceSum', [hidden, n.i64([1])], { keepdims: 0 }), 'text_embeds', ['batch', VARIATION_EMBED_DIM]);
  return g;
}

function variationUnet(): GraphBuilder {
  const g = new GraphBuilder('unet');
  const n = new Net(g, 'float32');
  const x = n.input('sample', ['batch', 4, 'height', 'width']);
  const tsRaw = g.input('timestep', 'float32', [1]);
  const ctx = n.input('encoder_hidden_states', ['batch', 1, VARIATION_EMBED_DIM]);
  const e = n.op('Reshape', [ctx, n.i64([-1, VARIATION_EMBED_DIM])]);
  // Undo the encoder's projection: Q is orthogonal, so its inverse is its transpose.
  const basis = variationBasis();
  const qt = basis[0].map((_, j) => basis.map((row) => row[j] / VARIATION_EMBED_SCALE));
  const p = n.op('Reshape', [n.op('MatMul', [e, n.weight('proj_inverse', Float32Array.from(qt.flat()), [VARIATION_EMBED_DIM, VARIATION_EMBED_DIM])]), n.i64([-1, 3, 2, 2])]);
  // CLIP-normalised colour -> [-1, 1] pixel -> atanh -> latent (the demo VAE's inverse colour mix, in the
  // UNet's scaled latent space: the decoder's x / scaling_factor and its own x scaling_factor cancel).
  const std = n.c(CLIP_IMAGE_STD.map((s) => 2 * s), [1, 3, 1, 1]);
  const mean = n.c(CLIP_IMAGE_MEAN.map((m) => 2 * m - 1), [1, 3, 1, 1]);
  const v = n.op('Clip', [n.op('Add', [n.op('Mul', [p, std]), mean]), n.c([-0.995], []), n.c([0.995], [])]);
  const atanh = n.op('Mul', [n.op('Log', [n.op('Div', [n.op('Add', [n.c([1]), v]), n.op('Sub', [n.c([1]), v])])]), n.c([0.5])]);
  const pinv = pseudoInverse(COLOUR_MIX);
  const coarse = n.op('Conv', [atanh, n.weight('colour.weight', Float32Array.from(pinv.flat()), [4, 3, 1, 1])], { kernel_shape: [1, 1] });
  const mu = n.op('Resize', [coarse, '', '', n.op('Shape', [x])], { mode: 'nearest' });
  const { abar, sa, s1a } = noiseLevel(n, tsRaw);
  const s2 = VARIATION_DATA_STD ** 2;
  const denom = n.op('Add', [n.op('Mul', [abar, n.c([s2 - 1])]), n.c([1])]);
  n.output(n.op('Div', [n.op('Mul', [s1a, n.op('Sub', [x, n.op('Mul', [sa, mu])])]), denom]), 'out_sample', ['batch', 4, 'height', 'width']);
  return g;
}

async function fresh(dir: string, name: string): Promise<boolean> {
  const marker = join(dir, 'image-test.json');
  if (existsSync(marker)) {
    try {
      const m = JSON.parse(await readFile(marker, 'utf8'));
      if (m.version === VERSION && m.demoSpecVersion === DEMO_SPEC_VERSION && m.name === name) return false;
    } catch {
      // rebuild
    }
  }
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  return true;
}

export const imageTestModels = ['inpaint', 'variation'] as const;
export type ImageTestModel = (typeof imageTestModels)[number];

/** Builds (or keeps, when up to date) the picture-input test models under `root`; `demoDir` is the built demo test model. */
export async function buildImageTestModels(root: string, demoDir: string): Promise<Record<ImageTestModel, string>> {
  const out = { inpaint: join(root, 'inpaint'), variation: join(root, 'variation') };

  if (await fresh(out.inpaint, 'inpaint')) {
    const dir = out.inpaint;
    await cp(demoDir, dir, { recursive: true });
    await rm(join(dir, 'unet'), { recursive: true, force: true });
    await save(join(dir, 'unet'), inpaintUnet());
    await writeJson(join(dir, 'unet', 'config.json'), { sample_size: demoSpecs.demo.size / 8, in_channels: 9, out_channels: 4, cross_attention_dim: TEXT_WIDTH });
    const index = JSON.parse(await readFile(join(dir, 'model_index.json'), 'utf8'));
    await writeJson(join(dir, 'model_index.json'), { ...index, _class_name: 'ORTStableDiffusionInpaintPipeline' });
    const meta = JSON.parse(await readFile(join(dir, 'blendfarm.json'), 'utf8'));
    await writeJson(join(dir, 'blendfarm.json'), { ...meta, name: 'blendfarm-test-inpaint' });
    await writeJson(join(dir, 'image-test.json'), { version: VERSION, demoSpecVersion: DEMO_SPEC_VERSION, name: 'inpaint' });
  }

  if (await fresh(out.variation, 'variation')) {
    const dir = out.variation;
    for (const c of ['vae_decoder', 'vae_encoder', 'scheduler']) await cp(join(demoDir, c), join(dir, c), { recursive: true });
    await save(join(dir, 'image_encoder'), imageEncoder());
    await save(join(dir, 'text_encoder'), textEncoderWithProjection());
    await save(join(dir, 'unet'), variationUnet());
    await writeJson(join(dir, 'unet', 'config.json'), { sample_size: 8, in_channels: 4, cross_attention_dim: VARIATION_EMBED_DIM });
    await writeClipTokenizerFiles(join(dir, 'tokenizer'));
    await mkdir(join(dir, 'feature_extractor'), { recursive: true });
    await writeJson(join(dir, 'feature_extractor', 'preprocessor_config.json'), {
      crop_size: { height: 224, width: 224 },
      do_center_crop: true,
      do_normalize: true,
      do_resize: true,
      image_mean: CLIP_IMAGE_MEAN,
      image_std: CLIP_IMAGE_STD,
      image_processor_type: 'CLIPImageProcessor',
      resample: 3,
      size: { shortest_edge: 224 },
    });
    await writeJson(join(dir, 'model_index.json'), {
      _class_name: 'StableDiffusionImageVariationPipeline',
      _diffusers_version: '0.30.0',
      image_encoder: ['transformers', 'CLIPVisionModelWithProjection'],
      feature_extractor: ['transformers', 'CLIPImageProcessor'],
      text_encoder: ['transformers', 'CLIPTextModelWithProjection'],
      tokenizer: ['transformers', 'CLIPTokenizer'],
      unet: ['diffusers', 'UNet2DConditionModel'],
      vae_decoder: ['optimum', 'ORTModelVaeDecoder'],
      vae_encoder: ['optimum', 'ORTModelVaeEncoder'],
      scheduler: ['diffusers', 'PNDMScheduler'],
    });
    // The closed-form UNet lands exactly on mu_u + g (mu_c - mu_u), so classifier-free guidance above 1
    // would push colours to saturation every frame: the test model renders without it by default.
    await writeJson(join(dir, 'blendfarm.json'), { name: 'blendfarm-test-variation', family: 'sd1', defaults: { width: 64, height: 64, steps: 8, guidance: 1 } });
    await writeJson(join(dir, 'image-test.json'), { version: VERSION, demoSpecVersion: DEMO_SPEC_VERSION, name: 'variation' });
  }
  return out;
}
