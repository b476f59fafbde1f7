import { OaoError } from '../errors.js';

/** The optional peer packages `oao serve` needs; a core-only installation leaves them out. */
export const SERVER_PACKAGES = ['fastify', '@fastify/swagger', '@fastify/swagger-ui', 'fastify-type-provider-zod'] as const;

/** The optional peer packages `--inspect` needs. */
export const INSPECT_PACKAGES = ['@statelyai/inspect', 'ws'] as const;

function isMissing(error: unknown, name: string): boolean {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
  if (code !== 'ERR_MODULE_NOT_FOUND' && code !== 'MODULE_NOT_FOUND') return false;
  // Only the package itself being absent counts; a broken file inside it is a different problem.
  return typeof message === 'string' && (message.includes(`'${name}'`) || message.includes(`"${name}"`));
}

/**
 * Imports each package the way the feature would and throws one `OAO_ERR_MISSING_PACKAGE` error
 * naming every one that is not installed, with the `npm install` line that adds them.
 */
export async function requirePackages(feature: string, names: readonly string[]): Promise<void> {
  const missing: string[] = [];
  for (const name of names) {
    try {
      await import(name);
    } catch (error) {
      if (!isMissing(error, name)) throw error;
      missing.push(name);
    }
  }
  if (missing.length === 0) return;
  throw new OaoError(
    'OAO_ERR_MISSING_PACKAGE',
    `${feature} needs ${missing.length === 1 ? 'a package that is' : 'packages that are'} not installed: npm install ${missing.join(' ')}`,
    { details: { packages: missing } },
  );
}
