/**
 * The agent's bounded event log: the newest N events for `GET /api/v1/events`, and live subscribers
 * for the server-sent event stream. Memory is bounded twice: the log keeps at most `capacity` events,
 * and a subscriber that cannot take an event loses it — counted, never silently. Event types are
 * whatever the registered collectors declare; the log keeps no list of its own.
 *
 * Types share the log fairly: when it is full, the oldest event of the type that holds the most goes.
 * A storm of one type (20,000 connections a second make 80,000 TCP events) cannot push the rare ones
 * (an OOM kill, an exec) out of the log; it only shortens its own history.
 */

/** Events of one type, oldest first: an array with a moving head. */
class Queue {
  items: PeriscopeEvent[] = [];
  head = 0;

  get size(): number {
    return this.items.length - this.head;
  }

  at(i: number): PeriscopeEvent {
    return this.items[this.head + i]!;
  }

  shift(): void {
    this.head++;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }

  /** index of the first event with seq > since */
  after(since: number): number {
    let lo = 0;
    let hi = this.size;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.at(mid).seq <= since) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
import { type PeriscopeEvent, type UnnumberedEvent } from '../wire/events.js';

export interface Subscriber {
  filter?: (e: PeriscopeEvent) => boolean;
  /** returns false when the consumer cannot take more now (the event is counted as dropped) */
  send(e: PeriscopeEvent): boolean;
}

export class EventLog {
  private readonly queues = new Map<string, Queue>();
  private size = 0;
  private next = 1; // seq of the next event
  private readonly subscribers = new Set<Subscriber>();
  /** events a live subscriber could not take (it fell too far behind) */
  subscriberDrops = 0;
  /** events kept, by type: every declared type starts at zero */
  readonly counts = new Map<string, number>();
  /** events that fell out of the log because it is bounded */
  evicted = 0;

  constructor(
    readonly capacity = 10_000,
    types: readonly string[] = [],
  ) {
    for (const t of types) this.counts.set(t, 0);
  }

  push(e: UnnumberedEvent): PeriscopeEvent {
    const event = { seq: this.next++, ...e } as PeriscopeEvent;
    let q = this.queues.get(event.type);
    if (!q) this.queues.set(event.type, (q = new Queue()));
    q.items.push(event);
    this.size++;
    if (this.size > this.capacity) {
      let largest = q;
      for (const other of this.queues.values()) if (other.size > largest.size) largest = other;
      largest.shift();
      this.size--;
      this.evicted++;
    }
    this.counts.set(event.type, (this.counts.get(event.type) ?? 0) + 1);
    for (const s of this.subscribers) {
      if (s.filter && !s.filter(event)) continue;
      if (!s.send(event)) this.subscriberDrops++;
    }
    return event;
  }

  /** Events with seq > since, oldest first, at most limit: for a reader that pages forward. */
  since(since: number, limit: number, filter?: (e: PeriscopeEvent) => boolean): PeriscopeEvent[] {
    const out: PeriscopeEvent[] = [];
    for (const q of this.queues.values()) {
      let taken = 0;
      for (let i = q.after(since); i < q.size && taken < limit; i++) {
        const e = q.at(i);
        if (!filter || filter(e)) {
          out.push(e);
          taken++;
        }
      }
    }
    return out.sort((a, b) => a.seq - b.seq).slice(0, limit);
  }

  /** The newest `limit` events that pass the filter, oldest first. */
  newest(limit: number, filter?: (e: PeriscopeEvent) => boolean): PeriscopeEvent[] {
    const out: PeriscopeEvent[] = [];
    for (const q of this.queues.values()) {
      let taken = 0;
      for (let i = q.size - 1; i >= 0 && taken < limit; i--) {
        const e = q.at(i);
        if (!filter || filter(e)) {
          out.push(e);
          taken++;
        }
      }
    }
    return out.sort((a, b) => a.seq - b.seq).slice(-limit);
  }

  /** seq of the newest event (0 when none) */
  get last(): number {
    return this.next - 1;
  }

  subscribe(s: Subscriber): () => void {
    this.subscribers.add(s);
    return () => this.subscribers.delete(s);
  }

  get subscriberCount(): number {
    return this.subscribers.size;
  }
}
