#!/usr/bin/python3
"""Build the training corpus of the built-in model, reproducibly.

Sources (all under permissive licences, checked at build time):
  * npm packages at pinned versions, fetched with `npm pack` into the data folder;
  * Python's standard library and permissively licensed Python packages as installed by Debian.

Steps: collect candidate files -> drop minified / generated / huge / non-UTF-8 files -> exact and near-exact
deduplication -> per-source byte cap -> hold out whole files (a fixed hash rule) -> write
`<data>/corpus/train.jsonl` and `<data>/corpus/heldout.jsonl` (one {"id","lang","text"} per line, sorted),
plus the machine-readable source list `engine/training/data_sources.json` and the held-out list
`engine/training/heldout_files.txt` (both committed). The raw data stays outside git.

Usage: /usr/bin/python3 engine/training/build_dataset.py [--data /tmp/dlm-data]
"""
import argparse
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))

PERMISSIVE = {'MIT', 'ISC', 'Apache-2.0', 'BSD-2-Clause', 'BSD-3-Clause', '0BSD', 'PSF-2.0'}

# name, pinned version, path prefixes kept inside the package ('' = everything), path fragments dropped.
NPM_PACKAGES = [
    # TypeScript sources shipped in the package.
    ('effect', '4.1.0', ['src/'], []),
    ('zod', '4.6.7', ['src/'], ['locales/', 'tests/']),
    ('rxjs', '7.8.2', ['src/internal/'], []),
    ('@reduxjs/toolkit', '2.14.0', ['src/'], ['tests/']),
    ('@tiptap/core', '3.34.0', ['src/'], []),
    ('@trpc/server', '11.25.2', ['src/'], []),
    ('@tanstack/query-core', '5.108.0', ['src/'], []),
    ('@tanstack/router-core', '1.171.39', ['src/'], []),
    ('@tanstack/virtual-core', '3.19.11', ['src/'], []),
    ('@tanstack/form-core', '4.0.2', ['src/'], []),
    ('mobx', '7.1.3', ['src/'], []),
    ('immer', '11.2.10', ['src/'], []),
    ('ajv', '8.20.0', ['lib/'], []),
    ('prosemirror-model', '1.25.13', ['src/'], []),
    ('prosemirror-state', '1.4.4', ['src/'], []),
    ('prosemirror-transform', '1.12.6', ['src/'], []),
    ('prosemirror-view', '1.42.9', ['src/'], []),
    ('@preact/signals-core', '1.14.5', ['src/'], []),
    # TypeScript declarations (documented APIs).
    ('@types/node', '26.6.6', [''], ['ts5.']),
    ('typescript', '5.9.3', ['lib/lib.'], []),
    # JavaScript: hand-written sources, or readable (unminified) ESM builds of TypeScript sources.
    ('@codemirror/state', '6.7.6', ['dist/index.js'], []),
    ('@codemirror/language', '6.13.1', ['dist/index.js'], []),
    ('@codemirror/autocomplete', '6.20.4', ['dist/index.js'], []),
    ('@lezer/common', '1.5.5', ['dist/index.js'], []),
    ('@lezer/lr', '1.4.12', ['dist/index.js'], []),
    ('webpack', '5.112.2', ['lib/'], []),
    ('three', '0.187.0', ['src/'], []),
    ('eslint', '10.15.0', ['lib/'], []),
    ('svelte', '5.57.3', ['src/'], []),
    ('mongoose', '9.12.1', ['lib/', 'types/'], []),
    ('undici', '7.30.2', ['lib/', 'types/'], ['llhttp/']),
    ('lodash', '4.18.1', [''], ['fp/']),
    ('date-fns', '4.4.0', [''], ['locale/', 'fp/', 'cdn']),
    ('fastify', '5.12.8', [''], []),
    ('moment', '2.31.0', ['src/lib/', 'src/moment.js'], []),
    ('knex', '3.3.0', ['lib/', 'types/'], []),
    ('mocha', '12.0.3', ['lib/'], []),
    ('jquery', '4.0.0', ['src/'], []),
    ('luxon', '3.7.2', ['src/'], []),
    ('kysely', '0.28.18', ['dist/esm/'], []),
    ('graphql', '16.15.0', [''], []),
    ('@sinclair/typebox', '0.34.52', ['build/esm/'], []),
    ('@tanstack/table-core', '9.3.1', ['dist/'], []),
    ('postcss', '8.5.33', ['lib/'], []),
    ('preact', '11.2.0', ['src/', 'hooks/src/', 'compat/src/', 'debug/src/'], []),
    ('yjs', '13.6.33', ['src/'], []),
    ('lit', '3.3.3', ['development/'], []),
    ('@lit/reactive-element', '2.1.2', ['development/'], []),
    ('vscode-jsonrpc', '10.0.0', ['lib/'], []),
    ('vscode-languageserver', '10.1.2', ['lib/'], []),
    ('vscode-languageserver-protocol', '3.18.5', ['lib/'], []),
    ('express', '5.3.0', ['lib/', 'index.js'], []),
    ('ws', '8.23.0', ['lib/'], []),
    ('commander', '14.0.3', ['lib/', 'typings/'], []),
    ('yargs', '18.2.0', ['build/lib/'], []),
    ('markdown-it', '15.0.3', ['dist/markdown-it.mjs'], []),
    ('d3-array', '3.2.5', ['dist/d3-array.js'], []),
    ('d3-scale', '4.0.3', ['dist/d3-scale.js'], []),
    ('d3-shape', '3.2.1', ['dist/d3-shape.js'], []),
    ('d3-selection', '3.0.1', ['dist/d3-selection.js'], []),
]

