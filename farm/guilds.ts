// Per-server settings: budget refill, period, job limit and per-role overrides (unset values fall
// back to the farm's defaults; resolveLimits in budget.ts applies them at submission), and the
// render defaults a server picks for its members (kept in the free-form `settings` column).
import { eq, sql } from 'drizzle-orm';
import { guilds, type RoleOverride } from '../db/schema.ts';
import type { FarmContext } from './config.ts';

/** What a server's members get when they leave an option out (names as the bot's options). */
export interface RenderDefaults {
  quality?: string;
  size?: string;
  duration?: number;
  format?: string;
}

export interface GuildSettings {
  guildId: string;
  defaults: RenderDefaults;
  refillGpuSeconds: number | null;
  refillPeriodSeconds: number | null;
  maxActiveJobs: number | null;
  roleOverrides: Record<string, RoleOverride>;
}

export interface GuildSettingsPatch {
  refillGpuSeconds?: number | null;
  refillPeriodSeconds?: number | null;
  maxActiveJobs?: number | null;
  /** Sets (or with null removes) one role's override. */
  role?: { roleId: string; override: RoleOverride | null };
  /** Merged into the render defaults; null clears them all. */
  defaults?: RenderDefaults | null;
}

export async function getGuildSettings(farm: FarmContext, guildId: string): Promise<GuildSettings> {
  const [row] = await farm.db.db.select().from(guilds).where(eq(guilds.id, guildId));
  return {
    guildId,
    defaults: ((row?.settings as { defaults?: RenderDefaults } | undefined)?.defaults ?? {}) as RenderDefaults,
    refillGpuSeconds: row?.refillGpuSeconds ?? null,
    refillPeriodSeconds: row?.refillPeriodSeconds ?? null,
    maxActiveJobs: row?.maxActiveJobs ?? null,
    roleOverrides: row?.roleOverrides ?? {},
  };
}

export async function updateGuildSettings(farm: FarmContext, guildId: string, patch: GuildSettingsPatch): Promise<GuildSettings> {
  const check = (name: string, v: number | null | undefined, min: number, max: number) => {
    if (v !== undefined && v !== null && (!Number.isInteger(v) || v < min || v > max)) throw new RangeError(`${name} must be a whole number from ${min} to ${max}`);
  };
  check('refill GPU-seconds', patch.refillGpuSeconds, 0, 10_000_000);
  check('refill period (seconds)', patch.refillPeriodSeconds, 60, 365 * 86_400);
  check('max active jobs', patch.maxActiveJobs, 1, 1000);
  await farm.db.db.transaction(async (tx) => {
    await tx.insert(guilds).values({ id: guildId }).onConflictDoNothing();
    const set: Record<string, unknown> = { updatedAt: sql`now()` };
    if (patch.refillGpuSeconds !== undefined) set.refillGpuSeconds = patch.refillGpuSeconds;
    if (patch.refillPeriodSeconds !== undefined) set.refillPeriodSeconds = patch.refillPeriodSeconds;
    if (patch.maxActiveJobs !== undefined) set.maxActiveJobs = patch.maxActiveJobs;
    if (patch.defaults !== undefined) {
      const [row] = await tx.select({ settings: guilds.settings }).from(guilds).where(eq(guilds.id, guildId)).for('update');
      const current = (row?.settings ?? {}) as { defaults?: RenderDefaults };
      const merged = patch.defaults === null ? {} : { ...(current.defaults ?? {}), ...defined(patch.defaults) };
      set.settings = { ...current, defaults: merged };
    }
    if (patch.role) {
      const [row] = await tx.select({ roleOverrides: guilds.roleOverrides }).from(guilds).where(eq(guilds.id, guildId)).for('update');
      const overrides = { ...(row?.roleOverrides ?? {}) };
      if (patch.role.override) overrides[patch.role.roleId] = patch.role.override;
      else delete overrides[patch.role.roleId];
      set.roleOverrides = overrides;
    }
    await tx.update(guilds).set(set).where(eq(guilds.id, guildId));
  });
  return getGuildSettings(farm, guildId);
}

function defined<T extends object>(values: T): Partial<T> {
  return Object.fromEntries(Object.entries(values).filter(([, v]) => v !== undefined)) as Partial<T>;
}
