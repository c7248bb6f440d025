import { PermissionFlagsBits, type Interaction } from 'discord.js';
import type { Job } from '../farm/index.ts';

/** Only a job's owner, or someone who may manage messages in that channel, may act on it. */
export function mayActOn(job: Job, userId: string, memberPermissions: Interaction['memberPermissions'] | null): boolean {
  if (job.userId === userId) return true;
  return Boolean(memberPermissions?.has(PermissionFlagsBits.ManageMessages));
}
