import * as assert from 'node:assert/strict';
import { ServerSentEventParser, type ServerSentEvent } from '../../common/teamServer/serverSentEvents';

function parse(chunks: string[]): { events: ServerSentEvent[]; cut: boolean } {
  const events: ServerSentEvent[] = [];
  const parser = new ServerSentEventParser((event) => events.push(event));
  for (const chunk of chunks) parser.push(chunk);
  return { events, cut: parser.end() };
}

describe('server-sent events', () => {
  it('reads data events ended by blank lines, as vLLM and SGLang send them', () => {
    const { events, cut } = parse(['data: {"a":1}\n\ndata: [DONE]\n\n']);
    assert.deepEqual(events, [
      { type: '', data: '{"a":1}' },
      { type: '', data: '[DONE]' },
    ]);
    assert.equal(cut, false);
  });

  it('joins an event split across chunks anywhere, CRLF split between its CR and LF included', () => {
    const text = 'data: {"text": "héllo"}\r\n\r\ndata: [DONE]\r\n\r\n';
    for (let at = 1; at < text.length; at++) {
      const { events, cut } = parse([text.slice(0, at), text.slice(at)]);
      assert.deepEqual(events.map((e) => e.data), ['{"text": "héllo"}', '[DONE]'], `split at ${at}`);
      assert.equal(cut, false);
    }
  });

  it('joins multi-line data with line breaks, skips comments, keeps the event type, drops one leading space only', () => {
    const { events } = parse([': keep-alive\n\nevent: error\ndata:  two spaces\ndata:second\n\n']);
    assert.deepEqual(events, [{ type: 'error', data: ' two spaces\nsecond' }]);
  });

  it('says the stream was cut when it ends inside an event', () => {
    assert.equal(parse(['data: {"choices": [']).cut, true);
    assert.equal(parse(['data: {"a":1}\n']).cut, true, 'a field line without the blank line that ends the event');
    assert.deepEqual(parse(['data: {"a":1}\n']).events, [], 'an unfinished event is not dispatched');
  });
});
