/**
 * The one interface through which the inline completions, the block infill and the status bar get fills,
 * whichever backend answers: the local engine (localBackend.ts) or a team's inference server
 * (remoteBackend.ts). Requests, progress, results and failures are stated here in the backend's neutral terms.
 */
import type * as vscode from 'vscode';
import type { InfillStats, PromptReuseMode } from '../common/protocol';
import type { CacheMode, DecodingOptions } from '../common/decodingOptions';

export interface FillRequest {
  /** Requests with the same id supersede each other in the local engine (newest wins). */
  documentId: string;
  prefix: string;
  suffix: string;
  /** Tokens to fill (the local canvas's masks; a server's most tokens to write). */
  length: number;
  /** False in the middle of a line: the fill is the rest of that line. */
  multiline: boolean;
  /** The document's language id (servers name it in their prompts). */
  languageId?: string;
  /** The decoding settings the user set; a server takes only temperature and seed. */
  options: Partial<DecodingOptions>;
  /** Local engine: size the context so a request computed from scratch takes about this long at most. */
  coldBudgetMs?: number;
  /** Local engine: how the prompt computed for the document's previous request (or a warm-up) is reused. */
  reuse?: { reusePrefix: boolean; reuseMode?: PromptReuseMode };
}

/** One step of a fill in progress: per token its text, or null while still masked. */
export interface FillProgress {
  pieces: (string | null)[];
  step: number;
  /** 0 when unknown (a server streams until it is done). */
  totalSteps: number;
}

export interface FillStats {
  genTokens: number;
  ms: number;
  tokensPerSecond: number;
  /** How the fill was made, for the log, e.g. "32 tokens in 32 steps, 80 ms (400 tokens/s), cache decode on cpu". */
  summary: string;
  /** The local engine's own stats, when it made the fill. */
  engine?: InfillStats;
}

export interface FillResult {
  /** The fill, ended where the model ended it. */
  text: string;
  endedEarly: boolean;
  stats: FillStats;
}

export interface ReadyBackend {
  /** The longest fill, in tokens, this backend takes. */
  readonly maxFillTokens: number;
  /**
   * Fills the hole; rejects with FillCancelled when `token` cancels it (or a newer request supersedes it), with
   * FillRefused when the request itself is refused (it would be refused again), else with the failure.
   */
  infill(request: FillRequest, onProgress: ((progress: FillProgress) => void) | undefined, token?: vscode.CancellationToken): Promise<FillResult>;
}

/** What the status bar shows of a backend. */
export type BackendStatus =
  | { kind: 'busy'; text: string; tooltip: string[] }
  | {
      kind: 'ready';
      model: string;
      /** Where the model runs: the device, or the server's host:port. */
      where: string;
      /** The model's own cache mode (backends with cache modes). */
      defaultCache?: CacheMode;
      /** The server's latency: to the first text of the last fill, or of the connection check. */
      latencyMs?: number;
      /** Set after a failed fill, until the next one succeeds. */
      warning?: string;
      tooltip: string[];
    }
  | { kind: 'failed'; message: string; tooltip: string[] };

export interface CompletionBackend extends vscode.Disposable {
  readonly status: BackendStatus;
  readonly onDidChangeStatus: vscode.Event<BackendStatus>;
  /** The backend ready to fill, waiting while it starts; rejects with the reason when it cannot be had. */
  ready(token?: vscode.CancellationToken): Promise<ReadyBackend>;
  /** Whether fills follow dlm.cacheMode (the local engine's K/V caches; a server caches its own way). */
  readonly cacheModes: boolean;
  /** The status bar menu's action that starts the backend afresh. */
  readonly restartLabel: string;
  restart(): Promise<void>;
}

/** The fill was cancelled, or superseded by a newer request: nothing to report. */
export class FillCancelled extends Error {
  override name = 'FillCancelled';
}

/** The backend refused the request as it is (a setting, the length): it fails again until something changes. */
export class FillRefused extends Error {
  override name = 'FillRefused';
}
