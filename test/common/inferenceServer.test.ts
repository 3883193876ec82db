/** The server client against a stand-in SGLang/vLLM server on 127.0.0.1: both APIs, streaming, and every failure. */
import * as assert from 'node:assert/strict';
import { InferenceServer, type ServerFillProgress, type ServerOptions } from '../../common/teamServer/inferenceServer';
import type { InfillHole } from '../../common/teamServer/infillPrompts';
import { ServerError } from '../../common/teamServer/serverErrors';
import { InferenceTestServer } from './inferenceTestServer';

const hole: InfillHole = { prefix: 'def add(a, b):\n    ', suffix: '\n', multiline: true, language: 'python' };
const ANSWER = 'return a + b\nprint(add(1, 2))';

async function rejectsWith(promise: Promise<unknown>, kind: ServerError['kind'], message?: RegExp): Promise<ServerError> {
  const error = await promise.then(
    () => assert.fail(`expected a ${kind} error`),
    (e: unknown) => e,
  );
  assert.ok(error instanceof ServerError, `a ServerError, not ${String(error)}`);
  assert.equal(error.kind, kind, error.message);
  if (message) assert.match(error.message, message);
  return error;
}

describe('inference server client (stand-in server on 127.0.0.1)', function () {
  this.timeout(20_000);
  let server: InferenceTestServer;
  const options = (extra: Partial<ServerOptions> = {}): ServerOptions => ({
    url: server.baseUrl,
    api: 'openai',
    promptTemplate: 'auto',
    allowInsecureHttp: false,
    timeoutMs: 5000,
    ...extra,
  });

  beforeEach(async () => {
    server = new InferenceTestServer({ apiKey: 'team-key' });
    server.answer = () => ANSWER;
    await server.start();
  });
  afterEach(() => server.stop());

  it('openai API: finds the served model, picks its template, streams the answer cut to the hole', async () => {
    const connection = await InferenceServer.connect(options({ apiKey: 'team-key' }));
    assert.equal(connection.model, 'inclusionAI/LLaDA2.0-mini');
    assert.equal(connection.template.id, 'llada2');
    assert.equal(connection.maxModelTokens, 8192);
    assert.ok(connection.latencyMs >= 0);
    const progress: ServerFillProgress[] = [];
    const result = await connection.fill({ hole, maxTokens: 32, temperature: 0 }, (p) => progress.push(p));
    assert.equal(result.text, 'return a + b\nprint(add(1, 2))');
    assert.ok(progress.length >= 3, `the answer arrived in several events (${progress.length})`);
    for (const p of progress) assert.ok(result.text.startsWith(p.text), 'each partial answer is a start of the final one');
    assert.equal(result.retries, 0);
    assert.equal(result.promptTokens, Math.ceil(server.completions[0].prompt.length / 4), 'the usage event is read');
    assert.ok(result.firstTextMs !== undefined && result.firstTextMs <= result.ms);

    const [request] = server.completions;
    assert.equal(request.route, '/v1/completions');
    assert.equal(request.authorization, 'Bearer team-key');
    assert.equal(request.body.model, 'inclusionAI/LLaDA2.0-mini');
    assert.equal(request.body.max_tokens, 32);
    assert.equal(request.body.temperature, 0);
    assert.equal(request.body.stream, true);
    assert.deepEqual(request.body.stop, ['<|role_end|>', '<|endoftext|>']);
    assert.ok(request.prompt.startsWith('<role>SYSTEM</role>') && request.prompt.includes('def add(a, b):\n    <FILL_HERE>\n'));
    assert.ok(!('seed' in request.body), 'settings the user did not set are left to the server');
  });

  it('sglang API: /generate with cumulative text, or only the new text when the server streams incrementally', async () => {
    for (const incremental of [false, true]) {
      server.incrementalStreaming = incremental;
      const connection = await InferenceServer.connect(options({ api: 'sglang', apiKey: 'team-key' }));
      const seen: string[] = [];
      const result = await connection.fill({ hole: { ...hole, multiline: false }, maxTokens: 16 }, (p) => seen.push(p.text));
      assert.equal(result.text, 'return a + b', `incremental ${incremental}: a mid-line hole ends at the line's end`);
      assert.ok(seen.length >= 2);
      const request = server.completions[server.completions.length - 1];
      assert.equal(request.route, '/generate');
      assert.deepEqual(request.body.sampling_params, { max_new_tokens: 16, stop: ['<|role_end|>', '<|endoftext|>', '\n'] });
      assert.equal(request.body.stream, true);
      assert.ok(!('model' in request.body));
    }
  });

  it('closes the request once the hole is filled, so the server stops writing', async () => {
    // The model writes the code after the hole again, and goes on: the server knows nothing of the hole.
    server.answer = () => `return a + b\nprint(add(1, 2))\n${'never read '.repeat(40)}`;
    server.eventDelayMs = 20;
    const connection = await InferenceServer.connect(options({ apiKey: 'team-key' }));
    const result = await connection.fill({ hole: { ...hole, suffix: '\nprint(add(1, 2))\n' }, maxTokens: 200 });
    assert.equal(result.text, 'return a + b');
    assert.equal(result.finishReason, 'cut');
    await server.completions[0].over;
    assert.equal(server.completions[0].closedByClient, true);
  });

  it('cancels by closing the connection', async () => {
    server.eventDelayMs = 50;
    server.answer = () => 'x'.repeat(400);
    const connection = await InferenceServer.connect(options({ apiKey: 'team-key' }));
    const abort = new AbortController();
    const filling = connection.fill({ hole, maxTokens: 100 }, () => abort.abort(), abort.signal);
    await rejectsWith(filling, 'cancelled');
    await server.completions[0].over;
    assert.equal(server.completions[0].closedByClient, true, 'the server saw the client go');
  });

  it('explains a missing or wrong API key (401) when connecting', async () => {
    await rejectsWith(InferenceServer.connect(options()), 'unauthorized', /HTTP 401: Unauthorized.*DLM: Set Server API Key/);
    await rejectsWith(InferenceServer.connect(options({ apiKey: 'old-key' })), 'unauthorized');
  });

  it('explains a model the server does not serve, and a choice to make among several', async () => {
    await rejectsWith(InferenceServer.connect(options({ apiKey: 'team-key', model: 'google/diffusiongemma-26B-A4B-it' })), 'modelNotFound', /does not serve "google\/diffusiongemma-26B-A4B-it"; it serves "inclusionAI\/LLaDA2\.0-mini"/);
    await server.stop();
    server = new InferenceTestServer({ model: 'a/llada2-mini', otherModels: ['b/DiffuCoder-7B'] });
    await server.start();
    await rejectsWith(InferenceServer.connect(options()), 'modelNotChosen', /serves "a\/llada2-mini", "b\/DiffuCoder-7B": set dlm\.server\.model/);
    const chosen = await InferenceServer.connect(options({ model: 'b/DiffuCoder-7B' }));
    assert.equal(chosen.template.id, 'dream');
    server.options.otherModels = [];
    await rejectsWith(chosen.fill({ hole, maxTokens: 8 }), 'modelNotFound', /does not serve the model "b\/DiffuCoder-7B" \(HTTP 404: The model `b\/DiffuCoder-7B` does not exist\.\)/);
  });

  it('asks for a template when the model name tells none, and takes the one set', async () => {
    await server.stop();
    server = new InferenceTestServer({ model: 'team-coder' });
    await server.start();
    await rejectsWith(InferenceServer.connect(options()), 'noTemplate', /"team-coder": set dlm\.server\.promptTemplate/);
    assert.equal((await InferenceServer.connect(options({ promptTemplate: 'gemma4' }))).template.id, 'gemma4');
  });

  it('retries a busy or restarting server while nothing was shown, and says when it gives up', async () => {
    const connection = await InferenceServer.connect(options({ apiKey: 'team-key' }));
    server.faults.push({ status: 429, retryAfter: 0 }, { status: 503 });
    const result = await connection.fill({ hole, maxTokens: 32 });
    assert.equal(result.retries, 2);
    assert.equal(result.text, ANSWER);

    server.faults.push({ status: 503 }, { status: 503 }, { status: 503 });
    await rejectsWith(connection.fill({ hole, maxTokens: 32 }), 'serverError', /HTTP 503: stand-in fault 503/);
    server.faults.length = 0;

    const before = server.completions.length;
    server.faults.push({ status: 429, retryAfter: 60 });
    await rejectsWith(connection.fill({ hole, maxTokens: 32 }), 'rateLimited', /busy \(HTTP 429/);
    assert.equal(server.completions.length, before + 1, 'a long Retry-After is not waited for');
  });

  it('does not retry what would fail again: 500, 400, a redirect', async () => {
    const connection = await InferenceServer.connect(options({ apiKey: 'team-key' }));
    server.faults.push({ status: 500, body: { object: 'error', message: 'CUDA out of memory', type: 'InternalServerError', code: 500 } });
    await rejectsWith(connection.fill({ hole, maxTokens: 32 }), 'serverError', /HTTP 500: CUDA out of memory/);
    server.faults.push({ status: 400, body: { error: { message: "This model's maximum context length is 8192 tokens", code: 400 } } });
    await rejectsWith(connection.fill({ hole, maxTokens: 32 }), 'rejected', /maximum context length/);
    server.faults.push({ status: 307, location: 'https://elsewhere.example.com/v1/completions' });
    await rejectsWith(connection.fill({ hole, maxTokens: 32 }), 'redirected', /elsewhere\.example\.com.*never goes elsewhere/);
    assert.equal(server.completions.length, 3);
  });

  it('reports a dropped stream, a malformed event and an error event, without retrying once text was shown', async () => {
    const connection = await InferenceServer.connect(options({ apiKey: 'team-key' }));
    let shown = '';
    server.faults.push({ dropAfterEvents: 2 });
    await rejectsWith(connection.fill({ hole, maxTokens: 32 }, (p) => (shown = p.text)), 'droppedStream', /closed the connection before its answer ended/);
    assert.ok(shown.length > 0);
    server.faults.push({ malformedAfterEvents: 1 });
    await rejectsWith(connection.fill({ hole, maxTokens: 32 }), 'malformedEvent', /not JSON: "\{\\"choices\\": \[\{\\"text\\":"/);
    server.faults.push({ errorEventAfterEvents: 1, message: 'engine died' });
    await rejectsWith(connection.fill({ hole, maxTokens: 32 }), 'serverError', /failed while answering: engine died/);
    assert.equal(server.completions.length, 3);
  });

  it('times out on a server that goes silent', async () => {
    const connection = await InferenceServer.connect(options({ apiKey: 'team-key', timeoutMs: 300 }));
    server.faults.push({ stallAfterEvents: 1 });
    await rejectsWith(connection.fill({ hole, maxTokens: 32 }), 'timeout', /did not answer within 0\.3 s \(dlm\.server\.timeoutMs\)/);
    assert.equal(server.completions.length, 1, 'a timeout is not retried');
  });

  it('says when no server answers, and refuses plain HTTP to another machine before connecting', async () => {
    const gone = new InferenceTestServer();
    await gone.start();
    await gone.stop();
    await rejectsWith(InferenceServer.connect(options({ url: gone.baseUrl })), 'unreachable', /Cannot reach http:\/\/127\.0\.0\.1:\d+: connection refused/);
    await rejectsWith(InferenceServer.connect(options({ url: 'http://192.0.2.1:8000' })), 'badUrl', /Refusing plain HTTP to 192\.0\.2\.1:8000/);
    const viaLocalhost = await InferenceServer.connect(options({ url: `http://localhost:${server.port}/v1`, apiKey: 'team-key' }));
    assert.equal(viaLocalhost.endpoint.label, `localhost:${server.port}`);
  });
});
