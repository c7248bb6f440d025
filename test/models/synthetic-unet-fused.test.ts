/**
 * Fused synthetic graphs (ONNX Runtime contrib ops) compute what the plain ones compute, with the
 * same weights. On the CPU only the 'cpu-safe' ops have kernels; the CUDA-only ones are checked
 * on a GPU by scripts/gpu-check-fusion.ts (run by scripts/gpu-run.sh).
 */
import { describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';
import { relativeError as gpuRelativeError } from '../../bench/gpu-common.ts';
import {
  CUDA_CHECK_UNET,
  FUSED_OPS,
  SYNTHETIC_MODEL_OPTIONS,
  TINY_UNET,
  TINY_VAE,
  fusionFor,
  syntheticUNet,
  syntheticVaeDecoder,
  type SyntheticGraph,
  type WeightCache,
} from '../../models/synthetic-unet.ts';

function opCounts(built: SyntheticGraph): Map<string, number> {
  const counts = new Map<string, number>();
  for (const n of built.graph.toGraphProto(new Set()).node) counts.set(n.opType, (counts.get(n.opType) ?? 0) + 1);
  return counts;
}

async function session(built: SyntheticGraph): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(built.graph.toModel(SYNTHETIC_MODEL_OPTIONS).model);
}

/** ‖a − b‖ / ‖b‖ (bench/gpu-common.ts, as the GPU check measures it). */
const relativeError = (a: Float32Array, b: Float32Array) => gpuRelativeError(a, b).rel;

const fresh = (n: number, seed: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.731 + seed) * 1.3 + Math.cos(i * 0.0173 * seed));

