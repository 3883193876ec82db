/**
 * Kills the engine again and again under the extension's supervisor (extension/engineSupervisor.ts, the real
 * class with real `dlm serve` processes) while requests are in flight, and counts what happened to each
 * request: answered, failed with an error (the engine died under it), or lost (neither, within a deadline:
 * the failure this checks for). Every restarted engine must answer before it is killed in turn, and every
 * `loadEvery`-th one loads the model and fills, as the extension does after a restart. Used by the
 * supervisor test (test/extension/unit/engineSupervisor.test.ts) and the soak (test/reliability/soak.ts).
 */
import path from 'node:path';
import type { InfillParams } from '../../common/protocol';
import { seededRandom } from '../../engine/prepare/sourceTexts';
import type { EngineClient } from '../../extension/engineClient';
import { EngineSupervisor, type SupervisorLog } from '../../extension/engineSupervisor';
import { ENGINE_BUNDLE } from './protocolFuzz';

export interface KillOptions {
  kills: number;
  seed: number;
  /** A model folder the engines load. */
  modelDir: string;
  /** Every this many engines, one loads the model and fills before it is killed (the first always does). */
  loadEvery: number;
  /** How long a request may stay unanswered before it counts as lost. */
  deadlineMs?: number;
  onProgress?: (kills: number) => void;
}

export interface KillReport {
  kills: number;
  /** Distinct engine processes that answered. */
  engines: number;
  requests: number;
  answered: number;
  /** Requests that failed with an error: the engine died under them. */
  failed: number;
  /** Requests with neither an answer nor an error within the deadline. */
  lost: number;
  /** Fills completed by engines that loaded the model after a restart. */
  fills: number;
  /** Stderr lines of the engines that are not their own log lines (crash traces). */
  stderr: string[];
}

const FILL: Omit<InfillParams, 'modelId'> = { prefix: 'def add(a, b):\n    ', suffix: '\n', length: 24, options: { steps: 24, cache: 'none' } };

export async function killUnderSupervisor(options: KillOptions): Promise<KillReport> {
  const deadlineMs = options.deadlineMs ?? 60_000;
  const random = seededRandom(options.seed);
  const report: KillReport = { kills: 0, engines: 0, requests: 0, answered: 0, failed: 0, lost: 0, fills: 0, stderr: [] };
  const quiet = () => undefined;
  const log: SupervisorLog = { info: quiet, warn: quiet, error: quiet, debug: quiet, engine: quiet, engineStderr: (line) => report.stderr.push(line) };
  const supervisor = new EngineSupervisor({
    enginePath: ENGINE_BUNDLE,
    args: ['serve', '--log-level', 'warn'],
    cwd: path.dirname(ENGINE_BUNDLE),
    log,
    restartDelaysMs: [10],
    crashBudget: { crashes: options.kills + 1, windowMs: 3_600_000 },
  });
  const pending = new Set<Promise<void>>();
  /** Tracks a request to the end: answered, failed, or lost at the deadline. */
  const track = (request: () => Promise<unknown>) => {
    report.requests++;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'lost'>((resolve) => (timer = setTimeout(() => resolve('lost'), deadlineMs)));
    const outcome: Promise<void> = Promise.race([
      request().then(
        () => 'answered' as const,
        () => 'failed' as const,
      ),
      deadline,
    ]).then((result) => {
      clearTimeout(timer);
      report[result]++;
      pending.delete(outcome);
    });
    pending.add(outcome);
  };

  supervisor.start();
  const pids = new Set<number>();
  let previous = -1;
  try {
    for (let kill = 0; kill <= options.kills; kill++) {
      const client = await waitForNewEngine(supervisor, previous, deadlineMs);
      previous = client.pid;
      // Recovery: the new engine answers, and now and then loads the model and fills.
      const status = await client.status();
      if (status.pid !== client.pid) throw new Error(`engine ${client.pid} answered as ${status.pid}`);
      pids.add(client.pid);
      let modelId: string | undefined;
      if (kill % options.loadEvery === 0) {
        modelId = (await client.loadModel({ model: options.modelDir, device: 'cpu' }, () => undefined)).modelId;
        await client.infill({ modelId, ...FILL, options: { steps: 4 }, length: 4 }, undefined);
        report.fills++;
      }
      if (kill === options.kills) break;
      // Work in flight when the engine dies: status requests, and a fill when a model is loaded.
      for (let i = 0; i < 3; i++) void track(() => client.status());
      if (modelId) void track(() => client.infill({ modelId: modelId!, ...FILL }, () => undefined));
      await new Promise((resolve) => setTimeout(resolve, Math.floor(random() * 30)));
      process.kill(client.pid, random() < 0.5 ? 'SIGKILL' : 'SIGTERM');
      report.kills++;
      // Asked while the engine restarts: answered by the next one.
      void track(async () => (await supervisor.whenRunning()).status());
      options.onProgress?.(report.kills);
    }
    await Promise.all(pending);
  } finally {
    await supervisor.stop();
    supervisor.dispose();
  }
  report.engines = pids.size;
  return report;
}

/** The supervisor's client once it runs an engine other than `previous` that answers. */
async function waitForNewEngine(supervisor: EngineSupervisor, previous: number, deadlineMs: number): Promise<EngineClient> {
  const started = Date.now();
  for (;;) {
    const state = supervisor.state;
    if (state.kind === 'failed') throw new Error(`the supervisor gave up: ${state.message}`);
    if (state.kind === 'running' && state.client.pid !== previous) return state.client;
    if (Date.now() - started > deadlineMs) throw new Error(`no new engine within ${deadlineMs} ms (state ${state.kind})`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
