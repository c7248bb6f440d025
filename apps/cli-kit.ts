/**
 * What every command-line program in apps/ shares: the usage error, numeric flags, and the one
 * top-level runner that turns errors into one line and an exit status.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ConfigError, readSetting, settings } from '../config/index.ts';
import { isOutOfMemory, unreplaceableIssue } from '../engine/index.ts';

/** A bad command line: exit status 2, with the message (and, where the program has one, a pointer to --help). */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** Plain decimal notation: an optional minus sign, digits, and (for non-integers) a fraction. */
const DECIMAL_INTEGER = /^-?\d+$/;
const DECIMAL_NUMBER = /^-?(\d+(\.\d*)?|\.\d+)$/;

/**
 * Parses a numeric flag, naming it in the error; undefined when the flag was not given. Strict:
 * decimal notation only (no hex "0x10", exponent "1e3", "Infinity", blanks or signs like "+5"),
 * within [min, max], and never past the integers a double holds exactly (a seed of 2^53 + 1
 * would silently become another number).
 */
export function numberOption(name: string, raw: string | undefined, opts: { integer?: boolean; min?: number; max?: number } = {}): number | undefined {
  if (raw === undefined) return undefined;
  const { integer = false, min = -Infinity, max = Infinity } = opts;
  const v = Number(raw);
  const wellFormed = (integer ? DECIMAL_INTEGER : DECIMAL_NUMBER).test(raw) && Number.isFinite(v);
  if (!wellFormed || (integer && !Number.isSafeInteger(v)) || v < min || v > max) {
    const range = Number.isFinite(min) && Number.isFinite(max) ? ` from ${min} to ${max}` : Number.isFinite(min) ? ` of at least ${min}` : Number.isFinite(max) ? ` of at most ${max}` : '';
    // Say why when JavaScript would have read it as a number ("0x10", "1e3", " 16").
    const digits = !wellFormed && raw.trim() !== '' && !Number.isNaN(v) ? ' (plain decimal digits)' : '';
    throw new UsageError(`--${name} must be ${integer ? 'a whole number' : 'a number'}${range}${digits}, got "${raw}"`);
  }
  return v;
}

/**
 * Parses a flag that names one of `choices` (own keys of a table such as QUALITY_PRESETS, or a
 * list); undefined when not given. Inherited names ("__proto__", "toString") are not choices.
 */
export function choiceOption<T extends string>(name: string, raw: string | undefined, choices: readonly T[] | Readonly<Record<T, unknown>>): T | undefined {
  if (raw === undefined) return undefined;
  const names = (Array.isArray(choices) ? choices : Object.keys(choices)) as readonly string[];
  if (!names.includes(raw)) throw new UsageError(`--${name} must be one of ${names.join(', ')}, got "${raw}"`);
  return raw as T;
}

/**
 * `argv` with a value that starts with "-" joined to the flag before it ("--grant -450" as
 * "--grant=-450", "--note -5 for a test" likewise): node:util parseArgs reads such a value as a flag
 * and refuses the line as ambiguous. Only flags of type string in `options` take the next argument,
 * and never one that is itself a flag of `options`; a "--" ends the flags.
 */
export function negativeValuesJoined(argv: readonly string[], options: Readonly<Record<string, { type: 'string' | 'boolean'; short?: string }>>): string[] {
  // The long name of a flag of `options` ("--grant", "--grant=5", "-g"), undefined for anything else.
  const nameOf = (arg: string): string | undefined => {
    if (arg.startsWith('--')) return Object.hasOwn(options, arg.slice(2).split('=')[0]) ? arg.slice(2).split('=')[0] : undefined;
    if (/^-[A-Za-z]$/.test(arg)) return Object.keys(options).find((name) => options[name].short === arg.slice(1));
    return undefined;
  };
  const flagOf = (arg: string) => {
    const name = nameOf(arg);
    return name === undefined ? undefined : options[name];
  };
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--') return [...out, ...argv.slice(i)];
    const next = argv[i + 1];
    if (next !== undefined && next !== '--' && next.startsWith('-') && !flagOf(next) && !arg.includes('=') && flagOf(arg)?.type === 'string') {
      out.push(`--${nameOf(arg)}=${next}`);
      i++;
    } else out.push(arg);
  }
  return out;
}

/** The flags of a command line, as node:util parseArgs takes them. */
export type CliOptions = NonNullable<ParseArgsConfig['options']>;

/**
 * The one way every command-line program in apps/ reads its arguments: node:util parseArgs
 * (strict: an unknown flag or a flag without its value is a usage error, see isUsageError), with
 * positionals, after negativeValuesJoined. So "--seed -3" reads as "--seed=-3" in every tool and
 * the flag's own check refuses it with its range, never parseArgs with "ambiguous".
 */
export function parseCli<const O extends CliOptions>(argv: readonly string[], options: O) {
  return parseArgs({ args: negativeValuesJoined(argv, options), options, allowPositionals: true, strict: true });
}

/**
 * Whether `err` is a bad command line: a UsageError, or node:util parseArgs refusing the arguments
 * (an unknown flag, a flag without its value: its errors carry an ERR_PARSE_ARGS_* code).
 */
