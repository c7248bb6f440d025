/**
 * The external weight files an ONNX model file names: the `location` of every tensor stored
 * outside the model (TensorProto.external_data), in graph initializers, in node attributes and in
 * subgraphs. Used after a failed load to look at the files the model really needs, and only those.
 *
 * The model is read field by field through a file descriptor, skipping the payloads it does not
 * need (inline weights), so a large single-file model is not read into memory.
 *
 * Field numbers follow onnx.proto3: ModelProto.graph 7; GraphProto node 1, initializer 5,
 * sparse_initializer 15; SparseTensorProto values 1, indices 2; NodeProto attribute 5;
 * AttributeProto t 5, g 6, tensors 10, graphs 11, sparse_tensor 22, sparse_tensors 23;
 * TensorProto external_data 13; StringStringEntryProto key 1, value 2.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';

const CHUNK = 64 * 1024;

/** Positional reads of one file through a small window, so walking field headers costs few system calls. */
class FileBytes {
  private window = Buffer.alloc(0);
  private windowStart = 0;
  readonly size: number;
  constructor(private readonly fd: number) {
    this.size = fstatSync(fd).size;
  }
  byte(pos: number): number {
    if (pos < this.windowStart || pos >= this.windowStart + this.window.length) {
      if (pos >= this.size) throw new Error('truncated model file');
      this.window = Buffer.alloc(Math.min(CHUNK, this.size - pos));
      readSync(this.fd, this.window, 0, this.window.length, pos);
      this.windowStart = pos;
    }
    return this.window[pos - this.windowStart];
  }
  text(start: number, end: number): string {
    const bytes = Buffer.alloc(end - start);
    readSync(this.fd, bytes, 0, bytes.length, start);
    return bytes.toString('utf8');
  }
  varint(pos: number): [number, number] {
    let value = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      const b = this.byte(pos++);
      value += (b & 0x7f) * mul;
      if ((b & 0x80) === 0) return [value, pos];
      mul *= 128;
    }
    throw new Error('varint longer than 10 bytes');
  }
  /** The length-delimited fields of the message in [start, end), as [number, payload start, payload end]. */
  *messages(start: number, end: number): Generator<[number, number, number]> {
    let pos = start;
    while (pos < end) {
      const [tag, p1] = this.varint(pos);
      const wire = tag % 8;
      pos = p1;
      if (wire === 0) pos = this.varint(pos)[1];
      else if (wire === 1) pos += 8;
      else if (wire === 5) pos += 4;
      else if (wire === 2) {
        const [len, p2] = this.varint(pos);
        pos = p2 + len;
        if (pos > end) throw new Error('truncated field');
        yield [Math.floor(tag / 8), p2, pos];
      } else throw new Error(`unsupported protobuf wire type ${wire}`);
    }
  }
}

type Walk = (f: FileBytes, start: number, end: number, out: Set<string>) => void;

/** Descends into the length-delimited fields listed in `into`. */
const walker = (into: () => Record<number, Walk>): Walk => (f, start, end, out) => {
  const table = into();
  for (const [num, s, e] of f.messages(start, end)) table[num]?.(f, s, e, out);
};

const entry: Walk = (f, start, end, out) => {
  let key = '';
  let value: string | undefined;
  for (const [num, s, e] of f.messages(start, end)) {
    if (num === 1) key = f.text(s, e);
    else if (num === 2) value = f.text(s, e);
  }
  if (key === 'location' && value) out.add(value);
};
const tensor: Walk = walker(() => ({ 13: entry }));
const sparseTensor: Walk = walker(() => ({ 1: tensor, 2: tensor }));
const attribute: Walk = walker(() => ({ 5: tensor, 6: graph, 10: tensor, 11: graph, 22: sparseTensor, 23: sparseTensor }));
const node: Walk = walker(() => ({ 5: attribute }));
const graph: Walk = walker(() => ({ 1: node, 5: tensor, 15: sparseTensor }));
const model: Walk = walker(() => ({ 7: graph }));

/**
 * The external data locations (relative to the model's folder, as written in the model) that the
 * ONNX model at `modelPath` refers to, in order of first mention; empty when it keeps all its
 * weights inline. Throws when the file cannot be read or is not a protobuf message.
 */
export function externalDataLocations(modelPath: string): string[] {
  const fd = openSync(modelPath, 'r');
  try {
    const bytes = new FileBytes(fd);
    const out = new Set<string>();
    model(bytes, 0, bytes.size, out);
    return [...out];
  } finally {
    closeSync(fd);
  }
}
