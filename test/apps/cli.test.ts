/**
 * The command-line tools as a user runs them: child processes, the demo model, real files.
 */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { mkdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import {
  CRF_RANGE,
  DEFAULT_BRANCHES,
  DEFAULT_DEVICE_ID,
  DEFAULT_PLAN,
  DEFAULT_TILE,
  DEFAULT_TILE_BATCH,
  DEFAULT_TRANSITION_MODE,
  DEFAULT_UPSCALE_STEPS,
  DEFAULT_WALK_FRAMES,
  imageVariationDefaults,
  MAX_BRANCHES,
  MAX_FPS,
  MAX_GUIDANCE,
  MAX_IMAGE_SIDE,
  MAX_PROMPT_LENGTH,
  MAX_STEPS,
  MIN_BLEND_STEPS,
  MIN_UPSCALE_STEPS,
  MAX_SEED,
  MAX_SEGMENT_SECONDS,
  MAX_VARIATION_FRAMES,
  MAX_WALK_FRAMES,
  MIN_FPS,
  MIN_WALK_FRAMES,
  planModes,
  transitionModes,
  VIDEO_FORMATS,
} from '../../engine/index.ts';
import { probeVideo } from '../../engine/video/probe.ts';
import { runCli } from '../helpers/cli.ts';
import { useTempDir } from '../helpers/temp-dir.ts';

const cli = (script: string, args: string[]) => runCli(script, args, { cwd: dir });

const CROP_PHOTO = fileURLToPath(new URL('../fixtures/photos/chelsea-crop.png', import.meta.url));

let dir: string;
useTempDir('blendfarm-cli-', (d) => (dir = d));

describe('npm run generate', () => {
  it('renders a PNG with the demo model, says so, and prints a JSON summary', async () => {
    const r = await cli('generate.ts', ['a lighthouse at dusk', '--out', 'l.png', '--seed', '7', '--steps', '4', '--width', '128', '--height', '96', '--json']);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/Using the built-in demo model/);
    const summary = JSON.parse(r.stdout);
    expect(summary).toMatchObject({ files: ['l.png'], demoModel: true, seeds: [7], steps: 4, width: 128, height: 96, ep: 'cpu' });
    const meta = await sharp(join(dir, 'l.png')).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(['png', 128, 96]);
  });

  it('--help documents every option', async () => {
    const r = await cli('generate.ts', ['--help']);
    expect(r.code).toBe(0);
    for (const flag of ['--out', '--negative', '--seed', '--steps', '--guidance', '--width', '--height', '--batch', '--scheduler', '--model', '--ep', '--device', '--json']) {
      expect(r.stdout).toContain(flag);
    }
  });

  it('bad input gets one clear line and a non-zero exit, no stack trace', async () => {
    const r = await cli('generate.ts', ['x', '--steps', 'many']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/error: --steps must be a whole number from 1 to 1000, got "many"/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    const size = await cli('generate.ts', ['x', '--width', '100', '--steps', '1']);
    expect(size.code).toBe(1);
    expect(size.stderr).toMatch(/width must be a multiple of 8/);
    const ep = await cli('generate.ts', ['x', '--ep', 'tpu']);
    expect(ep.stderr).toMatch(/--ep must be cpu, cuda or webgpu/);
  });
});

describe('npm run generate --out', () => {
  it('refuses a file name of another format instead of writing PNG bytes under it', async () => {
    for (const out of ['picture.jpg', 'batch.webp']) {
      const r = await cli('generate.ts', ['x', '--out', out, '--steps', '1']);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`error: --out ${out}: generate writes PNG files; give a name ending in .png`);
    }
  });
});

