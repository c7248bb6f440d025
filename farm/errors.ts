// Errors the farm refuses requests with. Each has a stable `code` (the CLI's --json output and
// the bot switch on it) and a one-line message that says what was wrong and what to do.
import { durationText, fileSize } from './text.ts';

/** What NoCapableWorkerError reports (structural: this module imports only text.ts, which imports nothing, so everything can import it). */
interface Need {
  kind: string;
  model: string;
  pixels: number;
  upscaleFactor?: number;
  upscaler?: string;
  /** What the model must do (job-params.ts ModelAbility). */
  ability?: 'text' | 'picture' | 'inpaint' | 'variation';
}
/**
 * listWorkers fills modelAbilities for every model (worker-registry.ts abilitiesOf). `online`:
 * false for a known worker that has stopped or gone quiet (findKnownWorkers); unset counts as online.
 */
type OnlineWorker = { online?: boolean; capabilities: { maxPixels: number; upscalers?: string[]; models?: string[]; modelAbilities?: Record<string, readonly string[]> } };

export type FarmErrorCode =
  | 'not_found'
  | 'budget_exceeded'
  | 'too_many_active_jobs'
  | 'no_capable_worker'
  | 'invalid_state'
  | 'invalid_params'
  | 'too_many_pictures';

export class FarmError extends Error {
  constructor(
    readonly code: FarmErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'FarmError';
  }

  /** Extra numbers for machine consumers (CLI --json). */
  details(): Record<string, unknown> {
    return {};
  }
}

export class JobNotFoundError extends FarmError {
  constructor(readonly jobId: number) {
    super('not_found', `There is no job ${jobId}; check the id (farm status lists jobs).`);
  }
}

export class InvalidJobStateError extends FarmError {
  constructor(message: string) {
    super('invalid_state', message);
  }
}

/**
 * An upscale or extension of a finished job whose video is no longer stored (retention deleted
 * it): there is nothing to continue from.
 */
export class ParentVideoGoneError extends InvalidJobStateError {
  constructor(
    readonly jobId: number,
    verb: 'upscaled' | 'extended',
  ) {
    super(`The video of job ${jobId} is no longer stored (finished videos are deleted after a while), so it can't be ${verb} any more; re-roll it to render it again, or start a new /blend or /movie.`);
  }
}

/**
 * An upscale its owner already has queued or running: same parent, same factor and upscaler (a
 * second press of Upscale or 🔍 would render, and charge, the same video twice).
 */
export class DuplicateUpscaleError extends InvalidJobStateError {
  constructor(
    readonly existingJobId: number,
    readonly parentJobId: number,
    status: 'queued' | 'running',
    upscaleFactor: number,
    upscaler?: string,
  ) {
    super(
      `You already have this upscale of job #${parentJobId} ${status === 'running' ? 'rendering' : 'queued'}: job #${existingJobId} ` +
        `(${upscaleFactor}x${upscaler ? ` with ${upscaler}` : ''}); its video is posted when it is done. To ask again, cancel job #${existingJobId} first.`,
    );
  }

  override details(): Record<string, unknown> {
    return { existingJobId: this.existingJobId, parentJobId: this.parentJobId };
  }
}

const fmt = (seconds: number): string => (Math.round(seconds * 10) / 10).toString();

export class BudgetExceededError extends FarmError {
  constructor(
    readonly costGpuSeconds: number,
    readonly balanceGpuSeconds: number,
    readonly nextRefillAt: Date,
    readonly refillGpuSeconds: number,
  ) {
    super(
      'budget_exceeded',
      `This job needs about ${fmt(costGpuSeconds)} GPU-seconds but only ${fmt(balanceGpuSeconds)} are left; ` +
        `the budget refills to ${fmt(refillGpuSeconds)} at ${nextRefillAt.toISOString()} (or ask for a smaller, shorter or lower-quality render).`,
    );
  }

  override details(): Record<string, unknown> {
    return {
      costGpuSeconds: this.costGpuSeconds,
      balanceGpuSeconds: this.balanceGpuSeconds,
      nextRefillAt: this.nextRefillAt.toISOString(),
      refillGpuSeconds: this.refillGpuSeconds,
    };
  }
}

