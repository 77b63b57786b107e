import { randomUUID } from "node:crypto";
import { NodeEvent } from "@steward/contracts/events";
import { currentTraceHeaders } from "@steward/platform/tracing";
import { eventSubject } from "@steward/contracts/subjects";
import { jetstream, natsHeaders, type MsgHdrs, type NatsConnection } from "@steward/platform/bus";
import type { Logger } from "@steward/platform/logger";
import { BoundedQueue } from "./bounded-queue.js";
import type { AgentMetrics } from "./metrics.js";

/** The part of a JetStream client the publisher needs (a fake in unit tests). */
export interface PublishSink {
  publish(subject: string, data: Uint8Array, opts: { msgID: string; headers: MsgHdrs; timeout: number }): Promise<{ duplicate: boolean; seq: number }>;
}

interface Entry {
  seq: number;
  event: NodeEvent;
  subject: string;
  data: Uint8Array;
  /** Trace context captured when the probe produced the event, so a later re-send keeps its parent. */
  trace: Record<string, string>;
}

export interface PublisherOptions {
  node: string;
  maxInFlight: number;
  backlogMax: number;
  publishTimeoutMs: number;
  /** Pause after a failed publish before trying again (a reconnect retries at once). */
  retryDelayMs?: number;
  logger: Logger;
  metrics: AgentMetrics;
}

export function newEventId(node: string): string {
  return `${node}-${randomUUID()}`;
}

/**
 * Publishes events to JetStream asynchronously, at most `maxInFlight` awaiting acks.
 * Everything goes through a bounded FIFO backlog, so while NATS is unreachable probing goes on,
 * the oldest events are dropped first (and counted), and the rest go out in order on reconnect.
 * Re-sends carry the same Nats-Msg-Id, so a publish that did land before its ack was lost is not stored twice.
 */
export class EventPublisher {
  private readonly queue: BoundedQueue<Entry>;
  private failed: Entry[] = [];
  private sink: PublishSink | undefined;
  private connected = false;
  private paused = false;
  private retryDue = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private inFlight = 0;
  private seq = 0;
  private droppedCount = 0;
  /** Local sequences of events neither stored (acknowledged) nor dropped yet. */
  private readonly outstanding = new Set<number>();
  /** Highest stream sequence any acknowledgement carried. */
  private storedSeq = 0;
  private waiters: (() => void)[] = [];
  private failing = false;
  private closed = false;
  private readonly enc = new TextEncoder();

  constructor(private readonly opts: PublisherOptions) {
    this.queue = new BoundedQueue<Entry>(opts.backlogMax);
  }

  /** Events dropped because the backlog was full, since the agent started. */
  get dropped(): number {
    return this.droppedCount;
  }

  get backlog(): number {
    return this.queue.size + this.failed.length;
  }

  get pending(): number {
    return this.inFlight;
  }

  /** Uses this connection from now on; follows its disconnects and reconnects. */
  attach(nc: NatsConnection): void {
    this.setSink(jetstream(nc), !nc.isClosed());
    void (async () => {
      for await (const s of nc.status()) {
        if (s.type === "disconnect") this.setConnected(false);
        else if (s.type === "reconnect") this.setConnected(true);
      }
      this.setConnected(false);
    })().catch((err: unknown) => this.opts.logger.warn({ err }, "nats status watch ended"));
  }

  setSink(sink: PublishSink | undefined, connected = sink !== undefined): void {
    this.sink = sink;
    this.setConnected(connected);
  }

  setConnected(connected: boolean): void {
    const was = this.connected;
    this.connected = connected;
    if (connected && !was) {
      this.opts.logger.info({ backlog: this.backlog }, "nats connected: publishing backlog");
      this.retryDue = true;
      this.maybeResume();
      this.pump();
    } else if (!connected && was) {
      this.opts.logger.warn({ backlog: this.backlog }, "nats unreachable: buffering events");
    }
  }

  /** Queues an event for publishing; the trace context active now travels with it. Never blocks, never throws. */
  publish(input: NodeEvent): void {
    if (this.closed) return;
    const parsed = NodeEvent.safeParse(input);
    if (!parsed.success) {
      // A bug in the agent, not bad input from outside: say so loudly, but keep probing.
      this.opts.logger.error({ type: input.type, issues: parsed.error.issues.slice(0, 5) }, "agent produced an invalid event; not published");
      return;
    }
    const event = parsed.data;
    const entry: Entry = {
      seq: ++this.seq,
      event,
      subject: eventSubject(this.opts.node, event.type),
      data: this.enc.encode(JSON.stringify(event)),
      trace: currentTraceHeaders(),
    };
    this.outstanding.add(entry.seq);
    const dropped = this.queue.push(entry);
    if (dropped) {
      this.outstanding.delete(dropped.seq);
      this.countDropped(1);
      this.wake();
    }
    this.opts.metrics.backlogSize.set(this.backlog);
    this.pump();
  }

