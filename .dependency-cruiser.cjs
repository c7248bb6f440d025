/**
 * The layers, as rules (checked by test/architecture/layers.test.ts and `npx depcruise`):
 *
 *   bot (Discord in and out) -> farm (jobs, budgets, workers; db underneath) -> engine (rendering)
 *
 * Each layer is used only through its public surface (`farm/index.ts`, `engine/index.ts`).
 * Front ends and composition (CLIs, worker and bot mains, the engine adapter) live in apps/,
 * which may use anything but the engine's internals (the engine only through engine/index.ts);
 * no layer imports apps/. The benchmarks (bench/) and operator scripts (scripts/) are front ends
 * too, under the same rule.
 */
const layer = (name) => `^${name}/`;
module.exports = {
  forbidden: [
    {
      name: 'engine-is-self-contained',
      comment: 'engine/ is pure rendering: it imports nothing of the project outside itself.',
      severity: 'error',
      from: { path: layer('engine') },
      to: { path: '^(apps|bot|farm|db|config|models|bench|scripts|test)/' },
    },
    {
      name: 'engine-through-its-index',
      comment: 'Outside engine/, the engine is used only through engine/index.ts (benchmarks and scripts included).',
      severity: 'error',
      from: { path: '^(apps|bot|farm|db|config|models|bench|scripts)/' },
      to: { path: layer('engine'), pathNot: '^engine/index\\.ts$' },
    },
    {
      name: 'farm-through-its-index',
      comment: 'Outside farm/, the farm is used only through farm/index.ts.',
      severity: 'error',
      from: { path: '^(bot|engine|db|config|models)/' },
      to: { path: layer('farm'), pathNot: '^farm/index\\.ts$' },
    },
    {
      name: 'bot-not-db-config-models',
      comment: 'bot/ reaches the database and configuration only through the farm; models come through the farm too.',
      severity: 'error',
      from: { path: layer('bot') },
      to: { path: '^(db|config|models)/' },
    },
    {
      name: 'lower-layers-do-not-know-upper',
      comment: 'The data flows bot -> farm -> engine: a lower layer never imports a higher one.',
      severity: 'error',
      from: { path: '^(farm|engine|db|config|models)/' },
      to: { path: '^bot/' },
    },
    {
      name: 'db-and-config-stand-alone',
      comment: 'db/ and config/ sit underneath: they import no layer above them.',
      severity: 'error',
      from: { path: '^(db|config)/' },
      to: { path: '^(farm|bot|engine|models|apps)/' },
    },
    {
      name: 'farm-not-models',
      comment: 'The farm does not build or pick models: the engine adapter in apps/ does.',
      severity: 'error',
      from: { path: layer('farm') },
      to: { path: '^models/' },
    },
    {
      name: 'no-layer-imports-apps',
      comment: 'apps/ holds front ends and composition; nothing in a layer depends on them.',
      severity: 'error',
      from: { path: '^(bot|farm|engine|db|config|models)/' },
      to: { path: '^apps/' },
    },
    {
      name: 'no-circular',
      severity: 'error',
      from: { path: '^(apps|bot|farm|engine|db|config|models|bench|scripts)/' },
      to: { circular: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(node_modules|dist|data|\\.ci-out)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js', '.mjs', '.json'] },
  },
};
