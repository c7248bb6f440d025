/** externalDataLocations lists the weight files a model names, and nothing for a model that keeps its weights inline. */
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { writeFile } from 'node:fs/promises';
import { externalDataLocations } from '../../../engine/onnx/external-data.ts';
import { GraphBuilder, saveModel } from '../../../models/onnx/index.ts';
import { useTempDir } from '../../helpers/temp-dir.ts';

describe('externalDataLocations', () => {
  let dir = '';
  useTempDir('extdata-', (d) => (dir = d));
  const build = (location?: string) => {
    const g = new GraphBuilder('m');
    const x = g.input('x', 'float32', [1, 64]);
    const w = g.initializer('w', 'float32', [1, 64], new Float32Array(64).fill(2));
    const b = g.initializer('b', 'float32', [1, 64], new Float32Array(64).fill(3));
    g.output(g.op('Add', [g.op('Mul', [x, w]), b]), 'y', 'float32', [1, 64]);
    return g.toModel(location ? { externalData: { location, minBytes: 16 } } : {});
  };

  it('names the external weights file once, though two initializers live in it', async () => {
    await saveModel(join(dir, 'ext'), 'model.onnx', build('weights.bin'));
    expect(externalDataLocations(join(dir, 'ext', 'model.onnx'))).toEqual(['weights.bin']);
  });

  it('is empty for a model with its weights inline', async () => {
    await saveModel(join(dir, 'inline'), 'model.onnx', build());
    expect(externalDataLocations(join(dir, 'inline', 'model.onnx'))).toEqual([]);
  });

  it('throws for a file that is not a protobuf message (the caller then checks the model file alone)', async () => {
    await writeFile(join(dir, 'text.onnx'), 'version https://git-lfs.github.com/spec/v1\n');
    expect(() => externalDataLocations(join(dir, 'text.onnx'))).toThrow();
  });
});
