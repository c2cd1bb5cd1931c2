/**
 * Device identity, bound end to end from the certificate to the stream:
 *
 * 1. **IoT policy** (`DevicePolicy`, attached to every device certificate): a device connects
 *    only with its thing name as MQTT client id, only while its certificate is attached to that
 *    thing, and publishes only on `luxflow/telemetry/<its thing attribute site_id>/<its thing
 *    name>`. Thing name = asset id; the thing attribute `site_id` = the asset's site. Both are
 *    set by whoever registers the thing (the operator or a provisioning template), never by
 *    the device.
 * 2. **Telemetry rule**: over `luxflow/telemetry/+/+`, forwards only payloads whose `site_id` and
 *    `asset_id` equal the topic's and whose client id is the topic's asset, adds the topic's ids
 *    and the client id (`TOPIC_FIELDS`), and keys the stream by the topic's site (not the
 *    payload's), so a device cannot place a record in another site's shard.
 * 3. **Refused rule**: the complement (ids disagree, are missing, or the payload is not JSON)
 *    goes to the `RefusedRecords` queue, with the same added fields; its alarm pages.
 *
 * The worker then checks a registered asset's ids against the registry (outside this app).
 */
import { Arn, ArnFormat, CfnOutput, Duration, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as iot from 'aws-cdk-lib/aws-iot';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { LuxflowConfig } from './config';
import { acknowledge } from './nag';

/** The topic layout: `luxflow/telemetry/{site_id}/{asset_id}` (levels 3 and 4). */
export const TELEMETRY_TOPIC_PREFIX = 'luxflow/telemetry';
export const TELEMETRY_TOPIC_FILTER = `${TELEMETRY_TOPIC_PREFIX}/+/+`;
/** The thing attribute that holds the asset's site. */
export const SITE_ATTRIBUTE = 'site_id';

/** The fields the rules add to every payload: what the topic and the connection said. */
export const TOPIC_FIELDS = {
  siteId: 'topic_site_id',
  assetId: 'topic_asset_id',
  clientId: 'client_id',
} as const;

const SELECT =
  `SELECT *, topic(3) AS ${TOPIC_FIELDS.siteId}, topic(4) AS ${TOPIC_FIELDS.assetId}, ` +
  `clientid() AS ${TOPIC_FIELDS.clientId} FROM '${TELEMETRY_TOPIC_FILTER}'`;
/** The payload agrees with its topic, and the publisher is the topic's asset. */
export const AGREES = 'site_id = topic(3) AND asset_id = topic(4) AND clientid() = topic(4)';
export const TELEMETRY_RULE_SQL = `${SELECT} WHERE ${AGREES}`;
/**
 * Everything the telemetry rule does not forward. Written out rather than `NOT (AGREES)`: a
 * comparison with a missing field is Undefined, NOT(Undefined) is Undefined, and a WHERE that
 * is Undefined drops the message, so a payload without ids would vanish silently.
 */
export const REFUSED_RULE_SQL =
  `${SELECT} WHERE isUndefined(site_id) OR isUndefined(asset_id) OR ` +
  'site_id <> topic(3) OR asset_id <> topic(4) OR clientid() <> topic(4)';
/** The stream's partition key: the topic's site, never the payload's. */
export const TELEMETRY_PARTITION_KEY = '${topic(3)}';

export interface DeviceIngest {
  readonly policy: iot.CfnPolicy;
  readonly refused: sqs.Queue;
}

export function addDeviceIngest(
  stack: Stack,
  config: LuxflowConfig,
  key: kms.IKey,
  ruleErrors: sqs.IQueue,
): DeviceIngest {
  const iotArn = (resource: string, resourceName: string) =>
    Arn.format({ service: 'iot', resource, resourceName, arnFormat: ArnFormat.SLASH_RESOURCE_NAME }, stack);
  const thing = '${iot:Connection.Thing.ThingName}';
  const site = `\${iot:Connection.Thing.Attributes[${SITE_ATTRIBUTE}]}`;
  const policy = new iot.CfnPolicy(stack, 'DevicePolicy', {
    policyDocument: {
      Version: '2012-10-17',
      Statement: [
        {
          Effect: 'Allow',
          Action: 'iot:Connect',
          Resource: iotArn('client', thing),
          Condition: { Bool: { 'iot:Connection.Thing.IsAttached': 'true' } },
        },
        {
          Effect: 'Allow',
          Action: 'iot:Publish',
          Resource: iotArn('topic', `${TELEMETRY_TOPIC_PREFIX}/${site}/${thing}`),
        },
      ],
    },
  });
  new CfnOutput(stack, 'DevicePolicyName', { value: policy.ref, description: 'attach to every device certificate' });

  const refused = new sqs.Queue(stack, 'RefusedRecords', {
    encryption: sqs.QueueEncryption.KMS,
    encryptionMasterKey: key,
    enforceSSL: true,
    retentionPeriod: Duration.days(14),
  });
  acknowledge(
    refused,
    'AwsSolutions-SQS3',
    'This queue is the destination of refused telemetry (evidence kept for 14 days, alarmed); ' +
      'nothing consumes it automatically, so a dead-letter queue of it would never fill.',
  );
  const role = new iam.Role(stack, 'RefusedRuleRole', {
    assumedBy: new iam.ServicePrincipal('iot.amazonaws.com'),
    description: 'IoT refused-telemetry rule: send to the refused queue, failures to the error queue',
  });
  role.addToPolicy(new iam.PolicyStatement({ actions: ['sqs:SendMessage'], resources: [refused.queueArn, ruleErrors.queueArn] }));
  role.addToPolicy(new iam.PolicyStatement({ actions: ['kms:GenerateDataKey', 'kms:Decrypt'], resources: [key.keyArn] }));
  const rule = new iot.CfnTopicRule(stack, 'RefusedRule', {
    ruleName: `luxflow_refused_${config.appName.replace(/[^A-Za-z0-9_]/g, '_')}`,
    topicRulePayload: {
      description: 'luxflow telemetry whose ids disagree with its topic -> the refused queue',
      sql: REFUSED_RULE_SQL,
      awsIotSqlVersion: '2016-03-23',
      ruleDisabled: false,
      actions: [{ sqs: { queueUrl: refused.queueUrl, roleArn: role.roleArn, useBase64: false } }],
      errorAction: { sqs: { queueUrl: ruleErrors.queueUrl, roleArn: role.roleArn, useBase64: false } },
    },
  });
  rule.node.addDependency(role.node.findChild('DefaultPolicy'));
  return { policy, refused };
}
