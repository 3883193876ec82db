/**
 * The reliability soak (`npm run soak`, after `npm run build`): the long runs of the reliability suite whose
 * short versions are in `npm test`. Three parts, each a pass/fail check with figures for the README:
 *  1. requests: thousands of infills on the built-in model, as typing sends them (documents with a growing
 *     prefix, cancels, superseded requests, bad params), through the extension's supervisor and client, with
 *     the engine's resident memory sampled throughout: it must stay flat after warm-up, and status requests
 *     sent alongside must keep being answered;
 *  2. protocol faults: the seeded fuzzer (protocolFuzz.ts) with thousands of malformed messages and frames;
 *  3. kills: the engine killed again and again under the supervisor (supervisedKills.ts), no request lost.
 * Exit code 0 when every check holds, 1 otherwise.
 *
 *   npx tsx test/reliability/soak.ts [--requests 5000] [--faults 10000] [--kills 300] [--seed 1] [--json soak.json]
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { CancellationTokenSource } from 'vscode-jsonrpc/node';
import { writeSyntheticModel } from '../../engine/model/synthetic';
import { loadSourceTexts, seededRandom } from '../../engine/prepare/sourceTexts';
import type { EngineClient } from '../../extension/engineClient';
import { EngineSupervisor, type SupervisorLog } from '../../extension/engineSupervisor';
import { ENGINE_BUNDLE, runProtocolFuzz, type FuzzReport } from './protocolFuzz';
import { killUnderSupervisor, type KillReport } from './supervisedKills';

const ROOT = path.join(__dirname, '..', '..');
/** Resident memory may grow this much from the first quarter after warm-up to the last before it counts as a leak. */
const MAX_GROWTH_MB = 25;
/** The first share of the samples is warm-up (caches, the prefix store and V8's heap filling up). */
const WARM_UP_SHARE = 0.2;

interface RequestReport {
  requests: number;
  fills: number;
  cancelled: number;
  superseded: number;
  refused: number;
  errors: string[];
  /** Resident memory of the engine, MB, sampled every `sampleEvery` requests. */
  rssMb: number[];
  sampleEvery: number;
  peakRssMb: number;
  growthMb: number;
  statusRequests: number;
  /** Status round trips while the fills ran, ms. */
  statusMedianMs: number;
  statusMaxMs: number;
}

/** Resident set size of a process in MB (Linux /proc; elsewhere `ps`). */
function rssMb(pid: number): number {
  const status = `/proc/${pid}/status`;
  if (fs.existsSync(status)) {
    const kb = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(status, 'utf8'))?.[1];
    if (kb) return Number(kb) / 1024;
  }
  return Number(execFileSync('ps', ['-o', 'rss=', '-p', String(pid)]).toString().trim()) / 1024;
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);

