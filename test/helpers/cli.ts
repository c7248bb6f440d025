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
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs apps/cli/<script> with `args` in `cwd` (no model folder configured, no DEBUG, plus `env`)
 * and resolves with its exit code and output; a failing tool resolves too, with its code.
 */
export async function runCli(script: string, args: string[], options: { cwd: string; env?: Record<string, string> }): Promise<CliResult> {
  try {
    const { stdout, stderr } = await run(process.execPath, ['--import', TSX, join(ROOT, 'apps/cli', script), ...args], {
      cwd: options.cwd,
      env: { ...process.env, BLENDFARM_MODEL_DIR: '', DEBUG: '', ...options.env },
      timeout: 120_000,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as CliResult;
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/**
 * Runs a script of the repository (e.g. 'scripts/gpu-upscale.ts') with tsx from the root, as the
 * device bundles run; rejects like execFile when it exits non-zero (the error has code and stdout).
 */
export function runScript(script: string, args: string[]): Promise<{ stdout: string; stderr: string }> {
  return run(process.execPath, ['--import', TSX, join(ROOT, script), ...args], { cwd: ROOT, timeout: 110_000 });
}
