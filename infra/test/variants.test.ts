import { readFileSync, readdirSync, statSync } from 'fs';
import * as path from 'path';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Template } from 'aws-cdk-lib/assertions';
import { App } from 'aws-cdk-lib';
import { NAMES, readConfig } from '../lib/config';
import * as m from '../lib/metric-names';
import * as w from '../lib/worker';
import { Synthesized, actionsOf, containerOf, envOf, makeApp, statementsOfRole } from './helpers';

describe('configuration variants', () => {
  test('provisioned shards: the stream has that many, and the workers scale up to it', () => {
    const t = new Synthesized(makeApp({ pipeline: 'false', shards: '8', workers: '3' })).region('us-east-1');
    t.hasResourceProperties('AWS::Kinesis::Stream', { ShardCount: 8, StreamModeDetails: { StreamMode: 'PROVISIONED' } });
    t.hasResourceProperties('AWS::ECS::Service', { DesiredCount: 3 });
    t.hasResourceProperties('AWS::ApplicationAutoScaling::ScalableTarget', { MinCapacity: 3, MaxCapacity: 8 });
  });

  test('more workers than shards are not started', () => {
    const t = new Synthesized(makeApp({ pipeline: 'false', shards: '2', workers: '5' })).region('us-east-1');
    t.hasResourceProperties('AWS::ECS::Service', { DesiredCount: 2 });
    t.hasResourceProperties('AWS::ApplicationAutoScaling::ScalableTarget', { MinCapacity: 2, MaxCapacity: 2 });
  });

  test('one region: the command table is a global table with exactly one replica', () => {
    const t = new Synthesized(makeApp({ pipeline: 'false', regions: 'us-east-1' })).region('us-east-1');
    const globals = Object.values(t.findResources('AWS::DynamoDB::GlobalTable'));
    expect(globals).toHaveLength(1);
    expect(globals[0].Properties.Replicas.map((r: { Region: string }) => r.Region)).toEqual(['us-east-1']);
  });

  test('three regions, primary eu-west-1: replicas in all three, created only by eu-west-1', () => {
    const built = makeApp({ pipeline: 'false', regions: 'us-east-1,eu-west-1,us-west-2', primaryRegion: 'eu-west-1' });
    const s = new Synthesized(built);
    for (const region of ['us-east-1', 'us-west-2']) {
      expect(Object.keys(s.region(region).findResources('AWS::DynamoDB::GlobalTable'))).toHaveLength(0);
    }
    const globals = Object.values(s.region('eu-west-1').findResources('AWS::DynamoDB::GlobalTable'));
    expect(globals[0].Properties.Replicas.map((r: { Region: string }) => r.Region).sort()).toEqual([
      'eu-west-1',
      'us-east-1',
      'us-west-2',
    ]);
  });

  test('queryModel=timestream (accounts that have LiveAnalytics): its tables, one NAT per zone, W3697 suppressed with a reason', () => {
    const t = new Synthesized(makeApp({ pipeline: 'false', queryModel: 'timestream' })).region('us-east-1');
    expect(Object.keys(t.findResources('AWS::Timestream::InfluxDBInstance'))).toHaveLength(0);
    t.hasResourceProperties('AWS::Timestream::Database', { DatabaseName: NAMES.timestreamDatabase });
    for (const name of NAMES.timestreamTables) {
      t.hasResourceProperties('AWS::Timestream::Table', {
        TableName: name,
        RetentionProperties: {
          MemoryStoreRetentionPeriodInHours: String(w.TIMESTREAM_MEMORY_RETENTION_HOURS),
          MagneticStoreRetentionPeriodInDays: String(w.TIMESTREAM_MAGNETIC_RETENTION_DAYS),
        },
        MagneticStoreWriteProperties: { EnableMagneticStoreWrites: true },
      });
    }
    for (const type of ['AWS::Timestream::Database', 'AWS::Timestream::Table']) {
      for (const r of Object.values(t.findResources(type))) {
        expect(r.Metadata['cfn-lint'].config.ignore_checks).toEqual(['W3697']);
        expect(r.Metadata['luxflow-lint-reasons'].W3697).toMatch(/closed to new customers/);
      }
    }
    expect(Object.keys(t.findResources('AWS::EC2::NatGateway'))).toHaveLength(2);
    expect(Object.values(t.findResources('AWS::EC2::VPCEndpoint')).filter((e) => e.Properties.VpcEndpointType === 'Interface')).toHaveLength(0);
    const c = containerOf(t, 'WorkerTask');
    expect(c.Secrets).toBeUndefined();
    const env = envOf(c);
    expect(env).toMatchObject({ LUXFLOW_QUERY_MODEL: 'timestream', LUXFLOW_TIMESTREAM_DATABASE: NAMES.timestreamDatabase });
    const ts = statementsOfRole(t, 'WorkerTaskTaskRole').find((s) => actionsOf(s).includes('timestream:WriteRecords'));
    expect(JSON.stringify(ts?.Resource)).toContain('Timestreamevents');
    expect(JSON.stringify(ts?.Resource)).toContain('Timestreamusage');
  });

  test('deletionProtection=false (a first deploy that a rollback can clean up): no table protected', () => {
    const t = new Synthesized(makeApp({ pipeline: 'false', deletionProtection: 'false' })).region('us-east-1');
    for (const table of Object.values(t.findResources('AWS::DynamoDB::Table'))) {
      expect(table.Properties.DeletionProtectionEnabled).toBe(false);
    }
    for (const replica of Object.values(t.findResources('AWS::DynamoDB::GlobalTable'))[0].Properties.Replicas) {
      expect(replica.DeletionProtectionEnabled).toBe(false);
    }
  });

  test('egress=nat: one NAT gateway per zone (no single-zone egress)', () => {
    const t = new Synthesized(makeApp({ pipeline: 'false', egress: 'nat' })).region('us-east-1');
    expect(Object.keys(t.findResources('AWS::EC2::NatGateway'))).toHaveLength(2);
  });

  test('the read API certificate: one ARN per region from the {region} pattern', () => {
    const arn = 'arn:aws:acm:{region}:111111111111:certificate/abc';
    const s = new Synthesized(makeApp({ pipeline: 'false', apiCertificateArn: arn }));
    for (const region of ['us-east-1', 'eu-west-1']) {
      s.region(region).hasResourceProperties('AWS::ElasticLoadBalancingV2::Listener', {
        Certificates: [{ CertificateArn: `arn:aws:acm:${region}:111111111111:certificate/abc` }],
      });
    }
  });

  test('bad context is refused with a message', () => {
    const config = (ctx: Record<string, string>) => readConfig(new App({ context: ctx }).node);
    expect(() => config({ regions: 'us-east-1', primaryRegion: 'eu-west-1' })).toThrow(/primaryRegion/);
    expect(() => config({ queryModel: 'postgres' })).toThrow(/queryModel/);
    expect(() => config({ shards: 'many' })).toThrow(/shards/);
    expect(() => config({ account: '123' })).toThrow(/account/);
    expect(() => config({ queryModel: 'timestream', egress: 'endpoints' })).toThrow(/egress=nat/);
    expect(() => config({ retentionHours: '12' })).toThrow(/retentionHours/);
    expect(() => config({ deletionProtection: 'yes' })).toThrow(/deletionProtection/);
    expect(config({}).account).toBe('111111111111');
    expect(config({}).queryModel).toBe('influxdb');
    expect(config({}).egress).toBe('endpoints');
  });
});

