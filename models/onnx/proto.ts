// Protobuf wire encoding for the subset of onnx.proto3 that the project writes
// (ModelProto and the messages it contains). Hand-written because no protobuf
// library is available; field numbers follow onnx.proto3.
//
// Encoding notes:
// - Nested messages are encoded into their own ProtoWriter and appended as a
//   list of chunks, so large raw_data buffers are never copied more than once
//   (at the final concat), however deep they sit.
// - Repeated numeric fields use packed encoding (proto3 default); protobuf
//   parsers accept packed and unpacked forms alike.
// - int64 values are accepted as number or bigint. Negative values are written
//   as 10-byte two's-complement varints, as protobuf requires for int64.

export const DataType = {
  FLOAT: 1,
  UINT8: 2,
  INT8: 3,
  UINT16: 4,
  INT16: 5,
  INT32: 6,
  INT64: 7,
  STRING: 8,
  BOOL: 9,
  FLOAT16: 10,
  DOUBLE: 11,
  UINT32: 12,
  UINT64: 13,
  BFLOAT16: 16,
} as const;

export const AttributeType = {
  FLOAT: 1,
  INT: 2,
  STRING: 3,
  TENSOR: 4,
  GRAPH: 5,
  FLOATS: 6,
  INTS: 7,
  STRINGS: 8,
  TENSORS: 9,
  GRAPHS: 10,
} as const;

export const DataLocation = { DEFAULT: 0, EXTERNAL: 1 } as const;

export type Int64 = number | bigint;

export interface StringStringEntry {
  key: string;
  value: string;
}

export interface TensorProto {
  name?: string;
  dims: Int64[];
  dataType: number;
  /** Little-endian element bytes. */
  rawData?: Uint8Array;
  floatData?: ArrayLike<number>;
  int32Data?: ArrayLike<number>;
  int64Data?: ArrayLike<Int64>;
  doubleData?: ArrayLike<number>;
  externalData?: StringStringEntry[];
  dataLocation?: number;
  docString?: string;
}

/** One dimension: a number is dim_value, a string is dim_param (symbolic). */
export type DimensionProto = number | string;

export interface TensorTypeProto {
  elemType: number;
  /** Omitted means unknown rank; [] means a scalar. */
  shape?: DimensionProto[];
}

export interface ValueInfoProto {
  name: string;
  type?: { tensorType: TensorTypeProto };
  docString?: string;
}

export interface AttributeProto {
  name: string;
  type: number;
  f?: number;
  i?: Int64;
  s?: Uint8Array;
  t?: TensorProto;
  g?: GraphProto;
  floats?: ArrayLike<number>;
  ints?: ArrayLike<Int64>;
  strings?: Uint8Array[];
  tensors?: TensorProto[];
  graphs?: GraphProto[];
  docString?: string;
}

export interface NodeProto {
  input: string[];
  output: string[];
  name?: string;
  opType: string;
  domain?: string;
  attribute?: AttributeProto[];
  docString?: string;
}

export interface GraphProto {
  name: string;
  node: NodeProto[];
  initializer?: TensorProto[];
  input: ValueInfoProto[];
  output: ValueInfoProto[];
  valueInfo?: ValueInfoProto[];
  docString?: string;
}

export interface OperatorSetIdProto {
  domain: string;
  version: Int64;
}

export interface ModelProto {
  irVersion: Int64;
  opsetImport: OperatorSetIdProto[];
  producerName?: string;
  producerVersion?: string;
  domain?: string;
  modelVersion?: Int64;
  docString?: string;
  graph: GraphProto;
  metadataProps?: StringStringEntry[];
}

const WIRE_VARINT = 0;
const WIRE_LEN = 2;
const WIRE_FIXED32 = 5;

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const TWO_POW_63 = 2 ** 63;

const utf8 = new TextEncoder();
const EMPTY = new Uint8Array(0);

/** Appends protobuf wire data; small writes go to a scratch buffer, big byte arrays are kept by reference. */
export class ProtoWriter {
  private chunks: Uint8Array[] = [];
  private buf: Uint8Array = EMPTY;
  private pos = 0;
  private flushedLength = 0;
  /** Size of the next scratch buffer: starts small because most messages are tiny. */
  private nextSize = 64;

  get length(): number {
    return this.flushedLength + this.pos;
  }

  private reserve(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    this.flush();
    this.buf = new Uint8Array(Math.max(n, this.nextSize));
    this.nextSize = Math.min(this.nextSize * 2, 1 << 16);
  }

  /** Moves the scratch bytes written so far into `chunks`; the next write starts a new scratch buffer. */
  private flush(): void {
    if (this.pos === 0) return;
    this.chunks.push(this.buf.subarray(0, this.pos));
    this.flushedLength += this.pos;
    this.buf = this.buf.subarray(this.pos);
    this.pos = 0;
  }

