import { ADVISORY_LOCK_KEYS } from "@steward/platform/db";

/** Advisory lock key of the supervisor leader (the lock itself is @steward/platform/leader-lock). */
export const SUPERVISOR_LOCK_KEY = ADVISORY_LOCK_KEYS.supervisor;
