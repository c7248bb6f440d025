import type { Command } from '../context.ts';
import { blend } from './blend.ts';
import { movie } from './movie.ts';
import { budget } from './budget.ts';
import { queue } from './queue.ts';
import { cancel } from './cancel.ts';
import { settings } from './settings.ts';
import { vary } from './vary.ts';

export const commands: Command[] = [blend, movie, vary, budget, queue, cancel, settings];
export const commandsByName = new Map(commands.map((c) => [c.data.name, c]));
