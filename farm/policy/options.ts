// The policy's knobs, each with its default and its setting (config/settings.ts). FarmConfig
// carries them (farm/config.ts builds it from loadConfig()'s result); tests pass overrides.
import { DEFAULT_GUILD_CEILINGS, type GuildCeilings } from '../limits.ts';

export interface BudgetDefaults {
  /**
   * Each period the balance is topped up to this many GPU-seconds, not accumulated. Default 600
   * (BLENDFARM_REFILL_GPU_SECONDS). A larger allowance (a server's, a role's) applied within the
   * period of a smaller one adds only the difference (budget.ts, largestRefillWithinMs).
   */
  refillGpuSeconds: number;
  /** Length of a refill period in seconds. Default 86400, a day (BLENDFARM_REFILL_PERIOD_SECONDS). */
  refillPeriodSeconds: number;
  /** Queued + running jobs one user may have at once. Default 3 (BLENDFARM_MAX_ACTIVE_JOBS). */
  maxActiveJobs: number;
}

export interface CostModel {
  /** Fixed GPU-seconds per job: model load, prompt encoding, video encoding. Default 2. */
  overheadSeconds: number;
  /** GPU-seconds for one UNet step on one megapixel of output. Default 0.25 (BLENDFARM_GPU_SECONDS_PER_MEGAPIXEL_STEP). */
  secondsPerMegapixelStep: number;
  /** GPU-seconds to decode one output frame of one megapixel. Default 0.02. */
  secondsPerMegapixelFrame: number;
  /**
   * GPU-seconds to upscale one frame to one megapixel of output (upscale jobs: the parent's video
   * frame by frame, no diffusion). Default 0.05 (BLENDFARM_GPU_SECONDS_PER_UPSCALED_MEGAPIXEL): an
   * ESRGAN network on a GPU, with room; the x4 diffusion upscaler is far slower, so farms that run it
   * should raise it (the charge is the measured time, capped at the reservation).
   */
  secondsPerUpscaledMegapixelFrame: number;
}

export interface PolicyOptions {
  /** Farm-wide budget rules; a guild's settings and its members' roles override them. */
  budget: BudgetDefaults;
  /**
   * The most a server admin may give with /settings (guilds.ts; BLENDFARM_GUILD_* settings).
   * Admission applies stored server and role values within them too (resolveLimits in budget.ts).
   */
  guildCeilings: GuildCeilings;
  /** What a job is estimated to cost, reserved at admission. */
  cost: CostModel;
  /** Half-life of a user's recent usage in the fair claim order. Default 3600 (BLENDFARM_FAIRNESS_HALF_LIFE_SECONDS). */
  fairnessHalfLifeSeconds: number;
}

export const DEFAULT_POLICY_OPTIONS: PolicyOptions = {
  budget: { refillGpuSeconds: 600, refillPeriodSeconds: 86_400, maxActiveJobs: 3 },
  guildCeilings: DEFAULT_GUILD_CEILINGS,
  cost: { overheadSeconds: 2, secondsPerMegapixelStep: 0.25, secondsPerMegapixelFrame: 0.02, secondsPerUpscaledMegapixelFrame: 0.05 },
  fairnessHalfLifeSeconds: 3600,
};
