/**
 * A real VS Code for tests on machines that cannot download one: code-server (installed by
 * test/e2e/install-code-server.sh into .cache/code-server) with the extension linked into a fresh extensions
 * folder, fresh user settings and a workspace folder, served on loopback and opened in Debian's Chromium
 * through playwright-core. Used by the in-host mocha runner and by the end-to-end tests.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';

export const REPO_ROOT = path.resolve(__dirname, '..', '..');
const CODE_SERVER_VERSION = '4.100.3';
const CODE_SERVER_ENTRY = path.join(REPO_ROOT, '.cache/code-server/node_modules/code-server/out/node/entry.js');
const CHROMIUM = process.env.DLM_CHROMIUM ?? '/usr/bin/chromium';
/** Chromium dials out to Google's services unless told not to; this machine has no network for it. */
const CHROMIUM_FLAGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Why code-server cannot run here, or undefined when it can. */
export function codeServerMissing(): string | undefined {
  if (!fs.existsSync(path.join(REPO_ROOT, `.cache/code-server/installed-${CODE_SERVER_VERSION}`))) {
    return `code-server ${CODE_SERVER_VERSION} is not installed: run test/e2e/install-code-server.sh`;
  }
  if (!fs.existsSync(CHROMIUM)) return `Chromium is not installed at ${CHROMIUM} (Debian package chromium)`;
  return undefined;
}

export interface CodeServerOptions {
  /** User settings (settings.json). */
  settings: Record<string, unknown>;
  /** Files of the workspace folder, by relative path. */
  files?: Record<string, string>;
  /** Extension folders to link into the extensions folder, by `<publisher>.<name>-<version>`. */
  extensions: Record<string, string>;
  /** Extra environment for code-server and so its extension host. */
  env?: Record<string, string>;
}

export interface RunningCodeServer {
  url: string;
  workspace: string;
  userDataDir: string;
  settingsFile: string;
  /** Replaces the user settings; code-server notices the file change like a user's edit. */
  writeSettings(settings: Record<string, unknown>): void;
  /** The extension host log files of the window (output channels of log kind land here). */
  findLogFile(name: string): string | undefined;
  stop(): Promise<void>;
}

/** Settings that keep the workbench quiet and predictable under test. */
export const QUIET_SETTINGS: Record<string, unknown> = {
  'security.workspace.trust.enabled': false,
  'workbench.startupEditor': 'none',
  'workbench.tips.enabled': false,
  'workbench.enableExperiments': false,
  'telemetry.telemetryLevel': 'off',
  'extensions.autoCheckUpdates': false,
  'extensions.autoUpdate': false,
  'update.mode': 'none',
  'git.enabled': false,
  'files.autoSave': 'off',
  'editor.quickSuggestions': { other: 'off', comments: 'off', strings: 'off' },
  'editor.suggestOnTriggerCharacters': false,
  'editor.parameterHints.enabled': false,
  'editor.autoClosingBrackets': 'never',
  'editor.autoClosingQuotes': 'never',
  'editor.inlineSuggest.enabled': true,
  'editor.minimap.enabled': false,
  'editor.stickyScroll.enabled': false,
  'editor.scrollBeyondLastLine': false,
  'typescript.validate.enable': false,
  'workbench.colorTheme': 'Default Dark Modern',
};

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export async function startCodeServer(options: CodeServerOptions): Promise<RunningCodeServer> {
  const missing = codeServerMissing();
  if (missing) throw new Error(missing);
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'dlm-code-server-'));
  const userDataDir = path.join(root, 'user-data');
  const extensionsDir = path.join(root, 'extensions');
  const workspace = path.join(root, 'workspace');
  const settingsFile = path.join(userDataDir, 'User', 'settings.json');
  fs.mkdirSync(path.dirname(settingsFile), { recursive: true });
  fs.mkdirSync(extensionsDir, { recursive: true });
  fs.mkdirSync(workspace, { recursive: true });
  const writeSettings = (settings: Record<string, unknown>) =>
    fs.writeFileSync(settingsFile, JSON.stringify({ ...QUIET_SETTINGS, ...settings }, null, 2));
  writeSettings(options.settings);
  for (const [name, dir] of Object.entries(options.extensions)) fs.symlinkSync(dir, path.join(extensionsDir, name), 'dir');
  for (const [file, text] of Object.entries(options.files ?? {})) {
    fs.mkdirSync(path.dirname(path.join(workspace, file)), { recursive: true });
    fs.writeFileSync(path.join(workspace, file), text);
  }
  // code-server writes a default config (with a password) to ~/.config unless given one.
  const config = path.join(root, 'config.yaml');
  fs.writeFileSync(config, 'auth: none\n');

  const port = await freePort();
  const child = spawn(
    process.execPath,
    [
      CODE_SERVER_ENTRY,
      '--config', config,
      '--auth', 'none',
      '--bind-addr', `127.0.0.1:${port}`,
      '--user-data-dir', userDataDir,
      '--extensions-dir', extensionsDir,
      '--disable-telemetry',
      '--disable-update-check',
      '--disable-workspace-trust',
      '--disable-getting-started-override',
      workspace,
    ],
    { env: { ...process.env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true },
  );
  const output: string[] = [];
  const keep = (chunk: Buffer) => {
    output.push(chunk.toString());
    if (output.length > 200) output.shift();
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);

  const url = `http://127.0.0.1:${port}/?folder=${encodeURIComponent(workspace)}`;
  await waitForHttp(`http://127.0.0.1:${port}/healthz`, child, output);

  return {
    url,
    workspace,
    userDataDir,
    settingsFile,
    writeSettings,
    findLogFile: (name) => findFile(path.join(userDataDir, 'logs'), name),
    stop: () => stopProcessGroup(child),
  };
}

async function waitForHttp(url: string, child: ChildProcess, output: string[]): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`code-server exited (${child.exitCode}):\n${output.join('')}`);
    try {
      const response = await fetch(url);
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`code-server did not answer on ${url} within 60 s:\n${output.join('')}`);
}

/** code-server starts helpers (extension host, file watcher); end the whole group it leads. */
async function stopProcessGroup(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.pid === undefined) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    process.kill(-child.pid, 'SIGTERM');
  } catch {
    return;
  }
  const timer = setTimeout(() => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
  }, 5000);
  await exited;
  clearTimeout(timer);
}

function findFile(dir: string, name: string): string | undefined {
  if (!fs.existsSync(dir)) return undefined;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isFile() && entry.name === name) return full;
    if (entry.isDirectory()) {
      const found = findFile(full, name);
      if (found) return found;
    }
  }
  return undefined;
}

export interface OpenWorkbench {
  browser: Browser;
  page: Page;
  close(): Promise<void>;
}

/** Opens the workbench in headless Chromium and waits until it has rendered. */
export async function openWorkbench(url: string, viewport = { width: 1280, height: 800 }): Promise<OpenWorkbench> {
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_FLAGS });
  const page = await browser.newPage({ viewport });
  await page.goto(url);
  await page.waitForSelector('.monaco-workbench', { timeout: 60_000 });
  return { browser, page, close: () => browser.close() };
}
