// The farm's defaults are set once, in DEFAULT_FARM_CONFIG (farm/config.ts; the policy's in
// policy/options.ts, the guild ceilings in limits.ts). Operators read them elsewhere: each
// setting's help line (config/settings.ts: .env.example and error messages) and farm/README.md's
// Configuration table. These checks keep both restatements equal to the value the farm uses.
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { settings } from '../../config/index.ts';
import { DEFAULT_FARM_CONFIG, DEFAULT_SHUTDOWN_GRACE_SECONDS, type FarmSettings, farmConfigFrom } from '../../farm/config.ts';

type Key = keyof FarmSettings;

/** Every numeric leaf of a config, by its dotted path. */
function leaves(value: unknown, prefix = ''): Map<string, unknown> {
  const out = new Map<string, unknown>();
  if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) for (const [p, leaf] of leaves(v, prefix ? `${prefix}.${k}` : k)) out.set(p, leaf);
  } else out.set(prefix, value);
  return out;
}

/** The FarmConfig path a setting feeds, found by setting it alone and seeing what changes (no mapping written here). */
function pathOf(key: Key): string {
  const base = leaves(DEFAULT_FARM_CONFIG);
  for (const probe of [12_345.5, 0.5]) {
    let built;
    try {
      built = leaves(farmConfigFrom({ [key]: probe } as Partial<FarmSettings>));
    } catch {
      continue; // the heartbeat must stay below the lease
    }
    const changed = [...built].filter(([p, v]) => base.get(p) !== v).map(([p]) => p);
    expect(changed, `setting ${key}`).toHaveLength(1);
    return changed[0];
  }
  throw new Error(`no probe value was accepted for ${key}`);
}

/** The farm's numeric settings, each with the default the farm uses. */
function numericFarmSettings(): Array<{ key: Key; env: string; help: string; value: number }> {
  const defaults = leaves(DEFAULT_FARM_CONFIG);
  const keys = (Object.keys(settings) as Array<keyof typeof settings>).filter((k): k is Key & keyof typeof settings => {
    try {
      return typeof pathOf(k as Key) === 'string';
    } catch {
      return false;
    }
  });
  return keys
    .map((key) => ({ key, env: settings[key].env, help: settings[key].help, value: defaults.get(pathOf(key)) }))
    .filter((s): s is { key: Key; env: string; help: string; value: number } => typeof s.value === 'number');
}

const README = fs.readFileSync(new URL('../../farm/README.md', import.meta.url), 'utf8');

/** farm/README.md's Configuration table: variable name → the default cell's value for it ("30 / 10" spread over "`A` / `_B`"). */
function readmeDefaults(): Map<string, string> {
  const envs = Object.values(settings).map((s) => s.env);
  const section = README.slice(README.indexOf('## Configuration'));
  const out = new Map<string, string>();
  for (const line of section.split('\n').slice(1)) {
    if (line.startsWith('## ')) break;
    if (!line.startsWith('| `')) continue;
    const [names, defaults] = line.slice(1).split('|').map((c) => c.trim());
    const listed = [...names.matchAll(/`([A-Z_]+)`/g)].map((m) => m[1]);
    const values = defaults.split(/ \/ |, /).map((v) => v.trim());
    if (listed.length !== values.length) continue;
    listed.forEach((name, i) => {
      // `_B` after `BLENDFARM_A_X`: the setting ending in _B that shares most of A's name.
      const full = name.startsWith('_')
        ? envs.filter((e) => e.endsWith(name)).sort((a, b) => commonPrefix(b, listed[0]) - commonPrefix(a, listed[0]))[0]
        : name;
      if (full) out.set(full, values[i]);
    });
  }
  return out;
}

function commonPrefix(a: string, b: string): number {
  let i = 0;
  while (i < a.length && a[i] === b[i]) i++;
  return i;
}

describe('the farm defaults, written once', () => {
  const farmSettings = numericFarmSettings();

  it('covers the farm settings (lease, budget, cost, guild ceilings, retention, …)', () => {
    expect(farmSettings.map((s) => s.env)).toEqual(expect.arrayContaining(['BLENDFARM_LEASE_SECONDS', 'BLENDFARM_REFILL_GPU_SECONDS', 'BLENDFARM_GPU_SECONDS_PER_UPSCALED_MEGAPIXEL', 'BLENDFARM_GUILD_MAX_ACTIVE_JOBS', 'BLENDFARM_RETENTION_JOB_DAYS', 'BLENDFARM_QUEUE_TIMEOUT_SECONDS']));
    expect(farmSettings.length).toBeGreaterThanOrEqual(20);
  });

  it("each setting's help line names the default the farm uses", () => {
    const wrong = farmSettings
      .map((s) => ({ env: s.env, value: s.value, help: /\(default ([\d.]+)[;)]/.exec(s.help)?.[1] }))
      .filter((s) => s.help === undefined || Number(s.help) !== s.value);
    expect(wrong).toEqual([]);
  });

  it('the shutdown grace (a FarmWorker.stop default, not a FarmConfig field) is stated as DEFAULT_SHUTDOWN_GRACE_SECONDS in its help and the README', () => {
    expect(/\(default ([\d.]+)\)/.exec(settings.shutdownGraceSeconds.help)?.[1]).toBe(String(DEFAULT_SHUTDOWN_GRACE_SECONDS));
    expect(readmeDefaults().get('BLENDFARM_SHUTDOWN_GRACE_SECONDS')).toBe(String(DEFAULT_SHUTDOWN_GRACE_SECONDS));
  });

  it("farm/README.md's Configuration table names the default the farm uses", () => {
    const documented = readmeDefaults();
    const wrong = farmSettings
      .map((s) => ({ env: s.env, value: s.value, readme: documented.get(s.env) }))
      .filter((s) => s.readme === undefined || Number(s.readme) !== s.value);
    expect(wrong).toEqual([]);
  });
});
