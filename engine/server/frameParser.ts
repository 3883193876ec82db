/**
 * The engine's side of the LSP base protocol's framing (`Content-Length: N\r\n\r\n` + N bytes of body), read
 * strictly: every way a frame can be broken is reported as a fault the moment it can be seen, never waited on.
 * vscode-jsonrpc's own reader (node_modules/vscode-jsonrpc/lib/common/messageReader.js) reports a bad header and
 * carries on from a misaligned position, so one bad frame left the engine waiting forever; after a fault this
 * parser takes nothing more, and the server exits so that its supervisor starts a clean engine
 * (engine/server/stdioMessageReader.ts).
 *
 * A fault is visible at once when a header line is malformed (not `Name: value`, a bare CR or LF, a byte that is
 * not printable ASCII, e.g. a BOM), when the header block is too long or lacks a single decimal Content-Length,
 * and when a header line appears inside a body: `Content-Length: N` followed by a raw CR LF cannot occur in a
 * JSON text (the name could only be inside a string, where raw CR and LF are not allowed), so such a body was
 * given a Content-Length larger than its message and has swallowed the next frame's header.
 */

/** Frames above this size are refused: room for the longest prefix and suffix the engine accepts (validation.ts), JSON-escaped. */
export const MAX_BODY_BYTES = 64 * 1024 * 1024;
/** A header block longer than this is not a header block. */
export const MAX_HEADER_BYTES = 4096;

export type FrameEvent = { kind: 'frame'; body: Buffer } | { kind: 'fault'; reason: string };

const CR = 0x0d;
const LF = 0x0a;
const COLON = 0x3a;
const HEADER_END = Buffer.from('\r\n\r\n');
/** A header line swallowed by a body (see the file comment); case-insensitive like header names. */
const HEADER_IN_BODY = /content-length[ \t]*:[ \t]*\d+\r\n/i;
/** Enough of the previous chunk to find a header line cut in two by chunk boundaries. */
const HEADER_IN_BODY_OVERLAP = 64;
/** RFC 9110 token characters, what a header name is made of. */
const TOKEN_CHARS = "!#$%&'*+.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-";
const TOKEN_BYTES = new Set(Array.from(TOKEN_CHARS, (c) => c.charCodeAt(0)));
const UTF8_CHARSETS = new Set(['utf-8', 'utf8']);

export class FrameParser {
  /** Bytes received and not yet part of an emitted frame. */
  private chunks: Buffer[] = [];
  private buffered = 0;
  /** The body length of the frame being read, once its header block is complete. */
  private bodyLength: number | undefined;
  /** How far the buffered bytes were already checked (header bytes, or body bytes for swallowed headers). */
  private checked = 0;
  /** Header state: where the line being read starts, and whether its name (before the colon) is still being read. */
  private lineStart = 0;
  private inName = true;
  private fault: string | undefined;

  constructor(private readonly maxBodyBytes = MAX_BODY_BYTES) {}

  /** Bytes of a frame begun and not finished: what is lost if the input ends now. */
  get pendingBytes(): number {
    return this.buffered;
  }

  /** The body length of the frame being read, when its header is complete. */
  get expectedBodyBytes(): number | undefined {
    return this.bodyLength;
  }

  /** Why the parser stopped, once it has. */
  get faultReason(): string | undefined {
    return this.fault;
  }

  /** Takes the next bytes; returns the frames they complete, then a fault if one is found (and nothing after it). */
  push(chunk: Buffer): FrameEvent[] {
    if (this.fault !== undefined || chunk.length === 0) return [];
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const events: FrameEvent[] = [];
    for (;;) {
      const event = this.bodyLength === undefined ? this.readHeader() : this.readBody();
      if (event === 'header') continue;
      if (!event) return events;
      events.push(event);
      if (event.kind === 'fault') {
        this.fault = event.reason;
        this.chunks = [];
        return events;
      }
    }
  }

