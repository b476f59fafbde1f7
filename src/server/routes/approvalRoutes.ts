import type { FastifyRequest } from 'fastify';
import type { FastifyPluginCallbackZod } from 'fastify-type-provider-zod';
import { OaoError } from '../../errors.js';
import { requestKey } from '../bearerAuth.js';
import { DEFAULT_TENANT } from '../../tenants/tenantKeys.js';
import type { RunService } from '../RunService.js';
import {
  budgetRaiseRequestSchema,
  budgetRaiseResponseSchema,
  callIdParamsSchema,
  decisionRequestSchema,
  decisionResponseSchema,
  pendingApprovalsResponseSchema,
  runIdParamsSchema,
  type BudgetRaiseResponse,
  type DecisionResponse,
} from '../schemas.js';
import type { ApiKey } from '../serverOptions.js';
import { errorResponse, errorResponses, jsonResponse } from './errorResponses.js';

export interface ApprovalRoutesOptions {
  readonly service: RunService;
  /** The keys that may decide; undefined: every key the API accepts may. */
  readonly approverKeys: ReadonlySet<string> | undefined;
  /** The keys (themselves) that act for every tenant: they may raise any tenant's run. */
  readonly adminKeys?: ReadonlySet<string> | undefined;
}

/**
 * GET /approvals and POST /runs/:id/approvals/:callId: the tool calls that wait for a person, and
 * the decisions on them. Who decided is recorded as the body's `by`, the deciding key's name, or
 * both (`<by> (key <name>)`); with `approverKeys`, other keys may list but not decide.
 */
export const approvalRoutes: FastifyPluginCallbackZod<ApprovalRoutesOptions> = (app, { service, approverKeys, adminKeys }, done) => {
  app.get(
    '/approvals',
    {
      schema: {
        operationId: 'listApprovals',
        tags: ['approvals'],
        summary: 'Tool calls waiting for a person to approve or deny them',
        description:
          'The pending approvals of the runs live in this server process (a run resumed here after a crash included), oldest first. ' +
          'A call waits when the policy names its tool in `tools.approve`. Runs of POST /run-multi are not listed: their calls cannot be decided over HTTP.',
        response: { 200: jsonResponse('Pending approvals', pendingApprovalsResponseSchema), ...errorResponses(401) },
      },
    },
    () => ({ approvals: service.pendingApprovals() }),
  );

  app.post(
    '/runs/:id/approvals/:callId',
    {
      schema: {
        operationId: 'decideApproval',
        tags: ['approvals'],
        summary: 'Approve or deny a waiting tool call',
        description:
          '`approve` runs the tool (with `args` in place of the requested arguments when given, checked by the tool\'s schema and the policy ' +
          'again); `deny` never runs it and ends the run `policy_violation` (rule `approval_denied`). Exactly one decision per call: of two ' +
          'racing requests one is answered 200 and the other 409 `OAO_ERR_ALREADY_DECIDED`. A run live in this server goes on at once; a ' +
          'run no process holds gets the decision in its log, and this server resumes it when it has its agent and takes up interrupted ' +
          'runs (`applied` says which). `by` in the run\'s record: the body\'s `by`, the deciding API key\'s name, or `<by> (key <name>)`.',
        params: callIdParamsSchema,
        body: decisionRequestSchema,
        response: {
          200: jsonResponse('The decision, as the run records it', decisionResponseSchema),
          ...errorResponses(400, 401, 403, 413, 415, 503),
          404: errorResponse('OAO_ERR_RUN_NOT_FOUND (no such run) or OAO_ERR_UNKNOWN_APPROVAL (no such call waits in the run; `details.pending` lists those that do)'),
          409: errorResponse(
            'OAO_ERR_ALREADY_DECIDED (the call was decided already, or the run has finished) or OAO_ERR_LEASE_HELD (another live process holds the run, ' +
              'or this server is taking it up right now: retry)',
          ),
        },
      },
    },
    async (request): Promise<DecisionResponse> => {
      const key = requestKey(request);
      checkApprover(request, key, approverKeys);
      const { id, callId } = request.params;
      const { decision, reason, args } = request.body;
      const by = decidedBy(request.body.by, key);
      const applied = await service.decide(id, callId, {
        approve: decision === 'approve',
        by,
        reason,
        ...(args === undefined ? {} : { args }),
      });
      return { executionId: id, callId, decision: decision === 'approve' ? 'approved' : 'denied', by: by ?? null, reason: reason ?? null, applied };
    },
  );
  app.post(
    '/runs/:id/budget',
    {
      schema: {
        operationId: 'raiseBudget',
        tags: ['approvals'],
        summary: 'Raise the limits of a run paused at a limit',
        description:
          'A run whose policy pauses at a limit (`onLimit: { maxSteps: \'pause\', maxToolCalls: \'pause\' }`, a server-side option) waits in ' +
          'AWAITING_BUDGET when it reaches it. This raises the limits (each above the current value and at most the server\'s own policy) and ' +
          'the run goes on; POST /runs/:id/cancel ends it instead. The same keys as for approvals may raise (`approverKeys`), and only for a run ' +
          'of their own tenant (`adminKeys`: any tenant\'s); a key of another tenant is answered 403 `OAO_ERR_FORBIDDEN`.',
        params: runIdParamsSchema,
        body: budgetRaiseRequestSchema,
        response: {
          200: jsonResponse('The raise, as the run records it', budgetRaiseResponseSchema),
          ...errorResponses(400, 401, 403, 413, 415, 503),
          404: errorResponse('OAO_ERR_RUN_NOT_FOUND'),
          409: errorResponse('OAO_ERR_ALREADY_DECIDED (the run has finished) or OAO_ERR_LEASE_HELD (another live process holds the run: raise it there)'),
        },
      },
    },
    async (request): Promise<BudgetRaiseResponse> => {
      const key = requestKey(request);
      checkApprover(request, key, approverKeys);
      const { id } = request.params;
      await checkOwnTenant(request, key, adminKeys, service, id);
      const { limits, reason } = request.body;
      const by = decidedBy(request.body.by, key);
      const applied = await service.raise(id, limits, { ...(by === undefined ? {} : { by }), ...(reason === undefined ? {} : { reason }) });
      return { executionId: id, limits, by: by ?? null, reason: reason ?? null, applied };
    },
  );
  done();
};

