// `npm start`, `npm run worker`, `start:sharded` and `deploy-commands` take their settings from
// the environment: --help prints the usage (the settings read, where they are explained) and exits
// 0, any other argument exits 2, both before anything is opened or connected.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runTool } from '../helpers/cli.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'blendfarm-help-'));
const dataDir = path.join(tmp, 'pglite');

/** A process entry point with no database URL, its data folder in `tmp`, no Discord token and a closed Discord address. */
const run = (script: string, args: string[]) =>
  runTool(script, args, { env: { DATABASE_URL: '', BLENDFARM_DATA_DIR: dataDir, BLENDFARM_HTTP_PORT: 'off', BLENDFARM_RENDERER: 'farm/fake-renderer.ts', DISCORD_API_BASE: 'http://127.0.0.1:9/api', DISCORD_TOKEN: undefined }, timeoutMs: 20_000 });

afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe.each([
  ['npm start', 'apps/bot/main.ts', 'DISCORD_TOKEN'],
  ['npm run worker', 'apps/worker/main.ts', 'BLENDFARM_WORKER_CONCURRENCY'],
  ['npm run start:sharded', 'apps/bot/shards.ts', 'BLENDFARM_SHARDS'],
  ['npm run deploy-commands', 'apps/bot/deploy-commands.ts', 'DISCORD_GUILD_ID'],
])('%s', (command, script, setting) => {
  it('--help prints its usage and settings and exits 0 without opening anything', async () => {
    const r = await run(script, ['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`Usage: ${command}`);
    expect(r.stdout).toContain(setting);
    expect(r.stdout).toContain('.env.example');
    expect(r.stderr).toBe('');
    expect(fs.existsSync(dataDir)).toBe(false);
  }, 30_000);

  it('an unknown argument exits 2 naming it', async () => {
    const r = await run(script, ['--bogus']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`error: ${command} takes no arguments`);
    expect(r.stderr).toContain('"--bogus"');
    expect(r.stderr).toContain(`${command} -- --help`);
    expect(fs.existsSync(dataDir)).toBe(false);
  }, 30_000);
});
