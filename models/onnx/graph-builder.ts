// A small builder for ONNX graphs, used to write the project's own test and
// demo models. It keeps values as plain names, checks what can be checked
// cheaply (unknown inputs, duplicate names, data sizes) so mistakes surface as
// clear errors here instead of as onnxruntime load failures, and encodes via
// proto.ts.

import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { float32ToFloat16 } from '../../engine/index.ts';
import {
  AttributeType,
  DataLocation,
  DataType,
  encodeModel,
  littleEndianBytes,
  toInt64,
  type AttributeProto,
  type GraphProto,
  type NodeProto,
  type TensorProto,
  type ValueInfoProto,
} from './proto.ts';

export type DType = 'float32' | 'float16' | 'int32' | 'int64' | 'bool' | 'uint8' | 'int8' | 'float64';

/** A number is a fixed size; a string is a symbolic dimension (dim_param), e.g. 'batch'. */
export type Dim = number | string;

export type TensorData =
  | Float32Array
  | Uint16Array
  | Int32Array
  | BigInt64Array
  | Uint8Array
  | Int8Array
  | Float64Array
  | number[];

/** A tensor given inline, e.g. as the `value` of Constant or ConstantOfShape. */
export interface TensorSpec {
  dtype: DType;
  dims: number[];
  data: TensorData;
  name?: string;
}

/**
 * Attribute values. Plain numbers become INT when they are integers and FLOAT
 * otherwise, and plain arrays become INTS when every element is an integer
 * (an empty array is INTS); use the wrappers where that guess is wrong, e.g.
 * `{ float: 1 }` for a FLOAT attribute whose value happens to be whole.
 */
export type AttrValue =
  | number
  | bigint
  | string
  | number[]
  | string[]
  | { float: number }
  | { int: number | bigint }
  | { string: string | Uint8Array }
  | { floats: number[] }
  | { ints: (number | bigint)[] }
  | { strings: (string | Uint8Array)[] }
  | { tensor: TensorSpec }
  | { tensors: TensorSpec[] }
  | { graph: GraphBuilder }
  | { graphs: GraphBuilder[] };

export interface OpOptions {
  /** Number of outputs to create (default 1). */
  outputs?: number;
  /** Operator domain, e.g. 'com.microsoft'; default is the standard ONNX domain. */
  domain?: string;
  /** Node name; default is generated from the op type. */
  name?: string;
  /** Explicit output value names (length must equal `outputs` when both are given). */
  outputNames?: string[];
}

export interface ToModelOptions {
  /** ONNX IR version (default 9). onnxruntime 1.29 reads IR versions up to 13. */
  irVersion?: number;
  /** Default-domain opset version (default 17). */
  opset?: number;
  /** Further operator sets, e.g. `{ domain: 'com.microsoft', version: 1 }`. */
  extraOpsets?: { domain: string; version: number }[];
  producer?: string;
  producerVersion?: string;
  docString?: string;
  modelVersion?: number;
  metadata?: Record<string, string>;
  /**
   * Move initializers of at least `minBytes` bytes (default 1024) into one
   * external file; `location` is that file's path relative to the model file.
   */
  externalData?: { location: string; minBytes?: number };
}

export interface BuiltModel {
  model: Uint8Array;
  externalData?: Uint8Array;
  /** The location recorded in the model for `externalData` (relative to the model file). */
  externalDataLocation?: string;
}

const DTYPE_CODE: Record<DType, number> = {
  float32: DataType.FLOAT,
  float16: DataType.FLOAT16,
  int32: DataType.INT32,
  int64: DataType.INT64,
  bool: DataType.BOOL,
  uint8: DataType.UINT8,
  int8: DataType.INT8,
  float64: DataType.DOUBLE,
};

export function dtypeCode(dtype: DType): number {
  const code = DTYPE_CODE[dtype];
  if (code === undefined) {
    throw new Error(`Unknown dtype "${String(dtype)}"; use one of ${Object.keys(DTYPE_CODE).join(', ')}`);
  }
  return code;
}

const DEFAULT_IR_VERSION = 9;
const DEFAULT_OPSET = 17;
const DEFAULT_EXTERNAL_MIN_BYTES = 1024;

interface StoredTensor {
  name: string;
  dtype: DType;
  dims: number[];
  bytes: Uint8Array;
}

interface StoredNode {
  opType: string;
  name: string;
  domain: string;
  inputs: string[];
  outputs: string[];
  attrs: Record<string, AttrValue>;
}

