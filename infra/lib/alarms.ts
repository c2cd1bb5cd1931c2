/**
 * The region's alarms: what fails, each with a runbook entry `### <key>` in docs/operations.md.
 *
 * Consumer side: worker lag, the stream's iterator age against its retention, checkpoint age,
 * sink errors, dead letters as a share of the records read, running tasks below desired.
 * Producer side: Kinesis write and read throttling, the IoT rule's error queue (depth and age)
 * and refused queue. Global table: replication latency to every other region.
 */
import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as kinesis from 'aws-cdk-lib/aws-kinesis';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Archive, peerRegion, replicaBucketName } from './archive';
import { LuxflowConfig } from './config';
import * as m from './metric-names';
import { AlarmTopic, luxflowMetric } from './monitoring';

const { NOT_BREACHING, BREACHING } = cloudwatch.TreatMissingData;
const MINUTE = Duration.minutes(1);
const FIVE_MINUTES = Duration.minutes(5);

/** Dead letters above this share of the records read (over 15 minutes) page someone. */
export const DEAD_LETTER_RATE_PERCENT = 1;
/** Below this many records read in 5 minutes the rate is not judged (a few bad records of a quiet fleet). */
export const DEAD_LETTER_RATE_MIN_RECORDS = 100;

export interface AlarmSources {
  readonly stream: kinesis.IStream;
  readonly ruleErrors: sqs.IQueue;
  readonly refused?: sqs.IQueue;
  readonly cluster: ecs.ICluster;
  readonly services: Record<string, ecs.FargateService>;
  readonly apiTargets: elbv2.ApplicationTargetGroup;
}

export function addWorkerAlarms(alarms: AlarmTopic, config: LuxflowConfig): void {
  const metric = (spec: m.MetricSpec, period = MINUTE) => luxflowMetric(config, spec, period);
  alarms.add({
    key: m.MILLIS_BEHIND_LATEST.name,
    description: 'Consumer lag: a shard is more than 60 s behind the tip of the stream for 5 minutes.',
    metric: metric(m.MILLIS_BEHIND_LATEST),
    threshold: 60_000,
    evaluationPeriods: 5,
    missing: NOT_BREACHING,
  });
  alarms.add({
    key: m.SINK_ERRORS.name,
    description: 'Sink errors: a sink write failed after its retries (DynamoDB or the query store).',
    metric: metric(m.SINK_ERRORS, FIVE_MINUTES),
    threshold: 0,
    evaluationPeriods: 1,
    missing: NOT_BREACHING,
  });
  alarms.add({
    key: m.CHECKPOINT_AGE_MS.name,
    description:
      'Checkpoint age: a held shard has not checkpointed for more than 2 minutes (a stuck shard ' +
      'or a sink outage), or no worker reports at all. The tasks are NOT restarted for this.',
    metric: metric(m.CHECKPOINT_AGE_MS),
    threshold: 120_000,
    evaluationPeriods: 3,
    missing: BREACHING,
  });
  alarms.add({
    key: 'DeadLetterRate',
    description:
      `Dead letters: more than ${DEAD_LETTER_RATE_PERCENT}% of the records read were dead-lettered, ` +
      'in each of three 5-minute periods (judged from 100 records read per period).',
    metric: new cloudwatch.MathExpression({
      expression: `IF(rd >= ${DEAD_LETTER_RATE_MIN_RECORDS}, 100 * dl / rd, 0)`,
      usingMetrics: { dl: metric(m.DEAD_LETTERS, FIVE_MINUTES), rd: metric(m.RECORDS_READ, FIVE_MINUTES) },
      period: FIVE_MINUTES,
      label: 'dead letters, % of records read',
    }),
    threshold: DEAD_LETTER_RATE_PERCENT,
    evaluationPeriods: 3,
    missing: NOT_BREACHING,
  });
}

export function addStreamAlarms(alarms: AlarmTopic, config: LuxflowConfig, sources: AlarmSources): void {
  const { stream } = sources;
  const retentionMs = config.retentionHours * 3_600_000;
  alarms.add({
    key: 'IteratorAge',
    description:
      'Iterator age: the oldest record read is older than half the stream retention; records ' +
      'will expire unread if the consumers do not catch up.',
    metric: stream.metricGetRecordsIteratorAgeMilliseconds({ statistic: 'Maximum', period: FIVE_MINUTES }),
    threshold: retentionMs / 2,
    evaluationPeriods: 1,
    missing: NOT_BREACHING,
  });
  alarms.add({
    key: 'KinesisWriteThrottled',
    description:
      'Kinesis write throttling: PutRecord calls of the IoT rule were refused; those records went ' +
      'to the rule error queue.',
    metric: stream.metricWriteProvisionedThroughputExceeded({ statistic: 'Sum', period: FIVE_MINUTES }),
    threshold: 0,
    evaluationPeriods: 1,
    missing: NOT_BREACHING,
  });
  alarms.add({
    key: 'KinesisReadThrottled',
    description: 'Kinesis read throttling: more than 5% of GetRecords calls throttled for 5 minutes.',
    metric: stream.metricReadProvisionedThroughputExceeded({ statistic: 'Average', period: MINUTE }),
    threshold: 0.05,
    evaluationPeriods: 5,
    missing: NOT_BREACHING,
  });
  alarms.add({
    key: 'RuleErrorsDepth',
    description: 'IoT rule errors: records the rule could not put on the stream wait in its error queue.',
    metric: sources.ruleErrors.metricApproximateNumberOfMessagesVisible({ statistic: 'Maximum', period: FIVE_MINUTES }),
    threshold: 0,
    evaluationPeriods: 1,
    missing: NOT_BREACHING,
  });
  alarms.add({
    key: 'RuleErrorsAge',
    description:
      'IoT rule errors not redriven: the oldest message of the error queue is more than a day ' +
      'old (the queue keeps them 14 days).',
    metric: sources.ruleErrors.metricApproximateAgeOfOldestMessage({ statistic: 'Maximum', period: FIVE_MINUTES }),
    threshold: 24 * 3600,
    evaluationPeriods: 1,
    missing: NOT_BREACHING,
  });
  if (sources.refused) {
    alarms.add({
      key: 'RefusedRecords',
      description:
        'Refused telemetry: a device published a payload whose site or asset id disagrees with ' +
        'its topic (misconfigured firmware, or a device claiming to be another).',
      metric: sources.refused.metricNumberOfMessagesSent({ statistic: 'Sum', period: FIVE_MINUTES }),
      threshold: 0,
      evaluationPeriods: 1,
      missing: NOT_BREACHING,
    });
  }
}

