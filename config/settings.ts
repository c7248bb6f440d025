/**
 * Every setting Blendfarm reads from the environment, in one table: the loader validates them,
 * `.env.example` documents them (a test keeps the two in step), and secrets are marked so they
 * are never printed.
 */

import { existsSync, statSync } from 'node:fs';

export interface SettingSpec<T> {
  env: string;
  /** One line for .env.example and for error messages. */
  help: string;
  secret?: boolean;
  /** Shown in .env.example; also the value used when the variable is unset (unless `optional`). */
  example?: string;
  parse(raw: string): T;
}

export class SettingError extends Error {}

const text = (raw: string) => raw;

function int(min: number, max: number) {
  return (raw: string): number => {
    if (!/^-?\d+$/.test(raw.trim())) throw new SettingError(`must be a whole number from ${min} to ${max}`);
    const n = Number(raw.trim());
    if (n < min || n > max) throw new SettingError(`must be a whole number from ${min} to ${max}`);
    return n;
  };
}

function atLeast(min: number, integer = false) {
  return (raw: string): number => {
    const n = Number(raw.trim());
    if (raw.trim() === '' || !Number.isFinite(n) || n < min || (integer && !Number.isInteger(n))) {
      throw new SettingError(`must be ${integer ? 'a whole number' : 'a number'} of at least ${min}`);
    }
    return n;
  };
}

/**
 * The longest wait a timer setting may ask for: 24 days. Node's timers take at most about 24.8
 * days (farm/timers.ts, which the farm's timers go through, waits longer ones in steps); past that
 * a value is far more likely a typo or a wrong unit than a wish, so it is refused with this bound.
 */
export const MAX_WAIT_SECONDS = 24 * 86_400;
const MAX_WAIT_TEXT = `${MAX_WAIT_SECONDS / 86_400} days`;

/** A wait in seconds or milliseconds: a number of at least `min`, at most MAX_WAIT_SECONDS (in the same unit). */
function wait(min: number, unit: 's' | 'ms') {
  const max = unit === 's' ? MAX_WAIT_SECONDS : MAX_WAIT_SECONDS * 1000;
  const below = atLeast(min);
  return (raw: string): number => {
    const n = below(raw);
    if (n > max) throw new SettingError(`must be at most ${max} (${unit === 's' ? 'seconds' : 'milliseconds'}: ${MAX_WAIT_TEXT}, the longest wait a setting may ask for)`);
    return n;
  };
}

function json(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch (err) {
    throw new SettingError(`must be JSON (${(err as Error).message})`);
  }
}

function oneOf<T extends string>(...values: T[]) {
  return (raw: string): T => {
    const v = raw.trim().toLowerCase() as T;
    if (!values.includes(v)) throw new SettingError(`must be one of ${values.join(', ')}`);
    return v;
  };
}

function url(protocols: string[]) {
  return (raw: string): string => {
    let u: URL;
    try {
      u = new URL(raw.trim());
    } catch {
      throw new SettingError(`must be a URL like ${protocols[0]}//host:port/...`);
    }
    if (!protocols.includes(u.protocol)) throw new SettingError(`must start with ${protocols.join(' or ')}//`);
    return raw.trim();
  };
}

function snowflake(raw: string): string {
  if (!/^\d{15,21}$/.test(raw.trim())) throw new SettingError('must be a Discord id (15 to 21 digits)');
  return raw.trim();
}

function discordToken(raw: string): string {
  // Bot tokens are three base64url parts joined by dots; catching a pasted client secret early
  // saves a confusing 401 from the gateway later.
  if (!/^[\w-]+\.[\w-]+\.[\w-]+$/.test(raw.trim())) {
    throw new SettingError('does not look like a bot token (three dot-separated parts, from the Bot page of your application)');
  }
  return raw.trim();
}

/** Where `npm start` serves /metrics, /healthz, /readyz and /status unless BLENDFARM_HTTP_PORT says otherwise. */
export const DEFAULT_BOT_HTTP_PORT = 9464;

/** The highest GPU index BLENDFARM_DEVICE_ID and the CLIs' --device take. */
export const MAX_DEVICE_ID = 64;

function httpPort(raw: string): number | 'off' {
  if (raw.trim().toLowerCase() === 'off') return 'off';
  try {
    return int(0, 65535)(raw);
  } catch {
    throw new SettingError('must be a port number from 0 to 65535, or off');
  }
}

