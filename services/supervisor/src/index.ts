export { createSupervisor, type CycleResult, type Supervisor, type SupervisorDeps, type SupervisorSettings } from "./supervisor.js";
export { reconcile, FLEET_FINDINGS, groupDeploys, planProposals, holdFailedRevisions, clearedActions, type Reconciled, type ReconcileInput, type DriftState, type Proposal, type ActionsView } from "./reconcile.js";
export { applyProposals, applyExpiries } from "./apply.js";
export { SUPERVISOR_LOCK_KEY } from "./leader.js";
export { loadSupervisorConfig, type SupervisorConfig } from "./config.js";
export { createSupervisorMetrics, type SupervisorMetrics } from "./metrics.js";
export { createEscalator, detectEscalations, DriftHistory, taskIdFor, type Escalation, type EscalationSignal, type EscalationSettings, type Escalator, type EscalatorOptions, type SucceededRestart } from "./escalate.js";