interface StoredValueInfo {
  name: string;
  dtype: DType;
  shape?: Dim[];
}

export class GraphBuilder {
  readonly name: string;
  private readonly prefix: string;
  private readonly inputs: StoredValueInfo[] = [];
  private readonly outputs: StoredValueInfo[] = [];
  private readonly valueInfos: StoredValueInfo[] = [];
  private readonly initializers: StoredTensor[] = [];
  private readonly nodes: StoredNode[] = [];
  /** Every value name defined in this graph (inputs, initializers, node outputs). */
  private readonly defined = new Set<string>();
  private readonly nodeNames = new Set<string>();
  private counter = 0;

  /**
   * @param name graph name
   * @param opts.prefix prefix for generated value and node names. Give subgraphs
   *   (If/Loop bodies) a distinct prefix so their names cannot collide with the
   *   outer graph's.
   */
  constructor(name: string, opts: { prefix?: string } = {}) {
    this.name = name;
    this.prefix = opts.prefix ?? '';
  }

  /** Declares a graph input; returns its value name. `shape` undefined means unknown rank. */
  input(name: string, dtype: DType, shape?: Dim[]): string {
    dtypeCode(dtype);
    const checked = checkShape(`Input "${name}"`, shape);
    this.define(name, 'graph input');
    this.inputs.push({ name, dtype, shape: checked });
    return name;
  }

  /** Declares a graph output named `name` that carries `value`; an Identity node links them when the names differ. */
  output(value: string, name: string, dtype: DType, shape?: Dim[]): void {
    dtypeCode(dtype);
    if (this.outputs.some((o) => o.name === name)) {
      throw new Error(`Graph "${this.name}" already has an output named "${name}"; pick another output name`);
    }
    const checked = checkShape(`Output "${name}"`, shape);
    if (value !== name) this.op('Identity', [value], {}, { outputNames: [name] });
    this.outputs.push({ name, dtype, shape: checked });
  }

  /** Records the type of an intermediate value (value_info); optional, helps tools and shape inference. */
  valueInfo(name: string, dtype: DType, shape?: Dim[]): void {
    dtypeCode(dtype);
    this.valueInfos.push({ name, dtype, shape: checkShape(`Value "${name}"`, shape) });
  }

  /** Adds a named initializer (a weight); returns its name. */
  initializer(name: string, dtype: DType, dims: number[], data: TensorData): string {
    const bytes = tensorBytes(name, dtype, dims, data);
    this.define(name, 'initializer');
    this.initializers.push({ name, dtype, dims: [...dims], bytes });
    return name;
  }

  /**
   * Adds an auto-named initializer. `dims` defaults to a 1-D shape of the data's
   * length (pass [] for a scalar); `dtype` defaults to float32.
   */
  constant(data: number[] | Float32Array | TensorData, dims?: number[], dtype: DType = 'float32'): string {
    const name = this.freshName('const');
    return this.initializer(name, dtype, dims ?? [data.length], data);
  }

