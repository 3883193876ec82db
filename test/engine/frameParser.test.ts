/**
 * The engine's strict framing (engine/server/frameParser.ts) and message checks (incomingMessage.ts), in
 * process: each broken frame is a fault the moment its bytes show it, whatever the chunking; every body that is
 * not a valid request gets the JSON-RPC error it is owed. The same seeded cases drive the real-process fuzzer
 * (protocolFuzz.test.ts); here many more of them run in little time.
 */
import assert from 'node:assert/strict';
import { FrameParser, MAX_HEADER_BYTES, type FrameEvent } from '../../engine/server/frameParser';
import { classifyBody } from '../../engine/server/incomingMessage';
import { FRAMING_KINDS, frame, framingFault, messageFault, probe, randomBytes, type FaultCase } from '../reliability/protocolFaults';

const STATUS = '{"jsonrpc":"2.0","id":1,"method":"dlm/status"}';

function parseAll(bytes: Buffer, chunk = bytes.length): FrameEvent[] {
  const parser = new FrameParser();
  const events: FrameEvent[] = [];
  for (let at = 0; at < bytes.length; at += chunk) events.push(...parser.push(bytes.subarray(at, at + chunk)));
  return events;
}

const faultOf = (events: FrameEvent[]) => events.find((e) => e.kind === 'fault')?.reason;

/** What the engine does with a case followed by the probe: the fault, or the classified frames. */
function outcome(c: FaultCase, probeId: string) {
  const events = parseAll(Buffer.concat([c.bytes, probe(probeId)]));
  const fault = faultOf(events);
  const messages = events.flatMap((e) => (e.kind === 'frame' ? [classifyBody(e.body)] : []));
  const probeAnswered = messages.some((m) => m.kind === 'message' && 'id' in m.message && m.message.id === probeId);
  return { fault, messages, probeAnswered };
}

describe('frame parser (strict Content-Length framing)', () => {
  it('reads frames whatever the chunking, down to one byte at a time', () => {
    const stream = Buffer.concat([frame(STATUS), frame('{"jsonrpc":"2.0","method":"x","params":{"text":"é ✓ 𝄞"}}'), frame(STATUS)]);
    for (const chunk of [1, 2, 3, 7, 64, stream.length]) {
      const events = parseAll(stream, chunk);
      assert.deepEqual(
        events.map((e) => (e.kind === 'frame' ? e.body.toString() : e.reason)),
        [STATUS, '{"jsonrpc":"2.0","method":"x","params":{"text":"é ✓ 𝄞"}}', STATUS],
        `chunks of ${chunk} bytes`,
      );
    }
  });

  it('accepts a Content-Type with a UTF-8 charset, header names in any case, and spaces around the value', () => {
    const body = Buffer.from(STATUS);
    const events = parseAll(frame(body, `content-length:  ${body.length} \r\nContent-Type: application/vscode-jsonrpc; charset=UTF-8\r\n\r\n`));
    assert.deepEqual(events, [{ kind: 'frame', body }]);
  });

  it('names the fault in each broken frame of the issue, at the byte that shows it', () => {
    const body = Buffer.from(STATUS);
    const expectations: [string, Buffer, RegExp][] = [
      ['missing', frame(body, 'Content-Type: application/json\r\n\r\n'), /has no Content-Length/],
      ['negative', frame(body, 'Content-Length: -46\r\n\r\n'), /"-46" is not a byte count/],
      ['non-numeric', frame(body, 'Content-Length: forty\r\n\r\n'), /"forty" is not a byte count/],
      ['duplicated', frame(body, `Content-Length: ${body.length}\r\nContent-Length: ${body.length}\r\n\r\n`), /given twice/],
      ['LF-only', frame(body, `Content-Length: ${body.length}\n\n`), /ends with LF alone/],
      ['BOM', Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), frame(body)]), /byte 0xef at 0 .*byte order mark/],
      ['too large', frame(body, 'Content-Length: 99999999999\r\n\r\n'), /above the \d+-byte limit/],
      ['header too long', Buffer.from(`X: ${'a'.repeat(MAX_HEADER_BYTES)}`), /no end of the header block/],
    ];
    for (const [what, bytes, reason] of expectations) {
      const events = parseAll(bytes);
      assert.equal(events.length, 1, what);
      assert.match(faultOf(events) ?? '', reason, what);
    }
  });

  it('sees an off-by-one Content-Length from the bytes of the next frame, not by waiting', () => {
    const body = Buffer.from(STATUS);
    // One too many: the body takes the next frame's first byte, and the rest of that frame is no header.
    const tooLarge = parseAll(Buffer.concat([frame(body, `Content-Length: ${body.length + 1}\r\n\r\n`), frame(body)]));
    assert.equal(tooLarge[0].kind, 'frame');
    assert.match(faultOf(tooLarge) ?? '', /a header name holds|without ":"|no Content-Length/);
    // One too few: the last byte of the body starts the next header.
    const tooSmall = parseAll(Buffer.concat([frame(body, `Content-Length: ${body.length - 1}\r\n\r\n`), frame(body)]));
    assert.match(faultOf(tooSmall) ?? '', /a header name holds "}"/);
    // Far too large: the next frame's header is inside the body.
    const swallowed = parseAll(Buffer.concat([frame(body, 'Content-Length: 5000\r\n\r\n'), frame(body)]));
    assert.match(faultOf(swallowed) ?? '', /a header line began at byte 46 of a 5000-byte message body/);
  });

  it('takes nothing after a fault, and reports what is pending while a frame is unfinished', () => {
    const parser = new FrameParser();
    assert.deepEqual(parser.push(Buffer.from('Content-Length: 100\r\n\r\n{"a"')), []);
    assert.equal(parser.pendingBytes, 4);
    assert.equal(parser.expectedBodyBytes, 100);
    assert.equal(parser.push(Buffer.from('\nContent-Length: 3\r\n'))[0].kind, 'fault');
    assert.deepEqual(parser.push(frame(STATUS)), []);
    assert.match(parser.faultReason ?? '', /header line began/);
  });
});

