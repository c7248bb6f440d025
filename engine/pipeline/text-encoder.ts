/**
 * Prompt -> embeddings the UNet is conditioned on. SD 1.x/2.x use the text encoder's last hidden
 * state; SDXL concatenates the penultimate hidden states of both encoders and takes the pooled,
 * projected embedding from the second (as diffusers' SDXL pipeline does).
 */
import type { ClipTokenizer } from '../tokenizer/clip-tokenizer.ts';
import { openSession, type LoadedSession, type SessionOptions, ort } from '../onnx/session.ts';
import { intTensor, readFloat } from '../tensor/tensors.ts';

export interface PromptEmbedding {
  /** 77 x D token embeddings (D = 768 SD1, 1024 SD2, 2048 SDXL). */
  hidden: Float32Array;
  tokens: number;
  width: number;
  /** SDXL pooled text embedding (1280), absent for SD 1.x/2.x. */
  pooled?: Float32Array;
  /** The prompt was longer than 77 tokens and was cut. */
  truncated: boolean;
  /**
   * CLIP tokens of the prompt before the cut, start and end included (the first tokenizer's
   * count); absent for embeddings that do not come from a prompt (image embeddings).
   */
  tokenCount?: number;
}

interface EncoderSpec {
  loaded: LoadedSession;
  tokenizer: ClipTokenizer;
  /** Output to take token embeddings from. */
  hiddenOutput: string;
  pooledOutput?: string;
}

/** The output to take token embeddings from; `fallback` is set when SDXL's penultimate layer is not exported. */
function pickHiddenOutput(loaded: LoadedSession, penultimate: boolean): { name: string; fallback: boolean } {
  const names = loaded.outputs.map((o) => o.name);
  if (penultimate) {
    const layers = names
      .map((n) => /^hidden_states\.(\d+)$/.exec(n))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => Number(m[1]));
    if (layers.length >= 2) return { name: `hidden_states.${Math.max(...layers) - 1}`, fallback: false };
  }
  return { name: names.includes('last_hidden_state') ? 'last_hidden_state' : names[0], fallback: penultimate };
}

/** Said once per load when an SDXL text encoder lacks hidden_states.N outputs. */
export function penultimateMissingWarning(component: string): string {
  return (
    `${component} has no hidden_states.N outputs, so its last hidden state is used instead of the penultimate layer SDXL was trained on: ` +
    'prompts are followed less closely and images differ from diffusers\'. Re-export with `optimum-cli export onnx` (which adds hidden_states.N) to fix this.'
  );
}

export class TextEncoders {
  private cache = new Map<string, PromptEmbedding>();

  private constructor(
    private readonly encoders: EncoderSpec[],
    private readonly isXL: boolean,
    /** Load-time notes for the user (quality lost to how the encoders were exported). */
    readonly warnings: string[] = [],
  ) {}

  static async load(
    files: { textEncoder: string; textEncoder2?: string },
    tokenizers: ClipTokenizer[],
    isXL: boolean,
    opts: SessionOptions,
  ): Promise<TextEncoders> {
    const warnings: string[] = [];
    const te1 = await openSession(files.textEncoder, opts);
    const h1 = pickHiddenOutput(te1, isXL);
    if (h1.fallback) warnings.push(penultimateMissingWarning('text_encoder/model.onnx'));
    const specs: EncoderSpec[] = [{ loaded: te1, tokenizer: tokenizers[0], hiddenOutput: h1.name }];
    if (isXL && files.textEncoder2) {
      const te2 = await openSession(files.textEncoder2, opts);
      const outs = te2.outputs.map((o) => o.name);
      const h2 = pickHiddenOutput(te2, true);
      if (h2.fallback) warnings.push(penultimateMissingWarning('text_encoder_2/model.onnx'));
      specs.push({
        loaded: te2,
        tokenizer: tokenizers[1] ?? tokenizers[0],
        hiddenOutput: h2.name,
        pooledOutput: outs.includes('text_embeds') ? 'text_embeds' : outs[0],
      });
    }
    return new TextEncoders(specs, isXL, warnings);
  }

  get sessions(): LoadedSession[] {
    return this.encoders.map((e) => e.loaded);
  }

  /**
   * Embeds one prompt. For SDXL an empty negative prompt is all zeros, as diffusers does with
   * `force_zeros_for_empty_prompt`, rather than the encoding of "".
   */
  async encode(text: string, { negative = false } = {}): Promise<PromptEmbedding> {
    const key = `${negative ? 'n' : 'p'}:${text}`;
    const hit = this.cache.get(key);
    if (hit) return hit;
    const result = this.isXL && negative && text.trim() === '' ? await this.zeros() : await this.run(text);
    if (this.cache.size > 256) this.cache.delete(this.cache.keys().next().value as string);
    this.cache.set(key, result);
    return result;
  }

  private async zeros(): Promise<PromptEmbedding> {
    const shape = await this.run('');
    return { ...shape, hidden: new Float32Array(shape.hidden.length), pooled: shape.pooled && new Float32Array(shape.pooled.length), truncated: false };
  }

  private async run(text: string): Promise<PromptEmbedding> {
    const parts: Float32Array[] = [];
    const widths: number[] = [];
    let pooled: Float32Array | undefined;
    let truncated = false;
    let tokenCount: number | undefined;
    let tokens = 77;
    for (const enc of this.encoders) {
      const info = enc.tokenizer.encodeWithInfo(text, { pad: true });
      truncated ||= info.truncated;
      tokenCount ??= info.tokenCount;
      tokens = info.ids.length;
      const input = enc.loaded.inputs.find((i) => i.name === 'input_ids') ?? enc.loaded.inputs[0];
      const feeds: Record<string, ort.Tensor> = { [input.name]: intTensor(input.type, info.ids, [1, info.ids.length]) };
      const fetch = [enc.hiddenOutput, ...(enc.pooledOutput ? [enc.pooledOutput] : [])];
      const out = await enc.loaded.session.run(feeds, fetch);
      const hidden = readFloat(out[enc.hiddenOutput]);
      parts.push(hidden);
      widths.push(hidden.length / tokens);
      if (enc.pooledOutput) pooled = Float32Array.from(readFloat(out[enc.pooledOutput]));
    }
    const width = widths.reduce((a, b) => a + b, 0);
    // Concatenate along the feature axis (SDXL: 768 + 1280 = 2048 per token).
    const hidden = new Float32Array(tokens * width);
    let offset = 0;
    parts.forEach((part, k) => {
      const w = widths[k];
      for (let t = 0; t < tokens; t++) hidden.set(part.subarray(t * w, (t + 1) * w), t * width + offset);
      offset += w;
    });
    return { hidden, tokens, width, pooled, truncated, tokenCount };
  }
}

/** (1-f)·a + f·b for every embedding tensor: conditioning at mixing fraction f. */
export function lerpEmbedding(a: PromptEmbedding, b: PromptEmbedding, f: number): PromptEmbedding {
  const mix = (x: Float32Array, y: Float32Array) => {
    const out = new Float32Array(x.length);
    for (let i = 0; i < x.length; i++) out[i] = (1 - f) * x[i] + f * y[i];
    return out;
  };
  return {
    hidden: mix(a.hidden, b.hidden),
    tokens: a.tokens,
    width: a.width,
    pooled: a.pooled && b.pooled ? mix(a.pooled, b.pooled) : a.pooled,
    truncated: a.truncated || b.truncated,
  };
}
