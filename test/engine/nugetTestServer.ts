/**
 * A stand-in for a NuGet v3 feed on 127.0.0.1, serving what onnxruntime-node's install script and the GPU
 * set-up read: the service index, the flat container (version list and .nupkg, with Range), a registration leaf
 * pointing at a catalog leaf with the package's SHA-512 and size. Faults on demand as the hub stand-in has them
 * (a cut connection, corrupt bytes), and packages can be left out.
 */
import { createHash } from 'node:crypto';
import * as http from 'node:http';
import { closeServer, listenOnLoopback } from '../common/loopbackServer';
import { serveFile, type Fault } from './hubTestServer';

export class NugetTestServer {
  /** Package bytes by `<id lower>/<version>`. */
  readonly packages = new Map<string, Buffer>();
  fault: Fault = {};
  /** Leave the catalog's hash out (a feed that publishes none). */
  omitHash = false;
  readonly log: { path: string; range?: string }[] = [];
  private server?: http.Server;
  baseUrl = '';

  get indexUrl(): string {
    return `${this.baseUrl}/v3/index.json`;
  }

  addPackage(id: string, version: string, nupkg: Buffer): void {
    this.packages.set(`${id.toLowerCase()}/${version.toLowerCase()}`, nupkg);
  }

  async start(): Promise<void> {
    ({ server: this.server, baseUrl: this.baseUrl } = await listenOnLoopback((req, res) => this.handle(req, res)));
  }

  async stop(): Promise<void> {
    await closeServer(this.server);
  }

  private json(res: http.ServerResponse, value: unknown): void {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(value));
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', this.baseUrl);
    this.log.push({ path: url.pathname, range: req.headers.range });
    const notFound = () => {
      res.writeHead(404);
      res.end();
    };
    if (url.pathname === '/v3/index.json') {
      return this.json(res, {
        version: '3.0.0',
        resources: [
          { '@id': `${this.baseUrl}/flat/`, '@type': 'PackageBaseAddress/3.0.0' },
          { '@id': `${this.baseUrl}/registration`, '@type': 'RegistrationsBaseUrl/3.6.0' },
        ],
      });
    }
    let m = /^\/flat\/([^/]+)\/index\.json$/.exec(url.pathname);
    if (m) {
      const versions = [...this.packages.keys()].filter((k) => k.startsWith(`${m![1]}/`)).map((k) => k.split('/')[1]);
      return versions.length ? this.json(res, { versions }) : notFound();
    }
    m = /^\/flat\/([^/]+)\/([^/]+)\/([^/]+)\.nupkg$/.exec(url.pathname);
    if (m) {
      const nupkg = this.packages.get(`${m[1]}/${m[2]}`);
      return nupkg && m[3] === `${m[1]}.${m[2]}` ? serveFile(req, res, nupkg, this.fault) : notFound();
    }
    m = /^\/registration\/([^/]+)\/([^/]+)\.json$/.exec(url.pathname);
    if (m) {
      return this.packages.has(`${m[1]}/${m[2]}`) ? this.json(res, { catalogEntry: `${this.baseUrl}/catalog/${m[1]}.${m[2]}.json` }) : notFound();
    }
    m = /^\/catalog\/(.+)\.(\d+\.\d+\.\d+)\.json$/.exec(url.pathname);
    if (m) {
      const nupkg = this.packages.get(`${m[1]}/${m[2]}`);
      if (!nupkg) return notFound();
      const hash = createHash('sha512').update(nupkg).digest('base64');
      return this.json(res, { '@type': ['PackageDetails'], id: m[1], version: m[2], packageSize: nupkg.length, ...(this.omitHash ? {} : { packageHash: hash, packageHashAlgorithm: 'SHA512' }) });
    }
    notFound();
  }
}