describe('incoming message checks (JSON-RPC 2.0 errors owed)', () => {
  const reply = (body: string | Buffer) => {
    const result = classifyBody(Buffer.from(body));
    return result.kind === 'reply' ? [result.reply.id, result.reply.error!.code] : result.kind;
  };

  it('answers invalid JSON with -32700 and id null, without repeating the body', () => {
    assert.deepEqual(reply('{"jsonrpc":"2.0","id":1,'), [null, -32700]);
    assert.deepEqual(reply(Buffer.from([0x7b, 0xff, 0x7d])), [null, -32700]);
    const secret = classifyBody(Buffer.from('{"token":"hf_secret\r\n'));
    assert.equal(secret.kind, 'reply');
    assert.doesNotMatch(JSON.stringify(secret), /hf_secret/);
  });

  it('answers JSON that is no request with -32600, keeping a valid id', () => {
    assert.deepEqual(reply('null'), [null, -32600]);
    assert.deepEqual(reply('42'), [null, -32600]);
    assert.deepEqual(reply('[]'), [null, -32600]);
    assert.deepEqual(reply(`[${STATUS}]`), [null, -32600]);
    assert.deepEqual(reply('{}'), [null, -32600]);
    assert.deepEqual(reply('{"jsonrpc":"2.0","id":7,"method":5}'), [7, -32600]);
    assert.deepEqual(reply('{"jsonrpc":"2.0","id":{"a":1},"method":"dlm/status"}'), [null, -32600]);
    assert.deepEqual(reply('{"jsonrpc":"2.0","id":"x","method":"dlm/status","__proto__":{"polluted":true}}'), ['x', -32600]);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  });

  it('answers positional params with -32602 before any handler sees them; notifications are never answered', () => {
    assert.deepEqual(reply('{"jsonrpc":"2.0","id":3,"method":"dlm/infill","params":[{"modelId":"m"},1]}'), [3, -32602]);
    assert.deepEqual(reply('{"jsonrpc":"2.0","id":4,"method":"dlm/infill","params":[]}'), [4, -32602]);
    assert.equal(reply('{"jsonrpc":"2.0","method":"dlm/infill","params":[]}'), 'ignore');
    assert.equal(reply('{"jsonrpc":"2.0","method":"$/cancelRequest"}'), 'ignore');
    assert.equal(reply('{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":5}}'), 'message');
    assert.equal(reply('{"jsonrpc":"2.0","id":5,"result":null}'), 'message');
  });
});

describe('protocol fault cases, in process (20,000 seeded)', () => {
  it('every case is a fault or gets what it is owed, and the valid request after it is read', () => {
    const failures: string[] = [];
    const seed = 7;
    const cases = [
      ...Array.from({ length: 16_000 }, (_, n) => messageFault(seed, n)),
      ...Array.from({ length: 3_000 }, (_, n) => framingFault(seed, n)),
      ...Array.from({ length: 1_000 }, (_, n) => randomBytes(seed, n)),
    ];
    for (const [n, c] of cases.entries()) {
      const { fault, messages, probeAnswered } = outcome(c, `probe-${n}`);
      const fail = (why: string) => failures.push(`${c.kind} #${n} ${JSON.stringify(c.bytes.subarray(0, 60).toString('latin1'))}: ${why}`);
      switch (c.expect.outcome) {
        case 'fault':
          if (fault === undefined) fail('no fault');
          break;
        case 'answered-or-fault':
          if (fault === undefined && !probeAnswered) fail('neither a fault nor the probe read');
          break;
        case 'silent':
          if (fault !== undefined || !probeAnswered || messages.some((m) => m.kind === 'reply')) fail(`fault ${fault}, ${JSON.stringify(messages)}`);
          break;
        case 'reply': {
          // -32601 and the params checks are the connection's and the handlers' to answer: the message passes.
          const passes = c.expect.code === -32601 || (c.expect.code === -32602 && messages[0]?.kind === 'message');
          const { code, id } = c.expect;
          const replied = messages.some((m) => m.kind === 'reply' && m.reply.error!.code === code && m.reply.id === id);
          if (fault !== undefined || !probeAnswered || !(replied || passes)) fail(`fault ${fault}, ${JSON.stringify(messages.map((m) => (m.kind === 'reply' ? m.reply : m.kind)))}`);
          break;
        }
      }
    }
    assert.deepEqual(failures.slice(0, 10), []);
    // Every framing kind was tried.
    assert.deepEqual(new Set(cases.filter((c) => c.expect.outcome === 'fault').map((c) => c.kind)), new Set(FRAMING_KINDS));
  });
});