describe('fused synthetic UNet', () => {
  it('cpu-safe fusion matches the plain graph on the CPU (same weights, fp32 tolerance)', async () => {
    const plain = syntheticUNet(TINY_UNET);
    const fused = syntheticUNet(TINY_UNET, { fusion: 'cpu-safe' });
    expect(fused.parameters).toBe(plain.parameters);
    const [a, b] = [await session(plain), await session(fused)];
    expect(b.inputNames).toEqual(a.inputNames);
    expect(b.outputNames).toEqual(a.outputNames);
    for (const [batch, seed] of [[1, 1], [3, 2]]) {
      const feeds = {
        sample: new ort.Tensor('float32', fresh(batch * 4 * 16 * 16, seed), [batch, 4, 16, 16]),
        timestep: new ort.Tensor('float32', [321 + seed], [1]),
        encoder_hidden_states: new ort.Tensor('float32', fresh(batch * 77 * 32, seed + 10), [batch, 77, 32]),
      };
      const ref = (await a.run(feeds)).out_sample.data as Float32Array;
      const out = (await b.run(feeds)).out_sample.data as Float32Array;
      expect(out.every(Number.isFinite)).toBe(true);
      expect(relativeError(out, ref)).toBeLessThan(1e-4);
    }
    await a.release();
    await b.release();
  });

  it('leaves no plain attention (MatMul-Softmax-MatMul) and no erf GELU in the cpu-safe graph', () => {
    const plain = opCounts(syntheticUNet(TINY_UNET));
    const fused = opCounts(syntheticUNet(TINY_UNET, { fusion: 'cpu-safe' }));
    // TINY_UNET has 2 transformers (down level 0, mid), 2 on the way up: 2 attentions each.
    const transformers = plain.get('Softmax')! / 2;
    expect(transformers).toBe(4);
    expect(fused.get('Softmax') ?? 0).toBe(0);
    expect(fused.get('Erf') ?? 0).toBe(0);
    expect(fused.get('MultiHeadAttention')).toBe(2 * transformers);
    expect(fused.get('SkipLayerNormalization')).toBe(2 * transformers);
    expect(fused.get('Gelu')).toBe(transformers);
    // Each attention loses its QK^T and its scores x V MatMuls.
    expect(plain.get('MatMul')! - fused.get('MatMul')!).toBe(2 * 2 * transformers);
  });

  it('cuda fusion replaces GroupNorm, GEGLU, bias adds and convolutions too, runs channels-last, and a CPU session refuses it', async () => {
    // Op counts do not depend on sizes; the tiny shape is quick to build (CUDA_CHECK_UNET is what a GPU runs).
    const fused = opCounts(syntheticUNet(TINY_UNET, { fusion: 'cuda' }));
    const cpuSafe = opCounts(syntheticUNet(TINY_UNET, { fusion: 'cpu-safe' }));
    // BiasSplitGelu takes over GEGLU's Gelu; PackedQkv is a layout of MultiHeadAttention's inputs.
    for (const op of FUSED_OPS.cuda.filter((o) => o !== 'Gelu' && o !== 'PackedQkv')) expect(fused.get(op), op).toBeGreaterThan(0);
    expect(fused.get('Conv') ?? 0).toBe(0);
    // Channels-last throughout: one Transpose in (sample), one out; tokens are Reshapes of the map.
    expect(fused.get('Transpose')).toBe(2);
    // One Expand gives the time embedding the batch's size for every SkipGroupNorm.
    expect(fused.get('Expand')).toBe(1);
    // Packed projections: self-attention's Q, K, V in one MatMul, cross-attention's K, V in one.
    expect(cpuSafe.get('MatMul')! - fused.get('MatMul')!).toBe(3 * cpuSafe.get('MultiHeadAttention')! / 2);
    expect(CUDA_CHECK_UNET.channels.map((c) => c * 8)).toEqual([2560, 5120]);
    expect(fused.get('InstanceNormalization') ?? 0).toBe(0);
    expect(fused.get('Softmax') ?? 0).toBe(0);
    expect(fused.get('Erf') ?? 0).toBe(0);
    expect(fusionFor('cuda')).toBe('cuda');
    expect(fusionFor('cpu')).toBe('cpu-safe');
    await expect(session(syntheticUNet(TINY_UNET, { fusion: 'cuda' }))).rejects.toThrow(/GroupNorm|SkipGroupNorm|BiasSplitGelu|BiasAdd|NhwcConv/);
  });

  it('the channels-last layout and the packed projections compute the plain graph (CPU stand-ins for NhwcConv and packed attention)', async () => {
    const weights: WeightCache = [];
    const plain = await session(syntheticUNet(TINY_UNET, { weights }));
    const standIns = syntheticUNet(TINY_UNET, { fusion: 'cpu-safe', standIns: ['NhwcConv', 'PackedQkv'], weights });
    // The stand-ins change the structure as the real ops do: no per-op Transposes around the feature maps.
    expect(opCounts(standIns).get('Transpose')).toBe(2 + 2 * opCounts(standIns).get('Conv')! + 2 * opCounts(standIns).get('InstanceNormalization')!);
    const fused = await session(standIns);
    // A non-square latent catches a height/width mix-up in the layout.
    const feeds = {
      sample: new ort.Tensor('float32', fresh(2 * 4 * 16 * 12, 4), [2, 4, 16, 12]),
      timestep: new ort.Tensor('float32', [555], [1]),
      encoder_hidden_states: new ort.Tensor('float32', fresh(2 * 77 * 32, 14), [2, 77, 32]),
    };
    const ref = (await plain.run(feeds)).out_sample;
    const out = (await fused.run(feeds)).out_sample;
    expect(out.dims).toEqual([2, 4, 16, 12]);
    expect(relativeError(out.data as Float32Array, ref.data as Float32Array)).toBeLessThan(1e-4);
    const vaeWeights: WeightCache = [];
    const vaePlain = await session(syntheticVaeDecoder(TINY_VAE, { weights: vaeWeights }));
    const vaeNhwc = await session(syntheticVaeDecoder(TINY_VAE, { fusion: 'cpu-safe', standIns: ['NhwcConv'], weights: vaeWeights }));
    const z = { latent_sample: new ort.Tensor('float32', fresh(1 * 4 * 8 * 12, 5), [1, 4, 8, 12]) };
    const [a, b] = [(await vaePlain.run(z)).sample, (await vaeNhwc.run(z)).sample];
    expect(b.dims).toEqual([1, 3, 64, 96]);
    expect(relativeError(b.data as Float32Array, a.data as Float32Array)).toBeLessThan(1e-4);
    for (const s of [plain, fused, vaePlain, vaeNhwc]) await s.release();
  });

  it('the synthetic VAE decoder upsamples 8x, and its fused form agrees with the plain one', async () => {
    const plain = syntheticVaeDecoder(TINY_VAE);
    const fused = syntheticVaeDecoder(TINY_VAE, { fusion: 'cpu-safe' });
    expect(opCounts(fused).get('MultiHeadAttention')).toBe(1);
    const [a, b] = [await session(plain), await session(fused)];
    const feeds = { latent_sample: new ort.Tensor('float32', fresh(2 * 4 * 8 * 12, 3), [2, 4, 8, 12]) };
    const ref = (await a.run(feeds)).sample;
    const out = (await b.run(feeds)).sample;
    expect(ref.dims).toEqual([2, 3, 64, 96]);
    expect(relativeError(out.data as Float32Array, ref.data as Float32Array)).toBeLessThan(1e-4);
    await a.release();
    await b.release();
  });
});
