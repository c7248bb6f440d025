/**
 * npm run upscale -- in.mp4 --out big.mp4 [--scale 2|3|4|8] [--model esrgan-slim|esrgan-medium|esrgan-thick|x4-diffusion]
 * A video in gives a video out (every frame upscaled, same frame rate); an image in gives an image out.
 */
import { readFile } from 'node:fs/promises';
import { existsSync, statSync } from 'node:fs';
import { basename, extname } from 'node:path';
import sharp from 'sharp';
import { CRF_RANGE, decodeImage, DEFAULT_CRF, DEFAULT_TILE, DEFAULT_TILE_BATCH, DEFAULT_UPSCALE_STEPS, DiffusionUpscaler, MIN_UPSCALE_STEPS, IMAGE_INPUT_FORMATS, inspectImage, probeVideo, SuperResolutionUpscaler, upscaleVideo, upscaleVideoIssue, VIDEO_FORMATS, type ExecutionProvider, type FrameUpscaler, type RawImage, type VideoFormat } from '../../engine/index.ts';
import {
  DEFAULT_SUPER_RESOLUTION_MODEL,
  SUPER_RESOLUTION_MODELS,
  ensureSuperResolutionModel,
  superResolutionEntry,
} from '../../models/esrgan/catalog.ts';
import { ProgressBar } from './progress.ts';
import { asUsageError, COMMON_OPTIONS, DEVICE_FLAG, loadCliConfig, outputFile, parseEp, SEED_FLAG, SHARED_HELP, stepsFlag, writeWhole, promptArgument, stopOnSignals } from './common.ts';
import { numberOption, parseCli, runCli, UsageError } from '../cli-kit.ts';

const MODEL_NAMES = [...SUPER_RESOLUTION_MODELS.map((m) => m.name), 'x4-diffusion'];
/** File extensions of the pictures it takes: the engine's formats, and jpg for jpeg. */
const IMAGE_FORMATS: string[] = [...IMAGE_INPUT_FORMATS, 'jpg'];

/** The esrgan models' scale without --scale; x4-diffusion always upscales 4x. */
const DEFAULT_SCALE = 2;
const X4_SCALE = 4;
/** x4-diffusion's seed without --seed: the same picture every run. */
const DEFAULT_X4_SEED = 0;

const HELP = `Usage: npm run upscale -- INPUT --out OUTPUT [options]

Makes a video (mp4, webm, gif, animated webp) or an image (png, jpg, webp) bigger and sharper.

Options:
  --out FILE          file to write; its extension picks the format (default: INPUT-up.EXT)
  --scale N           ${[...new Set(SUPER_RESOLUTION_MODELS.flatMap((m) => m.scales))].join(' | ')} for the esrgan models (default ${DEFAULT_SCALE}); x4-diffusion is always ${X4_SCALE}
  --model NAME        ${MODEL_NAMES.join(' | ')} (default ${DEFAULT_SUPER_RESOLUTION_MODEL}; see bench/results/upscale.md)
  --weights DIR       x4-diffusion only: stabilityai/stable-diffusion-x4-upscaler exported to ONNX
  --prompt TEXT       x4-diffusion only: what the picture shows (default: none)
  --steps N           x4-diffusion only: denoising steps (default ${DEFAULT_UPSCALE_STEPS})
  --seed N            x4-diffusion only: random seed, ${SEED_FLAG.min}..${SEED_FLAG.max} (default ${DEFAULT_X4_SEED})
  --tile N            esrgan models: tile side in input pixels (default ${DEFAULT_TILE})
  --batch N           esrgan models: tiles per network call (default ${DEFAULT_TILE_BATCH.cpu} on cpu, ${DEFAULT_TILE_BATCH.gpu} on gpus)
  --crf N             video quality, lower is better: ${(Object.keys(CRF_RANGE) as Array<keyof typeof CRF_RANGE>).map((f) => `${f} ${CRF_RANGE[f][0]}..${CRF_RANGE[f][1]} (default ${DEFAULT_CRF[f]})`).join(', ')}; gif and webp have none
  --max-bytes N       fit a video under N bytes
  --ep NAME           ${SHARED_HELP.ep}
  --device N          ${SHARED_HELP.device}
  --json              print a JSON summary on stdout instead of the text line
  -h, --help          show this help
`;

const OPTIONS = {
  out: { type: 'string' },
  scale: { type: 'string' },
  weights: { type: 'string' },
  prompt: { type: 'string' },
  steps: { type: 'string' },
  seed: { type: 'string' },
  tile: { type: 'string' },
  batch: { type: 'string' },
  crf: { type: 'string' },
  'max-bytes': { type: 'string' },
  ...COMMON_OPTIONS,
} as const;

type Values = ReturnType<typeof parseCli<typeof OPTIONS>>['values'];

