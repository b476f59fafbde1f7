import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { OaoError } from '../../errors.js';

/**
 * Every file the dashboard serves, by name. The routes are made from this list, never from a
 * path in the URL, so nothing else on disk can be reached through them. Adding a file to
 * `dashboard/` means adding it here (a test checks the two agree).
 */
export const DASHBOARD_ASSET_NAMES = [
  'index.html',
  'dashboard.css',
  'favicon.svg',
  'app.js',
  'api.js',
  'approvals.js',
  'dom.js',
  'eventLog.js',
  'format.js',
  'gauges.js',
  'report.js',
  'runList.js',
  'runModel.js',
  'sse.js',
  'statechart.js',
  'timeline.js',
  'workflows.html',
  'workflows.js',
] as const;

export type DashboardAssetName = (typeof DASHBOARD_ASSET_NAMES)[number];

/** One file, read once: its bytes, its Content-Type and a strong ETag over its content. */
export interface DashboardAsset {
  readonly name: DashboardAssetName;
  readonly body: Buffer;
  readonly contentType: string;
  readonly etag: string;
}

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.svg': 'image/svg+xml; charset=utf-8',
};

/**
 * The dashboard's files, next to `src/` and `dist/` at the package root: both
 * `src/server/dashboard/*.ts` and `dist/server/dashboard/*.js` are three levels below it.
 */
export const DASHBOARD_DIR = new URL('../../../dashboard/', import.meta.url);

/**
 * Reads every allow-listed asset from `dir`. A missing file is a broken installation, reported
 * at once (naming the folder) rather than as 404s in a browser later.
 */
export async function loadDashboardAssets(dir: URL = DASHBOARD_DIR): Promise<ReadonlyMap<DashboardAssetName, DashboardAsset>> {
  const assets = new Map<DashboardAssetName, DashboardAsset>();
  for (const name of DASHBOARD_ASSET_NAMES) {
    let body: Buffer;
    try {
      body = await readFile(new URL(name, dir));
    } catch (error) {
      throw new OaoError(
        'OAO_ERR_DASHBOARD_UNAVAILABLE',
        `The dashboard's file ${name} could not be read from ${dir.pathname}: the package is incomplete. ` +
          'Reinstall it, or create the server with dashboard: false.',
        { cause: error, details: { field: 'dashboard', file: name } },
      );
    }
    assets.set(name, { name, body, contentType: contentTypeOf(name), etag: etagOf(body) });
  }
  return assets;
}

function contentTypeOf(name: string): string {
  const extension = name.slice(name.lastIndexOf('.'));
  const type = CONTENT_TYPES[extension];
  if (type === undefined) throw new Error(`No Content-Type is known for the dashboard's file ${name}`);
  return type;
}

/** A strong validator: the same bytes always give the same tag, across restarts and processes. */
export function etagOf(body: Buffer | string): string {
  return `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`;
}
