/**
 * The `health` engine: probes, checks, catalog consistency, Prometheus metrics, the textfile.
 * Knows nothing of the terminal; `commands/health.ts` renders and picks the exit code.
 */
export { health } from './health.js';
export type * from './types.js';
export { prometheusText } from './prometheus.js';
export { COUNTER_HELP, METRIC_HELP, type CounterName, type MetricName } from './metric-names.js';
export { writeTextfile } from './textfile.js';
export { resolveThresholds } from './thresholds.js';
export { STATUS_CODE } from './status.js';
