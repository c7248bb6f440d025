import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { loadConfig, ConfigError, redactedConfig, settings } from '../../config/index.ts';
import { envExample } from '../../scripts/write-env-example.ts';

describe('configuration', () => {
  it('uses the documented defaults when nothing is set', () => {
    const c = loadConfig({});
    expect(c.executionProvider).toBe('cpu');
    expect(c.deviceId).toBe(0);
    expect(c.dataDir).toBe('./data/pglite');
    expect(c.databaseUrl).toBeUndefined();
    expect(c.discordToken).toBeUndefined();
  });

  it('reports every bad value at once, one line each, naming the variable', () => {
    let err: unknown;
    try {
      loadConfig({ BLENDFARM_EP: 'tpu', BLENDFARM_DEVICE_ID: 'two', DATABASE_URL: 'mysql://x', DISCORD_GUILD_ID: '12' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const problems = (err as ConfigError).problems;
    expect(problems).toHaveLength(4);
    expect(problems.find((p) => p.startsWith('BLENDFARM_EP="tpu"'))).toMatch(/one of cpu, cuda, webgpu/);
    expect(problems.find((p) => p.startsWith('BLENDFARM_DEVICE_ID'))).toMatch(/whole number/);
    expect(problems.find((p) => p.startsWith('DISCORD_GUILD_ID'))).toMatch(/Discord id/);
    // A bad secret is named but never echoed.
    const db = problems.find((p) => p.startsWith('DATABASE_URL'))!;
    expect(db).toContain('(value hidden)');
    expect(db).not.toContain('mysql://x');
  });

  it('never shows secrets in the loggable copy', () => {
    const c = loadConfig({ DISCORD_TOKEN: 'abc.def.ghi', DATABASE_URL: 'postgres://u:pw@h/db' });
    const shown = JSON.stringify(redactedConfig(c));
    expect(shown).not.toContain('pw');
    expect(shown).not.toContain('abc.def');
    expect(redactedConfig(c).discordToken).toBe('set');
  });

  it('.env.example lists every setting, as generated from the settings table', () => {
    const file = readFileSync(new URL('../../.env.example', import.meta.url), 'utf8');
    expect(file).toBe(envExample());
    for (const spec of Object.values(settings)) expect(file).toContain(`\n${spec.env}=`);
  });
});
