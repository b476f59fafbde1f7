export { Orchestrator } from './Orchestrator.js';
export type { OaoInspector, OrchestratorOptions, ReplayOptions, ResumeRequest, RunHandle, RunRequest } from './Orchestrator.js';
export { StrictPolicy } from './policy/StrictPolicy.js';
export { checkStepStart, checkTokens, checkToolCall, retryDelay } from './policy/checks.js';
export { DEFAULT_LIMITS, policyLimitsSchema, policyOptionsSchema } from './policy/schema.js';
export type { PolicyLimits, PolicyOptions, RetryOptions, ToolRules } from './policy/schema.js';
export type { ModelPrice, Pricing } from './policy/pricing.js';
export { agentLifecycleMachine } from './machines/agentLifecycleMachine.js';
export type { AgentLifecycleMachine, LifecycleContext, LifecycleEvent, LifecycleInput } from './machines/agentLifecycleMachine.js';
export { agentCallLogic } from './actors/agentCall.js';
export type { AgentCallEvent, AgentCallInput } from './actors/agentCall.js';
export {
  OaoError,
  PolicyViolationError,
  RunAbortedError,
  errorRegistry,
  isRetryable,
  serializeError,
} from './errors.js';
export type { OaoErrorCode, OaoErrorOptions, PolicyRule, PolicyViolation, SerializedError } from './errors.js';
export { oaoEventSchema, oaoEventTypes, eventCountersSchema } from './events/schema.js';
export type { EventCounters, OaoEvent, OaoEventOf, OaoEventPayload, OaoEventType } from './events/schema.js';
export {
  executionReportSchema,
  jsonValueSchema,
  lifecycleStates,
  terminationReasons,
} from './report/schema.js';
export type { Cost, ExecutionReport, JsonValue, LifecycleState, Termination, TerminationReason, TokenUsage } from './report/schema.js';
export { canonicalJson } from './report/canonicalJson.js';
export { executionHash } from './report/executionHash.js';
export type { ExecutionIdentity } from './report/executionHash.js';
export { systemClock } from './runtime/clock.js';
export { whatIf } from './log/whatIf.js';
export { resumePoint } from './log/resumePoint.js';
export { endInterrupted } from './log/endInterrupted.js';
export type { EndInterruptedOptions } from './log/endInterrupted.js';
export type { RecordedCalls, RecordedModelCall, RecordedToolCall, ResumePoint, ResumePointKind } from './log/resumePoint.js';
export type { WhatIfCounts, WhatIfFilter, WhatIfOptions, WhatIfResult, WhatIfRule, WhatIfRun, WhatIfStop, WhatIfTotals } from './log/whatIf.js';
export { createMemoryStore } from './store/createMemoryStore.js';
export type { MemoryRunStore } from './store/createMemoryStore.js';
export { STORE_SCHEMA_VERSION } from './store/RunStore.js';
export type {
  AppendOptions,
  Lease,
  RunListFilter,
  RunPage,
  RunPageRequest,
  RunStore,
  RunStoreOptions,
  StoredRun,
  StoredRunStatus,
  SynchronousRunStore,
} from './store/RunStore.js';
export type { Clock } from './runtime/clock.js';
export type {
  Agent,
  AgentContext,
  AgentLike,
  BudgetLine,
  BudgetView,
  GovernedTool,
  ModelCall,
  ModelCallOptions,
  ReviewDecision,
  StepResult,
  ToolCall,
  ToolCallContext,
  ToolFunction,
  ToolSet,
  UsageReport,
} from './agent.js';
export { RUNTIME_VERSION } from './version.js';
export { MultiAgentOrchestrator } from './MultiAgentOrchestrator.js';
export type { BatchHandle, BatchJobRequest, BatchOptions, MultiAgentOrchestratorOptions } from './MultiAgentOrchestrator.js';
export { supervisorMachine } from './machines/supervisorMachine.js';
export type { SupervisorContext, SupervisorEvent, SupervisorInput, SupervisorMachine } from './machines/supervisorMachine.js';
export { batchEventSchema, batchEventTypes, batchProgressSchema } from './events/batchSchema.js';
export type { BatchEvent, BatchEventOf, BatchEventType, BatchProgress, HaltKind, JobRef } from './events/batchSchema.js';
export type { SharedBudgetLimits } from './runtime/SharedBudget.js';
export { fromMachine, oaoTool, OAO_TOOL_ACTOR } from './adapters/machine/index.js';
export type {
  BudgetSnapshot,
  MachineAgentInput,
  MachineAgentOptions,
  OaoMachineEmitted,
  OaoToolReply,
  OaoToolRequest,
} from './adapters/machine/index.js';
export { defineWorkflow, isWorkflow } from './workflow/defineWorkflow.js';
export type {
  Workflow,
  WorkflowContext,
  WorkflowDefinition,
  WorkflowItemContext,
  WorkflowNode,
  WorkflowNodeSpec,
  WorkflowResults,
  WorkflowShape,
} from './workflow/defineWorkflow.js';
export type { OnFailure, WorkflowNodeResult, WorkflowNodeStatus, WorkflowResult } from './workflow/WorkflowRun.js';
export type { WorkflowHandle, WorkflowRunOptions } from './workflow/startWorkflow.js';
export { nodeRunId } from './workflow/WorkflowRun.js';
export type { ResumeWorkflowOptions } from './workflow/resumeWorkflow.js';
export type { WorkflowWhatIfNode, WorkflowWhatIfResult } from './workflow/whatIfWorkflow.js';
export { workflowNodeMachine } from './workflow/workflowMachine.js';
export type { WorkflowMachine, WorkflowNodeMachine } from './workflow/workflowMachine.js';
export { skipReasonSchema, workflowEventSchema, workflowEventTypes } from './events/workflowSchema.js';
export type { SkipReason, StoredWorkflowEvent, WorkflowCounts, WorkflowEvent, WorkflowEventOf, WorkflowEventType, WorkflowHaltKind } from './events/workflowSchema.js';
export { createGovernedRun, createGovernedWorkflow, governedRun, governedWorkflow } from './actors/governedRun.js';
export type {
  GovernedRunInput,
  GovernedRunLogic,
  GovernedRunSnapshot,
  GovernedWorkflowInput,
  GovernedWorkflowLogic,
  GovernedWorkflowSnapshot,
} from './actors/governedRun.js';
export { definePlugin, isPlugin } from './plugins/definePlugin.js';
export type {
  Plugin,
  PluginCounters,
  PluginDefinition,
  PluginFactsBase,
  PluginRule,
  PluginRuleFacts,
  PluginRuleKind,
  PluginRules,
  PluginSetupContext,
  PluginToolCall,
  PluginVerdict,
} from './plugins/definePlugin.js';
