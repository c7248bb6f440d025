/**
 * A Stable-Diffusion-shaped UNet with random weights, written from code: the same layers, sizes
 * and ONNX inputs/outputs as an SD 1.5 export (ResNet blocks with time embedding, spatial
 * transformers with self- and cross-attention and GEGLU feed-forward, skip connections), so that
 * its cost per call is an SD UNet's. It draws nothing useful: it exists to measure speed (batched
 * latent blending, execution providers, fp16) where real weights cannot be downloaded, and it is
 * small enough to generate on the machine that runs it (the full-size one is ~860M parameters).
 * `syntheticVaeDecoder` is the matching SD VAE decoder (~50M parameters at full size).
 *
 * Plain graphs (`fusion: 'none'`) use standard ONNX ops only: GroupNorm is Reshape +
 * InstanceNormalization + affine, as PyTorch exports it below opset 18, attention is
 * MatMul-Softmax-MatMul, so every op runs on ONNX Runtime's CPU and CUDA providers.
 *
 * Fused graphs compute the same function with the same weights (drawn in the same order from the
 * same seed) through ONNX Runtime's com.microsoft contrib ops, the ones its own Stable Diffusion
 * optimizer (onnxruntime.transformers.models.stable_diffusion.optimize_pipeline) writes:
 * - 'cpu-safe': MultiHeadAttention, SkipLayerNormalization, Gelu. These have CPU kernels in
 *   ONNX Runtime 1.29 (checked by test/models/synthetic-unet-fused.test.ts), so the fused graph
 *   is testable against the plain one anywhere.
 * - 'cuda': the above plus GroupNorm and SkipGroupNorm (with fused SiLU, NHWC), BiasSplitGelu,
 *   BiasAdd and NhwcConv, which exist only on the CUDA provider (a CPU session refuses to load
 *   them) and only for SD channel counts (BiasSplitGelu: 2560/5120/10240 wide, BiasAdd:
 *   320/640/1280), and packed attention (PackedQkv: one MatMul for self-attention's Q, K
 *   and V, one for cross-attention's K and V, fed to MultiHeadAttention in its packed layouts).
 *   With NhwcConv the whole graph runs channels-last, as ONNX Runtime's optimizer leaves an SD
 *   UNet once its transpose optimizer has cancelled the Transposes around each NhwcConv:
 *   GroupNorm needs no Transposes, and a transformer's tokens are a Reshape of the feature map.
 *   `sample` and `out_sample` stay NCHW (one Transpose each at the ends). A timestep embedding
 *   with the batch's size (one Expand at the start) feeds SkipGroupNorm without per-block Expands.
 * `standIns` builds the structure that NhwcConv and PackedQkv bring with CPU stand-ins for
 * the ops themselves (the channels-last graph with each Conv, and each plain GroupNorm, between
 * Transposes; the packed projections split again before attention), so the layout and the packed
 * weights are testable on the CPU.
 */
import { GraphBuilder, type ToModelOptions } from './onnx/index.ts';
import { CUDA_ONLY_CONTRIB_OPS, SeededRandom, float32ToFloat16, float16ToFloat32 } from '../engine/index.ts';

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

/**
 * The smallest shape every CUDA-only contrib op accepts (SD 1.5's first two levels, one layer
 * each): for checking fused against plain on a GPU in seconds.
 */
export const CUDA_CHECK_UNET: SyntheticUNetShape = {
  channels: [320, 640],
  attention: [true, false],
  layersPerBlock: 1,
  heads: 8,
  crossAttentionDim: 768,
  groups: 32,
  dtype: 'float16',
  timestepType: 'int64',
};

export interface SyntheticVaeShape {
  /** Decoder channels per level from the top (SD: 128, 256, 512, 512); one 2x upsample between levels. */
  channels: number[];
  /** ResNet blocks per level (the decoder has layersPerBlock + 1; SD: 2). */
  layersPerBlock: number;
  groups: number;
  dtype: 'float32' | 'float16';
}

