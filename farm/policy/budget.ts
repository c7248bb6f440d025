// GPU-second budgets: the accounts that admission (admission.ts) and settlement (settlement.ts)
// book against. Every change is a ledger entry written in the same transaction as the cached
// users.balance_ms, under the user's row lock (SELECT ... FOR UPDATE), so concurrent submissions
// by one user are serialised: they can never spend the same seconds, and the balance always equals
// the sum of the ledger. A CHECK constraint (balance >= 0) backs this up.
//
// Refill policy: once per period (guild setting, per-role override, farm default) the balance plus
// the seconds held by the user's queued and running jobs is topped up to the period's allowance;
// unused seconds do not pile up. One balance per user, while the allowance and period depend on
// where a request comes from, so a user has one refill clock per allowance (RefillLevel): a refill
// to an allowance counts for that allowance and every smaller one, never for a larger one. A member
// of a server giving 3600 a day and of one giving 100 an hour gets the 3600's refill every day
// however often the 100 tops them up meanwhile (one clock for both put the 3600 off a day at every
// top-up), and after the 3600 no 100 for an hour.
// A larger allowance is no fresh refill, though: a refill to A with period P tops up at most A less
// the largest allowance the user was refilled to within the P before it (largestRefillWithinMs;
// none: 0), so within any stretch no longer than the shortest period in play all refills together
// give at most the largest allowance among them. An admin raising the server's refill 90, 91, 92…
// within a period, roles with overrides 3591, 3592…, or servers giving different amounts each top
// up only the difference (1, 1…) over what the period gave already, never the whole amount again;
// the daily 3600 above gives at most 3500 when a 100 came within its day.
// A due refill is applied (and its clock moved) only by admission with the member's
// complete limits (ResolvedLimits.complete): a request outside any server (the farm's defaults),
// or in a server with the member's roles (or a server without role overrides). Reads (getBudget),
// grants and requests in a server without the member's roles never apply it: they would top up
// with less than the member's allowance and start a new period.
// A refill applied after grants made since it fell due counts them as coming after it.
import { and, desc, eq, inArray, sql } from 'drizzle-orm';
import { type FarmDb, type Queryable, type Transaction, queryRows } from '../../db/client.ts';
import { budgetLedger, guilds, jobs, type LedgerKind, type RefillLevel } from '../../db/schema.ts';
import { FarmError } from '../errors.ts';
import { type GuildSettingName, guildSettingRanges } from '../limits.ts';
import { checkId } from '../ids.ts';
import { unstorableTextIssue } from '../text.ts';
import { ACTIVE_STATUSES } from '../types.ts';
import type { BudgetDefaults, PolicyOptions } from './options.ts';

/** What the budget functions need of a FarmContext. */
export interface BudgetFarm {
  db: FarmDb;
  config: PolicyOptions;
}

export interface BudgetContext {
  /** The server the request came from (its settings pick the refill and limits); null or unset: outside any server. */
  guildId?: string | null;
  /**
   * The member's roles there; the most generous role override applies. Unset: not known (an
   * operator's command, a CLI retry), so a server's role overrides cannot be applied and the
   * limits may be less than the member's (ResolvedLimits.complete); an empty list: no roles.
   */
  roleIds?: readonly string[];
}

/** The budget rules for one user in one place: the farm's defaults after guild and role overrides. */
export type BudgetLimits = BudgetDefaults;

export interface ResolvedLimits extends BudgetLimits {
  /**
   * Whether these are the member's whole limits for the request: outside any server (the farm's
   * defaults), or in a server with the member's roles known, or in a server without role
   * overrides. Only then may admission apply a due refill (applyDueRefill).
   */
  complete: boolean;
}

/** A user's budget row as one transaction sees it. */
export interface LockedUser {
  id: string;
  /** The stored balance: a due refill that is not applied yet is not in it. */
  balanceMs: number;
  /** When the last refill was applied (ms since epoch); null: never. */
  lastRefillMs: number | null;
  /** The refill clocks (users.refill_levels), largest allowance first; null: the last refill counts for every allowance. */
  refillLevels: RefillLevel[] | null;
  /** Database clock at the transaction start (ms since epoch). */
  nowMs: number;
}

export interface LedgerEntry {
  id: number;
  kind: LedgerKind;
  amountGpuSeconds: number;
  balanceAfterGpuSeconds: number;
  jobId: number | null;
  note: string | null;
  createdAt: Date;
}

