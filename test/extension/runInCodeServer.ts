/**
 * Runs the extension's mocha suite inside a real VS Code extension host, here: code-server with the extension
 * and the runner extension linked in, the tiny synthetic model configured, the workbench opened in headless
 * Chromium (the extension host starts when a window connects). Prints the results; exit code 1 on failure.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { codeServerMissing, openWorkbench, REPO_ROOT, startCodeServer } from '../e2e/codeServer';
import type { TestReport } from './suite/index';
import { SUITE_SETTINGS } from './suiteSettings';
import { writeTestModel } from './testModel';

const SUITE = path.join(REPO_ROOT, 'dist/test/extension/suite/index.js');
const RUNNER = path.join(REPO_ROOT, 'dist/test/code-server-runner');
const TIMEOUT_MS = 20 * 60_000;


async function main(): Promise<number> {
  const missing = codeServerMissing();
  if (missing) {
    console.error(`Cannot run the extension tests in VS Code: ${missing}.`);
    return 1;
  }
  if (!fs.existsSync(SUITE) || !fs.existsSync(path.join(RUNNER, 'package.json'))) {
    console.error('The test bundles are missing: run `npm run build:tests` first.');
    return 1;
  }
  const model = await writeTestModel();
  const report = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'dlm-suite-')), 'report.json');
  const codeServer = await startCodeServer({
    settings: SUITE_SETTINGS(model),
    files: { 'README.md': '# extension tests\n' },
    extensions: {
      'dlm-complete.dlm-complete-0.1.0': REPO_ROOT,
      'dlm-complete.dlm-test-runner-0.0.1': RUNNER,
    },
    env: { DLM_TEST_SUITE: SUITE, DLM_TEST_REPORT: report, ...(process.env.DLM_TEST_GREP ? { DLM_TEST_GREP: process.env.DLM_TEST_GREP } : {}) },
  });
  const workbench = await openWorkbench(codeServer.url);
  console.log(`Extension tests in code-server (${codeServer.url}), model ${model}`);
  try {
    const deadline = Date.now() + TIMEOUT_MS;
    while (!fs.existsSync(`${report}.done`)) {
      if (Date.now() > deadline) throw new Error(`the suite did not finish within ${TIMEOUT_MS / 60_000} minutes`);
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    const result = JSON.parse(fs.readFileSync(report, 'utf8')) as TestReport;
    for (const title of result.passed) console.log(`  ✔ ${title}`);
    for (const title of result.pending) console.log(`  - ${title}`);
    for (const { title, error } of result.failed) console.log(`  ✗ ${title}\n${indent(error)}`);
    console.log(`\n  ${result.passed.length} passing, ${result.failed.length} failing (${Math.round(result.durationMs / 1000)} s)`);
    if (result.failed.length > 0) printLog(codeServer.findLogFile('DLM Complete.log'));
    return result.failed.length === 0 && result.passed.length > 0 ? 0 : 1;
  } finally {
    await workbench.close();
    await codeServer.stop();
  }
}

function indent(text: string): string {
  return text
    .split('\n')
    .map((line) => `      ${line}`)
    .join('\n');
}

function printLog(file: string | undefined): void {
  if (!file) return;
  const lines = fs.readFileSync(file, 'utf8').trimEnd().split('\n');
  console.log(`\n  Last lines of the extension's log (${file}):\n${indent(lines.slice(-40).join('\n'))}`);
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
