/**
 * The remote backend: fills asked of a team's SGLang or vLLM server (`dlm.backend: remote`) through the shared
 * client (common/teamServer/inferenceServer.ts), behind the backend interface (completionBackend.ts).
 *
 * It connects when it becomes the backend and again when `dlm.server.*` or the API key change: the connection
 * check asks the server for its model, which also checks the key and measures the latency. A failure is said
 * once in a notification (with the action that fixes it), always in the output channel and the status bar.
 * Failures of the setup (the address, the key, the model) stop completions until something changes; passing ones
 * (a busy, restarting or slow server, a dropped stream) only mark the status bar until a fill succeeds, and a
 * connection that failed that way is tried again when completions are asked for, at most every few seconds.
 */
import * as vscode from 'vscode';
import { InferenceServer, type ServerFillResult } from '../common/teamServer/inferenceServer';
import { ServerError } from '../common/teamServer/serverErrors';
import {
  FillCancelled,
  FillRefused,
  type BackendStatus,
  type CompletionBackend,
  type FillProgress,
  type FillRequest,
  type FillResult,
  type ReadyBackend,
} from './completionBackend';
import type { OutputLog } from './outputLog';
import type { ServerApiKey } from './serverApiKey';
import { SECTION, type DlmSettings } from './settings';

/** A connection that failed for a passing reason is tried again after this long, when completions are asked for. */
const RECONNECT_AFTER_MS = 5000;
/** The longest fill a server is asked for (dlm.fillLength's maximum). */
const LONGEST_FILL_TOKENS = 1024;

type RemoteState =
  | { kind: 'off' }
  | { kind: 'connecting'; attempt: Promise<InferenceServer> }
  | { kind: 'ready'; server: InferenceServer; latencyMs: number; warning?: string }
  | { kind: 'failed'; error: Error; at: number };

export interface RemoteBackendDependencies {
  log: OutputLog;
  settings: () => DlmSettings;
  apiKey: ServerApiKey;
}

export class RemoteBackend implements CompletionBackend {
  private readonly statusEmitter = new vscode.EventEmitter<BackendStatus>();
  readonly onDidChangeStatus = this.statusEmitter.event;
  readonly cacheModes = false;
  readonly restartLabel = 'Reconnect to the server';
  private state: RemoteState = { kind: 'off' };
  /** Bumped by every connection attempt and by stop(), so a stale attempt's outcome is dropped. */
  private generation = 0;
  private connecting: AbortController | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  /** Failures already shown in a notification (each once, until the setup changes). */
  private explained = new Set<string>();

  constructor(private readonly deps: RemoteBackendDependencies) {}

  get status(): BackendStatus {
    const { server: settings } = this.deps.settings();
    const state = this.state;
    switch (state.kind) {
      case 'off':
        return { kind: 'busy', text: 'server off', tooltip: [] };
      case 'connecting':
        return { kind: 'busy', text: 'connecting', tooltip: [`Connecting to ${settings.url} (${settings.api} API)...`] };
      case 'failed':
        return { kind: 'failed', message: state.error.message, tooltip: [`Server: ${settings.url || '(none set)'}`, state.error.message] };
      case 'ready': {
        const { server } = state;
        const { endpoint } = server;
        return {
          kind: 'ready',
          model: server.model.slice(server.model.lastIndexOf('/') + 1),
          where: endpoint.label,
          latencyMs: state.latencyMs,
          warning: state.warning,
          tooltip: [
            `Server: ${endpoint.protocol}//${endpoint.label} (${server.options.api} API${endpoint.insecure ? ', plain HTTP' : ''})`,
            `Model: ${server.model} (prompt template ${server.template.id})`,
            `Latency: ${state.latencyMs} ms to the first text`,
          ],
        };
      }
    }
  }

  /** Connects to the server the settings name. */
  start(): void {
    void this.connect().catch(() => undefined);
  }

  /** Another backend answers now: drops the connection and any attempt. */
  stop(): void {
    clearTimeout(this.reconnectTimer);
    this.generation++;
    this.connecting?.abort();
    this.setState({ kind: 'off' });
  }

