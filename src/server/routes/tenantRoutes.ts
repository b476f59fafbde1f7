import type { FastifyRequest } from 'fastify';
import type { FastifyPluginCallbackZod } from 'fastify-type-provider-zod';
import { OaoError } from '../../errors.js';
import { DEFAULT_TENANT } from '../../tenants/tenantKeys.js';
import type { ExecutionReport } from '../../report/schema.js';
import type { TenantBudgets, TenantLedger } from '../../tenants/TenantBudgets.js';
import { requestKey } from '../bearerAuth.js';
import { tenantParamsSchema, tenantUsageSchema } from '../schemas.js';
import { errorResponses, jsonResponse } from './errorResponses.js';

export interface TenantRoutesOptions {
  readonly tenants: TenantBudgets;
  /** The keys (themselves) that see every tenant. */
  readonly adminKeys: ReadonlySet<string>;
}

/** GET /tenants/:id/usage: a tenant's spend against its budget; a key sees its own tenant's only. */
export const tenantRoutes: FastifyPluginCallbackZod<TenantRoutesOptions> = (app, { tenants, adminKeys }, done) => {
  app.get(
    '/tenants/:id/usage',
    {
      schema: {
        operationId: 'getTenantUsage',
        tags: ['service'],
        summary: "A tenant's spend in its current window, against its budget",
        description:
          'Runs, steps, tokens, tool calls and cost of every run of the tenant in the current window (the calendar day or month in UTC, ' +
          'or the last `rollingMs`), kept in the run store so a restart does not reset it. A key sees its own tenant only; `adminKeys` see every tenant.',
        params: tenantParamsSchema,
        response: { 200: jsonResponse("The tenant's usage", tenantUsageSchema), ...errorResponses(400, 401, 403, 404) },
      },
    },
    (request) => {
      const key = requestKey(request);
      const tenant = request.params.id;
      if (key !== undefined && key.tenant !== tenant && !adminKeys.has(key.key)) {
        throw new OaoError('OAO_ERR_FORBIDDEN', "This API key sees its own tenant's usage only", { details: { tenant } });
      }
      return tenants.usage(tenant);
    },
  );
  done();
};

/**
 * The tenant the request's runs belong to: its API key's, on a server with tenants (one with API
 * keys); undefined otherwise. Never read from the request's body.
 */
export function requestTenant(tenants: TenantBudgets | undefined, request: FastifyRequest): string | undefined {
  if (tenants === undefined) return undefined;
  return requestKey(request)?.tenant ?? DEFAULT_TENANT;
}

/**
 * Admits `runs` runs of the request's tenant (its API key's; a client cannot name another) before
 * they start, charging them: `OAO_ERR_TENANT_BUDGET` (429) when the tenant's window is spent.
 */
export async function admitTenant(tenants: TenantBudgets | undefined, request: FastifyRequest, runs: number): Promise<TenantLedger | undefined> {
  const tenant = requestTenant(tenants, request);
  return tenant === undefined || tenants === undefined ? undefined : tenants.admitShared(tenant, runs);
}

/**
 * Charges finished runs' spend (steps, tokens, tool calls, cost) to their tenant's window, as
 * their reports state it. A run that never gets a report charges nothing more; one that ran in
 * this process under its tenant's level was charged when it ended (by its account), not again.
 */
export function chargeTenant(tenants: TenantBudgets | undefined, ledger: TenantLedger | undefined, finished: Promise<ExecutionReport | readonly ExecutionReport[]>): void {
  // Handled whether or not there is a ledger: a request that fails must not leave a rejection nobody awaits.
  finished.then(
    (answer) => {
      if (ledger === undefined) return;
      for (const report of Array.isArray(answer) ? (answer as readonly ExecutionReport[]) : [answer as ExecutionReport]) {
        if (tenants?.settledInRun(ledger.tenant, report.executionId) === true) continue;
        ledger.charge({ steps: report.totalSteps, tokens: report.tokenUsage.total, toolCalls: report.toolUsage.total, costMicros: report.cost?.micros ?? 0 });
      }
    },
    () => undefined,
  );
}

/** Gives back the runs a request was charged when it starts none (bad input, a full server). */
export async function refundOnFailure<T>(tenants: TenantBudgets | undefined, ledger: TenantLedger | undefined, runs: number, started: Promise<T>): Promise<T> {
  try {
    return await started;
  } catch (error) {
    if (ledger !== undefined) tenants?.refund(ledger, runs);
    throw error;
  }
}
