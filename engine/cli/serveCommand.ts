import { serve } from '../server/server';
import { EXIT_OK, stringOption, type CliCommand } from './command';
import { defaultCacheDir } from './cacheDir';

export const serveCommand: CliCommand = {
  name: 'serve',
  summary: 'Run the engine as a JSON-RPC 2.0 server on stdin/stdout (what the VS Code extension starts).',
  synopsis: '[--cache-dir <dir>] [--log-level <level>]',
  details:
    'Speaks the protocol of common/protocol.ts (dlm/loadModel, dlm/infill with dlm/infillProgress, ' +
    '$/cancelRequest, dlm/status, dlm/shutdown). stdout carries only protocol messages; logs go to stderr.',
  options: {
    'cache-dir': { type: 'string', description: 'Where downloaded and converted models are kept.', defaultText: '$DLM_CACHE_DIR or ~/.cache/dlm-complete' },
    'log-level': { type: { choices: ['debug', 'info', 'warn', 'error'] }, description: 'Lowest level also written to stderr.', defaultText: 'info' },
  },
  async run({ options }) {
    await serve({
      cacheDir: stringOption(options, 'cache-dir') ?? defaultCacheDir(),
      stderrLevel: (stringOption(options, 'log-level') as 'debug' | 'info' | 'warn' | 'error' | undefined) ?? 'info',
    });
    return EXIT_OK;
  },
};