export interface BudgetStatus {
  userId: string;
  balanceGpuSeconds: number;
  /** Seconds reserved by this user's queued and running jobs (already taken from the balance). */
  heldGpuSeconds: number;
  refillGpuSeconds: number;
  refillPeriodSeconds: number;
  /** When the next refill falls due; when one is due already (refillDue), now. */
  nextRefillAt: Date;
  /**
   * A refill period has ended and its refill is not applied yet: it is not in balanceGpuSeconds.
   * The member's next request with complete limits applies it (in a server: with that server's
   * and the member's roles' allowance), topping up to the allowance of where it is made, or, within
   * the period of a refill to a smaller allowance, adding only the difference (refillAddsGpuSeconds).
   */
  refillDue: boolean;
  /**
   * What the due refill adds to the balance (GPU-seconds) when the member's next request with these
   * limits applies it: dueRefill's top-up, the rule admission applies (so at most the allowance
   * less the largest one the member was refilled to within the period). null: none is due.
   */
  refillAddsGpuSeconds: number | null;
  /**
   * When that cap decides refillAddsGpuSeconds (it adds only the difference, not the top-up to the
   * allowance): the largest allowance the member was refilled to within the period. null otherwise
   * (none due, or it tops up to the allowance).
   */
  refilledWithinPeriodGpuSeconds: number | null;
  /** Whether the limits shown are the member's whole limits here (ResolvedLimits.complete): false for a server with role overrides when the roles were not given. */
  limitsComplete: boolean;
  activeJobs: number;
  maxActiveJobs: number;
  /** Newest first. */
  ledger: LedgerEntry[];
}

/**
 * The farm's budget defaults, overridden by the guild's settings and the member's most generous
 * role. Stored server and role values are applied within the operator's ceilings
 * (guildSettingRanges): a value saved before a ceiling existed or was lowered gives at most the
 * ceiling. The farm's own defaults are the operator's and are not clamped. `complete` says whether
 * they are the member's whole limits (roles given, or none that could matter).
 */
export async function resolveLimits(q: Queryable, options: Pick<PolicyOptions, 'budget' | 'guildCeilings'>, context: BudgetContext = {}): Promise<ResolvedLimits> {
  const limits: ResolvedLimits = { ...options.budget, complete: true };
  if (!context.guildId) return limits;
  const [guild] = await q.select().from(guilds).where(eq(guilds.id, context.guildId));
  if (!guild) return limits;
  // Roles not given: complete only if no role of this server could raise the limits.
  limits.complete = context.roleIds !== undefined || Object.keys(guild.roleOverrides).length === 0;
  const ranges = guildSettingRanges(options.guildCeilings);
  const within = (setting: GuildSettingName, value: number): number => Math.min(Math.max(value, ranges[setting].min), ranges[setting].max);
  if (guild.refillGpuSeconds !== null) limits.refillGpuSeconds = within('refillGpuSeconds', guild.refillGpuSeconds);
  if (guild.refillPeriodSeconds !== null) limits.refillPeriodSeconds = within('refillPeriodSeconds', guild.refillPeriodSeconds);
  if (guild.maxActiveJobs !== null) limits.maxActiveJobs = within('maxActiveJobs', guild.maxActiveJobs);
  for (const roleId of context.roleIds ?? []) {
    const override = guild.roleOverrides[roleId];
    if (!override) continue;
    if (override.refillGpuSeconds !== undefined) limits.refillGpuSeconds = Math.max(limits.refillGpuSeconds, within('refillGpuSeconds', override.refillGpuSeconds));
    if (override.maxActiveJobs !== undefined) limits.maxActiveJobs = Math.max(limits.maxActiveJobs, within('maxActiveJobs', override.maxActiveJobs));
  }
  return limits;
}

const USER_ROW = (userId: string, lock: boolean) =>
  sql`select balance_ms, refill_levels,
             (extract(epoch from last_refill_at) * 1000)::float8 as last_refill_ms,
             (extract(epoch from now()) * 1000)::float8 as now_ms
      from users where id = ${userId} ${lock ? sql`for update` : sql.empty()}`;

type UserRow = { balance_ms: string | number; refill_levels: RefillLevel[] | string | null; last_refill_ms: number | null; now_ms: number };

const userFromRow = (userId: string, row: UserRow): LockedUser => ({
  id: userId,
  balanceMs: Number(row.balance_ms),
  lastRefillMs: row.last_refill_ms,
  refillLevels: typeof row.refill_levels === 'string' ? (JSON.parse(row.refill_levels) as RefillLevel[]) : row.refill_levels,
  nowMs: row.now_ms,
});

/** Creates the user on first sight and locks its row for this transaction. Applies no refill (applyDueRefill does). */
export async function lockUser(tx: Transaction, userId: string): Promise<LockedUser> {
  await tx.execute(sql`insert into users (id) values (${userId}) on conflict (id) do nothing`);
  const [row] = await queryRows<UserRow>(tx, USER_ROW(userId, true));
  return userFromRow(userId, row);
}

