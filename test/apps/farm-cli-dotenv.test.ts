/**
 * `npm run farm` as an operator runs it, next to the `.env` that `npm start` and `npm run worker`
 * read (README "Configuration": copy .env.example to .env): it reads the same settings, so it
 * talks to the same farm, never to a fresh embedded database of its own.
 */
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { settings } from '../../config/index.ts';
import { runTool } from '../helpers/cli.ts';
import { useTempDir } from '../helpers/temp-dir.ts';

let dir: string;
useTempDir('blendfarm-farm-dotenv-', (d) => (dir = d));

/** The farm CLI in `dir`, with none of the settings in its environment (only `.env` gives them). */
function farm(args: string[]) {
  return runTool('apps/farm-cli/main.ts', args, { cwd: dir, env: Object.fromEntries(Object.values(settings).map((spec) => [spec.env, undefined])), timeoutMs: 60_000 });
}

describe('npm run farm reads .env', () => {
  it('uses the database .env names', async () => {
    await writeFile(join(dir, '.env'), 'BLENDFARM_DATA_DIR=memory://\n');
    const r = await farm(['status']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('Database: PGlite (in memory)');
    // Not the default folder: no database of its own was made here.
    expect(existsSync(join(dir, 'data', 'pglite'))).toBe(false);
  });

  it('checks the settings in .env like every other process', async () => {
    await writeFile(join(dir, '.env'), 'BLENDFARM_DATA_DIR=memory://\nBLENDFARM_EP=tpu\n');
    const r = await farm(['status']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('BLENDFARM_EP="tpu" must be one of cpu, cuda, webgpu');
  });
});
