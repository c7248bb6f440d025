/**
 * The ONNX conversion of the @upscalerjs/esrgan-* TensorFlow.js models must compute what the original
 * computes: the same weights run in @tensorflow/tfjs (pure JavaScript, dev dependency) on a crop of a
 * real photo, and ONNX Runtime's output must agree within 1e-3 of the value range.
 */
import { describe, expect, it, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { mkdtemp, readFile, writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureSuperResolutionModel, findPackageDir, readUpscalerManifest, superResolutionEntry } from '../../../models/esrgan/catalog.ts';
import { convertLayersModel, readTfjsLayersModel, ConversionError } from '../../../models/esrgan/convert.ts';
import { saveModel } from '../../../models/onnx/index.ts';

const CROP = join(import.meta.dirname, '../../fixtures/photos/chelsea-crop.png');

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** A w x h crop of the fixture photo as RGB floats in [0, 1], NHWC and NCHW. */
async function photoCrop(left: number, top: number, w: number, h: number): Promise<{ nhwc: Float32Array; nchw: Float32Array }> {
  const buf = await sharp(CROP).extract({ left, top, width: w, height: h }).removeAlpha().raw().toBuffer();
  const nhwc = new Float32Array(w * h * 3);
  const nchw = new Float32Array(w * h * 3);
  for (let p = 0; p < w * h; p++)
    for (let c = 0; c < 3; c++) {
      nhwc[p * 3 + c] = buf[p * 3 + c] / 255;
      nchw[c * w * h + p] = buf[p * 3 + c] / 255;
    }
  return { nhwc, nchw };
}

/** Loads a package's model.json + shards into tfjs through an in-memory IO handler (no tfjs-node, no fetch). */
async function tfjsModel(dir: string): Promise<tf.LayersModel> {
  const json = JSON.parse(await readFile(join(dir, 'model.json'), 'utf8'));
  const groups = json.weightsManifest as { paths: string[]; weights: tf.io.WeightsManifestEntry[] }[];
  const buffers = await Promise.all(groups.flatMap((g) => g.paths.map((p) => readFile(join(dir, p)))));
  const data = Buffer.concat(buffers);
  return tf.loadLayersModel(
    tf.io.fromMemory({
      modelTopology: json.modelTopology,
      weightSpecs: groups.flatMap((g) => g.weights),
      weightData: data.buffer.slice(data.byteOffset, data.byteOffset + data.length),
    }),
  );
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** NHWC -> NCHW for a [1, h, w, c] tensor's data. */
function toNchw(nhwc: Float32Array, h: number, w: number, c: number): Float32Array {
  const out = new Float32Array(nhwc.length);
  for (let p = 0; p < h * w; p++) for (let k = 0; k < c; k++) out[k * h * w + p] = nhwc[p * c + k];
  return out;
}

describe.each([
  ['esrgan-slim', 2, 40],
  ['esrgan-slim', 4, 24],
  ['esrgan-medium', 2, 32],
  ['esrgan-medium', 3, 24],
] as const)('%s %ix, converted to ONNX', (name, scale, size) => {
  it(`agrees with TensorFlow.js on a ${size}x${size} crop of a real photo`, async () => {
    const entry = superResolutionEntry(name);
    const pkg = findPackageDir(entry.packageName);
    expect(pkg, `${entry.packageName} is a dependency and must be installed`).not.toBeNull();
    const dir = await ensureSuperResolutionModel(name, scale);
    const manifest = await readUpscalerManifest(dir);
    expect(manifest).toMatchObject({ kind: 'super-resolution', name, scale });

    const { nhwc, nchw } = await photoCrop(30, 20, size, size);
    // UpscalerJS feeds RDN models [0, 255] and reads [0, 255] back; the ONNX model takes and gives [0, 1].
    const model = await tfjsModel(join(pkg!, 'models', `x${scale}`));
    const input = tf.tensor4d(nhwc, [1, size, size, 3]).mul(255);
    const expected = (model.predict(input) as tf.Tensor).div(255);
    expect(expected.shape).toEqual([1, size * scale, size * scale, 3]);
    const reference = toNchw((await expected.data()) as Float32Array, size * scale, size * scale, 3);
    tf.dispose([input, expected]);
    model.dispose();

    const session = await ort.InferenceSession.create(join(dir, 'model.onnx'));
    const out = await session.run({ image: new ort.Tensor('float32', nchw, [1, 3, size, size]) });
    await session.release();
    expect(out.upscaled.dims).toEqual([1, 3, size * scale, size * scale]);
    const got = out.upscaled.data as Float32Array;
    // Range [0, 1]: the bound is 1e-3 of it.
    expect(maxAbsDiff(got, reference)).toBeLessThan(1e-3);
    // And the network does something: it is not a plain nearest-neighbour enlargement of the input.
    let sum = 0;
    for (let i = 0; i < reference.length; i++) sum += reference[i];
    expect(sum / reference.length).toBeGreaterThan(0.1);
  });
});

describe('UpscalerJS custom layers (RRDN: MultiplyBeta, PixelShuffle)', () => {
  // The thick (RRDN) package is 110 MB and not installed by default; its two custom layers are checked
  // on a small network built in tfjs with the same layer classes the package registers.
  class MultiplyBeta extends tf.layers.Layer {
    static className = 'MultiplyBeta';
    beta = 0.2;
    constructor() {
      super({});
    }
    override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
      return tf.mul(Array.isArray(inputs) ? inputs[0] : inputs, this.beta);
    }
  }
  class PixelShuffle2x extends tf.layers.Layer {
    static className = 'PixelShuffle2x';
    constructor() {
      super({});
    }
    override computeOutputShape(s: tf.Shape): tf.Shape {
      return [s[0], s[1] === null ? null : s[1] * 2, s[2] === null ? null : s[2] * 2, 3];
    }
    override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
      return tf.depthToSpace((Array.isArray(inputs) ? inputs[0] : inputs) as tf.Tensor4D, 2, 'NHWC');
    }
  }
  tf.serialization.registerClass(MultiplyBeta);
  tf.serialization.registerClass(PixelShuffle2x);

  it('converts to ONNX and agrees with TensorFlow.js on a real photo crop', async () => {
    const inp = tf.input({ shape: [null, null, 3], name: 'LR' });
    const f0 = tf.layers.conv2d({ filters: 8, kernelSize: 3, padding: 'same', name: 'F0', kernelInitializer: 'glorotNormal', biasInitializer: 'randomNormal' }).apply(inp) as tf.SymbolicTensor;
    const f1 = tf.layers.conv2d({ filters: 8, kernelSize: 3, padding: 'same', name: 'F1', kernelInitializer: 'glorotNormal', biasInitializer: 'randomNormal' }).apply(f0) as tf.SymbolicTensor;
    const r1 = tf.layers.activation({ activation: 'relu', name: 'R1' }).apply(f1) as tf.SymbolicTensor;
    const cat = tf.layers.concatenate({ axis: 3, name: 'C' }).apply([f0, r1]) as tf.SymbolicTensor;
    const lff = tf.layers.conv2d({ filters: 8, kernelSize: 1, padding: 'valid', name: 'LFF', kernelInitializer: 'glorotNormal' }).apply(cat) as tf.SymbolicTensor;
    const beta = new MultiplyBeta().apply(lff) as tf.SymbolicTensor;
    const add = tf.layers.add({ name: 'A' }).apply([beta, f0]) as tf.SymbolicTensor;
    const up = tf.layers.conv2d({ filters: 12, kernelSize: 3, padding: 'same', name: 'UP', kernelInitializer: 'glorotNormal' }).apply(add) as tf.SymbolicTensor;
    const ps = new PixelShuffle2x().apply(up) as tf.SymbolicTensor;
    const sr = tf.layers.conv2d({ filters: 3, kernelSize: 3, padding: 'same', name: 'SR', kernelInitializer: 'glorotNormal' }).apply(ps) as tf.SymbolicTensor;
    const model = tf.model({ inputs: inp, outputs: sr });

    const dir = await mkdtemp(join(tmpdir(), 'rrdn-'));
    try {
      await model.save(
        tf.io.withSaveHandler(async (a) => {
          const json = { format: 'layers-model', modelTopology: a.modelTopology, weightsManifest: [{ paths: ['w.bin'], weights: a.weightSpecs }] };
          await writeFile(join(dir, 'model.json'), JSON.stringify(json));
          await writeFile(join(dir, 'w.bin'), new Uint8Array(a.weightData as ArrayBuffer));
          return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
        }),
      );
      const { json, weights } = await readTfjsLayersModel(dir);
      const converted = convertLayersModel(json, weights, { name: 'rrdn-test', scale: 2, inputRange: [0, 1] });
      expect(converted.layers).toMatchObject({ MultiplyBeta: 1, PixelShuffle2x: 1, Concatenate: 1 });
      // 3x3 convs: F0, F1, UP in input pixels, SR at 2x: 1 + 1 + 1 + 0.5 -> 4.
      expect(converted.receptiveRadius).toBe(4);
      await saveModel(dir, 'model.onnx', converted.built);

      const size = 20;
      const { nhwc, nchw } = await photoCrop(60, 40, size, size);
      const x = tf.tensor4d(nhwc, [1, size, size, 3]);
      const y = model.predict(x) as tf.Tensor;
      const reference = toNchw((await y.data()) as Float32Array, size * 2, size * 2, 3);
      tf.dispose([x, y]);
      const session = await ort.InferenceSession.create(join(dir, 'model.onnx'));
      const out = await session.run({ image: new ort.Tensor('float32', nchw, [1, 3, size, size]) });
      await session.release();
      let range = 0;
      for (const v of reference) range = Math.max(range, Math.abs(v));
      expect(maxAbsDiff(out.upscaled.data as Float32Array, reference)).toBeLessThan(1e-3 * Math.max(1, range));
    } finally {
      model.dispose();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses a layer it does not know, naming it', async () => {
    const json = {
      format: 'layers-model',
      modelTopology: {
        model_config: {
          class_name: 'Functional',
          config: {
            layers: [
              { class_name: 'InputLayer', config: { name: 'in', batch_input_shape: [null, null, null, 3] }, inbound_nodes: [] },
              { class_name: 'BatchNormalization', config: { name: 'bn' }, inbound_nodes: [[['in', 0, 0, {}]]] },
            ],
            input_layers: [['in', 0, 0]],
            output_layers: [['bn', 0, 0]],
          },
        },
      },
      weightsManifest: [],
    };
    expect(() => convertLayersModel(json, new Map(), { name: 'x', scale: 2, inputRange: [0, 1] })).toThrow(ConversionError);
    expect(() => convertLayersModel(json, new Map(), { name: 'x', scale: 2, inputRange: [0, 1] })).toThrow(/bn is a BatchNormalization/);
  });
});
