/**
 * The protocol's set-up requests (common/protocol.ts): preparing a model without loading it, the machine's
 * facts, the model catalogue, the stored models, and the GPU provider. Long requests honour `$/cancelRequest` and report
 * `dlm/loadProgress` under the caller's progress token.
 */
import type { CancellationToken, MessageConnection } from 'vscode-jsonrpc/node';
import { gpuProviderStatus, installGpuProvider } from '../gpu/gpuProvider';
import { measureMachine } from '../machine/machineFacts';
import { modelCatalogue } from '../store/modelCatalogue';
import { deleteStoredModel, listStoredModels, StoreError } from '../store/modelStore';
import {
  DeleteStoredModelRequest,
  GpuProviderStatusRequest,
  InstallGpuProviderRequest,
  ListStoredModelsRequest,
  LoadProgressNotification,
  MachineFactsRequest,
  ModelCatalogueRequest,
  PrepareModelRequest,
  type LoadProgressParams,
} from '../../common/protocol';
import type { Engine } from '../service/engine';
import { invalidParams } from '../service/errors';
import { setupError } from '../service/setupErrors';
import { SharedWork } from '../service/sharedWork';
import { validateGpuProviderParams, validateModelCatalogueParams, validatePathParams, validatePrepareModelParams } from './validation';

/** An AbortSignal that follows a JSON-RPC cancellation token. */
export function abortSignalOf(token: CancellationToken): { signal: AbortSignal; dispose(): void } {
  const controller = new AbortController();
  if (token.isCancellationRequested) controller.abort();
  const subscription = token.onCancellationRequested(() => controller.abort());
  return { signal: controller.signal, dispose: () => subscription.dispose() };
}

/** Sends progress under the caller's token, when it gave one. */
export function progressSender(connection: MessageConnection, token: string | undefined) {
  return (progress: Omit<LoadProgressParams, 'progressToken'>) => {
    if (token !== undefined) void connection.sendNotification(LoadProgressNotification, { progressToken: token, ...progress });
  };
}

export function registerSetupHandlers(
  connection: MessageConnection,
  engine: Engine,
  cacheDir: string,
  answer: <T>(method: string, handler: () => Promise<T>) => Promise<T>,
): void {
  connection.onRequest(PrepareModelRequest, (raw: unknown, cancellation) =>
    answer(PrepareModelRequest.method, async () => {
      const params = validatePrepareModelParams(raw);
      const abort = abortSignalOf(cancellation);
      try {
        return await engine.prepareModel(params, progressSender(connection, params.progressToken), abort.signal);
      } finally {
        abort.dispose();
      }
    }),
  );

  connection.onRequest(MachineFactsRequest, () => answer(MachineFactsRequest.method, () => measureMachine(cacheDir)));

  connection.onRequest(ModelCatalogueRequest, (raw: unknown) =>
    answer(ModelCatalogueRequest.method, async () => modelCatalogue(cacheDir, validateModelCatalogueParams(raw).device)),
  );

  connection.onRequest(ListStoredModelsRequest, () => answer(ListStoredModelsRequest.method, async () => listStoredModels(cacheDir, engine.busyFolders())));

  connection.onRequest(DeleteStoredModelRequest, (raw: unknown) =>
    answer(DeleteStoredModelRequest.method, async () => {
      try {
        deleteStoredModel(cacheDir, validatePathParams(raw).path, engine.busyFolders());
      } catch (error) {
        if (error instanceof StoreError) throw invalidParams(error.message);
        throw error;
      }
    }),
  );

  const installs = new SharedWork<void, Omit<LoadProgressParams, 'progressToken'>>();
  connection.onRequest(GpuProviderStatusRequest, (raw: unknown) => answer(GpuProviderStatusRequest.method, () => gpuProviderStatus(validateGpuProviderParams(raw).dir)));
  connection.onRequest(InstallGpuProviderRequest, (raw: unknown, cancellation) =>
    answer(InstallGpuProviderRequest.method, async () => {
      const params = validateGpuProviderParams(raw);
      const abort = abortSignalOf(cancellation);
      try {
        await installs.run(params.dir, async (signal, onProgress) => void (await installGpuProvider(params.dir, { signal, onProgress })), {
          signal: abort.signal,
          onProgress: progressSender(connection, params.progressToken),
        });
      } catch (error) {
        throw setupError(error, 'The GPU set-up');
      } finally {
        abort.dispose();
      }
      return gpuProviderStatus(params.dir);
    }),
  );
}
