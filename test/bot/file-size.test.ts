// Byte sizes in bot messages: one formatter (bot/format.ts fileSize), so the same upload limit
// reads the same in the delivery notice, its log line and the upscale line.
import { describe, expect, it } from 'vitest';
import { DEFAULT_UPLOAD_LIMIT, TooLargeForServer } from '../../bot/delivery.ts';
import { fileSize, upscaleText } from '../../bot/format.ts';
import type { Job } from '../../farm/index.ts';

const MiB = 1048576;

describe('fileSize', () => {
  it('MiB with at most one decimal from 1 MiB up, whole KiB (rounded up) below', () => {
    expect(fileSize(10 * MiB)).toBe('10 MiB');
    expect(fileSize(1.5 * MiB)).toBe('1.5 MiB');
    expect(fileSize(12.34 * MiB)).toBe('12.3 MiB');
    expect(fileSize(640 * 1024)).toBe('640 KiB');
    expect(fileSize(20_000)).toBe('20 KiB');
    expect(fileSize(MiB - 1)).toBe('1 MiB');
  });
});

describe('the same upload limit in every message', () => {
  it('the not-attached notice and the upscale line both say 10 MiB', () => {
    const notice = new TooLargeForServer({ sizeBytes: 12.34 * MiB, format: 'mp4' }, DEFAULT_UPLOAD_LIMIT, 'it could not be re-encoded smaller').message;
    expect(notice).toContain('The video is 12.3 MiB, more than the 10 MiB this server accepts for an upload');
    const upscale = upscaleText({ kind: 'upscale', params: { maxBytes: DEFAULT_UPLOAD_LIMIT } } as Pick<Job, 'kind' | 'params'>, { upscaler: 'esrgan-slim', scale: 3, reducedFrom: 4 });
    expect(upscale).toBe("Upscaled with esrgan-slim: 4× asked, only 3× fits Discord's 10 MiB upload limit");
  });
});
