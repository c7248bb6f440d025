/**
 * The farm's policies in one place, behind one small interface — the way p-queue puts ordering
 * behind its Queue interface. The job life cycle (jobs.ts) and the lease machinery (queue.ts)
 * decide nothing about money or order themselves: they ask the policy.
 *
 *   price       what a job is expected to cost (cost.ts), reserved at admission
 *   admit       may this user queue this job now? the one check for submissions and retries
 *               (admission.ts: active-job cap, balance, reservation)
 *   check       would admit refuse it now? read only, before work that a refusal would waste
 *               (checkSubmission in jobs.ts: the bot asks before downloading pictures)
 *   settle      what a job that ended costs, and what goes back to the user (settlement.ts)
 *   claimOrder  which queued job a worker takes next (fair-order.ts), and onClaim, what a claim
 *               books against its owner's share
 *
 * The default policy is built from the options in FarmConfig (options.ts lists each with its
 * default and setting); a FarmContext may carry another `policy`.
 */
import type { SQL } from 'drizzle-orm';
import type { Queryable, Transaction } from '../../db/client.ts';
import type { JobParams } from '../job-params.ts';
import { type AdmissionRequest, admitJob, checkAdmission } from './admission.ts';
import { estimateGpuSeconds } from './cost.ts';
import { chargeClaim, fairQueue, unbookClaim } from './fair-order.ts';
import type { PolicyOptions } from './options.ts';
import { type Outcome, type SettledJob, type Settlement, settleJob } from './settlement.ts';

export interface FarmPolicy {
  /**
   * GPU-seconds to reserve for a job. `moviePrompts`: prompts of the whole movie it renders (an
   * extension lists only its new ones); default the job's own.
   */
  price(params: JobParams, moviePrompts?: number): number;
  /**
   * Runs inside the transaction that queues a job (submission or retry): refuses with a FarmError
   * (ActiveJobLimitError, BudgetExceededError) or calls `queue(reservedMs)` to write the job row
   * and reserves that much of the user's budget. Returns what `queue` returned.
   */
  admit<T extends { id: number }>(tx: Transaction, request: AdmissionRequest, queue: (reservedMs: number) => Promise<T>): Promise<T>;
  /**
   * Read only: throws the FarmError `admit` would refuse this request with now, else resolves. A
   * forecast (admit decides, in its transaction); without it nothing is refused before admit.
   */
  check?(q: Queryable, request: Omit<AdmissionRequest, 'note'>): Promise<void>;
  /** Runs inside the transaction that ends a job: sets jobs.charged_ms and returns the rest of the reservation. */
  settle(tx: Transaction, job: SettledJob, outcome: Outcome): Promise<Settlement>;
  /**
   * SQL for a CTE named "fair" with one row per queued job: (id, model, pixels, run_after,
   * virtual_start). Claims, queue positions and `farm status` take the lowest virtual_start first,
   * then the lowest id.
   */
  claimOrder(): SQL;
  /** SQL for a CTE named "charged" in the claim statement, booking the claimed job (CTE "claimed", jobs.*) against its owner. */
  onClaim(): SQL;
  /**
   * SQL for a CTE named "unbooked" in the statement that hands a job back unrendered (releaseJob:
   * CTE "released", jobs.*), undoing onClaim's booking; without it nothing is undone.
   */
  onRelease?(): SQL;
}

export function defaultPolicy(options: PolicyOptions): FarmPolicy {
  return {
    price: (params, moviePrompts) => estimateGpuSeconds(params, options.cost, moviePrompts),
    admit: (tx, request, queue) => admitJob(tx, options, request, queue),
    check: (q, request) => checkAdmission(q, options, request),
    settle: settleJob,
    claimOrder: () => fairQueue(options.fairnessHalfLifeSeconds),
    onClaim: () => chargeClaim(options.fairnessHalfLifeSeconds),
    onRelease: () => unbookClaim(options.fairnessHalfLifeSeconds),
  };
}

/** The policy a farm runs under: its own, else the default one for its configuration. */
export function policyOf(farm: { config: PolicyOptions; policy?: FarmPolicy }): FarmPolicy {
  return farm.policy ?? defaultPolicy(farm.config);
}

export { type AdmissionRequest } from './admission.ts';
export { type Outcome, type SettledJob, type Settlement, chargeFor } from './settlement.ts';
export { estimateGpuSeconds } from './cost.ts';
export { type BudgetDefaults, type CostModel, type PolicyOptions, DEFAULT_POLICY_OPTIONS } from './options.ts';
export {
  type BudgetContext,
  type BudgetFarm,
  type BudgetLimits,
  type BudgetStatus,
  type LedgerEntry,
  getBudget,
  grantBudget,
  auditBalance,
} from './budget.ts';
