/**
 * The worker's CloudWatch metrics that the infrastructure alarms on and charts: the ONE place
 * their names live on the infrastructure side. `metric-names.json` beside package.json is the
 * same list as JSON (a jest test keeps the two equal; `npm run metric-names` rewrites it), so
 * that a Python test can prove the worker emits every one of them.
 *
 * Namespace `Luxflow`, one dimension `App` = the application name (default `luxflow-lighting`).
 */

export const METRIC_NAMESPACE = 'Luxflow';
export const METRIC_APP_DIMENSION = 'App';

/** CloudWatch unit names, as the worker writes them in Embedded Metric Format. */
export type MetricUnit = 'Milliseconds' | 'Count';
/** The statistic the alarm and the dashboard use. */
export type MetricStatistic = 'Maximum' | 'Sum';

export interface MetricSpec {
  readonly name: string;
  readonly unit: MetricUnit;
  readonly statistic: MetricStatistic;
  /** True when an alarm (or an alarm's metric math) reads this metric; false: dashboard only. */
  readonly alarm: boolean;
}

export const MILLIS_BEHIND_LATEST: MetricSpec = {
  name: 'MillisBehindLatest',
  unit: 'Milliseconds',
  statistic: 'Maximum',
  alarm: true,
};
export const DEAD_LETTERS: MetricSpec = { name: 'DeadLetters', unit: 'Count', statistic: 'Sum', alarm: true };
export const SINK_ERRORS: MetricSpec = { name: 'SinkErrors', unit: 'Count', statistic: 'Sum', alarm: true };
export const CHECKPOINT_AGE_MS: MetricSpec = {
  name: 'CheckpointAgeMs',
  unit: 'Milliseconds',
  statistic: 'Maximum',
  alarm: true,
};
/** The denominator of the dead-letter rate alarm (dead letters per record read). */
export const RECORDS_READ: MetricSpec = { name: 'RecordsRead', unit: 'Count', statistic: 'Sum', alarm: true };
export const RECORDS_PROCESSED: MetricSpec = {
  name: 'RecordsProcessed',
  unit: 'Count',
  statistic: 'Sum',
  alarm: false,
};
export const LATE_RECORDS: MetricSpec = { name: 'LateRecords', unit: 'Count', statistic: 'Sum', alarm: false };
export const SHARDS_HELD: MetricSpec = { name: 'ShardsHeld', unit: 'Count', statistic: 'Maximum', alarm: false };
export const SINK_THROTTLES: MetricSpec = {
  name: 'SinkThrottles',
  unit: 'Count',
  statistic: 'Sum',
  alarm: false,
};

/** Every metric, alarmed ones first; this order is the JSON file's order. */
export const METRICS: readonly MetricSpec[] = [
  MILLIS_BEHIND_LATEST,
  DEAD_LETTERS,
  SINK_ERRORS,
  CHECKPOINT_AGE_MS,
  RECORDS_READ,
  RECORDS_PROCESSED,
  LATE_RECORDS,
  SHARDS_HELD,
  SINK_THROTTLES,
];

/** The JSON text of `metric-names.json`. */
export function metricNamesJson(): string {
  return (
    JSON.stringify(
      METRICS.map((m) => ({ name: m.name, unit: m.unit, statistic: m.statistic, alarm: m.alarm })),
      null,
      2,
    ) + '\n'
  );
}
