import { readFileSync } from 'fs';
import * as path from 'path';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { NAMES } from '../lib/config';
import * as m from '../lib/metric-names';
import { INTERFACE_ENDPOINTS } from '../lib/network';
import * as w from '../lib/worker';
import { Statement, Synthesized, actionsOf, containerOf, envOf, makeApp, statementsOfRole } from './helpers';

// The default configuration: us-east-1 (primary) and eu-west-1, InfluxDB, on-demand stream.
const synth = new Synthesized(makeApp({ pipeline: 'false' }));
const primary = synth.region('us-east-1');
const secondary = synth.region('eu-west-1');
const both: Array<[string, Template]> = [
  ['us-east-1', primary],
  ['eu-west-1', secondary],
];

function tableByName(template: Template, name: string): Record<string, unknown> {
  const tables = template.findResources('AWS::DynamoDB::Table', { Properties: { TableName: name } });
  const found = Object.values(tables);
  expect(found).toHaveLength(1);
  return found[0].Properties;
}

function tableById(template: Template, prefix: string): Record<string, any> {
  const found = Object.entries(template.findResources('AWS::DynamoDB::Table')).filter(([id]) => id.startsWith(prefix));
  expect(found).toHaveLength(1);
  return found[0][1];
}

const RUNBOOK = readFileSync(path.join(__dirname, '..', '..', 'docs', 'operations.md'), 'utf8');

