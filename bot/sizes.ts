// The frame sizes a member can pick in /blend, /movie and /vary (the `size` option's choices).
// Their own module: bot/errors.ts words "pick a smaller size" from them, and render-options.ts,
// which builds the option, imports errors.ts.
// Every side is a multiple of 256, so of every released Stable Diffusion model's side multiple (64
// for SD 1.x and 2.x, 32 for SDXL) as well as the farm's floor (LIMITS.side.multipleOf): a model a
// worker offers renders each choice. The farm refuses other sides at submission, naming the nearest
// ones (farm/worker-registry.ts sizeMultipleIssues); test/farm/size-multiples.test.ts checks these.

export const SIZE_CHOICES = {
  square: { width: 512, height: 512, label: 'Square (512×512)' },
  landscape: { width: 768, height: 512, label: 'Landscape (768×512)' },
  portrait: { width: 512, height: 768, label: 'Portrait (512×768)' },
} as const;
export type SizeChoice = keyof typeof SIZE_CHOICES;

/** The smallest frame a member can pick: at it, "pick a smaller size" cannot help. */
export const SMALLEST_SIZE_PIXELS = Math.min(...Object.values(SIZE_CHOICES).map((s) => s.width * s.height));