describe('npm run blend / movie', () => {
  it('renders a 2-prompt transition to MP4 with the frames and duration asked for', async () => {
    const r = await cli('blend.ts', ['a red sunset', 'a green forest', '--out', 't.mp4', '--duration', '2', '--fps', '12', '--seed-a', '1', '--seed-b', '2', '--branches', '9', '--json']);
    expect(r.code).toBe(0);
    const s = JSON.parse(r.stdout);
    expect(s).toMatchObject({ seeds: [1, 2], keyframes: 9, frames: 24, fps: 12, format: 'mp4', demoModel: true });
    expect(s.maxGap).toBeGreaterThan(0);
    const probe = await probeVideo(join(dir, 't.mp4'));
    expect([probe.codec, probe.frames, probe.pixFmt]).toEqual(['h264', 24, 'yuv420p']);
    expect((await stat(join(dir, 't.mp4'))).size).toBe(s.sizeBytes);
  });

  it('says which prompt is longer than the text encoder reads, on stderr and in the JSON summary; nothing for short prompts', async () => {
    const long = `a castle ${Array.from({ length: 90 }, (_, i) => String.fromCharCode(97 + (i % 26))).join(' ')}`;
    const r = await cli('blend.ts', ['a red sunset', long, '--out', 'w.mp4', '--duration', '0.5', '--fps', '4', '--branches', '3', '--steps', '2', '--width', '64', '--height', '64', '--json']);
    expect(r.code).toBe(0);
    const s = JSON.parse(r.stdout);
    expect(s.warnings).toHaveLength(1);
    expect(s.warnings[0]).toMatch(/^Prompt B is \d+ CLIP tokens long; the text encoder reads 75 .*shorten it to keep every word\.$/);
    expect(r.stderr).toContain(`warning: ${s.warnings[0]}\n`);
    const movie = await cli('movie.ts', ['a', long, 'c', '--negative', 'blur', '--out', 'm.mp4', '--duration', '0.5', '--fps', '4', '--branches', '3', '--steps', '2', '--width', '64', '--height', '64', '--json']);
    expect(JSON.parse(movie.stdout).warnings.map((w: string) => w.split(' is ')[0])).toEqual(['Prompt 2']);
    expect(JSON.parse((await cli('blend.ts', ['a', 'b', '--out', 's.mp4', '--duration', '0.5', '--fps', '4', '--branches', '3', '--steps', '2', '--width', '64', '--height', '64', '--json'])).stdout).warnings).toEqual([]);
  }, 120_000);

  it('prints the line README.md\'s quick start shows for its command', async () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const command = /npm ci && npm run blend -- ("[^"]+") ("[^"]+") --out (\S+)/.exec(readme)!;
    const shown = /It prints one line, e\.g\. `([^`]+)`/.exec(readme)![1].replace(/\s+/g, ' ');
    const r = await cli('blend.ts', [JSON.parse(command[1]), JSON.parse(command[2]), '--out', command[3]]);
    expect(r.code, r.stderr).toBe(0);
    // The same line with its own numbers: every number in the README's example stands for any number.
    const shape = new RegExp(`^${shown.split(/\d+(?:\.\d+)?/).map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('\\d+(?:\\.\\d+)?')}$`);
    expect(r.stdout.trim()).toMatch(shape);
  });

  it('renders a 3-prompt movie as an animated GIF, reporting every seed', async () => {
    const r = await cli('movie.ts', ['a red sunset', 'a green forest', 'a blue ocean', '--out', 'm.gif', '--durations', '1,1.5', '--fps', '10', '--branches', '5', '--seeds', '4,5,6', '--json']);
    expect(r.code).toBe(0);
    const s = JSON.parse(r.stdout);
    expect(s).toMatchObject({ seeds: [4, 5, 6], segments: 2, keyframes: 9, frames: 25, format: 'gif' });
    const probe = await probeVideo(join(dir, 'm.gif'));
    expect(probe.frames).toBe(25);
  });

  it('refuses a wrong number of prompts and an empty prompt with clear messages', async () => {
    expect((await cli('blend.ts', ['only one'])).stderr).toMatch(/give exactly two prompts/);
    expect((await cli('blend.ts', ['a', '  '])).stderr).toMatch(/prompt 2 is empty/);
    expect((await cli('movie.ts', ['a', 'b', '--seeds', '1'])).stderr).toMatch(/--seeds needs one seed per prompt \(2\), got 1/);
  });
});

describe('blend and movie refuse the flags only the other one reads, rather than ignore them', () => {
  it.each([
    ['blend.ts', ['a', 'b', '--seeds', '1,2'], '--seeds is for npm run movie; npm run blend takes --seed-a and --seed-b'],
    ['blend.ts', ['a', 'b', '--strength', '0.3'], '--strength is for npm run movie; npm run blend takes --strength-a and --strength-b'],
    ['blend.ts', ['a', 'b', '--images', '1:x.png'], '--images is for npm run movie; npm run blend takes --image-a and --image-b'],
    ['movie.ts', ['a', 'b', '--seed-a', '1'], '--seed-a is for npm run blend; npm run movie takes --seeds N,N,...'],
    ['movie.ts', ['a', 'b', '--image-b', 'x.png'], '--image-b is for npm run blend; npm run movie takes --images I:FILE,...'],
    ['movie.ts', ['a', 'b', '--strength-a', '0.3'], '--strength-a is for npm run blend; npm run movie takes --strength'],
    ['movie.ts', ['a', 'b', '--strength', '0.3'], '--strength needs --images'],
    ['movie.ts', ['a', 'b', 'c', '--duration', '2', '--durations', '1,3'], 'give either --duration (every segment) or --durations (one per segment), not both'],
  ])('%s %j: a usage error saying what to give instead', async (script, args, message) => {
    const r = await cli(script, args);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`error: ${message}`);
  });
});

describe('each transition mode refuses the flags of the other, rather than ignore them', () => {
  it.each([
    ['blend.ts', ['a', 'b', '--walk-frames', '5'], '--walk-frames is for the walk modes (--mode embedding-walk|noise-mixing|seed-slerp|circular); latent-blend takes --branches or --seconds'],
    ['blend.ts', ['a', 'b', '--mode', 'embedding-walk', '--branches', '5'], '--branches is for --mode latent-blend only; --mode embedding-walk renders --walk-frames frames per segment instead'],
    ['movie.ts', ['a', 'b', '--mode', 'circular', '--depth', '0.3', '--plan', 'gap-weighted'], '--depth, --plan gap-weighted are for --mode latent-blend only; --mode circular renders'],
    ['movie.ts', ['a', 'b', '--mode', 'seed-slerp', '--seconds', '2', '--order', 'batched'], '--seconds, --order are for --mode latent-blend only'],
  ])('%s %j: a usage error before anything renders', async (script, args, message) => {
    const r = await cli(script, args);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`error: ${message}`);
    expect(r.stderr).not.toMatch(/Using the built-in demo model/);
  });
});

describe('choice flags are checked the same way by every render CLI', () => {
  const photo = fileURLToPath(new URL('../fixtures/photos/coffee.png', import.meta.url));
  const formats = `--format must be one of ${VIDEO_FORMATS.join(', ')}, got "avi"`;
  it.each([
    ['blend.ts', ['a', 'b', '--format', 'avi'], formats],
    ['vary.ts', [photo, '--model', 'x', '--format', 'avi'], formats],
    ['generate.ts', ['x', '--scheduler', 'heun'], '--scheduler must be one of'],
    ['movie.ts', ['a', 'b', '--scheduler', 'heun'], '--scheduler must be one of'],
    ['vary.ts', [photo, '--model', 'x', '--scheduler', 'heun'], '--scheduler must be one of'],
    // --plan and --order said only "--plan must be equal or gap-weighted", without what was given.
    ['blend.ts', ['a', 'b', '--plan', 'fast'], `--plan must be one of ${planModes.join(', ')}, got "fast"`],
    ['movie.ts', ['a', 'b', '--order', 'random'], '--order must be one of batched, sequential, got "random"'],
    ['blend.ts', ['a', 'b', '--mode', 'morph'], `--mode must be one of ${transitionModes.join(', ')}, got "morph"`],
  ])('%s %j: a usage error naming the choices', async (script, args, message) => {
    const r = await cli(script, args);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(message);
    if (message.startsWith('--scheduler')) expect(r.stderr).toContain('got "heun"');
  });
});

describe('each --help states a default once, from the constant the code uses', () => {
  const help = async (script: string) => (await cli(script, ['--help'])).stdout;
  it('--ep and --device say their defaults in every render CLI (blend, movie and vary left out --device\'s)', async () => {
    for (const script of ['blend.ts', 'movie.ts', 'generate.ts', 'vary.ts', 'upscale.ts']) {
      const text = await help(script);
      expect(text, script).toMatch(new RegExp(`--ep NAME +execution provider: cpu \\| cuda \\| webgpu \\(default: BLENDFARM_EP, else cpu\\)\n`));
      expect(text, script).toMatch(new RegExp(`--device N +GPU index for cuda, 0\\.\\.64 \\(default: BLENDFARM_DEVICE_ID, else ${DEFAULT_DEVICE_ID}\\)\n`));
    }
  });

  it('the engine\'s defaults, as the engine applies them', async () => {
    const blend = await help('blend.ts');
    expect(blend).toContain(`2 to ${MAX_BRANCHES} (default: ${DEFAULT_BRANCHES})`);
    expect(blend).toContain(`(default: ${DEFAULT_TRANSITION_MODE})`);
    expect(blend).toContain(`${planModes.join(' | ')}: screen time per keyframe gap (default: ${DEFAULT_PLAN})`);
    const upscale = await help('upscale.ts');
    expect(upscale).toContain(`denoising steps (default ${DEFAULT_UPSCALE_STEPS})`);
    expect(upscale).toContain(`tile side in input pixels (default ${DEFAULT_TILE})`);
    expect(upscale).toContain(`tiles per network call (default ${DEFAULT_TILE_BATCH.cpu} on cpu, ${DEFAULT_TILE_BATCH.gpu} on gpus)`);
    const vary = await help('vary.ts');
    expect(vary).toContain(`denoising steps (default: the model's, ${imageVariationDefaults.steps})`);
    expect(vary).toContain(`classifier-free guidance (default: the model's, ${imageVariationDefaults.guidance})`);
  });
});

