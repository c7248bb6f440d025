/**
 * Shared command line of `npm run blend` (two prompts) and `npm run movie` (2..16 prompts):
 * render the keyframes with the engine, then stream the video through ffmpeg.
 */
import { readFile, stat } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import {
  MIN_BLEND_STEPS,
  DEFAULT_BRANCHES,
  DEFAULT_PLAN,
  DEFAULT_TRANSITION_MODE,
  MAX_BRANCHES,
  planModes,
  transitionDefaults,
  DEFAULT_IMAGE_STRENGTH,
  DEFAULT_WALK_FRAMES,
  MAX_FPS,
  MAX_SEGMENT_SECONDS,
  MAX_WALK_FRAMES,
  MIN_FPS,
  MIN_WALK_FRAMES,
  MASK_PRESETS,
  MAX_MOVIE_PROMPTS,
  StableDiffusionPipeline,
  VIDEO_FORMATS,
  createPerceptualMetric,
  fileSize,
  inspectImage,
  isMaskPreset,
  prepareInpaint,
  prepareRequestImages,
  promptWarnings,
  renderMovie,
  schedulerKinds,
  segmentsToVideo,
  transitionModes,
  type RenderRequest,
  type RequestImage,
  type TransitionMode,
} from '../../engine/index.ts';
import { builtinPerceptualGraph } from '../../models/perceptual-graph.ts';
import { ProgressBar } from './progress.ts';
import { asUsageError, chooseModel, COMMON_OPTIONS, DEVICE_FLAG, GUIDANCE_FLAG, loadCliConfig, outputFile, parseEp, SEED_FLAG, SHARED_HELP, SIZE_FLAG, promptArgument, stepsFlag, videoFormatOption, stopOnSignals } from './common.ts';
import { choiceOption, numberOption, parseCli, UsageError } from '../cli-kit.ts';

/** The command line's video defaults (the engine's rules bound them: MIN_FPS..MAX_FPS, MAX_SEGMENT_SECONDS). */
const DEFAULT_DURATION = 4;
const DEFAULT_FPS = 24;
/** How the branches of a stage run; without --order the engine picks (batched on GPUs, sequential on the CPU). */
const ORDERS = ['batched', 'sequential'] as const;
/** The file written without --out: this name, the format's extension. */
const DEFAULT_OUT_STEM = { blend: 'transition', movie: 'movie' } as const;
/** Seconds of one segment on the command line: the engine's longest, from a tenth of a second. */
const DURATION_RANGE = { min: 0.1, max: MAX_SEGMENT_SECONDS };

const BLEND_PICTURE_HELP = [
  '--image-a FILE        start from this picture (PNG/JPEG/WebP): prompt A re-renders it (img2img)',
  '  --image-b FILE        end on this picture, re-rendered under prompt B',
  `  --strength-a S        how much of picture A is redrawn, 0..1 (default: ${DEFAULT_IMAGE_STRENGTH}; 0.2 keeps it, 0.8 keeps its layout)`,
  '  --strength-b S        the same for picture B',
].join('\n');
const MOVIE_PICTURE_HELP = [
  '--images I:FILE,...   pictures for prompts (1-based index I), each re-rendered under its prompt',
  `  --strength S          how much of each picture is redrawn, 0..1 (default: ${DEFAULT_IMAGE_STRENGTH})`,
].join('\n');

