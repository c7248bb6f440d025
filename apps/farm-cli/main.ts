// Operator command line: `npm run farm -- <command>`. Every command has a --json form whose
// shape is documented in farm/README.md and kept stable for scripts. Flags are mapped onto the
// farm's job parameters as they are; the farm validates them (farm/job-params.ts, farm/limits.ts).
import fs from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { and, asc, eq, inArray } from 'drizzle-orm';
import { loadConfig, loadDotEnv, type Config } from '../../config/index.ts';
import { describeDbError, isConnectionError } from '../../db/errors.ts';
import { jobEvents, jobs } from '../../db/schema.ts';
import {
  type Artifact,
  type FarmContext,
  type FarmDb,
  type Job,
  type JobKind,
  type JobParamsInput,
  type LocalWorkers,
  type QualityPreset,
  type ThreadRenderer,
  artifactToJson,
  budgetToJson,
  cancelJob,
  DEFAULT_UPSCALE_FACTOR,
  describePrune,
  endedText,
  checkId,
  farmConfigFrom,
  FarmError,
  farmStatus,
  getArtifact,
  getBudget,
  getStatusPageVisibility,
  getJob,
  grantBudget,
  isFollowUpKind,
  type FollowUpKind,
  isJobKind,
  JOB_VIDEO_FORMATS,
  jobToJson,
  JobParamsError,
  JobNotFoundError,
  LIMITS,
  openDatabase,
  OPERATOR_CANCEL_REASON,
  parseJobId,
  pruneFarm,
  QUALITY_PRESETS,
  resultWarnings,
  retryJob,
  setStatusPageVisibility,
  startLocalWorkers,
  submitFollowUp,
  submitJob,
  TERMINAL_STATUSES,
  UPSCALE_FACTORS,
  waitForJob,
  workerToJson,
} from '../../farm/index.ts';
import { choiceOption, numberOption, outputFile, parseCli, runCli, UsageError } from '../cli-kit.ts';
import { writeWhole } from '../../engine/index.ts';
import { loadRenderer, rendererSpecFrom } from '../worker/load-renderer.ts';

/** Exit status of a --wait whose --timeout ran out (as coreutils' timeout): the job goes on. */
export const EXIT_TIMED_OUT = 124;

export const USAGE = `Usage: npm run farm -- <command> [options]

Commands:
  submit blend "prompt A" "prompt B" --user ID [render options] [--wait] [--json]
  submit movie "p1" "p2" ... "p16"   --user ID [render options] [--wait] [--json]
  submit reroll --parent JOB --user ID          same prompts, new seeds
  submit upscale --parent JOB --user ID [--factor ${UPSCALE_FACTORS.join('|')}] [--upscaler ID]
                                                --factor: times per side (default ${DEFAULT_UPSCALE_FACTOR}); --upscaler: one the workers
                                                have (status --json lists them), default the best the worker has
  submit extend "next prompt" --parent JOB --user ID
                                                reroll, upscale, extend: the parent's settings (render options are refused)
  status [--json]                               queue, running jobs, workers online
  show JOB [--json]                             one job: parameters, attempts, times, GPU time, error, video
  budget --user ID [--guild ID] [--grant N] [--note TEXT] [--json]
                                                shows (and grants); never applies a due refill
  cancel JOB [--json]                           refunds what was not used
  retry JOB [--json]                            requeues a failed or cancelled job
  fetch JOB --out FILE [--json]                 saves a finished job's video
  prune [--dry-run] [--json]                    deletes old videos and jobs (BLENDFARM_RETENTION_* settings)
  guild GUILD status-page [public|private] [--json]
                                                shows (or hides) the server's prompts on the public status page;
                                                without public|private, says which it is now (private by default)

Render options: --negative TEXT, --seed N (once per prompt), --duration SECONDS, --fps N,
  --size WxH (or --width N --height N), --steps N, --quality ${Object.keys(QUALITY_PRESETS).join('|')},
  --branches N, --depth ${LIMITS.depthStrength.min}..${LIMITS.depthStrength.max}, --guidance X, --model ID, --format ${JOB_VIDEO_FORMATS.join('|')}, --guild ID
  (ranges: farm/limits.ts; the farm refuses values outside them with the reason)
--wait: wait for the job to finish (with the embedded database it renders in this process,
  using BLENDFARM_RENDERER); --timeout SECONDS limits the wait. A wait that times out leaves
  the job queued or running (with the embedded database it goes back to the queue).
--json: every answer on stdout is JSON, errors included: {"error": {"code", "message", ...}}.
Exit status:
  0    done (with --wait: the job finished)
  1    the farm refused (no such job, over budget, invalid parameters, ...), the database
       failed, or (with --wait) the job failed or was cancelled
  2    bad command line (usage)
  ${EXIT_TIMED_OUT}  --wait --timeout ran out before the job finished (the job goes on)`;

export interface CliIo {
  stdout?: (text: string) => void;
  stderr?: (text: string) => void;
  env?: NodeJS.ProcessEnv;
  /** Use this open database instead of opening one (tests, embedding); it is not closed. */
  db?: FarmDb;
}

