/**
 * readModelFolder on folders built in a temporary directory from the project's test models: the
 * size rule from unet/config.json, files this user may not read or folders where a file should be
 * (named as such, not as "not valid JSON" or "file not found"), and an SDXL folder without
 * tokenizer_2/.
 */
import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { chmod, cp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { InvalidRequestError, ModelFileError, readModelFolder, StableDiffusionPipeline } from '../../../engine/index.ts';
import { resolveSettings } from '../../../engine/pipeline/stable-diffusion.ts';
import { openSession } from '../../../engine/onnx/session.ts';
import { GraphBuilder, saveModel } from '../../../models/onnx/index.ts';
import { testModelDir } from '../../../models/paths.ts';
import { ROOT, TSX } from '../../helpers/cli.ts';
import { useTempDir } from '../../helpers/temp-dir.ts';

let tmp = '';
useTempDir('model-folder-', (d) => (tmp = d));

/** A copy of test model `name` under the temp folder, as `as`. */
async function copyModel(name: string, as: string): Promise<string> {
  const dir = join(tmp, as);
  await cp(testModelDir(name), dir, { recursive: true });
  return dir;
}

async function setUnetConfig(dir: string, change: Record<string, unknown>): Promise<void> {
  const file = join(dir, 'unet', 'config.json');
  await writeFile(file, JSON.stringify({ ...JSON.parse(await readFile(file, 'utf8')), ...change }));
}

const errorOf = (f: () => unknown): Error => {
  try {
    f();
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected an error');
};

describe('sizes: a multiple of the VAE factor x the UNet\'s downsampling (unet/config.json block_out_channels)', () => {
  it('SD 1.5\'s four blocks make 64 px; 520 is refused naming 64, 512 and 576 pass (it was: 520 passed, then ONNX Runtime failed in a Concat)', async () => {
    const dir = await copyModel('demo', 'sd15-blocks');
    await setUnetConfig(dir, { block_out_channels: [320, 640, 1280, 1280] });
    const folder = readModelFolder(dir);
    expect(folder.vaeScaleFactor).toBe(8);
    expect(folder.sizeMultiple).toBe(64);
    const err = errorOf(() => resolveSettings(folder.defaults, folder, { width: 520, height: 512 }));
    expect(err).toBeInstanceOf(InvalidRequestError);
    expect(err.message).toBe("width must be a multiple of 64 for this model (its VAE's factor 8 x its UNet's downsampling 8) between 64 and 4096 pixels, got 520");
    expect(errorOf(() => resolveSettings(folder.defaults, folder, { width: 512, height: 136 })).message).toMatch(/^height must be a multiple of 64 for this model/);
    expect(resolveSettings(folder.defaults, folder, { width: 576, height: 512 })).toMatchObject({ width: 576, height: 512 });
    // The pipeline's own check (generate, blend, movie go through resolve and latentSize).
    const pipe = await StableDiffusionPipeline.load(dir);
    try {
      expect(() => pipe.resolve({ prompt: 'x', width: 520, height: 512 })).toThrow(/multiple of 64 for this model/);
      expect(() => pipe.latentSize(520, 512)).toThrow(/multiple of 64 for this model/);
    } finally {
      await pipe.release();
    }
  });

  it('SDXL\'s three blocks make 32 px', async () => {
    const dir = await copyModel('demo', 'xl-blocks');
    await setUnetConfig(dir, { block_out_channels: [320, 640, 1280] });
    expect(readModelFolder(dir).sizeMultiple).toBe(32);
  });

  it('without block_out_channels the VAE factor alone, as before (8: 72 px passes)', () => {
    const folder = readModelFolder(testModelDir('demo'));
    expect(folder.sizeMultiple).toBe(8);
    expect(resolveSettings(folder.defaults, folder, { width: 72, height: 64 })).toMatchObject({ width: 72 });
    expect(errorOf(() => resolveSettings(folder.defaults, folder, { width: 100, height: 64 })).message).toBe('width must be a multiple of 8 between 64 and 4096 pixels, got 100');
  });

  it('a malformed block_out_channels is named', async () => {
    const dir = await copyModel('demo', 'bad-blocks');
    await setUnetConfig(dir, { block_out_channels: 'many' });
    expect(errorOf(() => readModelFolder(dir)).message).toMatch(/unet\/config\.json: "block_out_channels" should be a list of 1 to 8 channel counts \(the UNet's down blocks\), got "many"/);
  });
});

describe('a folder where a file should be is named as a folder (it was: "not valid JSON" or an ONNX Runtime error)', () => {
  it('model_index.json, scheduler_config.json, a model.onnx and vocab.json that are folders', async () => {
    for (const file of ['model_index.json', 'scheduler/scheduler_config.json', 'unet/model.onnx', 'tokenizer/vocab.json', 'unet/config.json']) {
      const dir = await copyModel('demo', `dir-${file.replace(/\W/g, '-')}`);
      await rm(join(dir, file));
      await mkdir(join(dir, file));
      const err = errorOf(() => readModelFolder(dir));
      expect(err, file).toBeInstanceOf(ModelFileError);
      expect(err.message, file).toBe(`${join(dir, file)} is a folder, not a file`);
    }
  });
});

/**
 * Reads `dir` with readModelFolder, and opens `onnx`, as a user that the files' permissions stop:
 * this process when it is not root; as root (whom chmod does not stop), a child process running
 * as nobody (uid 65534). Returns the two error messages ('' when it succeeded).
 */
async function readAsUnprivileged(dir: string, onnx: string): Promise<{ folder: string; onnx: string }> {
  if (process.getuid?.() !== 0) {
    const folder = (() => {
      try {
        readModelFolder(dir);
        return '';
      } catch (err) {
        return (err as Error).message;
      }
    })();
    const onnxError = await openSession(onnx).then(
      async (s) => {
        await s.session.release();
        return '';
      },
      (err: unknown) => (err as Error).message,
    );
    return { folder, onnx: onnxError };
  }
  const script = join(tmp, 'read-as-nobody.mts');
  await writeFile(
    script,
    `import { readModelFolder } from ${JSON.stringify(join(ROOT, 'engine/pipeline/model-folder.ts'))};
import { openSession } from ${JSON.stringify(join(ROOT, 'engine/onnx/session.ts'))};
const out = { folder: '', onnx: '' };
try { readModelFolder(process.argv[2]); } catch (err) { out.folder = err.message; }
try { await (await openSession(process.argv[3])).session.release(); } catch (err) { out.onnx = err.message; }
process.stdout.write(JSON.stringify(out));
`,
  );
  await chmod(script, 0o644);
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', TSX, script, dir, onnx], {
    uid: 65534,
    gid: 65534,
    cwd: tmp,
    env: { ...process.env, HOME: tmp, TSX_TSCONFIG_PATH: join(ROOT, 'tsconfig.json') },
  });
  return JSON.parse(stdout) as { folder: string; onnx: string };
}

describe('files this user may not read are named as such (it was: "not valid JSON", "file not found", "system error number 13")', () => {
  it('an unreadable model_index.json, an unreadable unet/ folder, and unreadable external weights', async () => {
    await chmod(tmp, 0o755);
    const permIndex = await copyModel('demo', 'perm-index');
    const permUnet = await copyModel('demo', 'perm-unet');
    const ext = join(tmp, 'perm-ext');
    const g = new GraphBuilder('external');
    const x = g.input('x', 'float32', [1, 256]);
    g.output(g.op('Add', [x, g.initializer('w', 'float32', [1, 256], new Float32Array(256).fill(1))]), 'y', 'float32', [1, 256]);
    await saveModel(ext, 'model.onnx', g.toModel({ externalData: { location: 'model.onnx_data', minBytes: 16 } }));
    await chmod(join(permIndex, 'model_index.json'), 0o000);
    await chmod(join(permUnet, 'unet'), 0o700);
    await chmod(join(ext, 'model.onnx_data'), 0o000);
    const hint = '(check its permissions for the user running Blendfarm)';
    const index = await readAsUnprivileged(permIndex, join(ext, 'model.onnx'));
    expect(index.folder).toBe(`permission denied: ${join(permIndex, 'model_index.json')} ${hint}`);
    expect(index.onnx).toBe(`permission denied: ${join(ext, 'model.onnx_data')} ${hint}`);
    const unet = await readAsUnprivileged(permUnet, join(ext, 'model.onnx'));
    expect(unet.folder).toBe(`permission denied: ${join(permUnet, 'unet', 'model.onnx')} ${hint}`);
  }, 60_000);
});

describe('an SDXL folder without tokenizer_2/', () => {
  it('uses tokenizer/ for the second encoder with a warning on the pipeline (it was: silently)', async () => {
    const dir = await copyModel('xl', 'xl-no-tok2');
    await rm(join(dir, 'tokenizer_2'), { recursive: true });
    const folder = readModelFolder(dir);
    expect(folder.tokenizer2Dir).toBe(folder.tokenizerDir);
    expect(folder.warnings).toEqual([expect.stringMatching(/tokenizer_2 is missing, so the second text encoder uses tokenizer\/: SDXL's own tokenizer_2 pads prompts with "!" where tokenizer\/ pads with <\|endoftext\|>/)]);
    const pipe = await StableDiffusionPipeline.load(dir);
    try {
      expect(pipe.warnings).toEqual(folder.warnings);
      const out = await pipe.generate({ prompt: 'x', width: 64, height: 64, steps: 1, seed: 1 });
      expect(out.warnings).toEqual(folder.warnings);
    } finally {
      await pipe.release();
    }
    expect(readModelFolder(testModelDir('xl')).warnings).toEqual([]);
  });
});
