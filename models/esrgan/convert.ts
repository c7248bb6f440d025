/**
 * Converts a TensorFlow.js layers model (model.json + weight shards, as the @upscalerjs/esrgan-*
 * packages ship them) into an ONNX super-resolution model with the project's own ONNX writer.
 * No TensorFlow is involved: model.json is read as JSON and the weights as raw float32.
 *
 * The ONNX model has the interface the engine's super-resolution upscaler expects
 * (engine/upscale/super-resolution.ts):
 *   input  `image`    [N, 3, H, W]   float32 RGB in [0, 1]
 *   output `upscaled` [N, 3, sH, sW] float32 RGB, nominally [0, 1] (not clipped; the engine clips)
 * The network itself runs in NCHW: Keras kernels [kh, kw, in, out] become ONNX [out, in, kh, kw],
 * channel-axis concatenations move from axis 3 to axis 1. Models trained on [0, 255] (UpscalerJS's
 * RDN models) get the scaling folded in at both ends.
 *
 * Supported layers (every layer these packages use): InputLayer, Conv2D (stride 1, odd kernels,
 * 'same' or 'valid' padding, linear activation or relu), Activation (relu, linear, sigmoid, tanh),
 * Add, Concatenate (channel axis), UpSampling2D (nearest), and UpscalerJS's custom MultiplyBeta
 * (x * 0.2) and PixelShuffle{s}x (tf.depthToSpace in NHWC, which is ONNX DepthToSpace mode DCR).
 * Anything else is refused with the layer's name, never silently skipped.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GraphBuilder, type BuiltModel } from '../onnx/index.ts';

/** Bumped whenever the conversion changes, so cached conversions are rebuilt. */
export const CONVERTER_VERSION = 1;

export const SR_INPUT = 'image';
export const SR_OUTPUT = 'upscaled';

interface KerasLayer {
  class_name: string;
  name?: string;
  config: Record<string, unknown> & { name: string };
  inbound_nodes: unknown[];
}

interface WeightsManifestGroup {
  paths: string[];
  weights: { name: string; shape: number[]; dtype: string; quantization?: unknown }[];
}

interface TfjsModelJson {
  format?: string;
  modelTopology: { model_config?: { class_name: string; config: KerasModelConfig }; class_name?: string; config?: KerasModelConfig };
  weightsManifest: WeightsManifestGroup[];
}

interface KerasModelConfig {
  layers: KerasLayer[];
  input_layers: unknown[][];
  output_layers: unknown[][];
}

export interface ConvertOptions {
  /** Value range the network was trained on: [0, 255] (RDN models) or [0, 1] (RRDN models). */
  inputRange: [number, number];
  /** Linear upscaling factor the network applies. */
  scale: number;
  /** Stored in the model's metadata. */
  name: string;
}

export interface ConvertedModel {
  built: BuiltModel;
  /** How many low-resolution pixels on each side an output pixel depends on (tiles need this much overlap). */
  receptiveRadius: number;
  /** Layer counts by class, for reports. */
  layers: Record<string, number>;
  parameters: number;
}

export class ConversionError extends Error {
  override name = 'ConversionError';
}

/** Reads model.json and its weight shards from `dir`; returns the weights by name. */
export async function readTfjsLayersModel(dir: string): Promise<{ json: TfjsModelJson; weights: Map<string, { shape: number[]; data: Float32Array }> }> {
  const file = join(dir, 'model.json');
  let json: TfjsModelJson;
  try {
    json = JSON.parse(await readFile(file, 'utf8')) as TfjsModelJson;
  } catch (err) {
    throw new ConversionError(`${file}: could not read a TensorFlow.js model.json (${(err as Error).message}); reinstall the package that ships it (npm ci)`);
  }
  if (json.format !== undefined && json.format !== 'layers-model') {
    throw new ConversionError(`${file}: format "${json.format}" is not a TensorFlow.js layers model; only layers models can be converted`);
  }
  const weights = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const group of json.weightsManifest ?? []) {
    const parts = await Promise.all(group.paths.map((p) => readFile(join(dir, p))));
    const bytes = Buffer.concat(parts);
    let offset = 0;
    for (const w of group.weights) {
      if (w.dtype !== 'float32' || w.quantization) {
        throw new ConversionError(`${file}: weight ${w.name} is ${w.quantization ? 'quantized' : w.dtype}; only unquantized float32 weights are supported`);
      }
      const count = w.shape.reduce((a, b) => a * b, 1);
      if (offset + count * 4 > bytes.length) {
        throw new ConversionError(`${file}: the weight files end before weight ${w.name}; the package is damaged, reinstall it (npm ci)`);
      }
      // Copy into an aligned buffer: shard offsets need not be 4-byte aligned in the Buffer pool.
      const data = new Float32Array(count);
      new Uint8Array(data.buffer).set(bytes.subarray(offset, offset + count * 4));
      weights.set(w.name, { shape: w.shape, data });
      offset += count * 4;
    }
    if (offset !== bytes.length) {
      throw new ConversionError(`${file}: the weight files hold ${bytes.length} bytes but the manifest describes ${offset}; the package is damaged, reinstall it (npm ci)`);
    }
  }
  return { json, weights };
}

