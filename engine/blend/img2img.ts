/**
 * The schedule position img2img starts at for `steps` inference steps and a strength: diffusers'
 * get_timesteps, t_start = steps - int(steps * strength) (times the scheduler order, 1 here), kept
 * inside the schedule so at least one step runs. Used by upscaling (refining keyframes) and by
 * picture endpoints of transitions.
 */
export function img2imgStartIndex(steps: number, strength: number, scheduleLength: number): number {
  const t = steps - Math.min(Math.trunc(steps * strength), steps);
  return Math.min(scheduleLength - 1, Math.max(0, t));
}
