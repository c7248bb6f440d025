/**
 * Loading errors say what is wrong and what to do: a fused graph whose ops have no kernel on the
 * chosen provider (ONNX Runtime's optimizer output with --float16 on a CPU worker), rather than
 * "not a loadable ONNX model".
 */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { rm, truncate, writeFile } from 'node:fs/promises';
import { ModelFileError, openSession, openSessionFromBytes, ortMessage } from '../../../engine/onnx/session.ts';
import { SYNTHETIC_MODEL_OPTIONS, TINY_UNET, syntheticUNet } from '../../../models/synthetic-unet.ts';
import { GraphBuilder, saveModel } from '../../../models/onnx/index.ts';
import { useTempDir } from '../../helpers/temp-dir.ts';

describe('openSession errors', () => {
  it('names the CUDA-only fused op and the way out when the CPU provider has no kernel for it', async () => {
    const fused = syntheticUNet(TINY_UNET, { fusion: 'cuda' }).graph.toModel(SYNTHETIC_MODEL_OPTIONS).model;
    const err = await openSessionFromBytes(fused, 'unet/model.onnx', { ep: 'cpu' }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ModelFileError);
    const msg = (err as Error).message;
    expect(msg).toMatch(/^unet\/model\.onnx: uses (NhwcConv|GroupNorm|SkipGroupNorm|BiasSplitGelu|BiasAdd), an operator the cpu provider has no kernel for\. /);
    expect(msg).toContain('--ep cuda (BLENDFARM_EP=cuda)');
    expect(msg).not.toMatch(/not a loadable ONNX model/);
  });

  it('names an op with no kernel that is not one of the optimizer\'s CUDA-only ops, without the optimizer advice', async () => {
    const g = new GraphBuilder('other');
    const x = g.input('x', 'float32', [4, 8]);
    g.output(g.op('PackedAttention', [x, g.constant(new Float32Array(8 * 24), [8, 24]), g.constant(new Float32Array(24), [24]), g.constant([0, 4], [2], 'int32'), g.constant([0, 4], [2], 'int32')], { num_heads: { int: 2 } }, { domain: 'com.microsoft' }), 'y', 'float32');
    const err = await openSessionFromBytes(g.toModel({ opset: 17, extraOpsets: [{ domain: 'com.microsoft', version: 1 }] }).model, 'other.onnx', { ep: 'cpu' }).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(err).toBeInstanceOf(ModelFileError);
    expect(err!.message).toMatch(/^other\.onnx: uses PackedAttention \(version 1\), which ONNX Runtime 1\.29\.0 has no kernel for on the cpu provider/);
    expect(err!.message).not.toMatch(/Stable Diffusion optimizer/);
  });

  it('still calls a file that is not ONNX at all not loadable', async () => {
    await expect(openSessionFromBytes(new TextEncoder().encode('not a model'), 'x.onnx', { ep: 'cpu' })).rejects.toThrow(/^x\.onnx: not a loadable ONNX model/);
  });
});