# Python: (source name, Debian package, directory, upstream licence, path fragments dropped).
PYTHON_SOURCES = [
    ('python3.11-stdlib', 'libpython3.11-stdlib', '/usr/lib/python3.11', 'PSF-2.0',
     ['site-packages/', 'dist-packages/', 'lib2to3/tests/data/', 'test/']),
    ('numpy', 'python3-numpy', '/usr/lib/python3/dist-packages/numpy', 'BSD-3-Clause', []),
    ('torch', 'python3-torch', '/usr/lib/python3/dist-packages/torch', 'BSD-3-Clause', []),
    ('torchgen', 'python3-torch', '/usr/lib/python3/dist-packages/torchgen', 'BSD-3-Clause', []),
    ('functorch', 'python3-torch', '/usr/lib/python3/dist-packages/functorch', 'BSD-3-Clause', []),
    ('setuptools', 'python3-setuptools', '/usr/lib/python3/dist-packages/setuptools', 'MIT', ['_vendor/']),
    ('pip', 'python3-pip', '/usr/lib/python3/dist-packages/pip', 'MIT', ['_vendor/']),
    ('pygments', 'python3-pygments', '/usr/lib/python3/dist-packages/pygments', 'BSD-2-Clause', []),
    ('sympy', 'python3-sympy', '/usr/lib/python3/dist-packages/sympy', 'BSD-3-Clause', []),
    ('mpmath', 'python3-mpmath', '/usr/lib/python3/dist-packages/mpmath', 'BSD-3-Clause', []),
    ('requests', 'python3-requests', '/usr/lib/python3/dist-packages/requests', 'Apache-2.0', []),
    ('urllib3', 'python3-urllib3', '/usr/lib/python3/dist-packages/urllib3', 'MIT', []),
    ('click', 'python3-click', '/usr/lib/python3/dist-packages/click', 'BSD-3-Clause', []),
    ('attrs', 'python3-attr', '/usr/lib/python3/dist-packages/attr', 'MIT', []),
    ('dateutil', 'python3-dateutil', '/usr/lib/python3/dist-packages/dateutil', 'Apache-2.0', []),
    ('cryptography', 'python3-cryptography', '/usr/lib/python3/dist-packages/cryptography', 'Apache-2.0', []),
    ('pyparsing', 'python3-pyparsing', '/usr/lib/python3/dist-packages/pyparsing', 'MIT', []),
    ('sortedcontainers', 'python3-sortedcontainers', '/usr/lib/python3/dist-packages/sortedcontainers',
     'Apache-2.0', []),
    ('yaml', 'python3-yaml', '/usr/lib/python3/dist-packages/yaml', 'MIT', []),
    ('toml', 'python3-toml', '/usr/lib/python3/dist-packages/toml', 'MIT', []),
    ('psutil', 'python3-psutil', '/usr/lib/python3/dist-packages/psutil', 'BSD-3-Clause', []),
    ('jwt', 'python3-jwt', '/usr/lib/python3/dist-packages/jwt', 'MIT', []),
    ('oauthlib', 'python3-oauthlib', '/usr/lib/python3/dist-packages/oauthlib', 'BSD-3-Clause', []),
    ('blinker', 'python3-blinker', '/usr/lib/python3/dist-packages/blinker', 'MIT', []),
    ('colorama', 'python3-colorama', '/usr/lib/python3/dist-packages/colorama', 'BSD-3-Clause', []),
    ('distro', 'python3-distro', '/usr/lib/python3/dist-packages/distro', 'Apache-2.0', []),
    ('argcomplete', 'python3-argcomplete', '/usr/lib/python3/dist-packages/argcomplete', 'Apache-2.0', []),
    ('typing_extensions', 'python3-typing-extensions', '/usr/lib/python3/dist-packages/typing_extensions.py',
     'PSF-2.0', []),
]

