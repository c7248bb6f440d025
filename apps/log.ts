// Structured logs for the processes in apps/: one JSON line per event (pino), human-readable
// when stdout is a terminal (pino-pretty), LOG_LEVEL and BLENDFARM_LOG_FORMAT from the settings.
//
// Secrets never reach the output, by three independent rules applied to every line:
//   1. fields named like secrets (token, password, authorization, databaseUrl, ...) are replaced;
//   2. the values of the secrets this process knows (Discord token, database password, status
//      token) are replaced wherever they appear, also inside messages and error texts;
//   3. passwords in connection strings (URL user info, ?password=, keyword=value, PGPASSWORD=) are
//      replaced by config/redact.ts's redactConnectionString, the one rule for those.
// Rules 2 and 3 apply to each string of a line's JSON (keys and values), so a rule never reaches
// across the line's structure.
import { Writable } from 'node:stream';
import { format } from 'node:util';
import pino, { type Logger } from 'pino';
import pretty from 'pino-pretty';
import { REDACTED, redactConnectionString } from '../config/redact.ts';
import { settings, type Config } from '../config/index.ts';

export type { Logger } from 'pino';
export { REDACTED };

/** The settings marked `secret` in config/settings.ts: the one list of secret settings. */
const SECRET_SETTINGS = Object.entries(settings).filter(([, spec]) => (spec as { secret?: boolean }).secret);
const SECRET_KEYS = ['token', 'password', 'authorization', 'cookie', 'secret', 'interactionToken', ...SECRET_SETTINGS.flatMap(([key, spec]) => [key, spec.env])];
const REDACT_PATHS = [...SECRET_KEYS, ...SECRET_KEYS.map((k) => `*.${k}`), 'req.headers.authorization', 'req.headers.cookie'];

export interface LoggerOptions {
  /** Process role: "bot", "worker", ... (the `name` field of every line). */
  name: string;
  level?: 'debug' | 'info' | 'warn' | 'error';
  /** Values to hide wherever they appear (tokens, passwords); empty and very short values are ignored. */
  secrets?: Array<string | undefined>;
  /** 'auto' (default): pretty on a terminal, JSON otherwise. */
  format?: 'auto' | 'json' | 'pretty';
  /** Where lines go (default stdout). */
  destination?: NodeJS.WritableStream;
}

/** The password of a connection string (user info or ?password=), to pass in `secrets`. */
export function urlPassword(url: string | undefined): string | undefined {
  if (!url) return undefined;
  try {
    const parsed = new URL(url);
    return decodeURIComponent(parsed.password) || parsed.searchParams.get('password') || undefined;
  } catch {
    return undefined;
  }
}

/**
 * The values to hide (`secrets`) for a process with this configuration: every setting marked
 * `secret` in config/settings.ts; of a connection string (DATABASE_URL), its password, so logs
 * still say where the database is. Every process's logger takes its secrets from here.
 */
export function secretsOf(config: Partial<Config>): string[] {
  return SECRET_SETTINGS.map(([key]) => config[key as keyof Config])
    .filter((v): v is string => typeof v === 'string' && v !== '')
    .map((v) => (/^[a-z][a-z0-9+.-]*:\/\//i.test(v) ? urlPassword(v) : v))
    .filter((v): v is string => v !== undefined);
}

/** Removes every known secret and connection-string password from one line of output (JSON or text). */
export function scrubber(secrets: Array<string | undefined>): (line: string) => string {
  const values = [...new Set(secrets.filter((s): s is string => typeof s === 'string' && s.length >= 4))];
  // A value also appears URL-encoded inside a URL.
  const forms = [...new Set(values.flatMap((v) => [v, encodeURIComponent(v)]))].sort((a, b) => b.length - a.length);
  const text = (value: string): string => {
    let out = redactConnectionString(value);
    for (const form of forms) out = out.split(form).join(REDACTED);
    return out;
  };
  const deep = (value: unknown): unknown => {
    if (typeof value === 'string') return text(value);
    if (Array.isArray(value)) return value.map(deep);
    if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [text(k), deep(v)]));
    return value;
  };
  return (line) =>
    line
      .split('\n')
      .map((part) => {
        if (!part.startsWith('{')) return text(part);
        try {
          return JSON.stringify(deep(JSON.parse(part)));
        } catch {
          // Not JSON after all: scrubbed as text, the JSON-escaped form of each secret included.
          return values.reduce((out, v) => out.split(JSON.stringify(v).slice(1, -1)).join(REDACTED), text(part));
        }
      })
      .join('\n');
}

export function createLogger(options: LoggerOptions): Logger {
  const destination = options.destination ?? process.stdout;
  const scrub = scrubber(options.secrets ?? []);
  const wantPretty = options.format === 'pretty' || ((options.format ?? 'auto') === 'auto' && (destination as { isTTY?: boolean }).isTTY === true);
  const target: NodeJS.WritableStream = wantPretty
    ? pretty({ colorize: true, sync: true, destination, translateTime: 'SYS:HH:MM:ss', ignore: 'pid,hostname' })
    : destination;
  const sink = new Writable({
    write(chunk: Buffer | string, _encoding, callback) {
      target.write(scrub(chunk.toString()));
      callback();
    },
  });
  return pino(
    {
      name: options.name,
      level: options.level ?? 'info',
      redact: { paths: REDACT_PATHS, censor: REDACTED },
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    sink,
  );
}

/** Fields the farm's and bot's free-text log lines carry, read back out of the text. */
export function fieldsOf(line: string): { workerId?: string; jobId?: number; attempt?: number; durationSeconds?: number } {
  const fields: ReturnType<typeof fieldsOf> = {};
  const worker = /\[worker ([^\]\s]+)\]/.exec(line);
  if (worker) fields.workerId = worker[1];
  const job = /\bjob (\d+)\b/i.exec(line);
  if (job) fields.jobId = Number(job[1]);
  const attempt = /\battempt (\d+)\b/.exec(line);
  if (attempt) fields.attempt = Number(attempt[1]);
  const duration = /\bdone in ([\d.]+) s\b/.exec(line);
  if (duration) fields.durationSeconds = Number(duration[1]);
  return fields;
}

/**
 * A `log(line, level?)` callback (what the farm's workers and the bot accept) writing one structured
 * line per call: job id, worker id, attempt and duration are taken from the text when it has them.
 * Without a level, a line that says something failed is a warning and any other is info.
 */
export function lineLogger(logger: Logger, defaults: Record<string, unknown> = {}): (line: string, level?: 'info' | 'warn' | 'error') => void {
  return (line, level) => {
    const text = line.replace(/^\[[^\]]+\]\s*/, (prefix) => (/^\[worker /.test(prefix) ? '' : prefix));
    const bound = logger.bindings();
    const fields = Object.fromEntries(Object.entries({ ...defaults, ...fieldsOf(line) }).filter(([key]) => !(key in bound)));
    if (level) logger[level](fields, text);
    else if (/\b(failed|error|could not)\b/i.test(line)) logger.warn(fields, text);
    else logger.info(fields, text);
  };
}

/** Sends console.log/info/warn/error (free-text logs inside the layers) through the logger. */
export function routeConsole(logger: Logger): void {
  console.log = (...args: unknown[]) => lineLogger(logger)(format(...args));
  console.info = console.log;
  const fields = (text: string) => Object.fromEntries(Object.entries(fieldsOf(text)).filter(([key]) => !(key in logger.bindings())));
  console.warn = (...args: unknown[]) => logger.warn(fields(format(...args)), format(...args));
  console.error = (...args: unknown[]) => logger.error(fields(format(...args)), format(...args));
}
