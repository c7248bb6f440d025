// The ONNX writer is checked the only way that matters: models it writes are
// loaded and run by real onnxruntime-node, and outputs are compared with plain
// JS computations. A tiny independent protobuf reader checks the parts ORT does
// not expose (metadata, doc string, exact int64 encodings).

import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { float16ToFloat32, float32ToFloat16 } from '../../../engine/tensor/fp16.ts';
import { GraphBuilder, saveModel, type BuiltModel } from '../../../models/onnx/index.ts';
import { ProtoWriter } from '../../../models/onnx/proto.ts';

type Feeds = Record<string, ort.Tensor>;

async function runModel(model: Uint8Array | string, feeds: Feeds): Promise<Record<string, ort.Tensor>> {
  const session = typeof model === 'string' ? await ort.InferenceSession.create(model) : await ort.InferenceSession.create(model);
  try {
    return (await session.run(feeds)) as Record<string, ort.Tensor>;
  } finally {
    await session.release();
  }
}

function f32(data: number[], dims: number[]): ort.Tensor {
  return new ort.Tensor('float32', Float32Array.from(data), dims);
}

/** Deterministic pseudo-random values in [-1, 1). */
function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  };
}

function randomArray(n: number, seed: number): number[] {
  const next = seeded(seed);
  return Array.from({ length: n }, next);
}

function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol = 1e-5): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    const diff = Math.abs(actual[i] - expected[i]);
    if (!(diff <= tol * Math.max(1, Math.abs(expected[i])))) {
      throw new Error(`element ${i}: got ${actual[i]}, expected ${expected[i]}`);
    }
  }
}

// --- a minimal protobuf reader, independent of the writer ---

interface Field {
  wire: number;
  /** varint value (as bigint) or fixed32 bits */
  int?: bigint;
  bytes?: Uint8Array;
  /** raw encoded bytes of a varint, to check its length */
  rawVarint?: Uint8Array;
}

function decode(buf: Uint8Array): Map<number, Field[]> {
  const fields = new Map<number, Field[]>();
  let pos = 0;
  const varint = (): { value: bigint; raw: Uint8Array } => {
    const start = pos;
    let value = 0n;
    let shift = 0n;
    for (;;) {
      const b = buf[pos++];
      value |= BigInt(b & 0x7f) << shift;
      shift += 7n;
      if ((b & 0x80) === 0) break;
    }
    return { value, raw: buf.subarray(start, pos) };
  };
  while (pos < buf.length) {
    const key = Number(varint().value);
    const field = key >>> 3;
    const wire = key & 7;
    let entry: Field;
    if (wire === 0) {
      const v = varint();
      entry = { wire, int: v.value, rawVarint: v.raw };
    } else if (wire === 2) {
      const len = Number(varint().value);
      entry = { wire, bytes: buf.subarray(pos, pos + len) };
      pos += len;
    } else if (wire === 5) {
      entry = { wire, int: BigInt(new DataView(buf.buffer, buf.byteOffset + pos, 4).getUint32(0, true)) };
      pos += 4;
    } else {
      throw new Error(`unexpected wire type ${wire}`);
    }
    if (!fields.has(field)) fields.set(field, []);
    fields.get(field)!.push(entry);
  }
  return fields;
}

const text = (f: Field | undefined): string => new TextDecoder().decode(f?.bytes);
const sub = (f: Field | undefined): Map<number, Field[]> => decode(f?.bytes ?? new Uint8Array());

function packedVarints(bytes: Uint8Array): bigint[] {
  const out: bigint[] = [];
  let pos = 0;
  while (pos < bytes.length) {
    let value = 0n;
    let shift = 0n;
    for (;;) {
      const b = bytes[pos++];
      value |= BigInt(b & 0x7f) << shift;
      shift += 7n;
      if ((b & 0x80) === 0) break;
    }
    out.push(BigInt.asIntN(64, value));
  }
  return out;
}

// --- JS references ---

function matmul(a: number[], b: number[], m: number, k: number, n: number): number[] {
  const out = new Array<number>(m * n).fill(0);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) for (let t = 0; t < k; t++) out[i * n + j] += a[i * k + t] * b[t * n + j];
  return out;
}

