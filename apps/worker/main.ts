// `npm run worker`: one render worker process. Configuration comes from the settings
// (config/settings.ts, read once with loadConfig()):
//   DATABASE_URL                  Postgres (unset: embedded PGlite, which one process may open)
//   BLENDFARM_RENDERER            renderer module (default apps/worker/engine-renderer.ts)
//   BLENDFARM_RENDERER_OPTIONS    JSON passed to its createRenderer(options)
//   BLENDFARM_WORKER_CONCURRENCY  concurrent renders, one per GPU (default 1)
//   BLENDFARM_WORKER_ID           stable id (default host-pid-random)
//   BLENDFARM_SHUTDOWN_GRACE_SECONDS  how long SIGTERM waits for running renders (default 30)
// plus the farm settings of farm/config.ts (lease, heartbeat, artifact and spool directories, ...).
// SIGTERM/SIGINT: stop claiming, finish running jobs within the grace period, hand back the
// rest. A second signal hands everything back at once; the same signal again within a second
// (SAME_SIGNAL_MS) is the first one passed on (a terminal's Ctrl-C reaches tsx and the worker
// both, and tsx relays it), not a second request.
// /readyz (with BLENDFARM_HTTP_PORT) is ready once the model is loaded (apps/worker/model-readiness.ts):
// a model that fails to load is logged with the reason, /readyz says why, and loading is tried
// again 5 s later, the pause doubling up to 5 min (MODEL_LOAD_RETRY). While the model is known not
// to load, the worker claims no job on it (upscales and its other models still), so a healthy worker
// renders them.
// A render that fails for this worker's own fault (model files, execution provider, a missing ffmpeg:
// engine-renderer.ts's workerFault) hands its job back without using an attempt, and the worker
// claims nothing needing the same for a doubling pause (farm/worker.ts, WORKER_FAULT_PAUSE); /readyz
// says so under "renders".
// Exit 78 (EX_CONFIG): another live worker holds this id, or the engine's renderer finds no usable
// ffmpeg or ffprobe at start (FFMPEG_PATH/FFPROBE_PATH, the bundled binaries, PATH).
import { loadConfig, loadDotEnv } from '../../config/index.ts';
import { DEFAULT_SHUTDOWN_GRACE_SECONDS, defaultWorkerId, farmConfigFrom, type FarmWorker, openDatabase, startWorker, WorkerIdInUseError } from '../../farm/index.ts';
import { DEFAULT_RENDERER_MODULE, loadRenderer, rendererSpecFrom, watchRenderer } from './load-renderer.ts';
import { resolveFfmpeg, resolveFfprobe } from '../../engine/index.ts';
import { createLogger, lineLogger, routeConsole, secretsOf } from '../log.ts';
import { createRegistry, type Ops, startOps } from '../http/ops.ts';
import { renderMetrics } from '../http/render-metrics.ts';
import { opsListen } from '../http/listen.ts';
import { ModelReadiness } from './model-readiness.ts';
import { SETTINGS_DOCS, settingLines, settingsOnlyArguments } from '../cli-kit.ts';

const USAGE = `Usage: npm run worker

Runs one render worker: it claims jobs from the farm's database and renders them. It takes no
arguments; the settings it reads most:

${settingLines(['databaseUrl', 'dataDir', 'modelDir', 'executionProvider', 'deviceId', 'workerConcurrency', 'workerId', 'shutdownGraceSeconds', 'spoolDir', 'renderer', 'httpPort', 'logLevel', 'logFormat'])}

plus the farm's settings (leases, heartbeat, retention: BLENDFARM_*). ${SETTINGS_DOCS}
`;

settingsOnlyArguments('npm run worker', USAGE);

/**
 * Exit status of a worker whose id another live worker holds (refused at start, or taken over
 * since): 78, EX_CONFIG in sysexits.h — a configuration to fix, not a crash to restart
 * (systemd: RestartPreventExitStatus=78).
 */
const EXIT_ID_IN_USE = 78;

/** Exit status of a worker refused at start for its configuration (no usable ffmpeg or ffprobe): the same EX_CONFIG, 78. */
const EXIT_CONFIG = 78;

/** A setting the worker cannot run with, found at start: one line, exit EXIT_CONFIG (a restart would only fail again). */
class WorkerConfigError extends Error {}

/**
 * Every job the engine renders ends in ffmpeg (encoding) and ffprobe (reading a video back): a
 * worker that cannot find them would fail every job it claims, so it refuses to start instead,
 * with the lookup's own message (FFMPEG_PATH/FFPROBE_PATH set to a missing file, or neither bundled
 * nor on PATH).
 */
function requireVideoTools(): void {
  for (const resolve of [resolveFfmpeg, resolveFfprobe]) {
    try {
      resolve();
    } catch (error) {
      throw new WorkerConfigError(`the worker cannot start: ${(error as Error).message}`);
    }
  }
}

/** The same signal again within this long is the first one passed on by npm, tsx or a supervisor, not a second request. */
const SAME_SIGNAL_MS = 1000;

