/**
 * What every command-line program in apps/ shares: the usage error, numeric flags, and the one
 * top-level runner that turns errors into one line and an exit status.
 */
import { ConfigError } from '../config/index.ts';

/** A bad command line: exit status 2, with the message (and, where the program has one, a pointer to --help). */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** Parses a numeric flag, naming it in the error; undefined when the flag was not given. */
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

/**
 * The top-level runner of every command-line program: runs main and sets process.exitCode to what
 * main returned (else 0), 2 for a UsageError, 1 for any other error, each error shown as one line
 * on stderr (the stack trace only when DEBUG is set). Returns the exit status too.
 */
export async function runCli(main: () => Promise<number | void>): Promise<number> {
  let code: number;
  try {
    code = (await main()) ?? 0;
  } catch (err) {
    if (process.env.DEBUG) console.error(err);
    const msg = err instanceof ConfigError ? err.message : err instanceof Error ? err.message : String(err);
    process.stderr.write(`\nerror: ${msg}\n`);
    code = err instanceof UsageError ? 2 : 1;
  }
  process.exitCode = code;
  return code;
}