describe('vary reads every number before it loads the model', () => {
  const photo = fileURLToPath(new URL('../fixtures/photos/coffee.png', import.meta.url));
  it.each([
    [['--fps', '0'], `--fps must be a number from ${MIN_FPS} to ${MAX_FPS}`],
    [['--frames', String(MAX_VARIATION_FRAMES + 1)], `--frames must be`],
    [['--steps', 'many'], '--steps must be'],
  ])('%j with a model folder that is not there: the number is refused, exit 2', async (args, message) => {
    const r = await cli('vary.ts', [photo, '--model', 'no-such-model-folder', ...args]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(message);
    expect(r.stderr).not.toContain('no-such-model-folder');
  });
});

describe('vary reads BLENDFARM_VARIATION_MODEL_DIR through the settings table', () => {
  // Before, it was read raw: a blank value was taken for a folder and failed as a model folder's error.
  it('a blank BLENDFARM_VARIATION_MODEL_DIR is unset: give --model DIR, exit 2', async () => {
    const photo = fileURLToPath(new URL('../fixtures/photos/coffee.png', import.meta.url));
    const r = await runCli('vary.ts', [photo], { cwd: dir, env: { BLENDFARM_VARIATION_MODEL_DIR: '  ' } });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('error: give --model DIR: an image-variation model folder');
  });
});

describe('blend, movie and upscale read every number (and the --lpips file) before they load a model', () => {
  // Before, these were read after the model had loaded: behind a model folder's own error, or after seconds of loading.
  it.each([
    ['blend.ts', ['a', 'b', '--model', 'no-such-model-folder', '--steps', 'many'], '--steps must be a whole number from 2 to 1000, got "many"'],
    ['blend.ts', ['a', 'b', '--model', 'no-such-model-folder', '--width', '10'], '--width must be a whole number from 64 to 4096, got "10"'],
    ['movie.ts', ['a', 'b', '--model', 'no-such-model-folder', '--guidance', '99'], '--guidance must be a number from 0 to 50, got "99"'],
    ['movie.ts', ['a', 'b', '--model', 'no-such-model-folder', '--depth', '1'], '--depth must be a number from 0.01 to 0.99, got "1"'],
    ['blend.ts', ['a', 'b', '--model', 'no-such-model-folder', '--mode', 'circular', '--walk-frames', '1'], `--walk-frames must be a whole number from ${MIN_WALK_FRAMES} to ${MAX_WALK_FRAMES}, got "1"`],
    ['blend.ts', ['a', 'b', '--model', 'no-such-model-folder', '--lpips', 'no-such-lpips.onnx'], '--lpips no-such-lpips.onnx: file not found; give an LPIPS model exported to ONNX, or leave out --lpips for the built-in metric'],
    ['upscale.ts', [CROP_PHOTO, '--out', 'up.png', '--model', 'x4-diffusion', '--weights', 'no-such-model-folder', '--steps', '1'], '--steps must be a whole number from 2 to 1000, got "1"'],
    ['upscale.ts', [CROP_PHOTO, '--out', 'up.png', '--model', 'x4-diffusion', '--weights', 'no-such-model-folder', '--seed', 'x'], '--seed must be a whole number'],
    ['upscale.ts', [fileURLToPath(import.meta.url), '--out', 'up.mp4', '--crf', '99'], `--crf must be a whole number from ${CRF_RANGE.mp4[0]} to ${CRF_RANGE.mp4[1]}, got "99"`],
  ])('%s %j: the bad value is refused, exit 2', async (script, args, message) => {
    const r = await cli(script, args);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`error: ${message}`);
    expect(r.stderr).not.toContain('no-such-model-folder');
    expect(r.stderr).not.toContain('Using the built-in demo model');
  });
});

