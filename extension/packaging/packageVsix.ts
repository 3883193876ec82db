/**
 * `npm run package [-- --target <platform>]`: builds everything and makes a platform-specific .vsix with
 * @vscode/vsce. onnxruntime-node ships its native binaries for every platform (about 290 MB); the package for
 * one target carries only that target's, so the ignore file vsce reads is .vscodeignore plus that one folder.
 * Checks that every file the extension needs at run time made it in, and reports the size.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readZipEntries } from '../../common/zipArchive';

const root = path.resolve(__dirname, '..', '..');

/** vsce targets that onnxruntime-node 1.30 has binaries for, and where they are. */
const TARGETS: Record<string, string> = {
  'linux-x64': 'linux/x64',
  'linux-arm64': 'linux/arm64',
  'darwin-arm64': 'darwin/arm64',
  'win32-x64': 'win32/x64',
  'win32-arm64': 'win32/arm64',
};

const REQUIRED = [
  'extension/package.json',
  'extension/dist/extension/extension.js',
  'extension/dist/engine/main.js',
  'extension/dist/engine/service/workerMain.js',
  'extension/dist/engine/service/textWorkerMain.js',
  'extension/dist/models/builtin/dlm-model.json',
  'extension/node_modules/onnxruntime-node/dist/index.js',
  'extension/node_modules/onnxruntime-node/script/install-metadata.js',
  'extension/node_modules/onnxruntime-node/script/install-metadata-versions.js',
  'extension/node_modules/onnxruntime-common/dist/cjs/index.js',
];

function targetFromArgs(argv: string[]): string {
  const at = argv.indexOf('--target');
  const target = at === -1 ? `${process.platform}-${process.arch}` : argv[at + 1];
  if (!target || !(target in TARGETS)) {
    throw new Error(`Unsupported target "${target}"; onnxruntime-node has binaries for: ${Object.keys(TARGETS).join(', ')}`);
  }
  return target;
}

function main(): void {
  const target = targetFromArgs(process.argv.slice(2));
  const binaries = `node_modules/onnxruntime-node/bin/napi-v6/${TARGETS[target]}`;
  if (!fs.existsSync(path.join(root, binaries))) throw new Error(`${binaries} is missing: reinstall onnxruntime-node`);

  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  execFileSync(npm, ['run', 'build'], { cwd: root, stdio: 'inherit' });

  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'dlm-package-'));
  const ignoreFile = path.join(work, '.vscodeignore');
  fs.writeFileSync(ignoreFile, `${fs.readFileSync(path.join(root, '.vscodeignore'), 'utf8')}\n!${binaries}/**\n`);

  const { version, name } = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string; name: string };
  const out = path.join(root, `${name}-${target}-${version}.vsix`);
  const vsce = path.join(root, 'node_modules', '.bin', process.platform === 'win32' ? 'vsce.cmd' : 'vsce');
  // The README's images are relative links to files the package carries (media/*.png), which VS Code shows
  // from the installed extension; with no repository URL to rewrite them against, they are left as they are.
  execFileSync(
    vsce,
    ['package', '--target', target, '--ignoreFile', ignoreFile, '--out', out, '--allow-missing-repository', '--skip-license', '--no-rewrite-relative-links'],
    { cwd: root, stdio: 'inherit' },
  );

  const files = readZipEntries(out).map((entry) => entry.name);
  const missing = [...REQUIRED, `extension/${binaries}/onnxruntime_binding.node`].filter((f) => !files.includes(f));
  if (missing.length > 0) throw new Error(`The package lacks files the extension needs: ${missing.join(', ')}`);
  const others = files.filter((f) => f.includes('onnxruntime-node/bin/') && !f.startsWith(`extension/${binaries}/`));
  if (others.length > 0) throw new Error(`The package carries other platforms' binaries: ${others.join(', ')}`);
  const megabytes = (fs.statSync(out).size / 1024 / 1024).toFixed(1);
  console.log(`\n${path.relative(root, out)}: ${megabytes} MB, ${files.length} files, onnxruntime binaries for ${target} only.`);
}

try {
  main();
} catch (error) {
  console.error(`npm run package: ${(error as Error).message}`);
  process.exit(1);
}