describe.each(both)('region %s', (region, template) => {
  test('the stream: encrypted at rest (KMS), on demand, 48 h retention, no fixed name', () => {
    const streams = Object.values(template.findResources('AWS::Kinesis::Stream'));
    expect(streams).toHaveLength(1);
    expect(streams[0].Properties).toMatchObject({
      StreamEncryption: { EncryptionType: 'KMS', KeyId: 'alias/aws/kinesis' },
      StreamModeDetails: { StreamMode: 'ON_DEMAND' },
      RetentionPeriodHours: 48,
    });
    expect(streams[0].Properties.Name).toBeUndefined();
  });

  test('a rolled-back first deploy leaves nothing behind: stores are RetainExceptOnCreate, none plain Retain', () => {
    const resources = template.toJSON().Resources as Record<string, { Type: string; DeletionPolicy?: string }>;
    const stateful = [
      'AWS::Kinesis::Stream',
      'AWS::DynamoDB::Table',
      'AWS::DynamoDB::GlobalTable',
      'AWS::Timestream::InfluxDBInstance',
      'AWS::KMS::Key',
      'AWS::S3::Bucket',
    ];
    const seen = new Set<string>();
    for (const resource of Object.values(resources)) {
      expect(resource.DeletionPolicy).not.toBe('Retain');
      if (stateful.includes(resource.Type)) {
        expect([resource.Type, resource.DeletionPolicy]).toEqual([resource.Type, 'RetainExceptOnCreate']);
        seen.add(resource.Type);
      }
    }
    expect(seen.has('AWS::Timestream::InfluxDBInstance')).toBe(true);
    expect(seen.has('AWS::DynamoDB::Table')).toBe(true);
  });

  test('only the names that must be fixed are: the global table and the KCL tables', () => {
    const named = Object.values(template.findResources('AWS::DynamoDB::Table'))
      .map((t) => t.Properties.TableName)
      .filter((n) => n !== undefined)
      .sort();
    expect(named).toEqual(['luxflow-lighting', 'luxflow-lighting-CoordinatorState', 'luxflow-lighting-WorkerMetricStats']);
    for (const instance of Object.values(template.findResources('AWS::Timestream::InfluxDBInstance'))) {
      expect(instance.Properties.Name).toBeUndefined();
    }
  });

  test('the IoT rule puts telemetry on the stream, failures to an encrypted queue', () => {
    const rules = Object.values(template.findResources('AWS::IoT::TopicRule'));
    expect(rules).toHaveLength(2);
    const payload = rules.find((r) => r.Properties.TopicRulePayload.Actions[0].Kinesis)!.Properties.TopicRulePayload;
    expect(payload.Sql).toContain("FROM 'luxflow/telemetry/");
    expect(payload.RuleDisabled).toBe(false);
    const kinesis = payload.Actions[0].Kinesis;
    expect(kinesis.StreamName).toEqual({ Ref: expect.stringMatching(/^Stream/) });
    expect(payload.ErrorAction.Sqs.QueueUrl).toBeDefined();
    const queues = template.findResources('AWS::SQS::Queue');
    expect(queues[payload.ErrorAction.Sqs.QueueUrl.Ref].Properties.KmsMasterKeyId).toEqual({ 'Fn::GetAtt': [expect.stringMatching(/^Key/), 'Arn'] });
  });

  test('regional tables: single-region, the worker keys, region key, deletion protection', () => {
    const key = (props: Record<string, unknown>) =>
      (props.KeySchema as Array<{ AttributeName: string; KeyType: string }>).map((k) => `${k.AttributeName}:${k.KeyType}`);
    const lease = tableByName(template, 'luxflow-lighting');
    expect(key(lease)).toEqual(['leaseKey:HASH']);
    expect(lease.GlobalSecondaryIndexes).toEqual([
      {
        IndexName: w.KCL_LEASE_OWNER_INDEX,
        KeySchema: [
          { AttributeName: 'leaseOwner', KeyType: 'HASH' },
          { AttributeName: 'leaseKey', KeyType: 'RANGE' },
        ],
        Projection: { ProjectionType: 'KEYS_ONLY' },
      },
    ]);
    expect(key(tableByName(template, 'luxflow-lighting-CoordinatorState'))).toEqual(['key:HASH']);
    expect(key(tableByName(template, 'luxflow-lighting-WorkerMetricStats'))).toEqual(['wid:HASH']);
    expect(key(tableById(template, 'StateTable').Properties)).toEqual(['shard_id:HASH', 'item:RANGE']);
    const deadLetters = tableById(template, 'DeadLetterTable').Properties;
    expect(key(deadLetters)).toEqual(['pk:HASH', 'sk:RANGE']);
    expect(deadLetters.AttributeDefinitions).toContainEqual({ AttributeName: 'sk', AttributeType: 'N' });
    expect(deadLetters.TimeToLiveSpecification).toEqual({ AttributeName: w.DEAD_LETTER_TTL_ATTRIBUTE, Enabled: true });
    for (const table of Object.values(template.findResources('AWS::DynamoDB::Table'))) {
      expect(table.Properties.BillingMode).toBe('PAY_PER_REQUEST');
      expect(table.Properties.PointInTimeRecoverySpecification).toEqual({ PointInTimeRecoveryEnabled: true });
      expect(table.Properties.DeletionProtectionEnabled).toBe(true);
      expect(table.Properties.SSESpecification).toMatchObject({ SSEEnabled: true, SSEType: 'KMS' });
    }
  });

  test('the task role has no wildcard action except the CDK key grant, and Resource "*" only where AWS has no ARN', () => {
    const statements = statementsOfRole(template, 'WorkerTaskTaskRole');
    expect(statements.length).toBeGreaterThan(0);
    for (const s of statements) {
      expect(s.Effect).toBe('Allow');
      for (const action of actionsOf(s)) {
        if (action.includes('*')) expect(['kms:ReEncrypt*', 'kms:GenerateDataKey*']).toContain(action);
      }
      if (s.Resource === '*') expect(actionsOf(s)).toEqual(['cloudwatch:PutMetricData']);
    }
    const dynamo = statements.filter((s) => actionsOf(s).some((a) => a.startsWith('dynamodb:')));
    const all = new Set(dynamo.flatMap(actionsOf));
    for (const forbidden of ['dynamodb:CreateTable', 'dynamodb:UpdateTable', 'dynamodb:DeleteTable']) {
      expect(all.has(forbidden)).toBe(false);
    }
    for (const needed of ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:Query', 'dynamodb:Scan', 'dynamodb:BatchWriteItem', 'dynamodb:DescribeTable']) {
      expect(all.has(needed)).toBe(true);
    }
    for (const s of dynamo) {
      const resources = Array.isArray(s.Resource) ? s.Resource : [s.Resource];
      for (const r of resources) expect(r).not.toBe('*');
    }
    const deadLetterId = Object.keys(template.findResources('AWS::DynamoDB::Table')).find((id) => id.startsWith('DeadLetterTable'))!;
    const onDeadLetters = dynamo.filter((s) => JSON.stringify(s.Resource).includes(deadLetterId));
    expect(onDeadLetters.flatMap(actionsOf).sort()).toEqual([
      'dynamodb:BatchWriteItem',
      'dynamodb:DeleteItem',
      'dynamodb:DescribeTable',
      'dynamodb:PutItem',
      'dynamodb:UpdateItem',
    ]);
    const kinesis = statements.filter((s) => actionsOf(s).some((a) => a.startsWith('kinesis:')));
    expect(kinesis.flatMap(actionsOf)).toEqual(expect.arrayContaining(['kinesis:GetRecords', 'kinesis:GetShardIterator', 'kinesis:ListShards']));
    expect(kinesis.flatMap(actionsOf)).not.toContain('kinesis:PutRecord');
  });

  test('no role anywhere in the stack has a wildcard action on DynamoDB', () => {
    for (const policy of Object.values(template.findResources('AWS::IAM::Policy'))) {
      for (const s of policy.Properties.PolicyDocument.Statement as Statement[]) {
        for (const action of actionsOf(s)) {
          if (action.startsWith('dynamodb:') || action === '*') expect(action).not.toMatch(/\*/);
        }
      }
    }
  });

  test('the worker container: liveness health check on /healthz (not /readyz), stopTimeout, env', () => {
    const c = containerOf(template, 'WorkerTask');
    expect(c.StopTimeout).toBe(60);
    expect(c.StopTimeout).toBeGreaterThan(w.DAEMON_SHUTDOWN_GRACE.toSeconds());
    expect(c.StopTimeout).toBeLessThanOrEqual(120);
    expect(c.HealthCheck.Command).toEqual([...w.HEALTH_CHECK_COMMAND]);
    expect(c.HealthCheck.Command.join(' ')).toContain(`http://127.0.0.1:${w.HEALTH_PORT}/healthz`);
    expect(c.HealthCheck.Command.join(' ')).not.toContain('readyz');
    expect(c.Command).toEqual([...w.WORKER_COMMAND]);
    expect(c.Image['Fn::Sub']).toContain('cdk-hnb659fds-container-assets');
    const env = envOf(c);
    expect(env).toMatchObject({
      LUXFLOW_APP_NAME: 'luxflow-lighting',
      LUXFLOW_REGION: region,
      LUXFLOW_COMMAND_TABLE: NAMES.commandTable,
      LUXFLOW_QUERY_MODEL: 'influxdb',
      LUXFLOW_HEALTH_PORT: String(w.HEALTH_PORT),
      LUXFLOW_HEALTH_HOST: '127.0.0.1',
      LUXFLOW_INFLUXDB_BUCKET: NAMES.influxBucket,
    });
    expect(env.LUXFLOW_STREAM).toEqual({ Ref: expect.stringMatching(/^Stream/) });
    expect(env.LUXFLOW_STATE_TABLE).toEqual({ Ref: expect.stringMatching(/^StateTable/) });
    expect(env.LUXFLOW_DEAD_LETTER_TABLE).toEqual({ Ref: expect.stringMatching(/^DeadLetterTable/) });
    expect((c.Secrets as Array<{ Name: string }>).map((s) => s.Name)).toEqual(['LUXFLOW_INFLUXDB_TOKEN']);
  });

  test('the worker service: stop-then-start deploys (0/100: each lease moves once), circuit breaker', () => {
    template.hasResourceProperties('AWS::ECS::Service', {
      ServiceName: 'luxflow-worker-luxflow-lighting',
      LaunchType: 'FARGATE',
      DesiredCount: 2,
      DeploymentConfiguration: Match.objectLike({
        MinimumHealthyPercent: 0,
        MaximumPercent: 100,
        DeploymentCircuitBreaker: { Enable: true, Rollback: true },
      }),
    });
  });

  test('scaling on lag, bounded by the shards: step policies on lag AND ShardsHeld > 1, max = shard bound, no CPU policy', () => {
    template.hasResourceProperties('AWS::ApplicationAutoScaling::ScalableTarget', { MinCapacity: 2, MaxCapacity: 4 });
    const policies = Object.values(template.findResources('AWS::ApplicationAutoScaling::ScalingPolicy'));
    expect(policies.map((p) => p.Properties.PolicyType).sort()).toEqual(['StepScaling', 'StepScaling']);
    const adjustments = policies.flatMap((p) => p.Properties.StepScalingPolicyConfiguration.StepAdjustments.map((s: { ScalingAdjustment: number }) => s.ScalingAdjustment));
    expect(adjustments.sort()).toEqual([-1, 1]);
    const scalingAlarms = Object.values(template.findResources('AWS::CloudWatch::Alarm')).filter((a) =>
      JSON.stringify(a.Properties).includes('worker scaling signal'),
    );
    expect(scalingAlarms).toHaveLength(2);
    for (const a of scalingAlarms) {
      const metrics = a.Properties.Metrics as Array<{ Expression?: string; MetricStat?: { Metric: { MetricName: string } } }>;
      expect(metrics.find((x) => x.Expression)!.Expression).toBe('IF(lag > 60000 AND held > 1, 1, IF(lag < 5000, -1, 0))');
      expect(metrics.filter((x) => x.MetricStat).map((x) => x.MetricStat!.Metric.MetricName).sort()).toEqual([
        'MillisBehindLatest',
        'ShardsHeld',
      ]);
    }
  });

  test('networking: no NAT gateway; DynamoDB and S3 gateway endpoints; interface endpoints in both zones', () => {
    expect(Object.keys(template.findResources('AWS::EC2::NatGateway'))).toHaveLength(0);
    const endpoints = Object.values(template.findResources('AWS::EC2::VPCEndpoint')).map((e) => e.Properties);
    const service = (e: Record<string, any>) => JSON.stringify(e.ServiceName);
    const gateways = endpoints.filter((e) => e.VpcEndpointType === 'Gateway').map(service);
    expect(gateways.some((s) => s.includes('.dynamodb'))).toBe(true);
    expect(gateways.some((s) => s.includes('.s3'))).toBe(true);
    const interfaces = endpoints.filter((e) => e.VpcEndpointType === 'Interface');
    expect(interfaces).toHaveLength(Object.keys(INTERFACE_ENDPOINTS).length);
    for (const name of ['kinesis-streams', 'ecr.api', 'ecr.dkr', 'logs', 'secretsmanager']) {
      const endpoint = interfaces.find((e) => service(e).includes(`.${name}`));
      expect([name, endpoint?.SubnetIds?.length]).toEqual([name, 2]);
      expect(endpoint!.PrivateDnsEnabled).toBe(true);
    }
    // The private subnets have no default route: nothing leaves the VPC except through endpoints.
    const routes = Object.values(template.findResources('AWS::EC2::Route')).map((r) => r.Properties);
    expect(routes.every((r) => r.GatewayId !== undefined)).toBe(true);
  });

  test('the read API: its own Fargate service behind an HTTPS-only load balancer with the region certificate', () => {
    const c = containerOf(template, 'ApiTask');
    expect(c.Command).toEqual([...w.API_COMMAND]);
    expect(c.HealthCheck.Command).toEqual([...w.API_HEALTH_CHECK_COMMAND]);
    const secrets = c.Secrets as Array<{ Name: string; ValueFrom: unknown }>;
    expect(secrets.map((s) => s.Name).sort()).toEqual(['LUXFLOW_API_TOKEN', 'LUXFLOW_INFLUXDB_READ_TOKEN']);
    const reader = JSON.stringify(secrets.find((s) => s.Name === 'LUXFLOW_INFLUXDB_READ_TOKEN')?.ValueFrom);
    expect(reader).toContain('InfluxDbReadToken');
    template.hasResourceProperties('AWS::ECS::Service', {
      ServiceName: 'luxflow-api-luxflow-lighting',
      DesiredCount: 2,
      DeploymentConfiguration: Match.objectLike({ MinimumHealthyPercent: 100, MaximumPercent: 200 }),
      LoadBalancers: [Match.objectLike({ ContainerName: 'api', ContainerPort: w.API_PORT })],
    });
    const listeners = Object.values(template.findResources('AWS::ElasticLoadBalancingV2::Listener')).map((l) => l.Properties);
    expect(listeners).toHaveLength(1);
    expect(listeners[0]).toMatchObject({
      Port: 443,
      Protocol: 'HTTPS',
      SslPolicy: 'ELBSecurityPolicy-TLS13-1-2-2021-06',
      Certificates: [{ CertificateArn: `arn:aws:acm:${region}:111111111111:certificate/00000000-0000-0000-0000-000000000000` }],
    });
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::TargetGroup', {
      Port: w.API_PORT,
      HealthCheckPath: '/healthz',
      TargetType: 'ip',
    });
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::LoadBalancer', {
      Scheme: 'internet-facing',
      LoadBalancerAttributes: Match.arrayWith([{ Key: 'routing.http.drop_invalid_header_fields.enabled', Value: 'true' }]),
    });
    // Read-only on DynamoDB.
    const actions = statementsOfRole(template, 'ApiTaskTaskRole').flatMap(actionsOf);
    expect(actions.filter((a) => a.startsWith('dynamodb:')).sort()).toEqual(
      ['dynamodb:BatchGetItem', 'dynamodb:ConditionCheckItem', 'dynamodb:DescribeTable', 'dynamodb:GetItem', 'dynamodb:GetRecords', 'dynamodb:GetShardIterator', 'dynamodb:Query', 'dynamodb:Scan'].sort(),
    );
  });

  test('InfluxDB is the default query model: an instance, no LiveAnalytics', () => {
    expect(Object.keys(template.findResources('AWS::Timestream::InfluxDBInstance'))).toHaveLength(1);
    expect(Object.keys(template.findResources('AWS::Timestream::Database'))).toHaveLength(0);
    expect(Object.keys(template.findResources('AWS::Timestream::Table'))).toHaveLength(0);
    // The workers and the API reach it; nothing else.
    const ingress = Object.values(template.findResources('AWS::EC2::SecurityGroupIngress')).filter((i) => i.Properties.FromPort === 8086);
    expect(ingress).toHaveLength(2);
  });

  test('alarms: each failure signal on its metric, every one with a runbook entry in docs/operations.md', () => {
    const alarms = synth.built.regionStacks[region].alarms;
    const others = ['us-east-1', 'eu-west-1'].filter((r) => r !== region);
    expect(Object.keys(alarms).sort()).toEqual(
      [
        'MillisBehindLatest',
        'SinkErrors',
        'CheckpointAgeMs',
        'DeadLetterRate',
        'IteratorAge',
        'KinesisWriteThrottled',
        'KinesisReadThrottled',
        'RuleErrorsDepth',
        'RuleErrorsAge',
        'RefusedRecords',
        'WorkerTasksBelowDesired',
        'ApiTasksBelowDesired',
        'ApiUnhealthyHosts',
        'ArchiveDeliveryFreshness',
        'ArchiveReplicationLatency',
        ...others.map((r) => `ReplicationLatency-${r}`),
      ].sort(),
    );
    for (const key of Object.keys(alarms)) expect([key, RUNBOOK.includes(`### ${key.replace(/-[a-z]+-[a-z]+-\d$/, '-<region>')}`)]).toEqual([key, true]);

    const byName: Record<string, Record<string, any>> = {};
    for (const a of Object.values(template.findResources('AWS::CloudWatch::Alarm'))) {
      if (a.Properties.AlarmName) byName[a.Properties.AlarmName.replace(`luxflow-lighting-${region}-`, '')] = a.Properties;
    }
    for (const spec of [m.MILLIS_BEHIND_LATEST, m.SINK_ERRORS, m.CHECKPOINT_AGE_MS]) {
      expect(byName[spec.name]).toMatchObject({
        Namespace: m.METRIC_NAMESPACE,
        MetricName: spec.name,
        Dimensions: [{ Name: m.METRIC_APP_DIMENSION, Value: 'luxflow-lighting' }],
        Statistic: spec.statistic,
      });
      expect(byName[spec.name].AlarmActions).toHaveLength(1);
    }
    expect(byName.CheckpointAgeMs.TreatMissingData).toBe('breaching');
    // Dead letters relative to traffic, not an absolute count.
    const rate = byName.DeadLetterRate.Metrics as Array<Record<string, any>>;
    expect(rate.find((x) => x.Expression)!.Expression).toBe('IF(rd >= 100, 100 * dl / rd, 0)');
    expect(rate.filter((x) => x.MetricStat).map((x) => x.MetricStat.Metric.MetricName).sort()).toEqual(['DeadLetters', 'RecordsRead']);
    expect(byName.DeadLetterRate.Threshold).toBe(1);
    // Kinesis: iterator age against the retention, read and write throttling.
    expect(byName.IteratorAge).toMatchObject({ Namespace: 'AWS/Kinesis', MetricName: 'GetRecords.IteratorAgeMilliseconds', Threshold: 24 * 3_600_000 });
    expect(byName.KinesisWriteThrottled).toMatchObject({ Namespace: 'AWS/Kinesis', MetricName: 'WriteProvisionedThroughputExceeded' });
    expect(byName.KinesisReadThrottled).toMatchObject({ Namespace: 'AWS/Kinesis', MetricName: 'ReadProvisionedThroughputExceeded' });
    // The rule's error queue: depth and age.
    expect(byName.RuleErrorsDepth).toMatchObject({ Namespace: 'AWS/SQS', MetricName: 'ApproximateNumberOfMessagesVisible', Threshold: 0 });
    expect(byName.RuleErrorsAge).toMatchObject({ Namespace: 'AWS/SQS', MetricName: 'ApproximateAgeOfOldestMessage' });
    for (const a of [byName.RuleErrorsDepth, byName.RuleErrorsAge]) {
      expect(a.Dimensions[0].Value).toEqual({ 'Fn::GetAtt': [expect.stringMatching(/^RuleErrors/), 'QueueName'] });
    }
    // Running tasks below desired (Container Insights), per service.
    for (const service of ['Worker', 'Api']) {
      const metrics = byName[`${service}TasksBelowDesired`].Metrics as Array<Record<string, any>>;
      expect(metrics.find((x) => x.Expression)!.Expression).toBe("desired - running");
      expect(metrics.filter((x) => x.MetricStat).map((x) => `${x.MetricStat.Metric.Namespace}/${x.MetricStat.Metric.MetricName}`).sort()).toEqual([
        'ECS/ContainerInsights/DesiredTaskCount',
        'ECS/ContainerInsights/RunningTaskCount',
      ]);
    }
    // Global table replication latency to every other region.
    for (const other of others) {
      expect(byName[`ReplicationLatency-${other}`]).toMatchObject({
        Namespace: 'AWS/DynamoDB',
        MetricName: 'ReplicationLatency',
        Dimensions: expect.arrayContaining([
          { Name: 'TableName', Value: NAMES.commandTable },
          { Name: 'ReceivingRegion', Value: other },
        ]),
      });
    }
  });

  test('the dashboard shows every metric', () => {
    const dashboards = Object.values(template.findResources('AWS::CloudWatch::Dashboard'));
    expect(dashboards).toHaveLength(1);
    const body = JSON.stringify(dashboards[0].Properties.DashboardBody);
    for (const spec of m.METRICS) expect(body).toContain(`\\"${spec.name}\\"`);
  });
});