/** A user's row for reading, without creating or locking it (a user never seen: 0, never refilled). */
export async function readUser(q: Queryable, userId: string): Promise<LockedUser> {
  const [row] = await queryRows<UserRow>(q, USER_ROW(userId, false));
  if (row) return userFromRow(userId, row);
  const [clock] = await queryRows<{ now_ms: number }>(q, sql`select (extract(epoch from now()) * 1000)::float8 as now_ms`);
  return { id: userId, balanceMs: 0, lastRefillMs: null, refillLevels: null, nowMs: clock.now_ms };
}

const allowanceMsOf = (limits: BudgetLimits) => Math.round(limits.refillGpuSeconds * 1000);

/** When the user was last refilled to at least `allowanceMs` (ms since epoch); null: never. */
function lastRefillToMs(user: LockedUser, allowanceMs: number): number | null {
  if (user.lastRefillMs === null) return null;
  if (user.refillLevels === null) return user.lastRefillMs;
  const level = user.refillLevels.filter((l) => l.allowanceMs >= allowanceMs).reduce<RefillLevel | undefined>((best, l) => (!best || l.beforeMs < best.beforeMs ? l : best), undefined);
  return level ? user.lastRefillMs - level.beforeMs : null;
}

/** When the current period's refill falls (fell) due, ms since epoch; null: never refilled to this allowance, due now. */
function refillDueAtMs(user: LockedUser, limits: BudgetLimits): number | null {
  const lastMs = lastRefillToMs(user, allowanceMsOf(limits));
  return lastMs === null ? null : lastMs + limits.refillPeriodSeconds * 1000;
}

/**
 * The clocks after a refill to `allowanceMs` now: it is the latest refill for that allowance and
 * every smaller one; a larger allowance keeps its own (moved back by the time since the last refill).
 */
function levelsAfterRefill(user: LockedUser, allowanceMs: number): RefillLevel[] {
  const sinceMs = user.lastRefillMs === null ? 0 : Math.max(0, user.nowMs - user.lastRefillMs);
  // Before the column existed the last refill counted for every allowance.
  const old = user.lastRefillMs === null ? [] : (user.refillLevels ?? [{ allowanceMs: Number.MAX_SAFE_INTEGER, beforeMs: 0 }]);
  const larger = old.filter((l) => l.allowanceMs > allowanceMs).map((l) => ({ allowanceMs: l.allowanceMs, beforeMs: l.beforeMs + sinceMs }));
  return [...larger.sort((a, b) => b.allowanceMs - a.allowanceMs), { allowanceMs, beforeMs: 0 }];
}

/**
 * The largest allowance (ms) the user was refilled to within the `limits` period before now (0:
 * none): a refill to `limits` now adds at most its allowance less this. The clocks keep every
 * refill that matters here: one they left out was followed by a refill to at least as much, later
 * and so within the period too. The test is refillDueAtMs's, reversed: a refill to the allowance of
 * `limits` is due exactly when this is less than it.
 */
function largestRefillWithinMs(user: LockedUser, limits: BudgetLimits): number {
  if (user.lastRefillMs === null) return 0;
  const lastMs = user.lastRefillMs;
  // Before the column existed the last refill counted for every allowance.
  const levels = user.refillLevels ?? [{ allowanceMs: Number.MAX_SAFE_INTEGER, beforeMs: 0 }];
  const periodMs = limits.refillPeriodSeconds * 1000;
  return levels.filter((l) => !(user.nowMs >= lastMs - l.beforeMs + periodMs)).reduce((largest, l) => Math.max(largest, l.allowanceMs), 0);
}

function isRefillDue(user: LockedUser, limits: BudgetLimits): boolean {
  const dueAtMs = refillDueAtMs(user, limits);
  return dueAtMs === null || user.nowMs >= dueAtMs;
}

/** When the next refill falls due; now when one is due already (it applies on the member's next request). */
export function nextRefillAt(user: LockedUser, limits: BudgetLimits): Date {
  return new Date(isRefillDue(user, limits) ? user.nowMs : refillDueAtMs(user, limits)!);
}

/** A refill that has fallen due, as admission would apply it now (dueRefill). */
export interface DueRefill {
  /**
   * What it adds to the balance (ms): the allowance less what the user has, held seconds included
   * (0 when they have that much), and never more than the allowance less the largest one the user
   * was refilled to within the period before (largestRefillWithinMs).
   */
  topUpMs: number;
  /** Its ledger note. */
  note: string;
  /** The refill clocks after it (users.refill_levels). */
  levels: RefillLevel[];
}

