/** `dlm bench --step-cost` on the toy-size geometry: every variant converted, run and checked, in the JSON shape. */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { temporaryDir } from './graphTestSupport';

const ROOT = path.join(__dirname, '..', '..');
const ENGINE = path.join(ROOT, 'dist', 'engine', 'main.js');

describe('dlm bench --step-cost', function () {
  this.timeout(300_000);
  let tmp: string;
  beforeEach(() => (tmp = temporaryDir('step-cost')));
  afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('profiles the graph variants side by side and checks each against the full-logits graph', () => {
    const json = path.join(tmp, 'cost.json');
    const args = ['bench', '--step-cost', '--geometry', 'tiny-qwen2', '--rounds', '1', '--models-dir', path.join(tmp, 'models'), '--json', json];
    const run = spawnSync(process.execPath, [ENGINE, ...args], { cwd: ROOT, encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    const { stepCost } = JSON.parse(fs.readFileSync(json, 'utf8'));
    assert.deepEqual(
      stepCost.rows.map((r: { variant: string }) => r.variant.replace(/threads\d+$/, 'threads')),
      ['fp32', 'int4', 'int4+stats', 'int4+stats+acc4', 'int4+stats+acc4+threads', 'int8+stats', 'int8+stats+hybrid'],
    );
    const [reference, int4, stats, acc4, threads, int8, hybrid] = stepCost.rows;
    assert.equal(reference.top1Agreement, 1);
    assert.equal(reference.speedupVsReference, 1);
    // The stats head computes int4's logits: the same top-1 on every checked row, the same probability up to rounding.
    assert.equal(stats.top1Agreement, int4.top1Agreement);
    assert.ok(Math.abs(stats.meanTop1ProbabilityDifference - int4.meanTop1ProbabilityDifference) < 1e-5);
    // The hybrid lowering computes the same attention by other kernels: the same top-1, the same probability up to rounding.
    assert.equal(hybrid.top1Agreement, int8.top1Agreement);
    assert.ok(Math.abs(hybrid.meanTop1ProbabilityDifference - int8.meanTop1ProbabilityDifference) < 1e-5);
    for (const row of [reference, int4, stats, acc4, int8, hybrid]) assert.ok(row.fillMs > 0 && row.fillGraphMs > 0 && row.steps > 0);
    // int8 weights (8 bits per weight against int4's 4) stay at least as close to the fp32 graph's top-1.
    assert.ok(int8.top1Agreement >= int4.top1Agreement, `int8 ${int8.top1Agreement} against int4 ${int4.top1Agreement}`);
    // The threads variant differs in session options only: the graph alone is timed, no fills.
    assert.equal(threads.fillMs, null);
    assert.equal(threads.top1Agreement, acc4.top1Agreement);
    assert.match(run.stdout, /\| int4\+stats\+acc4 +\|/);
    const usage = spawnSync(process.execPath, [ENGINE, 'bench', '--step-cost'], { cwd: ROOT, encoding: 'utf8' });
    assert.equal(usage.status, 2);
    assert.match(usage.stderr, /--step-cost needs one --geometry/);
  });
});
