/**
 * Ingest: the region's Kinesis stream and the IoT rule that puts the telemetry topics on it,
 * partitioned by site_id, with the rule's failures sent to an SQS dead-letter queue.
 *
 * Like every part of the region stack, it creates its resources directly in the stack's scope
 * (no construct of its own in between): the logical ids are those the stack always had, and a
 * changed id would make CloudFormation replace the retained stream.
 */
import { Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as iot from 'aws-cdk-lib/aws-iot';
import * as kinesis from 'aws-cdk-lib/aws-kinesis';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { LuxflowConfig, NAMES } from './config';
import * as w from './worker';

/** The stream (`Stream`) and the rule feeding it (`RuleErrors`, `RuleRole`, `TelemetryRule`). */
export function addIngest(stack: Stack, config: LuxflowConfig): kinesis.Stream {
  const stream = new kinesis.Stream(stack, 'Stream', {
    streamName: NAMES.stream,
    // The aws/kinesis key: encrypted at rest without per-producer KMS costs or key grants
    // for the IoT rule (cdk-nag AwsSolutions-KDS3 prefers it).
    encryption: kinesis.StreamEncryption.MANAGED,
    ...(config.shards === undefined
      ? { streamMode: kinesis.StreamMode.ON_DEMAND }
      : { streamMode: kinesis.StreamMode.PROVISIONED, shardCount: config.shards }),
    retentionPeriod: Duration.hours(24),
    removalPolicy: RemovalPolicy.RETAIN,
  });

  // ---- IoT rule: telemetry topic -> stream, failures -> an SQS dead-letter queue -----------
  const ruleErrors = new sqs.Queue(stack, 'RuleErrors', {
    encryption: sqs.QueueEncryption.SQS_MANAGED,
    enforceSSL: true,
    retentionPeriod: Duration.days(14),
  });
  Validations.of(ruleErrors).acknowledge({
    id: 'AwsSolutions-SQS3',
    reason:
      'This queue IS the dead-letter destination of the IoT rule (its error action); ' +
      'a dead-letter queue of a dead-letter queue would only move the same messages.',
  });
  const ruleRole = new iam.Role(stack, 'RuleRole', {
    assumedBy: new iam.ServicePrincipal('iot.amazonaws.com'),
    description: 'IoT telemetry rule: put records on the stream, send failures to the error queue',
  });
  ruleRole.addToPolicy(
    new iam.PolicyStatement({ actions: ['kinesis:PutRecord'], resources: [stream.streamArn] }),
  );
  ruleRole.addToPolicy(
    new iam.PolicyStatement({ actions: ['sqs:SendMessage'], resources: [ruleErrors.queueArn] }),
  );
  const rule = new iot.CfnTopicRule(stack, 'TelemetryRule', {
    ruleName: `luxflow_telemetry_${config.appName.replace(/[^A-Za-z0-9_]/g, '_')}`,
    topicRulePayload: {
      description: 'luxflow telemetry -> Kinesis, partitioned by site_id',
      sql: w.TELEMETRY_RULE_SQL,
      awsIotSqlVersion: '2016-03-23',
      ruleDisabled: false,
      actions: [
        {
          kinesis: {
            streamName: stream.streamName,
            partitionKey: w.TELEMETRY_PARTITION_KEY,
            roleArn: ruleRole.roleArn,
          },
        },
      ],
      errorAction: { sqs: { queueUrl: ruleErrors.queueUrl, roleArn: ruleRole.roleArn, useBase64: false } },
    },
  });
  rule.node.addDependency(ruleRole);
  return stream;
}
