/**
 * The extension's mocha suite, run inside a real VS Code extension host: `run()` is what
 * `@vscode/test-electron` calls (extensionTestsPath), and what the code-server runner extension calls.
 * Results go to the console (spec reporter) and, when DLM_TEST_REPORT names a file, to that file as JSON.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import Mocha from 'mocha';

export interface TestReport {
  passed: string[];
  failed: { title: string; error: string }[];
  pending: string[];
  durationMs: number;
}

export function run(): Promise<void> {
  // DLM_TEST_GREP runs only the tests whose full title matches (while working on one part).
  const grep = process.env.DLM_TEST_GREP;
  const mocha = new Mocha({ ui: 'bdd', reporter: 'spec', timeout: 120_000, color: false, ...(grep ? { grep } : {}) });
  for (const file of fs.readdirSync(__dirname).sort()) {
    if (file.endsWith('.test.js')) mocha.addFile(path.join(__dirname, file));
  }
  const report: TestReport = { passed: [], failed: [], pending: [], durationMs: 0 };
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const runner = mocha.run((failures) => {
      report.durationMs = Date.now() - started;
      if (process.env.DLM_TEST_REPORT) fs.writeFileSync(process.env.DLM_TEST_REPORT, JSON.stringify(report, null, 2));
      if (failures > 0) reject(new Error(`${failures} extension test(s) failed`));
      else resolve();
    });
    runner.on('pass', (test) => report.passed.push(test.fullTitle()));
    runner.on('pending', (test) => report.pending.push(test.fullTitle()));
    runner.on('fail', (test, error: Error) =>
      report.failed.push({ title: test.fullTitle(), error: error.stack ?? String(error) }),
    );
  });
}
