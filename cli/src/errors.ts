/**
 * The errors runCli turns into exit codes. They live apart from the API clients so that the
 * dispatcher can recognise them without loading zod or the clients.
 */

/** What the typed API clients throw (the HTTP helper has no runtime imports, so the dispatcher loads it cheaply). */
export { ApiError } from "@steward/platform/http-client";

export class NoStackError extends Error {
  constructor() {
    super("no Steward API configured: set STEWARD_API_URL and STEWARD_TOKEN, or run `steward up` in another terminal");
    this.name = "NoStackError";
  }
}

/** A mistake on the command line: exit 2, nothing sent. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}