/** The command line read and checked, every number included, before the input file is read. */
interface UpscaleArgs {
  values: Values;
  input: string;
  /** The input's extension, lower case, without the dot ('' when it has none). */
  inExt: string;
  modelName: string;
  diffusion: boolean;
  scale: number;
  maxBytes?: number;
  steps?: number;
  prompt: string;
  seed?: number;
  tile?: number;
  batch?: number;
  deviceFlag?: number;
  out: string;
  outExt: string;
  /** --crf's range for the written format (the encoder's CRF_RANGE); undefined for a format without a CRF. */
  crfRange?: readonly [number, number];
  crf?: number;
}

/** The input file and model flags: the file is there and no folder, the model is known, no flag of the other kind of upscaler. */
function readModelArgs(values: Values, positionals: string[]): Pick<UpscaleArgs, 'input' | 'inExt' | 'modelName' | 'diffusion' | 'scale'> {
  if (positionals.length !== 1) throw new UsageError('give exactly one input file, e.g. npm run upscale -- transition.mp4 --out big.mp4 (see --help)');
  const input = positionals[0];
  if (!existsSync(input)) throw new UsageError(`${input}: file not found`);
  // A folder was read as a file: "EISDIR: illegal operation on a directory, read".
  if (statSync(input).isDirectory()) throw new UsageError(`${input} is a folder; give a picture or video file`);
  const inExt = extname(input).slice(1).toLowerCase();
  const modelName = values.model ?? DEFAULT_SUPER_RESOLUTION_MODEL;
  if (!MODEL_NAMES.includes(modelName)) throw new UsageError(`--model must be one of ${MODEL_NAMES.join(', ')}, got "${modelName}"`);
  const diffusion = modelName === 'x4-diffusion';
  // Flags of the other kind of upscaler are refused, not ignored.
  const otherKinds = diffusion ? (['tile', 'batch'] as const) : (['weights', 'prompt', 'steps', 'seed'] as const);
  const misplaced = otherKinds.filter((flag) => values[flag] !== undefined);
  if (misplaced.length) {
    throw new UsageError(`${misplaced.map((f) => `--${f}`).join(', ')} ${misplaced.length === 1 ? 'is' : 'are'} for ${diffusion ? 'the esrgan models' : 'x4-diffusion (--model x4-diffusion)'} only; ${modelName} does not use ${misplaced.length === 1 ? 'it' : 'them'}`);
  }
  const scale = numberOption('scale', values.scale, { integer: true, min: 2, max: 8 }) ?? (diffusion ? X4_SCALE : DEFAULT_SCALE);
  if (diffusion && scale !== X4_SCALE) throw new UsageError(`x4-diffusion upscales ${X4_SCALE}x; leave out --scale or give --scale ${X4_SCALE}`);
  if (!diffusion) {
    const entry = superResolutionEntry(modelName);
    if (!entry.scales.includes(scale)) throw new UsageError(`--scale must be one of ${entry.scales.join(', ')} for ${modelName}, got ${scale}`);
  }
  return { input, inExt, modelName, diffusion, scale };
}

/** Every flag, read before anything loads: a bad number is refused at once. */
function readArgs(values: Values, positionals: string[]): UpscaleArgs {
  const model = readModelArgs(values, positionals);
  const maxBytes = numberOption('max-bytes', values['max-bytes'], { integer: true, min: 1024 });
  const steps = numberOption('steps', values.steps, stepsFlag(MIN_UPSCALE_STEPS));
  const prompt = values.prompt === undefined ? '' : promptArgument('--prompt', values.prompt);
  const seed = numberOption('seed', values.seed, SEED_FLAG);
  const tile = numberOption('tile', values.tile, { integer: true, min: 16, max: 2048 });
  const batch = numberOption('batch', values.batch, { integer: true, min: 1, max: 64 });
  const deviceFlag = numberOption('device', values.device, DEVICE_FLAG);
  const { input, inExt } = model;
  const defaultOut = `${input.slice(0, input.length - extname(input).length)}-up.${inExt || 'mp4'}`;
  const out = outputFile(values.out ?? defaultOut, basename(defaultOut));
  const outExt = extname(out).slice(1).toLowerCase();
  // --crf in the written format's range (the encoder's CRF_RANGE), read like every number before the
  // input is: before, mp4 was let through up to 63 and failed after the whole upscale. A format
  // without a CRF (gif, webp, pictures) refuses it in readInput, once the input says which rule applies.
  const crfRange = Object.hasOwn(CRF_RANGE, outExt) ? CRF_RANGE[outExt as keyof typeof CRF_RANGE] : undefined;
  const crf = crfRange && numberOption('crf', values.crf, { integer: true, min: crfRange[0], max: crfRange[1] });
  return { values, ...model, maxBytes, steps, prompt, seed, tile, batch, deviceFlag, out, outExt, crfRange, crf };
}