const OPTIONS = {
  user: { type: 'string' },
  guild: { type: 'string' },
  json: { type: 'boolean' },
  wait: { type: 'boolean' },
  timeout: { type: 'string' },
  negative: { type: 'string' },
  seed: { type: 'string', multiple: true },
  duration: { type: 'string' },
  fps: { type: 'string' },
  size: { type: 'string' },
  width: { type: 'string' },
  height: { type: 'string' },
  steps: { type: 'string' },
  quality: { type: 'string' },
  branches: { type: 'string' },
  depth: { type: 'string' },
  guidance: { type: 'string' },
  model: { type: 'string' },
  format: { type: 'string' },
  parent: { type: 'string' },
  factor: { type: 'string' },
  upscaler: { type: 'string' },
  grant: { type: 'string' },
  note: { type: 'string' },
  out: { type: 'string' },
  'dry-run': { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

type Values = ReturnType<typeof parseCli<typeof OPTIONS>>['values'];

/**
 * The render options (renderParams) a follow-up does not take: a re-roll and an upscale render the
 * parent's movie with its settings, an extension continues it with them (farm/follow-up.ts
 * FollowUpOptions: prompts, the upscale factor and upscaler; seeds are drawn at submission).
 */
const RENDER_FLAGS = ['negative', 'seed', 'duration', 'fps', 'size', 'width', 'height', 'steps', 'quality', 'branches', 'depth', 'guidance', 'model', 'format'] as const satisfies readonly (keyof Values)[];

/** What each follow-up takes besides --parent, --user, --guild, --wait, --timeout and --json. */
const FOLLOW_UP_TAKES: Readonly<Record<FollowUpKind, string>> = {
  reroll: 'nothing else (same prompts and settings, new seeds)',
  upscale: '--factor and --upscaler',
  extend: 'the next prompt(s) (with the parent\'s settings, new seeds)',
};

/** A numeric flag in plain decimal notation (apps/cli-kit.ts); the farm checks the range (farm/limits.ts). */
function number(values: Values, flag: keyof Values, integer = false): number | undefined {
  const raw = values[flag];
  return typeof raw === 'string' ? numberOption(flag, raw, { integer }) : undefined;
}

/** --timeout SECONDS: a plain decimal number (numberOption) above 0; a wait of 0 s would time out before it began. */
function waitTimeout(raw: string | undefined): number | undefined {
  const value = numberOption('timeout', raw);
  if (value !== undefined && !(value > 0)) throw new UsageError(`--timeout must be a number of seconds greater than 0, got "${raw}"`);
  return value;
}

function jobId(raw: string | undefined, command: string, what = 'a job id'): number {
  const id = raw === undefined ? undefined : parseJobId(raw);
  if (id === undefined) {
    const got = raw === undefined ? '' : ` (got "${raw}")`;
    throw new UsageError(`${command} needs ${what}: a whole number from 1 to ${Number.MAX_SAFE_INTEGER}${got}, e.g. \`npm run farm -- ${command} 42\`.`);
  }
  return id;
}

function renderParams(values: Values, prompts: string[]): JobParamsInput {
  const params: JobParamsInput = {};
  if (prompts.length > 0) params.prompts = prompts;
  if (values.negative !== undefined) params.negativePrompt = values.negative;
  if (values.seed) params.seeds = values.seed.map((seed) => numberOption('seed', seed, { integer: true, min: LIMITS.seed.min, max: LIMITS.seed.max })!);
  if (values.size !== undefined) {
    const match = /^(\d+)x(\d+)$/i.exec(values.size);
    if (!match) throw new UsageError(`--size must look like 512x512 (got "${values.size}").`);
    params.width = Number(match[1]);
    params.height = Number(match[2]);
  }
  const numeric: Array<[keyof Values, keyof JobParamsInput, boolean]> = [
    ['duration', 'durationSeconds', false],
    ['fps', 'fps', true],
    ['width', 'width', true],
    ['height', 'height', true],
    ['steps', 'steps', true],
    ['branches', 'maxBranches', true],
    ['depth', 'depthStrength', false],
    ['guidance', 'guidance', false],
  ];
  for (const [flag, key, integer] of numeric) {
    const value = number(values, flag, integer);
    if (value !== undefined) (params as Record<string, unknown>)[key] = value;
  }
  const quality = choiceOption<QualityPreset>('quality', values.quality, QUALITY_PRESETS);
  if (quality !== undefined) params.quality = quality;
  if (values.model !== undefined) params.model = values.model;
  const format = choiceOption('format', values.format, JOB_VIDEO_FORMATS);
  if (format !== undefined) params.format = format;
  return params;
}

function describeJob(job: Job): string {
  const progress = job.progress ? ` ${Math.round(job.progress.fraction * 100)}% ${job.progress.stage}` : '';
  return `#${job.id} ${job.kind} ${job.status}${progress} user=${job.userId} attempts=${job.attempts}/${job.maxAttempts}` +
    (job.workerId && job.status === 'running' ? ` worker=${job.workerId}` : '') +
    (job.error && job.status !== 'done' ? ` error="${job.error}"` : '') +
    ` prompts=${JSON.stringify(job.params.prompts)}`;
}

/** A job that started from another (its parent), as `show` lists it. */
type FollowUp = Pick<Job, 'id' | 'kind' | 'status'>;

/** The jobs started from `jobId` (reroll, upscale, extend, vary), oldest first, at most 50. */
async function followUpsOf(farm: FarmContext, jobId: number): Promise<FollowUp[]> {
  return farm.db.db.select({ id: jobs.id, kind: jobs.kind, status: jobs.status }).from(jobs).where(eq(jobs.parentJobId, jobId)).orderBy(asc(jobs.id)).limit(50);
}

/** What a job's stored events (job_events) tell `show` beyond its row. */
interface JobHistory {
  /** The worker of its latest attempt ('claimed' event): the row's worker_id is cleared when an attempt fails. */
  lastWorker?: string;
  /** When it was last put in the queue before its latest start (a 'queued', 'retrying' or 'released' event). */
  queuedAt?: Date;
  /** That queuing was not its submission: an attempt failed, a worker handed it back, or `retry` queued it again. */
  requeued: boolean;
}

/** Reads the job's queue and claim events (few: one per submission, attempt and hand-back) for `show`. */
async function historyOf(farm: FarmContext, jobId: number): Promise<JobHistory> {
  const events = await farm.db.db
    .select({ type: jobEvents.type, data: jobEvents.data, at: jobEvents.createdAt })
    .from(jobEvents)
    .where(and(eq(jobEvents.jobId, jobId), inArray(jobEvents.type, ['queued', 'retrying', 'released', 'claimed'])))
    .orderBy(asc(jobEvents.id));
  let lastClaim = events.length - 1;
  while (lastClaim >= 0 && events[lastClaim].type !== 'claimed') lastClaim--;
  const claimedBy = lastClaim < 0 ? undefined : events[lastClaim].data.workerId;
  const queuings = events.slice(0, lastClaim < 0 ? events.length : lastClaim).filter((e) => e.type !== 'claimed');
  const last = queuings.at(-1);
  return {
    lastWorker: typeof claimedBy === 'string' ? claimedBy : undefined,
    queuedAt: last?.at,
    requeued: last !== undefined && (last !== events[0] || last.type !== 'queued'),
  };
}

const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;
const gpuSeconds = (value: number): string => `${Number(value.toFixed(3))} GPU-seconds`;

/** `text` ending in one full stop: one is added unless it already ends a sentence (".", "!", "?", also before a closing quote or bracket). */
export function sentence(text: string): string {
  const trimmed = text.trimEnd();
  return /[.!?]["'`)\]]*$/.test(trimmed) ? trimmed : `${trimmed}.`;
}

/**
 * `show` in text: one aligned "key: value" line per thing the job has (absent values left out):
 * who asked for it, its parameters, attempts, worker and progress, times, GPU time, the error in
 * full (and the owner's line when it differs), its video and how to fetch it, its parent and follow-ups.
 */
function jobDetails(job: Job, artifact: Artifact | undefined, parent: FollowUp | undefined, followUps: FollowUp[], history: JobHistory): string {
  const p = job.params;
  // An error on a job that is queued or running again is its previous attempt's.
  const again = job.status === 'queued' || job.status === 'running';
  const worker = job.workerId
    ? `${job.workerId}${job.status === 'running' && job.leaseExpiresAt ? ` (lease until ${job.leaseExpiresAt.toISOString()})` : ''}`
    : history.lastWorker && job.attempts > 0
      ? `${history.lastWorker} (last attempt)`
      : undefined;
  let started: string | undefined;
  if (job.startedAt) {
    const start = job.startedAt.getTime();
    const sinceCreated = seconds(start - job.createdAt.getTime());
    // Queued time counts from its latest queuing; a requeued job's first submission is said apart.
    started = history.queuedAt && history.requeued && history.queuedAt.getTime() <= start
      ? `${job.startedAt.toISOString()} (after ${seconds(start - history.queuedAt.getTime())} queued since it was queued again; ${sinceCreated} after it was first submitted)`
      : history.requeued || (!history.queuedAt && job.attempts > 1)
        ? `${job.startedAt.toISOString()} (${sinceCreated} after it was first submitted)`
        : `${job.startedAt.toISOString()} (after ${sinceCreated} queued)`;
  }
  // A job that ended without a finished render has no measured GPU time: said, with what it was charged.
  const ended = (TERMINAL_STATUSES as readonly string[]).includes(job.status);
  const spent =
    job.spentGpuSeconds !== null
      ? gpuSeconds(job.spentGpuSeconds)
      : ended && job.status !== 'done'
        ? `none measured (it ${endedText(job.status)} before a render finished; charged ${gpuSeconds(job.chargedGpuSeconds ?? 0)})`
        : undefined;
  const rows: Array<[string, string | number | null | undefined]> = [
    ['job', job.id],
    ['kind', job.kind],
    ['status', job.status],
    ['user', job.userId],
    ['guild', job.guildId],
    ['channel', job.channelId],
    ['model', job.model],
  ];
  (p.prompts ?? []).forEach((prompt, i) => {
    const seed = p.seeds?.[i];
    rows.push([`prompt ${i + 1}`, `${JSON.stringify(prompt)}${seed !== undefined ? ` (seed ${seed})` : ''}`]);
  });
  if (p.negativePrompt) rows.push(['negative', JSON.stringify(p.negativePrompt)]);
  if (p.images?.length) rows.push(['pictures', p.images.map((image) => `prompt ${image.index + 1} at strength ${image.strength}`).join(', ')]);
  if (p.inpaint) rows.push(['inpaint', `mask ${p.inpaint.mask}`]);
  if (p.variation) rows.push(['variation', `${p.variation.variations} variations, ${p.variation.intermediate} intermediate frames, noise shift ${p.variation.noiseShift}`]);
  if (p.width !== undefined && p.height !== undefined) {
    const factor = job.kind === 'upscale' ? (p.upscaleFactor ?? DEFAULT_UPSCALE_FACTOR) : undefined;
    rows.push(['size', factor === undefined ? `${p.width}x${p.height}` : `${p.width}x${p.height}, upscaled ${factor}x to ${p.width * factor}x${p.height * factor}`]);
  }
  if (job.kind === 'upscale') rows.push(['upscaler', p.upscaler ?? 'the best the worker has for the factor']);
  rows.push(
    ['duration', p.durationSeconds !== undefined ? `${p.durationSeconds} s per transition` : undefined],
    ['fps', p.fps],
    ['steps', p.steps],
    ['branches', p.maxBranches],
    ['depth', p.depthStrength],
    ['guidance', p.guidance],
    ['format', p.format],
    ['max bytes', p.maxBytes],
    ['attempts', `${job.attempts}/${job.maxAttempts}`],
    ['worker', worker],
    ['progress', job.progress ? `${Math.round(job.progress.fraction * 100)}% ${job.progress.stage}${job.progress.message ? ` (${job.progress.message})` : ''}` : undefined],
    ['created', job.createdAt.toISOString()],
    ['started', started],
    [
      'finished',
      job.finishedAt
        ? `${job.finishedAt.toISOString()} (${job.startedAt ? `ran ${seconds(job.finishedAt.getTime() - job.startedAt.getTime())}, ` : ''}${seconds(job.finishedAt.getTime() - job.createdAt.getTime())} in all)`
        : undefined,
    ],
    ['delivered', job.deliveredAt?.toISOString()],
    ['reserved', gpuSeconds(job.reservedGpuSeconds)],
    ['spent', spent],
    ['charged', job.chargedGpuSeconds === null ? undefined : gpuSeconds(job.chargedGpuSeconds)],
    [again ? 'previous error' : 'error', job.error],
    [again ? 'previous user error' : 'user error', job.userError && job.userError !== job.error ? job.userError : undefined],
  );
  if (artifact) {
    rows.push(['video', `${artifact.sizeBytes} bytes, ${artifact.mime} (${artifact.format})`]);
    rows.push(['fetch', `npm run farm -- fetch ${job.id} --out job-${job.id}.${artifact.format}`]);
  } else if (job.status === 'done') {
    rows.push(['video', 'none stored (prune deletes old videos)']);
  }
  for (const warning of resultWarnings(artifact?.meta)) rows.push(['warning', warning]);
  if (job.parentJobId !== null) rows.push(['parent', parent ? `job ${parent.id} (${parent.kind}, ${parent.status})` : `job ${job.parentJobId} (deleted)`]);
  if (followUps.length > 0) rows.push(['follow-ups', followUps.map((f) => `job ${f.id} (${f.kind}, ${f.status})`).join(', ')]);

  const shown = rows.filter((row): row is [string, string | number] => row[1] !== undefined && row[1] !== null && row[1] !== '');
  const width = Math.max(...shown.map(([key]) => key.length)) + 1;
  // One line per item: a value's own line breaks (a multi-line error) are indented under it.
  return shown.map(([key, value]) => `${`${key}:`.padEnd(width)} ${String(value).replace(/\n/g, `\n${' '.repeat(width + 1)}`)}`).join('\n');
}

/** What each status-page setting means, as `guild GUILD status-page [public|private]` says it (set or shown). */
const STATUS_PAGE_MEANS: Record<'public' | 'private', string> = {
  public: 'its prompts (and errors) show on the public status page.',
  private: 'its prompts are hidden from the public status page (operators with the token still see them).',
};

/** The warnings stored with a result (a prompt the engine cut, …), one line each after a newline; '' when none. */
function warningLines(artifact: Artifact | undefined): string {
  return resultWarnings(artifact?.meta).map((w) => `\nwarning: ${w}`).join('');
}

/**
 * What the CLI says about an error that is neither a refusal nor a bad command line. A failed
 * query arrives wrapped ("Failed query: <the SQL> params: ..."): it is said by the database
 * error's code and message (describeDbError; the SQL and its parameters are not the operator's
 * business), as unreachable or as refused. Any other error already says what went wrong and what
 * to do (openDatabase's "Could not open Postgres at ..." and "BLENDFARM_DATA_DIR=...: PGlite cannot
 * write there ... Set BLENDFARM_DATA_DIR to ...") and is shown as it is, never swapped for its cause.
 */
function failureMessage(error: unknown): string {
  const wrapped = error !== null && typeof error === 'object' && ((error as Error).name === 'DrizzleQueryError' || 'params' in error);
  if (!wrapped) return error instanceof Error ? error.message : String(error);
  if (isConnectionError(error)) return `The database did not answer (${describeDbError(error)}); check that it is running and that DATABASE_URL points at it, then run the command again.`;
  return `The database refused the request: ${describeDbError(error)}`;
}

/** Whether `argv` asks for --json (before any "--"), read without parsing it: for answers before, or instead of, parseArgs. */
function jsonRequested(argv: readonly string[]): boolean {
  const end = argv.indexOf('--');
  return (end < 0 ? argv : argv.slice(0, end)).includes('--json');
}

/** What every command of the farm CLI works with, once the command line is read and the database open. */
interface CommandContext {
  farm: FarmContext;
  settings: Config;
  values: Values;
  /** The positionals after the command. */
  rest: string[];
  json: boolean;
  out: (text: string) => void;
  err: (text: string) => void;
  /** `human` on stdout, or `data` as JSON with --json. */
  print: (human: string, data: unknown) => void;
  /** --timeout in seconds (submit --wait), read before anything is submitted. */
  timeout?: number;
  /** What `submit --wait` started in this process (embedded database): farmCli stops it on the way out. */
  local: { workers?: LocalWorkers; renderer?: ThreadRenderer };
}

/** `submit KIND ...`: queues a render or a follow-up of another job; with --wait, waits for it to end. */
async function submitCommand(ctx: CommandContext): Promise<number> {
  const { farm, values, print } = ctx;
  const [kind, ...prompts] = ctx.rest;
  // vary jobs need a picture, which the CLI does not upload: the kinds it submits are these.
  if (!isJobKind(kind) || !(kind === 'blend' || kind === 'movie' || isFollowUpKind(kind))) {
    throw new UsageError(`submit needs a kind: blend, movie, reroll, upscale or extend (got "${kind ?? ''}").`);
  }
  if (!values.user) throw new UsageError('submit needs --user ID (whose budget pays for the job).');
  const common = { userId: values.user, guildId: values.guild ?? null };
  let job: Job;
  if (kind === 'blend' || kind === 'movie') {
    if (values.parent) throw new UsageError(`--parent is for reroll, upscale and extend, not ${kind}.`);
    job = await submitJob(farm, { ...common, kind: kind as JobKind, params: renderParams(values, prompts) });
  } else {
    if (!values.parent) throw new UsageError(`submit ${kind} needs --parent JOB (the job to start from).`);
    const refused = RENDER_FLAGS.filter((flag) => values[flag] !== undefined).map((flag) => `--${flag}`);
    if (refused.length > 0) {
      throw new UsageError(`submit ${kind} does not take ${refused.join(', ')}: a follow-up renders with its parent's settings; it takes ${FOLLOW_UP_TAKES[kind]}.`);
    }
    if (kind !== 'extend' && prompts.length > 0) {
      throw new UsageError(`submit ${kind} takes no prompts (got ${prompts.map((p) => JSON.stringify(p)).join(', ')}): it takes ${FOLLOW_UP_TAKES[kind]}.`);
    }
    if (kind !== 'upscale' && (values.factor !== undefined || values.upscaler !== undefined)) {
      throw new UsageError(`--factor and --upscaler are for submit upscale, not ${kind}.`);
    }
    // The farm's factors (farm/limits.ts); it checks the upscaler id and whether that upscaler makes the factor.
    const factor = choiceOption('factor', values.factor, UPSCALE_FACTORS.map(String));
    const upscaleFactor = UPSCALE_FACTORS.find((f) => String(f) === factor);
    job = await submitFollowUp(farm, {
      ...common,
      kind,
      parentJobId: jobId(values.parent, `submit ${kind} --parent`, 'the id of the job to start from'),
      options: { prompts, ...(upscaleFactor !== undefined ? { upscaleFactor } : {}), ...(values.upscaler !== undefined ? { upscaler: values.upscaler } : {}) },
    });
  }
  if (!values.wait) {
    print(`Queued ${job.kind} job ${job.id} for ${job.userId} (reserved ${job.reservedGpuSeconds} GPU-seconds).`, { job: jobToJson(job) });
    return 0;
  }
  return waitForSubmitted(ctx, job);
}

/** With the embedded database nobody else can open it while this process holds it: the job is rendered here, with BLENDFARM_RENDERER. */
async function renderHere(ctx: CommandContext, job: Job): Promise<void> {
  let spec;
  try {
    spec = rendererSpecFrom(ctx.settings);
  } catch (error) {
    throw new UsageError(`--wait with the embedded database renders in this process, but: ${(error as Error).message}`);
  }
  ctx.local.renderer = await loadRenderer(spec, ctx.farm.config.abortGraceMs);
  ctx.local.workers = await startLocalWorkers(ctx.farm, { renderer: ctx.local.renderer, concurrency: spec.threads, log: (line) => !ctx.json && ctx.err(line) });
  ctx.err(`Rendering job ${job.id} in this process (embedded database).`);
}

/** `submit --wait`: follows the job to its end (progress on stderr) and says how it ended; EXIT_TIMED_OUT when --timeout ran out first. */
async function waitForSubmitted(ctx: CommandContext, job: Job): Promise<number> {
  const { farm, json, err, timeout } = ctx;
  if (farm.db.kind === 'pglite') await renderHere(ctx, job);
  else if (!json) err(`Queued job ${job.id}; waiting for a worker...`);
  let finished: Job;
  try {
    finished = await waitForJob(farm, job.id, {
      timeoutMs: timeout === undefined ? undefined : timeout * 1000,
      onEvent: (event) => {
        if (json) return;
        if (event.type !== 'progress' && event.type !== 'retrying') return err(`job ${job.id}: ${event.type}`);
        // Events carry ids only: the progress and the error are in the row.
        void getJob(farm, job.id).then((row) => {
          if (event.type === 'progress' && row?.progress) err(`job ${job.id}: ${Math.round(row.progress.fraction * 100)}% ${row.progress.stage}`);
          else if (event.type === 'retrying') err(`job ${job.id}: retrying${row?.error ? ` (${row.error})` : ''}`);
        }, () => {});
      },
    });
  } catch (error) {
    // The --timeout ran out when the job has not ended: the wait stops, not the job (its own exit status).
    if (timeout === undefined) throw error;
    return waitTimedOut(ctx, job, error);
  }
  const artifact = await getArtifact(farm, finished.id);
  const human =
    finished.status === 'done'
      ? `Job ${finished.id} done: ${artifact?.format} ${artifact?.sizeBytes} bytes, ${finished.spentGpuSeconds} GPU-seconds (charged ${finished.chargedGpuSeconds}).${warningLines(artifact)}`
      : sentence(`Job ${finished.id} ${finished.status}: ${finished.error ?? 'no error recorded'}`);
  ctx.print(human, { job: jobToJson(finished), artifact: artifactToJson(artifact) });
  return finished.status === 'done' ? 0 : 1;
}

/** A wait whose --timeout ran out (`error`, rethrown when the job has ended after all): says where the job is and that it goes on. */
async function waitTimedOut(ctx: CommandContext, job: Job, error: unknown): Promise<number> {
  const { farm, timeout } = ctx;
  // Rendered here (embedded database): hand the job back to the queue before saying where it is.
  const renderedHere = ctx.local.workers !== undefined;
  await ctx.local.workers?.stop('release').catch(() => {});
  ctx.local.workers = undefined;
  const row = await getJob(farm, job.id).catch(() => undefined);
  if (!row || (TERMINAL_STATUSES as readonly string[]).includes(row.status)) throw error;
  const goesOn = renderedHere
    ? 'this process stopped rendering it and it waits in the queue for a worker on this database (npm start)'
    : row.status === 'queued'
      ? 'it keeps its place in the queue'
      : 'it goes on rendering';
  const message =
    `Job ${row.id} is still ${row.status} after waiting ${timeout} s; only the wait stopped: ${goesOn}. ` +
    `\`npm run farm -- show ${row.id}\` to follow it (\`npm run farm -- cancel ${row.id}\` if it is no longer wanted).`;
  if (ctx.json) ctx.out(JSON.stringify({ error: { code: 'timed_out', message }, job: jobToJson(row) }, null, 2));
  else ctx.err(message);
  return EXIT_TIMED_OUT;
}

/** `status`: the queue, the running jobs and the workers. */
async function statusCommand({ farm, print }: CommandContext): Promise<number> {
  const status = await farmStatus(farm);
  const c = status.counts;
  const lines = [
    `Database: ${status.database}`,
    `Jobs: ${c.queued} queued, ${c.running} running, ${c.done} done, ${c.failed} failed, ${c.cancelled} cancelled`,
    ...status.running.map((job) => `  running ${describeJob(job)}`),
    // The counts and the lists are one snapshot (farmStatus): a list shorter than its count was cut at its limit.
    ...(status.running.length < c.running ? [`  (showing ${status.running.length} of ${c.running} running)`] : []),
    ...status.queued.map((job) => `  queued (${job.position}) ${describeJob(job)}`),
    ...(status.queued.length < c.queued ? [`  (showing the first ${status.queued.length} of ${c.queued} queued, in claim order)`] : []),
    `Workers: ${status.workers.filter((w) => w.online).length} online`,
    ...status.workers.map(
      (w) => `  ${w.id} ${w.online ? 'online' : 'offline'} on ${w.host}: ${w.runningJobs}/${w.concurrency} busy, models ${w.capabilities.models.join(',')}, up to ${w.capabilities.maxPixels} px, ${w.capabilities.executionProvider}`,
    ),
  ];
  print(lines.join('\n'), {
    database: status.database,
    counts: status.counts,
    running: status.running.map(jobToJson),
    queued: status.queued.map((job) => ({ ...jobToJson(job), position: job.position })),
    recent: status.recent.map(jobToJson),
    workers: status.workers.map(workerToJson),
  });
  return 0;
}

/** `show JOB`: one job in full (jobDetails), or its row and video as JSON. */
async function showCommand({ farm, rest, json, out, print }: CommandContext): Promise<number> {
  const id = jobId(rest[0], 'show');
  const job = await getJob(farm, id);
  if (!job) throw new JobNotFoundError(id);
  const artifact = await getArtifact(farm, id);
  if (json) {
    print('', { job: jobToJson(job), artifact: artifactToJson(artifact) });
    return 0;
  }
  const parentJob = job.parentJobId === null ? undefined : await getJob(farm, job.parentJobId);
  out(jobDetails(job, artifact, parentJob, await followUpsOf(farm, id), await historyOf(farm, id)));
  return 0;
}

/** `budget --user ID [--guild ID] [--grant N] [--note TEXT]`: shows (and grants); never applies a due refill. */
async function budgetCommand({ farm, values, print }: CommandContext): Promise<number> {
  if (!values.user) throw new UsageError('budget needs --user ID.');
  const grant = number(values, 'grant');
  let granted = '';
  if (grant !== undefined) {
    await grantBudget(farm, values.user, grant, values.note);
    granted = `Granted ${grant} GPU-seconds to ${values.user}. `;
  }
  // A read (and a grant) never applies a due refill: only the member's next request does,
  // with the limits of where it is made (farm/README.md, Budgets).
  const budget = await getBudget(farm, values.user, { guildId: values.guild ?? null });
  const scope = !values.guild
    ? ' (limits outside any server; --guild ID for a server\'s)'
    : budget.limitsComplete
      ? ''
      : ' (limits without the member\'s roles: this server\'s role overrides may give more)';
  // Within a period a refill to a larger allowance adds only the difference (budget.ts).
  const refill = !budget.refillDue
    ? `tops up to ${budget.refillGpuSeconds} every ${budget.refillPeriodSeconds} s, next at ${budget.nextRefillAt.toISOString()}${scope}.`
    : budget.refilledWithinPeriodGpuSeconds !== null
      ? `a refill is due: the member's next request with these limits adds ${budget.refillAddsGpuSeconds} GPU-second${budget.refillAddsGpuSeconds === 1 ? '' : 's'} (refilled to ${budget.refilledWithinPeriodGpuSeconds} within the period; a larger allowance adds only the difference)${scope}.`
      : `a refill to ${budget.refillGpuSeconds} is due: the member's next request applies it, with the limits of where it is made${scope}.`;
  print(`${granted}${budget.userId}: ${budget.balanceGpuSeconds} GPU-seconds left (${budget.heldGpuSeconds} held by ${budget.activeJobs}/${budget.maxActiveJobs} active jobs); ${refill}`, budgetToJson(budget));
  return 0;
}

/** `cancel JOB`: refunds what was not used. */
async function cancelCommand({ farm, rest, print }: CommandContext): Promise<number> {
  const result = await cancelJob(farm, jobId(rest[0], 'cancel'), OPERATOR_CANCEL_REASON);
  print(
    result.cancelled
      ? `Cancelled job ${result.job.id}; refunded ${result.refundedGpuSeconds} GPU-seconds.`
      : `Job ${result.job.id} had already ${endedText(result.job.status)}; nothing to cancel.`,
    { cancelled: result.cancelled, refundedGpuSeconds: result.refundedGpuSeconds, job: jobToJson(result.job) },
  );
  return 0;
}

/** `retry JOB`: queues a failed or cancelled job again. */
async function retryCommand({ farm, rest, print }: CommandContext): Promise<number> {
  const job = await retryJob(farm, jobId(rest[0], 'retry'));
  print(`Job ${job.id} is queued again (reserved ${job.reservedGpuSeconds} GPU-seconds).`, { job: jobToJson(job) });
  return 0;
}

/** `prune [--dry-run]`: applies the retention settings once. */
async function pruneCommand({ farm, values, print }: CommandContext): Promise<number> {
  const report = await pruneFarm(farm, { dryRun: values['dry-run'] === true });
  print(describePrune(report), report);
  return 0;
}

/** `fetch JOB --out FILE`: saves a finished job's video, whole or not at all. */
async function fetchCommand({ farm, values, rest, print }: CommandContext): Promise<number> {
  const id = jobId(rest[0], 'fetch');
  if (!values.out) throw new UsageError('fetch needs --out FILE.');
  // Refused in one line before anything is read (a missing folder, a folder, a device or link); written whole or not at all.
  const out = outputFile(values.out, `job-${id}.mp4`);
  const artifact = await getArtifact(farm, id);
  // A job that does not exist is said as every other command says it; one without a video apart.
  if (!artifact && !(await getJob(farm, id))) throw new JobNotFoundError(id);
  if (!artifact) throw new FarmError('not_found', `Job ${id} has no finished video (yet); see \`npm run farm -- show ${id}\`.`);
  await writeWhole(out, (file) => fs.writeFile(file, artifact.bytes));
  print(`Wrote ${artifact.sizeBytes} bytes (${artifact.format}) to ${values.out}.`, { path: values.out, artifact: artifactToJson(artifact) });
  return 0;
}

/** `guild GUILD status-page [public|private]`: shows (or sets) whether the server's prompts show on the public status page. */
async function guildCommand({ farm, values, rest, print }: CommandContext): Promise<number> {
  // Exactly: guild GUILD status-page [public|private], with --json as the only flag.
  const usage =
    'guild needs a server id, then `status-page` (shows the setting), `status-page public` or `status-page private`, e.g. `npm run farm -- guild 123456789012345678 status-page public`.';
  const [guildId, setting, visibility, ...extra] = rest;
  const flags = Object.keys(values).filter((flag) => flag !== 'json');
  if (flags.length > 0) throw new UsageError(`guild takes no --${flags[0]} (only --json). ${usage}`);
  if (guildId === undefined || setting !== 'status-page' || extra.length > 0) throw new UsageError(usage);
  if (visibility === undefined) {
    checkId('guild id', guildId);
    const current = await getStatusPageVisibility(farm, guildId);
    const isDefault = current.isDefault ? ' (the default: never set)' : '';
    print(`Server ${guildId}: status page ${current.visibility}${isDefault}: ${STATUS_PAGE_MEANS[current.visibility]}`, { guildId, statusPage: current.visibility, default: current.isDefault });
    return 0;
  }
  if (visibility !== 'public' && visibility !== 'private') throw new UsageError(`status-page is public or private (got "${visibility}"). ${usage}`);
  const statusPage = visibility;
  checkId('guild id', guildId);
  await setStatusPageVisibility(farm, guildId, statusPage);
  // Said as the no-value form says the setting, with "now".
  print(`Server ${guildId}: status page now ${statusPage}: ${STATUS_PAGE_MEANS[statusPage]}`, { guildId, statusPage });
  return 0;
}

/** The commands, in the order the usage error lists them. */
const COMMANDS: Record<string, (ctx: CommandContext) => Promise<number>> = {
  submit: submitCommand,
  status: statusCommand,
  show: showCommand,
  budget: budgetCommand,
  cancel: cancelCommand,
  retry: retryCommand,
  fetch: fetchCommand,
  prune: pruneCommand,
  guild: guildCommand,
};

/** The farm CLI on `argv`, in this process; returns the exit status. */
export async function farmCli(argv: string[], io: CliIo = {}): Promise<number> {
  const out = io.stdout ?? ((text: string) => process.stdout.write(`${text}\n`));
  const err = io.stderr ?? ((text: string) => process.stderr.write(`${text}\n`));
  const env = io.env ?? process.env;

  // With --json every answer is JSON on stdout, a bad command line's too (the shape of the farm's errors, code "usage").
  const usageError = (message: string, asJson: boolean): number => {
    if (asJson) out(JSON.stringify({ error: { code: 'usage', message } }, null, 2));
    else err(`${message}\nRun \`npm run farm -- --help\` for usage.`);
    return 2;
  };
  let parsed: { values: Values; positionals: string[] };
  try {
    parsed = parseCli(argv, OPTIONS);
  } catch (error) {
    if (jsonRequested(argv)) return usageError((error as Error).message, true);
    err(`${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  const [command, ...rest] = positionals;
  const json = values.json === true;
  if (values.help || !command) {
    if (json) {
      if (values.help) out(JSON.stringify({ usage: USAGE }, null, 2));
      else usageError('A command is needed: submit, status, show, budget, cancel, retry, fetch, prune or guild.', true);
    } else {
      (command || values.help ? out : err)(USAGE);
    }
    return values.help ? 0 : 2;
  }
  const print = (human: string, data: unknown): void => out(json ? JSON.stringify(data, null, 2) : human);

  let db: FarmDb | undefined = io.db;
  const local: CommandContext['local'] = {};
  try {
    const run = Object.hasOwn(COMMANDS, command) ? COMMANDS[command] : undefined;
    if (!run) throw new UsageError(`Unknown command "${command}"; commands: ${Object.keys(COMMANDS).join(', ')}.`);
    // --timeout limits a --wait: refused without one, and read before anything is submitted.
    if (values.timeout !== undefined && !values.wait) {
      throw new UsageError('--timeout only applies with --wait (it limits how long `submit --wait` waits for the job); add --wait or leave --timeout out.');
    }
    const timeout = waitTimeout(values.timeout);
    const settings = loadConfig(env);
    const config = farmConfigFrom(settings);
    db ??= await openDatabase({ url: settings.databaseUrl ?? '', dataDir: settings.dataDir });
    return await run({ farm: { db, config }, settings, values, rest, json, out, err, print, timeout, local });
  } catch (error) {
    if (error instanceof UsageError) return usageError(error.message, json);
    const code = error instanceof FarmError ? error.code : error instanceof JobParamsError ? 'invalid_params' : 'error';
    const details = error instanceof FarmError ? error.details() : error instanceof JobParamsError ? { issues: error.issues } : {};
    const message = code === 'error' ? failureMessage(error) : (error as Error).message;
    if (json) out(JSON.stringify({ error: { code, message, ...details } }, null, 2));
    else err(message);
    return 1;
  } finally {
    await local.workers?.stop('release').catch(() => {});
    await local.renderer?.close().catch(() => {});
    if (db && db !== io.db) await db.close();
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  // The settings in .env, as npm start and npm run worker read them: the same farm, not a fresh PGlite.
  await runCli(async () => {
    const argv = process.argv.slice(2);
    try {
      loadDotEnv();
    } catch (error) {
      // A .env that cannot be read: with --json, said in JSON like every other error.
      if (!jsonRequested(argv)) throw error;
      process.stdout.write(`${JSON.stringify({ error: { code: 'error', message: (error as Error).message } }, null, 2)}\n`);
      return 1;
    }
    return farmCli(argv);
  });
}
