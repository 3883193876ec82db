/**
 * A helper extension for code-server, which cannot run `--extensionTestsPath` itself: on startup it runs the
 * suite named by DLM_TEST_SUITE in this extension host and leaves `<DLM_TEST_REPORT>.done` when it is over
 * (the suite writes the report itself). Does nothing without those variables.
 */
import * as fs from 'node:fs';

export async function activate(): Promise<void> {
  const suite = process.env.DLM_TEST_SUITE;
  const report = process.env.DLM_TEST_REPORT;
  if (!suite || !report) return;
  try {
    // Loaded at run time from the built suite, not bundled into this file.
    const { run } = (await import(suite)) as { run: () => Promise<void> };
    await run();
  } catch (error) {
    if (!fs.existsSync(report)) {
      const failed = [{ title: 'running the suite', error: (error as Error).stack ?? String(error) }];
      fs.writeFileSync(report, JSON.stringify({ passed: [], failed, pending: [], durationMs: 0 }, null, 2));
    }
  } finally {
    fs.writeFileSync(`${report}.done`, '');
  }
}
