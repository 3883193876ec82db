/**
 * Where a worker thread's entry script is: beside the engine bundle (`dist/engine/service/<name>.js`, built by
 * `npm run build:engine`), or the TypeScript source run through tsx when the engine itself runs from source.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';

export function workerScript(name: string): { file: string; execArgv?: string[] } {
  const bundled = path.join(__dirname, 'service', `${name}.js`);
  if (existsSync(bundled)) return { file: bundled };
  const source = path.join(__dirname, `${name}.ts`);
  if (existsSync(source)) return { file: source, execArgv: ['--require', 'tsx/cjs'] };
  throw new Error(`The worker script ${name} is missing: neither ${bundled} nor ${source} exists.`);
}
