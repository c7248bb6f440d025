import { fileSize } from './file-size.ts';

/**
 * A size and the limit it broke, as messages show them: fileSize's wording, or exact bytes when
 * the two would read the same ("10 MiB, more than the 10 MiB limit" says nothing).
 */
export function sizesApart(size: number, limit: number): [size: string, limit: string] {
  return fileSize(size) === fileSize(limit) ? [`${size} bytes`, `${limit} bytes`] : [fileSize(size), fileSize(limit)];
}
