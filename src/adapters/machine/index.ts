export { fromMachine, oaoTool, OAO_TOOL_ACTOR } from './fromMachine.js';
export type {
  BudgetSnapshot,
  MachineAgentInput,
  MachineAgentOptions,
  OaoMachineEmitted,
  OaoToolReply,
  OaoToolRequest,
} from './fromMachine.js';
