export { createConsole, DEFAULT_SESSION_TTL_MS, MAX_FORM_BYTES, type Console, type ConsoleDeps, type RouteResult } from "./routes.js";
export { createPlannerClient, type PlannerClient, type PlannerRead } from "./planner-client.js";
export { spendChart, capLevel } from "./chart.js";
export { html, esc, raw, Html } from "./html.js";
export { checkOrigin, parseCookies, createSessionStore, SESSION_COOKIE, type Session, type SessionStore } from "./sessions.js";