  /** Adds a node; returns the name of its first output. Use '' for an omitted optional input. */
  op(opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}, opts: OpOptions = {}): string {
    return this.opMulti(opType, inputs, attrs, { ...opts, outputs: opts.outputs ?? opts.outputNames?.length ?? 1 })[0];
  }

  /** Adds a node with several outputs; returns all output names. */
  opMulti(
    opType: string,
    inputs: string[],
    attrs: Record<string, AttrValue> = {},
    opts: OpOptions & { outputs: number },
  ): string[] {
    const count = opts.outputs;
    if (!Number.isInteger(count) || count < 1) {
      throw new Error(`${opType}: outputs must be a positive integer, got ${count}`);
    }
    if (opts.outputNames && opts.outputNames.length !== count) {
      throw new Error(`${opType}: outputNames has ${opts.outputNames.length} names but outputs is ${count}`);
    }
    for (const input of inputs) {
      if (typeof input !== 'string') {
        throw new Error(`${opType}: inputs must be value names (strings), got ${typeof input}; use '' for an omitted input`);
      }
    }
    // Attribute values are checked now so a bad value points at the op that set it.
    for (const [key, value] of Object.entries(attrs)) describeAttribute(opType, key, value);
    const nodeName = opts.name ?? this.freshNodeName(opType);
    if (this.nodeNames.has(nodeName)) {
      throw new Error(`Graph "${this.name}" already has a node named "${nodeName}"; node names must be unique`);
    }
    const explicit = opts.outputNames ?? [];
    for (const [i, out] of explicit.entries()) {
      if (this.defined.has(out) || explicit.indexOf(out) !== i) {
        throw new Error(`${opType} node ${nodeName}: output name "${out}" is already defined; each value name may be defined once`);
      }
    }
    this.nodeNames.add(nodeName);
    const outputs: string[] = [];
    for (let i = 0; i < count; i++) {
      const out = explicit[i] ?? this.uniqueValueName(count === 1 ? `${nodeName}_output` : `${nodeName}_output_${i}`);
      this.define(out, `output of node ${nodeName}`);
      outputs.push(out);
    }
    // 'ai.onnx' is the standard domain's long name; the empty string is its canonical spelling in models.
    const domain = opts.domain === 'ai.onnx' ? '' : (opts.domain ?? '');
    this.nodes.push({ opType, name: nodeName, domain, inputs: [...inputs], outputs, attrs: { ...attrs } });
    return outputs;
  }

  /** Encodes the graph as an ONNX model. */
  toModel(opts: ToModelOptions = {}): BuiltModel {
    const irVersion = opts.irVersion ?? DEFAULT_IR_VERSION;
    const opset = opts.opset ?? DEFAULT_OPSET;
    requirePositiveInteger('irVersion', irVersion);
    requirePositiveInteger('opset', opset);
    const opsetImport = [{ domain: '', version: opset }];
    for (const extra of opts.extraOpsets ?? []) {
      requirePositiveInteger(`opset version for domain "${extra.domain}"`, extra.version);
      if (opsetImport.some((o) => o.domain === extra.domain)) {
        throw new Error(`Opset domain "${extra.domain || 'ai.onnx'}" is imported twice; list each domain once`);
      }
      opsetImport.push({ domain: extra.domain, version: extra.version });
    }

    const external = opts.externalData && new ExternalDataCollector(opts.externalData.location, opts.externalData.minBytes);
    const graph = this.toGraphProto(new Set(), external);
    for (const [domain, nodeName] of nodeDomains(graph)) {
      if (!opsetImport.some((o) => o.domain === domain)) {
        throw new Error(
          `Node ${nodeName} uses domain "${domain}", which has no opset import; pass extraOpsets: [{ domain: '${domain}', version: 1 }] to toModel()`,
        );
      }
    }
    const model = encodeModel({
      irVersion,
      opsetImport,
      producerName: opts.producer ?? 'blendfarm',
      producerVersion: opts.producerVersion,
      modelVersion: opts.modelVersion,
      docString: opts.docString,
      graph,
      metadataProps: Object.entries(opts.metadata ?? {}).map(([key, value]) => ({ key, value })),
    });
    if (!external || external.size === 0) return { model };
    return { model, externalData: external.finish(), externalDataLocation: external.location };
  }

  /** @internal Builds the GraphProto; `outerScope` holds the names visible from enclosing graphs. */
  toGraphProto(outerScope: ReadonlySet<string>, external?: ExternalDataCollector): GraphProto {
    if (this.outputs.length === 0) {
      throw new Error(`Graph "${this.name}" has no outputs; declare at least one with output()`);
    }
    for (const name of this.defined) {
      if (outerScope.has(name)) {
        throw new Error(
          `Subgraph "${this.name}" redefines "${name}" from an enclosing graph; rename it or give the subgraph a prefix`,
        );
      }
    }

    // ONNX requires nodes in topological order; every input must already be visible.
    const visible = new Set<string>(outerScope);
    for (const v of this.inputs) visible.add(v.name);
    for (const t of this.initializers) visible.add(t.name);
    const nodes: NodeProto[] = [];
    for (const n of this.nodes) {
      for (const input of n.inputs) {
        if (input !== '' && !visible.has(input)) {
          throw new Error(
            `Graph "${this.name}": node ${n.name} (${n.opType}) uses "${input}", which is not a graph input, initializer or earlier node output`,
          );
        }
      }
      nodes.push({
        opType: n.opType,
        name: n.name,
        domain: n.domain,
        input: n.inputs,
        output: n.outputs,
        attribute: Object.entries(n.attrs).map(([key, value]) => encodeAttribute(n.opType, key, value, visible)),
      });
      for (const o of n.outputs) visible.add(o);
    }
    for (const o of this.outputs) {
      if (!visible.has(o.name)) throw new Error(`Graph "${this.name}": output "${o.name}" is never produced`);
    }

    return {
      name: this.name,
      node: nodes,
      initializer: this.initializers.map((t) => {
        const proto: TensorProto = { name: t.name, dims: t.dims, dataType: dtypeCode(t.dtype) };
        // Empty tensors stay inline: a zero-length external range is pointless and some loaders reject it.
        if (external && t.bytes.length > 0 && t.bytes.length >= external.minBytes) external.place(proto, t.bytes);
        else proto.rawData = t.bytes;
        return proto;
      }),
      input: this.inputs.map(valueInfoProto),
      output: this.outputs.map(valueInfoProto),
      valueInfo: this.valueInfos.map(valueInfoProto),
    };
  }

  private define(name: string, what: string): void {
    if (typeof name !== 'string' || name === '') throw new Error(`A ${what} needs a non-empty name`);
    if (this.defined.has(name)) {
      throw new Error(`Graph "${this.name}": "${name}" is already defined; each value name may be defined once`);
    }
    this.defined.add(name);
  }

  private freshName(base: string): string {
    let name: string;
    do name = `${this.prefix}${base}_${this.counter++}`;
    while (this.defined.has(name));
    return name;
  }

  private uniqueValueName(base: string): string {
    let name = base;
    for (let k = 1; this.defined.has(name); k++) name = `${base}_${k}`;
    return name;
  }

  private freshNodeName(opType: string): string {
    let name: string;
    do name = `${this.prefix}${opType}_${this.counter++}`;
    while (this.nodeNames.has(name));
    return name;
  }
}

