/**
 * The vocabulary of the L7 protocol layer: what the kernel hands over (a `Chunk`: a bounded prefix of
 * one read or write on one connection, with the call's full length), what comes out (an `L7Record`:
 * one request matched with its response), the options every parser shares, and the counters of
 * everything dropped or guessed. Nothing here parses; the parsers are the sibling modules and
 * `tracker.ts` drives them.
 */

/** A connection as the kernel names it; a reused file descriptor is a new id. */
export type ConnId = bigint | string;

/** `egress`: written by the traced process; `ingress`: read by it. */
export type Direction = 'egress' | 'ingress';

export type Role = 'client' | 'server';

export type Protocol = 'http1' | 'http2' | 'grpc' | 'postgres' | 'redis';

/** What a connection is classified as; `http2` connections emit `http2` and `grpc` records. */
export type ConnProtocol = 'http1' | 'http2' | 'postgres' | 'redis';

export interface Chunk {
  conn: ConnId;
  dir: Direction;
  /** when the call happened, in ns (any monotonic clock; records only subtract them) */
  time: bigint;
  /** the captured prefix of the call's data */
  data: Uint8Array;
  /** the call's full length: `size > data.length` means the rest was not captured */
  size: number;
  /** whether the traced process is the client or the server, when the kernel knows (connect vs accept) */
  role?: Role;
}

export const opposite = (d: Direction): Direction => (d === 'egress' ? 'ingress' : 'egress');

/** The direction that carries requests, for the traced process playing `role`. */
export const requestDirection = (role: Role): Direction => (role === 'client' ? 'egress' : 'ingress');

/**
 * Fields every record has. Times are the chunk times of the bytes that start and end each message;
 * latency is `end - start` (request start to response end, as Beyla measures), and `responseStart`
 * gives time to first byte where wanted.
 */
export interface RecordBase {
  conn: ConnId;
  role: Role;
  /** the chunk that held the request's first byte (the response's, for a response whose request was never seen) */
  start: bigint;
  /** the chunk that held the response's first byte; undefined when no response was seen */
  responseStart: bigint | undefined;
  /** the chunk that held the response's last byte (or the last byte seen of whatever was seen) */
  end: bigint;
  /** bytes of the request on the wire (headers and body, or frames, or messages), captured or not */
  requestBytes: number;
  responseBytes: number;
  /**
   * A bounded label for the outcome: the HTTP status code (`'200'`), the gRPC code name (`'NOT_FOUND'`),
   * the SQLSTATE (`'42P01'`), the Redis error prefix (`'WRONGTYPE'`), `'ok'` for a successful query or
   * command, `'reset'` for a stream reset, `'none'` when no response came before the connection ended,
   * `'unknown'` when the response was seen but its status was not.
   */
  status: string;
  /** a failed request: HTTP 5xx, a gRPC code other than OK, an SQL error, a Redis error, a reset */
  error: boolean;
  /** the error's text (gRPC message, SQL message, Redis error line); never kept in shapes-only mode */
  errorMessage?: string;
  /** the request was not seen whole (its start was before the capture began, or its head fell in uncaptured bytes) */
  requestPartial: boolean;
  /** the response was not seen whole (cut by uncaptured bytes, by a reset, or by the connection's end) */
  responsePartial: boolean;
  /** the connection was joined after it had started: names that needed earlier state are unknown */
  midStream: boolean;
}

export interface HttpRecord extends RecordBase {
  protocol: 'http1' | 'http2';
  method: string | undefined;
  /** the request target without its query string; undefined in shapes-only mode */
  path: string | undefined;
  /** the path as a template (`/users/{id}`): bounded per workload by `RouteSet` where series are made */
  route: string | undefined;
  /** the Host header or `:authority`; undefined in shapes-only mode */
  host: string | undefined;
  statusCode: number | undefined;
  /** HTTP/2 stream id */
  stream?: number;
}

export interface GrpcRecord extends RecordBase {
  protocol: 'grpc';
  /** `pkg.Service` from `:path` `/pkg.Service/Method` */
  service: string | undefined;
  method: string | undefined;
  /** the HTTP status of the response headers */
  statusCode: number | undefined;
  /** `grpc-status` from the trailers (or a trailers-only response) */
  grpcStatus: number | undefined;
  stream: number;
}

export interface PostgresRecord extends RecordBase {
  protocol: 'postgres';
  /** the SQL verb: from the command tag when one came back, else the query's first word */
  command: string | undefined;
  /** the normalized query (literals as `?`): the query's shape */
  shape: string | undefined;
  /** the query text with string literals masked; undefined in shapes-only mode */
  query: string | undefined;
  /** the prepared statement's name for an extended-protocol execute ('' for the unnamed one) */
  statement?: string;
  /** the CommandComplete tag (`SELECT 3`, `INSERT 0 1`) */
  tag: string | undefined;
  /** data rows counted in the response */
  rows: number;
}

