// BLENDFARM_DATA_DIR in a place PGlite cannot write fails start-up at once, naming the setting
// and what to do (it used to hang: Node's recursive mkdir loops forever under /proc).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const OPEN = `import { openDatabase } from ${JSON.stringify(path.join(ROOT, 'db/client.ts'))};
try { const db = await openDatabase({ url: '', dataDir: process.argv[1] }); console.log('opened'); await db.close(); }
catch (e) { console.error(e.message); process.exitCode = 1; }`;

/** Opens the PGlite database in `dir` in a child process (as `uid` when given); killed after 20 s. */
function openIn(dir: string, uid?: number): Promise<{ code: number | null; stderr: string; ms: number }> {
  const started = Date.now();
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', OPEN, dir], { cwd: ROOT, uid, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  return new Promise((resolve) =>
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr, ms: Date.now() - started });
    }),
  );
}

describe('BLENDFARM_DATA_DIR where PGlite cannot write', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'blendfarm-datadir-'));
  fs.chmodSync(tmp, 0o755);
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('a folder under /proc fails at once with the setting and what to do', async () => {
    const r = await openIn('/proc/blendfarm-x/pglite');
    expect(r.code).toBe(1);
    expect(r.ms).toBeLessThan(15_000);
    expect(r.stderr).toContain('BLENDFARM_DATA_DIR=/proc/blendfarm-x/pglite: PGlite cannot write there');
    expect(r.stderr).toContain('Set BLENDFARM_DATA_DIR to a folder this process may create and write to');
  }, 30_000);

  it('a read-only folder fails at once with the setting and what to do', async () => {
    const readOnly = path.join(tmp, 'read-only');
    fs.mkdirSync(readOnly, { mode: 0o555 });
    fs.chmodSync(readOnly, 0o555);
    // root may write anywhere: the child then runs as nobody (uid 65534), as an operator's service user would.
    const uid = process.getuid?.() === 0 ? 65534 : undefined;
    const r = await openIn(path.join(readOnly, 'pglite'), uid);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`BLENDFARM_DATA_DIR=${path.join(readOnly, 'pglite')}: PGlite cannot write there (EACCES)`);
  }, 30_000);
});