describe('a flag the command does not know, or one without its value, is a bad command line', () => {
  it.each([
    ['blend.ts', ['a', 'b', '--colour', 'red'], "error: Unknown option '--colour'"],
    ['movie.ts', ['a', 'b', '--fps'], "error: Option '--fps <value>' argument missing"],
    ['generate.ts', ['x', '--bogus'], "error: Unknown option '--bogus'"],
    ['upscale.ts', ['in.mp4', '--scale'], "error: Option '--scale <value>' argument missing"],
  ])('%s %j: exit 2 and one line saying so', async (script, args, message) => {
    const r = await cli(script, args);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(message);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});

describe('a value starting with "-" after a flag is its value in every CLI (parseCli), refused by the flag\'s own range', () => {
  // Before, parseArgs refused "--seed -3" as ambiguous in the render CLIs (only the farm CLI joined it); "--seed=-3" worked.
  const photo = fileURLToPath(new URL('../fixtures/photos/coffee.png', import.meta.url));
  it.each([
    ['generate.ts', ['x', '--seed', '-3'], `--seed must be a whole number from 0 to ${MAX_SEED}, got "-3"`],
    ['blend.ts', ['a', 'b', '--steps', '-1'], `--steps must be a whole number from ${MIN_BLEND_STEPS} to ${MAX_STEPS}, got "-1"`],
    ['movie.ts', ['a', 'b', '--seeds', '-3,4'], `--seeds must be a whole number from 0 to ${MAX_SEED}, got "-3"`],
    ['vary.ts', [photo, '--model', 'no-such-model-folder', '--seed', '-3'], `--seed must be a whole number from 0 to ${MAX_SEED}, got "-3"`],
    ['upscale.ts', [CROP_PHOTO, '--out', 'up.png', '--tile', '-5'], '--tile must be a whole number from 16 to 2048, got "-5"'],
  ])('%s %j: exit 2 with the range, not "ambiguous"', async (script, args, message) => {
    const r = await cli(script, args);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`error: ${message}`);
    expect(r.stderr).not.toContain('ambiguous');
  });

  it('a negative prompt that starts with "-" is taken as the value of --negative', async () => {
    const r = await cli('generate.ts', ['x', '--negative', '-blurry', '--steps', '0']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('error: --steps must be a whole number from 1');
  });
});

describe("the CLIs' ranges are the engine's rules (engine/video/rules.ts, walks, variations, the pipelines' steps, guidance and size), written once", () => {
  it.each([
    ['blend.ts', ['a', 'b', '--fps', String(MAX_FPS + 1)], `--fps must be a number from ${MIN_FPS} to ${MAX_FPS}`],
    ['movie.ts', ['a', 'b', '--duration', String(MAX_SEGMENT_SECONDS + 1)], `--duration must be a number from 0.1 to ${MAX_SEGMENT_SECONDS}`],
    ['movie.ts', ['a', 'b', 'c', '--durations', `1,${MAX_SEGMENT_SECONDS + 1}`], `--durations must be a number from 0.1 to ${MAX_SEGMENT_SECONDS}`],
    ['blend.ts', ['a', 'b', '--mode', 'circular', '--walk-frames', String(MAX_WALK_FRAMES + 1)], `--walk-frames must be a whole number from ${MIN_WALK_FRAMES} to ${MAX_WALK_FRAMES}`],
    // Steps, guidance and frame size: the engine's MAX_STEPS, MAX_GUIDANCE, MAX_IMAGE_SIDE and each pipeline's fewest steps.
    ['generate.ts', ['x', '--steps', String(MAX_STEPS + 1)], `--steps must be a whole number from 1 to ${MAX_STEPS}`],
    ['blend.ts', ['a', 'b', '--steps', String(MIN_BLEND_STEPS - 1)], `--steps must be a whole number from ${MIN_BLEND_STEPS} to ${MAX_STEPS}`],
    ['vary.ts', [fileURLToPath(new URL('../fixtures/photos/coffee.png', import.meta.url)), '--model', 'x', '--guidance', String(MAX_GUIDANCE + 1)], `--guidance must be a number from 0 to ${MAX_GUIDANCE}`],
    ['movie.ts', ['a', 'b', '--width', String(MAX_IMAGE_SIDE + 8)], `--width must be a whole number from 64 to ${MAX_IMAGE_SIDE}`],
    ['upscale.ts', [CROP_PHOTO, '--model', 'x4-diffusion', '--steps', String(MIN_UPSCALE_STEPS - 1)], `--steps must be a whole number from ${MIN_UPSCALE_STEPS} to ${MAX_STEPS}`],
  ])('%s %j is refused with the engine\'s range', async (script, args, message) => {
    const r = await cli(script, args);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`error: ${message}`);
  });

  it('--help states the ranges from the same constants', async () => {
    const movie = (await cli('movie.ts', ['--help'])).stdout;
    expect(movie).toContain(`frames per second, ${MIN_FPS}..${MAX_FPS}`);
    expect(movie).toContain(`up to ${MAX_SEGMENT_SECONDS}`);
    expect(movie).toContain(`${MIN_WALK_FRAMES}..${MAX_WALK_FRAMES} (default: ${DEFAULT_WALK_FRAMES})`);
    const vary = (await cli('vary.ts', ['--help'])).stdout;
    expect(vary).toContain(`frames per second, ${MIN_FPS}..${MAX_FPS}`);
    expect(vary).toContain(`1..${MAX_VARIATION_FRAMES}`);
  });
});

describe('--out and --format agree, or the command is refused', () => {
  it.each([
    ['blend.ts', ['a', 'b', '--out', 't.mp4', '--format', 'gif'], '--out t.mp4 names mp4 but --format is gif; leave out --format or give a name ending in .gif'],
    ['movie.ts', ['a', 'b', '--out', 'm.avi'], '--out m.avi: give a name ending in .mp4, .webm, .webp, .gif (the extension picks the format)'],
    ['vary.ts', [fileURLToPath(new URL('../fixtures/photos/coffee.png', import.meta.url)), '--model', 'x', '--out', 'v.webm', '--format', 'mp4'], '--out v.webm names webm but --format is mp4'],
  ])('%s %j: a usage error, no file of one format under another\'s name', async (script, args, message) => {
    const r = await cli(script, args);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`error: ${message}`);
  });

  it('takes the format from the extension, whatever its case', async () => {
    const r = await cli('blend.ts', ['a', 'b', '--out', 'T.GIF', '--branches', '2', '--duration', '0.5', '--fps', '4', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ file: 'T.GIF', format: 'gif' });
  });

  it('reports the rate the file is written at: a GIF asked for at 60 fps is written at 50 (ANIMATION_MAX_FPS)', async () => {
    const args = ['a', 'b', '--out', 'fast.gif', '--branches', '2', '--duration', '1', '--fps', '60', '--width', '64', '--height', '64'];
    const json = await cli('blend.ts', [...args, '--json']);
    expect(json.code, json.stderr).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({ format: 'gif', fps: 50, frames: 50, durationSeconds: 1 });
    const line = await cli('blend.ts', args);
    expect(line.code, line.stderr).toBe(0);
    expect(line.stdout).toContain(', 50 frames at 50 fps (1s, ');
  });
});

