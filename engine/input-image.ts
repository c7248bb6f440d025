/**
 * Pictures users bring in (blend endpoints, variation start images, inpainting pictures and masks):
 * checked and brought to the render size here, once, before anything is rendered.
 *
 * Rules (one place):
 * - Formats: PNG, JPEG, WebP (decided from the file's content, not its name). Animated files use
 *   their first frame.
 * - Limits: at most IMAGE_INPUT_LIMITS.maxBytes bytes and maxPixels decoded pixels (the farm may
 *   pass narrower limits, never wider ones).
 * - EXIF orientation is applied first, so a phone photo is the right way up.
 * - Transparency is flattened onto white.
 * - Size: "cover": scaled (Lanczos) so it fills width x height, keeping its aspect ratio, then the
 *   overflow is cropped equally from both sides (centre crop). Nothing is stretched or padded.
 * - Masks (inpainting): the same decode and cover rule, then grey levels; white (>= 50%) = change,
 *   black = keep, binarised like diffusers' mask processor. Or a preset: centre, left, right, border.
 */
import { InvalidRequestError } from './errors.ts';
import { sizesApart } from './sizes-apart.ts';
import { sharpOf, type RawImage } from './image.ts';

export const IMAGE_INPUT_FORMATS = ['png', 'jpeg', 'webp'] as const;
export type ImageInputFormat = (typeof IMAGE_INPUT_FORMATS)[number];

/** The engine's upper bounds for a user's picture; callers may narrow them (e.g. Discord's attachment size). */
export const IMAGE_INPUT_LIMITS = {
  /** Encoded file size. */
  maxBytes: 20 * 1024 * 1024,
  /** Decoded width x height (before resizing): 40 megapixels. */
  maxPixels: 40_000_000,
} as const;

export interface ImageInputLimits {
  maxBytes?: number;
  maxPixels?: number;
}

/** A picture as a request carries it: the encoded file (PNG/JPEG/WebP bytes) or decoded RGB. */
export type ImageInput = Uint8Array | RawImage;

export const MASK_PRESETS = ['centre', 'left', 'right', 'border'] as const;
export type MaskPreset = (typeof MASK_PRESETS)[number];

/** A mask at pixel resolution: one value per pixel, 1 = repaint (change), 0 = keep. */
export interface PixelMask {
  data: Float32Array;
  width: number;
  height: number;
}

export function isRawImage(x: unknown): x is RawImage {
  return typeof x === 'object' && x !== null && 'data' in x && 'width' in x && 'height' in x && (x as RawImage).channels === 3;
}

function effectiveLimits(limits: ImageInputLimits | undefined): Required<ImageInputLimits> {
  const maxBytes = Math.min(limits?.maxBytes ?? IMAGE_INPUT_LIMITS.maxBytes, IMAGE_INPUT_LIMITS.maxBytes);
  const maxPixels = Math.min(limits?.maxPixels ?? IMAGE_INPUT_LIMITS.maxPixels, IMAGE_INPUT_LIMITS.maxPixels);
  return { maxBytes, maxPixels };
}

/**
 * How a picture over the limits is refused, worded once: by inspectImage when it reads the file,
 * and by front ends that check an upload's reported size first (the farm's inputMetadataIssue).
 */
export const pictureLimitIssue = {
  bytes: (label: string, bytes: number, maxBytes: number) => {
    const [size, limit] = sizesApart(bytes, maxBytes);
    return `${label} is ${size}, more than the ${limit} limit; use a smaller PNG, JPEG or WebP picture`;
  },
  pixels: (label: string, width: number, height: number, maxPixels: number) =>
    `${label} is ${width}x${height} (${((width * height) / 1e6).toFixed(1)} megapixels), more than the ${Number((maxPixels / 1e6).toFixed(3))}-megapixel limit; use a smaller picture`,
};

/** How a picture whose header reads but whose pixels do not (a cut-off download, `head -c`) is refused. */
const damagedIssue = (label: string, format: ImageInputFormat) => `${label} is a damaged or cut-off ${format.toUpperCase()} file; use a whole PNG, JPEG or WebP picture`;