function help(kind: 'blend' | 'movie'): string {
  const usage =
    kind === 'blend'
      ? 'npm run blend -- "prompt A" "prompt B" --out transition.mp4 [options]\n\nRenders a latent-blending transition from prompt A to prompt B as a video.'
      : `npm run movie -- "prompt 1" "prompt 2" "prompt 3" ... --out movie.mp4 [options]\n\nChains 2 to ${MAX_MOVIE_PROMPTS} prompts into one seamless video (each segment starts from the previous one's last frame).`;
  return `Usage: ${usage}

Options:
  --out FILE            video file to write (default: ${DEFAULT_OUT_STEM[kind]}.<format>)
  --format NAME         ${VIDEO_FORMATS.join(' | ')} (default: from --out's extension, else mp4)
  --duration S          seconds ${kind === 'blend' ? 'of video' : 'per segment'} up to ${MAX_SEGMENT_SECONDS} (default: ${DEFAULT_DURATION})${kind === 'movie' ? '\n  --durations S,S,...   seconds for each segment' : ''}
  --fps N               frames per second, ${MIN_FPS}..${MAX_FPS} (default: ${DEFAULT_FPS})
  --branches N          budget: images in the tree per transition, both ends included, 2 to ${MAX_BRANCHES} (default: ${DEFAULT_BRANCHES})
  --seconds S           budget instead: at most S estimated compute seconds per transition, from measured step times (keyframes and one branch always)
  --depth D             depth strength 0..1: where the tree branches (default: the model's, ${transitionDefaults('sd1').depthStrength})
  --mode NAME           ${transitionModes.join(' | ')} (default: ${DEFAULT_TRANSITION_MODE})
  --walk-frames N       distinct frames per segment for the walk modes, ${MIN_WALK_FRAMES}..${MAX_WALK_FRAMES} (default: ${DEFAULT_WALK_FRAMES})
  ${kind === 'blend' ? `--seed-a N            seed of prompt A, ${SEED_FLAG.min}..${SEED_FLAG.max} (default: drawn and printed)\n  --seed-b N            seed of prompt B` : `--seeds N,N,...       one seed per prompt, each ${SEED_FLAG.min}..${SEED_FLAG.max} (default: drawn and printed)`}
  ${kind === 'blend' ? BLEND_PICTURE_HELP : MOVIE_PICTURE_HELP}
  --inpaint FILE        inpainting transition (needs an inpainting --model): keep this picture outside the mask
  --mask FILE           the mask picture: white = change from prompt to prompt, black = keep
  --mask-preset NAME    a mask instead: ${MASK_PRESETS.join(' | ')}
  Pictures are scaled to fill the frame size and centre-cropped (EXIF orientation applied).
  --negative TEXT       negative prompt
  --steps N             denoising steps (default: the model's)
  --guidance G          guidance scale (default: the model's; damped towards the middle)
  --width W, --height H frame size in pixels, multiples of what the model takes (e.g. 64 for SD 1.5; default: the model's)
  --scheduler NAME      ${schedulerKinds.join(' | ')}
  --order NAME          ${ORDERS.join(' | ')}: how branches of a stage are run (default: batched on GPUs, sequential on the CPU)
  --plan NAME           ${planModes.join(' | ')}: screen time per keyframe gap (default: ${DEFAULT_PLAN})
  --max-bytes N         fit the file under N bytes (lower bitrate, then resolution), e.g. 10485760
  --lpips FILE          LPIPS ONNX model for perceptual distances (default: BLENDFARM_LPIPS_MODEL, else built-in)
  --model DIR           ${SHARED_HELP.pipelineModel}
  --ep NAME             ${SHARED_HELP.ep}
  --device N            ${SHARED_HELP.device}
  --json                print a JSON summary on stdout
  -h, --help            show this help
`;
}

/** Flags only the other command reads, with what this one takes instead: given here, they are refused, never ignored. */
const OTHER_COMMANDS_FLAGS: Record<'blend' | 'movie', Record<string, string>> = {
  blend: { seeds: '--seed-a and --seed-b', images: '--image-a and --image-b', strength: '--strength-a and --strength-b' },
  movie: {
    'seed-a': '--seeds N,N,...',
    'seed-b': '--seeds N,N,...',
    'image-a': '--images I:FILE,...',
    'image-b': '--images I:FILE,...',
    'strength-a': '--strength',
    'strength-b': '--strength',
  },
};

const splitNumbers = (name: string, raw: string | undefined, integer: boolean) =>
  raw === undefined ? undefined : raw.split(',').map((v) => numberOption(name, v.trim(), integer ? SEED_FLAG : DURATION_RANGE)!);

