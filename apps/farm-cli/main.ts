// Operator command line: `npm run farm -- <command>`. Every command has a --json form whose
// shape is documented in farm/README.md and kept stable for scripts. Flags are mapped onto the
// farm's job parameters as they are; the farm validates them (farm/job-params.ts, farm/limits.ts).
import fs from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { loadConfig, loadDotEnv } from '../../config/index.ts';
import { describeDbError, isConnectionError } from '../../db/errors.ts';
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
  getJob,
  grantBudget,
  isFollowUpKind,
  isJobKind,
  JOB_VIDEO_FORMATS,
  jobToJson,
  JobParamsError,
  LIMITS,
  openDatabase,
  parseJobId,
  pruneFarm,
  QUALITY_PRESETS,
  resultWarnings,
  retryJob,
  setStatusPageVisibility,
  startLocalWorkers,
  submitFollowUp,
  submitJob,
  UPSCALE_FACTORS,
  waitForJob,
  workerToJson,
} from '../../farm/index.ts';
import { choiceOption, numberOption, outputFile, runCli, UsageError } from '../cli-kit.ts';
import { writeWhole } from '../../engine/index.ts';
import { loadRenderer, rendererSpecFrom } from '../worker/load-renderer.ts';

export const USAGE = `Usage: npm run farm -- <command> [options]

Commands:
  submit blend "prompt A" "prompt B" --user ID [render options] [--wait] [--json]
  submit movie "p1" "p2" ... "p16"   --user ID [render options] [--wait] [--json]
  submit reroll --parent JOB --user ID          same prompts, new seeds
  submit upscale --parent JOB --user ID [--factor ${UPSCALE_FACTORS.join('|')}] [--upscaler ID]
                                                --factor: times per side (default ${DEFAULT_UPSCALE_FACTOR}); --upscaler: one the workers
                                                have (status --json lists them), default the best the worker has
  submit extend "next prompt" --parent JOB --user ID
  status [--json]                               queue, running jobs, workers online
  show JOB [--json]                             one job
  budget --user ID [--guild ID] [--grant N] [--note TEXT] [--json]
                                                shows (and grants); never applies a due refill
  cancel JOB [--json]                           refunds what was not used
  retry JOB [--json]                            requeues a failed or cancelled job
  fetch JOB --out FILE                          saves a finished job's video
  prune [--dry-run] [--json]                    deletes old videos and jobs (BLENDFARM_RETENTION_* settings)
  guild GUILD status-page public|private [--json]
                                                shows (or hides) the server's prompts on the public status page

Render options: --negative TEXT, --seed N (once per prompt), --duration SECONDS, --fps N,
  --size WxH (or --width N --height N), --steps N, --quality ${Object.keys(QUALITY_PRESETS).join('|')},
  --branches N, --depth ${LIMITS.depthStrength.min}..${LIMITS.depthStrength.max}, --guidance X, --model ID, --format ${JOB_VIDEO_FORMATS.join('|')}, --guild ID
  (ranges: farm/limits.ts; the farm refuses values outside them with the reason)
--wait: wait for the job to finish (with the embedded database it renders in this process,
  using BLENDFARM_RENDERER); --timeout SECONDS limits the wait.
Exit status: 0 done, 1 refused or the job failed/was cancelled, 2 bad command line.`;

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

type Values = ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>['values'];

