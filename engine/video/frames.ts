// Turns an ordered list of keyframes into per-frame crossfade instructions, and renders them.
//
// The keyframes of a latent blend were placed where the perceptual gaps were largest, so the
// reference behaviour gives every gap the same screen time ('equal'). 'gap-weighted' instead gives
// each gap screen time proportional to a caller-supplied gap size.

import type { RawImage } from '../image.ts';

export type { RawImage };

/**
 * One output frame: a crossfade with weight `t` from keyframe `left` towards keyframe `right`.
 * `right === left` (and `t === 0`) means the frame is exactly keyframe `left`; otherwise
 * `right === left + 1` and 0 < t < 1.
 */
export interface FrameBlend {
  left: number;
  right: number;
  t: number;
}

export type FramePlan = FrameBlend[];

export type PlanMode = 'equal' | 'gap-weighted';
/** The reference behaviour: every keyframe gap gets the same screen time. */
export const DEFAULT_PLAN: PlanMode = 'equal';
export const planModes: readonly PlanMode[] = ['equal', 'gap-weighted'];

export interface PlanOptions {
  /** gaps[j] = perceptual distance between keyframe j and j + 1 (length keyframeCount - 1). */
  gaps?: readonly number[];
  /** Defaults to 'equal', the reference behaviour; 'gap-weighted' requires `gaps`. */
  mode?: PlanMode;
}

const exact = (keyframe: number): FrameBlend => ({ left: keyframe, right: keyframe, t: 0 });

/**
 * Position of every keyframe on a 0..1 timeline: equally spaced, or spaced by cumulative gap size.
 * The last position is forced to exactly 1 so rounding cannot move the final keyframe.
 */
function keyframePositions(keyframeCount: number, opts: PlanOptions): number[] {
  const mode = opts.mode ?? DEFAULT_PLAN;
  if (!planModes.includes(mode)) {
    throw new RangeError(`Unknown plan mode "${String(mode)}": use ${planModes.map((m) => `'${m}'`).join(' or ')}.`);
  }
  const equal = Array.from({ length: keyframeCount }, (_, j) => (keyframeCount === 1 ? 0 : j / (keyframeCount - 1)));
  if (mode === 'equal') return equal;

  const gaps = opts.gaps;
  if (!gaps) throw new RangeError("Plan mode 'gap-weighted' needs opts.gaps (one distance per pair of neighbouring keyframes).");
  if (gaps.length !== keyframeCount - 1) {
    throw new RangeError(`opts.gaps has ${gaps.length} entries but ${keyframeCount} keyframes have ${keyframeCount - 1} gaps.`);
  }
  for (const g of gaps) {
    if (!Number.isFinite(g) || g < 0) throw new RangeError(`opts.gaps must be finite and non-negative numbers, got ${g}.`);
  }
  const total = gaps.reduce((sum, g) => sum + g, 0);
  // All-zero gaps means every keyframe is the same image: any spacing is as good as another.
  if (total === 0) return equal;
  const positions = [0];
  let acc = 0;
  for (let j = 0; j < gaps.length; j++) {
    acc += gaps[j];
    positions.push(acc / total);
  }
  positions[positions.length - 1] = 1;
  return positions;
}

/**
 * Plans `totalFrames` output frames over `keyframeCount` keyframes.
 *
 * Guarantees: the first frame is exactly keyframe 0 and the last exactly the last keyframe; the
 * plan is monotone; with totalFrames >= keyframeCount every keyframe is shown exactly, at the
 * start of its gap; with fewer frames the keyframes are subsampled (each frame an exact keyframe).
 */
export function planFrames(keyframeCount: number, totalFrames: number, opts: PlanOptions = {}): FramePlan {
  if (!Number.isInteger(keyframeCount) || keyframeCount < 1) {
    throw new RangeError(`keyframeCount must be a positive integer, got ${keyframeCount}.`);
  }
  if (!Number.isInteger(totalFrames) || totalFrames < 1) {
    throw new RangeError(`totalFrames must be a positive integer, got ${totalFrames}.`);
  }
  const positions = keyframePositions(keyframeCount, opts);
  if (keyframeCount === 1) return Array.from({ length: totalFrames }, () => exact(0));
  if (totalFrames < 2) {
    throw new RangeError('totalFrames must be at least 2 to show both the first and the last keyframe.');
  }
  const lastFrame = totalFrames - 1;
  const lastKey = keyframeCount - 1;

  if (totalFrames < keyframeCount) {
    // Subsample: each frame shows the keyframe nearest its timeline position, strictly increasing
    // so no keyframe repeats while others are skipped.
    const plan: FramePlan = [];
    let previous = -1;
    for (let f = 0; f <= lastFrame; f++) {
      const target = f / lastFrame;
      let nearest = 0;
      for (let k = 1; k <= lastKey; k++) {
        if (Math.abs(positions[k] - target) < Math.abs(positions[nearest] - target)) nearest = k;
      }
      const chosen = f === lastFrame ? lastKey : Math.min(Math.max(nearest, previous + 1), lastKey - (lastFrame - f));
      plan.push(exact(chosen));
      previous = chosen;
    }
    return plan;
  }

  // Frame index at which each keyframe is shown exactly. Cumulative rounding keeps every gap
  // within one frame of its ideal share; the clamps keep at least one step per gap.
  const at: number[] = [0];
  for (let k = 1; k <= lastKey; k++) {
    const ideal = Math.round(positions[k] * lastFrame);
    const atLeast = at[k - 1] + 1;
    const atMost = lastFrame - (lastKey - k);
    at.push(Math.min(Math.max(ideal, atLeast), atMost));
  }

  const plan: FramePlan = [];
  for (let k = 0; k < lastKey; k++) {
    const steps = at[k + 1] - at[k];
    plan.push(exact(k));
    for (let i = 1; i < steps; i++) plan.push({ left: k, right: k + 1, t: i / steps });
  }
  plan.push(exact(lastKey));
  return plan;
}

