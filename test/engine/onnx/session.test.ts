/**
 * Loading errors say what is wrong and what to do: a fused graph whose ops have no kernel on the
 * chosen provider (ONNX Runtime's optimizer output with --float16 on a CPU worker), rather than
 * "not a loadable ONNX model".
 */
import { describe, expect, it } from 'vitest';
import { ModelFileError, openSessionFromBytes } from '../../../engine/onnx/session.ts';
import { SYNTHETIC_MODEL_OPTIONS, TINY_UNET, syntheticUNet } from '../../../models/synthetic-unet.ts';

describe('openSession errors', () => {
  it('names the CUDA-only fused op and the way out when the CPU provider has no kernel for it', async () => {
    const fused = syntheticUNet(TINY_UNET, { fusion: 'cuda' }).graph.toModel(SYNTHETIC_MODEL_OPTIONS).model;
    const err = await openSessionFromBytes(fused, 'unet/model.onnx', { ep: 'cpu' }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ModelFileError);
    const msg = (err as Error).message;
    expect(msg).toMatch(/^unet\/model\.onnx: uses (NhwcConv|GroupNorm|SkipGroupNorm|BiasSplitGelu|BiasAdd|MultiHeadAttention), an operator the cpu provider has no kernel for/);
    expect(msg).toContain('--ep cuda (BLENDFARM_EP=cuda)');
    expect(msg).not.toMatch(/not a loadable ONNX model/);
  });

  it('still calls a file that is not ONNX at all not loadable', async () => {
    await expect(openSessionFromBytes(new TextEncoder().encode('not a model'), 'x.onnx', { ep: 'cpu' })).rejects.toThrow(/^x\.onnx: not a loadable ONNX model/);
  });
});
