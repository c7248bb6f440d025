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
 * JavaScript. Weight-free: a few kilobytes, built when a renderer starts.
 */
import { BUILTIN_METRIC } from '../engine/index.ts';
import { GraphBuilder } from './onnx/index.ts';

const FLOAT = 1; // TensorProto.FLOAT

export function builtinPerceptualGraph(): Uint8Array {
  const g = new GraphBuilder('builtin_perceptual_metric');
  const a = g.input('a', 'uint8', ['pairs', 'height', 'width', 3]);
  const b = g.input('b', 'uint8', ['pairs', 'height', 'width', 3]);
  const diff = g.op('Sub', [g.op('Cast', [a], { to: { int: FLOAT } }), g.op('Cast', [b], { to: { int: FLOAT } })]);
  const rgb = g.op('Transpose', [diff], { perm: { ints: [0, 3, 1, 2] } });
  const [r, gr, bl] = BUILTIN_METRIC.luma;
  const k = 1 / 255;
  const mean = (x: string) => g.op('ReduceMean', [x], { axes: { ints: [1, 2, 3] }, keepdims: { int: 0 } });
  const scale = (x: string, by: number) => g.op('Mul', [x, g.constant([by], [])]);

  // Chroma: blue and red minus luminance, in 0..255 units, block means, then mean |.| over both.
  const chromaPlanes = g.op('Conv', [rgb, g.constant([-r, -gr, 1 - bl, 1 - r, -gr, -bl], [2, 3, 1, 1])]);
  const side = BUILTIN_METRIC.chromaBlock;
  const blocks = g.op('AveragePool', [chromaPlanes], { kernel_shape: { ints: [side, side] }, strides: { ints: [side, side] }, ceil_mode: { int: 1 } });
  // builtinDistance: sum over blocks of (|cb| + |cr|) * 0.5 / 255 / blocks = mean over both planes' blocks / 255.
  const chroma = scale(mean(g.op('Abs', [blocks])), k);

  // Luminance pyramid of the difference.
  let d = g.op('Conv', [rgb, g.constant([r * k, gr * k, bl * k], [1, 3, 1, 1])]);
  const kernel = g.constant([1, 2, 1].flatMap((y) => [1, 2, 1].map((x) => (x * y) / 16)), [1, 1, 3, 3]);
  const edgePads = g.constant([0, 0, 1, 1, 0, 0, 1, 1], [8], 'int64');
  const two = g.constant([2, 2], [2], 'int64');
  const origin = g.constant([0, 0], [2], 'int64');
  const spatial = g.constant([2, 3], [2], 'int64');
  let detail: string | undefined;
  for (let level = 0; level < BUILTIN_METRIC.levels; level++) {
    const blurred = g.op('Conv', [g.op('Pad', [d, edgePads], { mode: { string: 'edge' } }), kernel]);
    const band = mean(g.op('Abs', [g.op('Sub', [d, blurred])]));
    detail = detail ? g.op('Add', [detail, band]) : band;
    // Every other pixel from 0 up to 2 * floor(side / 2) (the JavaScript version's w >> 1).
    const hw = g.op('Slice', [g.op('Shape', [blurred]), g.constant([2], [1], 'int64'), g.constant([4], [1], 'int64')]);
    d = g.op('Slice', [blurred, origin, g.op('Mul', [g.op('Div', [hw, two]), two]), spatial, two]);
  }
  const low = mean(g.op('Abs', [d]));
  const distance = g.op('Add', [g.op('Add', [detail!, scale(low, BUILTIN_METRIC.lowPassWeight)]), scale(chroma, BUILTIN_METRIC.chromaWeight)]);
  g.output(distance, 'distance', 'float32', ['pairs']);
  return g.toModel({ opset: 17, producer: 'blendfarm' }).model;
}