/**
 * A submission whose pictures would take the member's held picture bytes past
 * MAX_HELD_PICTURE_BYTES_PER_USER: the pictures of their jobs waiting or running, and of those that
 * ended without a video for as long as retention keeps them (unrenderedInputsDue, farm/retention.ts:
 * `windowHours` after they end, up to the queue horizon for a failed job a late spooled render may
 * still complete, and whatever their age while a job in their chain is queued or running).
 * `windowHours`: retention's unrenderedInputHours (0: until the job is deleted). Sizes as the bot
 * writes them (fileSize).
 */
export class PictureAllowanceError extends FarmError {
  constructor(
    readonly heldBytes: number,
    readonly newBytes: number,
    readonly maxBytes: number,
    readonly windowHours: number,
  ) {
    const ended =
      windowHours > 0
        ? `or ended without a video and whose pictures the farm still keeps (${durationText(windowHours * 3600)} after they end, longer while a late render or a follow-up may still need them)`
        : 'or ended without a video (the farm keeps their pictures until the job is deleted)';
    super(
      'too_many_pictures',
      `Your jobs that are waiting or rendering, ${ended}, hold ${fileSize(heldBytes)} of pictures; this one's ${fileSize(newBytes)} would pass the ${fileSize(maxBytes)} one member's jobs may hold. ` +
        `Wait until they render${windowHours > 0 ? ' or the farm deletes those pictures' : ''}, or attach smaller pictures.`,
    );
  }

  override details(): Record<string, unknown> {
    return { heldBytes: this.heldBytes, newBytes: this.newBytes, maxBytes: this.maxBytes };
  }
}

export class ActiveJobLimitError extends FarmError {
  constructor(
    readonly activeJobs: number,
    readonly maxActiveJobs: number,
  ) {
    super(
      'too_many_active_jobs',
      `You already have ${activeJobs} job${activeJobs === 1 ? '' : 's'} queued or running (the limit is ${maxActiveJobs}); wait for one to finish or cancel one.`,
    );
  }

  override details(): Record<string, unknown> {
    return { activeJobs: this.activeJobs, maxActiveJobs: this.maxActiveJobs };
  }
}

/**
 * Why no worker could take a job (NoCapableWorkerError.shortfall), so a front end can word it in
 * its own terms: `no_worker`: none online (or known); `model`: none has the job's model; `ability`:
 * those with it cannot use it for this job (NoCapableWorkerError.ability: pictures, inpainting,
 * variations, text); `size`: one has a model that can, but none takes this many pixels;
 * `no_upscaler` (upscale): none has any upscaler; `upscaler` (upscale): some have upscalers, but
 * none makes this factor (or the upscaler named) at this size.
 */
export type WorkerShortfall = 'no_worker' | 'model' | 'ability' | 'size' | 'no_upscaler' | 'upscaler';

export class NoCapableWorkerError extends FarmError {
  /** The job's kind (blend, movie, upscale, reroll, extend, vary). */
  readonly kind: string;
  /** What the job needs its model to do (not for upscales). */
  readonly ability?: 'text' | 'picture' | 'inpaint' | 'variation';
  readonly shortfall: WorkerShortfall;
  readonly model: string;
  readonly pixels: number;
  /** Of the workers checked, those online now. */
  readonly workersOnline: number;
  /** The workers checked: online ones, or (without requireCapableWorker) all recently known, stopped ones too. */
  readonly workersKnown: number;
  readonly upscaleFactor?: number;
  readonly upscaler?: string;

  constructor(need: Need, online: readonly OnlineWorker[]) {
    super('no_capable_worker', noCapableWorkerText(need, online));
    this.kind = need.kind;
    if (need.kind !== 'upscale' && need.ability) this.ability = need.ability;
    this.shortfall = workerShortfall(need, online);
    this.model = need.model;
    this.pixels = need.pixels;
    this.workersOnline = online.filter((w) => w.online !== false).length;
    this.workersKnown = online.length;
    if (need.kind === 'upscale') {
      this.upscaleFactor = need.upscaleFactor;
      this.upscaler = need.upscaler;
    }
  }