CODE_EXTENSIONS = {
    '.ts': 'typescript', '.tsx': 'typescript', '.mts': 'typescript', '.cts': 'typescript',
    '.js': 'javascript', '.mjs': 'javascript', '.cjs': 'javascript', '.jsx': 'javascript',
    '.py': 'python',
}

MIN_BYTES = 200
MAX_BYTES = 150_000
# No single source may dominate the corpus; beyond this, files are kept in a fixed hash order.
SOURCE_CAP_BYTES = 3_500_000
# Python's standard library is the best-written Python at hand: it gets a larger share.
SOURCE_CAP_OVERRIDES = {'debian:python3.11-stdlib': 8_000_000}
# A file is held out for evaluation when the first hash byte of its id is below this (about 1.2 %).
HELDOUT_HASH_BELOW = 3
NEAR_DUP_JACCARD = 0.8

GENERATED_MARKERS = re.compile(
    r'(@generated|do not edit|auto-generated|autogenerated|generated by|this file was generated|'
    r'automatically generated)', re.IGNORECASE)
SOURCE_MAP_LINE = re.compile(r'^\s*//# sourceMappingURL=.*$\n?', re.MULTILINE)


def licence_from_text(text):
    """Classify a LICENSE file by its wording, to cross-check the declared licence."""
    t = ' '.join(text.split())
    if 'Permission is hereby granted, free of charge' in t:
        return 'MIT'
    if 'Apache License' in t and 'Version 2.0' in t:
        return 'Apache-2.0'
    if 'Permission to use, copy, modify, and/or distribute this software for any purpose' in t:
        return 'ISC'
    if 'Redistribution and use in source and binary forms' in t:
        return 'BSD-3-Clause' if 'endorse or promote' in t else 'BSD-2-Clause'
    return None


def dropped_by(path, fragments):
    """A fragment matches at the start of any path component ('test/' drops 'a/test/x.py', not 'unittest/')."""
    return any(('/' + path).find('/' + f) >= 0 for f in fragments)


def language_of(path):
    if path.endswith('.d.ts') or path.endswith('.d.mts') or path.endswith('.d.cts'):
        return 'typescript'
    return CODE_EXTENSIONS.get(os.path.splitext(path)[1])


def rejection_reason(text):
    """Why a file is not training material (None if it is)."""
    n = len(text.encode('utf-8'))
    if n < MIN_BYTES:
        return 'tiny'
    if n > MAX_BYTES:
        return 'huge'
    if '\0' in text:
        return 'binary'
    lines = text.split('\n')
    if max(len(line) for line in lines) > 1000 or n / max(1, len(lines)) > 100:
        return 'minified'
    long_lines = sum(1 for line in lines if len(line) > 300)
    if long_lines > 0.05 * len(lines):
        return 'minified'
    head = '\n'.join(lines[:8])
    if GENERATED_MARKERS.search(head) or '.min.' in head:
        return 'generated'
    alnum = sum(c.isalnum() for c in text)
    if alnum < 0.3 * len(text):
        return 'data'
    return None


def normalized_lines(text):
    return [' '.join(line.split()) for line in text.split('\n') if line.strip()]


def stable_hash64(s):
    return int.from_bytes(hashlib.blake2b(s.encode('utf-8'), digest_size=8).digest(), 'little')


