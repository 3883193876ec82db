/**
 * The "DLM Complete" output channel: the extension's own log and the engine's (`dlm/log` notifications and
 * its stderr), in one place with levels and timestamps (a log output channel, so the user can raise the
 * level to debug from the channel's menu).
 */
import * as vscode from 'vscode';
import type { LogParams } from '../common/protocol';

export const OUTPUT_CHANNEL_NAME = 'DLM Complete';

export class OutputLog implements vscode.Disposable {
  readonly channel = vscode.window.createOutputChannel(OUTPUT_CHANNEL_NAME, { log: true });

  info(message: string): void {
    this.channel.info(message);
  }

  warn(message: string): void {
    this.channel.warn(message);
  }

  error(message: string): void {
    this.channel.error(message);
  }

  debug(message: string): void {
    this.channel.debug(message);
  }

  /** A `dlm/log` notification from the engine. */
  engine(params: LogParams): void {
    const message = `[engine] ${params.message}`;
    switch (params.level) {
      case 'debug':
        this.channel.debug(message);
        break;
      case 'info':
        this.channel.info(message);
        break;
      case 'warn':
        this.channel.warn(message);
        break;
      case 'error':
        this.channel.error(message);
        break;
    }
  }

  /** A line the engine process wrote to stderr (crash traces, native library messages). */
  engineStderr(line: string): void {
    this.channel.warn(`[engine stderr] ${line}`);
  }

  show(): void {
    this.channel.show(true);
  }

  dispose(): void {
    this.channel.dispose();
  }
}
