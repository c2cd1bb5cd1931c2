/**
 * The region's monitoring: the alarm topic (encrypted with the region's key, which CloudWatch
 * is allowed to use), the alarms on the worker's metrics (namespace Luxflow, dimension App) and
 * the dashboard that charts them.
 *
 * Created directly in the stack's scope, with the ids the stack always had (`Alarms`,
 * `<metric>Alarm`, `Dashboard`), so that the logical ids do not change.
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

/** Adds the topic, alarms and dashboard; returns the alarms by metric name. */
export function addMonitoring(stack: Stack, config: LuxflowConfig, key: kms.IKey): Record<string, cloudwatch.Alarm> {
  const region = stack.region;
  const alarms: Record<string, cloudwatch.Alarm> = {};
  const topic = new sns.Topic(stack, 'Alarms', { masterKey: key, enforceSSL: true });
  key.addToResourcePolicy(
    new iam.PolicyStatement({
      principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
      actions: ['kms:Decrypt', 'kms:GenerateDataKey'],
      resources: ['*'],
    }),
  );
  if (config.alarmEmail) topic.addSubscription(new subscriptions.EmailSubscription(config.alarmEmail));
  const metric = (spec: m.MetricSpec, period = Duration.minutes(1)) =>
    new cloudwatch.Metric({
      namespace: m.METRIC_NAMESPACE,
      metricName: spec.name,
      dimensionsMap: { [m.METRIC_APP_DIMENSION]: config.appName },
      statistic: spec.statistic,
      unit: cloudwatch.Unit[spec.unit === 'Count' ? 'COUNT' : 'MILLISECONDS'],
      period,
    });
  const alarm = (
    spec: m.MetricSpec,
    description: string,
    threshold: number,
    evaluationPeriods: number,
    treatMissingData: cloudwatch.TreatMissingData,
    period?: Duration,
  ) => {
    const a = new cloudwatch.Alarm(stack, `${spec.name}Alarm`, {
      alarmName: `${config.appName}-${region}-${spec.name}`,
      alarmDescription: description,
      metric: metric(spec, period),
      threshold,
      evaluationPeriods,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      treatMissingData,
    });
    a.addAlarmAction(new cwActions.SnsAction(topic));
    a.addOkAction(new cwActions.SnsAction(topic));
    alarms[spec.name] = a;
    return a;
  };
  alarm(
    m.MILLIS_BEHIND_LATEST,
    'Consumer lag: a shard is more than 60 s behind the tip of the stream for 5 minutes.',
    60_000,
    5,
    cloudwatch.TreatMissingData.NOT_BREACHING,
  );
  alarm(
    m.DEAD_LETTERS,
    'Dead-letter rate: more than 100 records dead-lettered in 5 minutes (malformed or too late).',
    100,
    1,
    cloudwatch.TreatMissingData.NOT_BREACHING,
    Duration.minutes(5),
  );
  alarm(
    m.SINK_ERRORS,
    'Sink errors: a sink write failed after its retries (DynamoDB or the query store).',
    0,
    1,
    cloudwatch.TreatMissingData.NOT_BREACHING,
    Duration.minutes(5),
  );
  alarm(
    m.CHECKPOINT_AGE_MS,
    'Checkpoint age: a held shard has not checkpointed for more than 2 minutes (stuck shard), ' +
      'or no worker reports at all.',
    120_000,
    3,
    cloudwatch.TreatMissingData.BREACHING,
  );

  const dashboard = new cloudwatch.Dashboard(stack, 'Dashboard', {
    dashboardName: `luxflow-${config.appName}-${region}`,
  });
  dashboard.addWidgets(
    new cloudwatch.AlarmStatusWidget({ title: 'Alarms', alarms: Object.values(alarms), width: 24 }),
  );
  const graph = (specs: m.MetricSpec[]) =>
    new cloudwatch.GraphWidget({
      title: specs.map((s) => s.name).join(', '),
      left: specs.map((s) => metric(s)),
      width: 12,
    });
  dashboard.addWidgets(graph([m.MILLIS_BEHIND_LATEST]), graph([m.CHECKPOINT_AGE_MS]));
  dashboard.addWidgets(graph([m.RECORDS_PROCESSED]), graph([m.DEAD_LETTERS, m.LATE_RECORDS]));
  dashboard.addWidgets(graph([m.SINK_ERRORS, m.SINK_THROTTLES]), graph([m.SHARDS_HELD]));
  return alarms;
}
