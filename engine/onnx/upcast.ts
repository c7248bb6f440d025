/**
 * fp16 -> fp32 conversion of an ONNX model, in memory: what diffusers' `force_upcast` does to a
 * VAE (SDXL's overflows in fp16), for a model file that was exported in fp16.
 *
 * It rewrites the protobuf at field level and copies everything else byte for byte:
 * - float16 tensors (initializers, Constant / ConstantOfShape values, in subgraphs too) become
 *   float32 (raw_data or int32_data bits converted exactly);
 * - float16 element types of graph inputs, outputs and value_info become float32;
 * - Cast(to=float16) becomes Cast(to=float32), as does any `dtype` attribute of float16.
 * The model then computes the same graph in fp32. Weights stored in an external file are not
 * supported (SD VAEs are single files well under 2 GB); that is reported as an error.
 *
 * Field numbers follow onnx.proto3 (ModelProto.graph 7; GraphProto node 1, initializer 5, input 11,
 * output 12, value_info 13; NodeProto op_type 4, attribute 5; AttributeProto name 1, i 3, t 5, g 6,
 * tensors 10, graphs 11; TensorProto data_type 2, int32_data 5, raw_data 9, data_location 14;
 * ValueInfoProto type 2; TypeProto tensor_type 1; TypeProto.Tensor elem_type 1).
 */
import { float16ToFloat32 } from '../tensor/fp16.ts';

const FLOAT = 1;
const FLOAT16 = 10;

interface Field {
  num: number;
  wire: number;
  /** Start of the tag: the whole field is bytes[start, end). */
  start: number;
  end: number;
  /** Length-delimited payload (wire 2) bounds. */
  dataStart: number;
  /** Varint value (wire 0); exact up to 2^53, enough for the enums and small ints read here. */
  varint: number;
}

class Reader {
  constructor(readonly buf: Uint8Array) {}
  varint(pos: number): [number, number] {
    let value = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      const b = this.buf[pos++];
      if (b === undefined) throw new Error('truncated varint');
      value += (b & 0x7f) * mul;
      if ((b & 0x80) === 0) return [value, pos];
      mul *= 128;
    }
    throw new Error('varint longer than 10 bytes');
  }
  fields(start = 0, end = this.buf.length): Field[] {
    const out: Field[] = [];
    let pos = start;
    while (pos < end) {
      const fieldStart = pos;
      const [tag, p1] = this.varint(pos);
      pos = p1;
      const num = Math.floor(tag / 8);
      const wire = tag % 8;
      let dataStart = pos;
      let varint = 0;
      if (wire === 0) [varint, pos] = this.varint(pos);
      else if (wire === 1) pos += 8;
      else if (wire === 5) pos += 4;
      else if (wire === 2) {
        const [len, p2] = this.varint(pos);
        dataStart = p2;
        pos = p2 + len;
      } else throw new Error(`unsupported protobuf wire type ${wire}`);
      if (pos > end) throw new Error('truncated field');
      out.push({ num, wire, start: fieldStart, end: pos, dataStart, varint });
    }
    return out;
  }
}