export const SD15_VAE: SyntheticVaeShape = { channels: [128, 256, 512, 512], layersPerBlock: 2, groups: 32, dtype: 'float16' };
export const TINY_VAE: SyntheticVaeShape = { channels: [8, 16, 16, 16], layersPerBlock: 1, groups: 4, dtype: 'float32' };

/** How much of the graph uses ONNX Runtime's contrib ops (see the file comment). */
export type Fusion = 'none' | 'cpu-safe' | 'cuda';
export type FusedOp = 'MultiHeadAttention' | 'PackedQkv' | 'SkipLayerNormalization' | 'Gelu' | 'GroupNorm' | 'SkipGroupNorm' | 'BiasSplitGelu' | 'BiasAdd' | 'NhwcConv';

const CPU_SAFE: readonly FusedOp[] = ['MultiHeadAttention', 'SkipLayerNormalization', 'Gelu'];
/**
 * The ops with CUDA kernels only: the engine's list of the SD optimizer's CUDA-only contrib ops,
 * plus PackedQkv (MultiHeadAttention's packed layouts, which only its CUDA kernel reads).
 */
export const CUDA_ONLY_OPS: readonly FusedOp[] = [...CUDA_ONLY_CONTRIB_OPS, 'PackedQkv'];
export const FUSED_OPS: Record<Fusion, readonly FusedOp[]> = {
  none: [],
  'cpu-safe': CPU_SAFE,
  cuda: [...CPU_SAFE, ...CUDA_ONLY_OPS],
};

/**
 * The contrib ops a graph uses, from a list of names (a fusion's, --ops, one op to check): each
 * name checked, MultiHeadAttention added when PackedQkv (its packed inputs) is asked for, in
 * FUSED_OPS.cuda's order.
 */
export function resolveFusedOps(names: readonly string[]): FusedOp[] {
  const known: readonly string[] = FUSED_OPS.cuda;
  for (const name of names) if (!known.includes(name)) throw new Error(`"${name}" is not a fused op; use ${known.join(', ')}`);
  const wanted = new Set(names);
  if (wanted.has('PackedQkv')) wanted.add('MultiHeadAttention');
  return FUSED_OPS.cuda.filter((op) => wanted.has(op));
}

/** The fullest fusion a provider runs: CUDA-only kernels on 'cuda', CPU-capable ones elsewhere. */
export function fusionFor(ep: string): Fusion {
  return ep === 'cuda' ? 'cuda' : 'cpu-safe';
}

export interface FusionOptions {
  fusion?: Fusion;
  /** Exactly these contrib ops instead of a fusion level (to check one op at a time; resolveFusedOps). */
  ops?: readonly FusedOp[];
  /**
   * Build what these CUDA-only ops bring to the graph with CPU stand-ins for the ops themselves
   * (see the file comment): 'NhwcConv' (the channels-last layout), 'PackedQkv' (packed
   * projections). For testing on the CPU; default none.
   */
  standIns?: ReadonlyArray<'NhwcConv' | 'PackedQkv'>;
  /**
   * Weights drawn by an earlier build of the same shape, reused in draw order (every variant
   * draws the same values in the same order); an empty array is filled. Saves drawing the SD 1.5
   * UNet's 860M values twice when building plain and fused graphs.
   */
  weights?: WeightCache;
}

/** Drawn weights by draw order, in the dtype of the build that drew them (fp16 as raw bits); builds of either dtype may share one. */
export type WeightCache = Array<Float32Array | Uint16Array>;

/**
 * Bumped whenever the builders draw or wire differently: benchmarks put it in the names of the
 * models they cache, so a changed builder never reuses stale files (2: one self-attention
 * LayerNorm, channels-last and packed-attention fusions).
 */
export const SYNTHETIC_BUILDER_VERSION = 2;

/** toModel() options for a synthetic graph: opset 17 plus com.microsoft when contrib ops are used. */
export const SYNTHETIC_MODEL_OPTIONS: ToModelOptions = { opset: 17, extraOpsets: [{ domain: 'com.microsoft', version: 1 }] };

