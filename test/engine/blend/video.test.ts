/**
 * engine/blend/video.ts: how many frames a movie gets (segmentFrameCounts, the one rule the farm's
 * movieFrames uses too) and a looping walk's video closing its loop, checked on real encodes.
 */
import { describe, expect, it } from 'vitest';
import { segmentFrameCounts, segmentsToVideo } from '../../../engine/blend/video.ts';
import { decodeVideoFrames, type RawImage } from '../../../engine/video/index.ts';

function grey(width: number, height: number, v: number): RawImage {
  return { data: new Uint8Array(width * height * 3).fill(v), width, height, channels: 3 };
}
const meanOf = (img: RawImage) => img.data.reduce((a, b) => a + b, 0) / img.data.length;

describe('segmentFrameCounts', () => {
  it('rounds the movie once, so its frames are fps x the sum of its durations', () => {
    // Per segment, 10.5 frames each rounded up made 22 frames (3.14 s) for 3 s.
    expect(segmentFrameCounts(7, [1.5, 1.5])).toEqual([11, 10]);
    expect(segmentFrameCounts(3, [2.5, 2.5]).reduce((a, b) => a + b)).toBe(15);
    expect(segmentFrameCounts(12, [1, 2])).toEqual([12, 24]);
    expect(segmentFrameCounts(10, [0.24, 0.24, 0.24, 0.24, 0.24]).reduce((a, b) => a + b)).toBe(12);
  });

  it('gives every segment at least its ends: two frames for the first, one of its own for a later one', () => {
    expect(segmentFrameCounts(1, [1])).toEqual([2]);
    expect(segmentFrameCounts(1, [0.4, 0.4, 3])).toEqual([2, 1, 1]);
    // Continuing a video, the first segment's first frame is the video's last, already shown.
    expect(segmentFrameCounts(1, [1], true)).toEqual([1]);
    expect(segmentFrameCounts(12, [2], true)).toEqual([24]);
  });
});

describe('segmentsToVideo', () => {
  it('writes as many frames as segmentFrameCounts says', async () => {
    const keyframes = [grey(32, 32, 20), grey(32, 32, 120), grey(32, 32, 220)];
    const video = await segmentsToVideo([{ keyframes: keyframes.slice(0, 2) }, { keyframes: keyframes.slice(1) }], { fps: 7, duration: [1.5, 1.5], format: 'webm' });
    expect(video.frames).toBe(21);
    expect(video.durationSeconds).toBeCloseTo(3, 2);
  });

  it('closes a looping walk: the step from the last frame back to the first is no bigger than the others', async () => {
    // A loop of four keyframes: 40 -> 100 -> 160 -> 100 -> (40 again). The way back from the last
    // keyframe to the first must be crossfaded like every other gap, not a jump.
    const levels = [40, 100, 160, 100];
    const keyframes = levels.map((v) => grey(32, 32, v));
    const fps = 16;
    const video = await segmentsToVideo([{ keyframes, loops: true }], { fps, duration: 2, format: 'webm' });
    expect(video.frames).toBe(32);
    const frames = await decodeVideoFrames(video.bytes, 32, 32);
    expect(frames).toHaveLength(32);
    const means = frames.map(meanOf);
    // The first frame is the first keyframe, and the last is not it again (the player shows it next).
    expect(means[0]).toBeCloseTo(40, -0.5);
    const steps = means.map((m, i) => Math.abs(means[(i + 1) % means.length] - m));
    const wrap = steps[steps.length - 1];
    const inside = Math.max(...steps.slice(0, -1));
    // 4 gaps of 60 over 32 frames: 7.5 a frame. Without the loop the last gap had no frames, and the
    // wrap was the whole 60 of it.
    expect(inside).toBeLessThan(12);
    expect(wrap).toBeLessThan(12);
    expect(wrap).toBeGreaterThan(3);
  });

  it('does not loop a walk that is not circular: it ends on its last keyframe', async () => {
    const keyframes = [grey(32, 32, 40), grey(32, 32, 160)];
    const video = await segmentsToVideo([{ keyframes }], { fps: 8, duration: 1, format: 'webm' });
    const frames = await decodeVideoFrames(video.bytes, 32, 32);
    expect(meanOf(frames[frames.length - 1])).toBeCloseTo(160, -0.5);
  });
});