function encodeVarint(value: number): number[] {
  const out: number[] = [];
  let v = value;
  while (v >= 128) {
    out.push((v % 128) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return out;
}

type Chunks = Uint8Array[];

function lenField(num: number, payload: Chunks): Chunks {
  const len = payload.reduce((a, c) => a + c.length, 0);
  return [Uint8Array.from([...encodeVarint(num * 8 + 2), ...encodeVarint(len)]), ...payload];
}

function varintField(num: number, value: number): Uint8Array {
  return Uint8Array.from([...encodeVarint(num * 8), ...encodeVarint(value)]);
}

type Rewrite = (r: Reader, f: Field) => Chunks | undefined;

/** Copies a message, replacing the fields that `rewrite` returns chunks for. */
function message(r: Reader, start: number, end: number, rewrite: Rewrite): Chunks {
  const out: Chunks = [];
  for (const f of r.fields(start, end)) {
    const replaced = rewrite(r, f);
    out.push(...(replaced ?? [r.buf.subarray(f.start, f.end)]));
  }
  return out;
}

const sub = (r: Reader, f: Field, fn: (r: Reader, s: number, e: number) => Chunks): Chunks => lenField(f.num, fn(r, f.dataStart, f.end));

function graph(r: Reader, start: number, end: number): Chunks {
  return message(r, start, end, (rr, f) => {
    if (f.wire !== 2) return undefined;
    if (f.num === 1) return sub(rr, f, node);
    if (f.num === 5) return sub(rr, f, tensor);
    if (f.num === 11 || f.num === 12 || f.num === 13) return sub(rr, f, valueInfo);
    if (f.num === 15) throw new Error('sparse initializers are not supported');
    return undefined;
  });
}

function node(r: Reader, start: number, end: number): Chunks {
  const opField = r.fields(start, end).find((f) => f.num === 4 && f.wire === 2);
  const opType = opField ? new TextDecoder().decode(r.buf.subarray(opField.dataStart, opField.end)) : '';
  return message(r, start, end, (rr, f) => (f.num === 5 && f.wire === 2 ? sub(rr, f, (r2, s, e) => attribute(r2, s, e, opType)) : undefined));
}

function attribute(r: Reader, start: number, end: number, opType: string): Chunks {
  const fields = r.fields(start, end);
  const nameField = fields.find((f) => f.num === 1 && f.wire === 2);
  const name = nameField ? new TextDecoder().decode(r.buf.subarray(nameField.dataStart, nameField.end)) : '';
  const typeAttr = (opType === 'Cast' && name === 'to') || name === 'dtype';
  return message(r, start, end, (rr, f) => {
    if (f.num === 3 && f.wire === 0 && typeAttr && f.varint === FLOAT16) return [varintField(3, FLOAT)];
    if (f.wire !== 2) return undefined;
    if (f.num === 5 || f.num === 10) return sub(rr, f, tensor);
    if (f.num === 6 || f.num === 11) return sub(rr, f, graph);
    return undefined;
  });
}

function tensor(r: Reader, start: number, end: number): Chunks {
  const fields = r.fields(start, end);
  const type = fields.find((f) => f.num === 2 && f.wire === 0)?.varint;
  if (type !== FLOAT16) return [r.buf.subarray(start, end)];
  if (fields.some((f) => f.num === 14 && f.wire === 0 && f.varint === 1)) {
    throw new Error('its fp16 weights are in an external data file, which in-memory upcasting does not support');
  }
  // Half bits: raw_data (little-endian uint16) or int32_data (packed or not, one value per element).
  const halves: number[] = [];
  let raw: Uint8Array | undefined;
  for (const f of fields) {
    if (f.num === 9 && f.wire === 2) raw = r.buf.subarray(f.dataStart, f.end);
    else if (f.num === 5 && f.wire === 2) {
      let p = f.dataStart;
      while (p < f.end) {
        const [v, np] = r.varint(p);
        halves.push(v & 0xffff);
        p = np;
      }
    } else if (f.num === 5 && f.wire === 0) halves.push(f.varint & 0xffff);
  }
  let bits: Uint16Array;
  if (raw) {
    bits = new Uint16Array(raw.length / 2);
    for (let i = 0; i < bits.length; i++) bits[i] = raw[2 * i] | (raw[2 * i + 1] << 8);
  } else bits = Uint16Array.from(halves);
  const f32 = float16ToFloat32(bits);
  const bytes = new Uint8Array(f32.length * 4);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < f32.length; i++) view.setFloat32(i * 4, f32[i], true);
  const out: Chunks = [];
  for (const f of fields) {
    if (f.num === 2) out.push(varintField(2, FLOAT));
    else if (f.num === 9 || f.num === 5) continue;
    else out.push(r.buf.subarray(f.start, f.end));
  }
  out.push(...lenField(9, [bytes]));
  return out;
}

function valueInfo(r: Reader, start: number, end: number): Chunks {
  return message(r, start, end, (rr, f) => (f.num === 2 && f.wire === 2 ? sub(rr, f, typeProto) : undefined));
}

function typeProto(r: Reader, start: number, end: number): Chunks {
  return message(r, start, end, (rr, f) => (f.num === 1 && f.wire === 2 ? sub(rr, f, tensorType) : undefined));
}

function tensorType(r: Reader, start: number, end: number): Chunks {
  return message(r, start, end, (_rr, f) => (f.num === 1 && f.wire === 0 && f.varint === FLOAT16 ? [varintField(1, FLOAT)] : undefined));
}

/** The model (ModelProto bytes) with every fp16 tensor, type and cast made fp32. `label` names it in errors. */
export function upcastModelToFloat32(model: Uint8Array, label = 'model'): Uint8Array {
  const r = new Reader(model);
  let chunks: Chunks;
  try {
    chunks = message(r, 0, model.length, (rr, f) => (f.num === 7 && f.wire === 2 ? sub(rr, f, graph) : undefined));
  } catch (err) {
    throw new Error(`${label}: cannot convert to fp32: ${(err as Error).message}`);
  }
  const total = chunks.reduce((a, c) => a + c.length, 0);
  const out = new Uint8Array(total);
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}
