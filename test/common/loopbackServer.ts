/** The tests' stand-ins for remote services (the hub, NuGet, an inference server) listen on 127.0.0.1 only. */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';

/** A server for `handler` on 127.0.0.1 at a free port, and its base URL. */
export async function listenOnLoopback(handler: http.RequestListener): Promise<{ server: http.Server; baseUrl: string }> {
  const server = http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

/** Closes `server` without waiting for its clients to hang up. */
export async function closeServer(server: http.Server | undefined): Promise<void> {
  server?.closeAllConnections();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
}
