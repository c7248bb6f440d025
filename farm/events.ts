// Job events: every state change is written to job_events and published with pg_notify in the
// same transaction, so a listener is told exactly about committed changes. Progress is only
// published (it changes too often to keep). NOTIFY is best-effort (a reconnecting listener can
// miss some), so the row stays the truth.
//
// Payloads are ids only, small by construction: job id, event type, status, attempt, time —
// never user ids, prompts, errors or progress, which live in the job row (getJob). Postgres
// refuses NOTIFY payloads over 8000 bytes, and a refused NOTIFY fails its whole transaction:
// one job with a long field must not stop the queue.
import { sql } from 'drizzle-orm';
import { type FarmDb, type Queryable } from '../db/client.ts';
import type { JobStatus } from '../db/schema.ts';
import type { JobProgress } from './types.ts';

export const JOB_EVENTS_CHANNEL = 'blendfarm_job_events';

export const JOB_EVENT_TYPES = [
  'queued', // submitted, or put back by `retry`
  'claimed', // a worker started an attempt
  'progress',
  'retrying', // an attempt failed or its worker vanished; the job is queued again
  'released', // a worker shut down and handed the job back without using an attempt
  'done',
  'failed', // out of attempts, or a permanent error
  'cancelled',
  'delivered', // a front end posted the result (markDelivered)
  'undeliverable', // a front end gave up posting the result; its stored data says why (markDelivered with `undeliverable`)
] as const;
export type JobEventType = (typeof JOB_EVENT_TYPES)[number];

/** What a listener is told; read the job (getJob) for anything else. */
export interface JobEvent {
  jobId: number;
  type: JobEventType;
  status: JobStatus;
  attempt: number;
  /** ISO time of the database transaction. */
  at: string;
}

/**
 * The largest payload an event can have: fixed fields, a job id, an attempt number and a
 * timestamp (tested against real payloads). Far below Postgres' 8000-byte limit.
 */
export const MAX_EVENT_PAYLOAD_BYTES = 200;

export type JobEventHandler = (event: JobEvent) => void;

export function withoutPreview(progress: JobProgress | null | undefined): Omit<JobProgress, 'preview'> | undefined {
  if (!progress) return undefined;
  const { preview: _preview, ...rest } = progress;
  return rest;
}

/** The job's state at the event; stored in job_events.data, only the ids are published. */
export interface EventFields {
  jobId: number;
  userId: string;
  status: JobStatus;
  attempt: number;
  workerId?: string | null;
  progress?: JobProgress | null;
  error?: string | null;
}

/** Everything about the event, for the job_events row (no size limit there). */
function storedData(type: JobEventType, fields: EventFields): Record<string, unknown> {
  const data: Record<string, unknown> = { jobId: fields.jobId, userId: fields.userId, type, status: fields.status, attempt: fields.attempt };
  if (fields.workerId) data.workerId = fields.workerId;
  const progress = withoutPreview(fields.progress);
  if (progress) data.progress = progress;
  if (fields.error) data.error = fields.error;
  return data;
}

/** The NOTIFY payload: ids only (see the top of this file). */
export function eventPayload(type: JobEventType, fields: Pick<EventFields, 'jobId' | 'status' | 'attempt'>): Omit<JobEvent, 'at'> {
  return { jobId: fields.jobId, type, status: fields.status, attempt: fields.attempt };
}

/** Stores the event and publishes it; call inside the transaction that made the change. */
export async function recordEvent(q: Queryable, type: JobEventType, fields: EventFields, data: Record<string, unknown> = {}): Promise<void> {
  await q.execute(sql`
    with stored as (
      insert into job_events (job_id, type, data) values (${fields.jobId}, ${type}, ${JSON.stringify({ ...storedData(type, fields), ...data })}::jsonb)
      returning created_at
    )
    select pg_notify(${JOB_EVENTS_CHANNEL}, (${JSON.stringify(eventPayload(type, fields))}::jsonb || jsonb_build_object('at', stored.created_at))::text)
    from stored`);
}

export function parseJobEvent(payload: string): JobEvent | undefined {
  try {
    const event = JSON.parse(payload) as JobEvent;
    if (typeof event.jobId === 'number' && (JOB_EVENT_TYPES as readonly string[]).includes(event.type)) return event;
  } catch {
    // Not ours or truncated: ignore.
  }
  return undefined;
}

/**
 * Calls `handler` for every job event committed from now on, by any process sharing the
 * database. Returns an unsubscribe function. Handler errors are logged, never thrown back.
 */
export async function onJobEvent(db: FarmDb, handler: JobEventHandler): Promise<() => Promise<void>> {
  return db.listen(JOB_EVENTS_CHANNEL, (payload) => {
    const event = parseJobEvent(payload);
    if (!event) return;
    try {
      handler(event);
    } catch (error) {
      console.error(`[farm] job event handler failed: ${(error as Error).message}`);
    }
  });
}
