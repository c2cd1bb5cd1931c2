import { Template } from 'aws-cdk-lib/assertions';
import * as devices from '../lib/devices';
import { Synthesized, actionsOf, makeApp, statementsOfRole } from './helpers';

const synth = new Synthesized(makeApp({ pipeline: 'false' }));

/** The MQTT topic-filter match of AWS IoT: `+` one level, `#` the rest. */
function matches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (i >= t.length || (f[i] !== '+' && f[i] !== t[i])) return false;
  }
  return f.length === t.length;
}

function rules(template: Template): Record<string, any> {
  const out: Record<string, any> = {};
  for (const [id, rule] of Object.entries(template.findResources('AWS::IoT::TopicRule'))) out[id.replace(/[0-9A-F]{8}$/, '')] = rule.Properties;
  return out;
}

describe.each(['us-east-1', 'eu-west-1'])('region %s', (region) => {
  const template = synth.region(region);

  test('the device policy: connect only as its own thing, publish only on its own site/asset topic', () => {
    const policies = Object.values(template.findResources('AWS::IoT::Policy'));
    expect(policies).toHaveLength(1);
    const statements = policies[0].Properties.PolicyDocument.Statement as Array<Record<string, any>>;
    const arn = (resource: string) => ({
      'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, `:iot:${region}:111111111111:${resource}`]],
    });
    expect(statements).toEqual([
      {
        Effect: 'Allow',
        Action: 'iot:Connect',
        Resource: arn('client/${iot:Connection.Thing.ThingName}'),
        Condition: { Bool: { 'iot:Connection.Thing.IsAttached': 'true' } },
      },
      {
        Effect: 'Allow',
        Action: 'iot:Publish',
        Resource: arn('topic/luxflow/telemetry/${iot:Connection.Thing.Attributes[site_id]}/${iot:Connection.Thing.ThingName}'),
      },
    ]);
    // No subscribe/receive, no wildcard: a device can neither listen to nor speak for another.
    expect(JSON.stringify(statements)).not.toMatch(/\*|Subscribe|Receive|#|\+/);
  });

  test('the topic the policy allows for thing a-1 of site s-1 is one the telemetry rule reads, and no other site/asset is', () => {
    const publish = devices.TELEMETRY_TOPIC_PREFIX + '/${iot:Connection.Thing.Attributes[site_id]}/${iot:Connection.Thing.ThingName}';
    const own = publish.replace('${iot:Connection.Thing.Attributes[site_id]}', 's-1').replace('${iot:Connection.Thing.ThingName}', 'a-1');
    expect(own).toBe('luxflow/telemetry/s-1/a-1');
    expect(matches(devices.TELEMETRY_TOPIC_FILTER, own)).toBe(true);
    // Deeper or shallower topics are neither allowed nor read.
    expect(matches(devices.TELEMETRY_TOPIC_FILTER, 'luxflow/telemetry/s-1')).toBe(false);
    expect(matches(devices.TELEMETRY_TOPIC_FILTER, 'luxflow/telemetry/s-1/a-1/x')).toBe(false);
  });

  test('the telemetry rule: adds the topic ids and client id, forwards only agreeing payloads, keys the stream by the topic site', () => {
    const rule = rules(template).TelemetryRule.TopicRulePayload;
    expect(rule.Sql).toBe(
      "SELECT *, topic(3) AS topic_site_id, topic(4) AS topic_asset_id, clientid() AS client_id FROM 'luxflow/telemetry/+/+' " +
        'WHERE site_id = topic(3) AND asset_id = topic(4) AND clientid() = topic(4)',
    );
    expect(devices.TOPIC_FIELDS).toEqual({ siteId: 'topic_site_id', assetId: 'topic_asset_id', clientId: 'client_id' });
    expect(rule.Actions).toHaveLength(1);
    expect(rule.Actions[0].Kinesis.PartitionKey).toBe('${topic(3)}');
    expect(rule.Actions[0].Kinesis.StreamName).toEqual({ Ref: expect.stringMatching(/^Stream/) });
    expect(rule.ErrorAction.Sqs.QueueUrl).toEqual({ Ref: expect.stringMatching(/^RuleErrors/) });
  });

  test('the refused rule: the same topics, the complement of the WHERE (missing ids included), to the refused queue', () => {
    const rule = rules(template).RefusedRule.TopicRulePayload;
    expect(rule.Sql).toBe(
      "SELECT *, topic(3) AS topic_site_id, topic(4) AS topic_asset_id, clientid() AS client_id FROM 'luxflow/telemetry/+/+' " +
        'WHERE isUndefined(site_id) OR isUndefined(asset_id) OR site_id <> topic(3) OR asset_id <> topic(4) OR clientid() <> topic(4)',
    );
    expect(rule.Actions).toEqual([{ Sqs: { QueueUrl: { Ref: expect.stringMatching(/^RefusedRecords/) }, RoleArn: expect.anything(), UseBase64: false } }]);
    expect(rule.ErrorAction.Sqs.QueueUrl).toEqual({ Ref: expect.stringMatching(/^RuleErrors/) });
    const roleId = rule.Actions[0].Sqs.RoleArn['Fn::GetAtt'][0] as string;
    expect(statementsOfRole(template, roleId).flatMap(actionsOf).sort()).toEqual(['kms:Decrypt', 'kms:GenerateDataKey', 'sqs:SendMessage']);
    // Both rules read the same topics: each message is either forwarded or refused.
    const telemetry = rules(template).TelemetryRule.TopicRulePayload.Sql as string;
    expect(rule.Sql.split(' WHERE ')[0]).toBe(telemetry.split(' WHERE ')[0]);
  });

  test('refused records raise an alarm', () => {
    const alarms = Object.values(template.findResources('AWS::CloudWatch::Alarm')).map((a) => a.Properties);
    const refused = alarms.find((a) => a.AlarmName === `luxflow-lighting-${region}-RefusedRecords`);
    expect(refused).toMatchObject({ Namespace: 'AWS/SQS', MetricName: 'NumberOfMessagesSent', Threshold: 0 });
    expect(refused!.Dimensions[0].Value).toEqual({ 'Fn::GetAtt': [expect.stringMatching(/^RefusedRecords/), 'QueueName'] });
  });
});
