/**
 * What a frame's body is: a JSON-RPC 2.0 message the connection may handle, or the error reply it is owed
 * (JSON-RPC 2.0 §5.1: -32700 for a body that is not JSON, -32600 for JSON that is not a valid message, here
 * also -32602 for positional params, which no method of common/protocol.ts takes), or nothing at all: a
 * broken notification or response gets no reply, since neither may be answered. vscode-jsonrpc drops every
 * such message without a word and hands positional params to handlers as separate arguments, so they are
 * checked here, before the connection sees them. The engine sends no requests, so a response is never
 * awaited; a malformed one is still answered, since the answer is itself a valid response and cannot start
 * a loop. Replies never repeat the body: it may hold a secret.
 */
import { ErrorCodes, type Message, type ResponseMessage } from 'vscode-jsonrpc';

export type IncomingMessage =
  | { kind: 'message'; message: Message }
  | { kind: 'reply'; reply: ResponseMessage; reason: string }
  | { kind: 'ignore'; reason: string };

const REQUEST_MEMBERS = new Set(['jsonrpc', 'id', 'method', 'params']);
const RESPONSE_MEMBERS = new Set(['jsonrpc', 'id', 'result', 'error']);
const CANCEL_METHOD = '$/cancelRequest';
const utf8 = new TextDecoder('utf-8', { fatal: true });

type Id = string | number | null;

function isId(value: unknown): value is string | number {
  return typeof value === 'string' || (typeof value === 'number' && Number.isFinite(value));
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function errorReply(id: Id, code: number, message: string): IncomingMessage {
  return { kind: 'reply', reply: { jsonrpc: '2.0', id, error: { code, message } }, reason: message };
}

/** Classifies one frame's body. */
export function classifyBody(body: Uint8Array): IncomingMessage {
  let text: string;
  try {
    text = utf8.decode(body);
  } catch {
    return errorReply(null, ErrorCodes.ParseError, 'Parse error: the message body is not valid UTF-8.');
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    // JSON.parse's message may quote the body; only the position is kept.
    const at = /at position (\d+)/.exec((error as Error).message)?.[1];
    return errorReply(null, ErrorCodes.ParseError, `Parse error: the message body is not valid JSON${at === undefined ? '' : ` (at position ${at})`}.`);
  }
  return classifyValue(value);
}

/** Classifies a parsed JSON value. */
export function classifyValue(value: unknown): IncomingMessage {
  if (Array.isArray(value)) {
    return errorReply(null, ErrorCodes.InvalidRequest, `Invalid Request: ${value.length ? 'batches are not supported; send one message per frame' : 'an empty batch'}.`);
  }
  if (!isObject(value)) {
    return errorReply(null, ErrorCodes.InvalidRequest, `Invalid Request: a message must be a JSON object, not ${value === null ? 'null' : typeof value}.`);
  }
  const id: Id = isId(value.id) ? value.id : null;
  const invalid = (why: string) => errorReply(id, ErrorCodes.InvalidRequest, `Invalid Request: ${why}.`);
  if (value.jsonrpc !== '2.0') return invalid('"jsonrpc" must be "2.0"');
  if (!('method' in value)) return classifyResponse(value, id);

  const unknown = Object.keys(value).find((key) => !REQUEST_MEMBERS.has(key));
  if (unknown !== undefined) return invalid(`unknown member ${JSON.stringify(unknown.slice(0, 40))}`);
  if (typeof value.method !== 'string' || value.method === '') return invalid('"method" must be a non-empty string');
  if ('id' in value && !isId(value.id)) return invalid('"id" must be a string or a number');
  const isRequest = 'id' in value;
  if ('params' in value && typeof value.params !== 'object') return invalid('"params" must be an object when present');
  if (value.params === null) return invalid('"params" must be an object when present');
  if (Array.isArray(value.params)) {
    const why = `params of ${value.method} must be an object of named fields, not an array`;
    return isRequest ? errorReply(id, ErrorCodes.InvalidParams, `Invalid params: ${why}.`) : { kind: 'ignore', reason: why };
  }
  if (!isRequest && value.method === CANCEL_METHOD && !(isObject(value.params) && isId(value.params.id))) {
    return { kind: 'ignore', reason: `${CANCEL_METHOD} without a request id in its params` };
  }
  return { kind: 'message', message: value as unknown as Message };
}

function classifyResponse(value: Record<string, unknown>, id: Id): IncomingMessage {
  const unknown = Object.keys(value).find((key) => !RESPONSE_MEMBERS.has(key));
  const error = value.error;
  const problem =
    unknown !== undefined
      ? `unknown member ${JSON.stringify(unknown.slice(0, 40))}`
      : !('id' in value) || !(isId(value.id) || value.id === null)
        ? 'no valid "id"'
        : ('result' in value) === ('error' in value)
          ? 'neither or both of "result" and "error"'
          : 'error' in value && !(isObject(error) && Number.isInteger(error.code) && typeof error.message === 'string')
            ? '"error" without an integer code and a message'
            : undefined;
  if (problem !== undefined) return errorReply(id, ErrorCodes.InvalidRequest, `Invalid Request: no "method", and not a response: ${problem}.`);
  return { kind: 'message', message: value as unknown as Message };
}
