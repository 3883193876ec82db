/**
 * One HTTP exchange with the inference server (Node's http/https, so the editor's proxy settings apply inside
 * VS Code): the API key only in this request's Authorization header, redirects never followed (the key must not
 * reach another address), a timeout on silence (no answer, or nothing more of the body, for `timeoutMs`), and
 * cancellation that closes the connection, which is how vLLM and SGLang learn to stop generating.
 */
import * as http from 'node:http';
import * as https from 'node:https';
import { ServerError, errorBodyMessage } from './serverErrors';
import type { ServerEndpoint } from './serverUrl';

export interface HttpExchange {
  endpoint: ServerEndpoint;
  method: 'GET' | 'POST';
  /** The route below the endpoint's base path, e.g. `/v1/models`. */
  route: string;
  body?: unknown;
  apiKey?: string;
  /** Longest silence allowed: before the answer's headers, and between pieces of its body. */
  timeoutMs: number;
  signal?: AbortSignal;
}

export interface HttpAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** The body, as UTF-8 text (multi-byte characters split across packets are joined). */
  body: http.IncomingMessage;
  /** Closes the connection (the server sees the client go). */
  close(): void;
  /** Why we closed the connection (a timeout or a cancellation), once we did. */
  readonly closedBy: ServerError | undefined;
}

const USER_AGENT = 'dlm-complete';
/** Error bodies are read up to this size; the message is at their start. */
const ERROR_BODY_LIMIT = 64 * 1024;

/** Sends the request; resolves when the answer's headers arrive. Failures are ServerErrors. */
export function exchange(request: HttpExchange): Promise<HttpAnswer> {
  const { endpoint, signal } = request;
  const payload = request.body === undefined ? undefined : Buffer.from(JSON.stringify(request.body));
  const headers: http.OutgoingHttpHeaders = { accept: 'application/json, text/event-stream', 'user-agent': USER_AGENT };
  if (payload) {
    headers['content-type'] = 'application/json';
    headers['content-length'] = payload.length;
  }
  if (request.apiKey) headers.authorization = `Bearer ${request.apiKey}`;
  const transport = endpoint.protocol === 'https:' ? https : http;
  const where = `${endpoint.protocol}//${endpoint.label}`;

  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(new ServerError('cancelled', 'The request was cancelled.'));
      return;
    }
    let settled = false;
    let closedBy: ServerError | undefined;
    const fail = (error: ServerError) => {
      closedBy ??= error;
      if (!settled) {
        settled = true;
        reject(error);
      }
      req.destroy();
    };
    const req = transport.request({
      protocol: endpoint.protocol,
      hostname: endpoint.hostname,
      port: endpoint.port,
      method: request.method,
      path: `${endpoint.basePath}${request.route}`,
      headers,
    });
    const onAbort = () => fail(new ServerError('cancelled', 'The request was cancelled.'));
    signal?.addEventListener('abort', onAbort, { once: true });
    req.once('close', () => signal?.removeEventListener('abort', onAbort));
    req.setTimeout(request.timeoutMs, () =>
      fail(new ServerError('timeout', `${where} did not answer within ${seconds(request.timeoutMs)} (dlm.server.timeoutMs).`)),
    );
    req.on('error', (error: NodeJS.ErrnoException) => {
      if (!settled) fail(networkError(error, where));
    });
    req.once('response', (body) => {
      body.setEncoding('utf8');
      settled = true;
      resolve({
        status: body.statusCode ?? 0,
        headers: body.headers,
        body,
        close: () => req.destroy(),
        get closedBy() {
          return closedBy;
        },
      });
    });
    req.end(payload);
  });
}

/** The whole body of an answer (capped at `limit` characters; the rest is discarded). */
export function readText(answer: HttpAnswer, limit = ERROR_BODY_LIMIT): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    let ended = false;
    answer.body.on('data', (chunk: string) => {
      if (text.length < limit) text += chunk.slice(0, limit - text.length);
    });
    answer.body.once('end', () => {
      ended = true;
      resolve(text);
    });
    const broken = () => {
      if (!ended) reject(answer.closedBy ?? droppedConnection());
    };
    answer.body.once('error', broken);
    answer.body.once('close', broken);
  });
}

/** The connection closed before the answer ended (the server went away, or a proxy cut it). */
export function droppedConnection(): ServerError {
  return new ServerError('droppedStream', 'The server closed the connection before its answer ended.');
}

/** The JSON body of a 200 answer to a GET, or the ServerError its status means. */
export async function readJson(answer: HttpAnswer, what: string): Promise<unknown> {
  const text = await readText(answer, 16 * ERROR_BODY_LIMIT);
  if (answer.status !== 200) throw statusError(answer, text, what);
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new ServerError('malformedEvent', `${what} is not JSON: ${excerpt(text)}`);
  }
}

/**
 * The ServerError an HTTP status (not 200) means, with the server's own message. 404 is reported as a missing
 * route here; a caller that knows the 404 names its model says so itself.
 */
export function statusError(answer: HttpAnswer, body: string, what: string): ServerError {
  const status = answer.status;
  const said = errorBodyMessage(body);
  const detail = `HTTP ${status}${said ? `: ${said}` : ''}`;
  const retryAfter = retryAfterSeconds(answer.headers['retry-after']);
  if (status === 401 || status === 403) {
    return new ServerError('unauthorized', `The server refused ${what} (${detail}): set its API key with DLM: Set Server API Key.`, status);
  }
  if (status === 404) {
    return new ServerError(
      'routeNotFound',
      `The server has no route for ${what} (${detail}): check dlm.server.api (openai serves /v1/completions, sglang /generate) and dlm.server.url.`,
      status,
    );
  }
  if (status >= 300 && status < 400) {
    return new ServerError(
      'redirected',
      `The server redirects ${what} to ${answer.headers.location ?? 'another address'} (HTTP ${status}); set dlm.server.url to the address it ` +
        'redirects to (redirects are not followed, so the API key never goes elsewhere).',
      status,
    );
  }
  if (status === 429) return new ServerError('rateLimited', `The server is busy (${detail}).`, status, retryAfter);
  if (status >= 500) return new ServerError('serverError', `The server failed on ${what} (${detail}).`, status, retryAfter);
  return new ServerError('rejected', `The server rejected ${what} (${detail}).`, status);
}

function networkError(error: NodeJS.ErrnoException, where: string): ServerError {
  const code = error.code ?? '';
  const reason =
    code === 'ECONNREFUSED'
      ? 'connection refused (is the server running, on this port?)'
      : code === 'ENOTFOUND' || code === 'EAI_AGAIN'
        ? 'unknown host'
        : code === 'ECONNRESET'
          ? 'the connection was reset'
          : /CERT|SSL|TLS/i.test(code) || /certificate/i.test(error.message)
            ? `TLS: ${error.message} (a private CA's certificate can be given to the editor with NODE_EXTRA_CA_CERTS)`
            : error.message;
  const said = `Cannot reach ${where}: ${reason}${code && !reason.includes(code) ? ` (${code})` : ''}.`;
  return new ServerError('unreachable', said, undefined, undefined, code || undefined);
}

function retryAfterSeconds(header: string | string[] | undefined): number | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  if (value === undefined) return undefined;
  const secondsValue = Number(value);
  if (Number.isFinite(secondsValue) && secondsValue >= 0) return secondsValue;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, (date - Date.now()) / 1000);
}

export function excerpt(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return JSON.stringify(flat.length > 120 ? `${flat.slice(0, 117)}...` : flat);
}

function seconds(ms: number): string {
  return `${Math.round(ms / 100) / 10} s`;
}
