/** The SD-shaped benchmark UNet is a valid ONNX graph with an SD UNet's interface. */
import { describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';
import { syntheticUNet, TINY_UNET, type WeightCache } from '../../models/synthetic-unet.ts';

describe('synthetic SD-shaped UNet', () => {
  it('runs on the CPU with SD inputs (sample, timestep, encoder_hidden_states) and keeps the latent shape', async () => {
    const { graph, parameters } = syntheticUNet(TINY_UNET);
    expect(parameters).toBeGreaterThan(100_000);
    const session = await ort.InferenceSession.create(graph.toModel({ opset: 17 }).model);
    expect(session.inputNames).toEqual(['sample', 'timestep', 'encoder_hidden_states']);
    const run = async (batch: number, t: number) => {
      const sample = new ort.Tensor('float32', Float32Array.from({ length: batch * 4 * 16 * 24 }, (_, i) => Math.sin(i)), [batch, 4, 16, 24]);
      const ctx = new ort.Tensor('float32', Float32Array.from({ length: batch * 77 * 32 }, (_, i) => Math.cos(i)), [batch, 77, 32]);
      const out = await session.run({ sample, timestep: new ort.Tensor('float32', [t], [1]), encoder_hidden_states: ctx });
      return out.out_sample;
    };
    const a = await run(2, 500);
    expect(a.dims).toEqual([2, 4, 16, 24]);
    const data = a.data as Float32Array;
    expect(data.every(Number.isFinite)).toBe(true);
    // The timestep and the text reach the output.
    const b = await run(2, 10);
    expect((b.data as Float32Array).some((v, i) => Math.abs(v - data[i]) > 1e-4)).toBe(true);
    await session.release();
  });

  it('one weight cache serves builds of both dtypes: an fp16 build after an fp32 one has the same weights', async () => {
    const { floatTensor, readFloat } = await import('../../engine/tensor/tensors.ts');
    const { relativeError } = await import('../../bench/gpu-common.ts');
    const { SYNTHETIC_MODEL_OPTIONS } = await import('../../models/synthetic-unet.ts');
    const weights: WeightCache = [];
    const fp32 = syntheticUNet(TINY_UNET, { weights });
    const fp16 = syntheticUNet({ ...TINY_UNET, dtype: 'float16' }, { weights });
    const fresh = syntheticUNet({ ...TINY_UNET, dtype: 'float16' });
    const outputs: Float32Array[] = [];
    for (const [built, dtype] of [[fp32, 'float32'], [fp16, 'float16'], [fresh, 'float16']] as const) {
      const session = await ort.InferenceSession.create(built.graph.toModel(SYNTHETIC_MODEL_OPTIONS).model);
      const feeds = {
        sample: floatTensor(dtype, Float32Array.from({ length: 2 * 4 * 8 * 8 }, (_, i) => Math.sin(i)), [2, 4, 8, 8]),
        timestep: new ort.Tensor('float32', [321], [1]),
        encoder_hidden_states: floatTensor(dtype, Float32Array.from({ length: 2 * 77 * 32 }, (_, i) => Math.cos(i)), [2, 77, 32]),
      };
      outputs.push(Float32Array.from(readFloat((await session.run(feeds)).out_sample)));
      await session.release();
    }
    // The fp16 build from the shared cache computes what the fp32 one does, up to fp16 rounding;
    // a fresh fp16 build draws the same values in the same order, so it is the same graph.
    expect(relativeError(outputs[1], outputs[0]).rel).toBeLessThan(1e-2);
    expect(relativeError(outputs[2], outputs[1]).rel).toBe(0);
  });
});
