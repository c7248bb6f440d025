// The stable JSON shapes of `npm run farm -- ... --json` (documented in farm/README.md).
// Operators script against these: add fields freely, never rename or remove one.
// Interaction tokens are credentials and are never printed.
import type { BudgetStatus } from './policy/index.ts';
import type { Artifact, Job } from './types.ts';
import type { WorkerInfo } from './worker-registry.ts';

const iso = (date: Date | null): string | null => (date ? date.toISOString() : null);

export function jobToJson(job: Job) {
  return {
    id: job.id,
    kind: job.kind,
    status: job.status,
    userId: job.userId,
    guildId: job.guildId,
    channelId: job.channelId,
    messageId: job.messageId,
    parentJobId: job.parentJobId,
    params: job.params,
    attempts: job.attempts,
    maxAttempts: job.maxAttempts,
    workerId: job.workerId,
    progress: job.progress ? { ...job.progress, preview: undefined } : null,
    error: job.error,
    userError: job.userError,
    reservedGpuSeconds: job.reservedGpuSeconds,
    spentGpuSeconds: job.spentGpuSeconds,
    chargedGpuSeconds: job.chargedGpuSeconds,
    createdAt: iso(job.createdAt),
    startedAt: iso(job.startedAt),
    finishedAt: iso(job.finishedAt),
    deliveredAt: iso(job.deliveredAt),
  };
}

export function artifactToJson(artifact: Artifact | undefined) {
  if (!artifact) return null;
  return { format: artifact.format, mime: artifact.mime, sizeBytes: artifact.sizeBytes, meta: artifact.meta };
}

export function workerToJson(worker: WorkerInfo) {
  return {
    id: worker.id,
    host: worker.host,
    pid: worker.pid,
    online: worker.online,
    capabilities: worker.capabilities,
    concurrency: worker.concurrency,
    runningJobs: worker.runningJobs,
    startedAt: iso(worker.startedAt),
    heartbeatAt: iso(worker.heartbeatAt),
    stoppedAt: iso(worker.stoppedAt),
  };
}

export function budgetToJson(budget: BudgetStatus) {
  return {
    userId: budget.userId,
    balanceGpuSeconds: budget.balanceGpuSeconds,
    heldGpuSeconds: budget.heldGpuSeconds,
    refillGpuSeconds: budget.refillGpuSeconds,
    refillPeriodSeconds: budget.refillPeriodSeconds,
    nextRefillAt: budget.nextRefillAt.toISOString(),
    refillDue: budget.refillDue,
    limitsComplete: budget.limitsComplete,
    activeJobs: budget.activeJobs,
    maxActiveJobs: budget.maxActiveJobs,
    refillAddsGpuSeconds: budget.refillAddsGpuSeconds,
    refilledWithinPeriodGpuSeconds: budget.refilledWithinPeriodGpuSeconds,
    ledger: budget.ledger.map((entry) => ({ ...entry, createdAt: entry.createdAt.toISOString() })),
  };
}
