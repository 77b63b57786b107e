/**
 * The errors runCli turns into exit codes. They live apart from the API clients so that the
 * dispatcher can recognise them without loading zod or the clients.
 */

export class ApiError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
    this.name = "ApiError";
  }
}

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
