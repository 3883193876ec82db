/**
 * The main thread's handle on the text worker (textWorkerMain.ts), which tokenizes infill text off the
 * protocol thread. Started on first use; it holds the process open only while it has work, and a worker that
 * dies is replaced at the next request (the requests it had fail with the reason).
 */
import { Worker } from 'node:worker_threads';
import type { SpecialTokens } from '../architecture/architecture';
import type { CanvasIds, CanvasText } from '../model/canvasTokens';
import type { FromTextWorker, ToTextWorker } from './textWorkerMessages';
import { workerScript } from './workerScript';

interface Pending {
  resolve(ids: CanvasIds): void;
  reject(error: Error): void;
}

export class TextWorker {
  private worker: Worker | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;

  /** The token ids of `text` for a model with this tokenizer, special tokens and canvas. */
  canvasIds(tokenizerFile: string, tokens: SpecialTokens, maxCanvasTokens: number, text: CanvasText): Promise<CanvasIds> {
    const id = this.nextId++;
    const worker = this.started();
    return new Promise<CanvasIds>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.ref();
      this.post(worker, { kind: 'canvas', id, tokenizerFile, tokens, maxCanvasTokens, text: { prefix: text.prefix, suffix: text.suffix, length: text.length, fitToModel: text.fitToModel } });
    });
  }

  /** Frees a tokenizer that no loaded model uses any more. */
  forget(tokenizerFile: string): void {
    if (this.worker) this.post(this.worker, { kind: 'forget', tokenizerFile });
  }

  async dispose(): Promise<void> {
    const worker = this.worker;
    this.worker = undefined;
    this.failAll(new Error('The engine is shutting down.'));
    await worker?.terminate();
  }

  private post(worker: Worker, message: ToTextWorker): void {
    worker.postMessage(message);
  }

  private started(): Worker {
    if (this.worker) return this.worker;
    const script = workerScript('textWorkerMain');
    const worker = new Worker(script.file, { execArgv: script.execArgv, stdout: true, stderr: true });
    // In `dlm serve` stdout carries only the protocol.
    worker.stdout.pipe(process.stderr);
    worker.stderr.pipe(process.stderr);
    worker.unref();
    worker.on('message', (message: FromTextWorker) => {
      const waiting = this.pending.get(message.id);
      if (!waiting) return;
      this.pending.delete(message.id);
      if (this.pending.size === 0) worker.unref();
      if (message.kind === 'canvas') waiting.resolve({ prefixIds: Array.from(message.prefixIds), suffixIds: Array.from(message.suffixIds) });
      else waiting.reject(new Error(message.message));
    });
    const died = (why: string) => {
      if (this.worker !== worker) return;
      this.worker = undefined;
      this.failAll(new Error(`The text worker ${why}.`));
    };
    worker.on('error', (error) => died(`crashed: ${error.message}`));
    worker.on('exit', (code) => died(`exited (code ${code})`));
    this.worker = worker;
    return worker;
  }

  private failAll(error: Error): void {
    for (const waiting of this.pending.values()) waiting.reject(error);
    this.pending.clear();
  }
}