/**
 * The refill that admission would apply now, read only (applyDueRefill writes it; an admission's
 * check, checkAdmission, only counts it): undefined when none is due, or when the limits are not
 * the member's whole limits (ResolvedLimits.complete), which would top up with less than the
 * member's allowance and start a new period (README, Budgets). It tops up what the user has, held
 * seconds included, to the allowance: seconds reserved by queued and running jobs come back
 * (settle, refund) later, so after a refill balance + held is the allowance (or stays above it),
 * never the allowance plus the held seconds. The refill counts as coming when it fell due:
 * operator grants since then (which do not refill) are left out of what it tops up, so a grant
 * neither eats the refill nor is undone by it. A refill within a period of one to a smaller
 * allowance (another server's, another role's, the server's before its admin raised it) tops up
 * only the difference between the two allowances at most: the period gave the smaller one already.
 */
export async function dueRefill(q: Queryable, user: LockedUser, limits: ResolvedLimits): Promise<DueRefill | undefined> {
  if (!limits.complete || !isRefillDue(user, limits)) return undefined;
  const allowanceMs = allowanceMsOf(limits);
  const { heldMs } = await countActiveJobs(q, user.id);
  const grantedMs = await grantedSince(q, user.id, refillDueAtMs(user, limits));
  const granted = grantedMs !== 0 ? `, ${grantedMs / 1000} granted since it fell due` : '';
  const givenMs = largestRefillWithinMs(user, limits);
  const given = givenMs > 0 ? `; at most ${(allowanceMs - givenMs) / 1000} more: refilled to ${givenMs / 1000} within the period` : '';
  return {
    topUpMs: Math.max(0, Math.min(allowanceMs - (user.balanceMs + heldMs - grantedMs), allowanceMs - givenMs)),
    note: `top-up to ${limits.refillGpuSeconds} GPU-seconds (${heldMs / 1000} held by active jobs${granted}${given})`,
    levels: levelsAfterRefill(user, allowanceMs),
  };
}

/** The user as `refill` leaves them: its top-up in the balance, a new period started now. */
export function afterRefill(user: LockedUser, refill: DueRefill): LockedUser {
  return { ...user, balanceMs: user.balanceMs + refill.topUpMs, lastRefillMs: user.nowMs, refillLevels: refill.levels };
}

/**
 * Applies a due refill (dueRefill) inside an admission's transaction (user locked by lockUser):
 * records its top-up, if any, and starts a new period; `user` is updated to match.
 */
export async function applyDueRefill(tx: Transaction, user: LockedUser, limits: ResolvedLimits): Promise<void> {
  const refill = await dueRefill(tx, user, limits);
  if (!refill) return;
  if (refill.topUpMs > 0) await addLedgerEntry(tx, user.id, 'refill', refill.topUpMs, null, refill.note);
  await tx.execute(sql`update users set last_refill_at = now(), refill_levels = ${JSON.stringify(refill.levels)}::jsonb where id = ${user.id}`);
  Object.assign(user, afterRefill(user, refill));
}

/** Sum of the operator grants (ms, signed) made at or after `sinceMs` (null: ever). */
async function grantedSince(q: Queryable, userId: string, sinceMs: number | null): Promise<number> {
  const since = sinceMs === null ? sql.empty() : sql`and created_at >= to_timestamp(${sinceMs / 1000}::float8)`;
  const [row] = await queryRows<{ granted_ms: number }>(
    q,
    sql`select coalesce(sum(amount_ms), 0)::float8 as granted_ms from budget_ledger where user_id = ${userId} and kind = 'grant' ${since}`,
  );
  return row.granted_ms;
}

/** Applies a signed amount to the balance and records it; returns the balance after (ms). */
export async function addLedgerEntry(
  tx: Transaction,
  userId: string,
  kind: LedgerKind,
  amountMs: number,
  jobId: number | null,
  note: string | null = null,
): Promise<number> {
  const [updated] = await queryRows<{ balance_ms: string | number }>(
    tx,
    sql`update users set balance_ms = balance_ms + ${amountMs} where id = ${userId} returning balance_ms`,
  );
  if (!updated) throw new Error(`budget entry for unknown user ${userId}`);
  const balanceAfterMs = Number(updated.balance_ms);
  await tx.insert(budgetLedger).values({ userId, jobId, kind, amountMs, balanceAfterMs, note });
  return balanceAfterMs;
}