/** The header checks of inspectImage (format, byte size, pixel count), without decoding the pixels. */
async function readHeader(bytes: Uint8Array, label: string, limits: ImageInputLimits | undefined): Promise<{ format: ImageInputFormat; width: number; height: number }> {
  const { maxBytes, maxPixels } = effectiveLimits(limits);
  if (bytes.length === 0) throw new InvalidRequestError(`${label} is an empty file; use a PNG, JPEG or WebP picture`);
  if (bytes.length > maxBytes) throw new InvalidRequestError(pictureLimitIssue.bytes(label, bytes.length, maxBytes));
  let meta;
  try {
    meta = await (await sharpOf(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length), { limitInputPixels: false })).metadata();
  } catch {
    throw new InvalidRequestError(`${label} is not a picture that can be read; use a PNG, JPEG or WebP file`);
  }
  const format = String(meta.format ?? '') === 'jpg' ? 'jpeg' : meta.format;
  if (!format || !(IMAGE_INPUT_FORMATS as readonly string[]).includes(format)) {
    throw new InvalidRequestError(`${label} is ${format ? `a ${format.toUpperCase()} file` : 'not a known picture format'}; use a PNG, JPEG or WebP picture instead`);
  }
  const w = meta.width ?? 0;
  const h = meta.pageHeight ?? meta.height ?? 0;
  if (w < 1 || h < 1) throw new InvalidRequestError(`${label} has no pixels; use a PNG, JPEG or WebP picture`);
  if (w * h > maxPixels) throw new InvalidRequestError(pictureLimitIssue.pixels(label, w, h, maxPixels));
  // EXIF orientations 5-8 swap width and height.
  const swap = (meta.orientation ?? 1) >= 5;
  return { format: format as ImageInputFormat, width: swap ? h : w, height: swap ? w : h };
}

/**
 * Checks an encoded picture: format, byte size and pixel count from its header, then that its
 * pixels decode. Returns its format and (oriented) size. `label` names it in messages ("the
 * from_image picture").
 *
 * The header of a cut-off file (a partial download, `head -c`) reads whole, and libvips failed only
 * when the render decoded the pixels ("vipspng: libpng read error", naming neither the picture nor
 * the file, after the model had loaded). So the pixels are decoded here as well, shrunk as they are
 * read (JPEG and WebP decode at a fraction of their size, PNG row by row, nothing kept): a damaged
 * file is refused when the picture is checked, by its label.
 */
export async function inspectImage(
  bytes: Uint8Array,
  label = 'the picture',
  limits?: ImageInputLimits,
): Promise<{ format: ImageInputFormat; width: number; height: number }> {
  const info = await readHeader(bytes, label, limits);
  if (decodedPixels.has(bytes)) return info;
  try {
    const decode = await sharpOf(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length), { limitInputPixels: false, sequentialRead: true });
    await decode.resize(64, 64, { fit: 'inside', withoutEnlargement: true }).raw().toBuffer();
  } catch {
    throw new InvalidRequestError(damagedIssue(label, info.format));
  }
  decodedPixels.add(bytes);
  return info;
}

/** Pictures whose pixels inspectImage has decoded: a second check of the same bytes (the bot checks its download, then submitJob does) reads only the header. */
const decodedPixels = new WeakSet<Uint8Array>();

/**
 * The decode chain both decodeImage and prepareImage go through, so its rules live once: a RawImage
 * is size-checked; a file is checked (inspectImage's header checks; pixels that do not decode are
 * refused with its damaged-file message, by the label), EXIF-rotated and flattened onto white; then,
 * with `cover`, scaled (Lanczos) to cover cover.width x cover.height and centre-cropped, in the same
 * sharp pipeline, so libvips can shrink a large JPEG/WebP while decoding it instead of decoding it at
 * full size first; alpha removed, sRGB, raw RGB, checked for 3 channels (and the cover size).
 */
