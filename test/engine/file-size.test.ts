// One byte-size formatter: the engine's (engine/file-size.ts), which the farm re-exports
// (farm/text.ts) for its own messages and the bot's.
import { describe, expect, it } from 'vitest';
import { fileSize } from '../../engine/index.ts';
import { fileSize as farmFileSize } from '../../farm/index.ts';

const MiB = 1024 * 1024;

describe('fileSize', () => {
  it('bytes below 1 KiB, whole KiB rounded up below 1 MiB, MiB with at most one decimal above', () => {
    expect(fileSize(1)).toBe('1 byte');
    expect(fileSize(300)).toBe('300 bytes');
    expect(fileSize(1024)).toBe('1 KiB');
    expect(fileSize(1025)).toBe('2 KiB');
    expect(fileSize(640 * 1024)).toBe('640 KiB');
    expect(fileSize(MiB - 1)).toBe('1 MiB');
    expect(fileSize(1.5 * MiB)).toBe('1.5 MiB');
    expect(fileSize(12.34 * MiB)).toBe('12.3 MiB');
  });

  it('is the farm\'s formatter too: one rule, not two', () => {
    expect(farmFileSize).toBe(fileSize);
  });
});
