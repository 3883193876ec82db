/**
 * The protocol fuzzer: writes each fault case (protocolFaults.ts) to a real `dlm serve` process's stdin,
 * followed by a valid request (the probe), and holds the engine to what it owes the case: the error reply
 * with the right code and id, or no reply, and then the probe's answer; or, for a broken frame, a protocol
 * fault logged on stderr and exit code 1, after which a fresh engine takes the next case. An engine that
 * neither answers nor exits within `hangMs` is deaf: a failure. The engines run with a frame timeout far
 * above `hangMs`, so every fault must be seen in the bytes themselves, never waited out.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import path from 'node:path';
import { StreamMessageReader, type Message, type ResponseMessage } from 'vscode-jsonrpc/node';
import { framingFault, messageFault, probe, randomBytes, type FaultCase } from './protocolFaults';

export const ENGINE_BUNDLE = path.join(__dirname, '..', '..', 'dist', 'engine', 'main.js');

export interface FuzzOptions {
  seed: number;
  /** Well-framed malformed messages (answered, the engine keeps running). */
  messageCases: number;
  /** Broken frames (each ends an engine). */
  framingCases: number;
  /** Random byte strings. */
  randomCases: number;
  /** How long an engine may take to answer the probe or exit before it counts as deaf. */
  hangMs?: number;
  onProgress?: (done: number, total: number) => void;
}

export interface FuzzReport {
  cases: number;
  /** Cases per kind of damage. */
  kinds: Record<string, number>;
  /** Error replies received, and probes answered. */
  errorReplies: number;
  probesAnswered: number;
  /** Engines that exited on a protocol fault (each replaced by a fresh one). */
  faultExits: number;
  /** What went wrong, one line per failed case (empty when every case was handled as owed). */
  failures: string[];
}

const isResponse = (m: Message): m is ResponseMessage => !('method' in m) && 'id' in m;

/** One `dlm serve` process spoken to in raw bytes; its output is read as JSON-RPC. */
class RawEngine {
  readonly child: ChildProcessWithoutNullStreams;
  readonly received: Message[] = [];
  stderr = '';
  exitCode: number | null | undefined;
  private readonly waiters = new Set<() => void>();

  constructor() {
    this.child = spawn(process.execPath, [ENGINE_BUNDLE, 'serve', '--log-level', 'warn', '--frame-timeout-ms', '600000'], { stdio: 'pipe' });
    this.child.stderr.on('data', (chunk: Buffer) => {
      this.stderr += chunk.toString();
      if (this.stderr.length > 20_000) this.stderr = this.stderr.slice(-10_000);
    });
    this.child.stdin.on('error', () => undefined); // writes after a fault exit
    new StreamMessageReader(this.child.stdout).listen((message) => {
      this.received.push(message);
      this.wake();
    });
    this.child.on('close', (code) => {
      this.exitCode = code;
      this.wake();
    });
  }

  private wake(): void {
    for (const waiter of this.waiters) waiter();
  }

  /** Resolves when `done()` holds, or with false after `ms`. */
  until(done: () => boolean, ms: number): Promise<boolean> {
    if (done()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const check = () => {
        if (!done()) return;
        finish(true);
      };
      const finish = (value: boolean) => {
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve(value);
      };
      const timer = setTimeout(() => finish(done()), ms);
      this.waiters.add(check);
    });
  }

  write(bytes: Buffer): void {
    this.child.stdin.write(bytes);
  }

  async stop(): Promise<void> {
    if (this.exitCode !== undefined) return;
    this.child.stdin.end();
    if (!(await this.until(() => this.exitCode !== undefined, 5000))) this.child.kill('SIGKILL');
    await this.until(() => this.exitCode !== undefined, 5000);
  }
}

function describeCase(n: number, c: FaultCase): string {
  return `case ${n} (${c.kind}, ${c.bytes.length} bytes: ${JSON.stringify(c.bytes.subarray(0, 80).toString('latin1'))})`;
}

export async function runProtocolFuzz(options: FuzzOptions): Promise<FuzzReport> {
  const hangMs = options.hangMs ?? 20_000;
  const cases: FaultCase[] = [];
  for (let n = 0; n < options.messageCases; n++) cases.push(messageFault(options.seed, n));
  for (let n = 0; n < options.framingCases; n++) cases.push(framingFault(options.seed, n));
  for (let n = 0; n < options.randomCases; n++) cases.push(randomBytes(options.seed, n));
  // Framing faults and random bytes spread among the messages, so engines also die with work behind them.
  const order = cases.map((c, i) => ({ c, key: (i * 2654435761) % 4294967296 })).sort((a, b) => a.key - b.key).map((x) => x.c);

  const report: FuzzReport = { cases: 0, kinds: {}, errorReplies: 0, probesAnswered: 0, faultExits: 0, failures: [] };
  let engine = new RawEngine();
  try {
    for (const [n, c] of order.entries()) {
      report.cases++;
      report.kinds[c.kind] = (report.kinds[c.kind] ?? 0) + 1;
      const probeId = `probe-${n}`;
      const from = engine.received.length;
      engine.write(Buffer.concat([c.bytes, probe(probeId)]));
      const responses = () => engine.received.slice(from).filter(isResponse);
      const answered = () => responses().some((r) => r.id === probeId && r.result !== undefined);
      const settled = await engine.until(() => answered() || engine.exitCode !== undefined, hangMs);
      // The probe's answer may have come just before the exit; the exit decides which outcome this was.
      if (settled && !answered()) await engine.until(() => engine.exitCode !== undefined, hangMs);
      const failure = (why: string) => report.failures.push(`${describeCase(n, c)}: ${why}`);
      const errors = responses().filter((r) => r.error !== undefined);
      report.errorReplies += errors.length;
      if (answered()) report.probesAnswered++;
      const exited = engine.exitCode !== undefined;

      if (!settled) failure(`neither answered the probe nor exited within ${hangMs} ms (deaf)`);
      else if (exited) {
        if (c.expect.outcome !== 'fault' && c.expect.outcome !== 'answered-or-fault') failure(`the engine exited (code ${engine.exitCode}); it owed a reply`);
        else if (engine.exitCode !== 1 || !/protocol fault/.test(engine.stderr)) {
          failure(`exit code ${engine.exitCode} without a protocol fault on stderr: ${engine.stderr.slice(-300)}`);
        }
      } else if (c.expect.outcome === 'fault') failure('answered the probe after a broken frame (it read a misaligned stream)');
      else if (c.expect.outcome === 'reply') {
        const { code, id } = c.expect;
        if (!errors.some((r) => r.error!.code === code && r.id === id)) {
          failure(`expected error ${code} for id ${JSON.stringify(id)}, got ${JSON.stringify(errors.map((r) => [r.id, r.error!.code, r.error!.message]))}`);
        }
      } else if (c.expect.outcome === 'silent' && errors.length > 0) failure(`expected no reply, got ${JSON.stringify(errors.map((r) => r.error))}`);

      if (exited) {
        report.faultExits++;
        engine = new RawEngine();
      }
      options.onProgress?.(n + 1, order.length);
    }
  } finally {
    await engine.stop();
  }
  return report;
}
