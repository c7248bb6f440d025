/** Tiny shared checks for request bodies. */
import type { FieldIssue } from './errors.ts';

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function maxLength(path: (string | number)[], max: number): FieldIssue {
  return { path, code: 'BASE_TYPE_MAX_LENGTH', message: `Must be ${max} or fewer in length.` };
}

export function typeIssue(path: (string | number)[], type: string): FieldIssue {
  return { path, code: `BASE_TYPE_${type.toUpperCase()}`, message: `Must be of type ${type}.` };
}
