import { DEFAULT_FRAME_TIMEOUT_MS, serve } from '../server/server';
import { numberOption, stringOption, type CliCommand } from './command';
import { defaultCacheDir } from './cacheDir';

export const serveCommand: CliCommand = {
  name: 'serve',
  summary: 'Run the engine as a JSON-RPC 2.0 server on stdin/stdout (what the VS Code extension starts).',
  synopsis: '[--cache-dir <dir>] [--log-level <level>] [--frame-timeout-ms <ms>]',
  details:
    'Speaks the protocol of common/protocol.ts (dlm/loadModel, dlm/infill with dlm/infillProgress, ' +
    '$/cancelRequest, dlm/status, dlm/shutdown). stdout carries only protocol messages; logs go to stderr. ' +
    'A message that is not valid JSON-RPC gets its JSON-RPC error; a broken frame (a bad header, a wrong ' +
    'Content-Length) is logged and ends the engine with exit code 1, since what follows it cannot be read.',
  options: {
    'cache-dir': { type: 'string', description: 'Where downloaded and converted models are kept.', defaultText: '$DLM_CACHE_DIR or ~/.cache/dlm-complete' },
    'log-level': { type: { choices: ['debug', 'info', 'warn', 'error'] }, description: 'Lowest level also written to stderr.', defaultText: 'info' },
    'frame-timeout-ms': {
      type: 'integer',
      description: 'A message begun on stdin and not finished for this long is a protocol fault (the engine exits).',
      defaultText: String(DEFAULT_FRAME_TIMEOUT_MS),
    },
  },
  async run({ options }) {
    return serve({
      cacheDir: stringOption(options, 'cache-dir') ?? defaultCacheDir(),
      stderrLevel: (stringOption(options, 'log-level') as 'debug' | 'info' | 'warn' | 'error' | undefined) ?? 'info',
      frameTimeoutMs: numberOption(options, 'frame-timeout-ms'),
    });
  },
};