describe('the cdk-nag gate', () => {
  test('the whole app (regions + pipeline) passes AwsSolutions with acknowledgments', () => {
    const built = makeApp();
    for (const stack of Object.values(built.regionStacks)) expect(() => Template.fromStack(stack)).not.toThrow();
    expect(() => Template.fromStack(built.pipelineStack!)).not.toThrow();
  });

  test('an unacknowledged finding (dynamodb:* on *) makes Template.fromStack throw', () => {
    const built = makeApp({ pipeline: 'false' });
    const stack = built.regionStacks['eu-west-1'];
    new iam.Role(stack, 'Careless', { assumedBy: new iam.AccountRootPrincipal() }).addToPolicy(
      new iam.PolicyStatement({ actions: ['dynamodb:*'], resources: ['*'] }),
    );
    expect(() => Template.fromStack(stack)).toThrow(/AwsSolutions-IAM5\[Action::dynamodb:\*\]/);
  });

  test('every checkov skip and cfn-lint ignore in the templates carries a written reason', () => {
    const built = makeApp();
    const s = new Synthesized(built);
    const templates = [...Object.values(built.regionStacks), built.pipelineStack!, ...built.pipelineStack!.stages.map((x) => x.stack)].map(
      (stack) => s.template(stack),
    );
    let skips = 0;
    for (const t of templates) {
      for (const resource of Object.values(t.toJSON().Resources as Record<string, { Metadata?: Record<string, any> }>)) {
        for (const skip of resource.Metadata?.checkov?.skip ?? []) {
          expect(skip.id).toMatch(/^CKV2?_AWS_\d+$/);
          expect(skip.comment.length).toBeGreaterThan(30);
          skips++;
        }
        for (const rule of resource.Metadata?.['cfn-lint']?.config?.ignore_checks ?? []) {
          expect(String(resource.Metadata?.['luxflow-lint-reasons']?.[rule] ?? '').length).toBeGreaterThan(30);
        }
      }
    }
    expect(skips).toBeGreaterThan(0);
  });

  test('every acknowledgment in the code carries a written reason', () => {
    const libDir = path.join(__dirname, '..', 'lib');
    for (const file of readdirSync(libDir).filter((f) => f.endsWith('.ts'))) {
      const text = readFileSync(path.join(libDir, file), 'utf8');
      for (const match of text.matchAll(/acknowledge\(\{\s*id:[^}]*\}/gs)) {
        expect(match[0]).toMatch(/reason:\s*\S/);
      }
    }
  });
});

