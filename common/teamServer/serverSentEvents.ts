/**
 * Server-sent events, the `text/event-stream` format that vLLM and SGLang stream completions in: lines of
 * `field: value`, an event ending at a blank line, `data` lines of one event joined with line breaks, lines
 * starting with `:` being comments (WHATWG HTML, "Server-sent events", event stream interpretation). Fed the
 * body as decoded text in whatever chunks the network delivers; a line or an event may span chunks.
 */

export interface ServerSentEvent {
  /** The `event` field; '' when the event has none (the default "message" type). */
  type: string;
  data: string;
}

export class ServerSentEventParser {
  /** Text after the last complete line. */
  private pending = '';
  private dataLines: string[] = [];
  private type = '';
  private sawField = false;

  constructor(private readonly onEvent: (event: ServerSentEvent) => void) {}

  /** Parses the next piece of the body. */
  push(text: string): void {
    this.pending += text;
    const lineEnds = /\r\n|\r|\n/g;
    let start = 0;
    for (let match = lineEnds.exec(this.pending); match; match = lineEnds.exec(this.pending)) {
      // A CR at the very end may be the first half of a CRLF split across chunks: wait for the next chunk.
      if (match[0] === '\r' && match.index + 1 === this.pending.length) break;
      this.line(this.pending.slice(start, match.index));
      start = match.index + match[0].length;
    }
    this.pending = this.pending.slice(start);
  }

  /**
   * The body ended. Returns true when it ended inside an event (a line or fields not closed by a blank line):
   * the stream was cut, since a complete stream ends every event with a blank line.
   */
  end(): boolean {
    if (this.pending.endsWith('\r')) {
      this.line(this.pending.slice(0, -1));
      this.pending = '';
    }
    return this.pending !== '' || this.sawField;
  }

  private line(line: string): void {
    if (line === '') {
      if (this.sawField && this.dataLines.length > 0) this.onEvent({ type: this.type, data: this.dataLines.join('\n') });
      this.dataLines = [];
      this.type = '';
      this.sawField = false;
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    this.sawField = true;
    if (field === 'data') this.dataLines.push(value);
    else if (field === 'event') this.type = value;
    // `id` and `retry` only matter to a reconnecting EventSource; a completion is never resumed.
  }
}
