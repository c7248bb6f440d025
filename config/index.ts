import { existsSync } from 'node:fs';
import { settings, SettingError, type SettingKey, type Settings, type SettingSpec } from './settings.ts';

export { DEFAULT_MODEL_ID, ID_CHARACTERS, MAX_DEVICE_ID, MAX_MODEL_ID_LENGTH, MAX_UPSCALER_ID_LENGTH, settings } from './settings.ts';

type ValueOf<K extends SettingKey> = Settings[K] extends SettingSpec<infer T> ? T : never;

/** Parsed configuration: a setting is `undefined` when unset and it has no default. */
export type Config = { [K in SettingKey]: ValueOf<K> | undefined };

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/**
 * Reads and validates every setting. All bad values are reported together, one clear line each,
 * naming the variable and what it must be; secret values are never echoed back.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const problems: string[] = [];
  const out: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(settings) as [SettingKey, SettingSpec<unknown>][]) {
    const raw = env[spec.env];
    const value = raw === undefined || raw.trim() === '' ? spec.example : raw;
    if (value === undefined || value === '') {
      out[key] = undefined;
      continue;
    }
    try {
      out[key] = spec.parse(value);
    } catch (err) {
      const why = err instanceof SettingError ? err.message : String(err);
      const shown = spec.secret ? '(value hidden)' : JSON.stringify(value);
      problems.push(`${spec.env}=${shown} ${why}. ${spec.help}.`);
    }
  }
  if (problems.length) throw new ConfigError(problems);
  return out as Config;
}

/**
 * One setting from the environment, or its default (the example); undefined when unset without a
 * default. A bad value throws the same ConfigError line as loadConfig.
 */
export function readSetting<K extends SettingKey>(key: K, env: NodeJS.ProcessEnv = process.env): ValueOf<K> | undefined {
  const spec = settings[key] as SettingSpec<unknown>;
  const raw = env[spec.env];
  const value = raw === undefined || raw.trim() === '' ? spec.example : raw;
  if (value === undefined || value === '') return undefined;
  try {
    return spec.parse(value) as ValueOf<K>;
  } catch (err) {
    const why = err instanceof SettingError ? err.message : String(err);
    throw new ConfigError([`${spec.env}=${spec.secret ? '(value hidden)' : JSON.stringify(value)} ${why}. ${spec.help}.`]);
  }
}

/** The Node release that reads `.env` files (process.loadEnvFile): package.json's engines. */
export const DOT_ENV_NODE = '20.12';

/**
 * Loads `.env` from the working directory when there is one (variables already set in the
 * environment win). A Node without process.loadEnvFile (before DOT_ENV_NODE) cannot read it: that
 * is a ConfigError saying so, never a `.env` silently ignored.
 */
export function loadDotEnv(path = '.env'): void {
  if (!existsSync(path)) return;
  const load = (process as { loadEnvFile?: (p: string) => void }).loadEnvFile;
  if (!load) {
    throw new ConfigError([
      `${path} is there, but Node ${process.version} cannot read it (process.loadEnvFile came in Node ${DOT_ENV_NODE}); install Node ${DOT_ENV_NODE} or later, or set the settings in the environment instead.`,
    ]);
  }
  load(path);
}

/** A copy of the configuration that is safe to log: secrets replaced by "set"/"unset". */
export function redactedConfig(config: Config): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(settings) as [SettingKey, SettingSpec<unknown>][]) {
    const v = config[key];
    out[key] = spec.secret ? (v === undefined ? 'unset' : 'set') : v;
  }
  return out;
}
