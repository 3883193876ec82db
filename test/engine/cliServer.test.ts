/**
 * `dlm infill --server`: the built CLI in a child process, filling holes through the stand-in SGLang/vLLM server on
 * 127.0.0.1 (run asynchronously, so this process's server can answer).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { InferenceTestServer } from '../common/inferenceTestServer';

const ROOT = path.join(__dirname, '..', '..');
const ENGINE = path.join(ROOT, 'dist', 'engine', 'main.js');

function dlm(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [ENGINE, ...args], { cwd: ROOT, env: { ...process.env, DLM_SERVER_API_KEY: '', ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('dlm infill --server (child process, stand-in server)', function () {
  this.timeout(60_000);
  let server: InferenceTestServer;

  beforeEach(async () => {
    server = new InferenceTestServer({ apiKey: 'cli-key' });
    server.answer = () => '```python\n    if n % 15 == 0:\n        return "FizzBuzz"\n```';
    await server.start();
  });
  afterEach(() => server.stop());

  it('fills whole lines of a file through the openai API, key from the environment, as JSON', async () => {
    const run = await dlm(
      ['infill', '--server', server.baseUrl, '--file', 'media/examples/fizzbuzz.py', '--line', '5', '--select-lines', '2', '--json'],
      { DLM_SERVER_API_KEY: 'cli-key' },
    );
    assert.equal(run.code, 0, run.stderr);
    const result = JSON.parse(run.stdout) as { model: string; template: string; api: string; text: string; stats: { retries: number; events: number } };
    assert.equal(result.model, 'inclusionAI/LLaDA2.0-mini');
    assert.equal(result.template, 'llada2');
    assert.equal(result.api, 'openai');
    assert.equal(result.text, '    if n % 15 == 0:\n        return "FizzBuzz"', 'the answer out of its fence');
    assert.ok(result.stats.events > 1);
    const [request] = server.completions;
    assert.equal(request.authorization, 'Bearer cli-key');
    assert.ok(request.prompt.includes('this py file') && request.prompt.includes('```py\n'), 'the language from the file name');
  });

  it('prints the fill through the sglang API with --server-model naming the family', async () => {
    server.answer = () => 'fizz_buzz(n)\nnext line';
    const run = await dlm(
      ['infill', '--server', `${server.baseUrl}/`, '--api', 'sglang', '--server-model', 'inclusionAI/LLaDA2.1-mini', '--prefix', 'print(', '--suffix', ' + 1)\n', '--temperature', '0'],
      { DLM_SERVER_API_KEY: 'cli-key' },
    );
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, 'fizz_buzz(n)\n', 'a hole in the middle of a line gets one line');
    assert.match(run.stderr, /inclusionAI\/LLaDA2\.1-mini on 127\.0\.0\.1:\d+ \(sglang, template llada2\)/);
    assert.equal(server.completions[0].route, '/generate');
    assert.equal((server.completions[0].body.sampling_params as Record<string, unknown>).temperature, 0);
  });

  it('exits 1 with the reason for a refused key, a failing server and a dropped stream', async () => {
    const refused = await dlm(['infill', '--server', server.baseUrl, '--prefix', 'a = ']);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /^dlm infill: The server refused the list of models \(\/v1\/models\) \(HTTP 401: Unauthorized\): set its API key/);
    server.faults.push({ status: 500 });
    const failed = await dlm(['infill', '--server', server.baseUrl, '--prefix', 'a = '], { DLM_SERVER_API_KEY: 'cli-key' });
    assert.equal(failed.code, 1);
    assert.match(failed.stderr, /HTTP 500: stand-in fault 500/);
    server.faults.push({ dropAfterEvents: 1 });
    const dropped = await dlm(['infill', '--server', server.baseUrl, '--prefix', 'a = '], { DLM_SERVER_API_KEY: 'cli-key' });
    assert.equal(dropped.code, 1);
    assert.match(dropped.stderr, /closed the connection before its answer ended/);
  });

  it('exits 2 for plain HTTP to another machine, flags that need --server, and local flags with it', async () => {
    const cases: [string[], RegExp][] = [
      [['infill', '--server', 'http://192.0.2.7:8000', '--prefix', 'a'], /Refusing plain HTTP to 192\.0\.2\.7:8000/],
      [['infill', '--api', 'sglang', '--prefix', 'a'], /--api goes with --server/],
      [['infill', '--server', server.baseUrl, '--cache', 'decode', '--prefix', 'a'], /--cache is for the local engine/],
      [['infill', '--server', server.baseUrl, '--model', 'builtin', '--prefix', 'a'], /--model is for the local engine/],
      [['infill', '--server', server.baseUrl, '--api', 'tgi', '--prefix', 'a'], /--api must be one of openai, sglang/],
    ];
    for (const [args, message] of cases) {
      const run = await dlm(args);
      assert.equal(run.code, 2, `${args.join(' ')}: ${run.stderr}`);
      assert.match(run.stderr, message);
    }
    assert.equal(server.completions.length, 0);
  });
});