/** Writes the model (and its external data file, if any) into `dir`, creating the directory. */
export async function saveModel(
  dir: string,
  fileName: string,
  built: BuiltModel,
  externalDataFile?: string,
): Promise<void> {
  await mkdir(dir, { recursive: true });
  if (built.externalData) {
    const location = built.externalDataLocation;
    const file = externalDataFile ?? location;
    if (!file) throw new Error('saveModel: the model has external data but no file name; pass externalDataFile');
    if (location !== undefined && file !== location) {
      throw new Error(
        `saveModel: externalDataFile "${file}" differs from the location "${location}" recorded in the model; build with externalData.location = "${file}"`,
      );
    }
    const path = join(dir, file);
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, built.externalData);
  }
  await writeFile(join(dir, fileName), built.model);
}

// --- helpers ---

function requirePositiveInteger(what: string, v: number): void {
  if (!Number.isInteger(v) || v < 1) throw new Error(`${what} must be a positive integer, got ${v}`);
}

/** Each operator domain used in `graph` (subgraphs included), with one node that uses it. */
function nodeDomains(graph: GraphProto, found = new Map<string, string>()): Map<string, string> {
  for (const node of graph.node) {
    const domain = node.domain ?? '';
    if (!found.has(domain)) found.set(domain, node.name ?? node.opType);
    for (const attr of node.attribute ?? []) {
      if (attr.g) nodeDomains(attr.g, found);
      for (const sub of attr.graphs ?? []) nodeDomains(sub, found);
    }
  }
  return found;
}

function checkShape(what: string, shape: Dim[] | undefined): Dim[] | undefined {
  if (shape === undefined) return undefined;
  for (const d of shape) {
    const ok = typeof d === 'string' ? d.length > 0 : Number.isInteger(d) && d >= 0;
    if (!ok) {
      throw new Error(
        `${what}: dimension ${JSON.stringify(d)} is invalid; use a non-negative integer, or a name like 'batch' for a size known only at run time`,
      );
    }
  }
  return [...shape];
}

function valueInfoProto(v: StoredValueInfo): ValueInfoProto {
  return { name: v.name, type: { tensorType: { elemType: dtypeCode(v.dtype), shape: v.shape } } };
}

/** Collects large initializers into one buffer, at aligned offsets. */
class ExternalDataCollector {
  readonly minBytes: number;
  private chunks: Uint8Array[] = [];
  private offset = 0;

  constructor(
    readonly location: string,
    minBytes: number = DEFAULT_EXTERNAL_MIN_BYTES,
  ) {
    if (!location) throw new Error('externalData.location must be a file name, e.g. "model.onnx.data"');
    if (!Number.isInteger(minBytes) || minBytes < 0) {
      throw new Error(`externalData.minBytes must be a non-negative integer, got ${minBytes}`);
    }
    this.minBytes = minBytes;
  }