const MS = { domain: 'com.microsoft' } as const;

class Builder {
  readonly g: GraphBuilder;
  private readonly rng = new SeededRandom(7);
  private n = 0;
  private draws = 0;
  params = 0;
  private readonly fused: ReadonlySet<FusedOp>;
  private readonly cache?: WeightCache;
  /** Feature maps are [N, H, W, C] between the graph's ends. */
  readonly nhwc: boolean;
  /** Attention projections are packed per head (PackedQkv or its stand-in). */
  private readonly packed: boolean;

  constructor(
    name: string,
    private readonly dtype: 'float32' | 'float16',
    private readonly groups: number,
    opts: FusionOptions,
  ) {
    this.g = new GraphBuilder(name);
    this.fused = new Set(resolveFusedOps(opts.ops ?? FUSED_OPS[opts.fusion ?? 'none']));
    this.cache = opts.weights;
    this.nhwc = this.fused.has('NhwcConv') || !!opts.standIns?.includes('NhwcConv');
    this.packed = this.fused.has('PackedQkv') || !!opts.standIns?.includes('PackedQkv');
  }

  /** The channel axis of a feature map. */
  get channelAxis(): number {
    return this.nhwc ? 3 : 1;
  }

  uses(op: FusedOp): boolean {
    return this.fused.has(op);
  }

  c(values: number[], dims?: number[]): string {
    return this.g.constant(values, dims);
  }
  i64(values: number[]): string {
    return this.g.constant(values, [values.length], 'int64');
  }
  op(type: string, inputs: string[], attrs?: Record<string, unknown>): string {
    return this.g.op(type, inputs, attrs as never);
  }
  ms(type: string, inputs: string[], attrs: Record<string, unknown> = {}, outputs = 1): string[] {
    return this.g.opMulti(type, inputs, attrs as never, { ...MS, outputs });
  }

  /**
   * A weight with values uniform in +-scale, stored in the model's dtype. Every variant draws the
   * same values in the same order; `float32` stores them as float32 (rounded through fp16 in an
   * fp16 model, so the math stays the same) for contrib ops that want float32 parameters.
   */
  weight(dims: number[], scale: number, float32 = false): string {
    return this.stored(dims, this.draw(dims, scale), float32);
  }

  /** The next weight's values, in draw order (from the cache when it has them). */
  draw(dims: number[], scale: number): Float32Array | Uint16Array {
    const count = dims.reduce((a, b) => a * b, 1);
    this.params += count;
    const index = this.draws++;
    let data = this.cache?.[index];
    if (data?.length !== undefined && data.length !== count) throw new Error(`weight cache entry ${index} has ${data.length} values, this graph wants ${count}: the cache is from another shape`);
    // A cache filled by a build of the other dtype: the same values, in this graph's.
    if (data instanceof Float32Array && this.dtype === 'float16') data = float32ToFloat16(data);
    else if (data instanceof Uint16Array && this.dtype === 'float32') data = float16ToFloat32(data);
    if (!data) {
      const drawn = new Float32Array(count);
      for (let i = 0; i < count; i++) drawn[i] = (this.rng.nextUint32() / 2147483648 - 1) * scale;
      data = this.dtype === 'float16' ? float32ToFloat16(drawn) : drawn;
      if (this.cache) this.cache[index] = data;
    }
    return data;
  }

  /** An initializer holding `data` (draw's values, possibly rearranged). */
  stored(dims: number[], data: Float32Array | Uint16Array, float32 = false): string {
    const name = `w${this.n++}`;
    if (data instanceof Uint16Array) {
      return float32 ? this.g.initializer(name, 'float32', dims, float16ToFloat32(data)) : this.g.initializer(name, 'float16', dims, data);
    }
    return this.g.initializer(name, 'float32', dims, data);
  }

  /** Everything inside runs in the model's dtype: constants follow it. */
  scalar(v: number): string {
    return this.dtype === 'float16' ? this.g.initializer(`s${this.n++}`, 'float16', [], float32ToFloat16([v])) : this.c([v], []);
  }