describe('metric names', () => {
  test('metric-names.json is exactly lib/metric-names.ts (npm run metric-names rewrites it)', () => {
    const json = readFileSync(path.join(__dirname, '..', 'metric-names.json'), 'utf8');
    expect(json).toBe(m.metricNamesJson());
  });

  test('the names the worker must emit, with unit, statistic and alarm', () => {
    expect(m.METRICS.map((s) => [s.name, s.unit, s.statistic, s.alarm])).toEqual([
      ['MillisBehindLatest', 'Milliseconds', 'Maximum', true],
      ['DeadLetters', 'Count', 'Sum', true],
      ['SinkErrors', 'Count', 'Sum', true],
      ['CheckpointAgeMs', 'Milliseconds', 'Maximum', true],
      ['RecordsRead', 'Count', 'Sum', true],
      ['RecordsProcessed', 'Count', 'Sum', false],
      ['LateRecords', 'Count', 'Sum', false],
      ['ShardsHeld', 'Count', 'Maximum', false],
      ['SinkThrottles', 'Count', 'Sum', false],
    ]);
  });
});

describe('the worker settings', () => {
  /** The Python Settings fields, wherever the restructuring puts the class. */
  function pythonSettings(): Set<string> {
    const root = path.join(__dirname, '..', '..');
    const skip = new Set(['.git', '.venv', 'node_modules', 'infra', 'tests', 'cdk.out', '__pycache__']);
    const files: string[] = [];
    const walk = (dir: string) => {
      for (const name of readdirSync(dir)) {
        if (skip.has(name) || name.startsWith('.')) continue; // .venv-bench, .git, caches
        const full = path.join(dir, name);
        if (statSync(full).isDirectory()) walk(full);
        else if (name.endsWith('.py')) files.push(full);
      }
    };
    walk(root);
    for (const file of files) {
      const text = readFileSync(file, 'utf8');
      const start = text.search(/^class Settings\b/m);
      if (start < 0) continue;
      const body = text.slice(start).split(/\n(?=\S)/)[0];
      return new Set([...body.matchAll(/^ {4}([a-z_][a-z0-9_]*):\s*[^=\n]+=/gm)].map((x) => x[1]));
    }
    throw new Error('no `class Settings` found in the Python sources');
  }

  test('every LUXFLOW_ variable the task sets is a Settings field (or a query-model one)', () => {
    const fields = pythonSettings();
    expect(fields.has('stream')).toBe(true);
    for (const model of ['timestream', 'influxdb']) {
      const t = new Synthesized(makeApp({ pipeline: 'false', queryModel: model })).region('us-east-1');
      for (const task of ['WorkerTask', 'ApiTask']) {
        const c = containerOf(t, task);
        const names = [...(c.Environment ?? []), ...(c.Secrets ?? [])].map((e: { Name: string }) => e.Name);
        for (const name of names) {
          expect(name.startsWith('LUXFLOW_')).toBe(true);
          expect([name, fields.has(name.slice('LUXFLOW_'.length).toLowerCase())]).toEqual([name, true]);
        }
      }
    }
  });
});
