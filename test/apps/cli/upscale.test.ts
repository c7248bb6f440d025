/**
 * npm run upscale as a user runs it: a child process on real files. Image in gives image out, video
 * in gives video out (every frame, 2x), --json prints a summary, x4-diffusion runs with its test model.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { CRF_RANGE, encodeVideo, IMAGE_INPUT_FORMATS, probeVideo, resolveFfprobe, VIDEO_FORMATS, type RawImage } from '../../../engine/index.ts';
import { ensureX4TestModel } from '../../../models/x4-upscaler-test.ts';
import { ROOT, runCli, TSX } from '../../helpers/cli.ts';
import { useTempDir } from '../../helpers/temp-dir.ts';

const CROP = join(ROOT, 'test/fixtures/photos/chelsea-crop.png');
const cli = (args: string[]) => runCli('upscale.ts', args, { cwd: dir });

let dir: string;
useTempDir('blendfarm-upscale-cli-', (d) => (dir = d));

describe('npm run upscale', () => {
  it('turns an image into a 2x image with the default model and prints a JSON summary', async () => {
    const out = join(dir, 'big.png');
    const r = await cli([CROP, '--out', out, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const summary = JSON.parse(r.stdout.trim());
    expect(summary).toMatchObject({ kind: 'image', model: 'esrgan-slim', scale: 2, width: 256, height: 192, frames: 1, ep: 'cpu' });
    const meta = await sharp(out).metadata();
    expect([meta.width, meta.height, meta.format]).toEqual([256, 192, 'png']);
  });

  it('turns a video into a 3x video, every frame, with a progress bar on stderr', async () => {
    const frames: RawImage[] = [];
    for (let k = 0; k < 4; k++) {
      const { data } = await sharp(CROP).extract({ left: 10 + 3 * k, top: 10, width: 32, height: 24 }).raw().toBuffer({ resolveWithObject: true });
      frames.push({ data: new Uint8Array(data), width: 32, height: 24, channels: 3 });
    }
    const input = join(dir, 'small.mp4');
    await encodeVideo(frames, { out: input, format: 'mp4', fps: 8, width: 32, height: 24 });
    const out = join(dir, 'big.mp4');
    const r = await cli([input, '--out', out, '--scale', '3', '--model', 'esrgan-medium']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/big\.mp4: video 96x72, 4 frame\(s\), esrgan-medium 3x/);
    expect(r.stderr).toMatch(/upscaling \[#+\] 4\/4/);
    const probe = await probeVideo(out);
    expect([probe.width, probe.height, probe.frames]).toEqual([96, 72, 4]);
  });

  it('probes the input video once (it probed it twice: once for the error by file name, once in the engine)', async () => {
    const frames: RawImage[] = [];
    for (let k = 0; k < 2; k++) {
      const { data } = await sharp(CROP).extract({ left: 10 + 5 * k, top: 10, width: 16, height: 16 }).raw().toBuffer({ resolveWithObject: true });
      frames.push({ data: new Uint8Array(data), width: 16, height: 16, channels: 3 });
    }
    const input = join(dir, 'probe-once.mp4');
    await encodeVideo(frames, { out: input, format: 'mp4', fps: 8, width: 16, height: 16 });
    // An ffprobe that writes one line per run to a log, then runs the real one.
    const log = join(dir, 'ffprobe.log');
    const wrapper = join(dir, 'ffprobe-logged');
    await writeFile(wrapper, `#!/bin/sh\necho run >> '${log}'\nexec '${resolveFfprobe().path}' "$@"\n`);
    await chmod(wrapper, 0o755);
    const out = join(dir, 'probe-once-up.mp4');
    const r = await runCli('upscale.ts', [input, '--out', out, '--json'], { cwd: dir, env: { FFPROBE_PATH: wrapper } });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout.trim())).toMatchObject({ kind: 'video', width: 32, height: 32, frames: 2, fps: 8 });
    expect((await readFile(log, 'utf8')).trim().split('\n')).toEqual(['run']);
  });

  it('checks --crf against the format written, before upscaling: mp4 0..51, none for gif (mp4 60 failed after the upscale, gif ignored it)', async () => {
    const frames: RawImage[] = [];
    for (let k = 0; k < 2; k++) frames.push({ data: new Uint8Array(16 * 16 * 3).fill(40 * k), width: 16, height: 16, channels: 3 });
    const input = join(dir, 'crf-in.mp4');
    await encodeVideo(frames, { out: input, format: 'mp4', fps: 8, width: 16, height: 16 });
    const mp4 = await cli([input, '--out', join(dir, 'crf.mp4'), '--crf', '60']);
    expect(mp4.code).toBe(2);
    expect(mp4.stderr).toContain(`error: --crf must be a whole number from ${CRF_RANGE.mp4[0]} to ${CRF_RANGE.mp4[1]}, got "60"`);
    expect(mp4.stderr).not.toMatch(/upscaling \[/);
    const gif = await cli([input, '--out', join(dir, 'crf.gif'), '--crf', '20']);
    expect(gif.code).toBe(2);
    expect(gif.stderr).toContain('error: --crf is for mp4 and webm output; a gif has no CRF (--max-bytes bounds its size)');
    const webm = await cli([input, '--out', join(dir, 'crf.webm'), '--crf', '60', '--json']);
    expect(webm.code, webm.stderr).toBe(0);
    expect(JSON.parse(webm.stdout.trim())).toMatchObject({ kind: 'video', width: 32, height: 32, frames: 2 });
  });

  it('runs the diffusion upscaler from its weights folder, 4x', async () => {
    const weights = await ensureX4TestModel();
    const out = join(dir, 'x4.png');
    const small = join(dir, 'small.png');
    await sharp(CROP).resize(32, 24).png().toFile(small);
    const r = await cli([small, '--out', out, '--model', 'x4-diffusion', '--weights', weights, '--steps', '4', '--prompt', 'a cat', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout.trim())).toMatchObject({ kind: 'image', model: 'x4-diffusion', scale: 4, width: 128, height: 96 });
  });

  it('applies --seed, --steps and --prompt to every frame of a video, as to an image', async () => {
    const weights = await ensureX4TestModel();
    const frames: RawImage[] = [];
    for (let k = 0; k < 3; k++) {
      const { data } = await sharp(CROP).extract({ left: 10 + 3 * k, top: 10, width: 16, height: 16 }).raw().toBuffer({ resolveWithObject: true });
      frames.push({ data: new Uint8Array(data), width: 16, height: 16, channels: 3 });
    }
    const input = join(dir, 'tiny.mp4');
    await encodeVideo(frames, { out: input, format: 'mp4', fps: 8, width: 16, height: 16 });
    const run = async (name: string, seed: string) => {
      const out = join(dir, name);
      const r = await cli([input, '--out', out, '--model', 'x4-diffusion', '--weights', weights, '--steps', '3', '--prompt', 'a cat', '--seed', seed]);
      expect(r.code, r.stderr).toBe(0);
      return readFile(out);
    };
    const [first, again, other] = [await run('s1.mp4', '1'), await run('s1-again.mp4', '1'), await run('s2.mp4', '2')];
    // The same seed gives the same video (the seed was used, not a drawn one); another seed another video.
    expect(again.equals(first)).toBe(true);
    expect(other.equals(first)).toBe(false);
  });

  it('refuses the flags of the other kind of upscaler, and video flags for an image, instead of ignoring them', async () => {
    const seed = await cli([CROP, '--out', join(dir, 'x.png'), '--seed', '3']);
    expect(seed.code).toBe(2);
    expect(seed.stderr).toContain('error: --seed is for x4-diffusion (--model x4-diffusion) only; esrgan-slim does not use it');
    const tile = await cli([CROP, '--out', join(dir, 'x.png'), '--model', 'x4-diffusion', '--weights', 'w', '--tile', '64', '--batch', '2']);
    expect(tile.code).toBe(2);
    expect(tile.stderr).toContain('error: --tile, --batch are for the esrgan models only; x4-diffusion does not use them');
    const crf = await cli([CROP, '--out', join(dir, 'x.png'), '--crf', '20', '--max-bytes', '5000']);
    expect(crf.code).toBe(2);
    expect(crf.stderr).toContain(`error: --crf and --max-bytes are for videos; ${CROP} is an image`);
  });

  it('says what is wrong and what to do', async () => {
    const noWeights = await cli([CROP, '--out', join(dir, 'x.png'), '--model', 'x4-diffusion']);
    expect(noWeights.code).toBe(2);
    expect(noWeights.stderr).toMatch(/--weights DIR/);
    const badScale = await cli([CROP, '--out', join(dir, 'x.png'), '--scale', '5']);
    expect(badScale.code).toBe(2);
    expect(badScale.stderr).toMatch(/--scale must be one of 2, 3, 4, 8/);
    const wrongOut = await cli([CROP, '--out', join(dir, 'x.mp4')]);
    expect(wrongOut.stderr).toMatch(/an image in gives an image out/);
    // Every extension it writes an image to is named (.jpeg too), from the one list.
    expect(wrongOut.stderr).toContain('--out must end in .png, .jpeg, .webp, .jpg, got');
  });

  it('names the user\'s file, and the formats it takes, for a file that is neither a picture nor a video', async () => {
    const notes = join(dir, 'notes.txt');
    await writeFile(notes, 'hello, not a picture\n');
    const r = await cli([notes, '--out', join(dir, 'notes-up.mp4')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`error: ${notes} is neither a picture nor a video that can be read`);
    expect(r.stderr).toContain(`give a picture (${IMAGE_INPUT_FORMATS.join(', ')}) or a video (${VIDEO_FORMATS.join(', ')})`);
    expect(r.stderr).not.toContain('blendfarm-probe');
  });
});

describe('npm run upscale: the input is checked before the model loads, as the other tools check theirs', () => {
  // Each refusal is the whole of stderr: one line, nothing from a model or a progress bar before it.
  const refused = async (args: string[]) => {
    const r = await cli(args);
    return [r.code, r.stderr.trim()];
  };
  const unreadable = (name: string) => `error: ${name} is neither a picture nor a video that can be read; give a picture (${IMAGE_INPUT_FORMATS.join(', ')}) or a video (${VIDEO_FORMATS.join(', ')})`;

  it('a text file named x.png (or x.bmp) is neither a picture nor a video (it was "a video in gives a video out: --out must end in .mp4")', async () => {
    await writeFile(join(dir, 'x.png'), 'hello, not a picture\n');
    expect(await refused(['x.png'])).toEqual([2, unreadable('x.png')]);
    expect(await refused(['x.png', '--out', 'x-big.png'])).toEqual([2, unreadable('x.png')]);
    // Under another picture's name ffprobe "reads" it as one frame of 0x0, which went on to the model.
    await writeFile(join(dir, 'x.bmp'), 'hello, not a picture\n');
    expect(await refused(['x.bmp', '--out', 'x-big.mp4'])).toEqual([2, unreadable('x.bmp').replace(' that can be read;', ' that can be read (no frames of a known size);')]);
  });

  it('a folder is named as one (it was "EISDIR: illegal operation on a directory, read")', async () => {
    await mkdir(join(dir, 'shots'));
    expect(await refused(['shots', '--out', 'big.png'])).toEqual([2, 'error: shots is a folder; give a picture or video file']);
  });

  it('a picture over the pixel limit is refused in the words blend and vary use (a 108-megapixel one was upscaled for some 17 minutes)', async () => {
    await sharp({ create: { width: 12000, height: 9000, channels: 3, background: '#336699' } }).png().toFile(join(dir, 'huge.png'));
    expect(await refused(['huge.png'])).toEqual([2, 'error: huge.png is 12000x9000 (108.0 megapixels), more than the 40-megapixel limit; use a smaller picture']);
  });

  it('a cut-off picture is named as damaged (it was libvips\' "vipspng: libpng read error", exit 1, after the model loaded)', async () => {
    await writeFile(join(dir, 'cut.png'), (await readFile(CROP)).subarray(0, 5000));
    expect(await refused(['cut.png'])).toEqual([2, 'error: cut.png is a damaged or cut-off PNG file; use a whole PNG, JPEG or WebP picture']);
  });

  it('decodes a picture as the other tools do: EXIF orientation applied (a phone photo came out on its side), transparency onto white', async () => {
    // Stored 40x20, left half red, right half blue; orientation 6: shown 20x40, red on top.
    const raw = Buffer.alloc(40 * 20 * 3);
    for (let p = 0; p < 40 * 20; p++) raw.set(p % 40 < 20 ? [255, 0, 0] : [0, 0, 255], p * 3);
    await sharp(raw, { raw: { width: 40, height: 20, channels: 3 } }).jpeg({ quality: 95 }).withMetadata({ orientation: 6 }).toFile(join(dir, 'phone.jpg'));
    const turned = await cli(['phone.jpg', '--out', 'phone-up.png', '--json']);
    expect(turned.code, turned.stderr).toBe(0);
    const up = await sharp(join(dir, 'phone-up.png')).raw().toBuffer({ resolveWithObject: true });
    expect([up.info.width, up.info.height]).toEqual([40, 80]);
    const at = (x: number, y: number) => Array.from(up.data.subarray((y * 40 + x) * up.info.channels, (y * 40 + x) * up.info.channels + 3));
    expect(at(20, 10)[0]).toBeGreaterThan(200);
    expect(at(20, 70)[2]).toBeGreaterThan(200);
    await sharp({ create: { width: 16, height: 16, channels: 4, background: { r: 0, g: 0, b: 0, alpha: 0 } } }).png().toFile(join(dir, 'clear.png'));
    const clear = await cli(['clear.png', '--out', 'clear-up.png']);
    expect(clear.code, clear.stderr).toBe(0);
    const { data } = await sharp(join(dir, 'clear-up.png')).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    // White on average (the model softens the borders); it was black, the colour under the transparency.
    expect(data.reduce((sum, v) => sum + v, 0) / data.length).toBeGreaterThan(200);
  });
});

describe('npm run upscale stopped with Ctrl-C or SIGTERM', () => {
  it.each(['SIGINT', 'SIGTERM'] as const)('%s stops it where it is: one error line, the file already at --out kept, nothing half-written (it died mid-encode and left a shorter video that looked finished)', async (stopSignal) => {
    const frames: RawImage[] = [];
    for (let k = 0; k < 48; k++) {
      const { data } = await sharp(CROP).extract({ left: k % 32, top: 10, width: 96, height: 72 }).raw().toBuffer({ resolveWithObject: true });
      frames.push({ data: new Uint8Array(data), width: 96, height: 72, channels: 3 });
    }
    const input = join(dir, 'stop-in.mp4');
    await encodeVideo(frames, { out: input, format: 'mp4', fps: 12, width: 96, height: 72 });
    const out = join(dir, 'stop-out.mp4');
    await writeFile(out, 'an earlier upscale');
    const before = readdirSync(dir).sort();
    const child = spawn(process.execPath, ['--import', TSX, join(ROOT, 'apps/cli/upscale.ts'), input, '--out', out, '--scale', '4', '--model', 'esrgan-medium'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    const exited = once(child, 'exit');
    const deadline = Date.now() + 60_000;
    // Some frames done, most not.
    while (!/upscaling \[.*\] \d+\/48/.test(stderr)) {
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`no progress:\n${stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    child.kill(stopSignal);
    const [code, signal] = await exited;
    expect({ code, signal }).toEqual({ code: 1, signal: null });
    const lines = stderr.split(/[\r\n]+/).filter((l) => l.startsWith('error:'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/abort/i);
    expect(stderr).not.toMatch(/\n\s+at /);
    expect(await readFile(out, 'utf8')).toBe('an earlier upscale');
    expect(readdirSync(dir).sort()).toEqual(before);
  }, 90_000);
});
