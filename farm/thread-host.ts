// Runs inside a worker thread started by thread-renderer.ts: loads the renderer module, then
// serves render requests from the main thread. Rendering here keeps the worker's event loop
// (heartbeats, progress writes, NOTIFY) responsive while the engine computes.
import { parentPort, workerData } from 'node:worker_threads';
import type { Renderer, RendererFactory } from './renderer.ts';
import { type FromThread, serializeError, type ThreadHostData, type ToThread } from './thread-protocol.ts';

async function main(): Promise<void> {
  const port = parentPort;
  if (!port) throw new Error('thread-host.ts must run in a worker thread');
  const send = (message: FromThread, transfer: ArrayBuffer[] = []): void => port.postMessage(message, transfer);
  const data = workerData as ThreadHostData;

  let renderer: Renderer;
  try {
    const mod = (await import(data.moduleUrl)) as Record<string, unknown>;
    const factory = (mod[data.exportName] ?? mod.default) as RendererFactory | undefined;
    if (typeof factory !== 'function') throw new Error(`${data.moduleUrl} exports no function "${data.exportName}" (nor a default export)`);
    renderer = await factory(data.options);
    send({ type: 'ready', capabilities: renderer.capabilities() });
  } catch (error) {
    send({ type: 'init-error', error: serializeError(error) });
    return;
  }

  const running = new Map<number, AbortController>();
  port.on('message', (message: ToThread) => {
    if (message.type === 'abort') {
      running.get(message.requestId)?.abort(new Error(message.reason));
      return;
    }
    if (message.type === 'warm-up') {
      void Promise.resolve(renderer.warmUp?.())
        .then(() => send({ type: 'warm' }))
        .catch((error: unknown) => send({ type: 'warm-error', error: serializeError(error) }));
      return;
    }
    if (message.type === 'close') {
      void Promise.resolve(renderer.close?.())
        .catch(() => {})
        .finally(() => send({ type: 'closed' }));
      return;
    }
    const { requestId, job } = message;
    const controller = new AbortController();
    running.set(requestId, controller);
    renderer
      .render(job, { signal: controller.signal, onProgress: (progress) => send({ type: 'progress', requestId, progress }) })
      .then((result) => {
        // A private copy can be transferred without touching pooled Buffer memory.
        const video = new Uint8Array(result.video);
        send({ type: 'result', requestId, video, format: result.format, mime: result.mime, metadata: result.metadata, gpuSeconds: result.gpuSeconds, warnings: result.warnings }, [video.buffer]);
      })
      .catch((error: unknown) => send({ type: 'error', requestId, error: serializeError(error) }))
      .finally(() => running.delete(requestId));
  });
}

await main();