  linear(x: string, cin: number, cout: number, bias = true): string {
    const y = this.op('MatMul', [x, this.weight([cin, cout], 1 / Math.sqrt(cin))]);
    return bias ? this.op('Add', [y, this.weight([cout], 0.01)]) : y;
  }

  /** A convolution of a feature map in the graph's layout (OIHW weights; OHWI for NhwcConv). */
  conv(x: string, cin: number, cout: number, k: number, stride = 1): string {
    const pad = (k - 1) >> 1;
    const attrs = { kernel_shape: [k, k], pads: [pad, pad, pad, pad], strides: [stride, stride] };
    const w = this.draw([cout, cin, k, k], 1 / Math.sqrt(cin * k * k));
    if (this.uses('NhwcConv')) {
      const ohwi = oihwToOhwi(w, cout, cin, k * k);
      return this.ms('NhwcConv', [x, this.stored([cout, k, k, cin], ohwi), this.weight([cout], 0.01)], attrs)[0];
    }
    return this.channelsFirst(x, (nchw) => this.op('Conv', [nchw, this.stored([cout, cin, k, k], w), this.weight([cout], 0.01)], attrs));
  }

  /** A feature map in the graph's layout from an NCHW one (the graph's input), and back. */
  fromNchw(x: string): string {
    return this.nhwc ? this.toNhwc(x) : x;
  }
  toOutput(x: string): string {
    return this.nhwc ? this.toNchw(x) : x;
  }

  /** Nearest-neighbour 2x upsampling of a feature map. */
  upsample(x: string): string {
    return this.op('Resize', [x, '', this.c(this.nhwc ? [1, 2, 2, 1] : [1, 1, 2, 2])], { mode: 'nearest' });
  }

  /** A feature map's pixels as tokens [N, H*W, C], and tokens back to the map `like`'s shape. */
  tokens(x: string, channels: number): string {
    return this.nhwc ? this.op('Reshape', [x, this.i64([0, -1, channels])]) : this.op('Transpose', [this.op('Reshape', [x, this.i64([0, channels, -1])])], { perm: [0, 2, 1] });
  }
  untokens(h: string, like: string): string {
    return this.op('Reshape', [this.nhwc ? h : this.op('Transpose', [h], { perm: [0, 2, 1] }), this.op('Shape', [like])]);
  }

  silu(x: string): string {
    return this.op('Mul', [x, this.op('Sigmoid', [x])]);
  }

  private toNhwc(x: string): string {
    return this.op('Transpose', [x], { perm: [0, 2, 3, 1] });
  }
  private toNchw(x: string): string {
    return this.op('Transpose', [x], { perm: [0, 3, 1, 2] });
  }
  /** `f` of a feature map in the graph's layout, where `f` works on NHWC maps. */
  private channelsLast(x: string, f: (nhwc: string) => string): string {
    return this.nhwc ? f(x) : this.toNchw(f(this.toNhwc(x)));
  }
  /** `f` of a feature map in the graph's layout, where `f` works on NCHW maps. */
  private channelsFirst(x: string, f: (nchw: string) => string): string {
    return this.nhwc ? this.toNhwc(f(this.toNchw(x))) : f(x);
  }

  /** GroupNorm with per-channel affine, then SiLU when `silu`. */
  groupNorm(x: string, channels: number, silu = false): string {
    const G = this.groups;
    if (this.uses('GroupNorm')) {
      const attrs = { epsilon: { float: 1e-5 }, groups: G, activation: silu ? 1 : 0, channels_last: 1 };
      const gamma = this.weight([channels], 0.1, true);
      const beta = this.weight([channels], 0.01, true);
      return this.channelsLast(x, (nhwc) => this.ms('GroupNorm', [nhwc, gamma, beta], attrs)[0]);
    }
    return this.channelsFirst(x, (nchw) => this.plainGroupNorm(nchw, channels, silu));
  }

