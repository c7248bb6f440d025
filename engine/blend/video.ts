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

/**
 * Frames a movie of segments of these `durations` (seconds each) has at `fps`, one count per
 * segment: its own frames, without the frame it shares with the segment (or, `continuing`, the
 * video) before it. The one rule for how long a video is: segment ends fall on the frame nearest
 * their time from the start (rounded once, so a movie is as long as its durations add up to,
 * fps x the sum), and every segment shows at least both its ends (a first segment has at least two
 * frames, a later one at least one of its own). The farm counts a job's frames with it.
 */
export function segmentFrameCounts(fps: number, durations: readonly number[], continuing = false): number[] {
  const counts: number[] = [];
  let elapsed = 0;
  let shown = 0;
  durations.forEach((d, i) => {
    elapsed += d;
    const least = shown + (i === 0 && !continuing ? 2 : 1);
    const end = Math.max(least, Math.round(fps * elapsed));
    counts.push(end - shown);
    shown = end;
  });
  return counts;
}

/**
 * The most frames a transition of `duration` seconds at `fps` gets by segmentFrameCounts, however a
 * movie is split into jobs (an extension counts from its own start): fps x duration rounded up, and
 * at least two. A front end pricing or limiting a movie before it exists counts with it, so it never
 * counts fewer frames than the engine writes.
 */
export function maxTransitionFrames(fps: number, duration: number): number {
  return Math.max(2, Math.ceil(fps * duration - 1e-9));
}

export async function segmentsToVideo(segments: Array<Pick<MovieSegment, 'keyframes' | 'gaps' | 'loops'>>, opts: VideoOptions): Promise<EncodeResult> {
  const durations = checkVideoRequest(segments.length, opts);
  const counts = segmentFrameCounts(opts.fps, durations, opts.continues !== undefined);
  const mode = opts.plan ?? DEFAULT_PLAN;
  // A looping walk (circular) plays back into its first frame: it is planned over its keyframes and
  // the first again, so the last gap gets its share of frames too, and that closing frame is dropped
  // (the player shows the first frame next).
  const loops = segments.length === 1 && segments[0].loops === true && !opts.continues;
  const planned = segments.map((s, i) => {
    // A segment after another (or after the video it continues) starts on their shared frame.
    const frames = counts[i] + (i > 0 || opts.continues ? 1 : 0) + (loops ? 1 : 0);
    const keyframeCount = s.keyframes.length + (loops ? 1 : 0);
    return { keyframeCount, plan: planFrames(keyframeCount, frames, { mode, gaps: mode === 'gap-weighted' ? s.gaps : undefined }) };
  });
  const plan = loops ? concatPlans(planned).slice(0, -1) : concatPlans(planned);
  const keyframes = concatKeyframes(segments.map((s) => (loops ? [...s.keyframes, s.keyframes[0]] : s.keyframes)));
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
