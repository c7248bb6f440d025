// Reading the issues out of a refused job-parameter parse.
import { JobParamsError } from '../../farm/job-params.ts';

/** The issues of the JobParamsError `fn` throws; fails when it throws nothing (or something else). */
export function issuesOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (error) {
    if (error instanceof JobParamsError) return error.issues;
    throw error;
  }
  throw new Error('expected a JobParamsError');
}