/** The characters a model or upscaler id may use (workers' model names): letters, digits, ".", "_" and "-". */
export const ID_CHARACTERS = /^[A-Za-z0-9._-]*$/;

/** The longest upscaler id, in BLENDFARM_UPSCALER and in a job (the farm's LIMITS.upscalerId). */
export const MAX_UPSCALER_ID_LENGTH = 64;

/** The longest model id, in BLENDFARM_MODEL_ID and in a job (the farm's LIMITS.modelId). */
export const MAX_MODEL_ID_LENGTH = 100;

/** The id of the model a job that names none asks for: every bot command, and the CLIs' jobs without --model (the farm's DEFAULT_MODELS.text). */
export const DEFAULT_MODEL_ID = 'demo';

function modelId(raw: string): string {
  const id = raw.trim();
  if (!id || id.length > MAX_MODEL_ID_LENGTH || !ID_CHARACTERS.test(id)) throw new SettingError(`must be a model id of 1 to ${MAX_MODEL_ID_LENGTH} letters, digits, ".", "_" or "-"`);
  return id;
}

/** An upscaler id (the worker checks that it has it when it starts). */
function upscalerId(raw: string): string {
  const id = raw.trim();
  if (!id || id.length > MAX_UPSCALER_ID_LENGTH || !ID_CHARACTERS.test(id)) throw new SettingError('must be an upscaler id such as esrgan-slim, esrgan-medium, esrgan-thick or x4-diffusion');
  return id;
}

/**
 * A folder the process writes into (created when missing): a path that is there but is a file is
 * refused here, naming the setting, rather than failing later as a bare EEXIST/ENOTDIR from mkdir.
 */
function folder(raw: string): string {
  const path = raw.trim();
  if (existsSync(path) && !statSync(path).isDirectory()) throw new SettingError(`is a file, not a folder; give a folder (it is created when missing)`);
  return path;
}

/** The PGlite folder, or memory:// (no folder). */
function dataDir(raw: string): string {
  return raw.trim().startsWith('memory://') ? raw.trim() : folder(raw);
}

/** A folder, or `off` (false): no spool. */
function spoolDir(raw: string): string | false {
  return raw.trim().toLowerCase() === 'off' ? false : folder(raw);
}

function statusToken(raw: string): string {
  if (raw.trim().length < 16) throw new SettingError('must be at least 16 characters (e.g. the output of: openssl rand -hex 24)');
  return raw.trim();
}