describe('ONNX Runtime load errors say what to do, in full words', () => {
  let dir = '';
  useTempDir('ort-load-', (d) => (dir = d));
  const addModel = (opts: { irVersion?: number; opset?: number; externalData?: { location: string; minBytes: number } } = {}) => {
    const g = new GraphBuilder('m');
    const x = g.input('x', 'float32', [1, 256]);
    g.output(g.op('Add', [x, g.initializer('w', 'float32', [1, 256], new Float32Array(256).fill(1))]), 'y', 'float32', [1, 256]);
    return g.toModel(opts);
  };
  const openError = (file: string) => openSession(file, { ep: 'cpu' }).then(
    async (s) => {
      await s.session.release();
      return undefined;
    },
    (e: unknown) => e as Error,
  );

  it('IR version 14 points to the fix models/README.md documents (it was: "not a loadable ONNX model (... max supported IR version: 13)")', async () => {
    await saveModel(join(dir, 'ir14'), 'model.onnx', addModel({ irVersion: 14 }));
    const file = join(dir, 'ir14', 'model.onnx');
    const err = await openError(file);
    expect(err).toBeInstanceOf(ModelFileError);
    expect(err!.message).toBe(
      `${file}: is stored in ONNX IR version 14, and ONNX Runtime 1.29.0 reads up to IR version 13. The graph itself is usually fine: set its IR version to 13 (models/README.md, "Fast GPU graphs"): ` +
        `python -c "import onnx,sys; m=onnx.load(sys.argv[1],load_external_data=False); m.ir_version=13; onnx.save(m,sys.argv[1])" ${file}`,
    );
    // The same command and wording as models/README.md's "Fast GPU graphs".
    const readme = readFileSync(new URL('../../../models/README.md', import.meta.url), 'utf8');
    expect(readme).toContain('`python -c "import onnx,sys; m=onnx.load(sys.argv[1],load_external_data=False); m.ir_version=13; onnx.save(m,sys.argv[1])" unet/model.onnx`');
    expect(readme.replace(/\s+/g, ' ')).toContain('if a load fails with "is stored in ONNX IR version 14"');
  });

  it('an opset too new says which opsets are supported, whole (it was: cut at 400 characters, mid-word, before the supported opset)', async () => {
    await saveModel(join(dir, 'opset'), 'model.onnx', addModel({ opset: 99 }));
    const err = await openError(join(dir, 'opset', 'model.onnx'));
    expect(err).toBeInstanceOf(ModelFileError);
    expect(err!.message).toMatch(/model\.onnx: uses opset 99 of ai\.onnx, which ONNX Runtime 1\.29\.0 does not support: it supports ai\.onnx up to opset \d+\. Export the model again with a released opset \(opset 17 works/);
  });

  it('truncated external weights are called truncated; absent ones missing (it was: "missing or unreadable" for both)', async () => {
    await saveModel(join(dir, 'trunc'), 'model.onnx', addModel({ externalData: { location: 'model.onnx_data', minBytes: 16 } }));
    const file = join(dir, 'trunc', 'model.onnx');
    await truncate(join(dir, 'trunc', 'model.onnx_data'), 100);
    const err = await openError(file);
    expect(err!.message).toMatch(/model\.onnx: its external weight file model\.onnx_data is truncated or unreadable: the model reads past its end \(.*given file_length: 100 are out of bounds.*\); copy the weights again whole/);
    expect(err!.message).not.toMatch(/onnxruntime_src|missing/);
    await rm(join(dir, 'trunc', 'model.onnx_data'));
    expect((await openError(file))!.message).toBe(`${file}: its external weight file model.onnx_data is missing; keep model.onnx and its weights file side by side`);
  });

  it('other errors lose ONNX Runtime\'s source paths and C++ signatures, and a long one is cut at a word', () => {
    expect(
      ortMessage(
        'Load model from /m/unet/model.onnx failed:/onnxruntime_src/onnxruntime/core/graph/model.cc:192 onnxruntime::Model::Model(onnx::ModelProto&&, const onnxruntime::PathString&, const onnxruntime::ModelOptions&) Something odd: 3 vs 4\nmore',
      ),
    ).toBe('Something odd: 3 vs 4');
    const long = ortMessage(`${'word '.repeat(100)}end`);
    expect(long.length).toBeLessThanOrEqual(401);
    expect(long).toMatch(/ word…$/);
  });
});

describe('a download that skipped the Git LFS files', () => {
  let dir = '';
  useTempDir('lfs-', (d) => (dir = d));
  const pointer = 'version https://git-lfs.github.com/spec/v1\noid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 3438167534\n';
  const openError = (file: string) => openSession(file, { ep: 'cpu' }).then(
    async (s) => {
      await s.session.release();
      return undefined;
    },
    (e: unknown) => e as Error,
  );

  it('a model.onnx that is an LFS pointer is named as such, with the way to fetch it (it read: not a loadable ONNX model)', async () => {
    await writeFile(join(dir, 'model.onnx'), pointer);
    const err = await openError(join(dir, 'model.onnx'));
    expect(err).toBeInstanceOf(ModelFileError);
    expect(err!.message).toMatch(/model\.onnx: this file is a Git LFS pointer \(a few lines of text\), not the model's data: the download skipped the large files; fetch them \(git lfs pull/);
  });

  it('external weights that are an LFS pointer are named, the model file beside them being fine', async () => {
    const g = new GraphBuilder('external');
    const x = g.input('x', 'float32', [1, 256]);
    g.output(g.op('Add', [x, g.initializer('w', 'float32', [1, 256], new Float32Array(256).fill(1))]), 'y', 'float32', [1, 256]);
    const sub = join(dir, 'ext');
    await saveModel(sub, 'model.onnx', g.toModel({ externalData: { location: 'model.onnx_data', minBytes: 16 } }));
    expect((await openError(join(sub, 'model.onnx'))) ?? 'loaded').toBe('loaded'); // the real weights load
    await writeFile(join(sub, 'model.onnx_data'), pointer);
    const err = await openError(join(sub, 'model.onnx'));
    expect(err).toBeInstanceOf(ModelFileError);
    expect(err!.message).toMatch(/model\.onnx: its weights file model\.onnx_data is a Git LFS pointer/);
  });

  /** A folder holding model.onnx with its weights in model.onnx_data, and `extra` files beside them. */
  const externalModel = async (name: string, extra: Record<string, string>): Promise<string> => {
    const g = new GraphBuilder('external');
    const x = g.input('x', 'float32', [1, 256]);
    g.output(g.op('Add', [x, g.initializer('w', 'float32', [1, 256], new Float32Array(256).fill(1))]), 'y', 'float32', [1, 256]);
    const sub = join(dir, name);
    await saveModel(sub, 'model.onnx', g.toModel({ externalData: { location: 'model.onnx_data', minBytes: 16 } }));
    for (const [file, text] of Object.entries(extra)) await writeFile(join(sub, file), text);
    return join(sub, 'model.onnx');
  };

  it('an unrelated pointer file in the folder is not blamed for a weights file that is broken in another way (it was: the first small pointer in the folder was named)', async () => {
    const model = await externalModel('unrelated', { 'a-notes.onnx_data': pointer, 'model.onnx_data': 'truncated' });
    const err = await openError(model);
    expect(err).toBeInstanceOf(ModelFileError);
    expect(err!.message).toMatch(/model\.onnx: its external weight file model\.onnx_data is truncated or unreadable: the model reads past its end \(/);
    expect(err!.message).not.toMatch(/Git LFS|a-notes/);
  });

  it('with an unrelated pointer file beside it, the pointer the model needs is the one named', async () => {
    const model = await externalModel('both', { 'a-notes.onnx_data': pointer, 'model.onnx_data': pointer });
    const err = await openError(model);
    expect(err!.message).toMatch(/model\.onnx: its weights file model\.onnx_data is a Git LFS pointer \(a few lines of text\)/);
    expect(err!.message).not.toMatch(/a-notes/);
  });
});
