/**
 * `dlm serve`: the engine as a JSON-RPC 2.0 server over stdio (vscode-jsonrpc), the process the extension
 * spawns. stdout carries the protocol and nothing else; logs go to stderr and, as `dlm/log`, to the client.
 * Messages are read by strictMessageReader.ts: a malformed message is answered with the JSON-RPC error it is
 * owed, and a framing fault makes the engine log why and exit with code 1, so the supervisor starts a clean one.
 */
import { createMessageConnection, ResponseError, StreamMessageWriter, type MessageConnection } from 'vscode-jsonrpc/node';
import {
  InfillProgressNotification,
  InfillRequest,
  LoadModelRequest,
  LogNotification,
  ShutdownRequest,
  StatusRequest,
  UnloadModelRequest,
  WarmPromptRequest,
  type LogParams,
} from '../../common/protocol';
import { nativeBinding } from '../runtime/nativeBinding';
import { Engine, cancelledJobError } from '../service/engine';
import { EngineError } from '../service/errors';
import { JobCancelledError } from '../service/scheduler';
import { abortSignalOf, progressSender, registerSetupHandlers } from './setupHandlers';
import { StrictMessageReader } from './strictMessageReader';
import { validateInfillParams, validateLoadModelParams, validateUnloadModelParams, validateWarmPromptParams } from './validation';

export interface ServeOptions {
  cacheDir: string;
  /** Messages at this level and above also go to stderr. */
  stderrLevel?: LogParams['level'];
  /** A message begun on stdin and not finished for this long is a protocol fault (default 10 s). */
  frameTimeoutMs?: number;
}

export const DEFAULT_FRAME_TIMEOUT_MS = 10_000;
/** Exit code after a protocol fault on stdin. */
export const EXIT_PROTOCOL_FAULT = 1;
/** How long stopping may wait for running jobs to end and workers to stop before the process exits anyway. */
const STOP_DEADLINE_MS = 1000;

const LEVELS: LogParams['level'][] = ['debug', 'info', 'warn', 'error'];

/** Serves on this process's stdin/stdout until shutdown, until the client goes away, or until a protocol fault; resolves with the exit code. */
export function serve(options: ServeOptions): Promise<number> {
  // Nothing but protocol may reach stdout: a stray console.log from any module goes to stderr instead.
  console.log = console.error;
  console.info = console.error;

  const reader = new StrictMessageReader(process.stdin, options.frameTimeoutMs ?? DEFAULT_FRAME_TIMEOUT_MS);
  const writer = new StreamMessageWriter(process.stdout);
  const connection = createMessageConnection(reader, writer);
  const stderrFrom = LEVELS.indexOf(options.stderrLevel ?? 'info');
  const log = (level: LogParams['level'], message: string) => {
    if (LEVELS.indexOf(level) >= stderrFrom) process.stderr.write(`[dlm ${level}] ${message}\n`);
    // Once the client has gone the connection is closed and refuses notifications: stderr has the line.
    try {
      connection.sendNotification(LogNotification, { level, message }).catch(() => undefined);
    } catch {}
  };
  const engine = new Engine({ cacheDir: options.cacheDir, log });
  registerHandlers(connection, engine, log);
  let refused = 0;
  reader.onRefused(({ reason, reply }) => {
    log('warn', `message refused (${++refused} so far): ${reason}`);
    if (reply) writer.write(reply).catch(() => undefined);
  });
  reader.onEnd(({ unfinishedBytes }) => {
    if (unfinishedBytes > 0) log('warn', `stdin closed in the middle of a message (${unfinishedBytes} bytes of it dropped)`);
  });
  registerSetupHandlers(connection, engine, options.cacheDir, (method, handler) => answer(method, log, handler));

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = async (reason: string, code: number) => {
      if (stopping) return;
      stopping = true;
      log(code === 0 ? 'info' : 'error', `stopping: ${reason}`);
      // Running jobs are answered as cancelled when they stop in time; a graph call that runs on is not waited for.
      let deadline: NodeJS.Timeout | undefined;
      await Promise.race([engine.shutdown(), new Promise<void>((done) => (deadline = setTimeout(done, STOP_DEADLINE_MS)))]);
      clearTimeout(deadline);
      connection.dispose();
      process.stdin.destroy();
      // Exit once everything written so far (the shutdown answer) has left stdout; a worker thread still inside
      // a graph call would keep the process alive, so it is ended if it does not end by itself.
      process.stdout.write('', () => {
        resolve(code);
        setTimeout(() => process.exit(code), STOP_DEADLINE_MS).unref();
      });
    };
    connection.onRequest(ShutdownRequest, async () => {
      setImmediate(() => void stop('shutdown requested', 0));
    });
    connection.onClose(() => void stop('the client closed the connection', 0));
    reader.onFault((reason) => void stop(`protocol fault on stdin: ${reason}`, EXIT_PROTOCOL_FAULT));
    process.stdout.on('error', () => void stop('stdout closed', 0));
    connection.listen();
    log('info', `engine ${engine.status().version} serving on stdio (pid ${process.pid})`);
    if (nativeBinding.dir) log('info', `onnxruntime runs from ${nativeBinding.dir} (GPU set-up)`);
    if (nativeBinding.problem) log('warn', `onnxruntime runs from its package: ${nativeBinding.problem}`);
  });
}

function registerHandlers(
  connection: MessageConnection,
  engine: Engine,
  log: (level: LogParams['level'], message: string) => void,
): void {
  connection.onRequest(LoadModelRequest, (raw: unknown, cancellation) =>
    answer(LoadModelRequest.method, log, async () => {
      const params = validateLoadModelParams(raw);
      const abort = abortSignalOf(cancellation);
      try {
        return await engine.loadModel(params, progressSender(connection, params.progressToken), abort.signal);
      } finally {
        abort.dispose();
      }
    }),
  );

  connection.onRequest(UnloadModelRequest, (raw: unknown) =>
    answer(UnloadModelRequest.method, log, () => engine.unloadModel(validateUnloadModelParams(raw).modelId)),
  );

  connection.onRequest(InfillRequest, (raw: unknown, cancellation) =>
    answer(InfillRequest.method, log, async () => {
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
    answer(WarmPromptRequest.method, log, async () => {
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

/**
 * Runs a handler and turns engine errors into JSON-RPC errors with their protocol codes. Anything else is a bug:
 * its message and stack go to the log, and the client is told only that the engine failed, never internals.
 */
async function answer<T>(method: string, log: (level: LogParams['level'], message: string) => void, handler: () => Promise<T>): Promise<T> {
  try {
    return await handler();
  } catch (error) {
    if (error instanceof JobCancelledError) error = cancelledJobError(error);
    if (error instanceof EngineError) throw new ResponseError(error.code, error.message, error.data);
    log('error', `${method} failed: ${(error as Error)?.stack ?? String(error)}`);
    throw new ResponseError(-32603, `Internal engine error while handling ${method}; the engine log has the details.`);
  }
}
