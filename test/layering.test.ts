/**
 * The folder layering of ARCHITECTURE.md, checked on the source: every relative import points down the stack
 * (or stays in its folder), the extension and the engine share only `common/`, and no file imports itself
 * back through others.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '..');

/** Bottom to top; a folder may import its own files and any folder listed before it. */
const ENGINE_LAYERS = [
  'common',
  'engine/architecture',
  'engine/reference',
  'engine/graph',
  'engine/model',
  'engine/runtime',
  'engine/machine',
  'engine/convert',
  'engine/store',
  'engine/gpu',
  'engine/denoiser',
  'engine/reuse',
  'engine/prepare',
  'engine/service',
  'engine/server',
  'engine/training',
  'engine/bench',
  'engine/cli',
  'engine',
] as const;

function sourceFiles(dir: string): string[] {
  return fs.readdirSync(path.join(ROOT, dir), { withFileTypes: true }).flatMap((entry) => {
    const rel = path.posix.join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(rel);
    return entry.name.endsWith('.ts') ? [rel] : [];
  });
}

const IMPORT =
  /(?:^|\n)\s*(?:import|export)\b[^;'"]*?\bfrom\s+['"](\.{1,2}\/[^'"]+)['"]|\bimport\(\s*['"](\.{1,2}\/[^'"]+)['"]|(?:^|\n)\s*import\s+['"](\.{1,2}\/[^'"]+)['"]/g;

/** Repo-relative targets of a file's relative imports (`.ts` files, or other files such as package.json). */
function importsOf(file: string): string[] {
  const source = fs.readFileSync(path.join(ROOT, file), 'utf8');
  return [...source.matchAll(IMPORT)].map((m) => {
    const target = path.posix.normalize(path.posix.join(path.posix.dirname(file), m[1] ?? m[2] ?? m[3]));
    if (fs.existsSync(path.join(ROOT, `${target}.ts`))) return `${target}.ts`;
    if (fs.existsSync(path.join(ROOT, target, 'index.ts'))) return `${target}/index.ts`;
    return target;
  });
}

/** The deepest listed layer holding `file` (`engine/cli/x.ts` -> `engine/cli`, `engine/main.ts` -> `engine`). */
function layerOf(file: string): number {
  let best = -1;
  ENGINE_LAYERS.forEach((layer, index) => {
    const inLayer = layer === 'engine' ? path.posix.dirname(file) === 'engine' : file.startsWith(`${layer}/`);
    if (inLayer) best = index;
  });
  return best;
}

const PRODUCT_FILES = [...sourceFiles('common'), ...sourceFiles('engine'), ...sourceFiles('extension')];

describe('layering (ARCHITECTURE.md)', () => {
  it('puts every engine and common file in a layer', () => {
    const unplaced = [...sourceFiles('common'), ...sourceFiles('engine')].filter((f) => layerOf(f) < 0);
    assert.deepEqual(unplaced, []);
  });

  it('imports only down the engine stack', () => {
    const against: string[] = [];
    for (const file of [...sourceFiles('common'), ...sourceFiles('engine')]) {
      for (const target of importsOf(file)) {
        if (target === 'package.json') continue;
        if (layerOf(target) > layerOf(file) || layerOf(target) < 0) against.push(`${file} -> ${target}`);
      }
    }
    assert.deepEqual(against, []);
  });

  it('lets the extension import only common/ and itself, and the engine never the extension', () => {
    const crossing = PRODUCT_FILES.flatMap((file) =>
      importsOf(file)
        .filter((target) => target !== 'package.json')
        .filter((target) =>
          file.startsWith('extension/') ? !/^(extension|common)\//.test(target) : target.startsWith('extension/'),
        )
        .map((target) => `${file} -> ${target}`),
    );
    assert.deepEqual(crossing, []);
  });

  it('has no import cycle between files', () => {
    const graph = new Map(PRODUCT_FILES.map((f) => [f, importsOf(f).filter((t) => t.endsWith('.ts'))]));
    const state = new Map<string, 'open' | 'done'>();
    const cycles: string[] = [];
    const visit = (file: string, trail: string[]): void => {
      if (state.get(file) === 'done') return;
      if (state.get(file) === 'open') {
        cycles.push([...trail.slice(trail.indexOf(file)), file].join(' -> '));
        return;
      }
      state.set(file, 'open');
      for (const next of graph.get(file) ?? []) visit(next, [...trail, file]);
      state.set(file, 'done');
    };
    for (const file of graph.keys()) visit(file, []);
    assert.deepEqual(cycles, []);
  });
});