const OPTIONS = {
  out: { type: 'string' },
  format: { type: 'string' },
  duration: { type: 'string' },
  durations: { type: 'string' },
  fps: { type: 'string' },
  branches: { type: 'string' },
  seconds: { type: 'string' },
  depth: { type: 'string' },
  mode: { type: 'string' },
  'walk-frames': { type: 'string' },
  'seed-a': { type: 'string' },
  'seed-b': { type: 'string' },
  seeds: { type: 'string' },
  negative: { type: 'string' },
  steps: { type: 'string' },
  guidance: { type: 'string' },
  width: { type: 'string' },
  height: { type: 'string' },
  scheduler: { type: 'string' },
  order: { type: 'string' },
  plan: { type: 'string' },
  'max-bytes': { type: 'string' },
  lpips: { type: 'string' },
  'image-a': { type: 'string' },
  'image-b': { type: 'string' },
  'strength-a': { type: 'string' },
  'strength-b': { type: 'string' },
  images: { type: 'string' },
  strength: { type: 'string' },
  inpaint: { type: 'string' },
  mask: { type: 'string' },
  'mask-preset': { type: 'string' },
  ...COMMON_OPTIONS,
} as const;

type Kind = 'blend' | 'movie';
type Values = ReturnType<typeof parseCli<typeof OPTIONS>>['values'];

/** The prompts: as many as the command takes, none empty, each within MAX_PROMPT_LENGTH (--negative too); the other command's flags refused. */
function readPrompts(kind: Kind, values: Values, positionals: string[]): string[] {
  for (const [flag, instead] of Object.entries(OTHER_COMMANDS_FLAGS[kind])) {
    if (values[flag as keyof Values] !== undefined) {
      throw new UsageError(`--${flag} is for npm run ${kind === 'blend' ? 'movie' : 'blend'}; npm run ${kind} takes ${instead} (see --help)`);
    }
  }
  const prompts = positionals;
  if (kind === 'blend' && prompts.length !== 2) throw new UsageError('give exactly two prompts in quotes: npm run blend -- "a calm sea" "a stormy sea" (see --help)');
  if (kind === 'movie' && (prompts.length < 2 || prompts.length > MAX_MOVIE_PROMPTS)) throw new UsageError(`give 2 to ${MAX_MOVIE_PROMPTS} prompts in quotes (see --help)`);
  prompts.forEach((p, i) => {
    if (!p.trim()) throw new UsageError(`prompt ${i + 1} is empty: every prompt needs some text`);
    promptArgument(`prompt ${i + 1}`, p);
  });
  if (values.negative !== undefined) promptArgument('--negative', values.negative);
  return prompts;
}

/**
 * Every choice and number of the render and the video, read before the model loads: a bad one is
 * refused at once, not after loading (or behind a model folder's own error). Each mode's own flags:
 * a walk renders --walk-frames evenly spaced frames (no tree, no gaps to weigh); latent blending
 * builds its tree from --branches or --seconds. The other mode's flags are refused, not ignored.
 */
