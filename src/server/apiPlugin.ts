import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { metricsPlugin } from '../observability/metrics/fastifyPlugin.js';
import { bearerAuth } from './bearerAuth.js';
import { agentRoutes } from './routes/agentRoutes.js';
import { approvalRoutes } from './routes/approvalRoutes.js';
import { eventsRoutes } from './routes/eventsRoutes.js';
import { policyRoutes } from './routes/policyRoutes.js';
import { runRoutes } from './routes/runRoutes.js';
import { runsRoutes } from './routes/runsRoutes.js';
import { tenantRoutes } from './routes/tenantRoutes.js';
import { whatIfRoutes } from './routes/whatIfRoutes.js';
import type { RunService } from './RunService.js';
import type { TenantBudgets } from '../tenants/TenantBudgets.js';
import type { ApiKey } from './serverOptions.js';
import { workflowRoutes } from './workflowRoutes.js';
import type { WorkflowService } from './WorkflowService.js';

export interface ApiPluginOptions {
  readonly service: RunService;
  /** Where the API is mounted ('' at the root); the URLs it answers with start with it. */
  readonly basePath: string;
  /** When not empty, every route of this plugin needs `Authorization: Bearer <key>`. */
  readonly apiKeys: readonly ApiKey[];
  /** The keys that may approve or deny tool calls; undefined: every key of `apiKeys`. */
  readonly approverKeys?: ReadonlySet<string> | undefined;
  /** The server's workflows, when it has any. */
  readonly workflows?: WorkflowService | undefined;
  /** The tenants the API keys belong to, with their budgets (none without keys). */
  readonly tenants?: TenantBudgets | undefined;
  /** The keys (themselves) that see every tenant. */
  readonly adminKeys?: ReadonlySet<string>;
}

/**
 * Every route that reads or starts runs (and GET /metrics when the server counts metrics), in one
 * encapsulated context: the API-key check is a hook of this context only, so GET /health, the docs
 * and the dashboard's static assets (registered outside it) stay open.
 */
export const apiPlugin: FastifyPluginAsyncZod<ApiPluginOptions> = async (app, { service, basePath, apiKeys, approverKeys, workflows, tenants, adminKeys }) => {
  if (apiKeys.length > 0) app.addHook('onRequest', bearerAuth(apiKeys));
  await app.register(agentRoutes, { service });
  await app.register(policyRoutes, { service });
  await app.register(runRoutes, { service, tenants });
  await app.register(runsRoutes, { service, basePath, tenants });
  await app.register(eventsRoutes, { service });
  await app.register(whatIfRoutes, { service });
  await app.register(approvalRoutes, { service, approverKeys, adminKeys });
  if (workflows !== undefined) await app.register(workflowRoutes, { workflows, basePath });
  if (tenants !== undefined) await app.register(tenantRoutes, { tenants, adminKeys: adminKeys ?? new Set<string>() });
  if (service.metrics !== undefined) await app.register(metricsPlugin(service.metrics));
};