function modelConfig(json: TfjsModelJson, where: string): KerasModelConfig {
  const topo = json.modelTopology;
  const cfg = topo.model_config?.config ?? topo.config;
  const cls = topo.model_config?.class_name ?? topo.class_name;
  if (!cfg || !Array.isArray(cfg.layers) || (cls !== 'Functional' && cls !== 'Model')) {
    throw new ConversionError(`${where}: expected a Keras functional model (class_name Functional or Model), got ${String(cls)}`);
  }
  return cfg;
}

/** Names of the layers feeding `layer` (Keras inbound_nodes: [[[name, nodeIndex, tensorIndex, kwargs], ...]]). */
function inboundNames(layer: KerasLayer, where: string): string[] {
  const nodes = layer.inbound_nodes;
  if (nodes.length === 0) return [];
  if (nodes.length > 1) throw new ConversionError(`${where}: layer ${layer.config.name} is called more than once (shared layers are not supported)`);
  const node = nodes[0] as unknown[][];
  return node.map((entry) => {
    if (!Array.isArray(entry) || typeof entry[0] !== 'string' || entry[2] !== 0) {
      throw new ConversionError(`${where}: layer ${layer.config.name} has an inbound node in an unsupported form (${JSON.stringify(entry)})`);
    }
    return entry[0];
  });
}

/** [kh, kw, in, out] (Keras) -> [out, in, kh, kw] (ONNX). */
function kernelToOnnx(k: { shape: number[]; data: Float32Array }): { dims: number[]; data: Float32Array } {
  const [kh, kw, cin, cout] = k.shape;
  const out = new Float32Array(k.data.length);
  for (let y = 0; y < kh; y++)
    for (let x = 0; x < kw; x++)
      for (let i = 0; i < cin; i++)
        for (let o = 0; o < cout; o++) out[((o * cin + i) * kh + y) * kw + x] = k.data[((y * kw + x) * cin + i) * cout + o];
  return { dims: [cout, cin, kh, kw], data: out };
}

const ACTIVATIONS: Record<string, string | null> = { linear: null, relu: 'Relu', sigmoid: 'Sigmoid', tanh: 'Tanh' };

