/**
 * The team server's API key (vLLM's and SGLang's `--api-key`), kept in VS Code's secret storage (the OS keychain)
 * rather than in settings files, and sent only to dlm.server.url, over HTTPS or to this machine
 * (common/teamServer/serverUrl.ts), as `Authorization: Bearer <key>`.
 */
import type * as vscode from 'vscode';
import { StoredSecret } from './storedSecret';

export class ServerApiKey extends StoredSecret {
  constructor(secrets: vscode.SecretStorage) {
    super(secrets, {
      key: 'dlm.serverApiKey',
      title: 'DLM: inference server API key',
      prompt: 'The key the SGLang or vLLM server was started with (--api-key). Stored in the OS keychain; sent only to dlm.server.url.',
    });
  }
}