describe('the command model: one global table, owned by the primary region', () => {
  test('primary: AWS::DynamoDB::GlobalTable with a replica per region, PITR and deletion protection', () => {
    const globals = Object.values(primary.findResources('AWS::DynamoDB::GlobalTable'));
    expect(globals).toHaveLength(1);
    const props = globals[0].Properties;
    expect(globals[0].DeletionPolicy).toBe('RetainExceptOnCreate');
    expect(props.TableName).toBe(NAMES.commandTable);
    expect(props.BillingMode).toBe('PAY_PER_REQUEST');
    expect(props.KeySchema).toEqual([
      { AttributeName: 'pk', KeyType: 'HASH' },
      { AttributeName: 'sk', KeyType: 'RANGE' },
    ]);
    expect(props.GlobalSecondaryIndexes[0]).toMatchObject({ IndexName: 'gsi1', Projection: { ProjectionType: 'ALL' } });
    const replicas = props.Replicas as Array<Record<string, unknown>>;
    expect(replicas.map((r) => r.Region).sort()).toEqual(['eu-west-1', 'us-east-1']);
    for (const replica of replicas) {
      expect(replica.PointInTimeRecoverySpecification).toEqual({ PointInTimeRecoveryEnabled: true });
      expect(replica.DeletionProtectionEnabled).toBe(true);
    }
  });

  test('secondary: no table of its own; its workers use the local replica by name', () => {
    expect(Object.keys(secondary.findResources('AWS::DynamoDB::GlobalTable'))).toHaveLength(0);
    const replicaArn = JSON.stringify(statementsOfRole(secondary, 'WorkerTaskTaskRole'));
    expect(replicaArn).toContain(':dynamodb:eu-west-1:111111111111:table/luxflow-model');
    expect(replicaArn).not.toContain(':dynamodb:us-east-1:');
  });

  test('the secondary stack deploys after the primary one (the replica must exist)', () => {
    const secondaryStack = synth.built.regionStacks['eu-west-1'];
    expect(secondaryStack.dependencies.map((s) => s.stackName).sort()).toEqual(
      ['Luxflow-us-east-1', 'LuxflowArchive-eu-west-1', 'LuxflowArchive-us-east-1'].sort(),
    );
  });
});
