import { MessageFlags, SlashCommandBuilder, type ChatInputCommandInteraction } from 'discord.js';
import { ACTIVE_STATUSES, countJobs, listJobs, listWorkers, providerKind, queuePosition, type Job, type WorkerInfo } from '../../farm/index.ts';
import type { BotContext, Command } from '../context.ts';
import { userMessage } from '../errors.ts';
import { duration, listInMessage } from '../format.ts';

/**
 * "**2** workers online (1 GPU, 1 CPU), **1** busy": counts only. A farm may serve many servers,
 * and its workers' ids (host names by default) and devices are its operator's business.
 */
export function workersText(workers: readonly Pick<WorkerInfo, 'capabilities' | 'runningJobs'>[]): string {
  const gpu = workers.filter((w) => providerKind(w.capabilities.executionProvider) === 'GPU').length;
  const cpu = workers.filter((w) => providerKind(w.capabilities.executionProvider) === 'CPU').length;
  const other = workers.length - gpu - cpu;
  const kinds = gpu + cpu === 0 ? [] : [gpu && `${gpu} GPU`, cpu && `${cpu} CPU`, other && `${other} other`].filter(Boolean);
  const busy = workers.filter((w) => w.runningJobs > 0).length;
  return `**${workers.length}** worker${workers.length === 1 ? '' : 's'} online${kinds.length ? ` (${kinds.join(', ')})` : ''}, **${busy}** busy`;
}

/** How long a queued job waits for a worker before it expires (the farm's queue timeout), spelled like /settings' durations. */
export function queueWaitText(farm: Pick<BotContext['farm'], 'config'>): string {
  const timeout = farm.config.queueTimeoutSeconds;
  return timeout > 0 ? `up to ${duration(timeout)} for one` : 'until one starts';
}

/** "Your job #12 is rendering (40%)." */
function renderingLine(job: Pick<Job, 'id' | 'progress'>): string {
  const fraction = job.progress?.fraction;
  const percent = typeof fraction === 'number' && Number.isFinite(fraction) ? ` (${Math.round(Math.max(0, Math.min(1, fraction)) * 100)}%)` : '';
  return `• Your job #${job.id} is rendering${percent}.`;
}

export const queue: Command = {
  data: new SlashCommandBuilder().setName('queue').setDescription('The render farm right now: jobs waiting and running, workers online, your place'),
  async execute(interaction: ChatInputCommandInteraction, ctx: BotContext) {
    await interaction.deferReply({ flags: MessageFlags.Ephemeral });
    try {
      // Counts for the farm, rows only for the member's own active jobs (at most their job limit).
      const [counts, mineActive, workers] = await Promise.all([
        countJobs(ctx.farm, ACTIVE_STATUSES),
        listJobs(ctx.farm, { userId: interaction.user.id, statuses: ACTIVE_STATUSES, limit: 1000 }),
        listWorkers(ctx.farm, { onlineOnly: true }),
      ]);
      const mineRunning = mineActive.filter((j) => j.status === 'running');
      const mineJob = mineActive.find((j) => j.status === 'queued');
      const mine = mineJob ? ((await queuePosition(ctx.farm, mineJob.id)) ?? 0) - 1 : -1;
      const tail: string[] = [];
      if (mine >= 0) tail.push(`Your next job is number ${mine + 1} in line (the order is fair across users, so it can move).`);
      else if (mineRunning.length === 0) tail.push('You have nothing waiting or rendering.');
      if (workers.length === 0) tail.push(`No render worker is online, so nothing is rendering; queued jobs wait ${queueWaitText(ctx.farm)}. If it lasts, tell the farm's operator.`);
      await interaction.editReply(
        listInMessage({
          head: [`**${counts.queued}** waiting, **${counts.running}** rendering, ${workersText(workers)}.`],
          items: mineRunning.map(renderingLine),
          tail,
        }),
      );
    } catch (err) {
      await interaction.editReply(userMessage(err, ctx.log));
    }
  },
};
