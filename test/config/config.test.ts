import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, loadDotEnv, ConfigError, DOT_ENV_NODE, redactedConfig, settings } from '../../config/index.ts';
import { envExample } from '../../scripts/write-env-example.ts';
import { FFMPEG_LOOKUP, FFPROBE_LOOKUP } from '../../engine/video/ffmpeg-path.ts';

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

  it('refuses a folder setting that names a file, saying which and what to do', () => {
    const dir = mkdtempSync(join(tmpdir(), 'blendfarm-folders-'));
    try {
      const file = join(dir, 'not-a-folder');
      writeFileSync(file, 'x');
      let err: unknown;
      try {
        loadConfig({ BLENDFARM_DATA_DIR: file, BLENDFARM_SPOOL_DIR: file, BLENDFARM_ARTIFACT_DIR: file, BLENDFARM_MODEL_CACHE: file });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ConfigError);
      const problems = (err as ConfigError).problems;
      for (const name of ['BLENDFARM_DATA_DIR', 'BLENDFARM_SPOOL_DIR', 'BLENDFARM_ARTIFACT_DIR', 'BLENDFARM_MODEL_CACHE']) {
        expect(problems.find((p) => p.startsWith(`${name}=`))).toContain(`${JSON.stringify(file)} is a file, not a folder; give a folder (it is created when missing).`);
      }
      // Folders, missing ones (created on use), memory:// and off are fine.
      const c = loadConfig({ BLENDFARM_DATA_DIR: 'memory://', BLENDFARM_SPOOL_DIR: 'off', BLENDFARM_ARTIFACT_DIR: dir, BLENDFARM_MODEL_CACHE: join(dir, 'missing') });
      expect([c.dataDir, c.spoolDir, c.artifactDir, c.modelCache]).toEqual(['memory://', false, dir, join(dir, 'missing')]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
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

  describe('.env', () => {
    const withDotEnv = (text: string, body: (path: string) => void) => {
      const dir = mkdtempSync(join(tmpdir(), 'blendfarm-dotenv-'));
      try {
        writeFileSync(join(dir, '.env'), text);
        body(join(dir, '.env'));
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    };

    it('is read, with what the environment sets winning', () => {
      withDotEnv('BLENDFARM_TEST_DOTENV_A=from-file\nBLENDFARM_TEST_DOTENV_B=from-file\n', (path) => {
        process.env.BLENDFARM_TEST_DOTENV_B = 'from-env';
        try {
          loadDotEnv(path);
          expect([process.env.BLENDFARM_TEST_DOTENV_A, process.env.BLENDFARM_TEST_DOTENV_B]).toEqual(['from-file', 'from-env']);
        } finally {
          delete process.env.BLENDFARM_TEST_DOTENV_A;
          delete process.env.BLENDFARM_TEST_DOTENV_B;
        }
      });
    });

    it('on a Node that cannot read it, is a configuration error saying so, not silently ignored', () => {
      const proc = process as { loadEnvFile?: unknown };
      const loader = proc.loadEnvFile;
      proc.loadEnvFile = undefined;
      try {
        withDotEnv('BLENDFARM_TEST_DOTENV_A=x\n', (path) => {
          let err: unknown;
          try {
            loadDotEnv(path);
          } catch (e) {
            err = e;
          }
          expect(err).toBeInstanceOf(ConfigError);
          expect((err as ConfigError).problems).toEqual([
            `${path} is there, but Node ${process.version} cannot read it (process.loadEnvFile came in Node ${DOT_ENV_NODE}); install Node ${DOT_ENV_NODE} or later, or set the settings in the environment instead.`,
          ]);
          expect(process.env.BLENDFARM_TEST_DOTENV_A).toBeUndefined();
        });
        // No .env, nothing to read: fine on any Node.
        expect(() => loadDotEnv(join(tmpdir(), 'blendfarm-no-such-dotenv'))).not.toThrow();
      } finally {
        proc.loadEnvFile = loader;
      }
    });

    it('needs no Node newer than package.json asks for (every Node it admits reads .env)', () => {
      const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { engines: { node: string } };
      const least = /^>=(\d+)\.(\d+)$/.exec(pkg.engines.node);
      expect(least).not.toBeNull();
      const [major, minor] = DOT_ENV_NODE.split('.').map(Number);
      const [pkgMajor, pkgMinor] = [Number(least![1]), Number(least![2])];
      expect(pkgMajor > major || (pkgMajor === major && pkgMinor >= minor)).toBe(true);
    });
  });
});

describe('FFMPEG_PATH and FFPROBE_PATH: the engine reads them itself (it imports no configuration); the table documents its lookup', () => {
  it.each([
    ['ffmpegPath', FFMPEG_LOOKUP],
    ['ffprobePath', FFPROBE_LOOKUP],
  ] as const)('%s names the variable and the lookup order of engine/video/ffmpeg-path.ts', (key, lookup) => {
    expect(settings[key].env).toBe(lookup.envVar);
    expect(settings[key].help).toContain(`unset = ${lookup.packages.join(', then ')}, then ${lookup.command} on PATH`);
  });
});