function readRenderOptions(kind: Kind, values: Values, prompts: string[]) {
  const format = videoFormatOption(values.format, values.out);
  const mode: TransitionMode = choiceOption('mode', values.mode, transitionModes) ?? DEFAULT_TRANSITION_MODE;
  const scheduler = choiceOption('scheduler', values.scheduler, schedulerKinds);
  const order = choiceOption('order', values.order, ORDERS);
  const plan = choiceOption('plan', values.plan, planModes);
  if (mode === 'latent-blend') {
    if (values['walk-frames'] !== undefined) throw new UsageError(`--walk-frames is for the walk modes (--mode ${transitionModes.filter((m) => m !== 'latent-blend').join('|')}); latent-blend takes --branches or --seconds`);
  } else {
    const treeFlags = (['branches', 'seconds', 'depth', 'order'] as const).filter((flag) => values[flag] !== undefined).map((flag) => `--${flag}`);
    if (plan === 'gap-weighted') treeFlags.push('--plan gap-weighted');
    if (treeFlags.length) throw new UsageError(`${treeFlags.join(', ')} ${treeFlags.length === 1 ? 'is' : 'are'} for --mode latent-blend only; --mode ${mode} renders --walk-frames frames per segment instead`);
  }
  if (values.branches && values.seconds) throw new UsageError('give either --branches or --seconds, not both');
  const seconds = numberOption('seconds', values.seconds, { min: 0.1, max: 3600 });
  const branches = numberOption('branches', values.branches, { integer: true, min: 2, max: MAX_BRANCHES }) ?? (seconds === undefined ? DEFAULT_BRANCHES : undefined);
  const seeds =
    kind === 'blend'
      ? [numberOption('seed-a', values['seed-a'], SEED_FLAG), numberOption('seed-b', values['seed-b'], SEED_FLAG)]
      : splitNumbers('seeds', values.seeds, true);
  if (kind === 'movie' && seeds && seeds.length !== prompts.length) throw new UsageError(`--seeds needs one seed per prompt (${prompts.length}), got ${seeds.length}`);
  if (values.durations !== undefined && values.duration !== undefined) throw new UsageError('give either --duration (every segment) or --durations (one per segment), not both');
  const durations = splitNumbers('durations', values.durations, false);
  if (durations && durations.length !== prompts.length - 1) throw new UsageError(`--durations needs one value per segment (${prompts.length - 1}), got ${durations.length}`);
  const duration = durations ?? numberOption('duration', values.duration, DURATION_RANGE) ?? DEFAULT_DURATION;
  const fps = numberOption('fps', values.fps, { min: MIN_FPS, max: MAX_FPS }) ?? DEFAULT_FPS;
  const maxBytes = numberOption('max-bytes', values['max-bytes'], { integer: true, min: 1024 });
  const width = numberOption('width', values.width, SIZE_FLAG);
  const height = numberOption('height', values.height, SIZE_FLAG);
  const steps = numberOption('steps', values.steps, stepsFlag(MIN_BLEND_STEPS));
  const guidance = numberOption('guidance', values.guidance, GUIDANCE_FLAG);
  const depthStrength = numberOption('depth', values.depth, { min: 0.01, max: 0.99 });
  const walkFrames = numberOption('walk-frames', values['walk-frames'], { integer: true, min: MIN_WALK_FRAMES, max: MAX_WALK_FRAMES });
  if (values.lpips !== undefined && !existsSync(values.lpips)) {
    throw new UsageError(`--lpips ${values.lpips}: file not found; give an LPIPS model exported to ONNX, or leave out --lpips for the built-in metric`);
  }
  return { format, mode, scheduler, order, plan, seconds, branches, seeds, duration, fps, maxBytes, width, height, steps, guidance, depthStrength, walkFrames };
}

/** A picture flag's file, read and checked (format, size), named by its flag and file, before the model loads. */
async function readPicture(flag: string, file: string): Promise<Buffer> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (err) {
    throw new UsageError(`--${flag}: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); give the path of a PNG, JPEG or WebP file`);
  }
  await asUsageError(inspectImage(bytes, `--${flag} ${file}`));
  return bytes;
}

/** The pictures to start from (blend: --image-a/--image-b; movie: --images I:FILE,...), with their strengths. */
async function readPictureFlags(kind: Kind, values: Values, prompts: string[]): Promise<RequestImage[]> {
  const pictureFlags: RequestImage[] = [];
  if (kind === 'blend') {
    for (const [end, index] of [['a', 0], ['b', 1]] as const) {
      const file = values[`image-${end}`];
      const strength = numberOption(`strength-${end}`, values[`strength-${end}`], { min: 0.01, max: 1 });
      if (strength !== undefined && !file) throw new UsageError(`--strength-${end} needs --image-${end}`);
      if (file) pictureFlags.push({ index, image: await readPicture(`image-${end}`, file), strength });
    }
  } else {
    const strength = numberOption('strength', values.strength, { min: 0.01, max: 1 });
    if (strength !== undefined && !values.images) throw new UsageError('--strength needs --images');
    for (const part of values.images?.split(',') ?? []) {
      const m = /^(\d+):(.+)$/.exec(part.trim());
      if (!m) throw new UsageError(`--images takes INDEX:FILE pairs separated by commas (e.g. 1:start.png,3:middle.jpg), got "${part}"`);
      const index = Number(m[1]);
      if (index < 1 || index > prompts.length) throw new UsageError(`--images ${part.trim()}: there is no prompt ${index}; give the index of a prompt, 1 to ${prompts.length}`);
      pictureFlags.push({ index: index - 1, image: await readPicture('images', m[2]), strength });
    }
  }
  return pictureFlags;
}