async function soakRequests(count: number, seed: number): Promise<RequestReport> {
  const random = seededRandom(seed);
  const texts = loadSourceTexts(path.join(ROOT, 'engine')).filter((t) => t.text.length > 2000);
  const quiet = () => undefined;
  const log: SupervisorLog = { info: quiet, warn: quiet, error: quiet, debug: quiet, engine: quiet, engineStderr: (line) => process.stderr.write(`engine: ${line}\n`) };
  const supervisor = new EngineSupervisor({ enginePath: ENGINE_BUNDLE, args: ['serve', '--log-level', 'error'], cwd: ROOT, log });
  supervisor.start();
  const client: EngineClient = await supervisor.whenRunning();
  const { modelId } = await client.loadModel({ model: 'builtin', device: 'cpu' }, quiet);
  const sampleEvery = Math.max(10, Math.floor(count / 200));
  const report: RequestReport = {
    requests: 0, fills: 0, cancelled: 0, superseded: 0, refused: 0, errors: [], rssMb: [], sampleEvery,
    peakRssMb: 0, growthMb: 0, statusRequests: 0, statusMedianMs: 0, statusMaxMs: 0,
  };

  // Status requests alongside the fills: the protocol thread must keep answering.
  const latencies: number[] = [];
  let running = true;
  const statusLoop = (async () => {
    while (running) {
      const started = performance.now();
      await client.status();
      latencies.push(performance.now() - started);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  })();

  const outcome = (error: unknown) => {
    const message = (error as Error).message;
    if (/^Cancelled/.test(message)) report.cancelled++;
    else if (/^Superseded/.test(message)) report.superseded++;
    else if (/must be|unknown field/.test(message)) report.refused++;
    else report.errors.push(message);
  };
  for (let i = 0; i < count; i++) {
    // A document being typed: a file cut at a point that moves forward with i, so consecutive requests share a prefix.
    const text = texts[Math.floor(i / 50) % texts.length].text;
    const cut = Math.min(text.length - 1, 200 + ((i % 50) * 37 + Math.floor(random() * 10)));
    const document = `file:///soak/${Math.floor(i / 50) % 8}.ts`;
    const params = { modelId, documentId: document, prefix: text.slice(0, cut), suffix: text.slice(cut, cut + 400), length: 16, fitToModel: true, options: { steps: 16 } };
    const kind = random();
    report.requests++;
    try {
      if (kind < 0.7) {
        await client.infill(params, () => undefined);
        report.fills++;
      } else if (kind < 0.8) {
        const source = new CancellationTokenSource();
        await client.infill(params, (p) => p.step >= 2 && source.cancel(), source.token).then(() => report.fills++, outcome);
      } else if (kind < 0.9) {
        // Typing on: the older request for the document is superseded by the newer.
        report.requests++;
        const older = client.infill(params, () => undefined).then(() => report.fills++, outcome);
        await client.infill({ ...params, prefix: params.prefix + 'x' }, undefined).then(() => report.fills++, outcome);
        await older;
      } else if (kind < 0.95) {
        await client.status();
      } else {
        await client.infill({ ...params, length: 0 }, undefined).then(() => report.errors.push('length 0 was accepted'), outcome);
      }
    } catch (error) {
      outcome(error);
    }
    if (i % sampleEvery === 0) report.rssMb.push(rssMb(client.pid));
    if (i % 500 === 0) process.stderr.write(`requests: ${i} of ${count}, engine RSS ${report.rssMb[report.rssMb.length - 1].toFixed(0)} MB\n`);
  }
  running = false;
  await statusLoop;
  report.rssMb.push(rssMb(client.pid));
  await supervisor.stop();
  supervisor.dispose();

  const settled = report.rssMb.slice(Math.floor(report.rssMb.length * WARM_UP_SHARE));
  const quarter = Math.max(1, Math.floor(settled.length / 4));
  report.peakRssMb = Math.round(Math.max(...report.rssMb));
  report.growthMb = Math.round((mean(settled.slice(-quarter)) - mean(settled.slice(0, quarter))) * 10) / 10;
  const sorted = [...latencies].sort((a, b) => a - b);
  report.statusRequests = latencies.length;
  report.statusMedianMs = Math.round(sorted[Math.floor(sorted.length / 2)] ?? 0);
  report.statusMaxMs = Math.round(sorted[sorted.length - 1] ?? 0);
  return report;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      requests: { type: 'string', default: '5000' },
      faults: { type: 'string', default: '10000' },
      kills: { type: 'string', default: '300' },
      seed: { type: 'string', default: '1' },
      json: { type: 'string' },
    },
  });
  const seed = Number(values.seed);
  if (!fs.existsSync(ENGINE_BUNDLE)) throw new Error(`${ENGINE_BUNDLE} is missing: run npm run build first`);
  const started = Date.now();
  const failures: string[] = [];

  const requests = await soakRequests(Number(values.requests), seed);
  if (requests.errors.length) failures.push(`requests: ${requests.errors.length} unexpected errors, e.g. ${requests.errors[0]}`);
  if (requests.growthMb > MAX_GROWTH_MB) failures.push(`requests: resident memory grew ${requests.growthMb} MB after warm-up (limit ${MAX_GROWTH_MB})`);

  const faults = Number(values.faults);
  const fuzz: FuzzReport = await runProtocolFuzz({
    seed,
    messageCases: Math.round(faults * 0.93),
    framingCases: Math.round(faults * 0.05),
    randomCases: Math.round(faults * 0.02),
    onProgress: (done, total) => done % 1000 === 0 && process.stderr.write(`faults: ${done} of ${total}\n`),
  });
  if (fuzz.failures.length) failures.push(`faults: ${fuzz.failures.length} cases not handled as owed, e.g. ${fuzz.failures[0]}`);

  const modelDir = fs.mkdtempSync(path.join(os.tmpdir(), 'dlm-soak-'));
  let kills: KillReport;
  try {
    await writeSyntheticModel(modelDir, { preset: 'tiny-dream', seed: 3, variants: [{ precision: 'fp32', cacheDtype: 'float32', attention: 'gqa', head: 'logits', topK: 0 }] });
    kills = await killUnderSupervisor({
      kills: Number(values.kills),
      seed,
      modelDir,
      loadEvery: 5,
      onProgress: (n) => n % 50 === 0 && process.stderr.write(`kills: ${n} of ${values.kills}\n`),
    });
  } finally {
    fs.rmSync(modelDir, { recursive: true, force: true });
  }
  if (kills.lost) failures.push(`kills: ${kills.lost} requests got neither an answer nor an error`);
  if (kills.engines !== kills.kills + 1) failures.push(`kills: ${kills.engines} engines answered after ${kills.kills} kills`);

  const summary = {
    seconds: Math.round((Date.now() - started) / 1000),
    requests: { ...requests, rssMb: requests.rssMb.map((x) => Math.round(x)) },
    faults: { ...fuzz, failures: fuzz.failures.slice(0, 20) },
    kills: { ...kills, stderr: kills.stderr.slice(0, 20) },
    failures,
  };
  if (values.json) fs.writeFileSync(values.json, `${JSON.stringify(summary, null, 2)}\n`);
  const r = requests;
  process.stdout.write(
    [
      `requests: ${r.requests} (${r.fills} fills, ${r.cancelled} cancelled, ${r.superseded} superseded, ${r.refused} refused); ` +
        `engine RSS peak ${r.peakRssMb} MB, growth after warm-up ${r.growthMb} MB; ` +
        `status answered in ${r.statusMedianMs} ms (median), ${r.statusMaxMs} ms (max) over ${r.statusRequests} requests`,
      `faults: ${fuzz.cases} tried (${Object.keys(fuzz.kinds).length} kinds), ${fuzz.errorReplies} error replies, ` +
        `${fuzz.probesAnswered} valid requests answered after them, ${fuzz.faultExits} engines ended by a broken frame`,
      `kills: ${kills.kills} (${kills.engines} engines), ${kills.requests} requests: ${kills.answered} answered, ` +
        `${kills.failed} failed with the engine, ${kills.lost} lost; ${kills.fills} fills after restarts`,
      `${failures.length ? `FAILED: ${failures.join('; ')}` : 'all checks held'} (${summary.seconds} s)`,
      '',
    ].join('\n'),
  );
  return failures.length ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`soak: ${(error as Error).stack ?? String(error)}\n`);
    process.exit(1);
  },
);