  /**
   * The settings or the key changed: connects afresh after `delayMs` (so that typing an address does not try each
   * prefix of it), and says each failure again.
   */
  reconnect(delayMs = 0): void {
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => {
      this.explained.clear();
      this.start();
    }, delayMs);
  }

  restart(): Promise<void> {
    this.explained.clear();
    return this.connect().then(
      () => undefined,
      () => undefined,
    );
  }

  async ready(token?: vscode.CancellationToken): Promise<ReadyBackend> {
    const state = this.state;
    if (state.kind === 'ready') return new ReadyServer(this, state.server);
    if (state.kind === 'off') throw new Error('The server backend is not in use (dlm.backend).');
    if (state.kind === 'failed') {
      const passing = state.error instanceof ServerError && state.error.transient;
      if (!passing || Date.now() - state.at < RECONNECT_AFTER_MS) throw state.error;
    }
    const attempt = state.kind === 'connecting' ? state.attempt : this.connect();
    return new ReadyServer(this, await whileNotCancelled(attempt, token));
  }

  dispose(): void {
    this.stop();
    this.statusEmitter.dispose();
  }

  /** A fill succeeded: its latency is the one shown, and any warning is over. */
  noteFill(server: InferenceServer, result: ServerFillResult): void {
    if (this.state.kind !== 'ready' || this.state.server !== server) return;
    this.setState({ kind: 'ready', server, latencyMs: result.firstTextMs ?? result.ms });
  }

  /** A fill failed: setup failures stop completions until something changes, passing ones mark the status bar. */
  noteFailure(server: InferenceServer, error: ServerError): void {
    if (this.state.kind !== 'ready' || this.state.server !== server) return;
    if (error.transient || error.kind === 'malformedEvent' || error.kind === 'rejected') {
      this.setState({ ...this.state, warning: error.message });
      return;
    }
    this.setState({ kind: 'failed', error, at: Date.now() });
    this.explain(error);
  }

  private connect(): Promise<InferenceServer> {
    const generation = ++this.generation;
    this.connecting?.abort();
    const abort = new AbortController();
    this.connecting = abort;
    const { server: settings, decoding } = this.deps.settings();
    const attempt = (async () => {
      const apiKey = (await this.deps.apiKey.get()) || undefined;
      return InferenceServer.connect({ ...settings, model: settings.model || undefined, apiKey }, abort.signal);
    })();
    this.setState({ kind: 'connecting', attempt });
    this.deps.log.info(`Connecting to the inference server ${settings.url} (${settings.api} API)...`);
    attempt.then(
      (server) => {
        if (generation !== this.generation) return;
        const { endpoint } = server;
        this.deps.log.info(
          `Connected to ${endpoint.protocol}//${endpoint.label} in ${server.latencyMs} ms: model ${server.model}, prompt template ` +
            `${server.template.id} (${server.template.style === 'fim' ? 'fill-in-the-middle tokens' : 'an instruction'}).`,
        );
        if (endpoint.insecure) this.deps.log.warn(`Plain HTTP to ${endpoint.label} (dlm.server.allowInsecureHttp): code and the API key cross the network unencrypted.`);
        const localOnly = Object.keys(decoding).filter((option) => option !== 'temperature' && option !== 'seed');
        if (localOnly.length > 0) {
          this.deps.log.info(`The server decodes with its own settings; ${localOnly.join(', ')} apply to the local engine only (temperature and seed are passed on).`);
        }
        this.setState({ kind: 'ready', server, latencyMs: server.latencyMs });
      },
      (error: unknown) => {
        if (generation !== this.generation) return;
        const failure = error instanceof Error ? error : new Error(String(error));
        this.setState({ kind: 'failed', error: failure, at: Date.now() });
        this.explain(failure);
      },
    );
    return attempt;
  }

  private explain(error: Error): void {
    this.deps.log.error(`Inference server: ${error.message}`);
    if (this.explained.has(error.message)) return;
    this.explained.add(error.message);
    const kind = error instanceof ServerError ? error.kind : undefined;
    const actions = [...(kind === 'unauthorized' ? ['Set Server API Key'] : []), 'Open Settings', 'Show Logs'];
    void vscode.window.showErrorMessage(`DLM: ${error.message}`, ...actions).then((choice) => {
      if (choice === 'Set Server API Key') void vscode.commands.executeCommand('dlm.setServerApiKey');
      if (choice === 'Open Settings') void vscode.commands.executeCommand('workbench.action.openSettings', `${SECTION}.server`);
      if (choice === 'Show Logs') this.deps.log.show();
    });
  }

  private setState(state: RemoteState): void {
    this.state = state;
    this.statusEmitter.fire(this.status);
  }
}

class ReadyServer implements ReadyBackend {
  readonly maxFillTokens: number;

  constructor(
    private readonly backend: RemoteBackend,
    private readonly server: InferenceServer,
  ) {
    this.maxFillTokens = Math.min(LONGEST_FILL_TOKENS, server.maxModelTokens ?? LONGEST_FILL_TOKENS);
  }

  async infill(request: FillRequest, onProgress: ((progress: FillProgress) => void) | undefined, token?: vscode.CancellationToken): Promise<FillResult> {
    const abort = new AbortController();
    const cancel = token?.onCancellationRequested(() => abort.abort());
    let result: ServerFillResult;
    try {
      result = await this.server.fill(
        {
          hole: { prefix: request.prefix, suffix: request.suffix, multiline: request.multiline, language: request.languageId },
          maxTokens: request.length,
          temperature: request.options.temperature,
          seed: request.options.seed,
        },
        onProgress && ((progress) => onProgress({ pieces: [progress.text], step: progress.events, totalSteps: 0 })),
        abort.signal,
      );
    } catch (error) {
      if (token?.isCancellationRequested || (error instanceof ServerError && error.kind === 'cancelled')) throw new FillCancelled('cancelled');
      if (error instanceof ServerError) {
        this.backend.noteFailure(this.server, error);
        if (error.kind === 'rejected') throw new FillRefused(error.message);
      }
      throw error;
    } finally {
      cancel?.dispose();
    }
    this.backend.noteFill(this.server, result);
    const genTokens = result.completionTokens ?? 0;
    const tokensPerSecond = result.ms > 0 ? (genTokens * 1000) / result.ms : 0;
    return {
      text: result.text,
      endedEarly: result.endedEarly,
      stats: {
        genTokens,
        ms: result.ms,
        tokensPerSecond,
        summary:
          `${genTokens} tokens in ${result.ms} ms (${Math.round(tokensPerSecond)} tokens/s), first text after ` +
          `${result.firstTextMs ?? '-'} ms, ${result.events} events from ${this.server.model} on ${this.server.endpoint.label}` +
          (result.retries > 0 ? ` after ${result.retries} retries` : ''),
      },
    };
  }
}

/** `promise`, or a CancellationError as soon as `token` is cancelled. */
function whileNotCancelled<T>(promise: Promise<T>, token: vscode.CancellationToken | undefined): Promise<T> {
  if (!token) return promise;
  return new Promise((resolve, reject) => {
    const subscription = token.onCancellationRequested(() => reject(new vscode.CancellationError()));
    promise.then(
      (value) => {
        subscription.dispose();
        resolve(value);
      },
      (error: unknown) => {
        subscription.dispose();
        reject(error);
      },
    );
  });
}
