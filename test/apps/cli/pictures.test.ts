/**
 * The picture-input modes from the command line, as a user runs them (child processes on real
 * files, short renders with the test models): npm run blend with --image-a/--image-b, an inpainting
 * transition (--inpaint with --mask or --mask-preset), and npm run vary.
 */
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import sharp from 'sharp';
import { decodeVideoFrames, probeVideo } from '../../../engine/index.ts';
import { testModelDir } from '../../../models/paths.ts';
import { ROOT, runCli } from '../../helpers/cli.ts';
import { useTempDir } from '../../helpers/temp-dir.ts';

const PHOTO = join(ROOT, 'test/fixtures/photos/coffee.png');
const cli = (script: string, args: string[]) => runCli(script, args, { cwd: dir, env: { BLENDFARM_VARIATION_MODEL_DIR: '' } });

let dir: string;
useTempDir('blendfarm-pictures-cli-', (d) => (dir = d));

const madRgb = (a: Uint8Array, b: Uint8Array) => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += Math.abs(a[i] - b[i]);
  return s / a.length;
};

describe('npm run blend with pictures', () => {
  it('starts from --image-a at a low strength: the first frame follows the picture', async () => {
    const out = join(dir, 'from-picture.mp4');
    const r = await cli('blend.ts', ['a red house', 'a blue boat', '--model', testModelDir('demo'), '--image-a', PHOTO, '--strength-a', '0.1', '--scheduler', 'ddim', '--steps', '8', '--width', '64', '--height', '64', '--branches', '4', '--duration', '1', '--fps', '4', '--out', out, '--json']);
    expect(r.stderr).not.toMatch(/error/);
    expect(r.code).toBe(0);
    const summary = JSON.parse(r.stdout);
    expect(summary.keyframes).toBe(4);
    const frames = await decodeVideoFrames(await import('node:fs/promises').then((f) => f.readFile(out)), 64, 64);
    const photo = await sharp(PHOTO).resize(64, 64, { fit: 'cover' }).removeAlpha().raw().toBuffer();
    const first = madRgb(frames[0].data, photo);
    const last = madRgb(frames[frames.length - 1].data, photo);
    expect(first).toBeLessThan(last / 2);
  }, 120_000);

  it('says what is wrong with a bad picture or flag', async () => {
    const notAPicture = join(dir, 'notes.png');
    await import('node:fs/promises').then((f) => f.writeFile(notAPicture, 'hello'));
    const bad = await cli('blend.ts', ['a', 'b', '--model', testModelDir('demo'), '--image-b', notAPicture, '--out', join(dir, 'x.mp4')]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain(`error: --image-b ${notAPicture} is not a picture that can be read; use a PNG, JPEG or WebP file`);
    const flag = await cli('blend.ts', ['a', 'b', '--strength-a', '0.3']);
    expect(flag.code).toBe(2);
    expect(flag.stderr).toMatch(/--strength-a needs --image-a/);
  }, 60_000);
});

describe('pictures are checked by their flag and file before a model loads', () => {
  // Before, a file that is no picture, or an --images index past the prompts, was found only after
  // the model had loaded (exit 1, "the picture for prompt 2"), or hidden behind a model folder's error.
  it.each([
    ['blend.ts', ['a', 'b', '--image-a', 'NOTES'], '--image-a NOTES is not a picture that can be read; use a PNG, JPEG or WebP file'],
    ['blend.ts', ['a', 'b', '--inpaint', PHOTO, '--mask', 'NOTES'], '--mask NOTES is not a picture that can be read; use a PNG, JPEG or WebP file'],
    ['movie.ts', ['a', 'b', '--images', `3:${PHOTO}`], `--images 3:${PHOTO}: there is no prompt 3; give the index of a prompt, 1 to 2`],
    ['movie.ts', ['a', 'b', 'c', '--images', `0:${PHOTO}`], `--images 0:${PHOTO}: there is no prompt 0; give the index of a prompt, 1 to 3`],
    ['vary.ts', ['NOTES'], 'NOTES is not a picture that can be read; use a PNG, JPEG or WebP file'],
    // A cut-off picture (its header whole, its pixels not: `head -c 5000 photo.png`) printed libvips'
    // "vipspng: libpng read error" (exit 1) once the model had loaded, naming neither flag nor file.
    ['blend.ts', ['a', 'b', '--image-a', 'CUT'], '--image-a CUT is a damaged or cut-off PNG file; use a whole PNG, JPEG or WebP picture'],
    ['vary.ts', ['CUT'], 'CUT is a damaged or cut-off PNG file; use a whole PNG, JPEG or WebP picture'],
  ])('%s %j: exit 2, naming the flag and file', async (script, args, message) => {
    const { readFile, writeFile } = await import('node:fs/promises');
    const notes = join(dir, 'notes.png');
    await writeFile(notes, 'hello');
    const cut = join(dir, 'cut.png');
    await writeFile(cut, (await readFile(PHOTO)).subarray(0, 5000));
    const named = (a: string) => (a === 'NOTES' ? notes : a === 'CUT' ? cut : a);
    const r = await cli(script, [...args.map(named), '--model', 'no-such-model-folder']);
    expect(r.code).toBe(2);
    // The whole of stderr: one line, nothing from a model or a progress bar before it.
    expect(r.stderr.trim()).toBe(`error: ${message.replace(/NOTES|CUT/, named)}`);
  });

  it('a cut-off picture is refused before a model that is there loads', async () => {
    const { readFile, writeFile } = await import('node:fs/promises');
    const cut = join(dir, 'cut.png');
    await writeFile(cut, (await readFile(PHOTO)).subarray(0, 5000));
    const r = await cli('blend.ts', ['a', 'b', '--model', testModelDir('demo'), '--image-a', cut, '--steps', '4', '--width', '64', '--height', '64', '--out', join(dir, 'cut.mp4')]);
    expect([r.code, r.stderr.trim()]).toEqual([2, `error: --image-a ${cut} is a damaged or cut-off PNG file; use a whole PNG, JPEG or WebP picture`]);
  });
});

describe('inpainting transitions from the command line', () => {
  it('--inpaint with --mask-preset keeps the picture outside the mask in every frame', async () => {
    const out = join(dir, 'inpaint.webm');
    const r = await cli('blend.ts', ['a red house', 'a blue boat', '--model', testModelDir('inpaint'), '--inpaint', PHOTO, '--mask-preset', 'left', '--steps', '8', '--width', '64', '--height', '64', '--branches', '5', '--duration', '1', '--fps', '6', '--format', 'webm', '--out', out, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const frames = await decodeVideoFrames(await import('node:fs/promises').then((f) => f.readFile(out)), 64, 64);
    expect(frames.length).toBe(6);
    // The right half (away from the mask edge) stays as the first frame has it; the left half changes.
    const half = (f: { data: Uint8Array }, left: boolean) => {
      const px: number[] = [];
      for (let y = 0; y < 64; y++) for (let x = left ? 0 : 40; x < (left ? 24 : 64); x++) px.push(...f.data.subarray((y * 64 + x) * 3, (y * 64 + x) * 3 + 3));
      return Uint8Array.from(px);
    };
    for (const f of frames) expect(madRgb(half(f, false), half(frames[0], false))).toBeLessThan(4);
    expect(madRgb(half(frames[frames.length - 1], true), half(frames[0], true))).toBeGreaterThan(15);
  }, 120_000);

  it('takes a mask picture, and refuses --inpaint without a mask', async () => {
    const mask = join(dir, 'mask.png');
    await sharp({ create: { width: 32, height: 32, channels: 3, background: '#000' } })
      .composite([{ input: await sharp({ create: { width: 16, height: 16, channels: 3, background: '#fff' } }).png().toBuffer(), left: 8, top: 8 }])
      .png()
      .toFile(mask);
    const ok = await cli('blend.ts', ['a', 'b', '--model', testModelDir('inpaint'), '--inpaint', PHOTO, '--mask', mask, '--steps', '4', '--width', '64', '--height', '64', '--branches', '3', '--duration', '1', '--fps', '3', '--out', join(dir, 'm.mp4'), '--json']);
    expect(ok.code, ok.stderr).toBe(0);
    const none = await cli('blend.ts', ['a', 'b', '--inpaint', PHOTO]);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/--inpaint needs a mask: --mask FILE \(white = change\) or --mask-preset centre\|left\|right\|border/);
  }, 120_000);
});

describe('npm run vary', () => {
  it('renders a variation animation from a picture with CLIP guidance options', async () => {
    const out = join(dir, 'vary.mp4');
    const r = await cli('vary.ts', [PHOTO, '--model', testModelDir('variation'), '--frames', '3', '--intermediate', '2', '--steps', '6', '--positive', 'a red house', '--negative', '', '--clip-positive', '5', '--clip-negative', '0', '--opt-repeats', '3', '--seed', '9', '--fps', '7', '--out', out, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const summary = JSON.parse(r.stdout);
    expect(summary.frames).toBe(1 + 3 * 2);
    expect(summary.seed).toBe(9);
    // Guidance moves every variation closer to the positive prompt.
    const sims = summary.positiveSimilarity as number[];
    expect(sims.length).toBe(4);
    for (let k = 1; k < sims.length; k++) expect(sims[k]).toBeGreaterThan(sims[k - 1]);
    const probe = await probeVideo(out);
    expect(probe.frames).toBe(7);
  }, 120_000);

  it('a request the engine refuses (more frames in all than it renders) is a bad command line: exit 2, as other refusals', async () => {
    const r = await cli('vary.ts', [PHOTO, '--model', testModelDir('variation'), '--frames', '600', '--intermediate', '1', '--out', join(dir, 'too-long.mp4')]);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain('600 variations x 1 frames each is 601 frames, more than 600; ask for fewer');
  }, 60_000);

  it('needs an image-variation model and says so', async () => {
    const none = await cli('vary.ts', [PHOTO]);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/give --model DIR: an image-variation model folder/);
    const wrong = await cli('vary.ts', [PHOTO, '--model', testModelDir('demo')]);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/this is a text2img model; variations need an image-variation model/);
  }, 60_000);
});
