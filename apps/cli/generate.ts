/**
 * npm run generate -- "a prompt" --out image.png [options]
 * Text-to-image with the engine; the smallest end-to-end use of a model folder.
 */
import { basename, extname } from 'node:path';
import { StableDiffusionPipeline, savePng, schedulerKinds } from '../../engine/index.ts';
import { ProgressBar } from './progress.ts';
import { chooseModel, COMMON_OPTIONS, DEVICE_FLAG, GUIDANCE_FLAG, loadCliConfig, outputFile, parseEp, SEED_FLAG, SHARED_HELP, SIZE_FLAG, stepsFlag, promptArgument, writeWhole, stopOnSignals } from './common.ts';
import { choiceOption, numberOption, parseCli, runCli, UsageError } from '../cli-kit.ts';

/** The file written without --out. */
const DEFAULT_OUT = 'image.png';

const HELP = `Usage: npm run generate -- "a prompt" --out image.png [options]

Renders one image (or a batch) from a text prompt with a Stable Diffusion model exported to ONNX.

Options:
  --out FILE          PNG file to write (default: ${DEFAULT_OUT}); a batch writes FILE-1.png, FILE-2.png, ...
  --negative TEXT     negative prompt (what the image should not show)
  --seed N            random seed, ${SEED_FLAG.min}..${SEED_FLAG.max} (default: drawn at random and printed)
  --steps N           denoising steps (default: the model's, e.g. 25 for SD 1.5, 1-4 for turbo models)
  --guidance G        classifier-free guidance scale; 0 or 1 skips the unconditional pass (default: the model's)
  --width W           image width in pixels, a multiple of what the model takes (8 x its UNet's downsampling, e.g. 64 for SD 1.5; default: the model's native size)
  --height H          image height in pixels, the same multiple
  --batch N           images to render at once; image i uses seed + i (default: 1)
  --scheduler NAME    ${schedulerKinds.join(' | ')} (default: the model's)
  --model DIR         ${SHARED_HELP.pipelineModel}
  --ep NAME           ${SHARED_HELP.ep}
  --device N          ${SHARED_HELP.device}
  --json              print a JSON summary on stdout instead of the text line
  -h, --help          show this help
`;

async function main(): Promise<void> {
  const { values, positionals } = parseCli(process.argv.slice(2), {
    out: { type: 'string' },
    negative: { type: 'string' },
    seed: { type: 'string' },
    steps: { type: 'string' },
    guidance: { type: 'string' },
    width: { type: 'string' },
    height: { type: 'string' },
    batch: { type: 'string' },
    scheduler: { type: 'string' },
    ...COMMON_OPTIONS,
  });
  if (values.help) {
    process.stdout.write(HELP);
    return;
  }
  if (positionals.length !== 1 || !positionals[0].trim()) {
    throw new UsageError('give exactly one prompt in quotes, e.g. npm run generate -- "a lighthouse at dusk" --out lighthouse.png (see --help)');
  }
  // The files are PNG: an --out naming another format would get PNG bytes under its name.
  if (values.out !== undefined && extname(values.out) !== '' && extname(values.out).toLowerCase() !== '.png') {
    throw new UsageError(`--out ${values.out}: generate writes PNG files; give a name ending in .png`);
  }
  const scheduler = choiceOption('scheduler', values.scheduler, schedulerKinds);
  const opts = {
    prompt: promptArgument('the prompt', positionals[0]),
    negativePrompt: values.negative === undefined ? undefined : promptArgument('--negative', values.negative),
    seed: numberOption('seed', values.seed, SEED_FLAG),
    steps: numberOption('steps', values.steps, stepsFlag(1)),
    guidance: numberOption('guidance', values.guidance, GUIDANCE_FLAG),
    width: numberOption('width', values.width, SIZE_FLAG),
    height: numberOption('height', values.height, SIZE_FLAG),
    batchSize: numberOption('batch', values.batch, { integer: true, min: 1, max: 64 }),
    scheduler,
  };
  const out = outputFile(values.out ?? DEFAULT_OUT, DEFAULT_OUT);
  const config = loadCliConfig();
  const ep = parseEp(values.ep, config);
  const deviceId = numberOption('device', values.device, DEVICE_FLAG) ?? config.deviceId;
  const model = await chooseModel(values.model, config);

  // A signal ends it (nothing half-written is left: the engine removes its temporary file on exit).
  stopOnSignals();
  const started = performance.now();
  const pipe = await StableDiffusionPipeline.load(model.dir, { ep, deviceId, threads: config.threads });
  const bar = new ProgressBar('denoising');
  const result = await pipe.generate({ ...opts, onStep: (i, n) => bar.update(i, n) });
  bar.done();
  for (const w of result.warnings) process.stderr.write(`warning: ${w}\n`);

  const files: string[] = [];
  const stem = out.slice(0, out.length - extname(out).length);
  for (let i = 0; i < result.images.length; i++) {
    const file = result.images.length === 1 ? out : `${stem}-${i + 1}.png`;
    await writeWhole(file, (partial) => savePng(result.images[i], partial));
    files.push(file);
  }
  const seconds = (performance.now() - started) / 1000;
  await pipe.release();
  const summary = {
    files,
    model: pipe.folder.name,
    demoModel: model.isDemo,
    family: pipe.folder.family,
    dtype: pipe.dtype,
    ep,
    seeds: result.seeds,
    steps: result.steps,
    guidance: result.guidance,
    scheduler: result.scheduler,
    width: result.width,
    height: result.height,
    seconds: Number(seconds.toFixed(3)),
    timingsMs: Object.fromEntries(Object.entries(result.timings).map(([k, v]) => [k, Math.round(v)])),
  };
  if (values.json) process.stdout.write(`${JSON.stringify(summary)}\n`);
  else {
    process.stdout.write(
      `${files.map((f) => basename(f)).join(', ')}: model ${summary.model} (${summary.family}, ${summary.dtype}, ${ep}), ` +
        `seed ${result.seeds.join(',')}, ${result.steps} step${result.steps === 1 ? '' : 's'}, ${result.scheduler}, guidance ${result.guidance}, ` +
        `${result.width}x${result.height}, ${seconds.toFixed(1)}s\n`,
    );
  }
}

runCli(main);