export const settings = {
  modelDir: {
    env: 'BLENDFARM_MODEL_DIR',
    help: 'Folder of a Stable Diffusion pipeline exported to ONNX (diffusers/optimum layout); unset = the built-in demo model',
    example: '',
    parse: text,
  } as SettingSpec<string>,
  modelId: {
    env: 'BLENDFARM_MODEL_ID',
    help: `The id a worker offers its BLENDFARM_MODEL_DIR model under, the id jobs name; unset = "${DEFAULT_MODEL_ID}", the model every bot command and every job without a model asks for (set another id for a second model: jobs name it, and the bot's model option lists it while a worker offering it is online)`,
    example: '',
    parse: modelId,
  } as SettingSpec<string>,
  modelCache: {
    env: 'BLENDFARM_MODEL_CACHE',
    help: 'Folder for models converted on first use (the ESRGAN upscalers); unset = models/.cache in the project',
    example: '',
    parse: folder,
  } as SettingSpec<string>,
  executionProvider: {
    env: 'BLENDFARM_EP',
    help: 'ONNX Runtime execution provider: cpu, cuda or webgpu',
    example: 'cpu',
    parse: oneOf('cpu', 'cuda', 'webgpu'),
  } as SettingSpec<'cpu' | 'cuda' | 'webgpu'>,
  deviceId: {
    env: 'BLENDFARM_DEVICE_ID',
    help: 'GPU index for the cuda execution provider',
    example: '0',
    parse: int(0, MAX_DEVICE_ID),
  } as SettingSpec<number>,
  threads: {
    env: 'BLENDFARM_THREADS',
    help: 'CPU threads for ONNX Runtime (0 = let ONNX Runtime decide)',
    example: '0',
    parse: int(0, 1024),
  } as SettingSpec<number>,
  upscaler: {
    env: 'BLENDFARM_UPSCALER',
    help: 'Upscaler a worker uses for upscale jobs that name none: esrgan-slim (default), esrgan-medium, esrgan-thick (npm install --no-save @upscalerjs/esrgan-thick) or x4-diffusion',
    example: '',
    parse: upscalerId,
  } as SettingSpec<string>,
  x4UpscalerDir: {
    env: 'BLENDFARM_X4_UPSCALER_DIR',
    help: 'Folder of the Stable Diffusion x4 upscaler exported to ONNX (models/README.md); set = workers also offer the x4-diffusion upscaler',
    example: '',
    parse: text,
  } as SettingSpec<string>,
  inpaintModelDir: {
    env: 'BLENDFARM_INPAINT_MODEL_DIR',
    help: 'Folder of an inpainting pipeline exported to ONNX (models/README.md "Pictures in"); set = workers also take inpainting jobs, advertising it as model "inpaint"',
    example: '',
    parse: text,
  } as SettingSpec<string>,
  variationModelDir: {
    env: 'BLENDFARM_VARIATION_MODEL_DIR',
    help: 'Folder of an image-variation pipeline exported to ONNX (models/README.md "Pictures in"); set = workers also take /vary jobs, advertising it as model "variation"',
    example: '',
    parse: text,
  } as SettingSpec<string>,
  lpipsModel: {
    env: 'BLENDFARM_LPIPS_MODEL',
    help: 'Path to an LPIPS ONNX model for perceptual distances; unset = built-in metric that needs no weights',
    example: '',
    parse: text,
  } as SettingSpec<string>,
  ffmpegPath: {
    env: 'FFMPEG_PATH',
    help: 'ffmpeg binary to use; unset = ffmpeg-static, then @ffmpeg-installer/ffmpeg, then ffmpeg on PATH',
    example: '',
    parse: text,
  } as SettingSpec<string>,
  ffprobePath: {
    env: 'FFPROBE_PATH',
    help: 'ffprobe binary to use (reads videos: upscales, extensions, shrinking to fit the upload limit); unset = ffprobe-static, then @ffprobe-installer/ffprobe, then ffprobe on PATH',
    example: '',
    parse: text,
  } as SettingSpec<string>,
  debug: {
    env: 'DEBUG',
    help: 'set (any value) to print stack traces of errors on stderr besides their one-line message',
    example: '',
    parse: text,
  } as SettingSpec<string>,
  databaseUrl: {
    env: 'DATABASE_URL',
    help: 'Postgres connection string shared by bot and workers; unset = embedded PGlite in BLENDFARM_DATA_DIR (one process only)',
    secret: true,
    example: '',
    parse: url(['postgres:', 'postgresql:']),
  } as SettingSpec<string>,
  // Postgres client limits (db/client.ts); the defaults are the examples.
  dbConnectTimeoutMs: { env: 'BLENDFARM_DB_CONNECT_TIMEOUT_MS', help: 'Give up opening a Postgres connection after this many milliseconds (default 5000)', example: '5000', parse: int(100, 600_000) } as SettingSpec<number>,
  dbQueryTimeoutMs: { env: 'BLENDFARM_DB_QUERY_TIMEOUT_MS', help: 'A Postgres query without an answer for this many milliseconds fails (client timeout, also the server statement_timeout and idle-in-transaction timeout) (default 30000)', example: '30000', parse: int(100, 3_600_000) } as SettingSpec<number>,
  dbKeepAliveSeconds: { env: 'BLENDFARM_DB_KEEPALIVE_SECONDS', help: 'TCP keep-alive delay for Postgres connections, and how often the LISTEN connection checks it is alive (default 10)', example: '10', parse: int(1, 3600) } as SettingSpec<number>,
  dbIdleTimeoutMs: { env: 'BLENDFARM_DB_IDLE_TIMEOUT_MS', help: 'Close pooled Postgres connections idle for this many milliseconds (default 30000)', example: '30000', parse: int(1000, 3_600_000) } as SettingSpec<number>,
  dataDir: {
    env: 'BLENDFARM_DATA_DIR',
    help: 'Embedded database (PGlite) directory when DATABASE_URL is unset; memory:// keeps it in memory',
    example: './data/pglite',
    parse: dataDir,
  } as SettingSpec<string>,
  discordToken: {
    env: 'DISCORD_TOKEN',
    help: 'Bot token from https://discord.com/developers/applications (Bot page); required for the bot',
    secret: true,
    example: '',
    parse: discordToken,
  } as SettingSpec<string>,
  discordGuildId: {
    env: 'DISCORD_GUILD_ID',
    help: 'Register slash commands in this server only (instant); unset = global commands',
    example: '',
    parse: snowflake,
  } as SettingSpec<string>,
  discordApiBase: {
    env: 'DISCORD_API_BASE',
    help: "Discord REST base URL; unset = Discord's own. For REST proxies and tests",
    example: '',
    parse: url(['http:', 'https:']),
  } as SettingSpec<string>,
  // Farm: the apps pass loadConfig()'s result to farmConfigFrom (farm/config.ts) and the worker's loader.
  artifactDir: { env: 'BLENDFARM_ARTIFACT_DIR', help: 'Keep finished videos as files here (shared by all machines) instead of in the database', example: '', parse: folder } as SettingSpec<string>,
  spoolDir: {
    env: 'BLENDFARM_SPOOL_DIR',
    help: "Workers keep each finished video here (a local disk that survives a restart, one folder per farm) until the database has stored it, so a database outage or a worker restart does not cost a render; off = keep it in memory only, while the job's lease holds",
    example: './data/spool',
    parse: spoolDir,
  } as SettingSpec<string | false>,
  refillGpuSeconds: { env: 'BLENDFARM_REFILL_GPU_SECONDS', help: 'Default budget: each user is topped up to this many GPU-seconds per period (default 600)', example: '', parse: atLeast(0) } as SettingSpec<number>,
  refillPeriodSeconds: { env: 'BLENDFARM_REFILL_PERIOD_SECONDS', help: 'Default budget refill period in seconds (default 86400)', example: '', parse: atLeast(1) } as SettingSpec<number>,
  maxActiveJobs: { env: 'BLENDFARM_MAX_ACTIVE_JOBS', help: 'Default limit of queued + running jobs per user (default 3)', example: '', parse: atLeast(1, true) } as SettingSpec<number>,
  // Ceilings on what a server admin may set with /settings (farm/guilds.ts clamps to them and /settings says so).
  guildMaxRefillGpuSeconds: { env: 'BLENDFARM_GUILD_MAX_REFILL_GPU_SECONDS', help: 'Highest refill (GPU-seconds per period) a server admin may set for the server or a role; more is clamped (default 3600)', example: '', parse: atLeast(0, true) } as SettingSpec<number>,
  guildMinRefillPeriodSeconds: { env: 'BLENDFARM_GUILD_MIN_REFILL_PERIOD_SECONDS', help: 'Shortest refill period in seconds a server admin may set; shorter is clamped (default 3600)', example: '', parse: atLeast(1, true) } as SettingSpec<number>,
  guildMaxActiveJobs: { env: 'BLENDFARM_GUILD_MAX_ACTIVE_JOBS', help: 'Most queued + running jobs per member a server admin may allow for the server or a role; more is clamped (default 10)', example: '', parse: atLeast(1, true) } as SettingSpec<number>,
  costPerMegapixelStep: { env: 'BLENDFARM_GPU_SECONDS_PER_MEGAPIXEL_STEP', help: 'Cost model: GPU-seconds per UNet step per output megapixel, for reserving budgets (default 0.25)', example: '', parse: atLeast(0) } as SettingSpec<number>,
  costPerUpscaledMegapixel: { env: 'BLENDFARM_GPU_SECONDS_PER_UPSCALED_MEGAPIXEL', help: 'Cost model: GPU-seconds to upscale one frame per output megapixel, for reserving budgets for upscale jobs (default 0.05; raise it if workers run x4-diffusion)', example: '', parse: atLeast(0) } as SettingSpec<number>,
  leaseSeconds: { env: 'BLENDFARM_LEASE_SECONDS', help: 'A job whose worker stops heartbeating for this long is taken back and retried (default 30)', example: '', parse: atLeast(1) } as SettingSpec<number>,
  heartbeatSeconds: { env: 'BLENDFARM_HEARTBEAT_SECONDS', help: 'How often workers renew their leases; must be below the lease (default 10)', example: '', parse: wait(0.1, 's') } as SettingSpec<number>,
  progressThrottleMs: { env: 'BLENDFARM_PROGRESS_THROTTLE_MS', help: 'Minimum milliseconds between progress writes per job (default 1000)', example: '', parse: wait(0, 'ms') } as SettingSpec<number>,
  retryBackoffSeconds: { env: 'BLENDFARM_RETRY_BACKOFF_SECONDS', help: 'Retry n of a failed job waits n times this (default 5)', example: '', parse: atLeast(0) } as SettingSpec<number>,
  maxAttempts: { env: 'BLENDFARM_MAX_ATTEMPTS', help: 'Attempts before a job is marked failed (default 3)', example: '', parse: atLeast(1, true) } as SettingSpec<number>,
  lastAttemptGraceSeconds: { env: 'BLENDFARM_LAST_ATTEMPT_GRACE_SECONDS', help: 'A job on its last attempt whose worker stopped heartbeating is failed only this many seconds after its lease ran out, so a render that worker finished and kept in its spool is still stored when it comes back (jobs with attempts left are retried at once); 0 = fail at once (default 120)', example: '', parse: atLeast(0) } as SettingSpec<number>,
  fairnessHalfLife: { env: 'BLENDFARM_FAIRNESS_HALF_LIFE_SECONDS', help: 'Half-life of recent usage in the fair claim order (default 3600)', example: '', parse: atLeast(1) } as SettingSpec<number>,
  pollIntervalMs: { env: 'BLENDFARM_POLL_INTERVAL_MS', help: 'Idle workers re-check the queue this often besides notifications (default 2000)', example: '', parse: wait(10, 'ms') } as SettingSpec<number>,
  abortGraceMs: { env: 'BLENDFARM_ABORT_GRACE_MS', help: 'A cancelled render that has not stopped after this long gets its thread replaced (default 10000)', example: '', parse: wait(0, 'ms') } as SettingSpec<number>,
  renderTimeoutFactor: { env: 'BLENDFARM_RENDER_TIMEOUT_FACTOR', help: "A render may run this many times its job's reserved GPU-seconds (but at least BLENDFARM_RENDER_TIMEOUT_MIN_SECONDS) before it is stopped and the job failed, unless it is still progressing at a pace that ends it within 4 times that (default 4)", example: '', parse: atLeast(0.01) } as SettingSpec<number>,
  renderTimeoutMinSeconds: { env: 'BLENDFARM_RENDER_TIMEOUT_MIN_SECONDS', help: `The shortest render time limit in seconds, whatever the reservation; at most ${MAX_WAIT_SECONDS} (${MAX_WAIT_TEXT}) (default 600)`, example: '', parse: wait(1, 's') } as SettingSpec<number>,
  queueTimeoutSeconds: { env: 'BLENDFARM_QUEUE_TIMEOUT_SECONDS', help: 'A job no worker has taken for this long fails as expired, fully refunded; also how long a worker counts as known for refusing jobs none can run, and how long a spooled render is kept, both at least BLENDFARM_LEASE_SECONDS + BLENDFARM_LAST_ATTEMPT_GRACE_SECONDS; 0 = never (default 21600)', example: '', parse: atLeast(0) } as SettingSpec<number>,
  retentionArtifactDays: { env: 'BLENDFARM_RETENTION_ARTIFACT_DAYS', help: 'Videos of jobs finished more than this many days ago are deleted (the job row stays); 0 = keep (default 30)', example: '', parse: atLeast(0) } as SettingSpec<number>,
  retentionJobDays: { env: 'BLENDFARM_RETENTION_JOB_DAYS', help: 'Jobs finished more than this many days ago are deleted with their events and video (ledger entries stay); 0 = keep (default 90)', example: '', parse: atLeast(0) } as SettingSpec<number>,
  retentionMaxArtifactBytes: { env: 'BLENDFARM_RETENTION_MAX_ARTIFACT_BYTES', help: 'Oldest videos are deleted while all stored videos take more than this many bytes; 0 = no cap (default 0)', example: '', parse: atLeast(0, true) } as SettingSpec<number>,
  maxHeldPictureBytes: { env: 'BLENDFARM_MAX_HELD_PICTURE_BYTES', help: "The most picture bytes one member's jobs may hold while they wait or render, or after they ended without a video until retention deletes those (BLENDFARM_RETENTION_UNRENDERED_INPUT_HOURS); a submission past it is refused (default 209715200; 200 MiB)", example: '', parse: atLeast(1, true) } as SettingSpec<number>,
  retentionUnrenderedInputHours: { env: 'BLENDFARM_RETENTION_UNRENDERED_INPUT_HOURS', help: 'The pictures of jobs that ended without a video (failed or cancelled) are deleted this many hours after they ended: a retry within that time still has them, after it the command must be run again with the pictures (the job row stays; pictures of rendered jobs stay for re-rolls and extensions until the job goes); 0 = keep them until the job goes (default 24)', example: '', parse: atLeast(0) } as SettingSpec<number>,
  pruneIntervalSeconds: { env: 'BLENDFARM_PRUNE_INTERVAL_SECONDS', help: `Workers, and \`npm start\` without local workers, apply the retention settings this often (npm run farm -- prune does it once); 0 = only by hand; at most ${MAX_WAIT_SECONDS} (${MAX_WAIT_TEXT}) (default 3600)`, example: '', parse: wait(0, 's') } as SettingSpec<number>,
  workerConcurrency: { env: 'BLENDFARM_WORKER_CONCURRENCY', help: 'Render threads per worker, each running one job at a time on the worker\'s one device (BLENDFARM_DEVICE_ID); run one worker per GPU (default 1)', example: '', parse: atLeast(1, true) } as SettingSpec<number>,
  workerId: { env: 'BLENDFARM_WORKER_ID', help: 'Stable name of this worker in farm status; one running process per id (default host-pid-random)', example: '', parse: text } as SettingSpec<string>,
  shutdownGraceSeconds: { env: 'BLENDFARM_SHUTDOWN_GRACE_SECONDS', help: 'On SIGTERM a worker waits this many seconds for running renders before handing them back (default 30)', example: '', parse: wait(0, 's') } as SettingSpec<number>,
  localWorkers: { env: 'BLENDFARM_LOCAL_WORKERS', help: 'Render workers inside `npm start` (default 1 with the embedded database, 0 with DATABASE_URL)', example: '', parse: atLeast(0, true) } as SettingSpec<number>,
  shards: { env: 'BLENDFARM_SHARDS', help: "Gateway shards (bot processes) `npm run start:sharded` runs (default: as many as Discord recommends for the bot: GET /gateway/bot at DISCORD_API_BASE, else discord.com)", example: '', parse: atLeast(1, true) } as SettingSpec<number>,
  renderer: { env: 'BLENDFARM_RENDERER', help: 'Renderer module for workers (default apps/worker/engine-renderer.ts; farm/fake-renderer.ts is a test double)', example: '', parse: text } as SettingSpec<string>,
  rendererOptions: { env: 'BLENDFARM_RENDERER_OPTIONS', help: 'JSON options for the renderer module (default: built from the model and execution-provider settings above)', example: '', parse: json } as SettingSpec<unknown>,
  logLevel: {
    env: 'LOG_LEVEL',
    help: 'debug, info, warn or error',
    example: 'info',
    parse: oneOf('debug', 'info', 'warn', 'error'),
  } as SettingSpec<'debug' | 'info' | 'warn' | 'error'>,
  logFormat: {
    env: 'BLENDFARM_LOG_FORMAT',
    help: 'auto (readable lines on a terminal, JSON lines otherwise), json or pretty',
    example: 'auto',
    parse: oneOf('auto', 'json', 'pretty'),
  } as SettingSpec<'auto' | 'json' | 'pretty'>,
  // Operations HTTP server: /metrics, /healthz, /readyz, /status (README "Running in production").
  httpPort: {
    env: 'BLENDFARM_HTTP_PORT',
    help: `Port of the metrics, health and status page server; unset = ${DEFAULT_BOT_HTTP_PORT} for npm start and off for npm run worker; off = no server; 0 = any free port`,
    example: '',
    parse: httpPort,
  } as SettingSpec<number | 'off'>,
  httpHost: {
    env: 'BLENDFARM_HTTP_HOST',
    help: 'Address the metrics/health/status server listens on (0.0.0.0 for every interface, e.g. in a container)',
    example: '127.0.0.1',
    parse: text,
  } as SettingSpec<string>,
  statusToken: {
    env: 'BLENDFARM_STATUS_TOKEN',
    help: 'Operator token that unlocks the full status page (prompts of every server, user ids, errors); unset = public view only',
    secret: true,
    example: '',
    parse: statusToken,
  } as SettingSpec<string>,
} as const;

export type Settings = typeof settings;
export type SettingKey = keyof Settings;
