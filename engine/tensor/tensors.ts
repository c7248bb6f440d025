/**
 * Every tensor that crosses into or out of ONNX Runtime goes through here, so dtype handling
 * (fp16 as Uint16Array, int32 vs int64 ids, float vs int timesteps) lives in one place.
 */
import * as ort from 'onnxruntime-node';
import { float16ToFloat32, float32ToFloat16 } from './fp16.ts';

export type FloatType = 'float32' | 'float16';

export function isFloatType(t: string): t is FloatType {
  return t === 'float32' || t === 'float16';
}

/** Float data in the dtype the model input wants. */
export function floatTensor(type: string, data: Float32Array, dims: number[]): ort.Tensor {
  if (type === 'float16') return new ort.Tensor('float16', float32ToFloat16(data), dims);
  if (type === 'float32') return new ort.Tensor('float32', data, dims);
  if (type === 'float64') return new ort.Tensor('float64', Float64Array.from(data), dims);
  throw new TypeError(`expected a float input, the model wants ${type}`);
}

/** Integer data (token ids, integer timesteps) in the dtype the model input wants. */
export function intTensor(type: string, data: ArrayLike<number>, dims: number[]): ort.Tensor {
  if (type === 'int32') return new ort.Tensor('int32', Int32Array.from(data), dims);
  if (type === 'int64') return new ort.Tensor('int64', BigInt64Array.from(Array.from(data, (v) => BigInt(Math.trunc(v)))), dims);
  throw new TypeError(`expected an integer input, the model wants ${type}`);
}

/** A scalar-per-element tensor of any numeric type (timesteps may be int64, float32 or float16). */
export function numericTensor(type: string, data: ArrayLike<number>, dims: number[]): ort.Tensor {
  return isFloatType(type) || type === 'float64' ? floatTensor(type, Float32Array.from(data), dims) : intTensor(type, data, dims);
}

/** Output data as float32, whatever the model produced. */
export function readFloat(t: ort.Tensor): Float32Array {
  const d = t.data as unknown;
  if (t.type === 'float32') return d as Float32Array;
  if (t.type === 'float16') {
    // Node 20 has no Float16Array: onnxruntime-node hands fp16 back as raw Uint16 bits.
    if (d instanceof Uint16Array) return float16ToFloat32(d);
    return Float32Array.from(d as ArrayLike<number>);
  }
  if (t.type === 'float64') return Float32Array.from(d as Float64Array);
  throw new TypeError(`expected a float output, got ${t.type}`);
}
