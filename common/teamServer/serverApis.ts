/**
 * The two server APIs a completion can go through, as request bodies and readers of their streamed events.
 *
 * - `openai`: the OpenAI-compatible `POST /v1/completions` that vLLM and SGLang both serve. With `stream: true`
 *   the answer is server-sent events, each `data: {"choices": [{"text": <new text>, "finish_reason": null |
 *   "stop" | "length"}], ...}`; with `stream_options.include_usage` a last event carries `usage` and no choice;
 *   the stream ends with `data: [DONE]`. An error after the stream started comes as `data: {"error": {...}}`
 *   (vLLM's completion stream generator).
 * - `sglang`: SGLang's native `POST /generate` with `{"text", "sampling_params", "stream": true}`; each event is
 *   `data: {"text": ..., "meta_info": {"finish_reason": null | {"type": ...}, "prompt_tokens",
 *   "completion_tokens"}}`, where `text` is the whole output so far unless the server runs with
 *   `--incremental-streaming-output` (then only the new text); errors come as `data: {"error": {"message"}}`, the
 *   stream ends with `data: [DONE]` (SGLang's http_server.py and its sampling parameters docs).
 */

export const SERVER_APIS = ['openai', 'sglang'] as const;
export type ServerApi = (typeof SERVER_APIS)[number];

export interface CompletionCall {
  /** The model to ask for (the openai API names it in every request; SGLang serves one). */
  model: string;
  prompt: string;
  maxTokens: number;
  stop: readonly string[];
  /** Only when the user set them: otherwise the server's own defaults apply. */
  temperature?: number;
  seed?: number;
}

/** What one event adds. */
export interface StreamUpdate {
  /** Text new since the last event. */
  text: string;
  /** Why the server stopped, once it did ('stop', 'length', ...). */
  finishReason?: string;
  promptTokens?: number;
  completionTokens?: number;
}

/** An event's data is not what the API sends: the message says what was expected. */
export class MalformedEvent extends Error {}

export interface ApiProtocol {
  /** The route a completion is posted to. */
  completionRoute: string;
  body(call: CompletionCall): Record<string, unknown>;
  /** A reader of one answer's events (readers of cumulative text keep what they saw). */
  reader(): (data: unknown) => StreamUpdate;
}

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);
const count = (value: unknown) => (typeof value === 'number' && Number.isFinite(value) ? value : undefined);

const openai: ApiProtocol = {
  completionRoute: '/v1/completions',
  body: (call) => ({
    model: call.model,
    prompt: call.prompt,
    max_tokens: call.maxTokens,
    stop: call.stop,
    stream: true,
    stream_options: { include_usage: true },
    ...(call.temperature === undefined ? {} : { temperature: call.temperature }),
    ...(call.seed === undefined ? {} : { seed: call.seed }),
  }),
  reader: () => (data) => {
    if (!isRecord(data) || !Array.isArray(data.choices)) throw new MalformedEvent('an object with "choices"');
    const usage = isRecord(data.usage) ? data.usage : undefined;
    const update: StreamUpdate = { text: '', promptTokens: count(usage?.prompt_tokens), completionTokens: count(usage?.completion_tokens) };
    const choice: unknown = data.choices[0];
    if (choice === undefined) return update; // the usage event
    if (!isRecord(choice) || typeof choice.text !== 'string') throw new MalformedEvent('"choices[0].text" as a string');
    update.text = choice.text;
    if (typeof choice.finish_reason === 'string') update.finishReason = choice.finish_reason;
    return update;
  },
};

function sglang(incremental: boolean): ApiProtocol {
  return {
    completionRoute: '/generate',
    body: (call) => ({
      text: call.prompt,
      stream: true,
      sampling_params: {
        max_new_tokens: call.maxTokens,
        stop: call.stop,
        ...(call.temperature === undefined ? {} : { temperature: call.temperature }),
      },
    }),
    reader: () => {
      let seen = '';
      return (data) => {
        if (!isRecord(data) || typeof data.text !== 'string') throw new MalformedEvent('an object with "text" as a string');
        const meta = isRecord(data.meta_info) ? data.meta_info : {};
        let text = data.text;
        if (!incremental) {
          if (!text.startsWith(seen)) throw new MalformedEvent(`"text" to continue the text of the events before it`);
          text = text.slice(seen.length);
          seen = data.text;
        }
        const finish = meta.finish_reason;
        const finishReason = isRecord(finish) && typeof finish.type === 'string' ? finish.type : typeof finish === 'string' ? finish : undefined;
        return { text, finishReason, promptTokens: count(meta.prompt_tokens), completionTokens: count(meta.completion_tokens) };
      };
    },
  };
}

/** The protocol of an API (`incremental`: SGLang streams only new text, `--incremental-streaming-output`). */
export function apiProtocol(api: ServerApi, incremental = false): ApiProtocol {
  return api === 'openai' ? openai : sglang(incremental);
}
