// Errors the farm refuses requests with. Each has a stable `code` (the CLI's --json output and
// the bot switch on it) and a one-line message that says what was wrong and what to do.

export type FarmErrorCode =
  | 'not_found'
  | 'budget_exceeded'
  | 'too_many_active_jobs'
  | 'no_capable_worker'
  | 'invalid_state'
  | 'invalid_params';

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

export class NoCapableWorkerError extends FarmError {
  constructor(
    readonly model: string,
    readonly pixels: number,
    readonly workersOnline: number,
  ) {
    super(
      'no_capable_worker',
      workersOnline === 0
        ? 'No render worker is online; start one with `npm run worker` (or try again later).'
        : `None of the ${workersOnline} online workers can render model "${model}" at ${pixels} pixels per frame; pick another model or a smaller size.`,
    );
  }

  override details(): Record<string, unknown> {
    return { model: this.model, pixels: this.pixels, workersOnline: this.workersOnline };
  }
}
