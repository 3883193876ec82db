/**
 * Seeded malformed input for the engine's stdin, each case with what the engine owes it: broken frames (the
 * engine must log a protocol fault and exit with code 1), bodies that are not JSON (-32700), JSON that is not a
 * valid request (-32600), positional or prototype-named params (-32602), unknown methods (-32601), and broken
 * notifications (no reply). After every case the caller sends a valid request (the probe), which must be
 * answered unless the case ends the engine. Used by the fuzz tests (test/engine/protocolFuzz.test.ts) and the
 * soak (test/reliability/soak.ts).
 */
import { seededRandom } from '../../engine/prepare/sourceTexts';

export type Expectation =
  /** An error reply with this code and id, then the probe is answered. */
  | { outcome: 'reply'; code: number; id: string | number | null }
  /** No reply at all, then the probe is answered. */
  | { outcome: 'silent' }
  /** The engine logs a protocol fault and exits with code 1 (an error reply may come first). */
  | { outcome: 'fault' }
  /** Random bytes: either of the above. */
  | { outcome: 'answered-or-fault' };

export interface FaultCase {
  /** What kind of damage, for reports. */
  kind: string;
  bytes: Buffer;
  expect: Expectation;
}

export const PARSE_ERROR = -32700;
export const INVALID_REQUEST = -32600;
export const METHOD_NOT_FOUND = -32601;
export const INVALID_PARAMS = -32602;

/** One frame as vscode-jsonrpc writes it. */
export function frame(body: string | Buffer, header?: string): Buffer {
  const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  return Buffer.concat([Buffer.from(header ?? `Content-Length: ${bytes.length}\r\n\r\n`, 'latin1'), bytes]);
}

/** The valid request sent after each case; the engine answers it without a model. */
export function probe(id: string): Buffer {
  return frame(JSON.stringify({ jsonrpc: '2.0', id, method: 'dlm/status' }));
}

const INFILL_PARAMS = { modelId: 'model#1', prefix: 'def add(a, b):\n    ', suffix: '\n', length: 8 };

type Random = () => number;

class Draw {
  constructor(private readonly random: Random) {}
  int(min: number, max: number): number {
    return min + Math.floor(this.random() * (max - min + 1));
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(0, items.length - 1)];
  }
  bytes(length: number): Buffer {
    return Buffer.from(Array.from({ length }, () => this.int(0, 255)));
  }
  id(n: number): string | number {
    return this.random() < 0.5 ? n : `case-${n}`;
  }
}

/** A valid message of a random kind, as text. */
function validMessage(draw: Draw, id: string | number): string {
  return draw.pick([
    () => JSON.stringify({ jsonrpc: '2.0', id, method: 'dlm/status' }),
    () => JSON.stringify({ jsonrpc: '2.0', id, method: 'dlm/infill', params: INFILL_PARAMS }),
    () => JSON.stringify({ jsonrpc: '2.0', id, method: 'dlm/loadModel', params: { model: '/nonexistent/model', device: 'cpu' } }),
    () => JSON.stringify({ jsonrpc: '2.0', method: '$/cancelRequest', params: { id } }),
  ])();
}

const isJson = (text: string) => {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
};

/** Framing faults: the engine must exit with a protocol fault. */
const FRAMING: Record<string, (draw: Draw, n: number) => Buffer> = {
  'Content-Length too large': (draw, n) => {
    const body = Buffer.from(validMessage(draw, draw.id(n)));
    return frame(body, `Content-Length: ${body.length + draw.int(1, 40)}\r\n\r\n`);
  },
  'Content-Length too small': (draw, n) => {
    const body = Buffer.from(validMessage(draw, draw.id(n)));
    return frame(body, `Content-Length: ${body.length - draw.int(1, body.length - 1)}\r\n\r\n`);
  },
  'Content-Length far too large': (draw, n) => frame(validMessage(draw, draw.id(n)), `Content-Length: ${draw.int(10_000, 60_000_000)}\r\n\r\n`),
  'Content-Length above the limit': (draw, n) => frame(validMessage(draw, draw.id(n)), `Content-Length: ${draw.int(70_000_000, 2 ** 40)}\r\n\r\n`),
  'Content-Length not a number': (draw, n) => {
    const body = validMessage(draw, draw.id(n));
    const value = draw.pick(['-5', `-${body.length}`, 'abc', '', '4 6', '1e2', '0x2e', `+${body.length}`, `${body.length}.0`, 'NaN', '12345678901234567']);
    return frame(body, `Content-Length: ${value}\r\n\r\n`);
  },
  'Content-Length missing': (draw, n) =>
    frame(validMessage(draw, draw.id(n)), draw.pick(['Content-Type: application/vscode-jsonrpc; charset=utf-8\r\n\r\n', 'X-Length: 10\r\n\r\n', ''])),
  'Content-Length twice': (draw, n) => {
    const body = validMessage(draw, draw.id(n));
    const second = draw.pick([body.length, body.length + 1]);
    return frame(body, `Content-Length: ${body.length}\r\nContent-Length: ${second}\r\n\r\n`);
  },
  'LF-only line ends': (draw, n) => {
    const body = validMessage(draw, draw.id(n));
    return frame(body, draw.pick([`Content-Length: ${body.length}\n\n`, `Content-Length: ${body.length}\r\n\n`, `Content-Length: ${body.length}\n\r\n`]));
  },
  'CR without LF': (draw, n) => {
    const body = validMessage(draw, draw.id(n));
    return frame(body, `Content-Length: ${body.length}\r\r\n\r\n`);
  },
  'byte order mark': (draw, n) => Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), frame(validMessage(draw, draw.id(n)))]),
  'header name with a space': (draw, n) => {
    const body = validMessage(draw, draw.id(n));
    return frame(body, `Content-Length : ${body.length}\r\n\r\n`);
  },
  'header line without colon': (draw, n) => {
    const body = validMessage(draw, draw.id(n));
    return frame(body, `Content-Length: ${body.length}\r\nGarbage\r\n\r\n`);
  },
  'header block too long': (draw, n) => {
    const body = validMessage(draw, draw.id(n));
    return frame(body, `X-Padding: ${'a'.repeat(draw.int(4100, 9000))}\r\nContent-Length: ${body.length}\r\n\r\n`);
  },
  'unsupported charset': (draw, n) => {
    const body = validMessage(draw, draw.id(n));
    return frame(body, `Content-Length: ${body.length}\r\nContent-Type: application/vscode-jsonrpc; charset=${draw.pick(['utf-16', 'latin1', 'ascii'])}\r\n\r\n`);
  },
  'message cut short': (draw, n) => frame(validMessage(draw, draw.id(n))).subarray(0, draw.int(25, 40)),
  'body without a header': (draw, n) => Buffer.from(validMessage(draw, draw.id(n))),
};

