/** The SD-shaped benchmark UNet is a valid ONNX graph with an SD UNet's interface. */
import { describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';
import { syntheticUNet, TINY_UNET } from '../../models/synthetic-unet.ts';

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
});
