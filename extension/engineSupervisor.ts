/**
 * Runs the engine process: spawned with the editor's own Node (`process.execPath` with
 * `ELECTRON_RUN_AS_NODE=1`, so nothing has to be installed), JSON-RPC over its stdin/stdout, stderr kept in
 * a ring buffer for diagnostics. A crash is followed by a restart after a growing delay; too many crashes
 * in a short time stop the restarts (the `failed` state says why, with the last stderr lines). It uses no VS Code
 * API, so the reliability tests run it as it is with real engine processes (test/extension/unit/engineSupervisor.test.ts).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as os from 'node:os';
import { createMessageConnection, Emitter, StreamMessageReader, StreamMessageWriter, type CancellationToken, type Disposable } from 'vscode-jsonrpc/node';
import type { LogParams } from '../common/protocol';
import { EngineClient } from './engineClient';

export type EngineState =
  | { kind: 'stopped' }
  | { kind: 'starting' }
  | { kind: 'running'; client: EngineClient }
  | { kind: 'restarting'; crashes: number; delayMs: number }
  | { kind: 'failed'; message: string };

/** Where the supervisor logs (the extension's output channel). */
export interface SupervisorLog {
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
  debug(message: string): void;
  /** A `dlm/log` notification from the engine. */
  engine(params: LogParams): void;
  /** A line the engine wrote to stderr that is not one of its own log lines (a crash trace). */
  engineStderr(line: string): void;
}

export interface SupervisorOptions {
  /** The engine bundle, `dist/engine/main.js`. */
  enginePath: string;
  /** Arguments after the bundle (`serve` and its flags). */
  args: string[];
  /** Extra environment, read at each start (e.g. where onnxruntime runs from after the GPU set-up). */
  env?: () => Record<string, string>;
  cwd: string;
  log: SupervisorLog;
  /** Delay before the n-th restart in a row (the last one repeats). */
  restartDelaysMs?: number[];
  /** More than `crashes` crashes within `windowMs` stop the restarts. */
  crashBudget?: { crashes: number; windowMs: number };
}

const STDERR_LINES_KEPT = 100;
const ENGINE_LOG_LINE = /^\[dlm (debug|info|warn|error)\] /;
const STDERR_LINES_SHOWN = 6;
const SHUTDOWN_GRACE_MS = 2000;
/** Nice value of the engine process (0 = normal, 19 = lowest). */
const ENGINE_NICENESS = 10;

export class EngineSupervisor implements Disposable {
  private readonly stateEmitter = new Emitter<EngineState>();
  /** Fires on every state change; `running` again after each restart (a new process, a new client). */
  readonly onDidChangeState = this.stateEmitter.event;

  private current: EngineState = { kind: 'stopped' };
  private child: ChildProcess | undefined;
  private readonly stderrTail: string[] = [];
  private crashTimes: number[] = [];
  private restartTimer: NodeJS.Timeout | undefined;
  private readonly restartDelaysMs: number[];
  private readonly crashBudget: { crashes: number; windowMs: number };

  constructor(private readonly options: SupervisorOptions) {
    this.restartDelaysMs = options.restartDelaysMs ?? [250, 1000, 2000, 4000, 8000];
    this.crashBudget = options.crashBudget ?? { crashes: 5, windowMs: 3 * 60_000 };
  }

  get state(): EngineState {
    return this.current;
  }

  /** The last lines the engine wrote to stderr, oldest first. */
  get lastStderr(): readonly string[] {
    return this.stderrTail;
  }

  /** Starts the engine unless it is running or starting; clears a failed state (the Retry action). */
  start(): void {
    if (this.current.kind === 'running' || this.current.kind === 'starting') return;
    clearTimeout(this.restartTimer);
    if (this.current.kind === 'failed' || this.current.kind === 'stopped') this.crashTimes = [];
    this.spawnEngine();
  }

  /** Stops the engine (asking it to shut down first) and starts a fresh one with a fresh crash budget. */
  async restart(): Promise<void> {
    await this.stop();
    this.start();
  }

  /** Resolves with the client of the running engine; waits while it starts or restarts. */
  whenRunning(token?: CancellationToken): Promise<EngineClient> {
    const state = this.current;
    if (state.kind === 'running') return Promise.resolve(state.client);
    if (state.kind === 'failed' || state.kind === 'stopped') {
      return Promise.reject(new Error(state.kind === 'failed' ? state.message : 'The DLM engine is not running.'));
    }
    return new Promise((resolve, reject) => {
      const subscriptions: Disposable[] = [];
      const done = () => subscriptions.forEach((s) => s.dispose());
      subscriptions.push(
        this.onDidChangeState((next) => {
          if (next.kind === 'running') {
            done();
            resolve(next.client);
          } else if (next.kind === 'failed' || next.kind === 'stopped') {
            done();
            reject(new Error(next.kind === 'failed' ? next.message : 'The DLM engine was stopped.'));
          }
        }),
      );
      if (token) {
        subscriptions.push(
          token.onCancellationRequested(() => {
            done();
            reject(new Error('Cancelled while waiting for the engine.'));
          }),
        );
      }
    });
  }

