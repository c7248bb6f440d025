/**
 * A Stable-Diffusion-shaped UNet with random weights, written from code: the same layers, sizes
 * and ONNX inputs/outputs as an SD 1.5 export (ResNet blocks with time embedding, spatial
 * transformers with self- and cross-attention and GEGLU feed-forward, skip connections), so that
 * its cost per call is an SD UNet's. It draws nothing useful: it exists to measure speed (batched
 * latent blending, execution providers, fp16) where real weights cannot be downloaded, and it is
 * small enough to generate on the machine that runs it (the full-size one is ~860M parameters).
 *
 * GroupNorm is expressed as Reshape + InstanceNormalization + affine, as PyTorch exports it below
 * opset 18, so every op here runs on ONNX Runtime's CPU and CUDA providers.
 */
import { GraphBuilder } from './onnx/index.ts';
import { SeededRandom, float32ToFloat16 } from '../engine/index.ts';

export interface SyntheticUNetShape {
  /** Channels per resolution level (SD 1.5: 320, 640, 1280, 1280). */
  channels: number[];
  /** Levels that have spatial transformers (SD 1.5: all but the lowest). */
  attention: boolean[];
  layersPerBlock: number;
  heads: number;
  /** Width of the text embedding (SD 1.5: 768). */
  crossAttentionDim: number;
  groups: number;
  dtype: 'float32' | 'float16';
  /** Timestep input type (SD 1.5 exports: int64). */
  timestepType: 'float32' | 'int64';
}

export const SD15_UNET: SyntheticUNetShape = {
  channels: [320, 640, 1280, 1280],
  attention: [true, true, true, false],
  layersPerBlock: 2,
  heads: 8,
  crossAttentionDim: 768,
  groups: 32,
  dtype: 'float16',
  timestepType: 'int64',
};

/** A few megabytes, same structure: for tests and CPU runs. */
export const TINY_UNET: SyntheticUNetShape = {
  channels: [32, 64],
  attention: [true, false],
  layersPerBlock: 1,
  heads: 2,
  crossAttentionDim: 32,
  groups: 8,
  dtype: 'float32',
  timestepType: 'float32',
};

class Builder {
  readonly g = new GraphBuilder('unet');
  private readonly rng = new SeededRandom(7);
  private n = 0;
  params = 0;

  constructor(private readonly shape: SyntheticUNetShape) {}

  c(values: number[], dims?: number[]): string {
    return this.g.constant(values, dims);
  }
  i64(values: number[]): string {
    return this.g.constant(values, [values.length], 'int64');
  }
  op(type: string, inputs: string[], attrs?: Record<string, unknown>): string {
    return this.g.op(type, inputs, attrs as never);
  }

  /** A weight with values uniform in +-scale, stored in the model's dtype, used as float32 math. */
  weight(dims: number[], scale: number): string {
    const count = dims.reduce((a, b) => a * b, 1);
    this.params += count;
    const data = new Float32Array(count);
    for (let i = 0; i < count; i++) data[i] = (this.rng.nextUint32() / 2147483648 - 1) * scale;
    const name = `w${this.n++}`;
    if (this.shape.dtype === 'float16') return this.g.initializer(name, 'float16', dims, float32ToFloat16(data));
    return this.g.initializer(name, 'float32', dims, data);
  }

  /** Everything inside runs in the model's dtype: constants follow it. */
  scalar(v: number): string {
    return this.shape.dtype === 'float16' ? this.g.initializer(`s${this.n++}`, 'float16', [], float32ToFloat16([v])) : this.c([v], []);
  }

  linear(x: string, cin: number, cout: number, bias = true): string {
    const y = this.op('MatMul', [x, this.weight([cin, cout], 1 / Math.sqrt(cin))]);
    return bias ? this.op('Add', [y, this.weight([cout], 0.01)]) : y;
  }

  conv(x: string, cin: number, cout: number, k: number, stride = 1): string {
    const pad = (k - 1) >> 1;
    return this.op('Conv', [x, this.weight([cout, cin, k, k], 1 / Math.sqrt(cin * k * k)), this.weight([cout], 0.01)], {
      kernel_shape: [k, k],
      pads: [pad, pad, pad, pad],
      strides: [stride, stride],
    });
  }

  silu(x: string): string {
    return this.op('Mul', [x, this.op('Sigmoid', [x])]);
  }

  groupNorm(x: string, channels: number): string {
    const G = this.shape.groups;
    const grouped = this.op('Reshape', [x, this.i64([0, G, -1])]);
    const ones = this.shape.dtype === 'float16' ? this.g.initializer(`gn${this.n++}`, 'float16', [G], float32ToFloat16(new Float32Array(G).fill(1))) : this.c(new Array(G).fill(1));
    const zeros = this.shape.dtype === 'float16' ? this.g.initializer(`gn${this.n++}`, 'float16', [G], new Uint16Array(G)) : this.c(new Array(G).fill(0));
    const normed = this.op('InstanceNormalization', [grouped, ones, zeros], { epsilon: 1e-5 });
    const back = this.op('Reshape', [normed, this.op('Shape', [x])]);
    return this.op('Add', [this.op('Mul', [back, this.weight([channels, 1, 1], 0.1)]), this.weight([channels, 1, 1], 0.01)]);
  }

  layerNorm(x: string, channels: number): string {
    return this.op('LayerNormalization', [x, this.weight([channels], 0.1), this.weight([channels], 0.01)], { axis: -1, epsilon: 1e-5 });
  }

