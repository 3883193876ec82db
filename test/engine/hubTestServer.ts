/**
 * A stand-in for the Hugging Face hub on 127.0.0.1, serving `/<owner>/<name>/resolve/<revision>/<file>` the
 * way the hub does: small files directly with Content-Length, LFS files (weights) with `X-Linked-Size` and
 * `X-Linked-Etag` (their sha256) and a 302 to a CDN route that honours Range requests. Faults on demand:
 * cut a connection mid-file, serve bytes that do not match the announced hash, ignore Range, require a token,
 * announce a size other than the real one, send slowly.
 */
import { createHash } from 'node:crypto';
import * as http from 'node:http';
import { closeServer, listenOnLoopback } from '../common/loopbackServer';

export interface ServedRepo {
  files: Map<string, Buffer>;
  /** Files served as LFS objects (size + sha256 announced, redirected to the CDN route). */
  lfs: Set<string>;
  /** When set, requests need `Authorization: Bearer <token>`. */
  token?: string;
}

export interface Fault {
  /** Close the connection after this many body bytes, for the next `times` GETs of the file. */
  cutAfter?: { bytes: number; times: number };
  /** Serve these bytes instead of the real content (the announced size and hash stay the real ones). */
  corruptWith?: Buffer;
  /** Answer Range requests with the whole file (200). */
  ignoreRange?: boolean;
  /** Announce this size (X-Linked-Size) for an LFS file instead of the real one. */
  announceSize?: number;
  /** Send the body at about this many bytes per second, in small chunks (a slow network). */
  bytesPerSecond?: number;
}

export interface LoggedRequest {
  method: string;
  path: string;
  range?: string;
  authorization?: string;
}

export class HubTestServer {
  readonly repos = new Map<string, ServedRepo>();
  readonly faults = new Map<string, Fault>();
  readonly log: LoggedRequest[] = [];
  private server?: http.Server;
  baseUrl = '';

  addRepo(repo: string, files: Record<string, Buffer | string>, lfs: string[] = [], token?: string): void {
    const map = new Map(Object.entries(files).map(([k, v]) => [k, Buffer.isBuffer(v) ? v : Buffer.from(v)]));
    this.repos.set(repo, { files: map, lfs: new Set(lfs), token });
  }

  async start(): Promise<void> {
    ({ server: this.server, baseUrl: this.baseUrl } = await listenOnLoopback((req, res) => this.handle(req, res)));
  }

  async stop(): Promise<void> {
    await closeServer(this.server);
  }

  requests(filter: (r: LoggedRequest) => boolean = () => true): LoggedRequest[] {
    return this.log.filter(filter);
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', this.baseUrl);
    this.log.push({ method: req.method ?? '', path: url.pathname, range: req.headers.range, authorization: req.headers.authorization });
    const cdn = /^\/cdn\/([^/]+\/[^/]+)\/(.+)$/.exec(url.pathname);
    if (cdn) return this.serveBody(req, res, cdn[1], decodeURIComponent(cdn[2]));
    const resolve = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(url.pathname);
    const repo = resolve ? this.repos.get(resolve[1]) : undefined;
    if (!resolve || !repo) return this.error(res, 404, 'Repository not found');
    if (repo.token && req.headers.authorization !== `Bearer ${repo.token}`) {
      // The hub: 401 without credentials, 403 with a token that has no access.
      return this.error(res, req.headers.authorization ? 403 : 401, 'Access to this model is restricted');
    }
    const name = decodeURIComponent(resolve[3]);
    const content = repo.files.get(name);
    if (!content) return this.error(res, 404, 'Entry not found');
    if (repo.lfs.has(name)) {
      const sha = createHash('sha256').update(content).digest('hex');
      res.writeHead(302, {
        location: `/cdn/${resolve[1]}/${encodeURIComponent(name)}`,
        'x-linked-size': String(this.faults.get(name)?.announceSize ?? content.length),
        'x-linked-etag': `"${sha}"`,
        etag: `"${sha}"`,
        'content-length': '0',
      });
      return void res.end();
    }
    return this.serveBody(req, res, resolve[1], name);
  }

  private serveBody(req: http.IncomingMessage, res: http.ServerResponse, repoName: string, name: string): void {
    const repo = this.repos.get(repoName);
    const real = repo?.files.get(name);
    if (!real) return this.error(res, 404, 'Entry not found');
    serveFile(req, res, real, this.faults.get(name) ?? {});
  }

  private error(res: http.ServerResponse, status: number, message: string): void {
    res.writeHead(status, { 'content-type': 'text/plain', 'x-error-message': message });
    res.end(message);
  }
}

/**
 * Serves `real` as a download server does: Range requests answered with 206 (416 beyond the end), HEAD without
 * a body; and `fault` applied (corrupt bytes, an ignored Range, a cut connection, a slow send).
 */
export function serveFile(req: http.IncomingMessage, res: http.ServerResponse, real: Buffer, fault: Fault): void {
  const content = fault.corruptWith ?? real;
  const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
  let start = 0;
  if (range && !fault.ignoreRange) {
    start = Number(range[1]);
    if (start >= content.length) {
      res.writeHead(416, { 'content-range': `bytes */${content.length}` });
      return void res.end();
    }
    res.writeHead(206, { 'content-length': String(content.length - start), 'content-range': `bytes ${start}-${content.length - 1}/${content.length}` });
  } else {
    res.writeHead(200, { 'content-length': String(content.length) });
  }
  if (req.method === 'HEAD') return void res.end();
  const body = content.subarray(start);
  const cut = fault.cutAfter;
  if (cut && cut.times > 0) {
    cut.times--;
    // Send part of the body, then drop the connection as a network failure would.
    res.write(body.subarray(0, cut.bytes), () => setTimeout(() => res.socket?.destroy(), 20));
    return;
  }
  if (fault.bytesPerSecond) return sendSlowly(res, body, fault.bytesPerSecond);
  res.end(body);
}

/** Chunks of 16 KiB spaced to the rate; stops when the client goes away. */
function sendSlowly(res: http.ServerResponse, body: Buffer, bytesPerSecond: number): void {
  const chunk = 16 * 1024;
  let offset = 0;
  const next = () => {
    if (res.destroyed) return;
    if (offset >= body.length) return void res.end();
    const piece = body.subarray(offset, offset + chunk);
    offset += piece.length;
    res.write(piece);
    setTimeout(next, (piece.length / bytesPerSecond) * 1000);
  };
  next();
}