/** Correctly framed bodies that are not valid JSON: -32700 with id null. */
function invalidJson(draw: Draw, n: number): Buffer {
  for (;;) {
    const text = validMessage(draw, draw.id(n));
    const at = draw.int(0, text.length - 1);
    const mutated = draw.pick([
      () => text.slice(0, at),
      () => text.slice(0, at) + draw.pick(['{', '}', ',', ':', '"', '\\', "'", 'x', ']', 'NaN', '\u0000', '\n"']) + text.slice(at),
      () => text.slice(0, at) + text.slice(at + 1),
      () => `${text}${draw.pick(['}', ' x', ',', '{}', 'null'])}`,
      () => text.replace(/"/g, "'"),
      () => draw.pick(['', ' ', '\r\n', 'undefined', 'NaN', "{'a':1}", '{"a":}', '[1,]', '{"a" 1}', '"unterminated']),
    ])();
    if (!isJson(mutated)) return frame(mutated);
  }
}

/** Bodies that are not UTF-8: -32700. */
function invalidUtf8(draw: Draw): Buffer {
  const bad = draw.pick([[0xff], [0xc3, 0x28], [0xe2, 0x82], [0xf0, 0x28, 0x8c, 0xbc], [0xed, 0xa0, 0x80]]);
  return frame(Buffer.concat([Buffer.from('{"jsonrpc":"2.0","id":1,"method":"'), Buffer.from(bad), Buffer.from('"}')]));
}

/** JSON that is not a valid request: -32600, with the id when it was a valid one. */
function invalidRequest(draw: Draw, n: number): FaultCase {
  const id = draw.id(n);
  const base = { jsonrpc: '2.0', id, method: 'dlm/status' } as Record<string, unknown>;
  const cases: [unknown, string | number | null][] = [
    [null, null],
    [draw.int(-5, 1e6), null],
    ['dlm/status', null],
    [true, null],
    [[], null],
    [[base], null],
    [[base, base], null],
    [{}, null],
    [{ ...base, jsonrpc: '1.0' }, id],
    [{ id, method: 'dlm/status' }, id],
    [{ ...base, method: draw.pick([5, null, {}, [], '', true]) }, id],
    [{ ...base, id: draw.pick([{}, [], true, { id: 1 }]) }, null],
    [{ ...base, id: null }, null],
    [{ ...base, params: draw.pick(['text', 5, true, null]) }, id],
    [{ ...base, [draw.pick(['extra', 'result', 'error', 'constructor', 'toString'])]: 1 }, id],
    [{ jsonrpc: '2.0', id }, id],
    [{ jsonrpc: '2.0', id, result: 1, error: { code: 1, message: 'x' } }, id],
    [{ jsonrpc: '2.0', id, error: { code: 'x' } }, id],
  ];
  const [value, replyId] = draw.pick(cases);
  return { kind: 'not a JSON-RPC request', bytes: frame(JSON.stringify(value)), expect: { outcome: 'reply', code: INVALID_REQUEST, id: replyId } };
}

/** `__proto__` written as a member (JSON.stringify cannot write it as an own key). */
function protoMember(draw: Draw, n: number): FaultCase {
  const id = draw.id(n);
  const where = draw.pick(['message', 'params', 'options']);
  const proto = '"__proto__":{"polluted":true}';
  const params = JSON.stringify(INFILL_PARAMS).slice(1, -1);
  const body =
    where === 'message'
      ? `{"jsonrpc":"2.0","id":${JSON.stringify(id)},"method":"dlm/status",${proto}}`
      : where === 'params'
        ? `{"jsonrpc":"2.0","id":${JSON.stringify(id)},"method":"dlm/infill","params":{${params},${proto}}}`
        : `{"jsonrpc":"2.0","id":${JSON.stringify(id)},"method":"dlm/infill","params":{${params},"options":{${proto}}}}`;
  return { kind: '__proto__ member', bytes: frame(body), expect: { outcome: 'reply', code: where === 'message' ? INVALID_REQUEST : INVALID_PARAMS, id } };
}

/** Requests whose params are wrong for their method: -32602. */
function invalidParams(draw: Draw, n: number): FaultCase {
  const id = draw.id(n);
  const method = draw.pick(['dlm/infill', 'dlm/loadModel', 'dlm/unloadModel']);
  const params = draw.pick<unknown>([
    [],
    [INFILL_PARAMS, 1],
    [1, 2],
    { ...INFILL_PARAMS, [draw.pick(['constructor', 'toString', 'hasOwnProperty', 'valueOf', 'colour'])]: { a: 1 } },
    { ...INFILL_PARAMS, length: draw.pick(['ten', -1, 0, 1.5, null, 1e300]) },
    { ...INFILL_PARAMS, options: draw.pick<unknown>([{ constructor: 1 }, { steps: 'x' }, { cache: 'everything' }, [], 'x']) },
    { model: draw.pick([5, null, ['a']]), device: 'cpu' },
    {},
  ]);
  return { kind: 'invalid params', bytes: frame(JSON.stringify({ jsonrpc: '2.0', id, method, params })), expect: { outcome: 'reply', code: INVALID_PARAMS, id } };
}

/** Notifications and responses that are malformed or unknown: nothing to answer. */
function silent(draw: Draw, n: number): FaultCase {
  const body = draw.pick<unknown>([
    { jsonrpc: '2.0', method: '$/cancelRequest' },
    { jsonrpc: '2.0', method: '$/cancelRequest', params: draw.pick([{}, { id: null }, { id: {} }, [n]]) },
    { jsonrpc: '2.0', method: '$/cancelRequest', params: { id: `never-sent-${n}` } },
    { jsonrpc: '2.0', method: 'dlm/unknownNotification', params: { n } },
    { jsonrpc: '2.0', method: 'dlm/infill', params: [INFILL_PARAMS] },
    { jsonrpc: '2.0', id: n, result: null },
    { jsonrpc: '2.0', id: null, error: { code: -1, message: 'x' } },
  ]);
  return { kind: 'notification or response', bytes: frame(JSON.stringify(body)), expect: { outcome: 'silent' } };
}

function unknownMethod(draw: Draw, n: number): FaultCase {
  const id = draw.id(n);
  const method = draw.pick(['dlm/nothing', 'rpc.discover', 'status', 'dlm/STATUS', `x${n}`]);
  return { kind: 'unknown method', bytes: frame(JSON.stringify({ jsonrpc: '2.0', id, method })), expect: { outcome: 'reply', code: METHOD_NOT_FOUND, id } };
}

export const FRAMING_KINDS = Object.keys(FRAMING);

/** A framing fault of a random kind (or the named one). */
export function framingFault(seed: number, n: number, kind = FRAMING_KINDS[n % FRAMING_KINDS.length]): FaultCase {
  const draw = new Draw(seededRandom(seed * 1_000_003 + n));
  return { kind, bytes: FRAMING[kind](draw, n), expect: { outcome: 'fault' } };
}

/** Random bytes: answered or a fault, never a deaf engine. */
export function randomBytes(seed: number, n: number): FaultCase {
  const draw = new Draw(seededRandom(seed * 1_000_003 + n));
  return { kind: 'random bytes', bytes: draw.bytes(draw.int(1, 300)), expect: { outcome: 'answered-or-fault' } };
}

/** A well-framed message the engine must answer (or pass over) and keep serving. */
export function messageFault(seed: number, n: number): FaultCase {
  const draw = new Draw(seededRandom(seed * 1_000_003 + n));
  switch (n % 8) {
    case 0:
    case 1:
      return { kind: 'invalid JSON', bytes: invalidJson(draw, n), expect: { outcome: 'reply', code: PARSE_ERROR, id: null } };
    case 2:
      return { kind: 'invalid UTF-8', bytes: invalidUtf8(draw), expect: { outcome: 'reply', code: PARSE_ERROR, id: null } };
    case 3:
      return invalidRequest(draw, n);
    case 4:
      return invalidParams(draw, n);
    case 5:
      return protoMember(draw, n);
    case 6:
      return silent(draw, n);
    default:
      return unknownMethod(draw, n);
  }
}
