/**
 * Upscaling a finished video: decode every frame, upscale each, encode the result (same frame
 * rate and frame count). Works with any upscaler that turns a list of frames into larger frames
 * in order: the super-resolution networks (frame by frame) and the diffusion upscaler (the frames
 * as one latent-blending transition).
 */
import type { RawImage } from '../image.ts';
import { decodeVideoFrames } from '../video/decode.ts';
import { encodeVideo, type EncodeResult, type VideoFormat } from '../video/encode.ts';
import { probeVideo, type VideoProbe } from '../video/probe.ts';
import { throwIfCancelled } from '../pipeline/denoise.ts';

export interface FrameUpscaler {
  readonly name: string;
  readonly scale: number;
  upscaleFrames(frames: RawImage[], opts: { signal?: AbortSignal; onFrame?: (done: number) => void }): AsyncIterable<RawImage>;
}

export interface UpscaleVideoOptions {
  /** Output file; without it the result is only returned as bytes. */
  out?: string;
  /** Default: the input's container when it is one of the encoder's formats, else mp4. */
  format?: VideoFormat;
  crf?: number;
  maxBytes?: number;
  signal?: AbortSignal;
  onFrame?: (done: number, total: number) => void;
  /** The input's probe when the caller has made one already (probeVideo); without it the video is probed here. */
  source?: VideoProbe;
}

export interface UpscaleVideoResult extends EncodeResult {
  source: VideoProbe;
  upscaler: string;
  scale: number;
}

/** Decodes `video`, upscales every frame with `upscaler` and encodes the frames. */
export async function upscaleVideo(upscaler: FrameUpscaler, video: Uint8Array, opts: UpscaleVideoOptions = {}): Promise<UpscaleVideoResult> {
  const source = opts.source ?? (await probeVideo(video, { signal: opts.signal }));
  if (!(source.width > 0 && source.height > 0)) throw new RangeError('the input has no video stream with a known size; give an mp4, webm, gif or animated webp');
  const frames = await decodeVideoFrames(video, source.width, source.height, opts.signal);
  if (frames.length === 0) throw new RangeError('the input video has no frames to upscale');
  throwIfCancelled(opts.signal);
  const total = frames.length;
  const format: VideoFormat = opts.format ?? (['mp4', 'webm', 'gif', 'webp'].includes(source.format) ? (source.format as VideoFormat) : 'mp4');
  const fps = source.fps > 0 ? source.fps : source.durationSeconds > 0 ? total / source.durationSeconds : 24;
  const result = await encodeVideo(upscaler.upscaleFrames(frames, { signal: opts.signal, onFrame: (d) => opts.onFrame?.(d, total) }), {
    out: opts.out,
    format,
    fps,
    width: source.width * upscaler.scale,
    height: source.height * upscaler.scale,
    crf: opts.crf,
    maxBytes: opts.maxBytes,
    signal: opts.signal,
  });
  return { ...result, source, upscaler: upscaler.name, scale: upscaler.scale };
}
