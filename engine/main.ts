#!/usr/bin/env node
/** The `dlm` command: `dlm serve` (the engine process the extension spawns), `dlm infill`, `dlm bench`, ... */
import { runCli } from './cli/registry';

runCli(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`dlm: ${(error as Error).stack ?? String(error)}\n`);
    process.exitCode = 1;
  },
);
