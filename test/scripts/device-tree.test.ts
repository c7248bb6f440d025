/**
 * The working tree a GPU device call sends (bench/README "GPU run"): every `run` call carries the
 * whole tree (tracked files, and untracked ones git does not ignore) plus what it names, 64 MiB at
 * most, and the first call names the kit's part2 (36.0 MiB: the CUDA provider, which cannot be
 * split). A tree over TREE_BUDGET_MIB would make that call fail on the device, after the session has
 * paid minutes to start it: this test fails first, here. Fixtures are what grows it; keep them small.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

/** 64 MiB a call, less part2 (36.0 MiB), unpack.sh and a margin for the second call's dist/ and upscaler. */
const TREE_BUDGET_MIB = 27;
const ROOT = join(import.meta.dirname, '..', '..');
const isCheckout = existsSync(join(ROOT, '.git'));

describe.skipIf(!isCheckout)('the tree a device call sends', () => {
  it(`stays within ${TREE_BUDGET_MIB} MiB, so the kit's part2 fits beside it in one call`, () => {
    const list = (args: string[]) => execFileSync('git', ['ls-files', '-z', ...args], { cwd: ROOT, encoding: 'utf8', maxBuffer: 64 << 20 }).split('\0').filter(Boolean);
    // Untracked files here are the ones this checkout made (a test run's leftovers aside, they travel too).
    const files = [...new Set([...list([]), ...list(['--others', '--exclude-standard'])])].filter((f) => existsSync(join(ROOT, f)));
    const sizes = files.map((f) => ({ f, bytes: statSync(join(ROOT, f)).size }));
    const mib = sizes.reduce((sum, s) => sum + s.bytes, 0) / 2 ** 20;
    const largest = sizes.sort((a, b) => b.bytes - a.bytes).slice(0, 5).map((s) => `${s.f} ${(s.bytes / 2 ** 20).toFixed(2)} MiB`);
    expect(mib, `the tree is ${mib.toFixed(2)} MiB; largest files: ${largest.join(', ')}`).toBeLessThanOrEqual(TREE_BUDGET_MIB);
  });
});