  override details(): Record<string, unknown> {
    return { model: this.model, pixels: this.pixels, workersOnline: this.workersOnline, workersKnown: this.workersKnown, ...(this.upscaleFactor ? { upscaleFactor: this.upscaleFactor, upscaler: this.upscaler ?? null } : {}) };
  }
}

/** Why none of `online` can take the job (`online` holds no worker that can: NoCapableWorkerError). */
export function workerShortfall(need: Need, online: readonly OnlineWorker[]): WorkerShortfall {
  if (online.length === 0) return 'no_worker';
  if (need.kind === 'upscale') return online.some((w) => (w.capabilities.upscalers ?? []).length > 0) ? 'upscaler' : 'no_upscaler';
  const withModel = online.filter((w) => w.capabilities.models?.includes(need.model) || w.capabilities.models?.includes('*'));
  if (withModel.length === 0) return 'model';
  const ability = need.ability ?? 'text';
  const able = withModel.filter((w) => w.capabilities.models?.includes('*') || (w.capabilities.modelAbilities?.[need.model] ?? ['text']).includes(ability));
  return able.length === 0 ? 'ability' : 'size';
}

function noCapableWorkerText(need: Need, online: readonly OnlineWorker[]): string {
  if (online.length === 0) return 'No render worker is online; start one with `npm run worker` (or try again later).';
  // The workers checked are the online ones, or all recently known ones, some of which may have stopped.
  const onlineNow = online.filter((w) => w.online !== false).length;
  const workers =
    onlineNow === online.length
      ? `${online.length} online worker${online.length === 1 ? '' : 's'}`
      : `${online.length} known worker${online.length === 1 ? '' : 's'} (${onlineNow} online now)`;
  if (need.kind !== 'upscale' && need.ability) {
    const ability = need.ability;
    const withModel = online.filter((w) => w.capabilities.models?.includes(need.model) || w.capabilities.models?.includes('*'));
    const able = withModel.filter((w) => w.capabilities.models?.includes('*') || w.capabilities.modelAbilities?.[need.model]?.includes(ability));
    if (withModel.length > 0 && able.length === 0 && need.kind === 'extend' && ability === 'picture') {
      // An extension takes no pictures itself: the movie it continues does (its last keyframe is re-rendered from them).
      return `None of the ${workers} can use model "${need.model}" to continue this movie: it starts or ends at a picture, and re-rendering its last keyframe from that picture needs a model with a VAE encoder; make a new /movie instead, or ask the operator for a worker whose model has one.`;
    }
    if (withModel.length > 0 && able.length === 0) {
      const what = { text: 'render text-to-video transitions (it is an inpainting or image-variation model)', picture: 'start or end at a picture (its model has no VAE encoder)', inpaint: 'render inpainting transitions (it is no inpainting model)', variation: 'render variation animations (it is no image-variation model)' }[ability];
      return `None of the ${workers} can use model "${need.model}" to ${what}; leave the pictures out, or ask the operator for a worker with such a model (BLENDFARM_INPAINT_MODEL_DIR, BLENDFARM_VARIATION_MODEL_DIR).`;
    }
    if (withModel.length === 0 && (ability === 'inpaint' || ability === 'variation')) {
      return `None of the ${workers} has ${ability === 'inpaint' ? 'an inpainting' : 'an image-variation'} model ("${need.model}"), so this cannot start; ask the operator to start a worker with BLENDFARM_${ability === 'inpaint' ? 'INPAINT' : 'VARIATION'}_MODEL_DIR set.`;
    }
  }
  if (need.kind !== 'upscale') {
    return `None of the ${workers} can render model "${need.model}" at ${need.pixels} pixels per frame; pick another model or a smaller size.`;
  }
  const have = [...new Set(online.flatMap((w) => w.capabilities.upscalers ?? []))];
  const largest = Math.max(...online.map((w) => w.capabilities.maxPixels));
  const what = `upscale ${need.upscaleFactor}x${need.upscaler ? ` with ${need.upscaler}` : ''} to ${need.pixels} pixels per frame`;
  const they = `they have ${have.length ? `the upscalers ${have.join(', ')}` : 'no upscalers'} and take at most ${largest} pixels per frame`;
  return `None of the ${workers} can ${what} (${they}); ask for a smaller factor${have.length ? ' or one of those upscalers' : ''}, or start a worker that has it.`;
}