/** A numeric flag in plain decimal notation (apps/cli-kit.ts); the farm checks the range (farm/limits.ts). */
function number(values: Values, flag: keyof Values, integer = false): number | undefined {
  const raw = values[flag];
  return typeof raw === 'string' ? numberOption(flag, raw, { integer }) : undefined;
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

/** The farm CLI on `argv`, in this process; returns the exit status. */
export async function farmCli(argv: string[], io: CliIo = {}): Promise<number> {
  const out = io.stdout ?? ((text: string) => process.stdout.write(`${text}\n`));
  const err = io.stderr ?? ((text: string) => process.stderr.write(`${text}\n`));
  const env = io.env ?? process.env;

  let parsed: { values: Values; positionals: string[] };
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (error) {
    err(`${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  const [command, ...rest] = positionals;
  if (values.help || !command) {
    (command || values.help ? out : err)(USAGE);
    return values.help ? 0 : 2;
  }
  const json = values.json === true;
  const print = (human: string, data: unknown): void => out(json ? JSON.stringify(data, null, 2) : human);

  let db: FarmDb | undefined = io.db;
  let localWorkers: LocalWorkers | undefined;
  let localRenderer: ThreadRenderer | undefined;
  try {
    const commands = ['submit', 'status', 'show', 'budget', 'cancel', 'retry', 'fetch', 'prune', 'guild'];
    if (!commands.includes(command)) throw new UsageError(`Unknown command "${command}"; commands: ${commands.join(', ')}.`);
    const settings = loadConfig(env);
    const config = farmConfigFrom(settings);
    db ??= await openDatabase({ url: settings.databaseUrl ?? '', dataDir: settings.dataDir });
    const farm: FarmContext = { db, config };

    switch (command) {
      case 'submit': {
        const [kind, ...prompts] = rest;
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
        if (db.kind === 'pglite') {
          // Nobody else can open the embedded database while we hold it: render here.
          let spec;
          try {
            spec = rendererSpecFrom(settings);
          } catch (error) {
            throw new UsageError(`--wait with the embedded database renders in this process, but: ${(error as Error).message}`);
          }
          localRenderer = await loadRenderer(spec, config.abortGraceMs);
          localWorkers = await startLocalWorkers(farm, { renderer: localRenderer, concurrency: spec.threads, log: (line) => !json && err(line) });
          err(`Rendering job ${job.id} in this process (embedded database).`);
        } else if (!json) {
          err(`Queued job ${job.id}; waiting for a worker...`);
        }
        const timeout = values.timeout === undefined ? undefined : numberOption('timeout', values.timeout, { min: 0 });
        const finished = await waitForJob(farm, job.id, {
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
        const artifact = await getArtifact(farm, finished.id);
        const human =
          finished.status === 'done'
            ? `Job ${finished.id} done: ${artifact?.format} ${artifact?.sizeBytes} bytes, ${finished.spentGpuSeconds} GPU-seconds (charged ${finished.chargedGpuSeconds}).${warningLines(artifact)}`
            : `Job ${finished.id} ${finished.status}: ${finished.error ?? 'no error recorded'}.`;
        print(human, { job: jobToJson(finished), artifact: artifactToJson(artifact) });
        return finished.status === 'done' ? 0 : 1;
      }

      case 'status': {
        const status = await farmStatus(farm);
        const c = status.counts;
        const lines = [
          `Database: ${status.database}`,
          `Jobs: ${c.queued} queued, ${c.running} running, ${c.done} done, ${c.failed} failed, ${c.cancelled} cancelled`,
          ...status.running.map((job) => `  running ${describeJob(job)}`),
          ...status.queued.map((job) => `  queued (${job.position}) ${describeJob(job)}`),
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

      case 'show': {
        const id = jobId(rest[0], 'show');
        const job = await getJob(farm, id);
        if (!job) throw new FarmError('not_found', `There is no job ${id}.`);
        const artifact = await getArtifact(farm, id);
        print(`${describeJob(job)}${warningLines(artifact)}`, { job: jobToJson(job), artifact: artifactToJson(artifact) });
        return 0;
      }

      case 'budget': {
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
        const refill = budget.refillDue
          ? `a refill to ${budget.refillGpuSeconds} is due: the member's next request applies it, with the limits of where it is made${scope}.`
          : `tops up to ${budget.refillGpuSeconds} every ${budget.refillPeriodSeconds} s, next at ${budget.nextRefillAt.toISOString()}${scope}.`;
        print(`${granted}${budget.userId}: ${budget.balanceGpuSeconds} GPU-seconds left (${budget.heldGpuSeconds} held by ${budget.activeJobs}/${budget.maxActiveJobs} active jobs); ${refill}`, budgetToJson(budget));
        return 0;
      }

      case 'cancel': {
        const result = await cancelJob(farm, jobId(rest[0], 'cancel'), 'cancelled by an operator');
        print(
          result.cancelled
            ? `Cancelled job ${result.job.id}; refunded ${result.refundedGpuSeconds} GPU-seconds.`
            : `Job ${result.job.id} had already ${endedText(result.job.status)}; nothing to cancel.`,
          { cancelled: result.cancelled, refundedGpuSeconds: result.refundedGpuSeconds, job: jobToJson(result.job) },
        );
        return 0;
      }

      case 'retry': {
        const job = await retryJob(farm, jobId(rest[0], 'retry'));
        print(`Job ${job.id} is queued again (reserved ${job.reservedGpuSeconds} GPU-seconds).`, { job: jobToJson(job) });
        return 0;
      }

      case 'prune': {
        const report = await pruneFarm(farm, { dryRun: values['dry-run'] === true });
        print(describePrune(report), report);
        return 0;
      }

      case 'fetch': {
        const id = jobId(rest[0], 'fetch');
        if (!values.out) throw new UsageError('fetch needs --out FILE.');
        // Refused in one line before anything is read (a missing folder, a folder, a device or link); written whole or not at all.
        const out = outputFile(values.out, `job-${id}.mp4`);
        const artifact = await getArtifact(farm, id);
        if (!artifact) throw new FarmError('not_found', `Job ${id} has no finished video (yet); see \`npm run farm -- show ${id}\`.`);
        await writeWhole(out, (file) => fs.writeFile(file, artifact.bytes));
        print(`Wrote ${artifact.sizeBytes} bytes (${artifact.format}) to ${values.out}.`, { path: values.out, artifact: artifactToJson(artifact) });
        return 0;
      }

      case 'guild': {
        // Exactly: guild GUILD status-page public|private, with --json as the only flag.
        const usage = 'guild needs a server id, then `status-page public` or `status-page private`, e.g. `npm run farm -- guild 123456789012345678 status-page public`.';
        const [guildId, setting, visibility, ...extra] = rest;
        const flags = Object.keys(values).filter((flag) => flag !== 'json');
        if (flags.length > 0) throw new UsageError(`guild takes no --${flags[0]} (only --json). ${usage}`);
        if (guildId === undefined || setting !== 'status-page' || extra.length > 0) throw new UsageError(usage);
        if (visibility !== 'public' && visibility !== 'private') throw new UsageError(`status-page is public or private (got "${visibility ?? ''}"). ${usage}`);
        const statusPage = visibility;
        checkId('guild id', guildId);
        await setStatusPageVisibility(farm, guildId, statusPage);
        print(
          statusPage === 'public'
            ? `Server ${guildId}: its prompts (and errors) now show on the public status page.`
            : `Server ${guildId}: its prompts are hidden from the public status page (operators with the token still see them).`,
          { guildId, statusPage },
        );
        return 0;
      }
    }
    return 2;
  } catch (error) {
    if (error instanceof UsageError) {
      err(`${error.message}\nRun \`npm run farm -- --help\` for usage.`);
      return 2;
    }
    const code = error instanceof FarmError ? error.code : error instanceof JobParamsError ? 'invalid_params' : 'error';
    const details = error instanceof FarmError ? error.details() : error instanceof JobParamsError ? { issues: error.issues } : {};
    const message = code === 'error' ? failureMessage(error) : (error as Error).message;
    if (json) out(JSON.stringify({ error: { code, message, ...details } }, null, 2));
    else err(message);
    return 1;
  } finally {
    await localWorkers?.stop('release').catch(() => {});
    await localRenderer?.close().catch(() => {});
    if (db && db !== io.db) await db.close();
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  // The settings in .env, as npm start and npm run worker read them: the same farm, not a fresh PGlite.
  await runCli(() => {
    loadDotEnv();
    return farmCli(process.argv.slice(2));
  });
}