/** The input read: a picture (checked as every tool checks one) or a video (probed once, by its file name). */
interface UpscaleInput {
  bytes: Buffer;
  isImage: boolean;
  source?: Awaited<ReturnType<typeof probeVideo>>;
}

/**
 * Reads the input and says which kind it is, checking it against the limits and --out against it
 * (an image in gives an image out, a video a video), before the model loads.
 */
async function readInput(args: UpscaleArgs): Promise<UpscaleInput> {
  const { input, inExt, out, outExt, values } = args;
  const bytes = await readFile(input);
  const meta = await sharp(bytes, { animated: true })
    .metadata()
    .catch(() => null);
  const unreadable = (why?: string) =>
    new UsageError(`${input} is neither a picture nor a video that can be read${why ? ` (${why})` : ''}; give a picture (${IMAGE_INPUT_FORMATS.join(', ')}) or a video (${VIDEO_FORMATS.join(', ')})`);
  // A file named as a picture that is none (a text file named x.png) went on as a video: ffprobe
  // "read" it as a one-frame image sequence of 0x0, and the error was about --out's extension.
  if (meta === null && IMAGE_FORMATS.includes(inExt)) throw unreadable();
  const isImage = meta !== null && IMAGE_FORMATS.includes(inExt) && (meta.pages ?? 1) <= 1;
  // A picture is checked as the other tools check theirs (the engine's inspectImage: format, the
  // IMAGE_INPUT_LIMITS size and pixel limits, pixels that decode), before the model loads: a
  // 108-megapixel picture was upscaled for some 17 minutes, and a cut-off one failed with libvips' words.
  if (isImage) {
    await asUsageError(inspectImage(bytes, input));
  }
  if (isImage && !IMAGE_FORMATS.includes(outExt)) throw new UsageError(`an image in gives an image out: --out must end in ${IMAGE_FORMATS.map((f) => `.${f}`).join(', ')}, got "${out}"`);
  const videoOnly = (['crf', 'max-bytes'] as const).filter((flag) => values[flag] !== undefined).map((flag) => `--${flag}`);
  if (isImage && videoOnly.length) throw new UsageError(`${videoOnly.join(' and ')} ${videoOnly.length === 1 ? 'is' : 'are'} for videos; ${input} is an image`);
  // A video is probed once, here, by the user's own file name (the engine would read the bytes
  // through a temporary file, whose name its error would carry); upscaleVideo gets this probe.
  const source = isImage
    ? undefined
    : await probeVideo(input, { countPackets: true }).catch((error: unknown) => {
        throw unreadable((error as Error).message);
      });
  if (source && (source.width < 1 || source.height < 1)) throw unreadable('no frames of a known size');
  // A video is held to the picture rules too, from its probe, before the model loads: frames within
  // the picture pixel limit, and the whole output within the engine's MAX_UPSCALED_VIDEO_PIXELS (a
  // 4K video at 4x ran for hours, with only the ETA shown).
  const videoIssue = source && upscaleVideoIssue(input, source, args.scale);
  if (videoIssue) throw new UsageError(videoIssue);
  if (!isImage && !VIDEO_FORMATS.includes(outExt as VideoFormat)) throw new UsageError(`a video in gives a video out: --out must end in ${VIDEO_FORMATS.map((f) => `.${f}`).join(', ')}, got "${out}"`);
  if (values.crf !== undefined && !args.crfRange) {
    throw new UsageError(`--crf is for ${Object.keys(CRF_RANGE).join(' and ')} output; a ${outExt} has no CRF (--max-bytes bounds its size)`);
  }
  return { bytes, isImage, source };
}

type LoadedUpscaler = (SuperResolutionUpscaler | DiffusionUpscaler) & { release(): Promise<void> };

/** Loads the upscaler (x4-diffusion from --weights, an esrgan model converted on first use), with the options each frame goes with. */
async function loadUpscaler(args: UpscaleArgs, session: { ep: ExecutionProvider; deviceId: number | undefined; threads: number | undefined }): Promise<{ upscaler: LoadedUpscaler; frameOpts: Record<string, unknown> }> {
  if (args.diffusion) {
    if (!args.values.weights) {
      throw new UsageError(
        'x4-diffusion needs the Stable Diffusion x4 upscaler (stabilityai/stable-diffusion-x4-upscaler) exported to ONNX: pass --weights DIR, a folder with model_index.json, unet/, vae_decoder/, text_encoder/, tokenizer/, scheduler/ and low_res_scheduler/; or use an esrgan model, which works out of the box',
      );
    }
    const upscaler = await DiffusionUpscaler.load(args.values.weights, session);
    return { upscaler, frameOpts: { promptA: args.prompt, steps: args.steps, seed: args.seed ?? DEFAULT_X4_SEED } };
  }
  const upscaler = await SuperResolutionUpscaler.load(await ensureSuperResolutionModel(args.modelName, args.scale), {
    ...session,
    batch: args.batch,
  });
  return { upscaler, frameOpts: { tile: args.tile } };
}