describe('an --out in a folder that is not there is refused before anything renders', () => {
  const photo = fileURLToPath(new URL('../fixtures/photos/chelsea-crop.png', import.meta.url));
  it.each([
    ['generate.ts', ['x', '--steps', '2', '--out', 'no-such-folder/x.png']],
    ['blend.ts', ['a', 'b', '--branches', '2', '--out', 'no-such-folder/t.mp4']],
    ['movie.ts', ['a', 'b', 'c', '--branches', '2', '--out', 'no-such-folder/m.gif']],
    ['upscale.ts', [photo, '--out', 'no-such-folder/big.png']],
  ])('%s %j: a usage error naming the folder', async (script, args) => {
    const r = await cli(script, args);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/error: --out no-such-folder\/\S+: there is no folder no-such-folder; create it or give another path/);
    // Refused before the model loads or anything renders.
    expect(r.stderr).not.toMatch(/Using the built-in demo model|\[#/);
  });
});

describe('an --out that is no file (a device, a link) is refused before anything renders', () => {
  // The file is renamed into place when whole: run as root, --out /dev/null replaced the device
  // itself with a PNG, and a symbolic link was replaced by a file (its target kept the old one).
  it.each([
    ['generate.ts', ['x', '--steps', '2', '--width', '64', '--height', '64', '--out', '/dev/null'], '/dev/null is a device'],
    ['blend.ts', ['a', 'b', '--branches', '2', '--out', '/dev/null'], '/dev/null is a device'],
  ])('%s %j: one usage line', async (script, args, what) => {
    const r = await cli(script, args);
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe(`error: --out ${what}, not a file; give the path of a file to write (a new one, or a file to replace)`);
  });
});

describe('an --out in a folder where no file can be made is refused before anything renders', () => {
  // /proc takes no new files, whoever asks (root too, whom permissions let through). Before, the
  // render ran and failed at its end: generate with six lines of libvips errors, blend with ffmpeg's.
  const photo = fileURLToPath(new URL('../fixtures/photos/chelsea-crop.png', import.meta.url));
  it.each([
    ['generate.ts', ['x', '--steps', '2', '--width', '64', '--height', '64', '--out', '/proc/x.png']],
    ['blend.ts', ['a', 'b', '--branches', '2', '--out', '/proc/t.mp4']],
    ['upscale.ts', [photo, '--out', '/proc/big.png']],
  ])('%s %j: one usage line naming the folder', async (script, args) => {
    const r = await cli(script, args);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^error: --out \/proc\/\S+: files cannot be made in \/proc \([A-Z]+\); give a path in a folder you can write to$/)]);
  });
});

