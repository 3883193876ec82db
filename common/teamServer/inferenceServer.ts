/**
 * A team's inference server (SGLang or vLLM) as a filler of holes, for the extension and the CLI alike.
 *
 * `connect` checks the address (common/teamServer/serverUrl.ts), asks the server which model it serves (which also checks
 * the API key) and picks the prompt template; `fill` streams one answer: the prompt from the template, the
 * events read as they come, the answer cut where the hole ends (common/teamServer/infillPrompts.ts); once it is cut the
 * request is closed, so the server stops generating what nobody reads.
 *
 * Retries: a completion changes nothing on the server, so asking again is safe; it is done only while nothing
 * has been shown (a retry would restart the text on screen), and only for what may pass by itself: refused or
 * reset connections, HTTP 429 (after its Retry-After, when that is short) and 502/503/504. Timeouts are not
 * retried (the server is still working on the first request), nor are errors that would repeat (401, 404, 400,
 * 500, a malformed event).
 */
import { AnswerCutter, describeTemplates, promptTemplate, templateForModel, type InfillHole, type InfillPromptTemplate, type PromptTemplateId } from './infillPrompts';
import { apiProtocol, MalformedEvent, type ApiProtocol, type ServerApi } from './serverApis';
import { errorBodyMessage, ServerError } from './serverErrors';
import { droppedConnection, exchange, excerpt, readJson, readText, statusError, type HttpAnswer } from './serverHttp';
import { ServerSentEventParser } from './serverSentEvents';
import { parseServerUrl, ServerUrlError, type ServerEndpoint } from './serverUrl';

export interface ServerOptions {
  url: string;
  api: ServerApi;
  /** The model to ask for; '' or undefined: the one the server serves. */
  model?: string;
  /** `auto`: chosen by the model's name. */
  promptTemplate: PromptTemplateId | 'auto';
  apiKey?: string;
  allowInsecureHttp: boolean;
  /** Longest silence allowed: before an answer starts, and between its events. */
  timeoutMs: number;
}

export interface ServerFillRequest {
  hole: InfillHole;
  /** Most tokens the server may write. */
  maxTokens: number;
  temperature?: number;
  seed?: number;
}

export interface ServerFillProgress {
  /** The answer so far, cut to the hole. */
  text: string;
  /** Events received so far. */
  events: number;
}

export interface ServerFillResult {
  text: string;
  /** True when the answer ended before `maxTokens` (the model finished, or the hole's end was reached). */
  endedEarly: boolean;
  /** The server's finish reason ('stop', 'length', ...), or 'cut' when the answer was cut at the hole's end. */
  finishReason: string;
  /** From sending the (last) request to the end of the answer. */
  ms: number;
  /** From sending the (last) request to the first event with text; undefined when none had text. */
  firstTextMs?: number;
  promptTokens?: number;
  completionTokens?: number;
  events: number;
  /** Requests made again after a transient failure. */
  retries: number;
}

/** Retries after a transient failure, and the waits before them. */
const RETRY_DELAYS_MS = [250, 1000];
const RETRIED_CONNECTION_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE']);
/** A Retry-After longer than this is not waited for: the request fails with the server's answer. */
const LONGEST_RETRY_AFTER_S = 5;

export class InferenceServer {
  private constructor(
    readonly options: ServerOptions,
    readonly endpoint: ServerEndpoint,
    /** The model asked for (openai) or served (sglang). */
    readonly model: string,
    readonly template: InfillPromptTemplate,
    /** Round trip of the model question, in ms. */
    readonly latencyMs: number,
    /** The model's context length, when the server says (vLLM's and SGLang's /v1/models). */
    readonly maxModelTokens: number | undefined,
    private readonly protocol: ApiProtocol,
  ) {}

