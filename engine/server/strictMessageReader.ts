/**
 * The engine's JSON-RPC message reader (in place of vscode-jsonrpc's StreamMessageReader): frames read
 * strictly (frameParser.ts), bodies checked before the connection sees them (incomingMessage.ts). A framing
 * fault stops the reader and is reported once (`onFault`): the stream can no longer be trusted to be aligned
 * on a frame, so the server exits and its supervisor starts a clean engine. A body that is not a valid message
 * is reported (`onRefused`) with the reply it is owed, and reading goes on. The end of the input closes the
 * reader whatever is half-read, and a frame that stops arriving for `stallTimeoutMs` is a fault too: a
 * Content-Length larger than what was sent would otherwise wait forever.
 */
import type { Readable } from 'node:stream';
import { AbstractMessageReader, Emitter, type DataCallback, type Disposable, type MessageReader, type ResponseMessage } from 'vscode-jsonrpc';
import { FrameParser } from './frameParser';
import { classifyBody } from './incomingMessage';

export interface RefusedMessage {
  /** Why the message was refused (never its content). */
  reason: string;
  /** The error response to send, when the message is owed one. */
  reply?: ResponseMessage;
}

export interface ClosedInput {
  /** Bytes of a message begun and not finished when the input ended. */
  unfinishedBytes: number;
}

export class StrictMessageReader extends AbstractMessageReader implements MessageReader {
  private readonly parser = new FrameParser();
  private readonly faultEmitter = new Emitter<string>();
  private readonly refusedEmitter = new Emitter<RefusedMessage>();
  private readonly endEmitter = new Emitter<ClosedInput>();
  private stopped = false;
  private lastByteAt = 0;
  private stallTimer: NodeJS.Timeout | undefined;
  private detach: (() => void) | undefined;

  constructor(
    private readonly input: Readable,
    private readonly stallTimeoutMs: number,
  ) {
    super();
  }

  /** A framing fault, with its reason; reading has stopped. */
  get onFault() {
    return this.faultEmitter.event;
  }

  /** A well-framed body that is not a valid message. */
  get onRefused() {
    return this.refusedEmitter.event;
  }

  /** The input ended (fired just before `onClose`), with what was left unfinished. */
  get onEnd() {
    return this.endEmitter.event;
  }

  listen(callback: DataCallback): Disposable {
    const onData = (chunk: Buffer) => this.receive(chunk, callback);
    const onEnd = () => this.end();
    const onError = (error: Error) => {
      this.fireError(error);
      this.end();
    };
    this.input.on('data', onData);
    this.input.on('end', onEnd);
    this.input.on('close', onEnd);
    this.input.on('error', onError);
    this.detach = () => {
      this.input.off('data', onData);
      this.input.off('end', onEnd);
      this.input.off('close', onEnd);
      this.input.off('error', onError);
    };
    return { dispose: () => this.stop() };
  }

  override dispose(): void {
    this.stop();
    super.dispose();
    this.faultEmitter.dispose();
    this.refusedEmitter.dispose();
    this.endEmitter.dispose();
  }

  private receive(chunk: Buffer, callback: DataCallback): void {
    if (this.stopped) return;
    this.lastByteAt = performance.now();
    for (const event of this.parser.push(chunk)) {
      if (event.kind === 'fault') {
        this.fail(event.reason);
        return;
      }
      const incoming = classifyBody(event.body);
      if (incoming.kind === 'message') callback(incoming.message);
      else this.refusedEmitter.fire(incoming.kind === 'reply' ? { reason: incoming.reason, reply: incoming.reply } : { reason: incoming.reason });
      if (this.stopped) return;
    }
    this.watchForStall();
  }

  /** Arms the stall check while a frame is unfinished. */
  private watchForStall(): void {
    clearTimeout(this.stallTimer);
    if (this.parser.pendingBytes === 0 || this.stallTimeoutMs <= 0) return;
    const check = () => {
      // A timer can fire before the poll phase reads bytes that arrived while the thread was busy; look once
      // those are in.
      setImmediate(() => {
        if (this.stopped || this.parser.pendingBytes === 0) return;
        const quiet = performance.now() - this.lastByteAt;
        if (quiet < this.stallTimeoutMs) {
          this.stallTimer = setTimeout(check, this.stallTimeoutMs - quiet);
          return;
        }
        const expected = this.parser.expectedBodyBytes;
        this.fail(
          `a message stopped arriving: ${this.parser.pendingBytes} bytes of ` +
            `${expected === undefined ? 'its header' : `a ${expected}-byte body`} and nothing more for ${Math.round(quiet)} ms`,
        );
      });
    };
    this.stallTimer = setTimeout(check, this.stallTimeoutMs);
  }

  private fail(reason: string): void {
    this.stop();
    this.faultEmitter.fire(reason);
  }

  private end(): void {
    if (this.stopped) return;
    const unfinishedBytes = this.parser.pendingBytes;
    this.stop();
    this.endEmitter.fire({ unfinishedBytes });
    this.fireClose();
  }

  private stop(): void {
    this.stopped = true;
    clearTimeout(this.stallTimer);
    this.detach?.();
    this.detach = undefined;
  }
}
