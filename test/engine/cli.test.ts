/** The `dlm` command line, run as the built bundle (`node dist/engine/main.js ...`). */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { writeSyntheticModel } from '../../engine/model/synthetic';
import { Tokenizer } from '../../engine/model/tokenizer';
import type { InfillResult } from '../../common/protocol';

const ROOT = path.join(__dirname, '..', '..');
const ENGINE = path.join(ROOT, 'dist', 'engine', 'main.js');

function dlm(args: string[], env: NodeJS.ProcessEnv = {}) {
  const run = spawnSync(process.execPath, [ENGINE, ...args], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, ...env } });
  return { code: run.status, stdout: run.stdout, stderr: run.stderr };
}

describe('dlm command line', function () {
  this.timeout(120_000);
  let dir: string;
  let modelDir: string;

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'dlm-cli-'));
    modelDir = path.join(dir, 'model');
    await writeSyntheticModel(modelDir, { preset: 'tiny-dream', seed: 5 });
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('infill --json returns the fill with its stats', () => {
    const run = dlm(['infill', '--model', modelDir, '--device', 'cpu', '--prefix', 'def f(x):\n    return ', '--suffix', '\n', '--length', '12', '--steps', '6', '--cache', 'decode', '--json']);
    assert.equal(run.code, 0, run.stderr);
    const result = JSON.parse(run.stdout) as InfillResult & { model: string };
    assert.equal(result.model, 'synthetic-tiny-dream');
    assert.equal(typeof result.text, 'string');
    assert.equal(result.stats.genTokens, 12);
    assert.equal(result.stats.steps, 6);
    assert.equal(result.stats.cache, 'decode');
    assert.equal(result.stats.device, 'cpu');
    const tokenizer = Tokenizer.load(path.join(modelDir, 'tokenizer.json'));
    assert.equal(result.stats.promptTokens, tokenizer.encode('def f(x):\n    return ').length + tokenizer.encode('\n').length);
  });

  it('is deterministic for a fixed seed', () => {
    const args = ['infill', '--model', modelDir, '--prefix', 'abc', '--suffix', 'xyz', '--length', '10', '--seed', '9', '--json'];
    const first = JSON.parse(dlm(args).stdout) as InfillResult;
    const second = JSON.parse(dlm(args).stdout) as InfillResult;
    assert.equal(first.text, second.text);
  });

  it('cuts a hole of whole lines from a file, sized like the lines it replaces', () => {
    const file = path.join(dir, 'example.py');
    const source = 'def f(x):\n    y = x + 1\n    return y\n\nprint(f(2))\n';
    writeFileSync(file, source);
    const run = dlm(['infill', '--model', modelDir, '--file', file, '--line', '2', '--select-lines', '2', '--json']);
    assert.equal(run.code, 0, run.stderr);
    const result = JSON.parse(run.stdout) as InfillResult;
    const tokenizer = Tokenizer.load(path.join(modelDir, 'tokenizer.json'));
    assert.equal(result.stats.genTokens, tokenizer.encode('    y = x + 1\n    return y').length);
    assert.equal(result.stats.promptTokens, tokenizer.encode('def f(x):\n').length + tokenizer.encode('\n\nprint(f(2))\n').length);
  });

  it('prints plain progress lines for --visual when stdout is not a terminal', () => {
    const run = dlm(['infill', '--model', modelDir, '--prefix', 'a = ', '--suffix', '', '--length', '8', '--steps', '4', '--visual']);
    assert.equal(run.code, 0, run.stderr);
    const steps = run.stderr.split('\n').filter((line) => /^step \d+\/4 \(\d+\/8 tokens\): ".*"$/.test(line));
    assert.equal(steps.length, 4);
    assert.match(steps[3], /^step 4\/4 \((\d+)\/8 tokens\)/);
  });

  it('runs the built-in model built by npm run build on the example file', () => {
    const run = dlm(['infill', '--model', 'builtin', '--file', 'media/examples/fizzbuzz.py', '--line', '5', '--select-lines', '2', '--json']);
    assert.equal(run.code, 0, run.stderr);
    const result = JSON.parse(run.stdout) as InfillResult & { model: string };
    assert.equal(result.model, JSON.parse(readFileSync(path.join(ROOT, 'dist', 'models', 'builtin', 'dlm-model.json'), 'utf8')).name);
    assert.ok(result.stats.genTokens > 0);
  });

  it('exits 2 with a message for usage mistakes', () => {
    const cases: [string[], RegExp][] = [
      [['infill', '--model', modelDir, '--prefix', 'a', '--bogus'], /Unknown option '--bogus'/],
      [['infill', '--model', modelDir, '--prefix', 'a', '--length', 'ten'], /--length expects an integer, got 'ten'/],
      [['infill', '--model', modelDir, '--prefix', 'a', '--cache', 'everything'], /--cache must be one of none, decode, greedy, prefill(, [a-z-]+)*; got 'everything'/],
      [['infill', '--model', modelDir, '--prefix', 'a', '--temperature', 'hot'], /--temperature expects a number/],
      [['infill', '--model', modelDir], /Give --prefix and\/or --suffix, or --file with --line/],
      [['infill', '--model', modelDir, '--file', 'media/examples/fizzbuzz.py'], /--file needs --line/],
      [['infill', '--model', modelDir, '--file', 'media/examples/fizzbuzz.py', '--line', '999'], /--line must be in 1\.\.\d+/],
      [['infill', '--model', modelDir, '--prefix', 'a', '--steps', '0'], /steps/],
      [['infill', '--model', modelDir, '--prefix', 'a', '--length', '5000'], /length 5000 is more than the model's canvas of 1024 tokens/],
      [['frobnicate'], /Unknown command 'frobnicate'/],
      [['bench', '--model', 'huge'], /--model takes tiny, medium or all/],
      [['build-builtin'], /Missing argument <out-dir>/],
    ];
    for (const [args, message] of cases) {
      const run = dlm(args);
      assert.equal(run.code, 2, `${args.join(' ')}: exit ${run.code}, stderr ${run.stderr}`);
      assert.match(run.stderr, message, args.join(' '));
      assert.equal(run.stdout, '');
    }
  });

  it('fails with exit 1 and the reason when the model cannot be loaded', () => {
    const run = dlm(['infill', '--model', path.join(dir, 'missing'), '--prefix', 'a']);
    assert.equal(run.code, 1);
    assert.match(run.stderr, /does not exist/);
  });

  it('has help for every command', () => {
    const overview = dlm(['help']);
    assert.equal(overview.code, 0);
    for (const name of ['serve', 'infill', 'bench', 'build-builtin']) {
      assert.match(overview.stdout, new RegExp(`^  ${name} `, 'm'));
      const help = dlm([name, '--help']);
      assert.equal(help.code, 0);
      assert.match(help.stdout, new RegExp(`^Usage: dlm ${name}`));
      assert.equal(dlm(['help', name]).stdout, help.stdout);
    }
    const infillHelp = dlm(['infill', '--help']).stdout;
    for (const flag of ['--steps', '--block-length', '--schedule', '--threshold', '--algorithm', '--temperature', '--seed', '--refresh-interval', '--window', '--greedy-order', '--device', '--cache', '--visual', '--json']) {
      assert.ok(infillHelp.includes(flag), `infill --help lists ${flag}`);
    }
    assert.equal(dlm([]).code, 2);
  });
});