  resBlock(x: string, temb: string, cin: number, cout: number): string {
    let h = this.conv(this.silu(this.groupNorm(x, cin)), cin, cout, 3);
    const t = this.op('Unsqueeze', [this.linear(this.silu(temb), 4 * this.shape.channels[0], cout), this.i64([2, 3])]);
    h = this.op('Add', [h, t]);
    h = this.conv(this.silu(this.groupNorm(h, cout)), cout, cout, 3);
    const skip = cin === cout ? x : this.conv(x, cin, cout, 1);
    return this.op('Add', [skip, h]);
  }

  attention(x: string, context: string, channels: number, contextDim: number): string {
    const heads = this.shape.heads;
    const d = channels / heads;
    const split = (t: string) => this.op('Transpose', [this.op('Reshape', [t, this.i64([0, 0, heads, d])])], { perm: [0, 2, 1, 3] });
    const q = split(this.linear(x, channels, channels, false));
    const k = this.op('Transpose', [this.op('Reshape', [this.linear(context, contextDim, channels, false), this.i64([0, 0, heads, d])])], { perm: [0, 2, 3, 1] });
    const v = split(this.linear(context, contextDim, channels, false));
    const scores = this.op('Softmax', [this.op('Mul', [this.op('MatMul', [q, k]), this.scalar(1 / Math.sqrt(d))])], { axis: -1 });
    const out = this.op('Reshape', [this.op('Transpose', [this.op('MatMul', [scores, v])], { perm: [0, 2, 1, 3] }), this.i64([0, 0, channels])]);
    return this.linear(out, channels, channels);
  }

  transformer(x: string, context: string, channels: number): string {
    const h0 = this.conv(this.groupNorm(x, channels), channels, channels, 1);
    let h = this.op('Transpose', [this.op('Reshape', [h0, this.i64([0, channels, -1])])], { perm: [0, 2, 1] });
    h = this.op('Add', [h, this.attention(this.layerNorm(h, channels), this.layerNorm(h, channels), channels, channels)]);
    h = this.op('Add', [h, this.attention(this.layerNorm(h, channels), context, channels, this.shape.crossAttentionDim)]);
    // GEGLU feed-forward: x * gelu(gate), 4x wide.
    const proj = this.linear(this.layerNorm(h, channels), channels, channels * 8);
    const [a, gate] = this.g.opMulti('Split', [proj, this.i64([channels * 4, channels * 4])], { axis: -1 }, { outputs: 2 });
    const gelu = this.op('Mul', [this.op('Mul', [gate, this.scalar(0.5)]), this.op('Add', [this.op('Erf', [this.op('Mul', [gate, this.scalar(Math.SQRT1_2)])]), this.scalar(1)])]);
    h = this.op('Add', [h, this.linear(this.op('Mul', [a, gelu]), channels * 4, channels)]);
    const spatial = this.op('Reshape', [this.op('Transpose', [h], { perm: [0, 2, 1] }), this.op('Shape', [x])]);
    return this.op('Add', [x, this.conv(spatial, channels, channels, 1)]);
  }

  timeEmbedding(t: string): string {
    const c0 = this.shape.channels[0];
    const half = c0 / 2;
    const freqs = Array.from({ length: half }, (_, i) => Math.exp((-Math.log(10000) * i) / half));
    const tf = this.op('Cast', [t], { to: 1 });
    const args = this.op('Mul', [this.op('Unsqueeze', [tf, this.i64([1])]), this.c(freqs, [1, half])]);
    let emb = this.op('Concat', [this.op('Cos', [args]), this.op('Sin', [args])], { axis: 1 });
    if (this.shape.dtype === 'float16') emb = this.op('Cast', [emb], { to: 10 });
    return this.linear(this.silu(this.linear(emb, c0, 4 * c0)), 4 * c0, 4 * c0);
  }
}

/** The graph and its parameter count. */
export function syntheticUNet(shape: SyntheticUNetShape): { graph: GraphBuilder; parameters: number } {
  const b = new Builder(shape);
  const { g } = b;
  const dt = shape.dtype;
  const sample = g.input('sample', dt, ['batch', 4, 'height', 'width']);
  const timestep = g.input('timestep', shape.timestepType, [1]);
  const context = g.input('encoder_hidden_states', dt, ['batch', 'sequence', shape.crossAttentionDim]);
  const temb = b.timeEmbedding(timestep);
  const ch = shape.channels;

  let x = b.conv(sample, 4, ch[0], 3);
  const skips: Array<[string, number]> = [[x, ch[0]]];
  let cur = ch[0];
  ch.forEach((c, level) => {
    for (let l = 0; l < shape.layersPerBlock; l++) {
      x = b.resBlock(x, temb, cur, c);
      cur = c;
      if (shape.attention[level]) x = b.transformer(x, context, c);
      skips.push([x, c]);
    }
    if (level < ch.length - 1) {
      x = b.conv(x, c, c, 3, 2);
      skips.push([x, c]);
    }
  });
  x = b.resBlock(x, temb, cur, cur);
  x = b.transformer(x, context, cur);
  x = b.resBlock(x, temb, cur, cur);
  for (let level = ch.length - 1; level >= 0; level--) {
    const c = ch[level];
    for (let l = 0; l <= shape.layersPerBlock; l++) {
      const [skip, sc] = skips.pop()!;
      x = b.resBlock(b.op('Concat', [x, skip], { axis: 1 }), temb, cur + sc, c);
      cur = c;
      if (shape.attention[level]) x = b.transformer(x, context, c);
    }
    if (level > 0) x = b.conv(b.op('Resize', [x, '', b.c([1, 1, 2, 2])], { mode: 'nearest' }), c, c, 3);
  }
  const out = b.conv(b.silu(b.groupNorm(x, cur)), cur, 4, 3);
  g.output(out, 'out_sample', dt, ['batch', 4, 'height', 'width']);
  return { graph: g, parameters: b.params };
}