/** Converts a loaded TF.js layers model into the engine's super-resolution ONNX interface. */
export function convertLayersModel(
  json: TfjsModelJson,
  weights: Map<string, { shape: number[]; data: Float32Array }>,
  opts: ConvertOptions,
  where = 'model.json',
): ConvertedModel {
  const cfg = modelConfig(json, where);
  if (cfg.input_layers.length !== 1 || cfg.output_layers.length !== 1) {
    throw new ConversionError(`${where}: expected one input and one output layer, got ${cfg.input_layers.length} and ${cfg.output_layers.length}`);
  }
  const g = new GraphBuilder(`${opts.name}-x${opts.scale}`);
  const input = g.input(SR_INPUT, 'float32', ['batch', 3, 'height', 'width']);
  const [lo, hi] = opts.inputRange;
  const span = hi - lo;
  // The network's input range: x * span + lo (identity for [0, 1]).
  let x0 = input;
  if (span !== 1) x0 = g.op('Mul', [x0, g.constant([span], [])]);
  if (lo !== 0) x0 = g.op('Add', [x0, g.constant([lo], [])]);

  /** ONNX value, receptive radius in input pixels, and the spatial scale so far, per Keras layer. */
  const values = new Map<string, { value: string; radius: number; scale: number; channels: number }>();
  const counts: Record<string, number> = {};
  let parameters = 0;
  const used = new Set<string>();
  const weight = (layer: string, kind: 'kernel' | 'bias') => {
    const key = [...weights.keys()].find((k) => k === `${layer}/${kind}` || k.endsWith(`/${layer}/${kind}`));
    if (!key) throw new ConversionError(`${where}: no ${kind} weight for layer ${layer} in the weights manifest`);
    used.add(key);
    const w = weights.get(key)!;
    parameters += w.data.length;
    return w;
  };

  for (const layer of cfg.layers) {
    const c = layer.config;
    const name = c.name;
    const cls = layer.class_name;
    counts[cls] = (counts[cls] ?? 0) + 1;
    const ins = inboundNames(layer, where).map((n) => {
      const v = values.get(n);
      if (!v) throw new ConversionError(`${where}: layer ${name} uses ${n}, which is not defined before it`);
      return v;
    });
    const one = () => {
      if (ins.length !== 1) throw new ConversionError(`${where}: layer ${name} (${cls}) should have one input, has ${ins.length}`);
      return ins[0];
    };
    switch (cls) {
      case 'InputLayer': {
        const shape = c.batch_input_shape as (number | null)[] | undefined;
        if (shape && shape[3] !== 3) throw new ConversionError(`${where}: input ${name} has ${shape[3]} channels; only RGB (3) models are supported`);
        values.set(name, { value: x0, radius: 0, scale: 1, channels: 3 });
        break;
      }
      case 'Conv2D': {
        const src = one();
        const [kh, kw] = c.kernel_size as number[];
        const strides = c.strides as number[];
        const dilation = (c.dilation_rate as number[] | undefined) ?? [1, 1];
        const groups = (c.groups as number | undefined) ?? 1;
        if (c.data_format !== 'channels_last') throw new ConversionError(`${where}: Conv2D ${name} uses data_format ${String(c.data_format)}; only channels_last is supported`);
        if (strides.some((s) => s !== 1) || groups !== 1) throw new ConversionError(`${where}: Conv2D ${name} has strides ${strides} / groups ${groups}; only stride 1, groups 1 is supported`);
        if (kh % 2 === 0 || kw % 2 === 0) throw new ConversionError(`${where}: Conv2D ${name} has an even kernel ${kh}x${kw}; only odd kernels are supported`);
        const act = String(c.activation ?? 'linear');
        if (!(act in ACTIVATIONS)) throw new ConversionError(`${where}: Conv2D ${name} has activation ${act}; supported: ${Object.keys(ACTIVATIONS).join(', ')}`);
        const k = kernelToOnnx(weight(name, 'kernel'));
        if (k.dims[1] !== src.channels) throw new ConversionError(`${where}: Conv2D ${name} expects ${k.dims[1]} input channels, gets ${src.channels}`);
        const inputs = [src.value, g.initializer(`${name}.weight`, 'float32', k.dims, k.data)];
        if (c.use_bias !== false) {
          const b = weight(name, 'bias');
          inputs.push(g.initializer(`${name}.bias`, 'float32', [b.data.length], b.data));
        }
        const ph = c.padding === 'same' ? ((kh - 1) / 2) * dilation[0] : 0;
        const pw = c.padding === 'same' ? ((kw - 1) / 2) * dilation[1] : 0;
        if (c.padding !== 'same' && c.padding !== 'valid') throw new ConversionError(`${where}: Conv2D ${name} has padding ${String(c.padding)}`);
        if (c.padding === 'valid' && (kh > 1 || kw > 1)) throw new ConversionError(`${where}: Conv2D ${name} shrinks the image ('valid' padding, ${kh}x${kw}); such models cannot be tiled`);
        let value = g.op('Conv', inputs, { kernel_shape: [kh, kw], pads: [ph, pw, ph, pw], dilations: dilation, strides: [1, 1] }, { name });
        const onnxAct = ACTIVATIONS[act];
        if (onnxAct) value = g.op(onnxAct, [value]);
        values.set(name, { value, radius: src.radius + Math.max(ph, pw) / src.scale, scale: src.scale, channels: k.dims[0] });
        break;
      }
      case 'Activation': {
        const src = one();
        const act = String(c.activation);
        if (!(act in ACTIVATIONS)) throw new ConversionError(`${where}: Activation ${name} is ${act}; supported: ${Object.keys(ACTIVATIONS).join(', ')}`);
        const op = ACTIVATIONS[act];
        values.set(name, { ...src, value: op ? g.op(op, [src.value], {}, { name }) : src.value });
        break;
      }
      case 'Add': {
        if (ins.length < 2) throw new ConversionError(`${where}: Add ${name} has ${ins.length} inputs`);
        let value = ins[0].value;
        for (const other of ins.slice(1)) value = g.op('Add', [value, other.value]);
        values.set(name, { value, radius: Math.max(...ins.map((v) => v.radius)), scale: ins[0].scale, channels: ins[0].channels });
        break;
      }
      case 'Concatenate': {
        const axis = c.axis as number;
        if (axis !== 3 && axis !== -1) throw new ConversionError(`${where}: Concatenate ${name} joins axis ${axis}; only the channel axis is supported`);
        const value = g.op('Concat', ins.map((v) => v.value), { axis: 1 }, { name });
        values.set(name, { value, radius: Math.max(...ins.map((v) => v.radius)), scale: ins[0].scale, channels: ins.reduce((a, v) => a + v.channels, 0) });
        break;
      }
      case 'UpSampling2D': {
        const src = one();
        const [sh, sw] = c.size as number[];
        if (c.interpolation !== 'nearest') throw new ConversionError(`${where}: UpSampling2D ${name} uses ${String(c.interpolation)}; only nearest is supported`);
        if (sh !== sw) throw new ConversionError(`${where}: UpSampling2D ${name} scales ${sh}x${sw}; only equal factors are supported`);
        // Nearest with asymmetric coordinates and floor rounding: each pixel repeated s x s times, as Keras does.
        const scales = g.constant([1, 1, sh, sw]);
        const value = g.op('Resize', [src.value, '', scales], { mode: 'nearest', coordinate_transformation_mode: 'asymmetric', nearest_mode: 'floor' }, { name });
        values.set(name, { ...src, value, scale: src.scale * sh });
        break;
      }
      case 'MultiplyBeta': {
        const src = one();
        const beta = typeof c.beta === 'number' ? c.beta : 0.2;
        values.set(name, { ...src, value: g.op('Mul', [src.value, g.constant([beta], [])], {}, { name }) });
        break;
      }
      default: {
        const m = /^PixelShuffle(\d+)x$/.exec(cls);
        if (!m) throw new ConversionError(`${where}: layer ${name} is a ${cls}, which the converter does not support`);
        const src = one();
        const s = Number(m[1]);
        if (src.channels % (s * s) !== 0) throw new ConversionError(`${where}: ${cls} ${name} gets ${src.channels} channels, not a multiple of ${s * s}`);
        // tf.depthToSpace(x, s, 'NHWC'): channel (i * s + j) * C + c goes to offset (i, j): ONNX's DCR order.
        const value = g.op('DepthToSpace', [src.value], { blocksize: s, mode: 'DCR' }, { name });
        values.set(name, { value, radius: src.radius, scale: src.scale * s, channels: src.channels / (s * s) });
      }
    }
  }
  const outName = cfg.output_layers[0][0] as string;
  const out = values.get(outName);
  if (!out) throw new ConversionError(`${where}: output layer ${outName} was never produced`);
  if (out.scale !== opts.scale) throw new ConversionError(`${where}: the network upscales ${out.scale}x but the package says ${opts.scale}x`);
  if (out.channels !== 3) throw new ConversionError(`${where}: the network outputs ${out.channels} channels, not RGB`);
  const unusedWeights = [...weights.keys()].filter((k) => !used.has(k));
  if (unusedWeights.length > 0) throw new ConversionError(`${where}: weights not used by any layer: ${unusedWeights.slice(0, 5).join(', ')}; the model has layers the converter does not know`);
  let y = out.value;
  if (lo !== 0) y = g.op('Sub', [y, g.constant([lo], [])]);
  if (span !== 1) y = g.op('Div', [y, g.constant([span], [])]);
  g.output(y, SR_OUTPUT, 'float32', ['batch', 3, 'out_height', 'out_width']);
  const built = g.toModel({
    producer: 'blendfarm models/esrgan',
    producerVersion: String(CONVERTER_VERSION),
    docString: `${opts.name} x${opts.scale} converted from a TensorFlow.js layers model`,
    metadata: { name: opts.name, scale: String(opts.scale) },
    externalData: { location: 'model.onnx.data', minBytes: 4096 },
  });
  return { built, receptiveRadius: Math.ceil(out.radius), layers: counts, parameters };
}