/** Who a decision is recorded as made by: the body's `by`, the key's name, or both. */
function decidedBy(by: string | undefined, key: ApiKey | undefined): string | undefined {
  const name = key?.name;
  if (name === undefined) return by;
  return by === undefined ? name : `${by} (key ${name})`;
}

function checkApprover(request: FastifyRequest, key: ApiKey | undefined, approverKeys: ReadonlySet<string> | undefined): void {
  if (approverKeys === undefined || (key !== undefined && approverKeys.has(key.key))) return;
  throw new OaoError('OAO_ERR_FORBIDDEN', `This API key${key?.name === undefined ? '' : ` (${key.name})`} may not approve or deny tool calls or raise budgets: the server's approverKeys do not list it`, {
    details: { ...(key?.name === undefined ? {} : { key: key.name }), route: `${request.method} ${request.routeOptions.url ?? request.url}` },
  });
}

/** A run's budget is its tenant's: a key of another tenant may not raise it (an admin key may). */
async function checkOwnTenant(request: FastifyRequest, key: ApiKey | undefined, adminKeys: ReadonlySet<string> | undefined, service: RunService, executionId: string): Promise<void> {
  if (key === undefined || adminKeys?.has(key.key) === true) return;
  const tenant = await service.tenantOfRun(executionId);
  if (tenant === undefined || tenant === (key.tenant ?? DEFAULT_TENANT)) return;
  throw new OaoError('OAO_ERR_FORBIDDEN', `This API key${key.name === undefined ? '' : ` (${key.name})`} may raise the budget of its own tenant's runs only: run "${executionId}" belongs to another tenant`, {
    details: { ...(key.name === undefined ? {} : { key: key.name }), route: `${request.method} ${request.routeOptions.url ?? request.url}` },
  });
}
