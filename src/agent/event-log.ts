/**
 * The agent's bounded event log: the newest N events for `GET /api/v1/events`, and live subscribers
 * for the server-sent event stream. Memory is bounded twice: the log keeps at most `capacity` events,
 * and a subscriber that cannot take an event loses it — counted, never silently. Event types are
 * whatever the registered collectors declare; the log keeps no list of its own.
 */
import { type PeriscopeEvent, type UnnumberedEvent } from '../wire/events.js';

export interface Subscriber {
  filter?: (e: PeriscopeEvent) => boolean;
  /** returns false when the consumer cannot take more now (the event is counted as dropped) */
  send(e: PeriscopeEvent): boolean;
}

export class EventLog {
  private readonly buf: (PeriscopeEvent | undefined)[];
  private next = 1; // seq of the next event
  private readonly subscribers = new Set<Subscriber>();
  /** events a live subscriber could not take (it fell too far behind) */
  subscriberDrops = 0;
  /** events kept, by type: every declared type starts at zero */
  readonly counts = new Map<string, number>();

  constructor(
    readonly capacity = 10_000,
    types: readonly string[] = [],
  ) {
    this.buf = new Array<PeriscopeEvent | undefined>(capacity);
    for (const t of types) this.counts.set(t, 0);
  }

  push(e: UnnumberedEvent): PeriscopeEvent {
    const event = { seq: this.next++, ...e } as PeriscopeEvent;
    this.buf[event.seq % this.capacity] = event;
    this.counts.set(event.type, (this.counts.get(event.type) ?? 0) + 1);
    for (const s of this.subscribers) {
      if (s.filter && !s.filter(event)) continue;
      if (!s.send(event)) this.subscriberDrops++;
    }
    return event;
  }

  private get first(): number {
    return Math.max(this.next - this.capacity, 1);
  }

  /** Events with seq > since, oldest first, at most limit: for a reader that pages forward. */
  since(since: number, limit: number, filter?: (e: PeriscopeEvent) => boolean): PeriscopeEvent[] {
    const out: PeriscopeEvent[] = [];
    for (let seq = Math.max(since + 1, this.first); seq < this.next && out.length < limit; seq++) {
      const e = this.buf[seq % this.capacity];
      if (e && e.seq === seq && (!filter || filter(e))) out.push(e);
    }
    return out;
  }

  /** The newest `limit` events that pass the filter, oldest first. */
  newest(limit: number, filter?: (e: PeriscopeEvent) => boolean): PeriscopeEvent[] {
    const out: PeriscopeEvent[] = [];
    for (let seq = this.next - 1; seq >= this.first && out.length < limit; seq--) {
      const e = this.buf[seq % this.capacity];
      if (e && e.seq === seq && (!filter || filter(e))) out.push(e);
    }
    return out.reverse();
  }

  /** seq of the newest event (0 when none) */
  get last(): number {
    return this.next - 1;
  }

  /** events that fell out of the log because it is bounded */
  get evicted(): number {
    return Math.max(0, this.next - 1 - this.capacity);
  }

  subscribe(s: Subscriber): () => void {
    this.subscribers.add(s);
    return () => this.subscribers.delete(s);
  }

  get subscriberCount(): number {
    return this.subscribers.size;
  }
}
