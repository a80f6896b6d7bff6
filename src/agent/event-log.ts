/**
 * The agent's bounded event log: the newest N events for `GET /api/v1/events`, and live subscribers
 * for the server-sent event stream. Memory is bounded twice: the log keeps at most `capacity` events,
 * and a subscriber that falls more than `maxQueue` events behind loses the overflow — counted, never
 * silently.
 */
import { type UnnumberedEvent, type PeriscopeEvent, type EventType } from '../wire/events.js';

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
  readonly counts: Record<EventType, number> = { exec: 0, exit: 0, oom_kill: 0 };

  constructor(readonly capacity = 10_000) {
    this.buf = new Array<PeriscopeEvent | undefined>(capacity);
  }

  push(e: UnnumberedEvent): PeriscopeEvent {
    const event = { seq: this.next++, ...e };
    this.buf[event.seq % this.capacity] = event;
    this.counts[event.type]++;
    for (const s of this.subscribers) {
      if (s.filter && !s.filter(event)) continue;
      if (!s.send(event)) this.subscriberDrops++;
    }
    return event;
  }

  /** Events with seq > since, oldest first, at most limit. */
  since(since: number, limit: number, filter?: (e: PeriscopeEvent) => boolean): PeriscopeEvent[] {
    const first = Math.max(since + 1, this.next - this.capacity, 1);
    const out: PeriscopeEvent[] = [];
    for (let seq = first; seq < this.next && out.length < limit; seq++) {
      const e = this.buf[seq % this.capacity];
      if (e && e.seq === seq && (!filter || filter(e))) out.push(e);
    }
    return out;
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
