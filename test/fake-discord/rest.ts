/** All REST routes of the fake, in matching order. */
import { CoreRoutes } from './core-routes.ts';
import type { FakeGateway } from './gateway.ts';
import { InteractionRoutes } from './interaction-routes.ts';
import type { InteractionFactory } from './interactions.ts';
import type { RestConfig } from './route-group.ts';
import { Router } from './router.ts';
import type { FakeState } from './state.ts';

export function buildRouter(store: FakeState, gateway: FakeGateway, interactions: InteractionFactory, config: RestConfig): Router {
  const router = new Router();
  new CoreRoutes(store, gateway, interactions, config).register(router);
  new InteractionRoutes(store, gateway, interactions, config).register(router);
  return router;
}
