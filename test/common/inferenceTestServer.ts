/**
 * A stand-in for a team's SGLang or vLLM server on 127.0.0.1, serving their routes in their formats:
 * `GET /v1/models` and `POST /v1/completions` (OpenAI-compatible, streamed as server-sent events with
 * `choices[0].text` deltas, a usage event and `[DONE]`, errors as `{"error": {...}}`), SGLang's `POST /generate`
 * (cumulative `text`, or only the new text with `incrementalStreaming`, `meta_info.finish_reason`),
 * `GET /get_model_info`, `GET /get_server_info`, `GET /health`, and `Authorization: Bearer` checks like their
 * `--api-key`. The answer is text the test chooses, streamed in small events, honouring `max_tokens` (a token is
 * up to 4 characters here) and `stop`.
 *
 * Faults on demand, for the next completion requests: an HTTP status (401, 404, 429 with Retry-After, 500, 503),
 * a connection dropped after some events, a malformed event, an error event mid-stream, a stream that stalls.
 * Every completion request is logged with its body, its Authorization header, and whether the client closed it.
 */
import * as http from 'node:http';
import { closeServer, listenOnLoopback } from './loopbackServer';

export type Fault =
  | { status: number; body?: unknown; retryAfter?: number; location?: string }
  | { dropAfterEvents: number }
  | { malformedAfterEvents: number }
  | { errorEventAfterEvents: number; message: string }
  | { stallAfterEvents: number };

export interface LoggedCompletion {
  route: string;
  authorization?: string;
  body: Record<string, unknown>;
  /** The prompt (`prompt` of /v1/completions, `text` of /generate). */
  prompt: string;
  /** Events sent before the answer ended or the client left. */
  eventsSent: number;
  /** True when the client closed the connection before the answer was complete. */
  closedByClient: boolean;
  /** Settles when the exchange is over, either way. */
  over: Promise<void>;
}

export interface InferenceTestServerOptions {
  /** The served model name (`/v1/models` id); also SGLang's model_path unless `modelPath` is given. */
  model?: string;
  modelPath?: string;
  /** More served models (vLLM serves one per process, but a router may list several). */
  otherModels?: string[];
  /** When set, every route but /health needs `Authorization: Bearer <apiKey>`. */
  apiKey?: string;
}

/** Characters per token in the stand-in's accounting (max_tokens, usage). */
const CHARS_PER_TOKEN = 4;

export class InferenceTestServer {
  /** The answer to a prompt. */
  answer: (prompt: string) => string = () => 'return a + b\n';
  /** Characters per streamed event. */
  eventChars = 6;
  /** Pause before each event. */
  eventDelayMs = 0;
  /** SGLang `--incremental-streaming-output`: /generate events carry only the new text. */
  incrementalStreaming = false;
  /** Applied in order to the next completion requests (one each). */
  readonly faults: Fault[] = [];
  readonly completions: LoggedCompletion[] = [];
  /** Every request's route, in order. */
  readonly routes: string[] = [];
  baseUrl = '';
  private server?: http.Server;
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(readonly options: InferenceTestServerOptions = {}) {}

  get model(): string {
    return this.options.model ?? 'inclusionAI/LLaDA2.0-mini';
  }

  async start(): Promise<void> {
    ({ server: this.server, baseUrl: this.baseUrl } = await listenOnLoopback((req, res) => void this.handle(req, res)));
  }

  async stop(): Promise<void> {
    for (const timer of this.timers) clearTimeout(timer);
    await closeServer(this.server);
  }

  /** The port, for a URL with another host name (e.g. localhost). */
  get port(): number {
    return Number(new URL(this.baseUrl).port);
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const route = new URL(req.url ?? '/', this.baseUrl).pathname;
    this.routes.push(`${req.method} ${route}`);
    const body = await readBody(req);
    if (route === '/health' && req.method === 'GET') return void res.writeHead(200).end();
    const known = ['GET /v1/models', 'POST /v1/completions', 'GET /get_model_info', 'GET /get_server_info', 'POST /generate'];
    if (!known.includes(`${req.method} ${route}`)) return json(res, 404, { detail: 'Not Found' });
    if (this.options.apiKey !== undefined && req.headers.authorization !== `Bearer ${this.options.apiKey}`) {
      return json(res, 401, { error: 'Unauthorized' });
    }
    if (route === '/v1/models') {
      const models = [this.model, ...(this.options.otherModels ?? [])];
      return json(res, 200, {
        object: 'list',
        data: models.map((id) => ({ id, object: 'model', owned_by: 'vllm', root: id === this.model ? (this.options.modelPath ?? id) : id, max_model_len: 8192 })),
      });
    }
    if (route === '/get_model_info') {
      return json(res, 200, { model_path: this.options.modelPath ?? this.model, tokenizer_path: this.options.modelPath ?? this.model, is_generation: true });
    }
    if (route === '/get_server_info') return json(res, 200, { incremental_streaming_output: this.incrementalStreaming, version: 'stand-in' });

    let request: Record<string, unknown>;
    try {
      request = JSON.parse(body) as Record<string, unknown>;
    } catch {
      return json(res, 400, { object: 'error', message: 'body is not JSON', type: 'BadRequestError', param: null, code: 400 });
    }
    const openai = route === '/v1/completions';
    const prompt = openai ? request.prompt : request.text;
    if (typeof prompt !== 'string') return json(res, 400, { error: { message: `"${openai ? 'prompt' : 'text'}" is required`, type: 'BadRequestError', code: 400 } });
    let over!: () => void;
    const logged: LoggedCompletion = {
      route,
      authorization: req.headers.authorization,
      body: request,
      prompt,
      eventsSent: 0,
      closedByClient: false,
      over: new Promise<void>((resolve) => (over = resolve)),
    };
    this.completions.push(logged);
    res.once('close', () => {
      if (!res.writableFinished) logged.closedByClient = true;
      over();
    });
    if (openai && request.model !== this.model && !(this.options.otherModels ?? []).includes(String(request.model))) {
      // vLLM's answer for a model it does not serve.
      return json(res, 404, { error: { message: `The model \`${String(request.model)}\` does not exist.`, type: 'NotFoundError', param: 'model', code: 404 } });
    }
    const fault = this.faults.shift();
    if (fault && 'status' in fault) {
      if (fault.retryAfter !== undefined) res.setHeader('retry-after', String(fault.retryAfter));
      if (fault.location !== undefined) res.setHeader('location', fault.location);
      return json(res, fault.status, fault.body ?? { error: { message: `stand-in fault ${fault.status}`, type: 'ServerError', code: fault.status } });
    }
    await this.streamAnswer(res, logged, openai, fault);
  }

