/**
 * `dlm serve` as a hostile or broken client meets it (a real child process): the reproductions of a
 * deaf engine, then the seeded protocol fuzzer (test/reliability/protocolFuzz.ts): every malformed message is
 * answered as JSON-RPC 2.0 requires and the engine keeps serving, and every broken frame ends the engine with
 * its reason on stderr and exit code 1, so a supervisor can start a clean one.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { ENGINE_BUNDLE, runProtocolFuzz } from '../reliability/protocolFuzz';
import { frame } from '../reliability/protocolFaults';

/** Runs `dlm serve` on `input` (written in parts, `pauseMs` apart, stdin left open unless `close`). */
async function serveOn(parts: Buffer[], options: { pauseMs?: number; close?: boolean; args?: string[] } = {}) {
  const child = spawn(process.execPath, [ENGINE_BUNDLE, 'serve', ...(options.args ?? [])], { stdio: 'pipe' });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  for (const part of parts) {
    child.stdin.write(part);
    await new Promise((resolve) => setTimeout(resolve, options.pauseMs ?? 0));
  }
  if (options.close) child.stdin.end();
  const code = await exited;
  return { code, stdout, stderr };
}

const status = (id: number) => `{"jsonrpc":"2.0","id":${id},"method":"dlm/status"}`;

describe('engine protocol faults (dlm serve as a child process)', function () {
  this.timeout(300_000);

  it('exits with code 1 and says why after a Content-Length off by one, instead of going deaf', async () => {
    const body = Buffer.from(status(1));
    const { code, stdout, stderr } = await serveOn([frame(body, `Content-Length: ${body.length + 1}\r\n\r\n`), frame(status(2))], { pauseMs: 200 });
    assert.equal(code, 1);
    assert.match(stderr, /\[dlm error\] stopping: protocol fault on stdin: /);
    // The misframed body was owed a parse error; nothing after the fault was read as a request.
    assert.match(stdout, /"id":null,"error":\{"code":-32700/);
    assert.doesNotMatch(stdout, /"id":2,"result"/);
  });

  it('exits when stdin closes in the middle of a message', async () => {
    const { code, stderr } = await serveOn([Buffer.from('Content-Length: 46\r\n\r\n{"jsonrpc"')], { close: true });
    assert.equal(code, 0);
    assert.match(stderr, /stdin closed in the middle of a message \(10 bytes of it dropped\)/);
  });

  it('exits after the frame timeout when a message stops arriving (a Content-Length larger than what was sent)', async () => {
    const body = Buffer.from(status(1));
    const { code, stderr } = await serveOn([frame(body, `Content-Length: ${body.length + 10}\r\n\r\n`)], { args: ['--frame-timeout-ms', '300'] });
    assert.equal(code, 1);
    assert.match(stderr, /protocol fault on stdin: a message stopped arriving: 46 bytes of a 56-byte body and nothing more for \d+ ms/);
  });

  it('answers each of 1,500 malformed messages as owed and keeps serving; each of 96 broken frames ends the engine, and 24 random byte strings are answered or end it', async () => {
    const report = await runProtocolFuzz({ seed: 16, messageCases: 1500, framingCases: 96, randomCases: 24 });
    assert.deepEqual(report.failures, []);
    assert.equal(report.cases, 1620);
    assert.ok(report.faultExits >= 96, `${report.faultExits} engines ended by a protocol fault`);
    assert.ok(report.probesAnswered >= 1500, `${report.probesAnswered} valid requests answered after a fault case`);
  });
});