class NearDuplicateIndex:
    """MinHash over the set of normalized lines, banded LSH, verified by exact Jaccard."""
    BANDS, ROWS = 16, 4

    def __init__(self):
        rng = np.random.default_rng(1234)
        n = self.BANDS * self.ROWS
        self.a = rng.integers(1, 2**63, size=n, dtype=np.uint64) | np.uint64(1)
        self.b = rng.integers(0, 2**63, size=n, dtype=np.uint64)
        self.buckets = {}
        self.line_sets = []

    def add_if_new(self, lines):
        line_set = set(stable_hash64(line) for line in lines)
        if not line_set:
            return False
        x = np.fromiter(line_set, dtype=np.uint64)
        with np.errstate(over='ignore'):
            sig = ((x[:, None] * self.a[None, :] + self.b[None, :]) >> np.uint64(16)).min(axis=0)
        keys = [(band, sig[band * self.ROWS:(band + 1) * self.ROWS].tobytes()) for band in range(self.BANDS)]
        candidates = set()
        for key in keys:
            candidates.update(self.buckets.get(key, ()))
        for c in candidates:
            other = self.line_sets[c]
            inter = len(line_set & other)
            if inter / (len(line_set) + len(other) - inter) >= NEAR_DUP_JACCARD:
                return False
        idx = len(self.line_sets)
        self.line_sets.append(line_set)
        for key in keys:
            self.buckets.setdefault(key, []).append(idx)
        return True


def npm_tarball(data_dir, name, version):
    folder = os.path.join(data_dir, 'npm')
    os.makedirs(folder, exist_ok=True)
    file = os.path.join(folder, name.lstrip('@').replace('/', '-') + f'-{version}.tgz')
    if not os.path.exists(file):
        subprocess.run(['npm', 'pack', f'{name}@{version}', '--silent', '--pack-destination', folder],
                       check=True, stdout=subprocess.DEVNULL)
    return file


def read_npm_package(data_dir, name, version, keep_prefixes, drop_fragments):
    """Yield (path, text) of the kept code files, after checking the package's licence."""
    tar = tarfile.open(npm_tarball(data_dir, name, version))
    members = {}
    for m in tar.getmembers():
        if m.isfile() and '/' in m.name:
            members[m.name.split('/', 1)[1]] = m
    manifest = json.load(tar.extractfile(members['package.json']))
    declared = manifest.get('license')
    if isinstance(declared, dict):
        declared = declared.get('type')
    licence_files = sorted(p for p in members if '/' not in p and re.match(r'(LICEN[CS]E|COPYING)', p, re.I))
    licence_text = tar.extractfile(members[licence_files[0]]).read().decode('utf-8', 'replace') \
        if licence_files else ''
    detected = licence_from_text(licence_text)
    if declared not in PERMISSIVE:
        raise SystemExit(f'{name}@{version}: licence {declared!r} is not on the permissive list')
    if detected is None or (detected != declared and not (detected.startswith('BSD') and declared.startswith('BSD'))):
        raise SystemExit(f'{name}@{version}: LICENSE file ({licence_files}) reads as {detected}, '
                         f'package.json says {declared}')
    if manifest.get('version') != version:
        raise SystemExit(f'{name}: tarball version {manifest.get("version")} != pinned {version}')
    meta = {'licence': declared, 'licence_file': licence_files[0]}
    files = []
    for path in sorted(members):
        if not any(path.startswith(p) for p in keep_prefixes):
            continue
        if dropped_by(path, drop_fragments) or '.min.' in path or 'node_modules/' in path:
            continue
        lang = language_of(path)
        if lang is None:
            continue
        files.append((path, lang, tar.extractfile(members[path]).read()))
    return meta, files


def debian_version(package):
    out = subprocess.run(['dpkg-query', '-W', '-f=${Version}', package], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f'Debian package {package} is not installed (apt-get install -y {package})')
    return out.stdout


