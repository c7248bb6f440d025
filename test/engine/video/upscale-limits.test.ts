/**
 * upscaleVideoIssue: a video to upscale is held to the picture pixel limit per frame and to
 * MAX_UPSCALED_VIDEO_PIXELS in all, from its probe, with the numbers and what to do.
 */
import { describe, expect, it } from 'vitest';
import { IMAGE_INPUT_LIMITS, MAX_UPSCALED_VIDEO_PIXELS, upscaleVideoIssue } from '../../../engine/index.ts';

const video = (width: number, height: number, frames: number, fps = 24) => ({ width, height, frames, fps, durationSeconds: frames / fps });

describe('upscaleVideoIssue', () => {
  it('takes a frame at the picture pixel limit and refuses one pixel row more, saying how wide a frame fits', () => {
    expect(IMAGE_INPUT_LIMITS.maxPixels).toBe(40_000_000);
    expect(upscaleVideoIssue('at.mp4', video(8000, 5000, 1), 2)).toBeUndefined();
    const issue = upscaleVideoIssue('big.mp4', video(8000, 5008, 2), 2);
    expect(issue).toBe(
      'big.mp4 has frames of 8000x5008 (40.1 megapixels), more than the 40-megapixel limit of a picture to upscale; shrink it to at most 7992 pixels wide first, e.g. ffmpeg -i big.mp4 -vf scale=7992:-2 smaller.mp4',
    );
    // The width it names fits once ffmpeg rounds the height up to an even number (scale=W:-2).
    for (const [w, h] of [[8000, 5008], [12000, 9000], [4097, 9999], [65535, 999]]) {
      const fit = Number(/scale=(\d+):-2/.exec(upscaleVideoIssue('x.mp4', video(w, h, 1), 2)!)![1]);
      expect(fit * 2 * Math.ceil((h * fit) / w / 2), `${w}x${h}`).toBeLessThanOrEqual(IMAGE_INPUT_LIMITS.maxPixels);
      expect(fit % 2).toBe(0);
    }
  });

  it('takes output up to MAX_UPSCALED_VIDEO_PIXELS and refuses one frame more, saying how many frames fit', () => {
    expect(MAX_UPSCALED_VIDEO_PIXELS).toBe(2_000_000_000);
    // 250x250 at 4x: 1 000 000 pixels a frame, 2000 frames exactly at the limit.
    expect(upscaleVideoIssue('in.mp4', video(250, 250, 2000), 4)).toBeUndefined();
    expect(upscaleVideoIssue('in.mp4', video(250, 250, 2001), 4)).toBe(
      'in.mp4 upscaled 4x makes 2001 frames of 1000x1000, 2.001 gigapixels in all, more than the 2-gigapixel limit; at this size and scale 2000 frames fit: upscale a part (e.g. ffmpeg -i in.mp4 -frames:v 2000 part.mp4), at a smaller scale, or shrink it first',
    );
    // A 4K second at 4x (the hours-long run); at 2x it fits.
    expect(upscaleVideoIssue('4k.mp4', video(3840, 2160, 24), 4)).toContain('4k.mp4 upscaled 4x makes 24 frames of 15360x8640, 3.185 gigapixels in all');
    expect(upscaleVideoIssue('4k.mp4', video(3840, 2160, 24), 2)).toBeUndefined();
  });

  it('says when not even one frame fits, and counts frames from duration x fps when the probe has no count', () => {
    expect(upscaleVideoIssue('wide.mp4', video(7000, 5000, 1), 8)).toBe(
      'wide.mp4 upscaled 8x makes 1 frame of 56000x40000, 2.24 gigapixels in all, more than the 2-gigapixel limit (one frame is 2.24 gigapixels); upscale it at a smaller scale, or shrink it first (e.g. ffmpeg -i wide.mp4 -vf scale=iw/2:-2 smaller.mp4)',
    );
    expect(upscaleVideoIssue('nocount.webm', { width: 250, height: 250, frames: 0, fps: 25, durationSeconds: 100 }, 4)).toContain('makes 2500 frames of 1000x1000');
  });
});
