/**
 * Bundles what runs inside VS Code for the tests: the mocha suite (one file per test file, `vscode` and
 * `mocha` left to the extension host's require) into dist/test/extension/suite, and the code-server runner
 * extension (with its manifest) into dist/test/code-server-runner.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { build } from 'esbuild';

const root = path.resolve(__dirname, '..', '..');
const suiteDir = path.join(__dirname, 'suite');
export const SUITE_OUT = path.join(root, 'dist/test/extension/suite');
export const RUNNER_OUT = path.join(root, 'dist/test/code-server-runner');
export const RUNNER_FOLDER_NAME = 'dlm-complete.dlm-test-runner-0.0.1';

async function main(): Promise<void> {
  fs.rmSync(SUITE_OUT, { recursive: true, force: true });
  const entries = fs
    .readdirSync(suiteDir)
    .filter((f) => f === 'index.ts' || f.endsWith('.test.ts'))
    .map((f) => path.join(suiteDir, f));
  const common = {
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    sourcemap: 'inline',
    logLevel: 'warning',
  } as const;
  await build({ ...common, entryPoints: entries, outdir: SUITE_OUT, external: ['vscode', 'mocha', 'onnxruntime-node'] });

  fs.rmSync(RUNNER_OUT, { recursive: true, force: true });
  await build({
    ...common,
    entryPoints: [path.join(__dirname, 'codeServerTestRunner.ts')],
    outfile: path.join(RUNNER_OUT, 'extension.js'),
    external: ['vscode'],
  });
  const manifest = {
    name: 'dlm-test-runner',
    publisher: 'dlm-complete',
    version: '0.0.1',
    private: true,
    engines: { vscode: '^1.100.0' },
    main: './extension.js',
    activationEvents: ['onStartupFinished'],
    extensionKind: ['workspace'],
  };
  fs.writeFileSync(path.join(RUNNER_OUT, 'package.json'), JSON.stringify(manifest, null, 2));
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