def read_python_source(directory, drop_fragments):
    files = []
    if os.path.isfile(directory):
        with open(directory, 'rb') as f:
            return [(os.path.basename(directory), 'python', f.read())]
    for root, dirs, names in os.walk(directory):
        dirs.sort()
        for n in sorted(names):
            if not n.endswith('.py'):
                continue
            full = os.path.join(root, n)
            rel = os.path.relpath(full, directory)
            if dropped_by(rel, drop_fragments) or os.path.islink(full):
                continue
            with open(full, 'rb') as f:
                files.append((rel, 'python', f.read()))
    return files


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--data', default=os.environ.get('DLM_DATA_DIR', '/tmp/dlm-data'))
    args = parser.parse_args()
    corpus_dir = os.path.join(args.data, 'corpus')
    os.makedirs(corpus_dir, exist_ok=True)

    sources = []  # (source record, [(path, lang, bytes)])
    for name, version, keep, drop in NPM_PACKAGES:
        meta, files = read_npm_package(args.data, name, version, keep, drop)
        sources.append(({'source': f'npm:{name}', 'package': name, 'version': version,
                         'origin': f'npm registry, `npm pack {name}@{version}`', **meta}, files))
    for name, deb, directory, licence, drop in PYTHON_SOURCES:
        files = read_python_source(directory, drop)
        sources.append(({'source': f'debian:{name}', 'package': deb, 'version': debian_version(deb),
                         'origin': f'Debian package {deb} ({directory})', 'licence': licence}, files))

    near = NearDuplicateIndex()
    seen_exact = set()
    train, heldout, records = [], [], []
    dropped_total = {}
    for record, files in sources:
        dropped = {}
        kept = []
        for path, lang, raw in files:
            try:
                text = raw.decode('utf-8')
            except UnicodeDecodeError:
                dropped['not-utf8'] = dropped.get('not-utf8', 0) + 1
                continue
            text = SOURCE_MAP_LINE.sub('', text.replace('\r\n', '\n'))
            reason = rejection_reason(text)
            if reason is None:
                lines = normalized_lines(text)
                exact = hashlib.sha256('\n'.join(lines).encode('utf-8')).hexdigest()
                if exact in seen_exact:
                    reason = 'duplicate'
                else:
                    seen_exact.add(exact)
                    if not near.add_if_new(lines):
                        reason = 'near-duplicate'
            if reason:
                dropped[reason] = dropped.get(reason, 0) + 1
                continue
            kept.append((path, lang, text))
        # Per-source cap, in a fixed pseudo-random order so capped sources still cover all their folders.
        kept.sort(key=lambda f: hashlib.sha1(f'{record["source"]}/{f[0]}'.encode()).hexdigest())
        total = 0
        capped = []
        for f in kept:
            size = len(f[2].encode('utf-8'))
            if total + size > SOURCE_CAP_OVERRIDES.get(record['source'], SOURCE_CAP_BYTES):
                dropped['over-source-cap'] = dropped.get('over-source-cap', 0) + 1
                continue
            total += size
            capped.append(f)
        capped.sort(key=lambda f: f[0])
        n_heldout = 0
        for path, lang, text in capped:
            doc = {'id': f'{record["source"]}@{record["version"]}/{path}', 'lang': lang, 'text': text}
            if hashlib.sha1(f'{record["source"]}/{path}'.encode()).digest()[0] < HELDOUT_HASH_BELOW:
                heldout.append(doc)
                n_heldout += 1
            else:
                train.append(doc)
        langs = sorted(set(f[1] for f in capped))
        records.append({**record, 'languages': langs, 'files': len(capped),
                        'bytes': sum(len(f[2].encode('utf-8')) for f in capped),
                        'heldout_files': n_heldout, 'candidates': len(files), 'dropped': dropped})
        for k, v in dropped.items():
            dropped_total[k] = dropped_total.get(k, 0) + v
        print(f'{record["source"]:40s} {len(capped):6d} files {records[-1]["bytes"]/1e6:7.2f} MB  dropped {dropped}',
              file=sys.stderr)

    for split, docs in (('train', train), ('heldout', heldout)):
        with open(os.path.join(corpus_dir, f'{split}.jsonl'), 'w', encoding='utf-8') as f:
            for d in docs:
                f.write(json.dumps(d, ensure_ascii=False) + '\n')

    summary = {
        'train_files': len(train), 'train_bytes': sum(len(d['text'].encode('utf-8')) for d in train),
        'heldout_files': len(heldout), 'heldout_bytes': sum(len(d['text'].encode('utf-8')) for d in heldout),
        'bytes_by_language': {},
        'dropped': dropped_total,
        'rules': {'min_bytes': MIN_BYTES, 'max_bytes': MAX_BYTES, 'source_cap_bytes': SOURCE_CAP_BYTES,
                  'source_cap_overrides': SOURCE_CAP_OVERRIDES,
                  'near_duplicate_jaccard': NEAR_DUP_JACCARD,
                  'heldout': f'sha1("source/path")[0] < {HELDOUT_HASH_BELOW}'},
    }
    for d in train:
        summary['bytes_by_language'][d['lang']] = summary['bytes_by_language'].get(d['lang'], 0) + \
            len(d['text'].encode('utf-8'))
    with open(os.path.join(HERE, 'data_sources.json'), 'w') as f:
        json.dump({'summary': summary, 'sources': records}, f, indent=1)
        f.write('\n')
    with open(os.path.join(HERE, 'heldout_files.txt'), 'w') as f:
        for d in heldout:
            f.write(d['id'] + '\n')
    print(json.dumps(summary, indent=1), file=sys.stderr)


if __name__ == '__main__':
    main()