  /** Checks the address, the key and the model; ServerError when any is wrong. */
  static async connect(options: ServerOptions, signal?: AbortSignal): Promise<InferenceServer> {
    let endpoint: ServerEndpoint;
    try {
      endpoint = parseServerUrl(options.url, options.allowInsecureHttp);
    } catch (error) {
      if (error instanceof ServerUrlError) throw new ServerError('badUrl', error.message);
      throw error;
    }
    const started = Date.now();
    const get = async (route: string, what: string) =>
      readJson(await exchange({ endpoint, method: 'GET', route, apiKey: options.apiKey, timeoutMs: options.timeoutMs, signal }), what);
    const wanted = options.model?.trim() || undefined;

    if (options.api === 'openai') {
      const listing = await get('/v1/models', 'the list of models (/v1/models)');
      const latencyMs = Date.now() - started;
      const models = servedModels(listing);
      const chosen = wanted ? models.find((m) => m.id === wanted) : models.length === 1 ? models[0] : undefined;
      if (wanted && !chosen) {
        throw new ServerError('modelNotFound', `The server does not serve "${wanted}"; it serves ${names(models)}. Set dlm.server.model to one of them.`);
      }
      if (!chosen) {
        throw new ServerError(
          models.length === 0 ? 'modelNotFound' : 'modelNotChosen',
          models.length === 0 ? 'The server lists no model (/v1/models).' : `The server serves ${names(models)}: set dlm.server.model to the one to use.`,
        );
      }
      const template = chooseTemplate(options.promptTemplate, chosen.id, chosen.root);
      return new InferenceServer(options, endpoint, chosen.id, template, latencyMs, chosen.maxModelLength, apiProtocol('openai'));
    }

    const info = await get('/get_model_info', "the model's description (/get_model_info)");
    const latencyMs = Date.now() - started;
    const served = isRecord(info) && typeof info.model_path === 'string' ? info.model_path : undefined;
    if (!served) throw new ServerError('malformedEvent', `/get_model_info did not name a model (model_path): ${excerpt(JSON.stringify(info))}`);
    const template = chooseTemplate(options.promptTemplate, wanted ?? served, served);
    return new InferenceServer(options, endpoint, wanted ?? served, template, latencyMs, undefined, apiProtocol('sglang', await incrementalStreaming(get)));
  }

  /** Streams the answer for a hole; `onProgress` gets each change of the answer so far. */
  async fill(request: ServerFillRequest, onProgress?: (progress: ServerFillProgress) => void, signal?: AbortSignal): Promise<ServerFillResult> {
    let shown = false;
    for (let retries = 0; ; retries++) {
      try {
        const result = await this.stream(request, signal, (progress) => {
          shown = true;
          onProgress?.(progress);
        });
        return { ...result, retries };
      } catch (error) {
        const wait = retryDelay(error, retries);
        if (wait === undefined || shown || signal?.aborted) throw error;
        await delay(wait, signal);
      }
    }
  }

  private async stream(
    request: ServerFillRequest,
    signal: AbortSignal | undefined,
    onProgress: (progress: ServerFillProgress) => void,
  ): Promise<Omit<ServerFillResult, 'retries'>> {
    const { hole } = request;
    const cutter = new AnswerCutter(this.template, hole);
    const stop = [...this.template.endStrings, ...(hole.multiline ? [] : ['\n'])];
    const started = Date.now();
    const answer = await exchange({
      endpoint: this.endpoint,
      method: 'POST',
      route: this.protocol.completionRoute,
      body: this.protocol.body({
        model: this.model,
        prompt: this.template.prompt(hole),
        maxTokens: request.maxTokens,
        stop,
        temperature: request.temperature,
        seed: request.seed,
      }),
      apiKey: this.options.apiKey,
      timeoutMs: this.options.timeoutMs,
      signal,
    });
    if (answer.status !== 200) throw this.completionError(answer, await readText(answer));

    const read = this.protocol.reader();
    let text = '';
    let events = 0;
    let firstTextMs: number | undefined;
    let finishReason: string | undefined;
    let promptTokens: number | undefined;
    let completionTokens: number | undefined;
    let cut = false;
    const take = (data: unknown) => {
      const update = read(data);
      events++;
      if (update.text !== '' && firstTextMs === undefined) firstTextMs = Date.now() - started;
      finishReason = update.finishReason ?? finishReason;
      promptTokens = update.promptTokens ?? promptTokens;
      completionTokens = update.completionTokens ?? completionTokens;
      const now = cutter.push(update.text);
      if (now.text !== text) {
        text = now.text;
        onProgress({ text, events });
      }
      cut = now.complete;
    };

    if (!/text\/event-stream/i.test(String(answer.headers['content-type'] ?? ''))) {
      // A server (or proxy) that ignored `stream` sends the whole answer as one JSON body.
      const body = await readText(answer, 4 * 1024 * 1024);
      take(parseEvent(body));
    } else {
      await readEvents(answer, (data) => {
        if (data === '[DONE]') return 'done';
        take(parseEvent(data));
        return cut ? 'done' : 'more';
      });
    }
    if (cut) answer.close(); // the hole is filled: the server need not write the rest
    const final = cutter.finish();
    return {
      text: final,
      endedEarly: cut || finishReason !== 'length',
      finishReason: cut ? 'cut' : (finishReason ?? 'stop'),
      ms: Date.now() - started,
      firstTextMs,
      promptTokens,
      completionTokens,
      events,
    };
  }

  /** A completion's HTTP error; a 404 of the openai API that names the model means the model, not the route. */
  private completionError(answer: HttpAnswer, body: string): ServerError {
    if (answer.status === 404 && this.options.api === 'openai' && /model/i.test(body)) {
      const said = errorBodyMessage(body);
      return new ServerError('modelNotFound', `The server does not serve the model "${this.model}" (HTTP 404${said ? `: ${said}` : ''}); set dlm.server.model.`, 404);
    }
    return statusError(answer, body, 'the completion request');
  }
}