async function main(): Promise<void> {
  // Every setting is checked first, with one line per bad value.
  loadDotEnv();
  const settings = loadConfig();
  const config = farmConfigFrom(settings);
  const spec = rendererSpecFrom(settings);
  // The engine's renderer encodes with ffmpeg: checked now, not at the end of the first render (another module brings its own tools).
  if (spec.module === DEFAULT_RENDERER_MODULE) requireVideoTools();
  const graceSeconds = settings.shutdownGraceSeconds ?? DEFAULT_SHUTDOWN_GRACE_SECONDS;
  const workerId = settings.workerId || defaultWorkerId();
  // One JSON line per event (readable on a terminal); secrets are scrubbed from every line.
  const logger = createLogger({ name: 'worker', level: settings.logLevel, format: settings.logFormat, secrets: secretsOf(settings) }).child({ workerId });
  routeConsole(logger);
  const db = await openDatabase({ url: settings.databaseUrl ?? '', dataDir: settings.dataDir, info: (line) => console.log(line) });

  // Metrics and health (BLENDFARM_HTTP_PORT, off unless set): engine timings of this worker;
  // the farm-wide metrics and the status page come from the bot.
  const registry = createRegistry('worker');
  const listen = opsListen(settings, 'worker');
  const readiness = new ModelReadiness({
    log: (level, line) => (level === 'warn' ? console.warn : console.log)(`[worker ${workerId}] ${line}`),
  });
  let ops: Ops | undefined;
  /** The farm worker once started (its faultCheck is a readiness check). */
  let started: FarmWorker | undefined;
  if (listen) {
    ops = await startOps(
      {
        role: 'worker',
        farm: { db, config },
        ...listen,
        logger,
        gauges: false,
        countJobEvents: false,
        statusPage: false,
        readiness: [
          { name: 'model', check: async () => readiness.check() },
          // What the worker stopped claiming after a fault of its own in a render (farm/worker.ts faultCheck).
          { name: 'renders', check: async () => started?.faultCheck() ?? true },
        ],
      },
      registry,
    ).catch(async (error: unknown) => {
      await db.close();
      throw error;
    });
  }
  const renderer = await loadRenderer(spec, config.abortGraceMs).catch(async (error: unknown) => {
    await ops?.stop();
    await db.close();
    throw error;
  });
  // Readiness outermost: the farm asks it which models it cannot render now (unavailableModels).
  const watched = watchRenderer(spec, renderer, readiness, (r) => renderMetrics(registry).wrap(r));
  const worker = await startWorker({
    farm: { db, config },
    renderer: watched.renderer,
    concurrency: spec.threads,
    id: workerId,
    log: lineLogger(logger),
    graceMs: graceSeconds * 1000,
    // Another process was started under this id: the worker has logged it and is stopping; the
    // process ends once it has, with EXIT_ID_IN_USE (a restart would only be refused).
    onIdTaken: () => {
      readiness.stop();
      closeAndExit(worker.stop('finish', graceSeconds * 1000), EXIT_ID_IN_USE);
    },
  });
  started = worker;
  // Ready (/readyz) once the model is loaded: by the warm-up, one of its retries, or a job on it.
  watched.start();
  console.log(`[worker ${worker.id}] database: ${db.location}; renderer: ${spec.module}`);

  /** After the worker stops: the renderer, the ops server and the database close, then the process exits. */
  const closeAndExit = (stopping: Promise<void>, code: number): void => {
    void stopping
      .then(() => renderer.close())
      .then(() => ops?.stop())
      .then(() => db.close())
      .then(
        () => process.exit(code),
        (error: unknown) => {
          console.error(`[worker ${worker.id}] shutdown failed: ${(error as Error).message}`);
          process.exit(1);
        },
      );
  };

  let signals = 0;
  let last: { signal: NodeJS.Signals; at: number } | undefined;
  const shutdown = (signal: NodeJS.Signals): void => {
    // One Ctrl-C on `npm run worker` reaches this process twice within milliseconds: the terminal
    // signals the whole process group, and tsx passes its own copy on (so does a supervisor that
    // signals every process of the service). That is one request to stop, not the second one.
    // Each request is compared with the one before it, so a later Ctrl-C's own copy is not a third.
    if (last?.signal === signal && performance.now() - last.at < SAME_SIGNAL_MS) {
      console.log(`[worker ${worker.id}] ${signal} again within ${SAME_SIGNAL_MS / 1000} s: taken as the same request${signals === 1 ? ' (still finishing running jobs); send it again later to hand them back now' : ''}`);
      return;
    }
    last = { signal, at: performance.now() };
    signals++;
    console.log(`[worker ${worker.id}] ${signal}: ${signals === 1 ? `finishing running jobs (up to ${graceSeconds} s)` : 'handing jobs back now'}`);
    readiness.stop();
    const stopping = worker.stop(signals === 1 ? 'finish' : 'release', graceSeconds * 1000);
    if (signals > 1) return;
    closeAndExit(stopping, 0);
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
}

main().catch((error: unknown) => {
  console.error((error as Error).message);
  process.exit(error instanceof WorkerIdInUseError ? EXIT_ID_IN_USE : error instanceof WorkerConfigError ? EXIT_CONFIG : 1);
});
