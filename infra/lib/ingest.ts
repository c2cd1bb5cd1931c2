/**
 * Ingest: the region's Kinesis stream and the IoT rule that puts the telemetry topics on it
 * (only payloads that agree with their topic, keyed by the topic's site: devices.ts), with the
 * rule's failures sent to an SQS error queue (alarmed; docs/operations.md has the redrive
 * command).
 *
 * The stream has a generated name (the worker gets it in LUXFLOW_STREAM) and
 * RETAIN_ON_UPDATE_OR_DELETE: a create that rolls back deletes it, a later delete keeps it.
 */
import { CfnOutput, Duration, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as iot from 'aws-cdk-lib/aws-iot';
import * as kinesis from 'aws-cdk-lib/aws-kinesis';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { LuxflowConfig } from './config';
import { acknowledge } from './nag';
import { STATEFUL } from './tables';
import * as devices from './devices';

export interface Ingest {
  readonly stream: kinesis.Stream;
  /** The rule's error action: records the rule could not put on the stream. */
  readonly ruleErrors: sqs.Queue;
}

export function addIngest(stack: Stack, config: LuxflowConfig, key: kms.IKey): Ingest {
  const stream = new kinesis.Stream(stack, 'Stream', {
    // The aws/kinesis key: encrypted at rest without per-producer KMS costs or key grants
    // for the IoT rule (cdk-nag AwsSolutions-KDS3 prefers it).
    encryption: kinesis.StreamEncryption.MANAGED,
    ...(config.shards === undefined
      ? { streamMode: kinesis.StreamMode.ON_DEMAND }
      : { streamMode: kinesis.StreamMode.PROVISIONED, shardCount: config.shards }),
    retentionPeriod: Duration.hours(config.retentionHours),
    removalPolicy: STATEFUL,
  });
  new CfnOutput(stack, 'StreamName', { value: stream.streamName, description: 'LUXFLOW_STREAM' });

  const ruleErrors = new sqs.Queue(stack, 'RuleErrors', {
    encryption: sqs.QueueEncryption.KMS,
    encryptionMasterKey: key,
    enforceSSL: true,
    retentionPeriod: Duration.days(14),
  });
  new CfnOutput(stack, 'RuleErrorsUrl', { value: ruleErrors.queueUrl, description: 'IoT rule error queue (redrive: docs/operations.md)' });
  const ruleRole = new iam.Role(stack, 'RuleRole', {
    assumedBy: new iam.ServicePrincipal('iot.amazonaws.com'),
    description: 'IoT telemetry rule: put records on the stream, send failures to the error queue',
  });
  ruleRole.addToPolicy(
    new iam.PolicyStatement({ actions: ['kinesis:PutRecord'], resources: [stream.streamArn] }),
  );
  acknowledge(
    ruleErrors,
    'AwsSolutions-SQS3',
    'This queue IS the dead-letter destination of the IoT rule (its error action); a dead-letter ' +
      'queue of a dead-letter queue would only move the same messages.',
  );
  // Narrower than the CDK grant (which adds kms:ReEncrypt* and kms:GenerateDataKey*).
  ruleRole.addToPolicy(new iam.PolicyStatement({ actions: ['sqs:SendMessage'], resources: [ruleErrors.queueArn] }));
  ruleRole.addToPolicy(new iam.PolicyStatement({ actions: ['kms:GenerateDataKey', 'kms:Decrypt'], resources: [key.keyArn] }));
  const rule = new iot.CfnTopicRule(stack, 'TelemetryRule', {
    // A fixed name is safe here: the rule holds no data and is not retained.
    ruleName: `luxflow_telemetry_${config.appName.replace(/[^A-Za-z0-9_]/g, '_')}`,
    topicRulePayload: {
      description: 'luxflow telemetry that agrees with its topic -> Kinesis, keyed by the topic site',
      sql: devices.TELEMETRY_RULE_SQL,
      awsIotSqlVersion: '2016-03-23',
      ruleDisabled: false,
      actions: [
        {
          kinesis: {
            streamName: stream.streamName,
            partitionKey: devices.TELEMETRY_PARTITION_KEY,
            roleArn: ruleRole.roleArn,
          },
        },
      ],
      errorAction: { sqs: { queueUrl: ruleErrors.queueUrl, roleArn: ruleRole.roleArn, useBase64: false } },
    },
  });
  // The role is referenced already; its policy must exist before the rule first fires.
  rule.node.addDependency(ruleRole.node.findChild('DefaultPolicy'));
  return { stream, ruleErrors };
}
