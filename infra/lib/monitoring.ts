/**
 * The region's monitoring: the alarm topic (encrypted with the region's key, which CloudWatch
 * is allowed to use), the alarm helper every alarm goes through (alarm and OK actions to the
 * topic, name `<appName>-<region>-<key>`), and the dashboard. The alarms themselves are in
 * alarms.ts; each has a runbook entry `### <key>` in docs/operations.md (a jest test checks).
 */
import { Duration, Stack } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import { LuxflowConfig } from './config';
import * as m from './metric-names';

/** One of the worker's metrics (namespace Luxflow, dimension App), fleet-wide. */
export function luxflowMetric(config: LuxflowConfig, spec: m.MetricSpec, period = Duration.minutes(1)): cloudwatch.Metric {
  return new cloudwatch.Metric({
    namespace: m.METRIC_NAMESPACE,
    metricName: spec.name,
    dimensionsMap: { [m.METRIC_APP_DIMENSION]: config.appName },
    statistic: spec.statistic,
    unit: cloudwatch.Unit[spec.unit === 'Count' ? 'COUNT' : 'MILLISECONDS'],
    period,
  });
}

export interface AlarmSpec {
  /** The alarm's key: its construct id `<key>Alarm`, name suffix and runbook heading. */
  readonly key: string;
  readonly description: string;
  readonly metric: cloudwatch.IMetric;
  readonly threshold: number;
  readonly evaluationPeriods: number;
  readonly datapointsToAlarm?: number;
  readonly comparison?: cloudwatch.ComparisonOperator;
  readonly missing: cloudwatch.TreatMissingData;
}

/** The topic and a function that adds an alarm publishing to it. */
export class AlarmTopic {
  readonly topic: sns.Topic;
  readonly alarms: Record<string, cloudwatch.Alarm> = {};

  constructor(
    private readonly stack: Stack,
    private readonly config: LuxflowConfig,
    key: kms.IKey,
  ) {
    this.topic = new sns.Topic(stack, 'Alarms', { masterKey: key, enforceSSL: true });
    key.addToResourcePolicy(
      new iam.PolicyStatement({
        principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
        actions: ['kms:Decrypt', 'kms:GenerateDataKey'],
        resources: ['*'],
      }),
    );
    if (config.alarmEmail) this.topic.addSubscription(new subscriptions.EmailSubscription(config.alarmEmail));
  }

  add(spec: AlarmSpec): cloudwatch.Alarm {
    const alarm = new cloudwatch.Alarm(this.stack, `${spec.key}Alarm`, {
      alarmName: `${this.config.appName}-${this.stack.region}-${spec.key}`,
      alarmDescription: `${spec.description} Runbook: docs/operations.md, "${spec.key}".`,
      metric: spec.metric,
      threshold: spec.threshold,
      evaluationPeriods: spec.evaluationPeriods,
      datapointsToAlarm: spec.datapointsToAlarm,
      comparisonOperator: spec.comparison ?? cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      treatMissingData: spec.missing,
    });
    alarm.addAlarmAction(new cwActions.SnsAction(this.topic));
    alarm.addOkAction(new cwActions.SnsAction(this.topic));
    this.alarms[spec.key] = alarm;
    return alarm;
  }
}

/** The dashboard: every alarm's state, then the worker's metrics. */
export function addDashboard(stack: Stack, config: LuxflowConfig, alarms: cloudwatch.Alarm[]): void {
  const dashboard = new cloudwatch.Dashboard(stack, 'Dashboard', {
    dashboardName: `luxflow-${config.appName}-${stack.region}`,
  });
  dashboard.addWidgets(new cloudwatch.AlarmStatusWidget({ title: 'Alarms', alarms, width: 24 }));
  const graph = (specs: m.MetricSpec[]) =>
    new cloudwatch.GraphWidget({
      title: specs.map((s) => s.name).join(', '),
      left: specs.map((s) => luxflowMetric(config, s)),
      width: 12,
    });
  dashboard.addWidgets(graph([m.MILLIS_BEHIND_LATEST]), graph([m.CHECKPOINT_AGE_MS]));
  dashboard.addWidgets(graph([m.RECORDS_READ, m.RECORDS_PROCESSED]), graph([m.DEAD_LETTERS, m.LATE_RECORDS]));
  dashboard.addWidgets(graph([m.SINK_ERRORS, m.SINK_THROTTLES]), graph([m.SHARDS_HELD]));
}