function conv2d(
  x: number[], [c, h, w]: number[], wt: number[], [oc, kh, kw]: number[], bias: number[],
  [sh, sw]: number[], [pt, pl, pb, pr]: number[],
): { out: number[]; oh: number; ow: number } {
  const oh = Math.floor((h + pt + pb - kh) / sh) + 1;
  const ow = Math.floor((w + pl + pr - kw) / sw) + 1;
  const out: number[] = [];
  for (let o = 0; o < oc; o++) {
    for (let y = 0; y < oh; y++) {
      for (let xo = 0; xo < ow; xo++) {
        let acc = bias[o];
        for (let ci = 0; ci < c; ci++) {
          for (let i = 0; i < kh; i++) {
            for (let j = 0; j < kw; j++) {
              const iy = y * sh - pt + i;
              const ix = xo * sw - pl + j;
              if (iy < 0 || iy >= h || ix < 0 || ix >= w) continue;
              acc += x[(ci * h + iy) * w + ix] * wt[((o * c + ci) * kh + i) * kw + j];
            }
          }
        }
        out.push(acc);
      }
    }
  }
  return { out, oh, ow };
}

/** 2-D resize of one channel: nearest = asymmetric/floor, linear = align_corners. */
function resize2d(x: number[], h: number, w: number, oh: number, ow: number, mode: 'nearest' | 'linear'): number[] {
  const out: number[] = [];
  for (let y = 0; y < oh; y++) {
    for (let xo = 0; xo < ow; xo++) {
      if (mode === 'nearest') {
        out.push(x[Math.floor((y * h) / oh) * w + Math.floor((xo * w) / ow)]);
        continue;
      }
      const sy = oh > 1 ? (y * (h - 1)) / (oh - 1) : 0;
      const sx = ow > 1 ? (xo * (w - 1)) / (ow - 1) : 0;
      const y0 = Math.floor(sy), x0 = Math.floor(sx);
      const y1 = Math.min(y0 + 1, h - 1), x1 = Math.min(x0 + 1, w - 1);
      const dy = sy - y0, dx = sx - x0;
      const at = (yy: number, xx: number): number => x[yy * w + xx];
      out.push(
        at(y0, x0) * (1 - dy) * (1 - dx) + at(y0, x1) * (1 - dy) * dx + at(y1, x0) * dy * (1 - dx) + at(y1, x1) * dy * dx,
      );
    }
  }
  return out;
}