interface ServedModel {
  id: string;
  /** The model it was loaded from (vLLM: when --served-model-name renames it). */
  root?: string;
  maxModelLength?: number;
}

function servedModels(listing: unknown): ServedModel[] {
  if (!isRecord(listing) || !Array.isArray(listing.data)) {
    throw new ServerError('malformedEvent', `/v1/models did not answer a list of models: ${excerpt(JSON.stringify(listing))}`);
  }
  return listing.data.filter(isRecord).flatMap((m) =>
    typeof m.id === 'string'
      ? [{ id: m.id, root: typeof m.root === 'string' ? m.root : undefined, maxModelLength: typeof m.max_model_len === 'number' ? m.max_model_len : undefined }]
      : [],
  );
}

const names = (models: ServedModel[]) => models.map((m) => `"${m.id}"`).join(', ');

function chooseTemplate(setting: PromptTemplateId | 'auto', ...modelNames: (string | undefined)[]): InfillPromptTemplate {
  if (setting !== 'auto') return promptTemplate(setting);
  const found = templateForModel(...modelNames);
  if (found) return found;
  throw new ServerError(
    'noTemplate',
    `No prompt template is known for the model "${modelNames.find(Boolean)}": set dlm.server.promptTemplate to the family it belongs to: ${describeTemplates()}.`,
  );
}

/** Whether SGLang streams only the new text (`--incremental-streaming-output`); off (its default) when it does not say. */
async function incrementalStreaming(get: (route: string, what: string) => Promise<unknown>): Promise<boolean> {
  try {
    const info = await get('/get_server_info', "the server's settings (/get_server_info)");
    return isRecord(info) && info.incremental_streaming_output === true;
  } catch (error) {
    if (error instanceof ServerError && (error.kind === 'routeNotFound' || error.kind === 'malformedEvent')) return false;
    throw error;
  }
}

function parseEvent(data: string): unknown {
  let json: unknown;
  try {
    json = JSON.parse(data);
  } catch {
    throw new ServerError('malformedEvent', `The server sent an event that is not JSON: ${excerpt(data)}`);
  }
  if (isRecord(json) && json.error !== undefined) {
    const error = json.error;
    const message = typeof error === 'string' ? error : isRecord(error) && typeof error.message === 'string' ? error.message : JSON.stringify(error);
    throw new ServerError('serverError', `The server failed while answering: ${message}`);
  }
  return json;
}

/**
 * Reads the answer's server-sent events, handing each one's data to `onData` until it says 'done'. The stream
 * must end with the API's end event: a connection that closes before it was dropped.
 */
function readEvents(answer: HttpAnswer, onData: (data: string) => 'done' | 'more'): Promise<void> {
  return new Promise((resolve, reject) => {
    let finished = false;
    const finish = (error?: unknown) => {
      if (finished) return;
      finished = true;
      answer.body.removeAllListeners('data');
      if (error === undefined) resolve();
      else {
        answer.close();
        reject(error instanceof MalformedEvent ? new ServerError('malformedEvent', `The server sent an event without ${error.message}.`) : error);
      }
    };
    const parser = new ServerSentEventParser((event) => {
      if (finished) return;
      try {
        if (onData(event.data) === 'done') finish();
      } catch (error) {
        finish(error);
      }
    });
    answer.body.on('data', (chunk: string) => parser.push(chunk));
    answer.body.once('end', () => {
      parser.end();
      finish(droppedConnection());
    });
    answer.body.once('error', () => finish(answer.closedBy ?? droppedConnection()));
    answer.body.once('close', () => finish(answer.closedBy ?? droppedConnection()));
  });
}

function retryDelay(error: unknown, retriesSoFar: number): number | undefined {
  if (!(error instanceof ServerError) || retriesSoFar >= RETRY_DELAYS_MS.length) return undefined;
  const backoff = RETRY_DELAYS_MS[retriesSoFar];
  if (error.kind === 'rateLimited' || (error.kind === 'serverError' && [502, 503, 504].includes(error.status ?? 0))) {
    if (error.retryAfterSeconds === undefined) return backoff;
    return error.retryAfterSeconds <= LONGEST_RETRY_AFTER_S ? Math.max(backoff, error.retryAfterSeconds * 1000) : undefined;
  }
  // A refused or reset connection may be a server restarting; an unknown host or a TLS failure stays.
  return error.kind === 'unreachable' && RETRIED_CONNECTION_CODES.has(error.connectionCode ?? '') ? backoff : undefined;
}

function delay(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(new ServerError('cancelled', 'The request was cancelled.'));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);