export function isUsageError(err: unknown): boolean {
  if (err instanceof UsageError) return true;
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS_');
}

/**
 * runCli for a program whose `parse` reads the command line and returns undefined for --help: the
 * usage is printed then; otherwise `main` runs with what was parsed (a bad command line is exit 2).
 */
export function runParsed<T>(usage: string, parse: (argv: string[]) => T | undefined, main: (args: T) => Promise<number | void>): Promise<number> {
  return runCli(async () => {
    const args = parse(process.argv.slice(2));
    if (args === undefined) {
      process.stdout.write(usage);
      return;
    }
    return main(args);
  });
}

/**
 * The top-level runner of every command-line program: runs main and sets process.exitCode to what
 * main returned (else 0), 2 for a bad command line (isUsageError), 1 for any other error, each
 * error shown as one line on stderr (the stack trace only when DEBUG is set). Returns the exit
 * status too.
 */
export async function runCli(main: () => Promise<number | void>, opts: { outOfMemory?: string } = {}): Promise<number> {
  let code: number;
  try {
    code = (await main()) ?? 0;
  } catch (err) {
    // DEBUG (config/settings.ts `debug`): the stack trace too.
    if (readSetting('debug') !== undefined) console.error(err);
    const msg = isOutOfMemory(err)
      ? outOfMemoryMessage(err, opts.outOfMemory ?? OUT_OF_MEMORY_HINT)
      : err instanceof ConfigError ? err.message : err instanceof Error ? err.message : String(err);
    process.stderr.write(`\nerror: ${msg}\n`);
    code = isUsageError(err) ? 2 : 1;
  }
  process.exitCode = code;
  return code;
}

/** What a render CLI says to change when the render runs out of memory (runCli's default). */
export const OUT_OF_MEMORY_HINT = 'pick a smaller --width/--height';

/**
 * An out-of-memory failure (the engine's rule, isOutOfMemory in engine/errors.ts: ONNX
 * Runtime's arenas, CUDA, cuDNN, cuBLAS or the JS heap) as the CLIs say it: what ran out, what to
 * change, and ONNX Runtime's first line, whose end names the allocation that failed.
 */
export function outOfMemoryMessage(err: unknown, hint: string): string {
  const first = (err instanceof Error ? err.message : String(err)).split('\n')[0];
  return `the render ran out of memory: ${hint} (${first})`;
}

/**
 * The command line of a long-running process that takes its settings from the environment (npm
 * start, npm run worker, start:sharded, deploy-commands): `--help` (or -h) prints `usage` and
 * exits 0, any other argument is refused with exit status 2, both before anything is read or
 * connected. Nothing happens when there are no arguments.
 */
export function settingsOnlyArguments(command: string, usage: string, args: readonly string[] = process.argv.slice(2)): void {
  if (args.length === 0) return;
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(usage.endsWith('\n') ? usage : `${usage}\n`);
    process.exit(0);
  }
  process.stderr.write(`error: ${command} takes no arguments (its settings come from the environment or .env), got "${args[0]}"; run \`${command} -- --help\` for its settings.\n`);
  process.exit(2);
}

/** Where every setting is explained: the end of each settings-only process's --help. */
export const SETTINGS_DOCS = 'Every setting, with a one-line explanation and its default: .env.example (generated from config/settings.ts); copy it to .env. README.md, "Configuration" and "Running in production".';

/** One line per setting for a --help text: its variable and its explanation, from config/settings.ts. */
export function settingLines(keys: ReadonlyArray<keyof typeof settings>): string {
  const width = Math.max(...keys.map((k) => settings[k].env.length));
  return keys.map((k) => `  ${settings[k].env.padEnd(width)}  ${settings[k].help}`).join('\n');
}

/**
 * Refuses an --out whose folder is not there or cannot be written, or that is a folder itself, before anything renders
 * (the file is written only at the end, and a render can take minutes). `fileName` is the name
 * the tool writes without --out, suggested inside such a folder. Returns `out`.
 */
export function outputFile(out: string, fileName: string): string {
  if (existsSync(out) && statSync(out).isDirectory()) throw new UsageError(`--out ${out} is a folder; give a file name, e.g. --out ${join(out, fileName)}`);
  // The file is renamed into place when whole: that would replace a link, a device or a pipe itself.
  const issue = unreplaceableIssue(out);
  if (issue) throw new UsageError(`--out ${issue}`);
  const folder = dirname(out);
  if (!existsSync(folder) || !statSync(folder).isDirectory()) throw new UsageError(`--out ${out}: there is no folder ${folder}; create it or give another path`);
  // A file is made there and removed: permissions alone do not say it (root passes them, while a
  // read-only or virtual file system still refuses), and the render would fail only at its end.
  const probe = join(folder, `.${basename(out)}.${randomBytes(4).toString('hex')}.probe`);
  try {
    closeSync(openSync(probe, 'wx'));
    rmSync(probe, { force: true });
  } catch (error) {
    throw new UsageError(`--out ${out}: files cannot be made in ${folder} (${(error as NodeJS.ErrnoException).code}); give a path in a folder you can write to`);
  }
  return out;
}