  private bytes(): Buffer {
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks, this.buffered)];
    return this.chunks[0] ?? Buffer.alloc(0);
  }

  private consume(count: number): void {
    const rest = this.bytes().subarray(count);
    this.chunks = rest.length ? [rest] : [];
    this.buffered = rest.length;
    this.checked = 0;
    this.lineStart = 0;
    this.inName = true;
  }

  /** A header-block fault, 'header' once the header is complete (the body is read next), or undefined while it is incomplete. */
  private readHeader(): FrameEvent | 'header' | undefined {
    const bytes = this.bytes();
    const limit = Math.min(bytes.length, MAX_HEADER_BYTES);
    for (let i = this.checked; i < limit; i++) {
      const b = bytes[i];
      const previous = i > 0 ? bytes[i - 1] : -1;
      if (previous === CR && b !== LF) return fault(`a CR not followed by LF in the header at byte ${i}`);
      if (b === LF) {
        if (previous !== CR) return fault(`a line of the header ends with LF alone (line ends must be CR LF), at byte ${i}`);
        if (i === 1) return fault('the header block is empty (a blank line where Content-Length was expected)');
        if (i >= 3 && bytes[i - 2] === LF) return this.parseHeader(bytes.subarray(0, i + 1));
        this.lineStart = i + 1;
        this.inName = true;
        continue;
      }
      if (b !== CR && b !== 0x09 && (b < 0x20 || b > 0x7e)) {
        return fault(`byte 0x${b.toString(16).padStart(2, '0')} at ${i} in the header (headers are printable ASCII${i === 0 && b === 0xef ? '; a byte order mark?' : ''})`);
      }
      // A line's name is checked as it arrives, so that a body read as a header (a Content-Length too small)
      // is refused at once instead of waiting for a blank line that never comes.
      if (!this.inName) continue;
      if (b === COLON && i > this.lineStart) this.inName = false;
      else if (b === CR && i > this.lineStart) return fault(`a header line without ":" ends at byte ${i}`);
      else if (b !== CR && !TOKEN_BYTES.has(b)) {
        return fault(`a header name holds ${JSON.stringify(String.fromCharCode(b))} at byte ${i}; headers are "Name: value" lines`);
      }
    }
    this.checked = limit;
    if (bytes.length >= MAX_HEADER_BYTES) return fault(`no end of the header block within ${MAX_HEADER_BYTES} bytes`);
    return undefined;
  }

  private parseHeader(block: Buffer): FrameEvent | 'header' {
    const lines = block.subarray(0, block.length - HEADER_END.length).toString('latin1').split('\r\n');
    let length: number | undefined;
    for (const line of lines) {
      // readHeader has checked that each line is a name of token characters, a colon, and printable ASCII.
      const colon = line.indexOf(':');
      const name = line.slice(0, colon);
      const value = line.slice(colon + 1).trim();
      const key = name.toLowerCase();
      if (key === 'content-length') {
        if (length !== undefined) return fault('Content-Length is given twice');
        if (!/^\d{1,12}$/.test(value)) return fault(`Content-Length ${JSON.stringify(clip(value))} is not a byte count`);
        length = Number(value);
        if (length > this.maxBodyBytes) return fault(`Content-Length ${length} is above the ${this.maxBodyBytes}-byte limit`);
      } else if (key === 'content-type') {
        const charset = /;\s*charset\s*=\s*"?([^";\s]+)"?/i.exec(value)?.[1];
        if (charset !== undefined && !UTF8_CHARSETS.has(charset.toLowerCase())) {
          return fault(`Content-Type charset ${JSON.stringify(clip(charset))} is not supported (only utf-8)`);
        }
      }
    }
    if (length === undefined) return fault('the header block has no Content-Length');
    this.consume(block.length);
    this.bodyLength = length;
    return 'header';
  }

  /** The completed frame, a swallowed-header fault, or undefined while the body is incomplete. */
  private readBody(): FrameEvent | undefined {
    const length = this.bodyLength!;
    const seen = Math.min(this.buffered, length);
    // Only the bytes new since the last look are scanned (with a little overlap): a large body arrives in many chunks.
    const from = Math.max(0, this.checked - HEADER_IN_BODY_OVERLAP);
    const swallowed = HEADER_IN_BODY.exec(this.range(from, seen).toString('latin1'));
    if (swallowed) {
      return fault(
        `a header line began at byte ${from + swallowed.index} of a ${length}-byte message body: its Content-Length ` +
          'is larger than the message, or a message was cut short',
      );
    }
    this.checked = seen;
    if (this.buffered < length) return undefined;
    const body = Buffer.from(this.bytes().subarray(0, length));
    this.consume(length);
    this.bodyLength = undefined;
    return { kind: 'frame', body };
  }

  /** Buffered bytes [from, to), copied out of the chunks without joining them all. */
  private range(from: number, to: number): Buffer {
    const parts: Buffer[] = [];
    let offset = 0;
    for (const chunk of this.chunks) {
      const start = Math.max(from - offset, 0);
      const end = Math.min(to - offset, chunk.length);
      if (start < end) parts.push(chunk.subarray(start, end));
      offset += chunk.length;
      if (offset >= to) break;
    }
    return Buffer.concat(parts);
  }
}

function fault(reason: string): FrameEvent {
  return { kind: 'fault', reason };
}

function clip(text: string): string {
  return text.length > 40 ? `${text.slice(0, 40)}...` : text;
}
