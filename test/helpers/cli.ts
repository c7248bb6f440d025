// Running the project's command-line tools as a user would: a child node process with tsx's
// loader, from any folder, collecting stdout, stderr and the exit code.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The repository root. */
export const ROOT = new URL('../..', import.meta.url).pathname;
/** tsx's loader by path, so node finds it when the tools run from a temporary folder. */
export const TSX = pathToFileURL(join(ROOT, 'node_modules/tsx/dist/loader.mjs')).href;

export interface CliResult {
  /** null: killed (timed out). */
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `script` (a path from the repository root) with tsx as a child node process and resolves
 * with its exit code and output; a failing tool resolves too, with its code (null when it was
 * killed at `timeoutMs`). `env` is added to this process's environment; an undefined value removes
 * that variable.
 */
export async function runTool(script: string, args: string[], options: { cwd?: string; env?: Record<string, string | undefined>; timeoutMs?: number } = {}): Promise<CliResult> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const [key, value] of Object.entries(options.env ?? {})) {
    if (value === undefined) delete env[key];
    else env[key] = value;
  }
  try {
    const { stdout, stderr } = await run(process.execPath, ['--import', TSX, join(ROOT, script), ...args], { cwd: options.cwd ?? ROOT, env, timeout: options.timeoutMs ?? 120_000, killSignal: 'SIGKILL' });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as CliResult;
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/**
 * Runs apps/cli/<script> with `args` in `cwd` (no model folder configured, no DEBUG, plus `env`)
 * and resolves with its exit code and output; a failing tool resolves too, with its code.
 */
export function runCli(script: string, args: string[], options: { cwd: string; env?: Record<string, string> }): Promise<CliResult> {
  return runTool(join('apps/cli', script), args, { cwd: options.cwd, env: { BLENDFARM_MODEL_DIR: '', DEBUG: '', ...options.env } });
}

/**
 * Runs a script of the repository (e.g. 'scripts/gpu-upscale.ts') with tsx from the root, as the
 * device bundles run; rejects like execFile when it exits non-zero (the error has code and stdout).
 */
export function runScript(script: string, args: string[]): Promise<{ stdout: string; stderr: string }> {
  return run(process.execPath, ['--import', TSX, join(ROOT, script), ...args], { cwd: ROOT, timeout: 110_000 });
}
