// Movies and their extensions. An extend job stores only its new prompts and seeds and names the
// job it continues (parentJobId); the whole movie is found by following those links. Pictures stay
// with the job they were uploaded to (job_inputs); a movie lists them at its own prompt indices.
import { and, eq, inArray } from 'drizzle-orm';
import type { Queryable } from '../db/client.ts';
import { type JobKind, jobInputs, jobs } from '../db/schema.ts';
import { FarmError, JobNotFoundError } from './errors.ts';
import { INPUT_NAMES, type JobImage, type JobInput, type JobParams } from './job-params.ts';
import { LIMITS } from './limits.ts';

/** A picture of a movie: at its movie-wide prompt index, stored as input `input` of job `jobId`. */
interface MovieImage extends JobImage {
  jobId: number;
  input: string;
}

/** The prompts of a whole movie, one seed each, and its pictures (only when it has any). */
export interface Movie {
  prompts: string[];
  seeds: number[];
  images?: MovieImage[];
}

export interface MovieLink {
  id?: number;
  kind: JobKind;
  params: Pick<JobParams, 'prompts' | 'seeds' | 'images'>;
  parentJobId: number | null;
}

/**
 * The whole movie a job renders: its own prompts and seeds, after those of the movie it extends
 * (and so on up the chain) when it is an extension. Pictures (only the first job of a chain can
 * have them: extensions add prompts only) are renumbered to the whole movie's prompt indices; a
 * link without an id (a job not stored yet) contributes prompts only.
 */
export async function movieOf(q: Queryable, job: MovieLink): Promise<Movie> {
  const chain: MovieLink[] = [job];
  let link = job;
  while (link.kind === 'extend') {
    if (link.parentJobId === null) throw new FarmError('invalid_params', 'An extension continues an earlier movie: give its job id as the parent.');
    const [parent] = await q.select({ id: jobs.id, kind: jobs.kind, params: jobs.params, parentJobId: jobs.parentJobId }).from(jobs).where(eq(jobs.id, link.parentJobId));
    if (!parent) throw new JobNotFoundError(link.parentJobId);
    link = { id: parent.id, kind: parent.kind, params: parent.params as unknown as JobParams, parentJobId: parent.parentJobId };
    chain.unshift(link);
  }
  const movie: Movie = { prompts: [], seeds: [] };
  const images: MovieImage[] = [];
  for (const l of chain) {
    if (l.id !== undefined) {
      for (const img of l.params.images ?? []) images.push({ index: movie.prompts.length + img.index, strength: img.strength, jobId: l.id, input: INPUT_NAMES.image(img.index) });
    }
    movie.prompts.push(...l.params.prompts);
    movie.seeds.push(...l.params.seeds);
  }
  if (images.length) movie.images = images;
  return movie;
}

/**
 * The bytes of a movie's pictures, by the input name each has in a job that renders the whole
 * movie (`image-<movie index + 1>`). Throws when one is gone (its job row was deleted, which
 * retention never does while a job continues from it).
 */
export async function movieImageInputs(q: Queryable, movie: Movie): Promise<Record<string, JobInput>> {
  const wanted = movie.images ?? [];
  if (wanted.length === 0) return {};
  const ids = [...new Set(wanted.map((img) => img.jobId))];
  const rows = await q
    .select({ jobId: jobInputs.jobId, name: jobInputs.name, mime: jobInputs.mime, bytes: jobInputs.bytes })
    .from(jobInputs)
    .where(and(inArray(jobInputs.jobId, ids), inArray(jobInputs.name, [...new Set(wanted.map((img) => img.input))])));
  const out: Record<string, JobInput> = {};
  for (const img of wanted) {
    const row = rows.find((r) => Number(r.jobId) === img.jobId && r.name === img.input);
    if (!row) throw new FarmError('invalid_params', `The picture for prompt ${img.index + 1} of this movie (${img.input} of job ${img.jobId}) is no longer stored; make a new /movie with the picture instead.`);
    out[INPUT_NAMES.image(img.index)] = { bytes: new Uint8Array(row.bytes.buffer, row.bytes.byteOffset, row.bytes.byteLength), mime: row.mime };
  }
  return out;
}

/** Refuses an extension of `movie` by `newPrompts` prompts that would make it longer than LIMITS.prompts.max. */
export function checkExtension(movie: Pick<Movie, 'prompts'>, newPrompts: number): void {
  if (newPrompts < 1) throw new FarmError('invalid_params', 'Extending a video needs the prompt to continue to.');
  if (movie.prompts.length + newPrompts > LIMITS.prompts.max) {
    throw new FarmError('invalid_params', `This movie has ${movie.prompts.length} prompts; an extension may bring it to at most ${LIMITS.prompts.max}.`);
  }
}
