/**
 * Which shared libraries a Linux library needs (its ELF DT_NEEDED entries) and which of them this machine lacks:
 * the CUDA provider names the exact CUDA, cuBLAS and cuDNN sonames it was built against, so the GPU set-up can
 * say what to install instead of failing later at session creation. Looked up as the dynamic loader would: the
 * library's own folder, LD_LIBRARY_PATH, the loader cache (`ldconfig -p`) and the usual folders.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

const SHT_DYNAMIC = 6;
const DT_NEEDED = 1;

/** The DT_NEEDED sonames of a 64-bit little-endian ELF file (what Linux x64 runs). */
export function elfNeeded(file: string): string[] {
  const elf = fs.readFileSync(file);
  if (elf.readUInt32BE(0) !== 0x7f454c46 || elf[4] !== 2 || elf[5] !== 1) throw new Error(`${file} is not a 64-bit little-endian ELF file`);
  const sectionOffset = Number(elf.readBigUInt64LE(0x28));
  const sectionSize = elf.readUInt16LE(0x3a);
  const sectionCount = elf.readUInt16LE(0x3c);
  const section = (i: number) => {
    const at = sectionOffset + i * sectionSize;
    return {
      type: elf.readUInt32LE(at + 4),
      offset: Number(elf.readBigUInt64LE(at + 0x18)),
      size: Number(elf.readBigUInt64LE(at + 0x20)),
      link: elf.readUInt32LE(at + 0x28),
    };
  };
  for (let i = 0; i < sectionCount; i++) {
    const dynamic = section(i);
    if (dynamic.type !== SHT_DYNAMIC) continue;
    const strings = section(dynamic.link);
    const needed: string[] = [];
    for (let at = dynamic.offset; at + 16 <= dynamic.offset + dynamic.size; at += 16) {
      const tag = Number(elf.readBigInt64LE(at));
      if (tag === 0) break;
      if (tag !== DT_NEEDED) continue;
      const start = strings.offset + Number(elf.readBigUInt64LE(at + 8));
      needed.push(elf.toString('latin1', start, elf.indexOf(0, start)));
    }
    return needed;
  }
  return [];
}

/** Sonames the loader cache knows (`ldconfig -p`), or an empty set where it cannot be asked. */
function loaderCache(): Set<string> {
  for (const ldconfig of ['ldconfig', '/sbin/ldconfig', '/usr/sbin/ldconfig']) {
    try {
      const output = execFileSync(ldconfig, ['-p'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
      return new Set([...output.matchAll(/^\s*(\S+) \(/gm)].map((m) => m[1]));
    } catch {
      // try the next place
    }
  }
  return new Set();
}

const USUAL_FOLDERS = ['/lib', '/usr/lib', '/lib64', '/usr/lib64', '/lib/x86_64-linux-gnu', '/usr/lib/x86_64-linux-gnu', '/usr/local/cuda/lib64'];

/** The libraries `file` needs that neither its folder, LD_LIBRARY_PATH, the loader cache nor the usual folders have. */
export function missingLibraries(file: string, env: NodeJS.ProcessEnv = process.env): string[] {
  const cache = loaderCache();
  const folders = [path.dirname(file), ...(env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean), ...USUAL_FOLDERS];
  return elfNeeded(file).filter((soname) => !cache.has(soname) && !folders.some((dir) => fs.existsSync(path.join(dir, soname))));
}