export interface RedisRecord extends RecordBase {
  protocol: 'redis';
  /** the command uppercased, with its subcommand for container commands (`CLIENT SETNAME`) */
  command: string | undefined;
  /** a bounded sample of the arguments, secrets masked (a run's first command's); undefined in shapes-only mode */
  args: string[] | undefined;
  /**
   * Commands this record stands for (1 unless `aggregateUnder` is set): a run of consecutive commands
   * of one pipeline with the same name and outcome, sent in one call and answered in one, is one
   * record. Bytes are the run's total; a run holds no error and none that took `aggregateUnder` or longer.
   */
  count: number;
}

export type L7Record = HttpRecord | GrpcRecord | PostgresRecord | RedisRecord;

/** `samples`: keep masked payload text (paths, queries, args); `shapes`: only method, route, command and query shape. */
export type PayloadMode = 'samples' | 'shapes';

export interface ParserOptions {
  payload: PayloadMode;
  /** outstanding requests kept per connection (pipelining, HTTP/2 streams); the oldest is dropped past it */
  maxPending: number;
  /** captured bytes buffered per direction while a message is incomplete */
  maxBuffer: number;
  /** named prepared statements remembered per PostgreSQL connection */
  maxStatements: number;
  /** nesting of Redis replies followed before a reply is counted and the rest skipped */
  maxDepth: number;
  /** characters kept of a sampled text (path, query, argument) */
  maxText: number;
  /**
   * Redis: commands of a pipeline that share their calls and outcome and took less than this many ns
   * are handed over as one record with a `count` (0n: one record per command). A record that would
   * be an event (an error, a slow command) is never part of a run, so the collector gives this its
   * slow threshold.
   */
  aggregateUnder: bigint;
}

export const DEFAULT_OPTIONS: ParserOptions = {
  payload: 'samples',
  maxPending: 256,
  maxBuffer: 64 * 1024,
  maxStatements: 256,
  maxDepth: 32,
  maxText: 1024,
  aggregateUnder: 0n,
};

/** Counters of everything dropped, skipped or guessed; one object shared by a tracker and its parsers. */
export interface L7Stats {
  chunks: number;
  records: number;
  /** connections whose first bytes matched no protocol (capture stopped) */
  unknownConnections: number;
  /** connections dropped from the tracker's table to make room for a new one */
  evictedConnections: number;
  /** connections first seen after their start (HTTP/2 without its preface, a reply before any request) */
  midStreamConnections: number;
  /** outstanding requests dropped because a connection had too many (pipelining or streams) */
  pendingOverflow: number;
  /** responses for which no request was seen (recorded with the request's fields unknown) */
  unmatchedResponses: number;
  /** requests that never got a response before the connection ended */
  unansweredRequests: number;
  /** times a direction lost track of message boundaries (uncaptured bytes, garbage, a message past the buffer) */
  desyncs: number;
  /** bytes passed over while looking for a message boundary again */
  resyncSkippedBytes: number;
  /** HTTP/2 header blocks that could not be decoded (their direction's dynamic table is then distrusted) */
  headerBlockFailures: number;
  /** Redis push messages and PostgreSQL async messages seen (not replies) */
  asyncMessages: number;
  /** Redis replies or PostgreSQL results whose nesting or size was past what is followed */
  truncatedReplies: number;
}

export const newStats = (): L7Stats => ({
  chunks: 0,
  records: 0,
  unknownConnections: 0,
  evictedConnections: 0,
  midStreamConnections: 0,
  pendingOverflow: 0,
  unmatchedResponses: 0,
  unansweredRequests: 0,
  desyncs: 0,
  resyncSkippedBytes: 0,
  headerBlockFailures: 0,
  asyncMessages: 0,
  truncatedReplies: 0,
});

/** What a parser is given: the connection it parses, its options, the shared counters and where records go. */
export interface ParserContext {
  conn: ConnId;
  /** the traced process's side of the connection */
  role: Role;
  options: ParserOptions;
  stats: L7Stats;
  emit: (record: L7Record) => void;
}

/** One connection's parser: fed every chunk of both directions in time order, closed once. */
export interface ConnectionParser {
  push(chunk: Chunk): void;
  /** the connection ended at `time`: whatever is outstanding is emitted as partial */
  close(time: bigint): void;
  /** captured bytes held while messages are incomplete (bounded by `maxBuffer` per direction, plus one chunk) */
  buffered(): number;
}