  /** Unsigned varint for values in [0, 2^53). */
  private uvarint(v: number): void {
    this.reserve(10);
    const b = this.buf;
    while (v >= 0x80) {
      b[this.pos++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    b[this.pos++] = v;
  }

  /** Varint of a 64-bit two's-complement integer (int64 / int32 fields). */
  varint64(v: Int64): void {
    if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) {
      this.uvarint(v);
      return;
    }
    let u = BigInt.asUintN(64, toInt64(v));
    this.reserve(10);
    while (u >= 0x80n) {
      this.buf[this.pos++] = Number(u & 0x7fn) | 0x80;
      u >>= 7n;
    }
    this.buf[this.pos++] = Number(u);
  }

  tag(field: number, wire: number): void {
    this.uvarint(field * 8 + wire);
  }

  bytesRaw(data: Uint8Array): void {
    if (data.length <= 512) {
      this.reserve(data.length);
      this.buf.set(data, this.pos);
      this.pos += data.length;
    } else {
      this.flush();
      this.chunks.push(data);
      this.flushedLength += data.length;
    }
  }

  // --- field writers ---

  int64Field(field: number, v: Int64): void {
    this.tag(field, WIRE_VARINT);
    this.varint64(v);
  }

  floatField(field: number, v: number): void {
    this.tag(field, WIRE_FIXED32);
    this.reserve(4);
    new DataView(this.buf.buffer, this.buf.byteOffset).setFloat32(this.pos, v, true);
    this.pos += 4;
  }

  bytesField(field: number, data: Uint8Array): void {
    this.tag(field, WIRE_LEN);
    this.uvarint(data.length);
    this.bytesRaw(data);
  }

  stringField(field: number, s: string): void {
    this.bytesField(field, utf8.encode(s));
  }

  messageField(field: number, msg: ProtoWriter): void {
    this.tag(field, WIRE_LEN);
    this.uvarint(msg.length);
    msg.flush();
    this.flush();
    for (const c of msg.chunks) this.chunks.push(c);
    this.flushedLength += msg.flushedLength;
  }

  packedInt64Field(field: number, values: ArrayLike<Int64>): void {
    if (values.length === 0) return;
    const inner = new ProtoWriter();
    for (let i = 0; i < values.length; i++) inner.varint64(values[i]);
    this.messageField(field, inner);
  }

  packedFloatField(field: number, values: ArrayLike<number>): void {
    if (values.length === 0) return;
    this.bytesField(field, littleEndianBytes(Float32Array.from(values)));
  }

  packedDoubleField(field: number, values: ArrayLike<number>): void {
    if (values.length === 0) return;
    this.bytesField(field, littleEndianBytes(Float64Array.from(values)));
  }

  finish(): Uint8Array {
    this.flush();
    if (this.chunks.length === 1) return this.chunks[0];
    const out = new Uint8Array(this.flushedLength);
    let off = 0;
    for (const c of this.chunks) {
      out.set(c, off);
      off += c.length;
    }
    return out;
  }
}

/** Converts to a bigint in int64 range; numbers beyond ±2^63 clamp (so 2**63 means INT64_MAX, as in Slice ends). */
export function toInt64(v: Int64): bigint {
  if (typeof v === 'bigint') {
    if (v < INT64_MIN || v > INT64_MAX) throw new RangeError(`int64 value ${v} is out of range; use a value in [-2^63, 2^63-1]`);
    return v;
  }
  if (!Number.isInteger(v)) throw new RangeError(`int64 value ${v} is not an integer; pass a whole number`);
  if (v >= TWO_POW_63) return INT64_MAX;
  if (v <= -TWO_POW_63) return INT64_MIN;
  return BigInt(v);
}

const hostIsLittleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** The bytes of a typed array in little-endian order (ONNX raw_data and packed fixed-width fields). */
export function littleEndianBytes(a: ArrayBufferView & { BYTES_PER_ELEMENT?: number }): Uint8Array {
  const bytes = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  const width = a.BYTES_PER_ELEMENT ?? 1;
  if (hostIsLittleEndian || width === 1) return bytes;
  const swapped = new Uint8Array(bytes.length);
  for (let i = 0; i < bytes.length; i += width) {
    for (let j = 0; j < width; j++) swapped[i + j] = bytes[i + width - 1 - j];
  }
  return swapped;
}

// --- message encoders ---

function writeStringStringEntry(e: StringStringEntry): ProtoWriter {
  const w = new ProtoWriter();
  w.stringField(1, e.key);
  w.stringField(2, e.value);
  return w;
}

export function writeTensor(t: TensorProto): ProtoWriter {
  const w = new ProtoWriter();
  w.packedInt64Field(1, t.dims);
  w.int64Field(2, t.dataType);
  if (t.floatData) w.packedFloatField(4, t.floatData);
  // int32 shares the int64 varint form: negative values are sign-extended to 10 bytes.
  if (t.int32Data) w.packedInt64Field(5, t.int32Data);
  if (t.int64Data) w.packedInt64Field(7, t.int64Data);
  if (t.name !== undefined) w.stringField(8, t.name);
  if (t.rawData) w.bytesField(9, t.rawData);
  if (t.doubleData) w.packedDoubleField(10, t.doubleData);
  if (t.docString) w.stringField(12, t.docString);
  for (const e of t.externalData ?? []) w.messageField(13, writeStringStringEntry(e));
  if (t.dataLocation) w.int64Field(14, t.dataLocation);
  return w;
}

function writeDimension(d: DimensionProto): ProtoWriter {
  const w = new ProtoWriter();
  if (typeof d === 'number') w.int64Field(1, d);
  else w.stringField(2, d);
  return w;
}

function writeTensorType(t: TensorTypeProto): ProtoWriter {
  const w = new ProtoWriter();
  w.int64Field(1, t.elemType);
  if (t.shape) {
    // An empty TensorShapeProto is meaningful (rank 0), so it is always written when a shape is given.
    const shape = new ProtoWriter();
    for (const d of t.shape) shape.messageField(1, writeDimension(d));
    w.messageField(2, shape);
  }
  return w;
}

export function writeValueInfo(v: ValueInfoProto): ProtoWriter {
  const w = new ProtoWriter();
  w.stringField(1, v.name);
  if (v.type) {
    const type = new ProtoWriter();
    type.messageField(1, writeTensorType(v.type.tensorType));
    w.messageField(2, type);
  }
  if (v.docString) w.stringField(3, v.docString);
  return w;
}

export function writeAttribute(a: AttributeProto): ProtoWriter {
  const w = new ProtoWriter();
  w.stringField(1, a.name);
  if (a.f !== undefined) w.floatField(2, a.f);
  if (a.i !== undefined) w.int64Field(3, a.i);
  if (a.s !== undefined) w.bytesField(4, a.s);
  if (a.t !== undefined) w.messageField(5, writeTensor(a.t));
  if (a.g !== undefined) w.messageField(6, writeGraph(a.g));
  if (a.floats) w.packedFloatField(7, a.floats);
  if (a.ints) w.packedInt64Field(8, a.ints);
  for (const s of a.strings ?? []) w.bytesField(9, s);
  for (const t of a.tensors ?? []) w.messageField(10, writeTensor(t));
  for (const g of a.graphs ?? []) w.messageField(11, writeGraph(g));
  if (a.docString) w.stringField(13, a.docString);
  w.int64Field(20, a.type);
  return w;
}

export function writeNode(n: NodeProto): ProtoWriter {
  const w = new ProtoWriter();
  for (const i of n.input) w.stringField(1, i);
  for (const o of n.output) w.stringField(2, o);
  if (n.name) w.stringField(3, n.name);
  w.stringField(4, n.opType);
  for (const a of n.attribute ?? []) w.messageField(5, writeAttribute(a));
  if (n.docString) w.stringField(6, n.docString);
  if (n.domain) w.stringField(7, n.domain);
  return w;
}

export function writeGraph(g: GraphProto): ProtoWriter {
  const w = new ProtoWriter();
  for (const n of g.node) w.messageField(1, writeNode(n));
  w.stringField(2, g.name);
  for (const t of g.initializer ?? []) w.messageField(5, writeTensor(t));
  if (g.docString) w.stringField(10, g.docString);
  for (const v of g.input) w.messageField(11, writeValueInfo(v));
  for (const v of g.output) w.messageField(12, writeValueInfo(v));
  for (const v of g.valueInfo ?? []) w.messageField(13, writeValueInfo(v));
  return w;
}

export function encodeModel(m: ModelProto): Uint8Array {
  const w = new ProtoWriter();
  w.int64Field(1, m.irVersion);
  if (m.producerName) w.stringField(2, m.producerName);
  if (m.producerVersion) w.stringField(3, m.producerVersion);
  if (m.domain) w.stringField(4, m.domain);
  if (m.modelVersion !== undefined) w.int64Field(5, m.modelVersion);
  if (m.docString) w.stringField(6, m.docString);
  w.messageField(7, writeGraph(m.graph));
  for (const o of m.opsetImport) {
    const op = new ProtoWriter();
    if (o.domain) op.stringField(1, o.domain);
    op.int64Field(2, o.version);
    w.messageField(8, op);
  }
  for (const e of m.metadataProps ?? []) w.messageField(14, writeStringStringEntry(e));
  return w.finish();
}
