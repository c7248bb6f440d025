// Finding a job from the Discord side: reactions only know the message they were added to.
import { eq } from 'drizzle-orm';
import { jobs } from '../db/schema.ts';
import type { FarmContext } from './config.ts';
import { jobFromRow, type Job } from './types.ts';

export async function getJobByMessageId(farm: FarmContext, messageId: string): Promise<Job | undefined> {
  const [row] = await farm.db.db.select().from(jobs).where(eq(jobs.messageId, messageId)).limit(1);
  return row ? jobFromRow(row) : undefined;
}
