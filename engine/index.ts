/**
 * The engine's public surface: the bot, the farm and the command-line tools use only this.
 * Pure rendering: nothing here knows about Discord or the database.
 */
export { loadTokenizer, ClipTokenizer } from './tokenizer/clip-tokenizer.ts';
// What a model builder needs to write tokenizer files the loader reads back.
export { END_OF_WORD, type MergePair } from './tokenizer/bpe.ts';
export { BYTE_SYMBOLS } from './tokenizer/byte-unicode.ts';
export { unreplaceableIssue, writeWhole } from './output-file.ts';
export { CLIP_BOS_TOKEN, CLIP_EOS_TOKEN, CLIP_MAX_LENGTH, MAX_PROMPT_LENGTH, type TokenizerSettings } from './tokenizer/tokenizer-config.ts';
export { createScheduler, chooseScheduler, isSchedulerKind, schedulerKinds, schedulerRegistry, DDIMScheduler, type Scheduler, type SchedulerKind } from './schedulers/index.ts';
export { float32ToFloat16, float16ToFloat32 } from './tensor/fp16.ts';
// Tensors of the engine's ONNX runtime, for tools that run a graph themselves (scripts/gpu-check-fusion.ts).
export { floatTensor, numericTensor, readFloat } from './tensor/tensors.ts';
export { SeededRandom, latentNoise, drawSeed, stepNoise, MAX_SEED } from './noise.ts';
export { InvalidRequestError, ModelOutputError, isOutOfMemory } from './errors.ts';
export { fileSize } from './file-size.ts';
export {
  StableDiffusionPipeline,
  validateSize,
  MAX_IMAGE_SIDE,
  MAX_STEPS,
  MAX_GUIDANCE,
  type GenerateOptions,
  type GenerateResult,
  type PipelineOptions,
} from './pipeline/stable-diffusion.ts';
export { readModelFolder, familyDefaults, lcmDefaults, imageVariationDefaults, MODEL_KINDS, type ModelFolder, type ModelFamily, type ModelKind } from './pipeline/model-folder.ts';
export { guidanceScaleEmbedding } from './pipeline/unet.ts';
export { upcastModelToFloat32 } from './onnx/upcast.ts';
export type { PromptEmbedding } from './pipeline/text-encoder.ts';
export { CUDA_ONLY_CONTRIB_OPS, DEFAULT_DEVICE_ID, ExecutionProviderError, ModelFileError, executionProviders, type ExecutionProvider } from './onnx/session.ts';
export { encodePng, savePng, previewJpeg, type RawImage } from './image.ts';
export { LatentBlender, dampedGuidance, transitionDefaults, inpaintConditioning, DEFAULT_IMAGE_STRENGTH } from './blend/transition.ts';
export type { EndpointImage, InpaintInput } from './blend/transition.ts';
export { DEFAULT_BRANCHES, MAX_BRANCHES, MIN_BLEND_STEPS } from './blend/stages.ts';
export {
  prepareImage,
  decodeImage,
  pictureLimitIssue,
  prepareMask,
  presetMask,
  inspectImage,
  isMaskPreset,
  IMAGE_INPUT_LIMITS,
  IMAGE_INPUT_FORMATS,
  MASK_PRESETS,
  type ImageInput,
  type ImageInputLimits,
  type MaskPreset,
  type PixelMask,
} from './input-image.ts';
export { ImageVariationPipeline, type VariationPipelineOptions } from './variation/pipeline.ts';
export { renderVariations, variationDefaults, MAX_VARIATION_FRAMES, type VariationOptions, type VariationResult, type VariationFrameInfo } from './variation/animation.ts';
export { clipGuidanceShift, clipGuidanceDefaults, cosine, type ClipGuidanceOptions } from './variation/clip-guidance.ts';
export { CLIP_IMAGE_MEAN, CLIP_IMAGE_STD } from './variation/clip-image.ts';
export { INPAINT_UNET_CHANNELS, type InpaintConditioning } from './pipeline/unet.ts';
export { RenderCancelledError } from './pipeline/denoise.ts';
export type { TransitionOptions, TransitionResult, TransitionProgress, Crossfeed, Endpoint, BranchRecord } from './blend/transition.ts';
export { renderMovie, transitionModes, DEFAULT_TRANSITION_MODE, MAX_MOVIE_PROMPTS, MIN_MOVIE_PROMPTS, type MovieOptions, type MovieResult, type TransitionMode } from './blend/movie.ts';
export { renderWalk, walkModes, type WalkMode } from './blend/walks.ts';
export { MIN_WALK_FRAMES, MAX_WALK_FRAMES, DEFAULT_WALK_FRAMES } from './blend/walks.ts';
export { MIN_FPS, MAX_FPS, MAX_SEGMENT_SECONDS, MAX_UPSCALED_VIDEO_PIXELS, upscaleVideoIssue } from './video/rules.ts';
export { createPerceptualMetric, BuiltinPerceptualMetric, BUILTIN_METRIC, builtinDistance, ONNX_METRIC_PIXELS_PER_CALL, OnnxBuiltinMetric, OnnxLpipsMetric, type PerceptualMetric, type PerceptualMetricOptions } from './blend/perceptual.ts';
export { maxTransitionFrames, segmentFrameCounts, segmentsToVideo, type VideoOptions } from './blend/video.ts';
export { DEFAULT_PLAN, planModes, type PlanMode } from './video/frames.ts';
export { encodeVideo, probeVideo, decodeVideoFrames, resolveFfmpeg, resolveFfprobe, VIDEO_FORMATS, CRF_RANGE, DEFAULT_CRF, VideoTooLargeError, type VideoFormat } from './video/index.ts';
export { renderVideo, promptWarnings, promptLengthNotices, prepareRequestImages, prepareInpaint, type RenderRequest, type RenderOutput, type RenderProgress, type RequestImage } from './render.ts';
// Where a pipeline's model time went (RenderOutput.timings; bench/gpu.ts measures a transition with these).
export { timingTotals, timingsSince, type RenderTimings } from './pipeline/timings.ts';
export type { BatchTiming } from './pipeline/unet.ts';
export { renderVariationVideo, DEFAULT_VARIATION_FPS, type VariationRequest, type VariationOutput, type VariationProgress } from './variation/render.ts';
export {
  SuperResolutionUpscaler,
  readSuperResolutionManifest,
  DEFAULT_TILE_BATCH,
  type SuperResolutionManifest,
  type SuperResolutionLoadOptions,
} from './upscale/super-resolution.ts';
export { upscaleTiled, planTiles, DEFAULT_TILE, tileStarts, featherWeights, type TileOptions, type TileRunner, type TileGrid } from './upscale/tiles.ts';
export { upscaleVideo, type FrameUpscaler, type UpscaleVideoOptions, type UpscaleVideoResult } from './upscale/video.ts';
export {
  DiffusionUpscaler,
  readDiffusionUpscalerFolder,
  DEFAULT_UPSCALE_STEPS,
  MIN_UPSCALE_STEPS,
  type DiffusionUpscalerFolder,
  type DiffusionUpscaleRequest,
  type DiffusionUpscaleResult,
  type DiffusionUpscaledFrame,
} from './upscale/diffusion.ts';
