/**
 * The user-space protocol layer of the L7 collector: chunks of captured socket data in, matched
 * request/response records out. `L7Tracker` is the entry point; the parsers, the classifier, route
 * templating and SQL shapes are exported for the collector and its tests.
 */
export * from './types.js';
export { classify, roleFrom, type Classification } from './classify.js';
export { L7Tracker, type TrackerOptions } from './tracker.js';
export { Http1Parser } from './http1.js';
export { Http2Parser, GRPC_CODES } from './http2.js';
export { HpackDecoder, type HeaderField, type DecodedBlock } from './hpack.js';
export { PostgresParser } from './postgres.js';
export { RedisParser } from './redis.js';
export { RouteSet, templatePath, splitTarget, OTHER_ROUTE } from './route.js';
export { normalizeSql, maskSql, sqlVerb } from './sql.js';
export { isSecretHeader, maskRedisArgs, MASK } from './redact.js';
