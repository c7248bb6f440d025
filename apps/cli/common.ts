/** Shared plumbing of the render CLIs: model choice (with the demo fallback), execution provider. */
import { extname } from 'node:path';
import { loadConfig, loadDotEnv, MAX_DEVICE_ID, type Config } from '../../config/index.ts';
import { ensureDemoModel } from '../../models/demo-model.ts';
import { DEMO_MODEL_DIR } from '../../models/paths.ts';
import { DEFAULT_DEVICE_ID, InvalidRequestError, executionProviders, MAX_GUIDANCE, MAX_IMAGE_SIDE, MAX_PROMPT_LENGTH, MAX_SEED, MAX_STEPS, VIDEO_FORMATS, type ExecutionProvider, type VideoFormat } from '../../engine/index.ts';
import { choiceOption, UsageError } from '../cli-kit.ts';
export { outputFile } from '../cli-kit.ts';

/** Pictures a CLI writes reach --out whole (the engine's rule for every file it writes for a user). */
export { writeWhole } from '../../engine/index.ts';

/** The engine refusing what the user gave (InvalidRequestError: a picture, a value) is a bad command line: exit 2, its message as it is. */
export function asUsageError<T>(work: Promise<T>): Promise<T> {
  return work.catch((err: unknown) => {
    throw err instanceof InvalidRequestError ? new UsageError(err.message) : err;
  });
}

/** A seed flag's range: the engine's (MAX_SEED, engine/noise.ts); numberOption refuses others with a usage error naming it. */
export const SEED_FLAG = { integer: true, min: 0, max: MAX_SEED } as const;

/** --width and --height: whole pixels up to the engine's MAX_IMAGE_SIDE (the engine then asks for a multiple of the model's size multiple: its VAE factor, 8, times its UNet's downsampling, e.g. 64 px for SD 1.5). */
export const SIZE_FLAG = { integer: true, min: 64, max: MAX_IMAGE_SIDE } as const;
/**
 * Refuses a prompt longer than the engine's MAX_PROMPT_LENGTH, naming it as the user typed it
 * (`what`: "prompt 2", "--negative"). Past it the text encoder reads nothing more, and a command
 * line of some 30 000 characters makes onnxruntime-node 1.29 crash (segmentation fault) as it starts.
 */
export function promptArgument(what: string, text: string): string {
  if (text.length > MAX_PROMPT_LENGTH) {
    throw new UsageError(`${what} is ${text.length} characters long; give at most ${MAX_PROMPT_LENGTH} (the text encoder reads about 300 characters, the rest is cut off)`);
  }
  return text;
}

/** --guidance: the engine's range. */
export const GUIDANCE_FLAG = { min: 0, max: MAX_GUIDANCE } as const;
/** --steps: from `min` (1 for a plain render; MIN_BLEND_STEPS to branch between, 2 for the x4 upscaler) to the engine's MAX_STEPS. */
export const stepsFlag = (min: number) => ({ integer: true, min, max: MAX_STEPS }) as const;

export interface ModelChoice {
  dir: string;
  isDemo: boolean;
}

export function loadCliConfig(): Config {
  loadDotEnv();
  return loadConfig();
}

/** --model, else BLENDFARM_MODEL_DIR, else the built-in demo model (built on first use). */
export async function chooseModel(flag: string | undefined, config: Config): Promise<ModelChoice> {
  // Given but empty (--model "", an unset shell variable): a mistake, not a request for the demo model. An empty BLENDFARM_MODEL_DIR stays "unset".
  if (flag !== undefined && flag.trim() === '') {
    throw new UsageError('--model needs a folder: give the path of a model folder, or leave out --model to use BLENDFARM_MODEL_DIR (else the built-in demo model)');
  }
  const dir = flag ?? config.modelDir;
  if (dir) return { dir, isDemo: false };
  process.stderr.write(
    'Using the built-in demo model (closed-form, no weights). Point --model or BLENDFARM_MODEL_DIR at a real ONNX export for real images (models/README.md).\n',
  );
  return { dir: await ensureDemoModel(DEMO_MODEL_DIR), isDemo: true };
}

/** The execution provider when neither --ep nor BLENDFARM_EP names one. */
export const DEFAULT_EP: ExecutionProvider = 'cpu';

export function parseEp(value: string | undefined, config: Config): ExecutionProvider {
  const ep = value ?? config.executionProvider ?? DEFAULT_EP;
  if (!(executionProviders as readonly string[]).includes(ep)) {
    throw new UsageError(`--ep must be ${executionProviders.slice(0, -1).join(', ')} or ${executionProviders.at(-1)}, got "${ep}"`);
  }
  return ep as ExecutionProvider;
}

/**
 * The video format: --format, else the --out file's extension (one of the engine's VIDEO_FORMATS),
 * else mp4. An --out whose extension is another format, or names none of them, is refused: the
 * file would hold one format under another's name.
 */
export function videoFormatOption(format: string | undefined, out: string | undefined): VideoFormat {
  const chosen = choiceOption('format', format, VIDEO_FORMATS);
  const ext = out === undefined ? '' : extname(out).slice(1).toLowerCase();
  if (ext === '') return chosen ?? 'mp4';
  const named = VIDEO_FORMATS.find((f) => f === ext);
  if (!named) throw new UsageError(`--out ${out}: give a name ending in ${VIDEO_FORMATS.map((f) => `.${f}`).join(', ')} (the extension picks the format)`);
  if (chosen !== undefined && chosen !== named) throw new UsageError(`--out ${out} names ${named} but --format is ${chosen}; leave out --format or give a name ending in .${chosen}`);
  return named;
}

/** `--ep`'s choices, for help texts. */
export const EP_CHOICES = executionProviders.join(' | ');

/** --device's range: a GPU index, as BLENDFARM_DEVICE_ID takes it. */
export const DEVICE_FLAG = { integer: true, min: 0, max: MAX_DEVICE_ID } as const;

/**
 * The help lines every render CLI shares, written once: what follows the flag and its argument
 * (each tool pads the flags to its own column).
 */
export const SHARED_HELP = {
  ep: `execution provider: ${EP_CHOICES} (default: BLENDFARM_EP, else ${DEFAULT_EP})`,
  device: `GPU index for cuda, ${DEVICE_FLAG.min}..${DEVICE_FLAG.max} (default: BLENDFARM_DEVICE_ID, else ${DEFAULT_DEVICE_ID})`,
  pipelineModel: 'ONNX pipeline folder (default: BLENDFARM_MODEL_DIR, else the built-in demo model)',
} as const;

/** Options every rendering tool takes (spread into parseArgs's options). */
export const COMMON_OPTIONS = {
  model: { type: 'string' },
  ep: { type: 'string' },
  device: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

/**
 * Ctrl-C, SIGTERM (timeout, docker stop) and SIGHUP (the terminal closed) stop a render: the first
 * aborts `controller` (the render and its encoder stop, nothing is written at --out), a second one
 * ends the process at once (exit 130; the engine removes its temporary file on the way out).
 * Without a controller the first one ends it. Returns the function that removes the handlers.
 */
export function stopOnSignals(controller?: AbortController): () => void {
  let signals = 0;
  const onSignal = () => {
    if (++signals === 1 && controller) controller.abort();
    else process.exit(130);
  };
  for (const signal of STOP_SIGNALS) process.on(signal, onSignal);
  return () => {
    for (const signal of STOP_SIGNALS) process.off(signal, onSignal);
  };
}
const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;