  private async streamAnswer(res: http.ServerResponse, logged: LoggedCompletion, openai: boolean, fault: Fault | undefined): Promise<void> {
    const request = logged.body;
    const params = (openai ? request : (request.sampling_params ?? {})) as Record<string, unknown>;
    const maxTokens = Number(openai ? (params.max_tokens ?? 16) : (params.max_new_tokens ?? 128));
    const stops = Array.isArray(params.stop) ? (params.stop as string[]) : typeof params.stop === 'string' ? [params.stop] : [];
    let text = this.answer(logged.prompt);
    let finish = 'length';
    const stopAt = Math.min(...stops.map((s) => text.indexOf(s)).filter((i) => i !== -1));
    if (Number.isFinite(stopAt)) {
      text = text.slice(0, stopAt);
      finish = 'stop';
    } else if (text.length <= maxTokens * CHARS_PER_TOKEN) {
      finish = 'stop';
    }
    text = text.slice(0, maxTokens * CHARS_PER_TOKEN);
    const pieces: string[] = [];
    for (let i = 0; i < text.length; i += this.eventChars) pieces.push(text.slice(i, i + this.eventChars));
    if (pieces.length === 0) pieces.push('');
    const promptTokens = Math.ceil(logged.prompt.length / CHARS_PER_TOKEN);

    if (request.stream !== true) {
      const completionTokens = Math.ceil(text.length / CHARS_PER_TOKEN);
      return json(
        res,
        200,
        openai
          ? { id: 'cmpl-stand-in', object: 'text_completion', model: this.model, choices: [{ index: 0, text, finish_reason: finish }], usage: { prompt_tokens: promptTokens, completion_tokens: completionTokens } }
          : { text, meta_info: { finish_reason: { type: finish }, prompt_tokens: promptTokens, completion_tokens: completionTokens } },
      );
    }
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' });
    res.flushHeaders();
    let sent = '';
    for (let i = 0; i < pieces.length; i++) {
      if (this.eventDelayMs > 0) await this.sleep(this.eventDelayMs);
      if (res.destroyed) return;
      const events = logged.eventsSent;
      if (fault && 'dropAfterEvents' in fault && events === fault.dropAfterEvents) return void res.destroy();
      if (fault && 'malformedAfterEvents' in fault && events === fault.malformedAfterEvents) return void res.end('data: {"choices": [{"text": \n\n');
      if (fault && 'errorEventAfterEvents' in fault && events === fault.errorEventAfterEvents) {
        return void res.end(`data: ${JSON.stringify({ error: { message: fault.message, type: 'InternalServerError', code: 500 } })}\n\ndata: [DONE]\n\n`);
      }
      if (fault && 'stallAfterEvents' in fault && events === fault.stallAfterEvents) return; // silence; the client's timeout ends it
      sent += pieces[i];
      const last = i === pieces.length - 1;
      const completionTokens = Math.ceil(sent.length / CHARS_PER_TOKEN);
      const event = openai
        ? { id: 'cmpl-stand-in', object: 'text_completion', created: 0, model: this.model, choices: [{ index: 0, text: pieces[i], logprobs: null, finish_reason: last ? finish : null, stop_reason: null }] }
        : { text: this.incrementalStreaming ? pieces[i] : sent, meta_info: { id: 'stand-in', finish_reason: last ? { type: finish } : null, prompt_tokens: promptTokens, completion_tokens: completionTokens } };
      // Written through before the next step, so a fault after it (a dropped connection) comes after the event.
      await write(res, `data: ${JSON.stringify(event)}\n\n`);
      logged.eventsSent++;
    }
    const streamOptions = request.stream_options as Record<string, unknown> | undefined;
    if (openai && streamOptions?.include_usage === true) {
      const usage = { prompt_tokens: promptTokens, completion_tokens: Math.ceil(text.length / CHARS_PER_TOKEN), total_tokens: 0 };
      res.write(`data: ${JSON.stringify({ id: 'cmpl-stand-in', object: 'text_completion', created: 0, model: this.model, choices: [], usage })}\n\n`);
    }
    res.end('data: [DONE]\n\n');
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        resolve();
      }, ms);
      this.timers.add(timer);
    });
  }
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => resolve(body));
  });
}

function write(res: http.ServerResponse, text: string): Promise<void> {
  return new Promise((resolve) => (res.destroyed ? resolve() : res.write(text, () => resolve())));
}

function json(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}
