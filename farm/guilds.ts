// Per-server settings: budget refill, period, job limit and per-role overrides (unset values fall
// back to the farm's defaults; resolveLimits in policy/budget.ts applies them at admission), and the
// render defaults a server picks for its members (kept in the free-form `settings` column).
import { eq, sql } from 'drizzle-orm';
import { guilds, type RoleOverride } from '../db/schema.ts';
import type { FarmContext } from './config.ts';
import { defined } from './defined.ts';
import { JobParamsError, modelIdIssue } from './job-params.ts';
import { type GuildSettingName, guildSettingRanges } from './limits.ts';

export { type GuildSettingName, guildSettingRanges } from './limits.ts';

/** What a server's members get when they leave an option out (names as the bot's options). */
export interface RenderDefaults {
  quality?: string;
  size?: string;
  duration?: number;
  format?: string;
  /**
   * The model /blend and /movie jobs name when the member names none (in place of the farm's main
   * model, DEFAULT_MODELS.text; inpainting and variations keep their own models).
   */
  model?: string;
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
  /** With `defaults`: they replace the render defaults instead of being merged in (a reset with values, in one write). */
  replaceDefaults?: boolean;
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


/** A value /settings was asked for and what was stored instead. */
export interface ClampedSetting {
  setting: GuildSettingName;
  /** The role whose override was clamped; undefined for the server-wide value. */
  roleId?: string;
  asked: number;
  applied: number;
}

export interface GuildSettingsUpdate extends GuildSettings {
  /** Values that went past the operator's ceilings and were stored at the ceiling instead. */
  clamped: ClampedSetting[];
}

/**
 * Stores a server's settings. Values must be whole numbers (RangeError otherwise); those past the
 * operator's ceilings (or below the shortest period) are stored at the ceiling and listed in
 * `clamped`, so the front end can say so. A default model must be a model id (modelIdIssue;
 * JobParamsError otherwise); whether a worker offers it is not checked (workers come and go).
 */
export async function updateGuildSettings(farm: FarmContext, guildId: string, patch: GuildSettingsPatch): Promise<GuildSettingsUpdate> {
  const ranges = guildSettingRanges(farm.config.guildCeilings);
  const clamped: ClampedSetting[] = [];
  const clamp = <V extends number | null | undefined>(setting: GuildSettingName, v: V, roleId?: string): V => {
    if (v === undefined || v === null) return v;
    if (!Number.isInteger(v) || v < 0) throw new RangeError(`${SETTING_NAMES[setting]} must be a whole number of at least ${ranges[setting].min}`);
    const applied = Math.min(Math.max(v, ranges[setting].min), ranges[setting].max);
    if (applied !== v) clamped.push({ setting, ...(roleId !== undefined ? { roleId } : {}), asked: v, applied });
    return applied as V;
  };
  const modelIssue = patch.defaults?.model === undefined ? undefined : modelIdIssue(patch.defaults.model);
  if (modelIssue) throw new JobParamsError([modelIssue]);
  patch = {
    ...patch,
    refillGpuSeconds: clamp('refillGpuSeconds', patch.refillGpuSeconds),
    refillPeriodSeconds: clamp('refillPeriodSeconds', patch.refillPeriodSeconds),
    maxActiveJobs: clamp('maxActiveJobs', patch.maxActiveJobs),
    ...(patch.role?.override
      ? {
          role: {
            roleId: patch.role.roleId,
            override: defined({
              refillGpuSeconds: clamp('refillGpuSeconds', patch.role.override.refillGpuSeconds, patch.role.roleId),
              maxActiveJobs: clamp('maxActiveJobs', patch.role.override.maxActiveJobs, patch.role.roleId),
            }),
          },
        }
      : {}),
  };
  await farm.db.db.transaction(async (tx) => {
    await tx.insert(guilds).values({ id: guildId }).onConflictDoNothing();
    const set: Record<string, unknown> = { updatedAt: sql`now()` };
    if (patch.refillGpuSeconds !== undefined) set.refillGpuSeconds = patch.refillGpuSeconds;
    if (patch.refillPeriodSeconds !== undefined) set.refillPeriodSeconds = patch.refillPeriodSeconds;
    if (patch.maxActiveJobs !== undefined) set.maxActiveJobs = patch.maxActiveJobs;
    if (patch.defaults !== undefined) {
      const [row] = await tx.select({ settings: guilds.settings }).from(guilds).where(eq(guilds.id, guildId)).for('update');
      const current = (row?.settings ?? {}) as { defaults?: RenderDefaults };
      const merged = patch.defaults === null ? {} : { ...(patch.replaceDefaults ? {} : (current.defaults ?? {})), ...defined(patch.defaults) };
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
  return { ...(await getGuildSettings(farm, guildId)), clamped };
}

const SETTING_NAMES: Record<GuildSettingName, string> = { refillGpuSeconds: 'the refill (GPU-seconds)', refillPeriodSeconds: 'the refill period (seconds)', maxActiveJobs: 'the job limit' };
