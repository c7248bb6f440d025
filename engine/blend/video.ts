/**
 * From keyframes to a video file: per-segment frame plans (equal screen time per perceptual gap,
 * or gap-weighted), joined so shared boundary frames appear once, streamed to ffmpeg.
 */
import { concatKeyframes, concatPlans, DEFAULT_PLAN, planFrames, renderFrames, type PlanMode } from '../video/frames.ts';
import { encodeVideo, type EncodeResult, type VideoFormat } from '../video/encode.ts';
import { appendFrames } from '../video/append.ts';
import { decodeVideoFrames } from '../video/decode.ts';
import { checkVideoRequest } from '../video/rules.ts';
import type { MovieSegment } from './movie.ts';

export interface VideoOptions {
  fps: number;
  /** Seconds per segment (one number for all, or one per segment). */
  duration: number | number[];
  format?: VideoFormat;
  out?: string;
  maxBytes?: number;
  plan?: PlanMode;
  signal?: AbortSignal;
  title?: string;
  /**
   * The finished video these segments continue (a movie being extended). Its last frame is the
   * first segment's first keyframe, so that keyframe is not shown again. The new frames are joined
   * to it without encoding it again where the streams allow (appendFrames); otherwise it is
   * decoded and the whole movie encoded.
   */
  continues?: Uint8Array;
}

export async function segmentsToVideo(segments: Array<Pick<MovieSegment, 'keyframes' | 'gaps'>>, opts: VideoOptions): Promise<EncodeResult> {
  const durations = checkVideoRequest(segments.length, opts);
  const planned = segments.map((s, i) => {
    // Each segment gets fps * duration frames; the joins share a frame, counted once.
    const frames = Math.max(2, Math.round(opts.fps * durations[i]) + (i > 0 || opts.continues ? 1 : 0));
    const mode = opts.plan ?? DEFAULT_PLAN;
    return { keyframeCount: s.keyframes.length, plan: planFrames(s.keyframes.length, frames, { mode, gaps: mode === 'gap-weighted' ? s.gaps : undefined }) };
  });
  const plan = concatPlans(planned);
  const keyframes = concatKeyframes(segments.map((s) => s.keyframes));
  const { width, height } = keyframes[0];
  const encode = { format: opts.format ?? 'mp4', fps: opts.fps, width, height, out: opts.out, maxBytes: opts.maxBytes, signal: opts.signal, title: opts.title } as const;
  /** This movie's frames; continuing a video, without the first (the video's last frame). */
  const own = function* () {
    let first = true;
    for (const f of renderFrames(keyframes, plan)) {
      if (first && opts.continues) {
        first = false;
        continue;
      }
      first = false;
      yield f;
    }
  };
  if (!opts.continues) return encodeVideo(own, encode);
  const appended = await appendFrames(opts.continues, own(), encode);
  if (appended) return appended;
  const prefix = await decodeVideoFrames(opts.continues, width, height, opts.signal, opts.fps);
  const frames = function* () {
    yield* prefix;
    yield* own();
  };
  return encodeVideo(frames, encode);
}
