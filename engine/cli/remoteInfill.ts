/**
 * `dlm infill --server <url>`: the hole filled by a team's SGLang or vLLM server instead of the local engine,
 * through the same client as the extension's remote backend (common/teamServer/inferenceServer.ts). The API key comes from
 * the environment (DLM_SERVER_API_KEY), never from the command line, where other users of the machine could
 * read it in the process list.
 */
import * as path from 'node:path';
import { holeAllowsMultiline } from '../../common/holeShape';
import { InferenceServer, type ServerOptions } from '../../common/teamServer/inferenceServer';
import { PROMPT_TEMPLATE_IDS, type PromptTemplateId } from '../../common/teamServer/infillPrompts';
import { SERVER_APIS, type ServerApi } from '../../common/teamServer/serverApis';
import { ServerError } from '../../common/teamServer/serverErrors';
import { EXIT_FAILURE, EXIT_OK, UsageError, numberOption, stringOption, type OptionSpecs, type OptionValues } from './command';
import { DECODING_FLAGS } from './decodingFlags';

export const API_KEY_VARIABLE = 'DLM_SERVER_API_KEY';
const DEFAULT_TIMEOUT_MS = 30_000;
/** Code runs at about three bytes per token in BPE vocabularies (as the block infill's suggested length). */
const BYTES_PER_TOKEN = 3;

export const SERVER_FLAGS: OptionSpecs = {
  server: { type: 'string', valueName: 'url', description: `Fill through this SGLang or vLLM server instead of a local model (API key from ${API_KEY_VARIABLE}).` },
  api: { type: { choices: SERVER_APIS }, description: "With --server: openai (/v1/completions, vLLM and SGLang) or sglang (SGLang's /generate).", defaultText: 'openai' },
  'server-model': { type: 'string', valueName: 'name', description: 'With --server: the served model to ask for.', defaultText: 'the one the server serves' },
  'prompt-template': { type: { choices: ['auto', ...PROMPT_TEMPLATE_IDS] }, description: "With --server: the model family's prompt.", defaultText: 'auto, by the model name' },
  'allow-insecure-http': { type: 'boolean', description: 'With --server: allow plain HTTP to another machine (code and key readable on the network).' },
  'timeout-ms': { type: 'integer', description: 'With --server: longest wait for the answer to start or go on.', defaultText: String(DEFAULT_TIMEOUT_MS) },
};

/** Flags of the local engine that mean nothing to a server (it decodes with its own settings). */
const LOCAL_ONLY = ['model', 'device', 'visual', 'cache-dir', ...Object.keys(DECODING_FLAGS).filter((flag) => flag !== 'temperature' && flag !== 'seed')];

interface Hole {
  prefix: string;
  suffix: string;
  cut?: string;
}

/** Usage errors for server flags without --server, and local-engine flags with it. */
export function checkServerFlags(options: OptionValues): boolean {
  const remote = options.server !== undefined;
  if (!remote) {
    const stray = Object.keys(SERVER_FLAGS).find((flag) => flag !== 'server' && options[flag] !== undefined);
    if (stray) throw new UsageError(`--${stray} goes with --server.`);
    return false;
  }
  const local = LOCAL_ONLY.find((flag) => options[flag] !== undefined);
  if (local) throw new UsageError(`--${local} is for the local engine; with --server the server decodes with its own settings (only --temperature and --seed are passed on).`);
  return true;
}

export async function runServerInfill(options: OptionValues, hole: Hole): Promise<number> {
  const serverOptions: ServerOptions = {
    url: stringOption(options, 'server') ?? '',
    api: (stringOption(options, 'api') as ServerApi | undefined) ?? 'openai',
    model: stringOption(options, 'server-model'),
    promptTemplate: (stringOption(options, 'prompt-template') as PromptTemplateId | 'auto' | undefined) ?? 'auto',
    apiKey: process.env[API_KEY_VARIABLE] || undefined,
    allowInsecureHttp: options['allow-insecure-http'] === true,
    timeoutMs: numberOption(options, 'timeout-ms') ?? DEFAULT_TIMEOUT_MS,
  };
  if (serverOptions.timeoutMs < 1) throw new UsageError('--timeout-ms must be at least 1.');
  const length = numberOption(options, 'length') ?? (hole.cut !== undefined ? Math.max(1, Math.ceil(Buffer.byteLength(hole.cut) / BYTES_PER_TOKEN)) : 32);
  if (length < 1) throw new UsageError('--length must be at least 1.');
  const file = stringOption(options, 'file');
  const language = file ? path.extname(file).slice(1) || undefined : undefined;

  const abort = new AbortController();
  const interrupt = () => abort.abort();
  process.once('SIGINT', interrupt);
  try {
    const server = await InferenceServer.connect(serverOptions, abort.signal);
    const result = await server.fill(
      {
        hole: { prefix: hole.prefix, suffix: hole.suffix, multiline: holeAllowsMultiline(hole.suffix), language },
        maxTokens: length,
        temperature: numberOption(options, 'temperature'),
        seed: numberOption(options, 'seed'),
      },
      undefined,
      abort.signal,
    );
    if (options.json) {
      const { text, endedEarly, ...stats } = result;
      const described = { server: server.endpoint.label, api: serverOptions.api, model: server.model, template: server.template.id };
      process.stdout.write(`${JSON.stringify({ ...described, text, endedEarly, stats: { ...stats, connectMs: server.latencyMs } }, null, 2)}\n`);
    } else {
      process.stdout.write(result.text.endsWith('\n') ? result.text : `${result.text}\n`);
      process.stderr.write(
        `${server.model} on ${server.endpoint.label} (${serverOptions.api}, template ${server.template.id}): ` +
          `${result.completionTokens ?? '?'} tokens in ${result.ms} ms, first text after ${result.firstTextMs ?? '-'} ms` +
          `${result.retries ? `, ${result.retries} retries` : ''}\n`,
      );
    }
    return EXIT_OK;
  } catch (error) {
    if (!(error instanceof ServerError)) throw error;
    // An address the policy refuses is a mistake on the command line.
    if (error.kind === 'badUrl') throw new UsageError(error.message);
    process.stderr.write(`dlm infill: ${error.message}\n`);
    return error.kind === 'cancelled' ? 130 : EXIT_FAILURE;
  } finally {
    process.off('SIGINT', interrupt);
  }
}
