import * as assert from 'node:assert/strict';
import { isLoopbackHost, parseServerUrl } from '../../common/teamServer/serverUrl';

describe('server address policy', () => {
  it('knows the loopback names and addresses', () => {
    for (const host of ['localhost', 'LOCALHOST', '127.0.0.1', '127.1.2.3', '::1', '[::1]']) assert.ok(isLoopbackHost(host), host);
    for (const host of ['10.0.0.5', 'gpu-box', '128.0.0.1', '127.0.0.256', 'localhost.evil.com', '::2']) assert.ok(!isLoopbackHost(host), host);
  });

  it('takes HTTPS anywhere and plain HTTP to this machine', () => {
    const secure = parseServerUrl('https://gpu.example.com', false);
    assert.deepEqual([secure.protocol, secure.hostname, secure.port, secure.basePath, secure.label, secure.insecure], ['https:', 'gpu.example.com', 443, '', 'gpu.example.com', false]);
    const local = parseServerUrl(' http://127.0.0.1:30000/ ', false);
    assert.deepEqual([local.port, local.basePath, local.insecure], [30000, '', false]);
    assert.equal(parseServerUrl('http://[::1]:8000', false).hostname, '::1');
  });

  it('refuses plain HTTP to another machine, saying why, unless allowed', () => {
    assert.throws(() => parseServerUrl('http://10.0.0.5:8000', false), /Refusing plain HTTP to 10\.0\.0\.5:8000: your code and the API key would cross the network unencrypted.*dlm\.server\.allowInsecureHttp/);
    const allowed = parseServerUrl('http://10.0.0.5:8000', true);
    assert.equal(allowed.insecure, true);
  });

  it('drops a trailing /v1 and keeps a proxy path', () => {
    assert.equal(parseServerUrl('http://localhost:8000/v1', false).basePath, '');
    assert.equal(parseServerUrl('https://gw.example.com/teams/infer/v1/', false).basePath, '/teams/infer');
  });

  it('explains what is wrong with a bad address', () => {
    assert.throws(() => parseServerUrl('', false), /No server is set: set dlm\.server\.url/);
    assert.throws(() => parseServerUrl('gpu-box:8000', false), /uses gpu-box; the server is reached over http or https|is not a URL/);
    assert.throws(() => parseServerUrl('not a url', false), /is not a URL/);
    assert.throws(() => parseServerUrl('ftp://host', false), /uses ftp/);
    assert.throws(() => parseServerUrl('https://user:secret@host', false), /user name or password.*DLM: Set Server API Key/);
    assert.throws(() => parseServerUrl('https://host/?key=1', false), /query or fragment/);
  });
});