async function decodeRgb(input: ImageInput, label: string, limits: ImageInputLimits | undefined, cover?: { width: number; height: number }): Promise<RawImage> {
  let pipeline;
  /** The file's format; undefined for a RawImage. */
  let format: ImageInputFormat | undefined;
  if (isRawImage(input)) {
    if (input.data.length < input.width * input.height * 3) throw new InvalidRequestError(`${label} has ${input.data.length} bytes, too few for ${input.width}x${input.height} RGB`);
    if (!cover || (input.width === cover.width && input.height === cover.height)) return input;
    pipeline = await sharpOf(input.data, { raw: { width: input.width, height: input.height, channels: 3 } });
  } else {
    format = (await readHeader(input, label, limits)).format;
    pipeline = (await sharpOf(Buffer.from(input.buffer, input.byteOffset, input.length), { limitInputPixels: false })).rotate().flatten({ background: '#ffffff' });
  }
  if (cover) pipeline = pipeline.resize(cover.width, cover.height, { fit: 'cover', position: 'centre', kernel: 'lanczos3' });
  const buf = await pipeline
    .removeAlpha()
    .toColourspace('srgb')
    .raw()
    .toBuffer({ resolveWithObject: true })
    .catch((err: unknown) => {
      throw format ? new InvalidRequestError(damagedIssue(label, format)) : err;
    });
  const { width, height, channels } = buf.info;
  if (channels !== 3 || (cover && (width !== cover.width || height !== cover.height))) {
    throw new InvalidRequestError(`${label} could not be converted to ${cover ? `${cover.width}x${cover.height} ` : ''}RGB (got ${width}x${height}x${channels})`);
  }
  const data = buf.data;
  return { data: new Uint8Array(data.buffer, data.byteOffset, data.length), width, height, channels: 3 };
}

/**
 * A user's picture at its own size: checked (inspectImage), EXIF-oriented, alpha flattened onto
 * white, sRGB. A RawImage is returned as it is (after a size check). For models that take the
 * picture through their own preprocessing (CLIP's processor for image variations), which must see
 * the picture as uploaded, not as cropped to the render size.
 */
export async function decodeImage(input: ImageInput, label = 'the picture', limits?: ImageInputLimits): Promise<RawImage> {
  return decodeRgb(input, label, limits);
}

/**
 * A user's picture at the render size: checked (inspectImage), EXIF-oriented, alpha flattened onto
 * white, scaled to cover width x height and centre-cropped. A RawImage is only resized (same rule).
 */
export async function prepareImage(input: ImageInput, width: number, height: number, label = 'the picture', limits?: ImageInputLimits): Promise<RawImage> {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) throw new RangeError(`bad target size ${width}x${height}`);
  return decodeRgb(input, label, limits, { width, height });
}

/** A mask picture at the render size (same checks and cover rule as prepareImage): white = change. */
export async function prepareMask(input: ImageInput, width: number, height: number, label = 'the mask', limits?: ImageInputLimits): Promise<PixelMask> {
  const img = await prepareImage(input, width, height, label, limits);
  const data = new Float32Array(width * height);
  let changed = 0;
  for (let p = 0; p < data.length; p++) {
    const grey = 0.299 * img.data[p * 3] + 0.587 * img.data[p * 3 + 1] + 0.114 * img.data[p * 3 + 2];
    data[p] = grey >= 127.5 ? 1 : 0;
    changed += data[p];
  }
  if (changed === 0) throw new InvalidRequestError(`${label} is all black, so nothing would change; paint the area to change white`);
  if (changed === data.length) throw new InvalidRequestError(`${label} is all white, so nothing of the picture would be kept; paint the area to keep black`);
  return { data, width, height };
}

/**
 * Preset masks (1 = change): `centre` the middle half in each direction, `left` / `right` the
 * left / right half, `border` everything but the centre (the outer quarter on each side).
 */
export function presetMask(preset: MaskPreset, width: number, height: number): PixelMask {
  if (!(MASK_PRESETS as readonly string[]).includes(preset)) {
    throw new InvalidRequestError(`mask preset must be one of ${MASK_PRESETS.join(', ')}, got "${preset}"`);
  }
  const data = new Float32Array(width * height);
  const [x0, x1, y0, y1] = [Math.round(width / 4), Math.round((3 * width) / 4), Math.round(height / 4), Math.round((3 * height) / 4)];
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const inCentre = x >= x0 && x < x1 && y >= y0 && y < y1;
      let v: boolean;
      if (preset === 'centre') v = inCentre;
      else if (preset === 'border') v = !inCentre;
      else if (preset === 'left') v = x < Math.round(width / 2);
      else v = x >= Math.round(width / 2);
      data[y * width + x] = v ? 1 : 0;
    }
  }
  return { data, width, height };
}

export function isMaskPreset(x: unknown): x is MaskPreset {
  return typeof x === 'string' && (MASK_PRESETS as readonly string[]).includes(x);
}
