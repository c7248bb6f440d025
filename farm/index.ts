// The farm's public surface for front ends (bot, CLI, web) and worker hosts. Everything takes
// a FarmContext ({ db, config }): openDatabase() and farmConfigFrom(loadConfig()) make one.
import { submitFollowUp as submitFollowUpUncounted } from './follow-up.ts';
import { checkSubmission as checkSubmissionUncounted, submitJob as submitJobUncounted } from './jobs.ts';
import { countRefusals } from './metrics.ts';

export { type FarmDb, type OpenDatabaseOptions, openDatabase, DEFAULT_PGLITE_DIR, IN_MEMORY } from '../db/client.ts';
export { DataDirLockedError } from '../db/pglite-lock.ts';
export { describeDbError, isConnectionError, loggableError } from '../db/errors.ts';
export { MAX_ID_LENGTH, InvalidIdError, checkId, isJobId, parseJobId } from './ids.ts';
export { durationText, fileSize, unstorableTextIssue, storableText } from './text.ts';
export { type FarmConfig, type FarmConfigOverrides, type FarmContext, type FarmSettings, DEFAULT_FARM_CONFIG, DEFAULT_SHUTDOWN_GRACE_SECONDS, farmConfigFrom } from './config.ts';
export * from './types.ts';
export * from './errors.ts';
export * from './job-params.ts';
export { type Range, LIMITS, JOB_VIDEO_FORMATS, UPSCALE_FACTORS, DEFAULT_UPSCALE_FACTOR, FIXED_SCALE_UPSCALERS, IMAGE_LIMITS, MAX_HELD_PICTURE_BYTES_PER_USER, upscalerMakes, GUILD_LIMITS, DEFAULT_GUILD_CEILINGS, type GuildCeilings } from './limits.ts';
export {
  type FarmPolicy,
  type PolicyOptions,
  type BudgetDefaults,
  type CostModel,
  type AdmissionRequest,
  type Outcome,
  type Settlement,
  type BudgetContext,
  type BudgetLimits,
  type BudgetStatus,
  type LedgerEntry,
  DEFAULT_POLICY_OPTIONS,
  defaultPolicy,
  policyOf,
  estimateGpuSeconds,
  getBudget,
  grantBudget,
  auditBalance,
} from './policy/index.ts';
export {
  type SubmitJobInput,
  type ListJobsFilter,
  type CancelResult,
  type JobMessageFields,
  getJob,
  listJobs,
  cancelJob,
  retryJob,
  markDelivered,
  claimDelivery,
  releaseDelivery,
  listUndelivered,
  setJobMessage,
  getArtifact,
  getJobInputs,
} from './jobs.ts';
export { type Movie, movieOf } from './movie.ts';
export { type FollowUpKind, type FollowUpOptions, type SubmitFollowUpInput, followUpParams, followUpRefusal, followUpsFor, isFollowUpKind, parentMovieParams } from './follow-up.ts';
export { FOLLOW_UP_NOUNS } from './follow-up-rule.ts';
export {
  type GuildSettings,
  type GuildSettingsPatch,
  type GuildSettingsUpdate,
  type GuildSettingName,
  type ClampedSetting,
  type RenderDefaults,
  getGuildSettings,
  guildSettingRanges,
  updateGuildSettings,
} from './guilds.ts';
export { getJobByMessageId } from './lookup.ts';
export { type JobEvent, type JobEventType, type JobEventHandler, JOB_EVENTS_CHANNEL, onJobEvent } from './events.ts';
export { type WaitOptions, waitForJob } from './wait.ts';
export { countJobs, type FarmStatus, farmStatus, queuePosition } from './status.ts';
export { reapExpiredLeases, expireQueuedJobs } from './queue.ts';
export { type PruneOptions, type PruneReport, pruneFarm, describePrune } from './retention.ts';
export { type WorkerInfo, type OfferedModel, offeredModels, listWorkers, findCapableWorkers, canRun, jobNeeds, abilitiesOf, providerKind, WorkerIdInUseError } from './worker-registry.ts';
export { type Renderer, type RenderContext, type RenderResult, type RendererFactory, RenderError, MIME_TYPES, RESULT_WARNINGS, resultWarnings, userMessageOf, workerFaultOf, type WorkerFaultScope } from './renderer.ts';
export { cancelledBy, cancelReason, failureForOwner, isExpiredJob, isFarmSideFailure, LEASE_LOST_TEXT, NO_WORKER_COULD_RENDER_TEXT, OPERATOR_CANCEL_REASON } from './failure.ts';
export { type FarmWorkerOptions, type StopMode, type WorkerStats, FarmWorker, startWorker } from './worker.ts';
export { type LocalWorkers, type LocalWorkersOptions, startLocalWorkers } from './local.ts';
export { type Housekeeping, startHousekeeping, sweepQueue, pruneOnce } from './housekeeping.ts';
export { type ThreadRenderer, type ThreadRendererOptions, createThreadRenderer } from './thread-renderer.ts';
export { jobToJson, artifactToJson, workerToJson, budgetToJson } from './json.ts';
export {
  type FailureCause,
  type FarmMetrics,
  type FarmMetricsOptions,
  type ObservedJobEvent,
  RENDER_BUCKETS_SECONDS,
  WAIT_BUCKETS_SECONDS,
  countRefusal,
  failureCause,
  registerFarmMetrics,
} from './metrics.ts';
export { defaultWorkerId } from './worker.ts';
export { type ActivityBucket, type ActivityJob, type ActivityWorker, type FarmActivity, farmActivity, getStatusPageVisibility, setStatusPageVisibility } from './activity.ts';

/** Submits a job (farm/jobs.ts); refusals are counted for blendfarm_submissions_refused_total. */
export const submitJob = countRefusals(submitJobUncounted);
/**
 * Would submitJob refuse this job now, its pictures aside (farm/jobs.ts)? A read-only forecast
 * before costly work; its refusals are counted in place of the submission they spare.
 */
export const checkSubmission = countRefusals(checkSubmissionUncounted);
/** Submits a re-roll, upscale or extension (farm/follow-up.ts); refusals are counted too. */
export const submitFollowUp = countRefusals(submitFollowUpUncounted);
