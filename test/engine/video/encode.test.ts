// VideoTooLargeError says its sizes with the engine's one formatter (fileSize), as the farm and
// the bot say theirs; exact bytes when the two sizes would read the same.
import { describe, expect, it } from 'vitest';
import { VideoTooLargeError } from '../../../engine/index.ts';

const MiB = 1024 * 1024;
const attempt = (sizeBytes: number) => ({ width: 320, height: 240, sizeBytes });

describe('VideoTooLargeError', () => {
  it('names the limit and the smallest attempt as fileSize writes them', () => {
    const error = new VideoTooLargeError('mp4', 10 * MiB, 12.34 * MiB, [attempt(12.34 * MiB)]);
    expect(error.message).toBe('Could not fit the mp4 under 10 MiB: the smallest attempt was 12.3 MiB at 320x240; use fewer frames, a smaller size or another format.');
  });

  it('gives exact bytes when both would read the same', () => {
    const error = new VideoTooLargeError('gif', 10 * MiB, 10 * MiB + 4000, [attempt(10 * MiB + 4000)]);
    expect(error.message).toBe(`Could not fit the gif under ${10 * MiB} bytes: the smallest attempt was ${10 * MiB + 4000} bytes at 320x240; use fewer frames, a smaller size or another format.`);
  });
});
