/**
 * The V8 flags the observer runs with, wherever the product runs it: `steward up` passes these (cli/src/up), and
 * docker-compose.yml's observer `command` repeats them (cli/test/up-plan.test.ts fails when the two differ).
 *
 * Why: the observer's live heap is small (~55-75 MB at 1,000 nodes × 20 services) but it replaces every node's
 * objects on each heartbeat (5 s), so old-generation garbage arrives at megabytes per second. V8's default sizing
 * then keeps 2.5-3× the live heap committed (old space grown by up to 4× after each mark-compact, plus two 16 MB
 * semi-spaces): 330-400 MB of RSS for 55 MB of objects (docs/benchmarks.md). These two flags bound the headroom,
 * not the heap, so a bigger fleet still gets the memory it needs (no OOM at 5,000 nodes; measured there too):
 * - `--heap-growing-percent`: after each full collection the old generation may grow to 1 + p/100 of what survived
 *   (instead of V8's dynamic factor, up to 4×), so collections run a little more often on a heap a fraction the size.
 * - `--max-semi-space-size` (MB): the young generation, which the observer's short-lived garbage (parsed events,
 *   each changed node's JSON) passes through; smaller means more, cheaper scavenges.
 */
export const OBSERVER_NODE_FLAGS: readonly string[] = ["--max-semi-space-size=4", "--heap-growing-percent=30"];
