/**
 * Worker memory: the largest job a worker advertises (maxPixels) and out-of-memory failures
 * that fail the job at once instead of retrying it.
 */
import { describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';
import { GraphBuilder } from '../../../models/onnx/index.ts';
import { DEMO_MODEL_DIR } from '../../../models/paths.ts';
import { RenderError, isPermanentRenderError } from '../../../farm/renderer.ts';
import { createRenderer } from '../../../apps/worker/engine-renderer.ts';
import { isOutOfMemory, ONNX_METRIC_PIXELS_PER_CALL } from '../../../engine/index.ts';
import {
  DEFAULT_MAX_PIXELS,
  GAP_METRIC_BYTES_PER_PIXEL,
  MEMORY_MODELS,
  estimatePeakMiB,
  maxPixelsForMemory,
  outOfMemoryError,
  unetHasFusedAttention,
  workerMaxPixels,
} from '../../../apps/worker/gpu-memory.ts';

/** A real allocation failure from onnxruntime: a 4 TiB tensor. */
async function onnxruntimeOutOfMemory(): Promise<unknown> {
  const g = new GraphBuilder('oom');
  const shape = g.input('shape', 'int64', [1]);
  g.output(g.op('ConstantOfShape', [shape], { value: { tensor: { dtype: 'float32', dims: [1], data: [1] } } }), 'y', 'float32');
  const session = await ort.InferenceSession.create(g.toModel({ opset: 17 }).model);
  try {
    await session.run({ shape: new ort.Tensor('int64', BigInt64Array.from([1n << 40n]), [1]) });
    return undefined;
  } catch (err) {
    return err;
  } finally {
    await session.release();
  }
}

describe('out of memory', () => {
  it("classifies onnxruntime's allocation failure as out of memory, and fails the job without retries", async () => {
    const err = await onnxruntimeOutOfMemory();
    expect(err).toBeInstanceOf(Error);
    expect(isOutOfMemory(err)).toBe(true);
    const failure = outOfMemoryError(err, { width: 1024, height: 768 }, 2048 * 2048);
    expect(failure).toBeInstanceOf(RenderError);
    expect(failure.retryable).toBe(false);
    expect(isPermanentRenderError(failure)).toBe(true);
    expect(failure.message).toMatch(/ran out of memory on this worker at 1024x768/);
    expect(failure.message).toMatch(/smaller size/);
    // Its owner is told what to change, without the worker's settings or onnxruntime's words.
    expect(failure.userMessage).toBe('The render ran out of memory on this worker at 1024x768. Try a smaller size or fewer branches.');
  });

  it('leaves other onnxruntime errors alone', async () => {
    const g = new GraphBuilder('add');
    const x = g.input('x', 'float32', [2]);
    g.output(g.op('Add', [x, g.constant([1, 2])]), 'y', 'float32');
    const session = await ort.InferenceSession.create(g.toModel({ opset: 17 }).model);
    const err = await session.run({ x: new ort.Tensor('float32', [1, 2, 3], [3]) }).catch((e: unknown) => e);
    await session.release();
    expect(err).toBeInstanceOf(Error);
    expect(isOutOfMemory(err)).toBe(false);
  });
});

describe('maxPixels from GPU memory', () => {
  const H200 = 143_771;

  it('is the largest size whose estimated peak fits in 90% of the card', () => {
    for (const fusedAttention of [false, true]) {
      const px = maxPixelsForMemory(H200, 'sd1', { fusedAttention });
      expect(px % 4096).toBe(0);
      expect(estimatePeakMiB('sd1', px, { fusedAttention })).toBeLessThanOrEqual(0.9 * H200);
      if (px < 4096 * 4096) expect(estimatePeakMiB('sd1', px + 4096, { fusedAttention })).toBeGreaterThan(0.9 * H200);
    }
    // Fused attention has no quadratic term: more fits.
    expect(maxPixelsForMemory(H200, 'sd1', { fusedAttention: true })).toBeGreaterThan(maxPixelsForMemory(H200, 'sd1'));
    // More memory never fits less; a card too small for the weights fits nothing.
    expect(maxPixelsForMemory(24_576, 'sd1')).toBeLessThanOrEqual(maxPixelsForMemory(81_559, 'sd1'));
    expect(maxPixelsForMemory(2_000, 'sd1')).toBe(0);
    expect(maxPixelsForMemory(H200, 'sdxl')).toBeGreaterThan(0);
  });

  it('counts the gap metric\'s graph on the GPU: at least one full call of pair pixels, however small the job', () => {
    const oneCall = (ONNX_METRIC_PIXELS_PER_CALL * GAP_METRIC_BYTES_PER_PIXEL) / 2 ** 20;
    expect(oneCall).toBe(128);
    const tiny = 64 * 64;
    const weightsAndModels = MEMORY_MODELS.sd1.baseMiB + (tiny / 2 ** 20) * (MEMORY_MODELS.sd1.unetMiBPerMP + MEMORY_MODELS.sd1.vaeMiBPerMP);
    expect(estimatePeakMiB('sd1', tiny, { items: 1, fusedAttention: true })).toBeCloseTo(weightsAndModels + oneCall, 6);
    // A frame larger than one call's pixels is measured one pair per call.
    const huge = 4096 * 4096;
    const withoutGaps = MEMORY_MODELS.sd1.baseMiB + (huge / 2 ** 20) * (MEMORY_MODELS.sd1.unetMiBPerMP + MEMORY_MODELS.sd1.vaeMiBPerMP);
    expect(estimatePeakMiB('sd1', huge, { items: 1, fusedAttention: true }) - withoutGaps).toBeCloseTo((huge * GAP_METRIC_BYTES_PER_PIXEL) / 2 ** 20, 6);
  });

  it('the setting wins; CPU workers keep the default; CUDA workers size from the card and the model folder', () => {
    expect(workerMaxPixels({ maxPixels: 12345, ep: 'cuda', gpuMiB: H200 })).toBe(12345);
    expect(workerMaxPixels({ ep: 'cpu' })).toBe(DEFAULT_MAX_PIXELS);
    expect(workerMaxPixels({ ep: 'cuda', gpuMiB: null })).toBe(DEFAULT_MAX_PIXELS);
    expect(workerMaxPixels({ ep: 'cuda', gpuMiB: H200, modelDir: DEMO_MODEL_DIR })).toBe(maxPixelsForMemory(H200, 'sd1'));
    expect(unetHasFusedAttention(`${DEMO_MODEL_DIR}/unet/model.onnx`)).toBe(false);
  });

  it("is what the engine renderer advertises in its capabilities", () => {
    expect(createRenderer({ maxPixels: 777 * 64 }).capabilities().maxPixels).toBe(777 * 64);
    expect(createRenderer({ ep: 'cpu' }).capabilities().maxPixels).toBe(DEFAULT_MAX_PIXELS);
    expect(createRenderer({ ep: 'cuda', gpuMiB: H200, modelDir: DEMO_MODEL_DIR }).capabilities().maxPixels).toBe(maxPixelsForMemory(H200, 'sd1'));
  });
});