  /** GroupNorm as PyTorch exports it below opset 18, on an NCHW map. */
  private plainGroupNorm(x: string, channels: number, silu: boolean): string {
    const G = this.groups;
    const grouped = this.op('Reshape', [x, this.i64([0, G, -1])]);
    const ones = this.dtype === 'float16' ? this.g.initializer(`gn${this.n++}`, 'float16', [G], float32ToFloat16(new Float32Array(G).fill(1))) : this.c(new Array(G).fill(1));
    const zeros = this.dtype === 'float16' ? this.g.initializer(`gn${this.n++}`, 'float16', [G], new Uint16Array(G)) : this.c(new Array(G).fill(0));
    const normed = this.op('InstanceNormalization', [grouped, ones, zeros], { epsilon: 1e-5 });
    const back = this.op('Reshape', [normed, this.op('Shape', [x])]);
    const y = this.op('Add', [this.op('Mul', [back, this.weight([channels, 1, 1], 0.1)]), this.weight([channels, 1, 1], 0.01)]);
    return silu ? this.silu(y) : y;
  }

  layerNorm(x: string, channels: number): string {
    return this.op('LayerNormalization', [x, this.weight([channels], 0.1), this.weight([channels], 0.01)], { axis: -1, epsilon: 1e-5 });
  }

  /** x + (mm + bias), and LayerNorm of that: [sum, normed]. */
  residualNorm(x: string, mm: string, bias: string, channels: number): [string, string] {
    if (this.uses('SkipLayerNormalization')) {
      const gamma = this.weight([channels], 0.1);
      const beta = this.weight([channels], 0.01);
      const [normed, , , sum] = this.ms('SkipLayerNormalization', [mm, x, gamma, beta, bias], { epsilon: { float: 1e-5 } }, 4);
      return [sum, normed];
    }
    const sum = this.op('Add', [x, this.op('Add', [mm, bias])]);
    return [sum, this.layerNorm(sum, channels)];
  }

  /** x + (mm + bias), with x and mm [B, S, C]. */
  residual(x: string, mm: string, bias: string): string {
    if (this.uses('BiasAdd')) return this.ms('BiasAdd', [mm, bias, x])[0];
    return this.op('Add', [x, this.op('Add', [mm, bias])]);
  }

  /**
   * ResNet block; with a time embedding (UNet) it is added between the two convolutions, and the
   * second GroupNorm takes it as SkipGroupNorm's broadcast skip when that is fused.
   */
  resBlock(x: string, temb: { value: string; width: number } | undefined, cin: number, cout: number): string {
    let h = this.conv(this.groupNorm(x, cin, true), cin, cout, 3);
    if (temb) {
      const t = this.linear(this.silu(temb.value), temb.width, cout);
      if (this.uses('SkipGroupNorm')) {
        const gamma = this.weight([cout], 0.1, true);
        const beta = this.weight([cout], 0.01, true);
        // The kernel wants the skip as (N, C): the embedding has the batch's size (syntheticUNet).
        const attrs = { epsilon: { float: 1e-5 }, groups: this.groups, activation: 1, channels_last: 1 };
        h = this.channelsLast(h, (nhwc) => this.ms('SkipGroupNorm', [nhwc, gamma, beta, t], attrs)[0]);
      } else {
        h = this.groupNorm(this.op('Add', [h, this.op('Unsqueeze', [t, this.i64(this.nhwc ? [1, 2] : [2, 3])])]), cout, true);
      }
    } else {
      h = this.groupNorm(h, cout, true);
    }
    h = this.conv(h, cout, cout, 3);
    const skip = cin === cout ? x : this.conv(x, cin, cout, 1);
    return this.op('Add', [skip, h]);
  }