/** --inpaint with its mask (--mask FILE or --mask-preset NAME), read and checked; undefined without --inpaint. */
async function readInpaintFlags(values: Values): Promise<RenderRequest['inpaint']> {
  if ((values.mask || values['mask-preset']) && !values.inpaint) throw new UsageError('--mask and --mask-preset need --inpaint PICTURE');
  if (values.inpaint && !values.mask && !values['mask-preset']) throw new UsageError(`--inpaint needs a mask: --mask FILE (white = change) or --mask-preset ${MASK_PRESETS.join('|')}`);
  if (values.mask && values['mask-preset']) throw new UsageError('give either --mask or --mask-preset, not both');
  if (values['mask-preset'] && !isMaskPreset(values['mask-preset'])) throw new UsageError(`--mask-preset must be one of ${MASK_PRESETS.join(', ')}, got "${values['mask-preset']}"`);
  return values.inpaint
    ? { image: await readPicture('inpaint', values.inpaint), mask: values.mask ? await readPicture('mask', values.mask) : (values['mask-preset'] as (typeof MASK_PRESETS)[number]) }
    : undefined;
}

type RenderOptions = ReturnType<typeof readRenderOptions>;

/**
 * Loads the model and the gap metric, brings the pictures to the frame size, renders the movie
 * (Ctrl-C stops it: nothing is written at --out) and encodes it at `out`; releases what it loaded.
 */
async function renderToFile(kind: Kind, values: Values, prompts: string[], opts: RenderOptions, pictureFlags: RequestImage[], inpaintRequest: RenderRequest['inpaint'], out: string) {
  const config = loadCliConfig();
  const ep = parseEp(values.ep, config);
  const deviceId = numberOption('device', values.device, DEVICE_FLAG) ?? config.deviceId;
  const model = await chooseModel(values.model, config);
  const started = performance.now();
  const pipe = await StableDiffusionPipeline.load(model.dir, { ep, deviceId, threads: config.threads, scheduler: opts.scheduler });
  // Pictures are checked and brought to the frame size before anything renders.
  const frame = pipe.resolve({ prompt: prompts[0], width: opts.width, height: opts.height });
  const images = await prepareRequestImages(pictureFlags, prompts.length, frame.width, frame.height);
  const inpaint = await prepareInpaint(inpaintRequest, frame.width, frame.height);
  // The pipeline's load-time notes (as generate prints them) and a prompt longer than the text encoder reads: said before
  // rendering (Ctrl-C and shorten it), and in the summary.
  const warnings = [...pipe.warnings, ...promptWarnings(pipe, prompts, values.negative)];
  for (const w of warnings) process.stderr.write(`warning: ${w}\n`);
  // The built-in metric's graph that does not open on the GPU: the JavaScript metric (same values), one warning line.
  const onFallback = (reason: string) =>
    process.stderr.write(`warning: the gap metric did not load on ${ep} (${reason}); measuring gaps with the JavaScript metric instead (same values, on the CPU)\n`);
  const metric = await createPerceptualMetric(values.lpips ?? config.lpipsModel, { ep, deviceId, onFallback }, builtinPerceptualGraph);
  const bar = new ProgressBar(kind === 'blend' ? 'blending' : 'movie');
  const controller = new AbortController();
  const stopSignals = stopOnSignals(controller);

  const result = await renderMovie(
    pipe,
    {
      prompts,
      seeds: opts.seeds,
      mode: opts.mode,
      walkFrames: opts.walkFrames,
      negativePrompt: values.negative,
      steps: opts.steps,
      guidance: opts.guidance,
      width: opts.width,
      height: opts.height,
      images,
      inpaint,
      depthStrength: opts.depthStrength,
      maxBranches: opts.branches,
      computeSeconds: opts.seconds,
      order: opts.order,
      signal: controller.signal,
      onProgress: (p) => {
        const seg = p.segments > 1 ? `segment ${p.segment}/${p.segments} ` : '';
        if (p.transition) bar.update(p.transition.branchesDone, p.transition.branchesPlanned, `${seg}stage ${p.transition.stage}/${p.transition.stages}`);
        else if (p.framesTotal) bar.update(p.framesDone ?? 0, p.framesTotal, seg);
      },
    },
    metric,
  );
  bar.done();
  const video = await segmentsToVideo(result.segments, {
    fps: opts.fps,
    duration: opts.duration,
    format: opts.format,
    out,
    maxBytes: opts.maxBytes,
    plan: opts.plan,
    signal: controller.signal,
  });
  stopSignals();
  await pipe.release();
  await metric.release?.();
  return { ep, model, modelName: pipe.folder.name, started, warnings, result, video };
}

