// A worker probes its spool folder at start (farm/worker.ts, Spool.probe): a folder it cannot write
// is one warning naming the folder and what it costs, found before the first finished job; the
// worker starts all the same. A writable folder is left as it was.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { FarmDb } from '../../db/client.ts';
import { FakeRenderer } from '../../farm/fake-renderer.ts';
import { FarmWorker } from '../../farm/worker.ts';
import { farmContext } from '../helpers/db.ts';
import { useTestFarm } from '../helpers/farm.ts';
import { useTempDir } from '../helpers/temp-dir.ts';

describe('the spool probe at start (pglite)', () => {
  let db: FarmDb;
  let root = '';
  useTestFarm('pglite', {}, (t) => {
    db = t.db;
  });
  useTempDir('spool-probe-', (dir) => (root = dir));

  async function startWith(spoolDir: string, id: string): Promise<{ worker: FarmWorker; lines: Array<{ line: string; level?: string }> }> {
    const lines: Array<{ line: string; level?: string }> = [];
    const worker = new FarmWorker({ farm: farmContext(db, { spoolDir }), renderer: new FakeRenderer({ models: [`probe-${id}`] }), id, log: (line, level) => lines.push({ line, level }) });
    await worker.start();
    return { worker, lines };
  }

  it('warns at start, naming the folder and the consequence, when the folder cannot be written; the worker runs', async () => {
    // A file where the folder should be: mkdir fails as on a read-only mount, also for root.
    const file = path.join(root, 'not-a-folder');
    fs.writeFileSync(file, 'x');
    const spoolDir = path.join(file, 'spool');
    const { worker, lines } = await startWith(spoolDir, 'bad');
    try {
      const warning = lines.find((l) => l.line.includes(`spool folder ${spoolDir} cannot be written`));
      expect(warning, lines.map((l) => l.line).join('\n')).toBeDefined();
      expect(warning!.level).toBe('warn');
      expect(warning!.line).toMatch(/kept in memory only/);
      expect(warning!.line).toMatch(/database outage at the end of a render/);
      expect(lines.some((l) => l.line.startsWith('started:'))).toBe(true);
    } finally {
      await worker.stop('release', 0);
    }
  });

  it('says nothing and leaves no file behind when the folder is writable', async () => {
    const spoolDir = path.join(root, 'good', 'spool');
    const { worker, lines } = await startWith(spoolDir, 'good');
    try {
      expect(lines.filter((l) => l.line.includes('cannot be written'))).toEqual([]);
      expect(fs.readdirSync(spoolDir)).toEqual([]);
    } finally {
      await worker.stop('release', 0);
    }
  });
});
