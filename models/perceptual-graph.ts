/**
 * The engine's built-in perceptual metric (engine/blend/perceptual.ts, builtinDistance) as an ONNX
 * graph, so that a GPU renderer measures a transition's gaps on the GPU, a whole stage's pairs in
 * one call (OnnxBuiltinMetric). Same computation, same constants (BUILTIN_METRIC):
 *
 *   a, b: uint8 [N, H, W, 3] -> difference -> luminance (1/255 units) and the two chroma
 *   differences; chroma: 8x8 block means (partial blocks averaged over their own pixels), mean |.|;
 *   luminance: `levels` times { blur with [1,2,1]x[1,2,1]/16, edges clamped; mean |d - blurred|;
 *   d = every other pixel of the blurred plane (floor(side / 2)) }, then mean |d| of the rest;
 *   distance [N] = sum of band means + lowPassWeight * low-pass mean + chromaWeight * chroma.
 *
 * The graph always runs every level, which the JavaScript version does only for frames of at
 * least BUILTIN_METRIC_FULL_PYRAMID_SIDE pixels a side; OnnxBuiltinMetric keeps smaller ones in
 * JavaScript. Weight-free: a few kilobytes, built when a renderer starts. Only element-wise ops,
 * reductions and one AveragePool: no Conv, which a GPU provider may run in TF32 (ONNX Runtime's
 * CUDA provider does by default, and onnxruntime-node cannot turn it off) and tunes per shape.
 */
import { BUILTIN_METRIC } from '../engine/index.ts';
import { GraphBuilder } from './onnx/index.ts';

const FLOAT = 1; // TensorProto.FLOAT

export function builtinPerceptualGraph(): Uint8Array {
  return builtinPerceptualGraphBuilder().toModel({ opset: 17, producer: 'blendfarm' }).model;
}

/** The graph before serialisation (tests read its nodes). */
export function builtinPerceptualGraphBuilder(): GraphBuilder {
  const g = new GraphBuilder('builtin_perceptual_metric');
  const a = g.input('a', 'uint8', ['pairs', 'height', 'width', 3]);
  const b = g.input('b', 'uint8', ['pairs', 'height', 'width', 3]);
  const diff = g.op('Sub', [g.op('Cast', [a], { to: { int: FLOAT } }), g.op('Cast', [b], { to: { int: FLOAT } })]); // [N, H, W, 3]
  const [r, gr, bl] = BUILTIN_METRIC.luma;
  const k = 1 / 255;
  const i64 = (values: number[]) => g.constant(values, [values.length], 'int64');
  const scale = (x: string, by: number) => g.op('Mul', [x, g.constant([by], [])]);
  /** Σ_c diff[..., c] * weights[c]: a plane [N, H, W]. */
  const weighted = (weights: number[]) => g.op('ReduceSum', [g.op('Mul', [diff, g.constant(weights, [3])]), i64([3])], { keepdims: { int: 0 } });
  /** Mean |x| over everything but the pair axis: [N]. */
  const meanAbs = (x: string, axes: number[]) => g.op('ReduceMean', [g.op('Abs', [x])], { axes: { ints: axes }, keepdims: { int: 0 } });

  // Chroma: blue and red minus luminance, in 0..255 units, block means, then mean |.| over both.
  const planes = g.op('Concat', [g.op('Unsqueeze', [weighted([-r, -gr, 1 - bl]), i64([1])]), g.op('Unsqueeze', [weighted([1 - r, -gr, -bl]), i64([1])])], { axis: { int: 1 } });
  const side = BUILTIN_METRIC.chromaBlock;
  const blocks = g.op('AveragePool', [planes], { kernel_shape: { ints: [side, side] }, strides: { ints: [side, side] }, ceil_mode: { int: 1 } });
  // builtinDistance: sum over blocks of (|cb| + |cr|) * 0.5 / 255 / blocks = mean over both planes' blocks / 255.
  const chroma = scale(meanAbs(blocks, [1, 2, 3]), k);

  // Luminance pyramid of the difference, [N, H, W]. The blur is element-wise (no Conv: a GPU
  // provider may run convolutions in reduced precision), [1, 2, 1] / 4 along each axis with the
  // edge repeated, in the JavaScript version's order: 0.25 * (left + right) + 0.5 * middle.
  const blur1d = (x: string, axis: 1 | 2) => {
    const pads = axis === 1 ? [0, 1, 0, 0, 1, 0] : [0, 0, 1, 0, 0, 1];
    const padded = g.op('Pad', [x, i64(pads)], { mode: { string: 'edge' } });
    const shifted = (start: number, end: number) => g.op('Slice', [padded, i64([start]), i64([end]), i64([axis])]);
    const sides = g.op('Add', [shifted(0, -2), shifted(2, Number.MAX_SAFE_INTEGER)]);
    return g.op('Add', [scale(sides, 0.25), scale(shifted(1, -1), 0.5)]);
  };
  let d = weighted([r * k, gr * k, bl * k]);
  const two = i64([2, 2]);
  let detail: string | undefined;
  for (let level = 0; level < BUILTIN_METRIC.levels; level++) {
    const blurred = blur1d(blur1d(d, 2), 1);
    const band = meanAbs(g.op('Sub', [d, blurred]), [1, 2]);
    detail = detail ? g.op('Add', [detail, band]) : band;
    // Every other pixel from 0 up to 2 * floor(side / 2) (the JavaScript version's w >> 1).
    const hw = g.op('Slice', [g.op('Shape', [blurred]), i64([1]), i64([3])]);
    d = g.op('Slice', [blurred, i64([0, 0]), g.op('Mul', [g.op('Div', [hw, two]), two]), i64([1, 2]), two]);
  }
  const low = meanAbs(d, [1, 2]);
  const distance = g.op('Add', [g.op('Add', [detail!, scale(low, BUILTIN_METRIC.lowPassWeight)]), scale(chroma, BUILTIN_METRIC.chromaWeight)]);
  g.output(distance, 'distance', 'float32', ['pairs']);
  return g;
}
