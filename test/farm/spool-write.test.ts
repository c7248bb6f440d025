// The spool's atomic writes (farm/spool.ts): a write that fails part-way (a full disk: ENOSPC from
// the write or the flush) leaves no temporary file behind, so a full spool does not stay full.
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Spool } from '../../farm/spool.ts';
import { useTempDir } from '../helpers/temp-dir.ts';

const ENTRY = { jobId: 7, attempt: 1, leaseToken: '00000000-0000-0000-0000-000000000000', workerId: 'w', format: 'mp4', mime: 'video/mp4', meta: {}, gpuSeconds: 1, jobDigest: 'd' };

/** fs.open as it is, but the handle's `step` writes half the data (when writing) and then fails with ENOSPC. */
function failingHandles(step: 'writeFile' | 'sync'): void {
  const open = fsp.open.bind(fsp);
  vi.spyOn(fsp, 'open').mockImplementation(async (...args: Parameters<typeof fsp.open>) => {
    const handle = await open(...args);
    const enospc = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    if (step === 'writeFile') {
      handle.writeFile = async (data: Parameters<typeof handle.writeFile>[0]) => {
        const bytes = typeof data === 'string' ? Buffer.from(data) : Buffer.from(data as Uint8Array);
        await handle.write(bytes.subarray(0, Math.ceil(bytes.byteLength / 2)));
        throw enospc;
      };
    } else {
      handle.sync = async () => {
        throw enospc;
      };
    }
    return handle;
  });
}

describe('Spool.put on a full disk', () => {
  let root = '';
  useTempDir('spool-write-', (dir) => (root = dir));
  afterEach(() => vi.restoreAllMocks());

  for (const step of ['writeFile', 'sync'] as const) {
    it(`leaves no file behind when ${step} fails (ENOSPC), and writes again once there is room`, async () => {
      const dir = path.join(root, step);
      const spool = new Spool(dir);
      failingHandles(step);
      await expect(spool.put(ENTRY, new Uint8Array(64 * 1024).fill(1))).rejects.toThrow(/ENOSPC/);
      expect(fs.readdirSync(dir)).toEqual([]);
      vi.restoreAllMocks();
      const name = await spool.put(ENTRY, new Uint8Array(16).fill(2));
      expect(fs.readdirSync(dir).sort()).toEqual([`${name}.json`, `${name}.video`].sort());
    });
  }
});
