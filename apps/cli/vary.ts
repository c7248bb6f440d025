/** npm run vary -- picture.png --out variations.mp4 (see --help) */
import { readFile, stat } from 'node:fs/promises';
import { DEFAULT_VARIATION_FPS, fileSize, imageVariationDefaults, ImageVariationPipeline, inspectImage, MAX_FPS, MAX_VARIATION_FRAMES, MIN_FPS, VIDEO_FORMATS, renderVariationVideo, schedulerKinds, variationDefaults } from '../../engine/index.ts';
import { ProgressBar } from './progress.ts';
import { asUsageError, COMMON_OPTIONS, DEVICE_FLAG, GUIDANCE_FLAG, loadCliConfig, outputFile, parseEp, SEED_FLAG, SHARED_HELP, SIZE_FLAG, promptArgument, stepsFlag, videoFormatOption, stopOnSignals } from './common.ts';
import { choiceOption, numberOption, parseCli, runCli, UsageError } from '../cli-kit.ts';

const d = variationDefaults;
/** The file written without --out: this name, the format's extension. */
const DEFAULT_OUT_STEM = 'variations';
const HELP = `Usage: npm run vary -- picture.png --model DIR --out variations.mp4 [options]

A variation animation (zzbuzzard/sd-variant-anim): every frame is a variation of the previous one,
made by an image-variation model (--model: lambdalabs/sd-image-variations-diffusers exported to ONNX,
models/README.md). Between generations CLIP guidance nudges the picture's embedding towards the
positive prompts and away from the negative ones.

Options:
  --out FILE            video file to write (default: ${DEFAULT_OUT_STEM}.<format>)
  --format NAME         ${VIDEO_FORMATS.join(' | ')} (default: from --out's extension, else mp4)
  --frames N            generations after the first variation, at least 1 (default: ${d.variations}); the video has 1 + N x intermediate frames in all, within 1..${MAX_VARIATION_FRAMES} (N x intermediate at most ${MAX_VARIATION_FRAMES - 1})
  --intermediate N      frames per generation, the variation included; the others lerp embedding and noise (default: ${d.intermediate}; 1 = none)
  --noise-shift P       how far the noise moves per generation: 1 = fresh noise, 0 = the same noise (default: ${d.noiseShift})
  --steps N             denoising steps (default: the model's, ${imageVariationDefaults.steps})
  --guidance G          classifier-free guidance (default: the model's, ${imageVariationDefaults.guidance})
  --positive "A|B|..."  prompts to move towards, separated by | (default: ${d.positivePrompts.join('|')})
  --negative "A|B|..."  prompts to move away from (default: ${d.negativePrompts.join('|')})
  --clip-positive S     CLIP guidance scale towards the positive prompts (default: ${d.positiveScale})
  --clip-negative S     CLIP guidance scale away from the negative prompts (default: ${d.negativeScale})
  --opt-repeats N       CLIP guidance gradient steps per generation; 0 turns guidance off (default: ${d.repeats})
  --seed N              noise seed (default: drawn and printed)
  --fps N               frames per second, ${MIN_FPS}..${MAX_FPS} (default: ${DEFAULT_VARIATION_FPS})
  --width W, --height H frame size in pixels (default: the model's); the picture is scaled to fill it and centre-cropped
  --scheduler NAME      ${schedulerKinds.join(' | ')}
  --max-bytes N         fit the file under N bytes
  --model DIR           image-variation model folder (default: BLENDFARM_VARIATION_MODEL_DIR)
  --ep NAME             ${SHARED_HELP.ep}
  --device N            ${SHARED_HELP.device}
  --json                print a JSON summary on stdout
  -h, --help            show this help
`;

/** A --positive/--negative list ("A|B|..."), each prompt within MAX_PROMPT_LENGTH. */
const prompts = (flag: string, raw: string | undefined) =>
  raw === undefined ? undefined : raw.trim() === '' ? [] : raw.split('|').map((p) => p.trim()).filter(Boolean).map((p, i) => promptArgument(`--${flag} prompt ${i + 1}`, p));

