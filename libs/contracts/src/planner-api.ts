import { z } from "zod";
import { Task } from "./task.js";

/**
 * The planner's HTTP API, beside the schemas it shares with the queue (task.ts): `POST /inbox` takes a
 * `TaskEnvelope`, `GET /tasks/:id` answers a `TaskDetail`, `GET /cost` a `CostReport`. Checked by the typed client,
 * `@steward/planner/client`.
 */

/** Most tasks `GET /tasks` lists at once. */
export const MAX_TASK_LIST_LIMIT = 500;

/** `POST /inbox`: 202 with `created: true`, or 200 with the task an earlier envelope with the same idempotency key made. */
export const InboxReply = z.object({ task: Task, created: z.boolean() });
export type InboxReply = z.infer<typeof InboxReply>;

/** `GET /tasks?limit=&conversation_id=` */
export const TaskListReply = z.object({ tasks: z.array(Task) });
export type TaskListReply = z.infer<typeof TaskListReply>;
