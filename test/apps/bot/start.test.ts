/** Starting the bot without what it needs: one clear explanation and a non-zero exit. */
import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { ROOT, TSX } from '../../helpers/cli.ts';


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
