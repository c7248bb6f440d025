/** Starting the bot without what it needs: one clear explanation and a non-zero exit. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { ROOT, TSX } from '../../helpers/cli.ts';
import { type FakeDiscord, startFakeDiscord } from '../../fake-discord/index.ts';


function run(script: string, env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', TSX, join(ROOT, script)], { cwd: tmpdir(), env: { ...process.env, DISCORD_TOKEN: '', DATABASE_URL: '', ...env }, timeout: 60_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

describe('npm start / npm run deploy-commands without a token', () => {
  it('explains how to create a bot application and exits non-zero', async () => {
    for (const script of ['apps/bot/main.ts', 'apps/bot/deploy-commands.ts']) {
      const r = await run(script, {});
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/DISCORD_TOKEN is not set/);
      expect(r.stderr).toMatch(/discord\.com\/developers\/applications/);
      expect(r.stderr).toMatch(/npm run deploy-commands/);
    }
  });

  it('names every bad setting at start-up, without echoing secrets', async () => {
    const r = await run('apps/bot/main.ts', { DISCORD_TOKEN: 'not-a-token', BLENDFARM_MAX_ATTEMPTS: 'zero' });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/DISCORD_TOKEN=\(value hidden\) does not look like a bot token/);
    expect(r.stderr).toMatch(/BLENDFARM_MAX_ATTEMPTS="zero" must be a whole number of at least 1/);
    expect(r.stderr).not.toContain('not-a-token');
  });
});

describe('npm start when it cannot log in to Discord', () => {
  // Nothing but the login can fail: an in-memory database, no HTTP server, no worker.
  const QUIET = { BLENDFARM_DATA_DIR: 'memory://', BLENDFARM_HTTP_PORT: 'off', BLENDFARM_LOCAL_WORKERS: '0', DEBUG: '' };
  let fake: FakeDiscord;
  beforeAll(async () => {
    fake = await startFakeDiscord();
  });
  afterAll(() => fake?.close());

  it('says in one line that Discord refused the token, and what to do', async () => {
    const r = await run('apps/bot/main.ts', { ...QUIET, DISCORD_TOKEN: 'not.the.token', DISCORD_API_BASE: fake.restBase });
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toEqual([
      `error: the Discord API at ${fake.restBase} refused DISCORD_TOKEN (401 Unauthorized): copy the bot's token again from the developer portal ("Bot" page) into DISCORD_TOKEN.`,
    ]);
    expect(r.stdout + r.stderr).not.toContain('not.the.token');
  });

  it('says in one line that the API cannot be reached, and what to check', async () => {
    const r = await run('apps/bot/main.ts', { ...QUIET, DISCORD_TOKEN: 'MTAx.abcdef.ghijklmnop', DISCORD_API_BASE: 'http://127.0.0.1:1/api' });
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toEqual([
      "error: could not reach the Discord API at http://127.0.0.1:1/api (ECONNREFUSED): check DISCORD_API_BASE (unset = Discord's own) and that the API is reachable from here.",
    ]);
  });
});