export interface PlannedSegment {
  keyframeCount: number;
  plan: FramePlan;
}

/**
 * Keyframes of consecutive segments (A->B, B->C, ...) share their boundary image: segment i's last
 * keyframe is segment i+1's first. Returns the combined list with each shared image once.
 */
export function concatKeyframes<T>(segments: ReadonlyArray<readonly T[]>): T[] {
  const out: T[] = [];
  segments.forEach((keyframes, i) => {
    if (keyframes.length === 0) throw new RangeError(`Segment ${i} has no keyframes.`);
    out.push(...(i === 0 ? keyframes : keyframes.slice(1)));
  });
  return out;
}

/**
 * Joins per-segment plans into one plan over `concatKeyframes(...)` of the same segments. The shared
 * boundary keyframe is shown once: each later segment's first frame is dropped.
 */
export function concatPlans(segments: readonly PlannedSegment[]): FramePlan {
  const out: FramePlan = [];
  let offset = 0;
  segments.forEach(({ keyframeCount, plan }, i) => {
    if (plan.length === 0) throw new RangeError(`Segment ${i} has an empty plan.`);
    const first = plan[0];
    const last = plan[plan.length - 1];
    if (first.left !== 0 || first.right !== 0 || first.t !== 0) {
      throw new RangeError(`Segment ${i} does not start exactly on its first keyframe; plan it with planFrames.`);
    }
    if (last.left !== keyframeCount - 1 || last.right !== keyframeCount - 1 || last.t !== 0) {
      throw new RangeError(`Segment ${i} does not end exactly on its last keyframe (keyframeCount ${keyframeCount}).`);
    }
    for (const step of i === 0 ? plan : plan.slice(1)) {
      out.push({ left: step.left + offset, right: step.right + offset, t: step.t });
    }
    offset += keyframeCount - 1;
  });
  return out;
}

function frameBytes(image: RawImage): number {
  return image.width * image.height * 3;
}

function checkImage(image: RawImage | undefined, index: number): RawImage {
  if (!image) throw new RangeError(`Keyframe ${index} does not exist.`);
  if (image.channels !== 3) throw new RangeError(`Keyframe ${index} has ${image.channels} channels; only RGB (3) is supported.`);
  if (image.data.length < frameBytes(image)) {
    throw new RangeError(`Keyframe ${index} holds ${image.data.length} bytes, fewer than ${image.width}x${image.height}x3.`);
  }
  return image;
}

/** Crossfades two keyframes in RGB with uint8 rounding (round half up). */
export function renderFrame(keyframes: readonly RawImage[], blend: FrameBlend, out?: Uint8Array): RawImage {
  const a = checkImage(keyframes[blend.left], blend.left);
  const b = checkImage(keyframes[blend.right], blend.right);
  if (a.width !== b.width || a.height !== b.height) {
    throw new RangeError(`Keyframes ${blend.left} and ${blend.right} differ in size; all keyframes must be the same size.`);
  }
  if (!(blend.t >= 0 && blend.t <= 1)) throw new RangeError(`Crossfade weight t must be within 0..1, got ${blend.t}.`);
  const size = frameBytes(a);
  if (out && out.length < size) throw new RangeError(`Output buffer holds ${out.length} bytes, the frame needs ${size}.`);
  const target = out ? out.subarray(0, size) : Buffer.allocUnsafe(size);

  const t = blend.t;
  if (t === 0 || blend.left === blend.right) {
    target.set(a.data.subarray(0, size));
  } else if (t === 1) {
    target.set(b.data.subarray(0, size));
  } else {
    const from = a.data;
    const to = b.data;
    const s = 1 - t;
    for (let i = 0; i < size; i++) target[i] = (from[i] * s + to[i] * t + 0.5) | 0;
  }
  return { data: target, width: a.width, height: a.height, channels: 3 };
}

/**
 * Renders a whole plan lazily. Each frame gets its own buffer because a streamed frame may still
 * be queued in a pipe when the next one is rendered.
 */
export function* renderFrames(keyframes: readonly RawImage[], plan: FramePlan): Generator<RawImage> {
  const first = checkImage(keyframes[0], 0);
  keyframes.forEach((image, i) => {
    checkImage(image, i);
    if (image.width !== first.width || image.height !== first.height) {
      throw new RangeError(`Keyframe ${i} is ${image.width}x${image.height} but keyframe 0 is ${first.width}x${first.height}.`);
    }
  });
  for (const blend of plan) yield renderFrame(keyframes, blend);
}
