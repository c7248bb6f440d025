/** A local fake Discord (REST + gateway) for end-to-end tests with the real discord.js client. */
export { startFakeDiscord, FakeDiscord, ATTACHMENT_ROUTE, type FakeDiscordOptions } from './server.ts';
export { InteractionHandle } from './handle.ts';
export type { SlashCommandOptions, AutocompleteOptions, ButtonPressOptions, ModalSubmitOptions, ReactionOptions, Actor } from './interactions.ts';
export type { FailNextOptions } from './faults.ts';
export type { FakeUpload } from './commands.ts';
export type { GuildInit, ChannelInit, ThreadInit, UserInit } from './state.ts';
export type { IdentifyRecord, GatewayLogEntry, GatewayClosure, DispatchResult } from './gateway.ts';
export type * from './model.ts';
export { Intents, intentNames, Permissions, ALL_PERMISSIONS, DEFAULT_EVERYONE_PERMISSIONS, MessageFlags, CallbackType, DEFAULT_ATTACHMENT_SIZE_LIMIT } from './protocol.ts';
export { buttonsOf, findComponent, customIdsOf, type ButtonInfo } from './inspect.ts';
