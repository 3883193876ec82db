/**
 * Where completions go when a server answers them, and whether they may go there: the server's base address
 * from `dlm.server.url`, checked before anything is sent. Code and the API key leave the machine only over
 * HTTPS, or in plain HTTP to this machine (a loopback address, e.g. an SSH tunnel); plain HTTP to any other host
 * is refused unless the user allows it, because anyone on the network path could read the code and the key.
 */

export class ServerUrlError extends Error {
  override name = 'ServerUrlError';
}

export interface ServerEndpoint {
  /** `http:` or `https:`. */
  protocol: 'http:' | 'https:';
  hostname: string;
  port: number;
  /** The path the server's routes hang below ('' at the root), without a trailing slash. */
  basePath: string;
  /** host:port, as the status bar and the messages name the server. */
  label: string;
  /** True for plain HTTP to another machine (allowed by the user). */
  insecure: boolean;
}

/** True for names and addresses of this machine: `localhost`, 127.0.0.0/8, ::1. */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  if (host === 'localhost' || host === '::1' || host === '0:0:0:0:0:0:0:1') return true;
  const ipv4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(host);
  return ipv4 !== null && Number(ipv4[1]) === 127 && ipv4.slice(2).every((part) => Number(part) <= 255);
}

/**
 * The endpoint named by `raw`, or a ServerUrlError saying what is wrong with it. A trailing `/v1` (the OpenAI
 * clients' base URL) is dropped: the API decides which routes are asked for.
 */
export function parseServerUrl(raw: string, allowInsecureHttp: boolean): ServerEndpoint {
  const text = raw.trim();
  if (text === '') {
    throw new ServerUrlError('No server is set: set dlm.server.url to the address of the SGLang or vLLM server, e.g. http://127.0.0.1:30000.');
  }
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ServerUrlError(`"${text}" is not a URL: give the scheme, host and port, e.g. https://gpu-box.example.com:30000.`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ServerUrlError(`"${text}" uses ${url.protocol.slice(0, -1)}; the server is reached over http or https.`);
  }
  if (url.username || url.password) {
    throw new ServerUrlError('The server URL holds a user name or password: remove it and store the key with DLM: Set Server API Key (it is kept in the OS keychain, not in settings).');
  }
  if (url.search || url.hash) {
    throw new ServerUrlError(`"${text}" has a query or fragment; give only the server's address (and a path, if it is behind a proxy).`);
  }
  const loopback = isLoopbackHost(url.hostname);
  if (url.protocol === 'http:' && !loopback && !allowInsecureHttp) {
    throw new ServerUrlError(
      `Refusing plain HTTP to ${url.host}: your code and the API key would cross the network unencrypted, readable by ` +
        'anyone on the way. Use https://, or an SSH tunnel to a port on this machine (http://127.0.0.1:PORT), or, on a ' +
        'network you trust, set dlm.server.allowInsecureHttp.',
    );
  }
  const port = url.port ? Number(url.port) : url.protocol === 'https:' ? 443 : 80;
  return {
    protocol: url.protocol,
    hostname: url.hostname.replace(/^\[|\]$/g, ''),
    port,
    basePath: url.pathname.replace(/\/+$/, '').replace(/\/v1$/, ''),
    label: url.host,
    insecure: url.protocol === 'http:' && !loopback,
  };
}
