import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { OaoError } from '../errors.js';
import type { ApiKey, ServerOptions } from '../server/serverOptions.js';

type ApiKeysOption = NonNullable<ServerOptions['apiKeys']>;

/**
 * The `apiKeys` of `oao serve`: the keys of `--api-keys-file` (a JSON list, or a map of key to
 * `{ tenant, name?, budget? }`; see docs/budgets.md#tenants), plus the plain keys of `--api-key`
 * and env `OAO_API_KEYS`, which belong to the tenant `default`. The file's contents are checked
 * with the server's options; a file that cannot be read or is not JSON is `OAO_ERR_CLI_USAGE`.
 */
export async function serveApiKeys(file: string | undefined, plain: readonly string[], cwd: string): Promise<ApiKeysOption | undefined> {
  if (file === undefined) return plain.length === 0 ? undefined : plain;
  const path = resolve(cwd, file);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new OaoError('OAO_ERR_CLI_USAGE', `--api-keys-file ${file}: cannot read it (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`, {
      details: { field: '--api-keys-file' },
    });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new OaoError('OAO_ERR_CLI_USAGE', `--api-keys-file ${file}: not JSON (${(error as Error).message})`, { details: { field: '--api-keys-file' } });
  }
  // The entries are checked with the server's options (a typed error naming `apiKeys.<i>`).
  if (Array.isArray(parsed)) return [...(parsed as readonly (string | ApiKey)[]), ...plain];
  if (typeof parsed !== 'object' || parsed === null) {
    throw new OaoError('OAO_ERR_CLI_USAGE', `--api-keys-file ${file}: expected a list of keys or a map of key to { tenant, name?, budget? }`, {
      details: { field: '--api-keys-file' },
    });
  }
  const map: Record<string, unknown> = { ...(parsed as Record<string, unknown>) };
  for (const key of plain) if (!Object.hasOwn(map, key)) map[key] = { tenant: 'default' };
  return map as ApiKeysOption;
}