export async function runVaryCli(argv = process.argv.slice(2)): Promise<void> {
  const { values, positionals } = parseCli(argv, {
    out: { type: 'string' },
    format: { type: 'string' },
    frames: { type: 'string' },
    intermediate: { type: 'string' },
    'noise-shift': { type: 'string' },
    steps: { type: 'string' },
    guidance: { type: 'string' },
    positive: { type: 'string' },
    negative: { type: 'string' },
    'clip-positive': { type: 'string' },
    'clip-negative': { type: 'string' },
    'opt-repeats': { type: 'string' },
    seed: { type: 'string' },
    fps: { type: 'string' },
    width: { type: 'string' },
    height: { type: 'string' },
    scheduler: { type: 'string' },
    'max-bytes': { type: 'string' },
    ...COMMON_OPTIONS,
  });
  if (values.help) {
    process.stdout.write(HELP);
    return;
  }
  if (positionals.length !== 1) throw new UsageError('give exactly one picture: npm run vary -- picture.png --model DIR (see --help)');
  const file = positionals[0];
  const image = await readFile(file).catch((err: NodeJS.ErrnoException) => {
    throw new UsageError(`cannot read ${file} (${err.code ?? err.message}); give the path of a PNG, JPEG or WebP file`);
  });
  // Checked here (format, size), by its file name, before the model loads.
  await asUsageError(inspectImage(image, file));
  const format = videoFormatOption(values.format, values.out);
  const scheduler = choiceOption('scheduler', values.scheduler, schedulerKinds);
  const fileName = `${DEFAULT_OUT_STEM}.${format}`;
  const out = outputFile(values.out ?? fileName, fileName);
  const config = loadCliConfig();
  const modelDir = values.model ?? config.variationModelDir;
  if (!modelDir) throw new UsageError('give --model DIR: an image-variation model folder (lambdalabs/sd-image-variations-diffusers exported to ONNX; models/README.md), or set BLENDFARM_VARIATION_MODEL_DIR');
  const ep = parseEp(values.ep, config);
  const deviceId = numberOption('device', values.device, DEVICE_FLAG) ?? config.deviceId;
  // Every option is read before the model loads: a bad number is refused at once.
  const request = {
    image,
    variations: numberOption('frames', values.frames, { integer: true, min: 1, max: MAX_VARIATION_FRAMES }),
    intermediate: numberOption('intermediate', values.intermediate, { integer: true, min: 1, max: 60 }),
    noiseShift: numberOption('noise-shift', values['noise-shift'], { min: 0, max: 1 }),
    steps: numberOption('steps', values.steps, stepsFlag(1)),
    guidance: numberOption('guidance', values.guidance, GUIDANCE_FLAG),
    positivePrompts: prompts('positive', values.positive),
    negativePrompts: prompts('negative', values.negative),
    clip: {
      positiveScale: numberOption('clip-positive', values['clip-positive'], { min: 0, max: 1000 }),
      negativeScale: numberOption('clip-negative', values['clip-negative'], { min: 0, max: 1000 }),
      repeats: numberOption('opt-repeats', values['opt-repeats'], { integer: true, min: 0, max: 100 }),
    },
    seed: numberOption('seed', values.seed, SEED_FLAG),
    fps: numberOption('fps', values.fps, { min: MIN_FPS, max: MAX_FPS }),
    width: numberOption('width', values.width, SIZE_FLAG),
    height: numberOption('height', values.height, SIZE_FLAG),
    format,
    maxBytes: numberOption('max-bytes', values['max-bytes'], { integer: true, min: 1024 }),
  };
  const started = performance.now();
  const pipe = await ImageVariationPipeline.load(modelDir, { ep, deviceId, threads: config.threads, scheduler });
  const bar = new ProgressBar('variations');
  const controller = new AbortController();
  const stopSignals = stopOnSignals(controller);
  // The engine refusing the request (InvalidRequestError: too many frames in all, ...) is a bad command line: exit 2.
  const result = await asUsageError(
    renderVariationVideo(pipe, request, { signal: controller.signal, out, onProgress: (p) => bar.update(p.framesDone, p.framesTotal, '') }),
  );
  bar.done();
  stopSignals();
  await pipe.release();
  const summary = {
    file: out,
    format,
    model: pipe.folder.name,
    ep,
    seed: result.seed,
    variations: result.variations,
    frames: result.frames,
    durationSeconds: Number(result.durationSeconds.toFixed(3)),
    width: result.width,
    height: result.height,
    sizeBytes: (await stat(out)).size,
    positiveSimilarity: result.positiveSimilarity.map((s) => (s === null ? null : Number(s.toFixed(4)))),
    renderSeconds: Number(result.renderSeconds.toFixed(3)),
    totalSeconds: Number(((performance.now() - started) / 1000).toFixed(3)),
  };
  if (values.json) process.stdout.write(`${JSON.stringify(summary)}\n`);
  else process.stdout.write(`${out}: ${summary.frames} frames (${summary.variations} variations, seed ${summary.seed}), ${summary.width}x${summary.height}, ${summary.durationSeconds}s, ${fileSize(summary.sizeBytes)} in ${summary.totalSeconds.toFixed(1)}s (model ${summary.model}, ${ep})\n`);
}

if (process.argv[1]?.endsWith('vary.ts')) runCli(() => runVaryCli());