  /** Scaled dot-product attention of q [B, S, C] over k, v [B, L, C] with `heads` heads: [B, S, C]. */
  sdpa(q: string, k: string, v: string, channels: number, heads: number): string {
    if (this.uses('MultiHeadAttention')) return this.ms('MultiHeadAttention', [q, k, v], { num_heads: heads })[0];
    const d = channels / heads;
    const split = (t: string, perm: number[]) => this.op('Transpose', [this.op('Reshape', [t, this.i64([0, 0, heads, d])])], { perm });
    const scores = this.op('Softmax', [this.op('Mul', [this.op('MatMul', [split(q, [0, 2, 1, 3]), split(k, [0, 2, 3, 1])]), this.scalar(1 / Math.sqrt(d))])], { axis: -1 });
    return this.op('Reshape', [this.op('Transpose', [this.op('MatMul', [scores, split(v, [0, 2, 1, 3])])], { perm: [0, 2, 1, 3] }), this.i64([0, 0, channels])]);
  }

  /**
   * Transformer attention (no q/k/v biases): the output projection's MatMul and its bias, for the
   * caller's residual. `context` undefined: self-attention over x. Packed (PackedQkv): the
   * same weights side by side, per head, in one MatMul ([.., N, 3, H] for Q, K and V of
   * self-attention, [.., N, 2, H] for K and V of cross-attention), MultiHeadAttention's packed inputs.
   */
  attention(x: string, context: string | undefined, channels: number, contextDim: number, heads: number): [string, string] {
    const wq = this.draw([channels, channels], 1 / Math.sqrt(channels));
    const wk = this.draw([contextDim, channels], 1 / Math.sqrt(contextDim));
    const wv = this.draw([contextDim, channels], 1 / Math.sqrt(contextDim));
    const kvInput = context ?? x;
    // Packed self-attention takes its queries from the packed product too.
    const q = this.packed && context === undefined ? undefined : this.op('MatMul', [x, this.stored([channels, channels], wq)]);
    let out: string;
    if (this.packed) {
      const mats = q ? [wk, wv] : [wq, wk, wv];
      const packed = this.op('Reshape', [
        this.op('MatMul', [kvInput, this.stored([contextDim, mats.length * channels], interleaveHeads(mats, contextDim, heads))]),
        this.i64([0, 0, heads, mats.length, channels / heads]),
      ]);
      if (this.uses('PackedQkv')) out = this.ms('MultiHeadAttention', q ? [q, packed] : [packed], { num_heads: heads })[0];
      else {
        // The stand-in splits the packed product again: [.., N, M, H] -> M x [.., C].
        const parts = this.g.opMulti('Split', [packed, this.i64(mats.map(() => 1))], { axis: 3 }, { outputs: mats.length }).map((part) => this.op('Reshape', [part, this.i64([0, 0, channels])]));
        const [pq, k, v] = q ? [q, ...parts] : parts;
        out = this.sdpa(pq, k, v, channels, heads);
      }
    } else {
      out = this.sdpa(q!, this.op('MatMul', [kvInput, this.stored([contextDim, channels], wk)]), this.op('MatMul', [kvInput, this.stored([contextDim, channels], wv)]), channels, heads);
    }
    return [this.op('MatMul', [out, this.weight([channels, channels], 1 / Math.sqrt(channels))]), this.weight([channels], 0.01)];
  }

  gelu(x: string): string {
    if (this.uses('Gelu')) return this.ms('Gelu', [x])[0];
    return this.op('Mul', [this.op('Mul', [x, this.scalar(0.5)]), this.op('Add', [this.op('Erf', [this.op('Mul', [x, this.scalar(Math.SQRT1_2)])]), this.scalar(1)])]);
  }