  /** Waits until everything queued is acknowledged, or the timeout passes. Returns whether it all went out. */
  async flush(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.backlog > 0 || this.inFlight > 0) {
      if (Date.now() >= deadline) return false;
      await new Promise((r) => setTimeout(r, 20));
    }
    return true;
  }

  /**
   * Waits until every event published before this call is stored in the stream (or was dropped), then returns the
   * highest stream sequence acknowledged so far: a world folded up to it holds everything this agent said until now.
   * Null when that did not happen within the timeout (NATS unreachable, a backlog). A command's reply carries it, so
   * the executor can tell an observation made after the command from one made during it.
   */
  async storedThrough(timeoutMs: number): Promise<number | null> {
    const target = this.seq;
    const done = () => {
      for (const s of this.outstanding) if (s <= target) return false;
      return true;
    };
    if (done()) return this.storedSeq;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== check);
        resolve(null);
      }, timeoutMs);
      const check = () => {
        if (!done()) return;
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== check);
        resolve(this.storedSeq);
      };
      this.waiters.push(check);
    });
  }

  close(): void {
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
  }

  private countDropped(n: number): void {
    this.droppedCount += n;
    this.opts.metrics.eventsDropped.inc(n);
  }

  private pump(): void {
    while (!this.closed && this.sink && this.connected && !this.paused && this.inFlight < this.opts.maxInFlight && this.queue.size > 0) {
      const e = this.queue.shift() as Entry;
      this.send(this.sink, e);
    }
    this.opts.metrics.backlogSize.set(this.backlog);
  }

  private send(sink: PublishSink, e: Entry): void {
    this.inFlight++;
    this.opts.metrics.inFlight.set(this.inFlight);
    const headers = natsHeaders();
    for (const [k, v] of Object.entries(e.trace)) headers.set(k, v);
    let p: Promise<{ duplicate: boolean; seq: number }>;
    try {
      p = sink.publish(e.subject, e.data, { msgID: e.event.id, headers, timeout: this.opts.publishTimeoutMs });
    } catch (err) {
      p = Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    p.then(
      (ack) => {
        this.settle();
        this.outstanding.delete(e.seq);
        if (ack.seq > this.storedSeq) this.storedSeq = ack.seq;
        this.wake();
        if (this.failing) {
          this.failing = false;
          this.opts.logger.info("publishing again");
        }
        (ack.duplicate ? this.opts.metrics.eventsDuplicate : this.opts.metrics.eventsPublished).inc({ type: e.event.type });
        if (this.paused) this.maybeResume();
        else this.pump();
      },
      (err: unknown) => {
        this.settle();
        this.opts.metrics.publishFailures.inc();
        if (!this.failing) {
          this.failing = true;
          this.opts.logger.warn({ err: (err as Error)?.message ?? String(err), subject: e.subject }, "publish failed; keeping the event and retrying");
        }
        this.failed.push(e);
        if (!this.paused) {
          this.paused = true;
          this.retryDue = false;
        }
        if (!this.retryTimer && !this.closed) {
          this.retryTimer = setTimeout(() => {
            this.retryTimer = undefined;
            this.retryDue = true;
            this.maybeResume();
          }, this.opts.retryDelayMs ?? 500);
        }
        this.maybeResume();
      },
    );
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }

  private settle(): void {
    this.inFlight--;
    this.opts.metrics.inFlight.set(this.inFlight);
  }

  /**
   * Failed events go back to the front only once nothing is in flight, so a re-sent old event
   * can never land after a newer one about the same service.
   */
  private maybeResume(): void {
    if (!this.paused || this.inFlight > 0 || !this.retryDue || !this.connected || this.closed) return;
    this.paused = false;
    this.retryDue = false;
    const failed = this.failed.sort((a, b) => a.seq - b.seq);
    this.failed = [];
    const dropped = this.queue.unshiftAll(failed);
    if (dropped.length > 0) {
      for (const d of dropped) this.outstanding.delete(d.seq);
      this.countDropped(dropped.length);
      this.wake();
    }
    this.pump();
  }
}