  /** Asks the engine to shut down, then ends it if it does not exit in time. */
  async stop(): Promise<void> {
    clearTimeout(this.restartTimer);
    const child = this.child;
    const state = this.current;
    this.child = undefined;
    this.setState({ kind: 'stopped' });
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    if (state.kind === 'running') {
      await Promise.race([state.client.shutdown().catch(() => undefined), delay(SHUTDOWN_GRACE_MS)]);
    }
    child.stdin?.end();
    if (await settlesWithin(exited, SHUTDOWN_GRACE_MS)) return;
    child.kill('SIGTERM');
    if (await settlesWithin(exited, SHUTDOWN_GRACE_MS)) return;
    child.kill('SIGKILL');
    await exited;
  }

  dispose(): void {
    void this.stop();
    this.stateEmitter.dispose();
  }

  private setState(state: EngineState): void {
    this.current = state;
    this.stateEmitter.fire(state);
  }

  private spawnEngine(): void {
    const { enginePath, args, cwd, log } = this.options;
    this.setState({ kind: 'starting' });
    const child = spawn(process.execPath, [enginePath, ...args], {
      cwd,
      env: { ...process.env, ...this.options.env?.(), ELECTRON_RUN_AS_NODE: '1' },
      stdio: ['pipe', 'pipe', 'pipe'],
      windowsHide: true,
    });
    this.child = child;
    lowerPriority(child, this.options.log);

    let stderrRest = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => {
      const lines = (stderrRest + chunk).split(/\r?\n/);
      stderrRest = lines.pop() ?? '';
      for (const line of lines) this.keepStderr(line);
    });

    child.once('error', (error) => {
      // Spawning failed (no process); 'exit' may not follow.
      this.keepStderr(`cannot start the engine: ${error.message}`);
      if (this.child === child) this.onCrash(child, `could not be started (${error.message})`);
    });
    child.once('exit', (code, signal) => {
      if (stderrRest) this.keepStderr(stderrRest);
      connection.dispose();
      if (this.child !== child) return; // stopped on purpose
      this.onCrash(child, signal ? `was killed by ${signal}` : `exited with code ${code}`);
    });

    const reader = new StreamMessageReader(child.stdout);
    // Its partial-message timer only reports a slow message, and it outlives the connection when the engine dies
    // mid-message (disposing the reader does not clear it): one timer left firing every 10 s per crash.
    reader.partialMessageTimeout = 0;
    const connection = createMessageConnection(reader, new StreamMessageWriter(child.stdin));
    // A write to a dead process fails; the 'exit' handler does the rest.
    connection.onError(([error]) => log.debug(`engine connection: ${error.message}`));
    const client = new EngineClient(connection, child.pid ?? -1, (params) => log.engine(params));
    connection.listen();
    log.info(`Engine started (pid ${child.pid}): ${enginePath} ${args.join(' ')}`);
    if (child.pid !== undefined) this.setState({ kind: 'running', client });
  }

  private keepStderr(line: string): void {
    if (line.trim() === '') return;
    // The engine's own log lines also arrive as `dlm/log` notifications; echo only the rest (crash traces).
    if (!ENGINE_LOG_LINE.test(line)) this.options.log.engineStderr(line);
    this.stderrTail.push(line);
    if (this.stderrTail.length > STDERR_LINES_KEPT) this.stderrTail.shift();
  }

  private onCrash(child: ChildProcess, how: string): void {
    this.child = undefined;
    const now = Date.now();
    this.crashTimes = [...this.crashTimes.filter((t) => now - t < this.crashBudget.windowMs), now];
    const crashes = this.crashTimes.length;
    this.options.log.error(`Engine (pid ${child.pid ?? '-'}) ${how}.`);

    if (crashes > this.crashBudget.crashes) {
      const seconds = Math.round(this.crashBudget.windowMs / 1000);
      const tail = this.stderrTail.slice(-STDERR_LINES_SHOWN);
      const message =
        `The DLM engine ${how} and crashed ${crashes} times within ${seconds} s, so it is not restarted again; ` +
        `completions are off.` +
        (tail.length ? ` Last engine output: ${tail.join(' | ')}` : '');
      this.setState({ kind: 'failed', message });
      return;
    }
    const delayMs = this.restartDelaysMs[Math.min(crashes - 1, this.restartDelaysMs.length - 1)];
    this.options.log.warn(`Restarting the engine in ${delayMs} ms (crash ${crashes} of at most ${this.crashBudget.crashes} in a row).`);
    this.setState({ kind: 'restarting', crashes, delayMs });
    this.restartTimer = setTimeout(() => this.spawnEngine(), delayMs);
  }
}

/**
 * The engine is background work: below the editor's priority, so denoising on the CPU never makes typing or
 * the ghost-text refreshes lag (on a GPU the engine's host threads are mostly idle anyway).
 */
function lowerPriority(child: ChildProcess, log: SupervisorLog): void {
  if (child.pid === undefined) return;
  try {
    os.setPriority(child.pid, ENGINE_NICENESS);
  } catch (error) {
    log.debug(`Could not lower the engine's priority: ${(error as Error).message}`);
  }
}

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function settlesWithin(promise: Promise<void>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  const settled = await Promise.race([promise.then(() => true), timeout]);
  clearTimeout(timer);
  return settled;
}