describe('ONNX writer + onnxruntime', () => {
  it('runs MatMul + Add + Relu over symbolic batch dims and matches JS', async () => {
    const g = new GraphBuilder('mlp');
    const x = g.input('x', 'float32', ['batch', 'seq', 4]);
    const w = randomArray(4 * 3, 1);
    const b = randomArray(3, 2);
    const y = g.op('Relu', [g.op('Add', [g.op('MatMul', [x, g.initializer('w', 'float32', [4, 3], Float32Array.from(w))]), g.constant(b)])]);
    g.output(y, 'y', 'float32', ['batch', 'seq', 3]);

    const session = await ort.InferenceSession.create(g.toModel().model);
    expect(session.inputNames).toEqual(['x']);
    expect(session.outputNames).toEqual(['y']);
    const meta = session.inputMetadata?.[0];
    if (meta && 'shape' in meta) expect(meta.shape).toEqual(['batch', 'seq', 4]);

    for (const [batch, seq] of [[1, 1], [2, 5]]) {
      const xs = randomArray(batch * seq * 4, 3 + batch);
      const out = (await session.run({ x: f32(xs, [batch, seq, 4]) })).y as ort.Tensor;
      expect(out.dims).toEqual([batch, seq, 3]);
      const expected = matmul(xs, w, batch * seq, 4, 3).map((v, i) => Math.max(0, v + b[i % 3]));
      expectClose(out.data as Float32Array, expected);
    }
    await session.release();
  });

  it('gathers with int32 and int64 index inputs (including negative indices)', async () => {
    const g = new GraphBuilder('gather');
    const table = g.constant(Array.from({ length: 12 }, (_, i) => i * 10), [4, 3]);
    const i32 = g.input('i32', 'int32', ['n']);
    const i64 = g.input('i64', 'int64', ['m']);
    g.output(g.op('Gather', [table, i32], { axis: 0 }), 'rows', 'float32', ['n', 3]);
    g.output(g.op('Gather', [table, i64], { axis: -1 }), 'cols', 'float32', [4, 'm']);

    const r = await runModel(g.toModel().model, {
      i32: new ort.Tensor('int32', Int32Array.from([2, 0, -1]), [3]),
      i64: new ort.Tensor('int64', BigInt64Array.from([1n, -3n]), [2]),
    });
    expect(Array.from(r.rows.data as Float32Array)).toEqual([60, 70, 80, 0, 10, 20, 90, 100, 110]);
    expect(Array.from(r.cols.data as Float32Array)).toEqual([10, 0, 40, 30, 70, 60, 100, 90]);
  });

  it('runs Conv with pads and strides', async () => {
    const [c, h, w, oc] = [2, 6, 5, 3];
    const xs = randomArray(c * h * w, 11);
    const wt = randomArray(oc * c * 3 * 3, 12);
    const bias = randomArray(oc, 13);
    const g = new GraphBuilder('conv');
    const x = g.input('x', 'float32', [1, c, h, w]);
    const y = g.op('Conv', [x, g.initializer('w', 'float32', [oc, c, 3, 3], wt), g.initializer('b', 'float32', [oc], bias)], {
      kernel_shape: [3, 3],
      strides: [2, 2],
      pads: [1, 0, 1, 1],
    });
    g.output(y, 'y', 'float32', [1, oc, 'h', 'w']);
    const r = await runModel(g.toModel().model, { x: f32(xs, [1, c, h, w]) });
    const ref = conv2d(xs, [c, h, w], wt, [oc, 3, 3], bias, [2, 2], [1, 0, 1, 1]);
    expect(r.y.dims).toEqual([1, oc, ref.oh, ref.ow]);
    expectClose(r.y.data as Float32Array, ref.out);
  });

  it('runs Resize nearest (scales) and linear (sizes)', async () => {
    const [h, w] = [3, 4];
    const xs = randomArray(h * w, 21);
    const g = new GraphBuilder('resize');
    const x = g.input('x', 'float32', [1, 1, h, w]);
    const nearest = g.op('Resize', [x, '', g.constant([1, 1, 2, 1.5])], {
      mode: 'nearest',
      coordinate_transformation_mode: 'asymmetric',
      nearest_mode: 'floor',
    });
    const linear = g.op('Resize', [x, '', '', g.constant([1, 1, 5, 7], [4], 'int64')], {
      mode: 'linear',
      coordinate_transformation_mode: 'align_corners',
    });
    g.output(nearest, 'nearest', 'float32', [1, 1, 'h', 'w']);
    g.output(linear, 'linear', 'float32', [1, 1, 'h2', 'w2']);
    const r = await runModel(g.toModel().model, { x: f32(xs, [1, 1, h, w]) });
    expect(r.nearest.dims).toEqual([1, 1, 6, 6]);
    expectClose(r.nearest.data as Float32Array, resize2d(xs, h, w, 6, 6, 'nearest'));
    expect(r.linear.dims).toEqual([1, 1, 5, 7]);
    expectClose(r.linear.data as Float32Array, resize2d(xs, h, w, 5, 7, 'linear'));
  });

  it('runs Reshape, Transpose and Softmax with a negative axis', async () => {
    const g = new GraphBuilder('shapes');
    const x = g.input('x', 'float32', [2, 3, 4]);
    const t = g.op('Transpose', [x], { perm: [0, 2, 1] });
    const flat = g.op('Reshape', [t, g.constant([-1, 6], [2], 'int64')]);
    g.output(flat, 'flat', 'float32', [4, 6]);
    g.output(g.op('Softmax', [x], { axis: -1 }), 'soft', 'float32', [2, 3, 4]);
    const xs = randomArray(24, 31);
    const r = await runModel(g.toModel().model, { x: f32(xs, [2, 3, 4]) });

    const transposed: number[] = [];
    for (let a = 0; a < 2; a++) for (let k = 0; k < 4; k++) for (let j = 0; j < 3; j++) transposed.push(xs[(a * 3 + j) * 4 + k]);
    expect(r.flat.dims).toEqual([4, 6]);
    expectClose(r.flat.data as Float32Array, transposed);

    const soft: number[] = [];
    for (let row = 0; row < 6; row++) {
      const vals = xs.slice(row * 4, row * 4 + 4);
      const max = Math.max(...vals);
      const exps = vals.map((v) => Math.exp(v - max));
      const sum = exps.reduce((s, v) => s + v, 0);
      soft.push(...exps.map((e) => e / sum));
    }
    expectClose(r.soft.data as Float32Array, soft);
  });

  it('runs ReduceMean with axes as an attribute (opset 17) and as an input (opset 18+)', async () => {
    const xs = randomArray(2 * 3 * 4, 41);
    const expected: number[] = [];
    for (let a = 0; a < 2; a++) {
      for (let k = 0; k < 4; k++) {
        let s = 0;
        for (let j = 0; j < 3; j++) s += xs[(a * 3 + j) * 4 + k];
        expected.push(s / 3);
      }
    }
    for (const opset of [17, 18, 21]) {
      const g = new GraphBuilder(`reduce${opset}`);
      const x = g.input('x', 'float32', [2, 3, 4]);
      const y =
        opset < 18
          ? g.op('ReduceMean', [x], { axes: [-2], keepdims: 0 })
          : g.op('ReduceMean', [x, g.constant([-2], [1], 'int64')], { keepdims: 0 });
      g.output(y, 'y', 'float32', [2, 4]);
      const r = await runModel(g.toModel({ opset }).model, { x: f32(xs, [2, 3, 4]) });
      expect(r.y.dims).toEqual([2, 4]);
      expectClose(r.y.data as Float32Array, expected);
    }
  });

  it('runs Shape, Gather, Range, Cast, Where, Concat, Unsqueeze, Tile, Expand and elementwise math', async () => {
    const g = new GraphBuilder('misc');
    const x = g.input('x', 'float32', ['n']);
    const shape = g.op('Shape', [x]);
    const n = g.op('Gather', [shape, g.constant([0], [], 'int64')], { axis: 0 });
    const range = g.op('Range', [g.constant([0], [], 'int64'), n, g.constant([1], [], 'int64')]);
    g.output(g.op('Cast', [range], { to: 1 }), 'range', 'float32', ['n']);

    const isNeg = g.op('Less', [x, g.constant([0], [])]);
    g.output(g.op('Where', [isNeg, g.op('Floor', [x]), g.op('Cos', [x])]), 'where', 'float32', ['n']);
    g.output(g.op('Add', [g.op('Sin', [x]), g.op('Log', [g.op('Exp', [x])])]), 'math', 'float32', ['n']);

    const row = g.op('Unsqueeze', [x, g.constant([0], [1], 'int64')]);
    g.output(g.op('Tile', [row, g.constant([2, 1], [2], 'int64')]), 'tile', 'float32', [2, 'n']);
    const col = g.op('Unsqueeze', [x, g.constant([-1], [1], 'int64')]);
    const target = g.op('Concat', [shape, g.constant([3], [1], 'int64')], { axis: 0 });
    g.output(g.op('Expand', [col, target]), 'expand', 'float32', ['n', 3]);
    g.output(g.op('Concat', [row, row], { axis: -1 }), 'concat', 'float32', [1, 'n2']);

    const xs = [-1.5, 0.25, 2, -0.5, 3.75];
    const r = await runModel(g.toModel().model, { x: f32(xs, [5]) });
    expect(Array.from(r.range.data as Float32Array)).toEqual([0, 1, 2, 3, 4]);
    expectClose(r.where.data as Float32Array, xs.map((v) => (v < 0 ? Math.floor(v) : Math.cos(v))));
    expectClose(r.math.data as Float32Array, xs.map((v) => Math.sin(v) + v), 1e-5);
    expect(r.tile.dims).toEqual([2, 5]);
    expect(Array.from(r.tile.data as Float32Array)).toEqual([...xs, ...xs]);
    expect(r.expand.dims).toEqual([5, 3]);
    expect(Array.from(r.expand.data as Float32Array)).toEqual(xs.flatMap((v) => [v, v, v]));
    expect(Array.from(r.concat.data as Float32Array)).toEqual([...xs, ...xs]);
  });

  it('takes and returns float16 tensors as Uint16Array bit patterns', async () => {
    const g = new GraphBuilder('half');
    const x = g.input('x', 'float16', ['n']);
    // float16 initializers accept values (converted here) or raw half bits.
    const scaled = g.op('Mul', [x, g.initializer('two', 'float16', [], [2])]);
    const y = g.op('Add', [scaled, g.initializer('bias', 'float16', [1], Uint16Array.from([0x3c00]))]);
    g.output(y, 'y', 'float16', ['n']);
    g.output(g.op('Cast', [y], { to: 1 }), 'y32', 'float32', ['n']);

    const values = [0.5, -3, 100, 1 / 3];
    const bits = float32ToFloat16(values);
    const r = await runModel(g.toModel().model, { x: new ort.Tensor('float16', bits, [4]) });
    expect(r.y.type).toBe('float16');
    expect(r.y.data).toBeInstanceOf(Uint16Array);
    const expected = float32ToFloat16(Array.from(float16ToFloat32(bits), (v) => 2 * v + 1));
    expect(Array.from(r.y.data as Uint16Array)).toEqual(Array.from(expected));
    expect(Array.from(r.y32.data as Float32Array)).toEqual(Array.from(float16ToFloat32(expected)));
  });

  describe('external data', () => {
    let dir: string;
    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), 'onnx-writer-'));
    });
    afterAll(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    it('moves large initializers into one file and loads the model from a path', async () => {
      const g = new GraphBuilder('ext');
      const x = g.input('x', 'float32', ['batch', 16]);
      const w1 = randomArray(16 * 20, 51); // 1280 bytes: external
      const w2 = randomArray(20 * 64, 52); // 5120 bytes: external, page-aligned
      const b = randomArray(64, 53); // 256 bytes: stays inline
      const h = g.op('MatMul', [x, g.initializer('w1', 'float32', [16, 20], w1)]);
      const y = g.op('Add', [g.op('MatMul', [h, g.initializer('w2', 'float32', [20, 64], w2)]), g.initializer('b', 'float32', [64], b)]);
      g.output(y, 'y', 'float32', ['batch', 64]);

      const built: BuiltModel = g.toModel({ externalData: { location: 'ext.onnx.data' } });
      expect(built.externalData).toBeDefined();
      expect(built.externalData!.length).toBeGreaterThanOrEqual((w1.length + w2.length) * 4);
      // The weights are not inline: the model proper is far smaller than they are.
      expect(built.model.length).toBeLessThan(b.length * 4 + 1024);
      await saveModel(dir, 'ext.onnx', built);
      expect((await stat(join(dir, 'ext.onnx.data'))).size).toBe(built.externalData!.length);
      expect((await stat(join(dir, 'ext.onnx'))).size).toBe(built.model.length);

      const xs = randomArray(2 * 16, 54);
      const r = await runModel(join(dir, 'ext.onnx'), { x: f32(xs, [2, 16]) });
      const expected = matmul(matmul(xs, w1, 2, 16, 20), w2, 2, 20, 64).map((v, i) => v + b[i % 64]);
      expectClose(r.y.data as Float32Array, expected, 1e-4);
    });

    it('honours minBytes and refuses a mismatched external file name', async () => {
      const g = new GraphBuilder('ext2');
      const x = g.input('x', 'float32', [4]);
      g.output(g.op('Add', [x, g.initializer('c', 'float32', [4], [1, 2, 3, 4])]), 'y', 'float32', [4]);
      const inline = g.toModel({ externalData: { location: 'unused.data' } });
      expect(inline.externalData).toBeUndefined();

      const all = g.toModel({ externalData: { location: 'small.data', minBytes: 0 } });
      expect(all.externalData?.length).toBe(16);
      await expect(saveModel(dir, 'small.onnx', all, 'other.data')).rejects.toThrow(/differs from the location "small.data"/);
      await saveModel(dir, 'small.onnx', all);
      const r = await runModel(join(dir, 'small.onnx'), { x: f32([10, 20, 30, 40], [4]) });
      expect(Array.from(r.y.data as Float32Array)).toEqual([11, 22, 33, 44]);
    });
  });

  it('writes negative int64 values as 10-byte varints', async () => {
    const w = new ProtoWriter();
    w.int64Field(3, -1);
    expect(Array.from(w.finish())).toEqual([0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);

    const g = new GraphBuilder('neg');
    const x = g.input('x', 'float32', [2, 2]);
    g.output(g.op('Concat', [x, x], { axis: -1 }), 'y', 'float32', [2, 4]);
    const { model } = g.toModel();
    const node = sub(sub(decode(model).get(7)?.[0]).get(1)?.[1]); // node 0 is Concat, node 1 the output Identity
    expect(text(node.get(4)?.[0])).toBe('Identity');
    const concat = sub(sub(decode(model).get(7)?.[0]).get(1)?.[0]);
    const attr = sub(concat.get(5)?.[0]);
    expect(text(attr.get(1)?.[0])).toBe('axis');
    expect(attr.get(3)?.[0].rawVarint?.length).toBe(10);
    expect(BigInt.asIntN(64, attr.get(3)![0].int!)).toBe(-1n);
    expect(attr.get(20)?.[0].int).toBe(2n); // INT

    const r = await runModel(model, { x: f32([1, 2, 3, 4], [2, 2]) });
    expect(Array.from(r.y.data as Float32Array)).toEqual([1, 2, 1, 2, 3, 4, 3, 4]);
  });

  it('records doc string, producer, metadata, opsets and packed dims', async () => {
    const g = new GraphBuilder('meta');
    const x = g.input('x', 'float32', [1, 'n']);
    g.output(g.op('Neg', [x]), 'y', 'float32', [1, 'n']);
    g.output(g.initializer('ints', 'int64', [2, 3], [1, -2, 3, -4, 5, 6]), 'ints', 'int64', [2, 3]);
    const { model } = g.toModel({
      docString: 'A tiny test model',
      producer: 'blendfarm-tests',
      metadata: { purpose: 'unit test', seed: '42' },
      extraOpsets: [{ domain: 'com.microsoft', version: 1 }],
    });
    const r = await runModel(model, { x: f32([1, -2], [1, 2]) });
    expect(Array.from(r.ints.data as BigInt64Array)).toEqual([1n, -2n, 3n, -4n, 5n, 6n]);

    const m = decode(model);
    expect(m.get(1)?.[0].int).toBe(9n);
    expect(text(m.get(2)?.[0])).toBe('blendfarm-tests');
    expect(text(m.get(6)?.[0])).toBe('A tiny test model');
    const props = (m.get(14) ?? []).map((f) => {
      const e = sub(f);
      return [text(e.get(1)?.[0]), text(e.get(2)?.[0])];
    });
    expect(props).toEqual([['purpose', 'unit test'], ['seed', '42']]);
    const opsets = (m.get(8) ?? []).map((f) => {
      const o = sub(f);
      return [text(o.get(1)?.[0]), Number(o.get(2)?.[0].int)];
    });
    expect(opsets).toEqual([['', 17], ['com.microsoft', 1]]);

    const graph = sub(m.get(7)?.[0]);
    expect(text(graph.get(2)?.[0])).toBe('meta');
    const init = sub(graph.get(5)?.[0]);
    expect(init.get(1)?.length).toBe(1); // packed: one length-delimited field for all dims
    expect(packedVarints(init.get(1)![0].bytes!)).toEqual([2n, 3n]);
    expect(init.get(2)?.[0].int).toBe(7n);
    const raw = init.get(9)![0].bytes!;
    expect(Array.from(new BigInt64Array(raw.slice().buffer))).toEqual([1n, -2n, 3n, -4n, 5n, 6n]);
  });

  it('loads with IR version 9 and 10 and opsets 17 and 21', async () => {
    for (const irVersion of [9, 10]) {
      for (const opset of [17, 21]) {
        const g = new GraphBuilder('versions');
        const x = g.input('x', 'float32', ['n']);
        g.output(g.op('Mul', [x, g.constant([3], [])]), 'y', 'float32', ['n']);
        const { model } = g.toModel({ irVersion, opset });
        expect(decode(model).get(1)?.[0].int).toBe(BigInt(irVersion));
        const r = await runModel(model, { x: f32([1, 2], [2]) });
        expect(Array.from(r.y.data as Float32Array)).toEqual([3, 6]);
      }
    }
  });

  it('runs a Constant node with a tensor attribute and float attributes', async () => {
    const g = new GraphBuilder('attrs');
    const x = g.input('x', 'float32', [3]);
    const c = g.op('Constant', [], { value: { tensor: { dtype: 'float32', dims: [3], data: [1, 2, 3] } } });
    // alpha 1.0 is whole, so the wrapper is needed to make it FLOAT rather than INT.
    const elu = g.op('Elu', [g.op('Sub', [x, c])], { alpha: { float: 1 } });
    const leaky = g.op('LeakyRelu', [x], { alpha: 0.25 });
    g.output(elu, 'elu', 'float32', [3]);
    g.output(leaky, 'leaky', 'float32', [3]);
    const r = await runModel(g.toModel().model, { x: f32([0, 2, 5], [3]) });
    expectClose(r.elu.data as Float32Array, [Math.exp(-1) - 1, 0, 2]);
    expectClose(r.leaky.data as Float32Array, [0, 2, 5]);
    const r2 = await runModel(g.toModel().model, { x: f32([-4, 2, 5], [3]) });
    expectClose(r2.leaky.data as Float32Array, [-1, 2, 5]);
  });

  it('runs an If node with subgraph attributes', async () => {
    const g = new GraphBuilder('main');
    const x = g.input('x', 'float32', [2]);
    const cond = g.input('cond', 'bool', []);
    const thenG = new GraphBuilder('then', { prefix: 'then_' });
    thenG.output(thenG.op('Add', [x, x]), 'then_out', 'float32', [2]);
    const elseG = new GraphBuilder('else', { prefix: 'else_' });
    elseG.output(elseG.op('Neg', [x]), 'else_out', 'float32', [2]);
    g.output(g.op('If', [cond], { then_branch: { graph: thenG }, else_branch: { graph: elseG } }), 'y', 'float32', [2]);
    const { model } = g.toModel();
    const run = async (c: boolean) =>
      Array.from(
        (await runModel(model, { x: f32([1, -3], [2]), cond: new ort.Tensor('bool', Uint8Array.from([c ? 1 : 0]), []) })).y
          .data as Float32Array,
      );
    expect(await run(true)).toEqual([2, -6]);
    expect(await run(false)).toEqual([-1, 3]);
  });

  it('returns every output of a multi-output node from opMulti', async () => {
    const g = new GraphBuilder('split');
    const x = g.input('x', 'float32', [6]);
    const parts = g.opMulti('Split', [x], { axis: 0 }, { outputs: 3 });
    expect(new Set(parts).size).toBe(3);
    parts.forEach((p, i) => g.output(p, `part${i}`, 'float32', [2]));
    const r = await runModel(g.toModel().model, { x: f32([1, 2, 3, 4, 5, 6], [6]) });
    expect([0, 1, 2].map((i) => Array.from(r[`part${i}`].data as Float32Array))).toEqual([[1, 2], [3, 4], [5, 6]]);
  });

  it('runs a com.microsoft contrib op when its domain is imported', async () => {
    const g = new GraphBuilder('contrib');
    const x = g.input('x', 'float32', [4]);
    g.output(g.op('QuickGelu', [x], { alpha: 1.5 }, { domain: 'com.microsoft' }), 'y', 'float32', [4]);
    expect(() => g.toModel()).toThrow(/uses domain "com.microsoft", which has no opset import/);
    const { model } = g.toModel({ extraOpsets: [{ domain: 'com.microsoft', version: 1 }] });
    const xs = [-2, -0.5, 0.5, 3];
    const r = await runModel(model, { x: f32(xs, [4]) });
    expectClose(r.y.data as Float32Array, xs.map((v) => v / (1 + Math.exp(-1.5 * v))), 1e-4);
  });

  it('reports graph mistakes as clear errors before onnxruntime sees them', () => {
    const g = new GraphBuilder('bad');
    const x = g.input('x', 'float32', [2]);
    expect(() => g.input('x', 'float32', [2])).toThrow(/"x" is already defined/);
    expect(() => g.initializer('w', 'float32', [2, 2], [1, 2, 3])).toThrow(/need 4 elements but data has 3/);
    expect(() => g.constant([1.5], [1], 'int64')).toThrow(/not an int64 integer/);
    expect(() => g.op('Foo', [x], { bad: [1, 'a'] as unknown as number[] })).toThrow(/only numbers or only strings/);
    expect(() => g.toModel()).toThrow(/has no outputs/);
    expect(() => g.input('z', 'float32', [-1])).toThrow(/dimension -1 is invalid/);
    expect(() => g.op('Split', [x], {}, { outputNames: ['x'] })).toThrow(/"x" is already defined/);
    g.op('Add', [x, 'typo']);
    g.output(x, 'y', 'float32', [2]);
    expect(() => g.toModel()).toThrow(/uses "typo", which is not a graph input/);
  });
});
