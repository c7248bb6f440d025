/**
 * Loading errors say what is wrong and what to do: a fused graph whose ops have no kernel on the
 * chosen provider (ONNX Runtime's optimizer output with --float16 on a CPU worker), rather than
 * "not a loadable ONNX model".
 */
import { describe, expect, it } from 'vitest';
import { ModelFileError, openSessionFromBytes } from '../../../engine/onnx/session.ts';
import { SYNTHETIC_MODEL_OPTIONS, TINY_UNET, syntheticUNet } from '../../../models/synthetic-unet.ts';
import { GraphBuilder } from '../../../models/onnx/index.ts';

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