/** The summary of a written movie (--json's object) and its text line. */
function summarize(out: string, prompts: string[], opts: RenderOptions, rendered: Awaited<ReturnType<typeof renderToFile>>, size: number) {
  const { result, video } = rendered;
  const gaps = result.segments.flatMap((s) => s.gaps ?? []);
  const summary = {
    file: out,
    format: opts.format,
    model: rendered.modelName,
    demoModel: rendered.model.isDemo,
    ep: rendered.ep,
    mode: opts.mode,
    prompts,
    seeds: result.seeds,
    segments: result.segments.length,
    keyframes: result.branches,
    frames: video.frames,
    // As written: an animated image above the rate players show is written slower (ANIMATION_MAX_FPS), same duration.
    fps: video.fps,
    durationSeconds: Number(video.durationSeconds.toFixed(3)),
    width: video.width,
    height: video.height,
    sizeBytes: size,
    metric: result.metric ?? null,
    maxGap: gaps.length ? Number(Math.max(...gaps).toFixed(4)) : null,
    meanGap: gaps.length ? Number((gaps.reduce((a, b) => a + b, 0) / gaps.length).toFixed(4)) : null,
    renderSeconds: Number(result.seconds.toFixed(3)),
    totalSeconds: Number(((performance.now() - rendered.started) / 1000).toFixed(3)),
    // A prompt longer than the text encoder reads (its end had no effect), as the farm's workers report it.
    warnings: rendered.warnings,
  };
  const line =
    `${out}: ${summary.keyframes} keyframes${gaps.length ? ` (max gap ${summary.maxGap}, mean ${summary.meanGap})` : ''}, seeds ${result.seeds.join(', ')}, ` +
    `${video.frames} frames at ${video.fps} fps (${summary.durationSeconds}s, ${video.width}x${video.height}), ${fileSize(size)}, ` +
    `rendered in ${summary.renderSeconds.toFixed(1)}s, total ${summary.totalSeconds.toFixed(1)}s (model ${summary.model}, ${rendered.ep})\n`;
  return { summary, line };
}

export async function runTransitionCli(kind: Kind, argv = process.argv.slice(2)): Promise<void> {
  const { values, positionals } = parseCli(argv, OPTIONS);
  if (values.help) {
    process.stdout.write(help(kind));
    return;
  }
  const prompts = readPrompts(kind, values, positionals);
  const opts = readRenderOptions(kind, values, prompts);
  const pictureFlags = await readPictureFlags(kind, values, prompts);
  const inpaintRequest = await readInpaintFlags(values);
  const fileName = `${DEFAULT_OUT_STEM[kind]}.${opts.format}`;
  const out = outputFile(values.out ?? fileName, fileName);
  const rendered = await renderToFile(kind, values, prompts, opts, pictureFlags, inpaintRequest, out);
  const { summary, line } = summarize(out, prompts, opts, rendered, (await stat(out)).size);
  process.stdout.write(values.json ? `${JSON.stringify(summary)}\n` : line);
}