export async function countActiveJobs(q: Queryable, userId: string): Promise<{ count: number; heldMs: number }> {
  const [row] = await q
    .select({ count: sql<number>`count(*)::int`, heldMs: sql<number>`coalesce(sum(${jobs.reservedMs}), 0)::float8` })
    .from(jobs)
    .where(and(eq(jobs.userId, userId), inArray(jobs.status, [...ACTIVE_STATUSES])));
  return { count: row.count, heldMs: row.heldMs };
}

/**
 * A user's budget as `context` sees it. A read: it writes nothing and never applies a due refill
 * (refillDue says one is due), whoever asks and from wherever.
 */
export async function getBudget(farm: BudgetFarm, userId: string, context: BudgetContext = {}, ledgerEntries = 20): Promise<BudgetStatus> {
  return farm.db.db.transaction(async (tx) => {
    const limits = await resolveLimits(tx, farm.config, context);
    const user = await readUser(tx, userId);
    const active = await countActiveJobs(tx, userId);
    // The due refill as admission would apply it with these limits (dueRefill's one rule; with
    // limits that are not complete, what a request with just these limits would get). Read only.
    const refillDue = isRefillDue(user, limits);
    const refill = refillDue ? await dueRefill(tx, user, { ...limits, complete: true }) : undefined;
    const withinMs = refill ? largestRefillWithinMs(user, limits) : 0;
    const capped = refill !== undefined && withinMs > 0 && refill.topUpMs === allowanceMsOf(limits) - withinMs;
    const ledger = await tx
      .select()
      .from(budgetLedger)
      .where(eq(budgetLedger.userId, userId))
      .orderBy(desc(budgetLedger.id))
      .limit(ledgerEntries);
    return {
      userId,
      balanceGpuSeconds: user.balanceMs / 1000,
      heldGpuSeconds: active.heldMs / 1000,
      refillGpuSeconds: limits.refillGpuSeconds,
      refillPeriodSeconds: limits.refillPeriodSeconds,
      nextRefillAt: nextRefillAt(user, limits),
      refillDue,
      refillAddsGpuSeconds: refill ? refill.topUpMs / 1000 : null,
      refilledWithinPeriodGpuSeconds: capped ? withinMs / 1000 : null,
      limitsComplete: limits.complete,
      activeJobs: active.count,
      maxActiveJobs: limits.maxActiveJobs,
      ledger: ledger.map((entry) => ({
        id: entry.id,
        kind: entry.kind,
        amountGpuSeconds: entry.amountMs / 1000,
        balanceAfterGpuSeconds: entry.balanceAfterMs / 1000,
        jobId: entry.jobId,
        note: entry.note,
        createdAt: entry.createdAt,
      })),
    };
  });
}

/**
 * Operator grant (negative to take seconds away, never below zero). Returns the new balance. Adds
 * to the stored balance only: a due refill is left for the member's next request (applyDueRefill),
 * which counts this grant as coming after it.
 */
export async function grantBudget(farm: BudgetFarm, userId: string, gpuSeconds: number, note?: string): Promise<number> {
  checkId('user id', userId);
  if (!Number.isFinite(gpuSeconds) || gpuSeconds === 0) throw new FarmError('invalid_params', `A grant must be a non-zero number of GPU-seconds (got ${gpuSeconds}).`);
  const noteIssue = note === undefined ? undefined : unstorableTextIssue('The note', note);
  if (noteIssue) throw new FarmError('invalid_params', `${noteIssue}.`);
  return farm.db.db.transaction(async (tx) => {
    const user = await lockUser(tx, userId);
    const amountMs = Math.round(gpuSeconds * 1000);
    if (user.balanceMs + amountMs < 0) {
      throw new FarmError('invalid_params', `Cannot take ${-gpuSeconds} GPU-seconds from ${userId}: the balance is only ${user.balanceMs / 1000}; take at most ${user.balanceMs / 1000}.`);
    }
    return (await addLedgerEntry(tx, userId, 'grant', amountMs, null, note ?? 'operator grant')) / 1000;
  });
}

/** Sum of a user's ledger and the cached balance, for audits and tests. */
export async function auditBalance(q: Queryable, userId: string): Promise<{ balanceMs: number; ledgerSumMs: number }> {
  const [row] = await queryRows<{ balance_ms: string | number; ledger_sum_ms: string | number }>(
    q,
    sql`select u.balance_ms, (select coalesce(sum(amount_ms), 0) from budget_ledger l where l.user_id = u.id) as ledger_sum_ms
        from users u where u.id = ${userId}`,
  );
  if (!row) return { balanceMs: 0, ledgerSumMs: 0 };
  return { balanceMs: Number(row.balance_ms), ledgerSumMs: Number(row.ledger_sum_ms) };
}