  get size(): number {
    return this.offset;
  }

  place(proto: TensorProto, bytes: Uint8Array): void {
    // Page alignment lets onnxruntime memory-map big tensors; small ones only need 16 bytes.
    const align = bytes.length >= 4096 ? 4096 : 16;
    const start = Math.ceil(this.offset / align) * align;
    if (start > this.offset) this.chunks.push(new Uint8Array(start - this.offset));
    this.chunks.push(bytes);
    this.offset = start + bytes.length;
    proto.dataLocation = DataLocation.EXTERNAL;
    proto.externalData = [
      { key: 'location', value: this.location },
      { key: 'offset', value: String(start) },
      { key: 'length', value: String(bytes.length) },
    ];
  }

  finish(): Uint8Array {
    const out = new Uint8Array(this.offset);
    let pos = 0;
    for (const c of this.chunks) {
      out.set(c, pos);
      pos += c.length;
    }
    return out;
  }
}

function elementCount(dims: number[]): number {
  let n = 1;
  for (const d of dims) {
    if (!Number.isInteger(d) || d < 0) throw new Error(`Tensor dims must be non-negative integers, got [${dims.join(', ')}]`);
    n *= d;
  }
  return n;
}

/** Little-endian bytes of `data` as `dtype`, checking the element count against `dims`. */
export function tensorBytes(name: string, dtype: DType, dims: number[], data: TensorData): Uint8Array {
  const count = elementCount(dims);
  if (data.length !== count) {
    throw new Error(`Tensor "${name}": dims [${dims.join(', ')}] need ${count} elements but data has ${data.length}`);
  }
  const typed = toTypedArray(name, dtype, data);
  return new Uint8Array(littleEndianBytes(typed));
}

function toTypedArray(
  name: string,
  dtype: DType,
  data: TensorData,
): Float32Array | Uint16Array | Int32Array | BigInt64Array | Uint8Array | Int8Array | Float64Array {
  switch (dtype) {
    case 'float32':
      return data instanceof Float32Array ? data : Float32Array.from(numbers(name, data));
    case 'float64':
      return data instanceof Float64Array ? data : Float64Array.from(numbers(name, data));
    case 'float16':
      // A Uint16Array is taken as half bit patterns; any other data as values to convert.
      if (data instanceof Uint16Array) return data;
      return float32ToFloat16(data instanceof Float32Array ? data : numbers(name, data));
    case 'int32':
      return data instanceof Int32Array ? data : Int32Array.from(integers(name, data, -(2 ** 31), 2 ** 31 - 1));
    case 'int8':
      return data instanceof Int8Array ? data : Int8Array.from(integers(name, data, -128, 127));
    case 'uint8':
      return data instanceof Uint8Array ? data : Uint8Array.from(integers(name, data, 0, 255));
    case 'bool':
      // Normalise to 0/1: onnxruntime reads bool bytes as-is.
      return Uint8Array.from(Array.from(data as ArrayLike<number | bigint>, (v) => (v ? 1 : 0)));
    case 'int64': {
      if (data instanceof BigInt64Array) return data;
      const out = new BigInt64Array(data.length);
      for (let i = 0; i < data.length; i++) {
        const v = (data as ArrayLike<number>)[i];
        try {
          out[i] = toInt64(v);
        } catch {
          throw new Error(`Tensor "${name}": element ${i} (${v}) is not an int64 integer`);
        }
      }
      return out;
    }
    default:
      dtypeCode(dtype);
      throw new Error(`Tensor "${name}": unsupported dtype ${dtype}`);
  }
}

function numbers(name: string, data: TensorData): number[] {
  if (data instanceof BigInt64Array) {
    throw new Error(`Tensor "${name}": got a BigInt64Array for a floating-point dtype; pass numbers instead`);
  }
  return Array.from(data as ArrayLike<number>);
}

function integers(name: string, data: TensorData, min: number, max: number): number[] {
  const out: number[] = Array.from(data as ArrayLike<number | bigint>, (v) => Number(v));
  for (let i = 0; i < out.length; i++) {
    const v = out[i];
    if (!Number.isInteger(v) || v < min || v > max) {
      throw new Error(`Tensor "${name}": element ${i} (${v}) is not an integer in [${min}, ${max}]`);
    }
  }
  return out;
}

// --- attributes ---

type AttrKind = 'FLOAT' | 'INT' | 'STRING' | 'TENSOR' | 'GRAPH' | 'FLOATS' | 'INTS' | 'STRINGS' | 'TENSORS' | 'GRAPHS';