/** What the run says at its end (the text line, or --json's object). */
type Summary = Record<string, unknown>;

/** Upscales a picture and writes it whole at --out. */
async function upscaleImageFile(args: UpscaleArgs, input: UpscaleInput, upscaler: LoadedUpscaler, frameOpts: Record<string, unknown>, bar: ProgressBar, signal: AbortSignal): Promise<Summary> {
  const { out, outExt } = args;
  // The engine's decode, as for the other tools' pictures: EXIF orientation applied (a phone
  // photo came out on its side), transparency onto white, and a failure named by the file.
  const img: RawImage = await asUsageError(decodeImage(input.bytes, args.input));
  let result: RawImage | undefined;
  for await (const frame of upscaler.upscaleFrames([img], { ...frameOpts, signal, onTile: (d: number, t: number) => bar.update(d, t), onFrame: () => bar.update(1, 1) } as never)) result = frame;
  bar.done();
  const s = sharp(result!.data, { raw: { width: result!.width, height: result!.height, channels: 3 } });
  await writeWhole(out, (partial) => (outExt === 'png' ? s.png() : outExt === 'webp' ? s.webp({ quality: 92 }) : s.jpeg({ quality: 92 })).toFile(partial));
  return { input: args.input, output: out, kind: 'image', model: upscaler.name, scale: upscaler.scale, width: result!.width, height: result!.height, frames: 1 };
}

/** Upscales every frame of a video (same frame rate) and encodes it at --out. */
async function upscaleVideoFile(args: UpscaleArgs, input: UpscaleInput, upscaler: LoadedUpscaler, frameOpts: Record<string, unknown>, bar: ProgressBar, signal: AbortSignal): Promise<Summary> {
  // The per-frame options (--tile; --prompt, --steps, --seed) go with every frame of a video too.
  const withOptions: FrameUpscaler = {
    name: upscaler.name,
    scale: upscaler.scale,
    upscaleFrames: (frames, opts) => upscaler.upscaleFrames(frames, { ...frameOpts, ...opts } as never),
  };
  const result = await upscaleVideo(withOptions, input.bytes, {
    out: args.out,
    format: args.outExt as VideoFormat,
    crf: args.crf,
    maxBytes: args.maxBytes,
    onFrame: (d, t) => bar.update(d, t),
    source: input.source,
    signal,
  });
  bar.done();
  return {
    input: args.input,
    output: args.out,
    kind: 'video',
    model: upscaler.name,
    scale: upscaler.scale,
    width: result.width,
    height: result.height,
    frames: result.frames,
    fps: result.fps,
    sizeBytes: result.sizeBytes,
  };
}

async function main(): Promise<void> {
  const { values, positionals } = parseCli(process.argv.slice(2), OPTIONS);
  if (values.help) {
    process.stdout.write(HELP);
    return;
  }
  const args = readArgs(values, positionals);
  const input = await readInput(args);

  const config = loadCliConfig();
  const ep = parseEp(values.ep, config);
  const session = { ep, deviceId: args.deviceFlag ?? config.deviceId, threads: config.threads };
  const started = performance.now();
  const bar = new ProgressBar('upscaling');
  const { upscaler, frameOpts } = await loadUpscaler(args, session);

  // Ctrl-C stops the upscale where it is (the encoder too): nothing is written at --out. Without it
  // the process died mid-encode and left a shorter video that looked finished.
  const controller = new AbortController();
  const stopSignals = stopOnSignals(controller);
  let summary: Summary;
  try {
    summary = await (input.isImage ? upscaleImageFile : upscaleVideoFile)(args, input, upscaler, frameOpts, bar, controller.signal);
  } finally {
    stopSignals();
    await upscaler.release();
  }
  const seconds = (performance.now() - started) / 1000;
  summary = { ...summary, ep, seconds: Number(seconds.toFixed(3)) };
  if (values.json) process.stdout.write(`${JSON.stringify(summary)}\n`);
  else {
    process.stdout.write(
      `${basename(args.out)}: ${summary.kind} ${summary.width}x${summary.height}, ${summary.frames} frame(s), ${summary.model} ${summary.scale}x (${ep}), ${seconds.toFixed(1)}s\n`,
    );
  }
}

process.exitCode = await runCli(main, { outOfMemory: 'give a smaller picture or video, or (esrgan models) a smaller --tile or --batch' });
