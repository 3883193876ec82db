/**
 * A package on a NuGet v3 feed, found the way onnxruntime-node's install script finds it (install-utils.js:
 * the feed's index, its `PackageBaseAddress/3.0.0` resource, the package's version list, then
 * `<base><id>/<version>/<id>.<version>.nupkg`), plus what that script does not do: the package's size and
 * SHA-512 from the feed's catalog (the registration leaf's `catalogEntry`, whose `packageHash` NuGet computes
 * when the package is published), so the download can be checked.
 */
import { describeFetchError, DownloadError, type RemoteFile } from '../store/fileDownload';

interface FeedIndex {
  resources?: { '@id'?: string; '@type'?: string }[];
}

async function getJson<T>(url: string, what: string, signal?: AbortSignal): Promise<T> {
  let response: Response;
  try {
    response = await fetch(url, { signal });
  } catch (error) {
    if (signal?.aborted) throw new DownloadError(`cancelled while reading ${url}`, 'cancelled', url);
    throw new DownloadError(`cannot reach ${url} for ${what} (${describeFetchError(error)}); check the network or proxy`, 'unreachable', url);
  }
  if (response.status === 404) throw new DownloadError(`${what} is not on the feed (HTTP 404 for ${url})`, 'missing', url);
  if (!response.ok) throw new DownloadError(`${what}: the feed answered HTTP ${response.status} for ${url}`, 'http', url);
  try {
    return (await response.json()) as T;
  } catch (error) {
    throw new DownloadError(`${what}: ${url} is not JSON (${(error as Error).message})`, 'http', url);
  }
}

function resource(index: FeedIndex, type: string, feedIndex: string): string {
  const found = index.resources?.find((r) => r['@type'] === type || r['@type']?.startsWith(`${type}/`))?.['@id'];
  if (!found) throw new DownloadError(`the NuGet feed ${feedIndex} has no ${type} resource`, 'http', feedIndex);
  return found.endsWith('/') ? found : `${found}/`;
}

/** The package as a file to download, with its size and SHA-512 from the feed's catalog. */
export async function resolveNugetPackage(feedIndex: string, packageName: string, version: string, signal?: AbortSignal): Promise<RemoteFile> {
  const id = packageName.toLowerCase();
  const v = version.toLowerCase();
  const what = `${packageName} ${version}`;
  const index = await getJson<FeedIndex>(feedIndex, `the NuGet feed index`, signal);
  const base = resource(index, 'PackageBaseAddress/3.0.0', feedIndex);
  const versions = await getJson<{ versions?: string[] }>(`${base}${id}/index.json`, `the versions of ${packageName}`, signal);
  if (!versions.versions?.includes(v)) {
    throw new DownloadError(`${what} is not on ${feedIndex} (it has ${versions.versions?.slice(-5).join(', ') ?? 'no versions'})`, 'missing', `${base}${id}/index.json`);
  }
  const registrations = resource(index, 'RegistrationsBaseUrl', feedIndex);
  const leaf = await getJson<{ catalogEntry?: string | CatalogLeaf }>(`${registrations}${id}/${v}.json`, `the registration of ${what}`, signal);
  const catalog = typeof leaf.catalogEntry === 'string' ? await getJson<CatalogLeaf>(leaf.catalogEntry, `the catalog entry of ${what}`, signal) : leaf.catalogEntry;
  if (!catalog?.packageHash || (catalog.packageHashAlgorithm ?? '').toUpperCase() !== 'SHA512' || !Number.isInteger(catalog.packageSize)) {
    throw new DownloadError(`the feed publishes no SHA-512 and size for ${what}, so its download cannot be checked`, 'http', `${registrations}${id}/${v}.json`);
  }
  return {
    name: `${id}.${v}.nupkg`,
    url: `${base}${id}/${v}/${id}.${v}.nupkg`,
    size: catalog.packageSize!,
    digest: { algorithm: 'sha512', hex: Buffer.from(catalog.packageHash, 'base64').toString('hex') },
  };
}

interface CatalogLeaf {
  packageHash?: string;
  packageHashAlgorithm?: string;
  packageSize?: number;
}
