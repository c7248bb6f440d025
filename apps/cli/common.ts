/** Shared command-line plumbing: model choice (with the demo fallback), execution provider, errors. */
import { loadConfig, loadDotEnv, ConfigError, type Config } from '../../config/index.ts';
import { ensureDemoModel } from '../../models/demo-model.ts';
import { DEMO_MODEL_DIR } from '../../models/paths.ts';
import type { ExecutionProvider } from '../../engine/onnx/session.ts';

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
  const dir = flag ?? config.modelDir;
  if (dir) return { dir, isDemo: false };
  process.stderr.write(
    'Using the built-in demo model (closed-form, no weights). Point --model or BLENDFARM_MODEL_DIR at a real ONNX export for real images (models/README.md).\n',
  );
  return { dir: await ensureDemoModel(DEMO_MODEL_DIR), isDemo: true };
}

export function parseEp(value: string | undefined, config: Config): ExecutionProvider {
  const ep = value ?? config.executionProvider ?? 'cpu';
  if (ep !== 'cpu' && ep !== 'cuda' && ep !== 'webgpu') throw new UsageError(`--ep must be cpu, cuda or webgpu, got "${ep}"`);
  return ep;
}

export class UsageError extends Error {
  override name = 'UsageError';
}

/** Parses a numeric option, naming the flag in the error. */
export function numberOption(name: string, raw: string | undefined, opts: { integer?: boolean; min?: number; max?: number } = {}): number | undefined {
  if (raw === undefined) return undefined;
  const v = Number(raw);
  const { integer = false, min = -Infinity, max = Infinity } = opts;
  if (raw.trim() === '' || !Number.isFinite(v) || (integer && !Number.isInteger(v)) || v < min || v > max) {
    const range = Number.isFinite(min) && Number.isFinite(max) ? ` from ${min} to ${max}` : '';
    throw new UsageError(`--${name} must be ${integer ? 'a whole number' : 'a number'}${range}, got "${raw}"`);
  }
  return v;
}

/** Top-level error handler for CLIs: one clear line, no stack trace unless DEBUG is set. */
export function runCli(main: () => Promise<void>): void {
  main().catch((err: unknown) => {
    if (process.env.DEBUG) console.error(err);
    const msg = err instanceof ConfigError ? err.message : err instanceof Error ? err.message : String(err);
    process.stderr.write(`\nerror: ${msg}\n`);
    process.exitCode = err instanceof UsageError ? 2 : 1;
  });
}

/** Options every rendering tool takes (spread into parseArgs's options). */
export const COMMON_OPTIONS = {
  model: { type: 'string' },
  ep: { type: 'string' },
  device: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;