  transformer(x: string, context: string, channels: number, heads: number, contextDim: number): string {
    const h0 = this.conv(this.groupNorm(x, channels), channels, channels, 1);
    let h = this.tokens(h0, channels);
    let normed: string;
    // Self-attention over the LayerNorm of the tokens (SD's norm1), then cross-attention and the
    // feed-forward, each after the LayerNorm of the running sum (norm2, norm3).
    const [mm1, b1] = this.attention(this.layerNorm(h, channels), undefined, channels, channels, heads);
    [h, normed] = this.residualNorm(h, mm1, b1, channels);
    const [mm2, b2] = this.attention(normed, context, channels, contextDim, heads);
    [h, normed] = this.residualNorm(h, mm2, b2, channels);
    // GEGLU feed-forward: x * gelu(gate), 4x wide.
    const projMm = this.op('MatMul', [normed, this.weight([channels, channels * 8], 1 / Math.sqrt(channels))]);
    const projBias = this.weight([channels * 8], 0.01);
    let geglu: string;
    if (this.uses('BiasSplitGelu')) {
      geglu = this.ms('BiasSplitGelu', [projMm, projBias])[0];
    } else {
      const [a, gate] = this.g.opMulti('Split', [this.op('Add', [projMm, projBias]), this.i64([channels * 4, channels * 4])], { axis: -1 }, { outputs: 2 });
      geglu = this.op('Mul', [a, this.gelu(gate)]);
    }
    const ffMm = this.op('MatMul', [geglu, this.weight([channels * 4, channels], 1 / Math.sqrt(channels * 4))]);
    h = this.residual(h, ffMm, this.weight([channels], 0.01));
    return this.op('Add', [x, this.conv(this.untokens(h, x), channels, channels, 1)]);
  }

  /** The VAE's single-head self-attention over all pixels, with q/k/v biases and a residual. */
  vaeAttention(x: string, channels: number): string {
    const tokens = this.tokens(this.groupNorm(x, channels), channels);
    const q = this.linear(tokens, channels, channels);
    const k = this.linear(tokens, channels, channels);
    const v = this.linear(tokens, channels, channels);
    const out = this.linear(this.sdpa(q, k, v, channels, 1), channels, channels);
    return this.op('Add', [x, this.untokens(out, x)]);
  }

  timeEmbedding(t: string, c0: number): string {
    const half = c0 / 2;
    const freqs = Array.from({ length: half }, (_, i) => Math.exp((-Math.log(10000) * i) / half));
    const tf = this.op('Cast', [t], { to: 1 });
    const args = this.op('Mul', [this.op('Unsqueeze', [tf, this.i64([1])]), this.c(freqs, [1, half])]);
    let emb = this.op('Concat', [this.op('Cos', [args]), this.op('Sin', [args])], { axis: 1 });
    if (this.dtype === 'float16') emb = this.op('Cast', [emb], { to: 10 });
    return this.linear(this.silu(this.linear(emb, c0, 4 * c0)), 4 * c0, 4 * c0);
  }
}

/** Convolution weights [O, I, kH, kW] as NhwcConv wants them, [O, kH, kW, I] (`kk` = kH * kW). */
function oihwToOhwi<T extends Float32Array | Uint16Array>(w: T, cout: number, cin: number, kk: number): T {
  const out = new (w.constructor as new (n: number) => T)(w.length);
  for (let o = 0; o < cout; o++) {
    const base = o * cin * kk;
    for (let i = 0; i < cin; i++) for (let p = 0; p < kk; p++) out[base + p * cin + i] = w[base + i * kk + p];
  }
  return out;
}

/**
 * Projection matrices [rows, C] (each C = heads x H wide) side by side per head: columns
 * [head 0: m0, m1, ...; head 1: m0, m1, ...], so the product reshapes to [.., heads, M, H].
 */
function interleaveHeads<T extends Float32Array | Uint16Array>(mats: T[], rows: number, heads: number): T {
  const C = mats[0].length / rows;
  const H = C / heads;
  const M = mats.length;
  const out = new (mats[0].constructor as new (n: number) => T)(rows * C * M);
  for (let r = 0; r < rows; r++) {
    for (let n = 0; n < heads; n++) {
      for (let m = 0; m < M; m++) {
        const src = mats[m].subarray(r * C + n * H, r * C + n * H + H);
        out.set(src, r * C * M + (n * M + m) * H);
      }
    }
  }
  return out;
}

export interface SyntheticGraph {
  graph: GraphBuilder;
  parameters: number;
}

