// Public API of the video stage: keyframes -> frame plan -> rendered frames -> encoded file.
export { resolveFfmpeg, resolveFfprobe } from './ffmpeg-path.ts';
export type { FfmpegSource, FfprobeSource, ResolvedBinary } from './ffmpeg-path.ts';
export { planFrames, concatPlans, concatKeyframes, renderFrame, renderFrames } from './frames.ts';
export type { RawImage, FrameBlend, FramePlan, PlanMode, PlanOptions, PlannedSegment } from './frames.ts';
export { encodeVideo, VideoTooLargeError, VIDEO_FORMATS, CRF_RANGE, DEFAULT_CRF } from './encode.ts';
export type { VideoFormat, FrameIterable, FrameSource, EncodeOptions, EncodeAttempt, EncodeResult } from './encode.ts';
export { probeVideo, probeWebp } from './probe.ts';
export type { VideoProbe, ProbeOptions } from './probe.ts';
export { decodeVideoFrames } from './decode.ts';
