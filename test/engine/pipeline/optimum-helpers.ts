/** Shared by the optimum-export tests: the engine's public surface and a PNG reader. */
export { StableDiffusionPipeline, InvalidRequestError, ModelFileError, readModelFolder } from '../../../engine/index.ts';

/** Raw RGB bytes of a PNG (sharp, as the engine uses it). */
export async function sharpOfForTests(file: string): Promise<Uint8Array> {
  const { default: sharp } = await import('sharp');
  return new Uint8Array(await sharp(file).removeAlpha().raw().toBuffer());
}