const utf8 = new TextEncoder();

function isWhole(v: unknown): boolean {
  return typeof v === 'bigint' || (typeof v === 'number' && Number.isInteger(v));
}

/** Decides the attribute type of `value`, throwing a clear error for values that fit none. */
function describeAttribute(opType: string, key: string, value: AttrValue): AttrKind {
  const bad = (why: string): Error => new Error(`${opType} attribute "${key}": ${why}`);
  if (typeof value === 'number') return Number.isInteger(value) ? 'INT' : 'FLOAT';
  if (typeof value === 'bigint') return 'INT';
  if (typeof value === 'string') return 'STRING';
  if (Array.isArray(value)) {
    if (value.every((v) => typeof v === 'string')) return value.length === 0 ? 'INTS' : 'STRINGS';
    if (value.every((v) => typeof v === 'number' || typeof v === 'bigint')) {
      return value.every(isWhole) ? 'INTS' : 'FLOATS';
    }
    throw bad('arrays must hold only numbers or only strings');
  }
  if (value && typeof value === 'object') {
    const keys = Object.keys(value);
    if (keys.length !== 1) throw bad(`expected one of {float}, {int}, {ints}, ... wrappers, got keys [${keys.join(', ')}]`);
    if ('float' in value) return 'FLOAT';
    if ('int' in value) {
      if (!isWhole(value.int)) throw bad(`{ int: ${value.int} } is not an integer`);
      return 'INT';
    }
    if ('string' in value) return 'STRING';
    if ('floats' in value) return 'FLOATS';
    if ('ints' in value) {
      if (!value.ints.every(isWhole)) throw bad('{ ints } must hold only integers');
      return 'INTS';
    }
    if ('strings' in value) return 'STRINGS';
    if ('tensor' in value) return 'TENSOR';
    if ('tensors' in value) return 'TENSORS';
    if ('graph' in value) {
      if (!(value.graph instanceof GraphBuilder)) throw bad('{ graph } must be a GraphBuilder');
      return 'GRAPH';
    }
    if ('graphs' in value) {
      if (!value.graphs.every((g) => g instanceof GraphBuilder)) throw bad('{ graphs } must hold GraphBuilders');
      return 'GRAPHS';
    }
  }
  throw bad(`unsupported value ${String(value)}`);
}

function attrTensor(spec: TensorSpec, fallbackName: string): TensorProto {
  const name = spec.name ?? fallbackName;
  return { name, dims: spec.dims, dataType: dtypeCode(spec.dtype), rawData: tensorBytes(name, spec.dtype, spec.dims, spec.data) };
}

function bytesOf(s: string | Uint8Array): Uint8Array {
  return typeof s === 'string' ? utf8.encode(s) : s;
}

function encodeAttribute(opType: string, key: string, value: AttrValue, scope: ReadonlySet<string>): AttributeProto {
  const kind = describeAttribute(opType, key, value);
  const v = value as Record<string, unknown> & AttrValue;
  const wrapped = (k: string): unknown => (typeof value === 'object' && !Array.isArray(value) ? v[k] : value);
  const base = { name: key, type: AttributeType[kind] };
  switch (kind) {
    case 'FLOAT':
      return { ...base, f: wrapped('float') as number };
    case 'INT':
      return { ...base, i: wrapped('int') as number | bigint };
    case 'STRING':
      return { ...base, s: bytesOf(wrapped('string') as string | Uint8Array) };
    case 'FLOATS':
      return { ...base, floats: wrapped('floats') as number[] };
    case 'INTS':
      return { ...base, ints: wrapped('ints') as (number | bigint)[] };
    case 'STRINGS':
      return { ...base, strings: (wrapped('strings') as (string | Uint8Array)[]).map(bytesOf) };
    case 'TENSOR':
      return { ...base, t: attrTensor((value as { tensor: TensorSpec }).tensor, key) };
    case 'TENSORS':
      return { ...base, tensors: (value as { tensors: TensorSpec[] }).tensors.map((t, i) => attrTensor(t, `${key}_${i}`)) };
    case 'GRAPH':
      return { ...base, g: (value as { graph: GraphBuilder }).graph.toGraphProto(scope) };
    case 'GRAPHS':
      return { ...base, graphs: (value as { graphs: GraphBuilder[] }).graphs.map((g) => g.toGraphProto(scope)) };
  }
}