export function addServiceAlarms(alarms: AlarmTopic, sources: AlarmSources): void {
  for (const [name, service] of Object.entries(sources.services)) {
    const insight = (metricName: string) =>
      new cloudwatch.Metric({
        namespace: 'ECS/ContainerInsights',
        metricName,
        dimensionsMap: { ClusterName: sources.cluster.clusterName, ServiceName: service.serviceName },
        statistic: 'Minimum',
        period: MINUTE,
      });
    alarms.add({
      key: `${name}TasksBelowDesired`,
      description:
        `${name} tasks: fewer running than desired for 10 minutes (tasks failing to start or ` +
        'crash-looping; a deploy pauses the workers for about 2 minutes, within the window).',
      metric: new cloudwatch.MathExpression({
        expression: 'desired - running',
        usingMetrics: { desired: insight('DesiredTaskCount'), running: insight('RunningTaskCount') },
        period: MINUTE,
        label: `${name}: desired minus running tasks`,
      }),
      threshold: 0,
      evaluationPeriods: 10,
      missing: BREACHING,
    });
  }
  alarms.add({
    key: 'ApiUnhealthyHosts',
    description: 'Read API: a target behind the load balancer fails its /healthz for 5 minutes.',
    metric: sources.apiTargets.metrics.unhealthyHostCount({ statistic: 'Maximum', period: MINUTE }),
    threshold: 0,
    evaluationPeriods: 5,
    missing: NOT_BREACHING,
  });
}

export function addReplicationAlarms(alarms: AlarmTopic, config: LuxflowConfig, region: string): void {
  for (const receiving of config.regions.filter((r) => r !== region)) {
    alarms.add({
      key: `ReplicationLatency-${receiving}`,
      description:
        `Global table replication from ${region} to ${receiving} is more than 30 s behind for 5 ` +
        'minutes: the RPO of the command model grows with it.',
      metric: new cloudwatch.Metric({
        namespace: 'AWS/DynamoDB',
        metricName: 'ReplicationLatency',
        dimensionsMap: { TableName: config.names.commandTable, ReceivingRegion: receiving },
        statistic: 'Average',
        period: MINUTE,
      }),
      threshold: 30_000,
      evaluationPeriods: 5,
      missing: NOT_BREACHING,
    });
  }
}

/** The archive path: Firehose delivery to S3 and S3 replication to the peer region. */
export function addArchiveAlarms(alarms: AlarmTopic, config: LuxflowConfig, region: string, archive: Archive): void {
  alarms.add({
    key: 'ArchiveDeliveryFreshness',
    description:
      'Archive: the oldest record not yet delivered to S3 by Firehose is more than 15 minutes old ' +
      '(the archive, and what a survivor can replay, falls behind).',
    metric: new cloudwatch.Metric({
      namespace: 'AWS/Firehose',
      metricName: 'DeliveryToS3.DataFreshness',
      dimensionsMap: { DeliveryStreamName: archive.deliveryStream.deliveryStreamName },
      statistic: 'Maximum',
      period: FIVE_MINUTES,
    }),
    threshold: 900,
    evaluationPeriods: 1,
    missing: NOT_BREACHING,
  });
  const peer = peerRegion(config, region);
  if (!peer) return;
  alarms.add({
    key: 'ArchiveReplicationLatency',
    description:
      `Archive replication to ${peer} is more than 15 minutes behind (the archive's RPO target).`,
    metric: new cloudwatch.Metric({
      namespace: 'AWS/S3',
      metricName: 'ReplicationLatency',
      dimensionsMap: {
        SourceBucket: archive.bucket.bucketName,
        DestinationBucket: replicaBucketName(config, peer),
        RuleId: `to-${peer}`,
      },
      statistic: 'Maximum',
      period: FIVE_MINUTES,
    }),
    threshold: 900,
    evaluationPeriods: 1,
    missing: NOT_BREACHING,
  });
}
