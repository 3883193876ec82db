/** Messages between the engine's main thread and its text worker (internal to the engine process). */
import type { SpecialTokens } from '../architecture/architecture';
import type { CanvasText } from '../model/canvasTokens';

export type ToTextWorker =
  | { kind: 'canvas'; id: number; tokenizerFile: string; tokens: SpecialTokens; maxCanvasTokens: number; text: CanvasText }
  /** Drops a tokenizer no loaded model uses any more. */
  | { kind: 'forget'; tokenizerFile: string };

export type FromTextWorker =
  | { kind: 'canvas'; id: number; prefixIds: Int32Array; suffixIds: Int32Array }
  | { kind: 'failed'; id: number; message: string };
