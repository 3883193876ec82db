/**
 * Runs the same in-host mocha suite under `@vscode/test-electron`, on machines that can download a VS Code
 * build (cached in .vscode-test/). Where the download is impossible (no network, as on this project's CI)
 * it says so and exits 0: the suite then runs in code-server (runInCodeServer.ts) instead. On Linux without
 * a display it runs itself again under xvfb-run when that is installed.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { downloadAndUnzipVSCode, runTests } from '@vscode/test-electron';
import { REPO_ROOT } from '../e2e/codeServer';
import { SUITE_SETTINGS } from './suiteSettings';
import { writeTestModel } from './testModel';

const VSCODE_VERSION = '1.100.3';
const SUITE = path.join(REPO_ROOT, 'dist/test/extension/suite/index.js');

async function main(): Promise<number> {
  let vscodeExecutablePath: string;
  try {
    vscodeExecutablePath = await downloadAndUnzipVSCode({
      version: VSCODE_VERSION,
      cachePath: path.join(REPO_ROOT, '.vscode-test'),
      timeout: 15_000,
    });
  } catch (error) {
    console.log(
      `SKIPPED @vscode/test-electron: cannot download VS Code ${VSCODE_VERSION} (${(error as Error).message}). ` +
        'The same suite runs inside code-server (test/extension/runInCodeServer.ts, also part of npm run test:extension).',
    );
    return 0;
  }
  if (process.platform === 'linux' && !process.env.DISPLAY) {
    const xvfb = spawnSync('which', ['xvfb-run']).status === 0;
    if (!xvfb) {
      console.log('SKIPPED @vscode/test-electron: no display and no xvfb-run (Debian package xvfb) to provide one.');
      return 0;
    }
    const rerun = spawnSync('xvfb-run', ['-a', process.execPath, ...process.execArgv, __filename], { stdio: 'inherit' });
    return rerun.status ?? 1;
  }

  const model = await writeTestModel();
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'dlm-electron-'));
  const userDataDir = path.join(root, 'user-data');
  const workspace = path.join(root, 'workspace');
  fs.mkdirSync(path.join(userDataDir, 'User'), { recursive: true });
  fs.mkdirSync(workspace);
  fs.writeFileSync(
    path.join(userDataDir, 'User', 'settings.json'),
    JSON.stringify({ 'security.workspace.trust.enabled': false, ...SUITE_SETTINGS(model) }, null, 2),
  );
  return runTests({
    vscodeExecutablePath,
    extensionDevelopmentPath: REPO_ROOT,
    extensionTestsPath: SUITE,
    launchArgs: [workspace, '--user-data-dir', userDataDir, '--disable-extensions', '--disable-workspace-trust', '--skip-welcome'],
  });
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
