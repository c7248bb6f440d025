// A TCP forwarder to Postgres whose network can be blackholed, for outage tests
// (test/db/outage.test.ts, test/farm/worker-limits.test.ts).
import net from 'node:net';

/**
 * A TCP forwarder to Postgres that can blackhole the network: nothing is delivered in either
 * direction and nothing is refused or reset, as when packets are dropped; the held bytes are
 * delivered on restore, as TCP would retransmit them.
 */
export class FlakyProxy {
  private blackholed = false;
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private held: Array<[net.Socket, Buffer]> = [];

  constructor(target: { host: string; port: number }) {
    this.server = net.createServer((client) => {
      const upstream = net.connect(target.port, target.host);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('error', () => {});
        s.on('close', () => this.sockets.delete(s));
      }
      const forward = (from: net.Socket, to: net.Socket) => from.on('data', (chunk: Buffer) => (this.blackholed ? this.held.push([to, chunk]) : to.write(chunk)));
      forward(client, upstream);
      forward(upstream, client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return (this.server.address() as net.AddressInfo).port;
  }

  blackhole(): void {
    this.blackholed = true;
  }

  restore(): void {
    this.blackholed = false;
    for (const [to, chunk] of this.held) if (!to.destroyed) to.write(chunk);
    this.held = [];
  }

  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/**
 * Starts a FlakyProxy in front of the Postgres server at `url`; returns it with the same
 * connection URL routed through the proxy.
 */
export async function proxyInFrontOf(url: string): Promise<{ proxy: FlakyProxy; url: string }> {
  const direct = new URL(url);
  const proxy = new FlakyProxy({ host: direct.hostname, port: Number(direct.port || 5432) });
  const viaProxy = new URL(url);
  viaProxy.hostname = '127.0.0.1';
  viaProxy.port = String(await proxy.listen());
  return { proxy, url: viaProxy.toString() };
}
