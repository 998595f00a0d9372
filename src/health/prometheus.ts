import type { HealthReport } from './types.js';

/**
 * The Prometheus text exposition format of a report. prom-client is loaded on first use only: it
 * is a noticeable part of a cron run's startup, and an application importing the router needs none.
 *
 * @example process.stdout.write(await prometheusText(await health(config)));
 */
export async function prometheusText(report: HealthReport): Promise<string> {
  const { healthRegistry } = await import('./metrics.js');
  return healthRegistry(report).metrics();
}
