/**
 * `dlm serve`: the engine as a JSON-RPC 2.0 server over stdio (vscode-jsonrpc), the process the extension
 * spawns. stdout carries the protocol and nothing else; logs go to stderr and, as `dlm/log`, to the client.
 */
import {
  createMessageConnection,
  ResponseError,
  StreamMessageReader,
  StreamMessageWriter,
  type MessageConnection,
} from 'vscode-jsonrpc/node';
import {
  InfillProgressNotification,
  InfillRequest,
  LoadModelRequest,
  LoadProgressNotification,
  LogNotification,
  ShutdownRequest,
  StatusRequest,
  UnloadModelRequest,
  WarmPromptRequest,
  type LogParams,
} from '../protocol';
import { Engine, cancelledJobError } from './engine';
import { EngineError } from './errors';
import { JobCancelledError } from './scheduler';
import { validateInfillParams, validateLoadModelParams, validateUnloadModelParams, validateWarmPromptParams } from './validation';

export interface ServeOptions {
  cacheDir: string;
  /** Messages at this level and above also go to stderr. */
  stderrLevel?: LogParams['level'];
}

const LEVELS: LogParams['level'][] = ['debug', 'info', 'warn', 'error'];

/** Serves on this process's stdin/stdout until shutdown or until the client goes away. */
export function serve(options: ServeOptions): Promise<void> {
  // Nothing but protocol may reach stdout: a stray console.log from any module goes to stderr instead.
  console.log = console.error;
  console.info = console.error;

  const connection = createMessageConnection(
    new StreamMessageReader(process.stdin),
    new StreamMessageWriter(process.stdout),
  );
  const stderrFrom = LEVELS.indexOf(options.stderrLevel ?? 'info');
  const log = (level: LogParams['level'], message: string) => {
    if (LEVELS.indexOf(level) >= stderrFrom) process.stderr.write(`[dlm ${level}] ${message}\n`);
    connection.sendNotification(LogNotification, { level, message }).catch(() => undefined);
  };
  const engine = new Engine({ cacheDir: options.cacheDir, log });
  registerHandlers(connection, engine, log);

  return new Promise<void>((resolve) => {
    let stopping = false;
    const stop = async (reason: string) => {
      if (stopping) return;
      stopping = true;
      process.stderr.write(`[dlm info] stopping: ${reason}\n`);
      await engine.shutdown();
      connection.dispose();
      process.stdin.destroy();
      // Exit once everything written so far (the shutdown answer) has left stdout.
      process.stdout.write('', () => resolve());
    };
    connection.onRequest(ShutdownRequest, async () => {
      setImmediate(() => void stop('shutdown requested'));
    });
    connection.onClose(() => void stop('the client closed the connection'));
    process.stdout.on('error', () => void stop('stdout closed'));
    connection.listen();
    log('info', `engine ${engine.status().version} serving on stdio (pid ${process.pid})`);
  });
}

function registerHandlers(
  connection: MessageConnection,
  engine: Engine,
  log: (level: LogParams['level'], message: string) => void,
): void {
  connection.onRequest(LoadModelRequest, (raw: unknown) =>
    answer(async () => {
      const params = validateLoadModelParams(raw);
      const token = params.progressToken;
      return engine.loadModel(params, (progress) => {
        if (token !== undefined) void connection.sendNotification(LoadProgressNotification, { progressToken: token, ...progress });
      });
    }),
  );

  connection.onRequest(UnloadModelRequest, (raw: unknown) =>
    answer(() => engine.unloadModel(validateUnloadModelParams(raw).modelId)),
  );

  connection.onRequest(InfillRequest, (raw: unknown, cancellation) =>
    answer(async () => {
      const params = validateInfillParams(raw);
      const { progressToken } = params;
      const job = engine.infill(params, {
        onProgress:
          progressToken === undefined
            ? undefined
            : (progress) => void connection.sendNotification(InfillProgressNotification, { progressToken, ...progress }),
      });
      const label = `infill ${job.id}${params.documentId === undefined ? '' : ` (document ${params.documentId})`}`;
      const subscription = cancellation.onCancellationRequested(() => job.cancel('cancelled'));
      try {
        const result = await job.result;
        log('debug', `${label}: ${result.stats.genTokens} tokens in ${result.stats.steps} steps, ${result.stats.tokensPerSecond} tokens/s`);
        return result;
      } catch (error) {
        if (error instanceof JobCancelledError) {
          log('info', `${label} ${error.message}`);
        }
        throw error;
      } finally {
        subscription.dispose();
      }
    }),
  );

  connection.onRequest(WarmPromptRequest, (raw: unknown, cancellation) =>
    answer(async () => {
      const params = validateWarmPromptParams(raw);
      const job = engine.warmPrompt(params);
      const subscription = cancellation.onCancellationRequested(() => job.cancel('cancelled'));
      try {
        return await job.result;
      } catch (error) {
        if (error instanceof JobCancelledError) log('debug', `warm-up of ${params.documentId} ${error.message}`);
        throw error;
      } finally {
        subscription.dispose();
      }
    }),
  );

  connection.onRequest(StatusRequest, () => engine.status());
}

/** Runs a handler and turns engine errors into JSON-RPC errors with their protocol codes. */
async function answer<T>(handler: () => Promise<T>): Promise<T> {
  try {
    return await handler();
  } catch (error) {
    if (error instanceof JobCancelledError) error = cancelledJobError(error);
    if (error instanceof EngineError) throw new ResponseError(error.code, error.message, error.data);
    throw new ResponseError(-32603, `Internal engine error: ${(error as Error).message}`);
  }
}
