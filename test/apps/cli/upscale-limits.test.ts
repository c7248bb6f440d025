/**
 * npm run upscale holds a video to the picture rules, before any model loads: frames within the
 * picture pixel limit (IMAGE_INPUT_LIMITS.maxPixels) and the whole output within the engine's
 * MAX_UPSCALED_VIDEO_PIXELS. Before, a video was only probed: a 4K video at 4x ran for hours
 * with only the ETA shown. Each refusal is tried with x4-diffusion and a weights folder that is
 * not there (a model load would fail with another error) and with the default esrgan-slim (the
 * whole of stderr is the one line: no progress bar, nothing from a model).
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { encodeVideo, probeVideo, resolveFfmpeg, type RawImage } from '../../../engine/index.ts';
import { runCli } from '../../helpers/cli.ts';
import { useTempDir } from '../../helpers/temp-dir.ts';

const run = promisify(execFile);
let dir: string;
useTempDir('blendfarm-upscale-limits-', (d) => (dir = d));

const refused = async (args: string[]) => {
  const r = await runCli('upscale.ts', args, { cwd: dir });
  return [r.code, r.stderr.trim()];
};

/** A plain-colour H.264 video of `frames` frames of width x height in the test folder (cheap at any size). */
async function colourVideo(name: string, width: number, height: number, frames: number): Promise<void> {
  await run(resolveFfmpeg().path, ['-v', 'error', '-f', 'lavfi', '-i', `color=c=0x336699:s=${width}x${height}:r=24`, '-frames:v', String(frames), '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', join(dir, name)]);
}

describe('npm run upscale: a video is held to the limits before the model loads', () => {
  it('a video whose frames are over the picture pixel limit is refused in one line, with the width that fits', async () => {
    await colourVideo('big.mp4', 8000, 5008, 2);
    const line =
      'error: big.mp4 has frames of 8000x5008 (40.1 megapixels), more than the 40-megapixel limit of a picture to upscale; shrink it to at most 7992 pixels wide first, e.g. ffmpeg -i big.mp4 -vf scale=7992:-2 smaller.mp4';
    expect(await refused(['big.mp4', '--model', 'x4-diffusion', '--weights', 'no-such-model-folder'])).toEqual([2, line]);
    expect(await refused(['big.mp4', '--out', 'big-up.mp4'])).toEqual([2, line]);
  }, 60_000);

  it('a 4K second at 4x (3.2 gigapixels out) is refused in one line, saying how many frames fit', async () => {
    await colourVideo('4k.mp4', 3840, 2160, 24);
    const line =
      'error: 4k.mp4 upscaled 4x makes 24 frames of 15360x8640, 3.185 gigapixels in all, more than the 2-gigapixel limit; at this size and scale 15 frames fit: upscale a part (e.g. ffmpeg -i 4k.mp4 -frames:v 15 part.mp4), at a smaller scale, or shrink it first';
    expect(await refused(['4k.mp4', '--model', 'x4-diffusion', '--weights', 'no-such-model-folder'])).toEqual([2, line]);
    expect(await refused(['4k.mp4', '--scale', '4', '--out', '4k-up.mp4'])).toEqual([2, line]);
  }, 60_000);

  it('a video within the limits still upscales, every frame', async () => {
    const frames: RawImage[] = [];
    for (let k = 0; k < 3; k++) frames.push({ data: new Uint8Array(24 * 16 * 3).fill(60 * k), width: 24, height: 16, channels: 3 });
    await encodeVideo(frames, { out: join(dir, 'small.mp4'), format: 'mp4', fps: 8, width: 24, height: 16 });
    const r = await runCli('upscale.ts', ['small.mp4', '--out', 'small-up.mp4', '--scale', '4', '--json'], { cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout.trim())).toMatchObject({ kind: 'video', width: 96, height: 64, frames: 3 });
    const probe = await probeVideo(join(dir, 'small-up.mp4'));
    expect([probe.width, probe.height, probe.frames]).toEqual([96, 64, 3]);
  }, 60_000);
});
