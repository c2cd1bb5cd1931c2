import { Match, Template } from 'aws-cdk-lib/assertions';
import { NAMES } from '../lib/config';
import * as m from '../lib/metric-names';
import * as w from '../lib/worker';
import { Statement, Synthesized, actionsOf, makeApp, statementsOfRole } from './helpers';

// The default configuration: us-east-1 (primary) and eu-west-1, Timestream, on-demand stream.
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

describe.each(both)('region %s', (region, template) => {
  test('the stream is encrypted at rest (KMS) and on demand by default', () => {
    template.hasResourceProperties('AWS::Kinesis::Stream', {
      Name: NAMES.stream,
      StreamEncryption: { EncryptionType: 'KMS', KeyId: 'alias/aws/kinesis' },
      StreamModeDetails: { StreamMode: 'ON_DEMAND' },
    });
  });

  test('the IoT rule puts telemetry on the stream partitioned by site_id, failures to a queue', () => {
    const rules = Object.values(template.findResources('AWS::IoT::TopicRule'));
    expect(rules).toHaveLength(1);
    const payload = rules[0].Properties.TopicRulePayload;
    expect(payload.Sql).toContain("FROM 'luxflow/telemetry/");
    expect(payload.RuleDisabled).toBe(false);
    expect(payload.Actions).toHaveLength(1);
    const kinesis = payload.Actions[0].Kinesis;
    expect(kinesis.PartitionKey).toContain('site_id');
    expect(kinesis.PartitionKey).toBe('${site_id}');
    expect(kinesis.StreamName).toEqual({ Ref: expect.stringMatching(/^Stream/) });
    expect(payload.ErrorAction.Sqs.QueueUrl).toBeDefined();
    // The rule's role: PutRecord on this stream and SendMessage on the error queue, nothing else.
    const roleId = kinesis.RoleArn['Fn::GetAtt'][0] as string;
    const actions = statementsOfRole(template, roleId).flatMap(actionsOf).sort();
    expect(actions).toEqual(['kinesis:PutRecord', 'sqs:SendMessage']);
  });

  test('regional tables are plain (single-region) tables with the keys the worker uses', () => {
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
    expect(key(tableByName(template, NAMES.stateTable))).toEqual(['shard_id:HASH', 'item:RANGE']);
    const deadLetters = tableByName(template, NAMES.deadLetterTable);
    expect(key(deadLetters)).toEqual(['pk:HASH', 'sk:RANGE']);
    expect(deadLetters.AttributeDefinitions).toContainEqual({ AttributeName: 'sk', AttributeType: 'N' });
    expect(deadLetters.TimeToLiveSpecification).toEqual({ AttributeName: w.DEAD_LETTER_TTL_ATTRIBUTE, Enabled: true });
    for (const table of Object.values(template.findResources('AWS::DynamoDB::Table'))) {
      expect(table.Properties.BillingMode).toBe('PAY_PER_REQUEST');
      expect(table.Properties.PointInTimeRecoverySpecification).toEqual({ PointInTimeRecoveryEnabled: true });
      expect(table.Properties.DeletionProtectionEnabled).toBe(true);
      expect(table.DeletionPolicy).toBe('Retain');
    }
    // None of the regional tables is a global table in disguise.
    for (const global of Object.values(template.findResources('AWS::DynamoDB::GlobalTable'))) {
      expect(global.Properties.TableName).toBe(NAMES.commandTable);
    }
  });

  test('the task role has no wildcard action, and Resource "*" only where AWS has no ARN', () => {
    const statements = statementsOfRole(template, 'WorkerTaskTaskRole');
    expect(statements.length).toBeGreaterThan(0);
    for (const s of statements) {
      expect(s.Effect).toBe('Allow');
      for (const action of actionsOf(s)) expect(action).not.toContain('*');
      if (s.Resource === '*') {
        expect(actionsOf(s).sort()).toEqual(
          expect.arrayContaining(actionsOf(s).filter((a) => ['timestream:DescribeEndpoints', 'cloudwatch:PutMetricData'].includes(a))),
        );
        expect(actionsOf(s).every((a) => ['timestream:DescribeEndpoints', 'cloudwatch:PutMetricData'].includes(a))).toBe(true);
      }
    }
    const metrics = statements.find((s) => actionsOf(s).includes('cloudwatch:PutMetricData'));
    expect(metrics?.Condition).toEqual({ StringEquals: { 'cloudwatch:namespace': ['luxflow-lighting', m.METRIC_NAMESPACE] } });

    const dynamo = statements.filter((s) => actionsOf(s).some((a) => a.startsWith('dynamodb:')));
    const all = new Set(dynamo.flatMap(actionsOf));
    // The worker never manages tables: CDK created them (KCL 3's included).
    for (const forbidden of ['dynamodb:CreateTable', 'dynamodb:UpdateTable', 'dynamodb:DeleteTable']) {
      expect(all.has(forbidden)).toBe(false);
    }
    for (const needed of ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:Query', 'dynamodb:Scan', 'dynamodb:BatchWriteItem', 'dynamodb:DescribeTable']) {
      expect(all.has(needed)).toBe(true);
    }
    // Every DynamoDB statement names its tables (or their indexes), never "*".
    for (const s of dynamo) {
      const resources = Array.isArray(s.Resource) ? s.Resource : [s.Resource];
      for (const r of resources) expect(r).not.toBe('*');
    }
    // Dead letters: write only.
    const deadLetterId = Object.keys(
      template.findResources('AWS::DynamoDB::Table', { Properties: { TableName: NAMES.deadLetterTable } }),
    )[0];
    const onDeadLetters = dynamo.filter((s) => JSON.stringify(s.Resource).includes(deadLetterId));
    expect(onDeadLetters.flatMap(actionsOf).sort()).toEqual([
      'dynamodb:BatchWriteItem',
      'dynamodb:DeleteItem',
      'dynamodb:DescribeTable',
      'dynamodb:PutItem',
      'dynamodb:UpdateItem',
    ]);
    // Kinesis: read this stream.
    const kinesis = statements.filter((s) => actionsOf(s).some((a) => a.startsWith('kinesis:')));
    expect(kinesis.flatMap(actionsOf)).toEqual(expect.arrayContaining(['kinesis:GetRecords', 'kinesis:GetShardIterator', 'kinesis:ListShards']));
    expect(kinesis.flatMap(actionsOf)).not.toContain('kinesis:PutRecord');
    for (const s of kinesis) expect(JSON.stringify(s.Resource)).toMatch(/Stream[0-9A-F]{8}/);
    // Timestream: write records to the two tables.
    const ts = statements.find((s) => actionsOf(s).includes('timestream:WriteRecords'));
    expect(JSON.stringify(ts?.Resource)).toContain('Timestreamevents');
    expect(JSON.stringify(ts?.Resource)).toContain('Timestreamusage');
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

  test('the worker service: Fargate, stopTimeout above the daemon grace, health check, env', () => {
    template.hasResourceProperties('AWS::ECS::Service', {
      LaunchType: 'FARGATE',
      DesiredCount: 2,
      DeploymentConfiguration: Match.objectLike({ DeploymentCircuitBreaker: { Enable: true, Rollback: true } }),
    });
    const taskDefs = Object.values(template.findResources('AWS::ECS::TaskDefinition'));
    expect(taskDefs).toHaveLength(1);
    const containers = taskDefs[0].Properties.ContainerDefinitions;
    expect(containers).toHaveLength(1);
    const c = containers[0];
    expect(c.StopTimeout).toBe(60);
    expect(c.StopTimeout).toBeGreaterThan(w.DAEMON_SHUTDOWN_GRACE.toSeconds());
    expect(c.StopTimeout).toBeLessThanOrEqual(120);
    expect(c.HealthCheck.Command).toEqual([...w.HEALTH_CHECK_COMMAND]);
    expect(c.Command).toEqual([...w.WORKER_COMMAND]);
    expect(c.Image['Fn::Sub']).toContain('cdk-hnb659fds-container-assets');
    const env = Object.fromEntries((c.Environment as Array<{ Name: string; Value: unknown }>).map((e) => [e.Name, e.Value]));
    expect(env).toMatchObject({
      LUXFLOW_APP_NAME: 'luxflow-lighting',
      LUXFLOW_REGION: region,
      LUXFLOW_COMMAND_TABLE: NAMES.commandTable,
      LUXFLOW_DEAD_LETTER_TABLE: NAMES.deadLetterTable,
      LUXFLOW_STATE_TABLE: NAMES.stateTable,
      LUXFLOW_TIMESTREAM_DATABASE: NAMES.timestreamDatabase,
      LUXFLOW_TIMESTREAM_MAGNETIC_WRITES: 'true',
      LUXFLOW_QUERY_MODEL: 'timestream',
    });
    expect(env.LUXFLOW_STREAM).toBe(NAMES.stream);
    // Scaling bounded by the shard count (on demand: 4, the initial shard count).
    template.hasResourceProperties('AWS::ApplicationAutoScaling::ScalableTarget', { MinCapacity: 2, MaxCapacity: 4 });
  });

  test('Timestream database and tables with retention and magnetic-store writes', () => {
    template.hasResourceProperties('AWS::Timestream::Database', { DatabaseName: NAMES.timestreamDatabase });
    for (const name of NAMES.timestreamTables) {
      template.hasResourceProperties('AWS::Timestream::Table', {
        TableName: name,
        RetentionProperties: {
          MemoryStoreRetentionPeriodInHours: String(w.TIMESTREAM_MEMORY_RETENTION_HOURS),
          MagneticStoreRetentionPeriodInDays: String(w.TIMESTREAM_MAGNETIC_RETENTION_DAYS),
        },
        MagneticStoreWriteProperties: { EnableMagneticStoreWrites: true },
      });
    }
    expect(Object.keys(template.findResources('AWS::Timestream::InfluxDBInstance'))).toHaveLength(0);
  });

  test('alarms on lag, dead letters, sink errors and checkpoint age, in namespace Luxflow', () => {
    const alarms = Object.values(template.findResources('AWS::CloudWatch::Alarm')).map((a) => a.Properties);
    const byMetric = Object.fromEntries(alarms.map((a) => [a.MetricName, a]));
    for (const spec of m.METRICS.filter((s) => s.alarm)) {
      const alarm = byMetric[spec.name];
      expect(alarm).toBeDefined();
      expect(alarm.Namespace).toBe(m.METRIC_NAMESPACE);
      expect(alarm.Dimensions).toEqual([{ Name: m.METRIC_APP_DIMENSION, Value: 'luxflow-lighting' }]);
      expect(alarm.Statistic).toBe(spec.statistic);
      expect(alarm.AlarmActions).toHaveLength(1);
    }
    expect(Object.keys(byMetric).sort()).toEqual(['CheckpointAgeMs', 'DeadLetters', 'MillisBehindLatest', 'SinkErrors']);
    // A fleet that stopped reporting is not healthy.
    expect(byMetric.CheckpointAgeMs.TreatMissingData).toBe('breaching');
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
    expect(globals[0].DeletionPolicy).toBe('Retain');
    expect(props.TableName).toBe(NAMES.commandTable);
    expect(props.BillingMode).toBe('PAY_PER_REQUEST');
    expect(props.KeySchema).toEqual([
      { AttributeName: 'pk', KeyType: 'HASH' },
      { AttributeName: 'sk', KeyType: 'RANGE' },
    ]);
    expect(props.GlobalSecondaryIndexes[0]).toMatchObject({
      IndexName: 'gsi1',
      KeySchema: [
        { AttributeName: 'gsi1pk', KeyType: 'HASH' },
        { AttributeName: 'gsi1sk', KeyType: 'RANGE' },
      ],
      Projection: { ProjectionType: 'ALL' },
    });
    const replicas = props.Replicas as Array<Record<string, unknown>>;
    expect(replicas.map((r) => r.Region).sort()).toEqual(['eu-west-1', 'us-east-1']);
    for (const replica of replicas) {
      expect(replica.PointInTimeRecoverySpecification).toEqual({ PointInTimeRecoveryEnabled: true });
      expect(replica.DeletionProtectionEnabled).toBe(true);
    }
  });

  test('secondary: no table of its own; its workers use the local replica by name', () => {
    expect(Object.keys(secondary.findResources('AWS::DynamoDB::GlobalTable'))).toHaveLength(0);
    const statements = statementsOfRole(secondary, 'WorkerTaskTaskRole');
    const replicaArn = JSON.stringify(statements);
    expect(replicaArn).toContain(':dynamodb:eu-west-1:111111111111:table/luxflow-model');
    expect(replicaArn).not.toContain(':dynamodb:us-east-1:');
  });

  test('the secondary stack deploys after the primary one (the replica must exist)', () => {
    const secondaryStack = synth.built.regionStacks['eu-west-1'];
    expect(secondaryStack.dependencies.map((s) => s.stackName)).toEqual(['Luxflow-us-east-1']);
  });
});
