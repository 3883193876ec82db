/**
 * What can go wrong when a server fills a hole, as kinds a caller can act on (ask for a key, fix a setting,
 * wait and try again) with a message that says what happened and what to do, in the words the user sees in the
 * status bar and the output channel.
 */

export type ServerErrorKind =
  /** dlm.server.url is missing, malformed, or plain HTTP to another machine without permission. */
  | 'badUrl'
  /** No connection: refused, unknown host, TLS failure, reset before an answer. */
  | 'unreachable'
  /** No answer, or no event of the stream, within the timeout. */
  | 'timeout'
  /** HTTP 401/403: no key, or the key is not accepted. */
  | 'unauthorized'
  /** The server does not serve the model asked for (HTTP 404 naming the model, or not in /v1/models). */
  | 'modelNotFound'
  /** The server serves several models and none is chosen. */
  | 'modelNotChosen'
  /** No template is known for the model, and none is set. */
  | 'noTemplate'
  /** HTTP 404 for the route itself: the wrong API or URL. */
  | 'routeNotFound'
  /** A redirect: not followed, so the key never goes to another address. */
  | 'redirected'
  /** HTTP 429. */
  | 'rateLimited'
  /** HTTP 5xx, or an error event in the stream. */
  | 'serverError'
  /** HTTP 400/422: the server refused the request (e.g. the prompt is longer than the model takes). */
  | 'rejected'
  /** The connection closed before the stream's end. */
  | 'droppedStream'
  /** An event that is not the API's JSON. */
  | 'malformedEvent'
  /** The caller cancelled the request. */
  | 'cancelled';

/** Kinds that may pass by themselves: worth another try later (the server was busy, restarting or slow). */
const TRANSIENT: ReadonlySet<ServerErrorKind> = new Set(['unreachable', 'timeout', 'rateLimited', 'serverError', 'droppedStream']);

export class ServerError extends Error {
  override name = 'ServerError';

  constructor(
    readonly kind: ServerErrorKind,
    message: string,
    /** The HTTP status, when the server answered with one. */
    readonly status?: number,
    /** Seconds the server asked to wait (Retry-After), for 429 and 503. */
    readonly retryAfterSeconds?: number,
    /** The socket's error code (ECONNREFUSED, ...) when no connection was had. */
    readonly connectionCode?: string,
  ) {
    super(message);
  }

  get transient(): boolean {
    return TRANSIENT.has(this.kind);
  }
}

/** The message in an error body of vLLM or SGLang (`{"error": {"message"}}`, `{"message"}`, `{"error": "..."}`, `{"detail"}`). */
export function errorBodyMessage(body: string): string | undefined {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    const text = body.trim();
    return text === '' ? undefined : text.slice(0, 300);
  }
  if (typeof json !== 'object' || json === null) return undefined;
  const record = json as Record<string, unknown>;
  const error = record.error;
  if (typeof error === 'string') return error;
  if (typeof error === 'object' && error !== null && typeof (error as Record<string, unknown>).message === 'string') {
    return (error as Record<string, unknown>).message as string;
  }
  if (typeof record.message === 'string') return record.message;
  if (typeof record.detail === 'string') return record.detail;
  return undefined;
}
