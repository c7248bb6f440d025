/**
 * Reads a Stable Diffusion pipeline exported to ONNX in the diffusers / optimum folder layout and
 * works out what it is (family, defaults), with an error naming the file for anything missing.
 *
 *   model_index.json
 *   text_encoder/model.onnx      text_encoder_2/model.onnx (SDXL)
 *   unet/model.onnx              (+ external weights next to it, e.g. model.onnx_data)
 *   vae_decoder/model.onnx       vae_encoder/model.onnx (optional, for image input)
 *   tokenizer/vocab.json + merges.txt     tokenizer_2/ (SDXL)
 *   scheduler/scheduler_config.json
 *
 * What kind of pipeline it is (`kind`), so a worker can say which jobs it can take:
 *   text2img         the plain layout above
 *   inpaint          unet/config.json in_channels 9 (or an *Inpaint* _class_name): SD 2 / 1.5 inpainting
 *   image-variation  image_encoder/model.onnx (CLIP vision with projection, output image_embeds) and
 *                    feature_extractor/preprocessor_config.json; text_encoder/ is then CLIP's text
 *                    model *with projection* (output text_embeds), used only for CLIP guidance
 */
import { accessSync, constants, existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { checkReadableFile, FileAccessError, fileAccessIssue, ModelFileError } from '../onnx/session.ts';
import type { SchedulerKind } from '../schedulers/index.ts';

export const MODEL_KINDS = ['text2img', 'inpaint', 'image-variation'] as const;
/** What a pipeline folder can render: text-to-image (blends, movies), inpainting transitions, image variations. */
export type ModelKind = (typeof MODEL_KINDS)[number];

export type ModelFamily = 'sd1' | 'sd2' | 'sd2-v' | 'sd-turbo' | 'sdxl' | 'sdxl-turbo';

export interface FamilyDefaults {
  width: number;
  height: number;
  steps: number;
  guidance: number;
  scheduler: SchedulerKind;
}

/** Defaults a user of each family expects (the sizes and settings the models were trained for). */
export const familyDefaults: Record<ModelFamily, FamilyDefaults> = {
  sd1: { width: 512, height: 512, steps: 25, guidance: 7.5, scheduler: 'dpmpp_2m' },
  sd2: { width: 512, height: 512, steps: 25, guidance: 7.5, scheduler: 'dpmpp_2m' },
  'sd2-v': { width: 768, height: 768, steps: 25, guidance: 7.5, scheduler: 'dpmpp_2m' },
  'sd-turbo': { width: 512, height: 512, steps: 2, guidance: 0, scheduler: 'euler' },
  // Guidance 4: the reference latent blending's SDXL default (BlendingEngine.set_guidance_scale).
  sdxl: { width: 1024, height: 1024, steps: 30, guidance: 4, scheduler: 'dpmpp_2m' },
  'sdxl-turbo': { width: 512, height: 512, steps: 4, guidance: 0, scheduler: 'euler' },
};

/** What an LCM-distilled UNet (time_cond_proj_dim in unet/config.json) changes in its family's defaults. */
export const lcmDefaults: Pick<FamilyDefaults, 'steps' | 'guidance' | 'scheduler'> = { steps: 4, guidance: 8.5, scheduler: 'lcm' };

/**
 * Image-variation models (zzbuzzard/sd-variant-anim's settings for lambdalabs/sd-image-variations-diffusers):
 * 20 DPM++ steps, classifier-free guidance 4.
 */
export const imageVariationDefaults: Pick<FamilyDefaults, 'steps' | 'guidance' | 'scheduler'> = { steps: 20, guidance: 4, scheduler: 'dpmpp_2m' };

export interface ModelFolder {
  dir: string;
  name: string;
  family: ModelFamily;
  isXL: boolean;
  textEncoder: string;
  textEncoder2?: string;
  unet: string;
  vaeDecoder: string;
  vaeEncoder?: string;
  tokenizerDir: string;
  tokenizer2Dir?: string;
  schedulerConfig: Record<string, unknown>;
  /** diffusers' vae `scaling_factor` (0.18215 SD, 0.13025 SDXL). */
  vaeScalingFactor: number;
  /**
   * Image pixels per latent cell along each side: 2 ** (len(block_out_channels) - 1) from
   * vae_decoder/config.json, as diffusers computes it (8 for every released SD VAE; 8 when the
   * config does not say).
   */
  vaeScaleFactor: number;
  /**
   * Image sides must be multiples of this: vaeScaleFactor x the UNet's total downsampling
   * (unetDownsampling: 2 ** (len(block_out_channels) - 1) from unet/config.json; 64 px for SD 1.5).
   * vaeScaleFactor alone when unet/config.json does not say.
   */
  sizeMultiple: number;
  /** vae_decoder/config.json `force_upcast`: the VAE overflows in fp16 (SDXL's) and diffusers decodes it in fp32. */
  vaeForceUpcast: boolean;
  /** unet/config.json `time_cond_proj_dim`: set for LCM-distilled UNets, which take a guidance embedding (timestep_cond). */
  timeCondProjDim?: number;
  defaults: FamilyDefaults;
  /** defaults.scheduler as blendfarm.json states it, if it does: an explicit choice that beats scheduler_config.json's class. */
  requestedScheduler?: string;
  /** Whether the folder says it is the project's built-in demo model. */
  isDemo: boolean;
  kind: ModelKind;
  /** What the user should know about the folder (e.g. an SDXL export without tokenizer_2/); shown with every result. */
  warnings: string[];
  /** image-variation: the CLIP image encoder (pixel_values -> image_embeds). */
  imageEncoder?: string;
  /** image-variation: feature_extractor/preprocessor_config.json (CLIPImageProcessor settings). */
  featureExtractor?: Record<string, unknown>;
}

/** A model folder's JSON file as an object, or a ModelFileError (FileAccessError) naming the file and what was `expected` there. */
export function readJson(file: string, expected: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const issue = fileAccessIssue(err, file);
    if (issue) throw new FileAccessError(file, issue);
    throw new ModelFileError(file, `file not found (expected ${expected})`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new ModelFileError(file, `not valid JSON (${(err as Error).message}); expected ${expected}`);
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new ModelFileError(file, `expected a JSON object: ${expected}`);
  }
  return parsed as Record<string, unknown>;
}

function optionalJson(file: string): Record<string, unknown> | undefined {
  return checkReadableFile(file) ? readJson(file, 'a JSON object') : undefined;
}

function onnxFile(dir: string, component: string, required: true): string;
function onnxFile(dir: string, component: string, required: false): string | undefined;
function onnxFile(dir: string, component: string, required: boolean): string | undefined {
  const file = join(dir, component, 'model.onnx');
  if (!checkReadableFile(file)) {
    if (!required) return undefined;
    throw new ModelFileError(file, `file not found (expected the ${component} exported to ONNX as ${component}/model.onnx)`);
  }
  if (statSync(file).size < 16) throw new ModelFileError(file, 'file is empty or truncated (expected an ONNX model)');
  return file;
}

function tokenizerDir(dir: string, name: string): string {
  const tdir = join(dir, name);
  for (const f of ['vocab.json', 'merges.txt']) {
    const file = join(tdir, f);
    if (!checkReadableFile(file)) throw new ModelFileError(file, `file not found (expected the CLIP tokenizer's ${f} in ${name}/)`);
  }
  return tdir;
}

/**
 * Throws unless `dir` is a folder: "folder not found", or, for a file (a model.onnx or
 * model_index.json given instead of its folder), "is a file". `expected` says what the folder holds.
 */
export function requireModelFolder(dir: string, expected: string): void {
  let isDir: boolean;
  try {
    isDir = statSync(dir).isDirectory();
    // Listing and entering it: a folder this user may not read would otherwise read as "file not found" inside it.
    if (isDir) accessSync(dir, constants.R_OK | constants.X_OK);
  } catch (err) {
    const issue = fileAccessIssue(err, dir);
    if (issue) throw new FileAccessError(dir, issue);
    throw new ModelFileError(dir, `folder not found (expected ${expected})`);
  }
  if (!isDir) throw new ModelFileError(dir, `is a file, not a folder; give the model's folder, the one holding model_index.json (expected ${expected})`);
}

/** Inspects a model folder without loading any weights. */
export function readModelFolder(dir: string): ModelFolder {
  requireModelFolder(dir, 'a Stable Diffusion pipeline exported to ONNX; see models/README.md');
  const index = readJson(join(dir, 'model_index.json'), 'the pipeline description written by diffusers/optimum, with a "_class_name" key');
  const className = String(index._class_name ?? '');
  if (className === 'StableDiffusionUpscalePipeline') {
    throw new ModelFileError(
      dir,
      'this is the x4 upscaler (StableDiffusionUpscalePipeline): it enlarges finished videos (npm run upscale -- --model x4-diffusion --weights DIR; a worker takes it as BLENDFARM_X4_UPSCALER_DIR), it does not render from text; point the model setting at a text-to-image export (models/README.md)',
    );
  }
  const hasTe2 = existsSync(join(dir, 'text_encoder_2'));
  const isXL = hasTe2 || /XL/.test(className);

  if (isXL && !existsSync(join(dir, 'text_encoder')) && existsSync(join(dir, 'text_encoder_2'))) {
    throw new ModelFileError(
      dir,
      `this has text_encoder_2/ but no text_encoder/: it is the SDXL refiner (${className || 'StableDiffusionXLImg2ImgPipeline'}), which refines a finished picture and cannot render from text; point the model setting at the SDXL base export (models/README.md)`,
    );
  }
  const textEncoder = onnxFile(dir, 'text_encoder', true);
  const textEncoder2 = isXL ? onnxFile(dir, 'text_encoder_2', true) : undefined;
  const unet = onnxFile(dir, 'unet', true);
  const vaeDecoder = onnxFile(dir, 'vae_decoder', true);
  const vaeEncoder = onnxFile(dir, 'vae_encoder', false);
  const tok = tokenizerDir(dir, 'tokenizer');
  const warnings: string[] = [];
  const tok2 = isXL ? (existsSync(join(dir, 'tokenizer_2')) ? tokenizerDir(dir, 'tokenizer_2') : tok) : undefined;
  if (isXL && tok2 === tok) {
    // Not refused: an export may share one tokenizer on purpose. SDXL's own tokenizer_2 pads with "!", tokenizer/ with <|endoftext|>.
    warnings.push(
      `${join(dir, 'tokenizer_2')} is missing, so the second text encoder uses tokenizer/: SDXL's own tokenizer_2 pads prompts with "!" where tokenizer/ pads with <|endoftext|>, so prompts may be followed less closely and images differ from diffusers'. Copy tokenizer_2/ from the original model to fix it.`,
    );
  }

  const schedulerConfig = readJson(
    join(dir, 'scheduler', 'scheduler_config.json'),
    "the scheduler's settings as diffusers writes them (num_train_timesteps, beta_schedule, prediction_type, ...)",
  );
  const vaeConfig = optionalJson(join(dir, 'vae_decoder', 'config.json'));
  const unetConfig = optionalJson(join(dir, 'unet', 'config.json'));
  const meta = optionalJson(join(dir, 'blendfarm.json'));

  const prediction = String(schedulerConfig.prediction_type ?? 'epsilon');
  const trailing = schedulerConfig.timestep_spacing === 'trailing';
  const nameHint = `${dir} ${String(meta?.name ?? '')}`.toLowerCase();
  const turbo = trailing || nameHint.includes('turbo');
  let family: ModelFamily;
  if (isXL) family = turbo ? 'sdxl-turbo' : 'sdxl';
  else if (turbo) family = 'sd-turbo';
  else if (prediction === 'v_prediction') family = 'sd2-v';
  else {
    // SD 2.x text encoders are OpenCLIP ViT-H (1024 wide); SD 1.x use CLIP ViT-L (768).
    const cross = Number(unetConfig?.cross_attention_dim ?? 768);
    family = cross === 1024 ? 'sd2' : 'sd1';
  }
  if (typeof meta?.family === 'string' && meta.family in familyDefaults) family = meta.family as ModelFamily;

  const imageEncoder = onnxFile(dir, 'image_encoder', false);
  let kind: ModelKind = 'text2img';
  let featureExtractor: Record<string, unknown> | undefined;
  if (imageEncoder || /ImageVariation/.test(className)) {
    kind = 'image-variation';
    onnxFile(dir, 'image_encoder', true);
    featureExtractor = readJson(
      join(dir, 'feature_extractor', 'preprocessor_config.json'),
      'the CLIP image processor settings (crop_size, image_mean, image_std) of the image-variation model',
    );
  } else if (Number(unetConfig?.in_channels) === 9 || /Inpaint/.test(className)) {
    kind = 'inpaint';
  }

  const vaeScaleFactor = readVaeScaleFactor(join(dir, 'vae_decoder', 'config.json'), vaeConfig);
  const sizeMultiple = vaeScaleFactor * (unetDownsampling(join(dir, 'unet', 'config.json'), unetConfig) ?? 1);
  const defaults = { ...familyDefaults[family] };
  if (kind === 'image-variation') Object.assign(defaults, imageVariationDefaults);
  const sampleSize = Number(unetConfig?.sample_size);
  if (Number.isInteger(sampleSize) && sampleSize > 0) defaults.width = defaults.height = sampleSize * vaeScaleFactor;
  const timeCondProjDim = readTimeCondProjDim(join(dir, 'unet', 'config.json'), unetConfig);
  // LCM-distilled UNets: few steps, the LCM sampler, guidance embedded in the UNet (diffusers' LCM pipeline default 8.5).
  if (timeCondProjDim !== undefined) Object.assign(defaults, lcmDefaults);
  const metaDefaults = (meta?.defaults ?? {}) as Partial<FamilyDefaults>;
  Object.assign(defaults, metaDefaults);

  const scaling = Number(vaeConfig?.scaling_factor ?? (isXL ? 0.13025 : 0.18215));
  return {
    dir,
    name: String(meta?.name ?? dir.split(/[\\/]/).filter(Boolean).pop() ?? dir),
    family,
    isXL,
    textEncoder,
    textEncoder2,
    unet,
    vaeDecoder,
    vaeEncoder,
    tokenizerDir: tok,
    tokenizer2Dir: tok2,
    schedulerConfig,
    vaeScalingFactor: scaling,
    vaeScaleFactor,
    sizeMultiple,
    vaeForceUpcast: vaeConfig?.force_upcast === true,
    timeCondProjDim,
    defaults,
    requestedScheduler: typeof metaDefaults.scheduler === 'string' ? metaDefaults.scheduler : undefined,
    isDemo: meta?.demo === true,
    kind,
    imageEncoder,
    featureExtractor,
    warnings,
  };
}

/** diffusers: vae_scale_factor = 2 ** (len(vae.config.block_out_channels) - 1). */
function readVaeScaleFactor(file: string, config: Record<string, unknown> | undefined): number {
  const blocks = config?.block_out_channels;
  if (blocks === undefined) return 8;
  if (!Array.isArray(blocks) || blocks.length < 1 || blocks.length > 8) {
    throw new ModelFileError(file, `"block_out_channels" should be a list of 1 to 8 channel counts (the VAE's blocks), got ${JSON.stringify(blocks)}`);
  }
  return 2 ** (blocks.length - 1);
}

/**
 * How many times a diffusers UNet halves its input per side: every down block but the last
 * downsamples, so 2 ** (len(block_out_channels) - 1) from unet/config.json (8 for SD 1.5, 2.x and
 * the x4 upscaler, 4 for SDXL). A latent side that is not a multiple of it breaks the exported
 * graph's skip connections (ONNX Runtime: "Concat ... mismatched dimensions"). Undefined when the
 * config does not say.
 */
export function unetDownsampling(file: string, config: Record<string, unknown> | undefined): number | undefined {
  const blocks = config?.block_out_channels;
  if (blocks === undefined) return undefined;
  if (!Array.isArray(blocks) || blocks.length < 1 || blocks.length > 8) {
    throw new ModelFileError(file, `"block_out_channels" should be a list of 1 to 8 channel counts (the UNet's down blocks), got ${JSON.stringify(blocks)}`);
  }
  return 2 ** (blocks.length - 1);
}

function readTimeCondProjDim(file: string, config: Record<string, unknown> | undefined): number | undefined {
  const v = config?.time_cond_proj_dim;
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 4) {
    throw new ModelFileError(file, `"time_cond_proj_dim" should be a whole number of at least 4 (the LCM guidance-embedding width, e.g. 256), got ${JSON.stringify(v)}`);
  }
  return v;
}