describe('an --out that is a folder is refused before anything renders', () => {
  // Before, the render ran and then failed: generate with sharp's 'vips2png: unable to write to
  // target', blend with 'Path is a directory: rm returned EISDIR'.
  const photo = fileURLToPath(new URL('../fixtures/photos/chelsea-crop.png', import.meta.url));
  it.each([
    ['generate.ts', ['x', '--steps', '1', '--width', '64', '--height', '64'], 'image.png'],
    ['blend.ts', ['a', 'b', '--branches', '2', '--duration', '0.1', '--width', '64', '--height', '64', '--steps', '2'], 'transition.mp4'],
    ['movie.ts', ['a', 'b', '--format', 'gif', '--branches', '2', '--width', '64', '--height', '64', '--steps', '2'], 'movie.gif'],
    ['upscale.ts', [photo], 'chelsea-crop-up.png'],
  ])('%s %j --out FOLDER: a usage error suggesting a file in it', async (script, args, fileName) => {
    const folder = join(dir, 'a-folder');
    await mkdir(folder, { recursive: true });
    const r = await cli(script, [...args, '--out', folder]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`error: --out ${folder} is a folder; give a file name, e.g. --out ${join(folder, fileName)}`);
    expect(r.stderr).not.toMatch(/Using the built-in demo model|\[#/);
  });
});

describe('seed flags take the engine\'s seeds (0..MAX_SEED) only', () => {
  const past = String(MAX_SEED + 1);
  const range = `from 0 to ${MAX_SEED}`;
  it.each([
    ['generate.ts', ['x', '--seed', past], '--seed'],
    ['blend.ts', ['a', 'b', '--seed-a', past], '--seed-a'],
    ['blend.ts', ['a', 'b', '--seed-b', past], '--seed-b'],
    ['movie.ts', ['a', 'b', '--seeds', `1,${past}`], '--seeds'],
  ])('%s %j: a usage error naming the range', async (script, args, flag) => {
    const r = await cli(script, args);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${flag} must be a whole number ${range}, got "${past}"`);
  });

  it('documents the range in --help', async () => {
    expect((await cli('generate.ts', ['--help'])).stdout).toContain(`--seed N            random seed, 0..${MAX_SEED}`);
    expect((await cli('blend.ts', ['--help'])).stdout).toContain(`seed of prompt A, 0..${MAX_SEED}`);
    expect((await cli('movie.ts', ['--help'])).stdout).toContain(`one seed per prompt, each 0..${MAX_SEED}`);
  });
});

describe('a prompt longer than MAX_PROMPT_LENGTH is refused before a model loads', () => {
  // Before, it was read (and cut at 75 CLIP tokens) by the text encoder; a prompt of some 30 000
  // characters made the process die of a segmentation fault as onnxruntime-node started (exit 139, nothing said).
  const photo = fileURLToPath(new URL('../fixtures/photos/coffee.png', import.meta.url));
  const long = 'a b c d e f '.repeat(3000);
  const over = 'x'.repeat(MAX_PROMPT_LENGTH + 1);
  it.each([
    ['generate.ts', [long, '--steps', '2'], `the prompt is ${long.length} characters long`],
    ['generate.ts', ['x', '--negative', over], `--negative is ${over.length} characters long`],
    ['blend.ts', ['a', over], `prompt 2 is ${over.length} characters long`],
    ['movie.ts', ['a', 'b', 'c', '--negative', over], `--negative is ${over.length} characters long`],
    ['vary.ts', [photo, '--model', 'no-such-model-folder', '--positive', `a|${over}`], `--positive prompt 2 is ${over.length} characters long`],
    ['upscale.ts', [photo, '--out', 'up.png', '--model', 'x4-diffusion', '--weights', 'no-such-model-folder', '--prompt', over], `--prompt is ${over.length} characters long`],
  ])('%s: exit 2, one line', async (script, args, what) => {
    const r = await cli(script, args as string[]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe(`error: ${what}; give at most ${MAX_PROMPT_LENGTH} (the text encoder reads about 300 characters, the rest is cut off)`);
  });
});
