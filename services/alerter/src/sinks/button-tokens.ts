import type { ExecutorClient, MintedTokens } from "@steward/executor/client";

export type ButtonTokens = { ok: true; tokens: MintedTokens } | { ok: false; decided: true } | { ok: false; decided: false; error: string };

/**
 * The executor's signed, single-use, expiring tokens for a pending action's Approve/Reject buttons (ntfy and Telegram
 * alike; the executor mints and redeems them). `decided`: the action was decided (or is gone) before the push went
 * out, so it goes without buttons that could only be refused; any other failure is retried.
 */
export async function mintButtonTokens(executor: Pick<ExecutorClient, "mintApprovalTokens">, actionId: string, opts: { confirm?: boolean } = {}): Promise<ButtonTokens> {
  try {
    return { ok: true, tokens: await executor.mintApprovalTokens(actionId, opts.confirm ? { confirm: true } : {}) };
  } catch (err) {
    const status = (err as { status?: number }).status;
    if (status === 409 || status === 404) return { ok: false, decided: true };
    return { ok: false, decided: false, error: `minting approval tokens: ${(err as Error).message}` };
  }
}

export const ALREADY_DECIDED = "(already decided; no buttons)";