/** The UNet graph and its parameter count. Encode with `graph.toModel(SYNTHETIC_MODEL_OPTIONS)`. */
export function syntheticUNet(shape: SyntheticUNetShape, opts: FusionOptions = {}): SyntheticGraph {
  const b = new Builder('unet', shape.dtype, shape.groups, opts);
  const { g } = b;
  const dt = shape.dtype;
  const sample = g.input('sample', dt, ['batch', 4, 'height', 'width']);
  const timestep = g.input('timestep', shape.timestepType, [1]);
  const context = g.input('encoder_hidden_states', dt, ['batch', 'sequence', shape.crossAttentionDim]);
  const ch = shape.channels;
  let emb = b.timeEmbedding(timestep, ch[0]);
  // SkipGroupNorm takes the embedding as (N, C): give it the batch's size once, here.
  if (b.uses('SkipGroupNorm')) emb = b.op('Expand', [emb, b.op('Concat', [b.op('Shape', [sample], { start: 0, end: 1 }), b.i64([4 * ch[0]])], { axis: 0 })]);
  const temb = { value: emb, width: 4 * ch[0] };
  const transformer = (x: string, c: number) => b.transformer(x, context, c, shape.heads, shape.crossAttentionDim);

  let x = b.conv(b.fromNchw(sample), 4, ch[0], 3);
  const skips: Array<[string, number]> = [[x, ch[0]]];
  let cur = ch[0];
  ch.forEach((c, level) => {
    for (let l = 0; l < shape.layersPerBlock; l++) {
      x = b.resBlock(x, temb, cur, c);
      cur = c;
      if (shape.attention[level]) x = transformer(x, c);
      skips.push([x, c]);
    }
    if (level < ch.length - 1) {
      x = b.conv(x, c, c, 3, 2);
      skips.push([x, c]);
    }
  });
  x = b.resBlock(x, temb, cur, cur);
  x = transformer(x, cur);
  x = b.resBlock(x, temb, cur, cur);
  for (let level = ch.length - 1; level >= 0; level--) {
    const c = ch[level];
    for (let l = 0; l <= shape.layersPerBlock; l++) {
      const [skip, sc] = skips.pop()!;
      x = b.resBlock(b.op('Concat', [x, skip], { axis: b.channelAxis }), temb, cur + sc, c);
      cur = c;
      if (shape.attention[level]) x = transformer(x, c);
    }
    if (level > 0) x = b.conv(b.upsample(x), c, c, 3);
  }
  const out = b.toOutput(b.conv(b.groupNorm(x, cur, true), cur, 4, 3));
  g.output(out, 'out_sample', dt, ['batch', 4, 'height', 'width']);
  return { graph: g, parameters: b.params };
}

/**
 * An SD VAE decoder with random weights (latent_sample [B, 4, h, w] -> sample [B, 3, 8h, 8w]):
 * conv in, a mid block (ResNet, single-head attention over all pixels, ResNet), up blocks with
 * nearest 2x upsampling, GroupNorm + SiLU + conv out. Same fusion options as the UNet.
 */
export function syntheticVaeDecoder(shape: SyntheticVaeShape, opts: FusionOptions = {}): SyntheticGraph {
  const b = new Builder('vae_decoder', shape.dtype, shape.groups, opts);
  const { g } = b;
  const dt = shape.dtype;
  const z = g.input('latent_sample', dt, ['batch', 4, 'latent_height', 'latent_width']);
  const ch = [...shape.channels].reverse();
  let cur = ch[0];
  let x = b.conv(b.fromNchw(z), 4, cur, 3);
  x = b.resBlock(x, undefined, cur, cur);
  x = b.vaeAttention(x, cur);
  x = b.resBlock(x, undefined, cur, cur);
  ch.forEach((c, level) => {
    for (let l = 0; l <= shape.layersPerBlock; l++) {
      x = b.resBlock(x, undefined, cur, c);
      cur = c;
    }
    if (level < ch.length - 1) x = b.conv(b.upsample(x), c, c, 3);
  });
  const out = b.toOutput(b.conv(b.groupNorm(x, cur, true), cur, 3, 3));
  g.output(out, 'sample', dt, ['batch', 3, 'height', 'width']);
  return { graph: g, parameters: b.params };
}
