import * as path from 'path';
import { Template } from 'aws-cdk-lib/assertions';
import { replicaBucketName } from '../lib/archive';
import { readConfig } from '../lib/config';
import { DEVICE_DNS_TTL_SECONDS, MQTT_TLS_PORT } from '../lib/device-domain';
import { Synthesized, makeApp } from './helpers';

const CA_FILE = path.join(__dirname, 'fixtures', 'device-ca.pem');
const built = makeApp({ pipeline: 'false', deviceCaCertificateFile: CA_FILE, iotEndpointPrefix: 'abc123xyz' });
const synth = new Synthesized(built);
const regions = ['us-east-1', 'eu-west-1'];
const peerOf: Record<string, string> = { 'us-east-1': 'eu-west-1', 'eu-west-1': 'us-east-1' };
const config = built.config;

function only(template: Template, type: string): { id: string; props: Record<string, any>; resource: Record<string, any> } {
  const found = Object.entries(template.findResources(type));
  expect([type, found.length]).toEqual([type, 1]);
  return { id: found[0][0], props: found[0][1].Properties, resource: found[0][1] };
}

describe.each(regions)('devices fail over: region %s', (region) => {
  const template = synth.region(region);

  test('an IoT domain configuration serves the one device name with the region\'s certificate', () => {
    const { props } = only(template, 'AWS::IoT::DomainConfiguration');
    expect(props).toMatchObject({
      DomainName: 'iot.example.com',
      ServiceType: 'DATA',
      DomainConfigurationStatus: 'ENABLED',
      ServerCertificateArns: [`arn:aws:acm:${region}:111111111111:certificate/00000000-0000-0000-0000-000000000000`],
      TlsConfig: { SecurityPolicy: 'IoTSecurityPolicy_TLS13_1_2_2022_10' },
    });
  });

  test('a Route 53 failover record for the name, PRIMARY in the primary region, with a health check on this region\'s endpoint', () => {
    const endpoint = `abc123xyz-ats.iot.${region}.amazonaws.com`;
    const check = only(template, 'AWS::Route53::HealthCheck');
    expect(check.props.HealthCheckConfig).toEqual({
      Type: 'TCP',
      FullyQualifiedDomainName: endpoint,
      Port: MQTT_TLS_PORT,
      RequestInterval: 10,
      FailureThreshold: 3,
    });
    const record = only(template, 'AWS::Route53::RecordSet').props;
    expect(record).toEqual({
      HostedZoneId: 'Z0000000000000000000',
      Name: 'iot.example.com',
      Type: 'CNAME',
      TTL: String(DEVICE_DNS_TTL_SECONDS),
      SetIdentifier: `luxflow-${region}`,
      Failover: region === 'us-east-1' ? 'PRIMARY' : 'SECONDARY',
      HealthCheckId: { 'Fn::GetAtt': [check.id, 'HealthCheckId'] },
      ResourceRecords: [endpoint],
    });
  });

  test('device certificates are valid in both regions: the same CA is registered in each', () => {
    const { props } = only(template, 'AWS::IoT::CACertificate');
    const pem = props.CACertificatePem as string;
    expect(pem).toContain('-----BEGIN CERTIFICATE-----');
    expect(props).toMatchObject({ CertificateMode: 'SNI_ONLY', Status: 'ACTIVE', AutoRegistrationStatus: 'DISABLE' });
    const other = only(synth.region(peerOf[region]), 'AWS::IoT::CACertificate').props.CACertificatePem;
    expect(other).toBe(pem);
  });
});

describe.each(regions)('telemetry survives its region: region %s', (region) => {
  const template = synth.region(region);

  test('the stream is archived by Firehose to S3: GZIP, 5-minute buffer, by hour (the line format: archive.test.ts)', () => {
    const { props } = only(template, 'AWS::KinesisFirehose::DeliveryStream');
    expect(props.DeliveryStreamType).toBe('KinesisStreamAsSource');
    expect(props.KinesisStreamSourceConfiguration.KinesisStreamARN).toEqual({ 'Fn::GetAtt': [expect.stringMatching(/^Stream/), 'Arn'] });
    const s3 = props.ExtendedS3DestinationConfiguration;
    expect(s3.BucketARN).toEqual({ 'Fn::GetAtt': [expect.stringMatching(/^Archive[0-9A-F]{8}$/), 'Arn'] });
    expect(s3.Prefix).toBe(`raw/region=${region}/!{timestamp:yyyy/MM/dd/HH}/`);
    expect(s3.BufferingHints).toEqual({ IntervalInSeconds: 300, SizeInMBs: 64 });
    expect(s3.CompressionFormat).toBe('GZIP');
  });

  test('the archive bucket: encrypted, private, TLS only, versioned, cheaper classes with age, replicated to the peer region within 15 minutes', () => {
    const buckets = Object.entries(template.findResources('AWS::S3::Bucket')).filter(([id]) => /^Archive[0-9A-F]{8}$/.test(id));
    expect(buckets).toHaveLength(1);
    const [id, bucket] = buckets[0];
    const props = bucket.Properties;
    expect(bucket.DeletionPolicy).toBe('RetainExceptOnCreate');
    expect(props.BucketEncryption.ServerSideEncryptionConfiguration[0].ServerSideEncryptionByDefault.SSEAlgorithm).toBe('AES256');
    expect(props.PublicAccessBlockConfiguration).toEqual({ BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true });
    expect(props.VersioningConfiguration).toEqual({ Status: 'Enabled' });
    expect(props.LifecycleConfiguration.Rules[0].Transitions).toEqual([
      { StorageClass: 'STANDARD_IA', TransitionInDays: 30 },
      { StorageClass: 'GLACIER_IR', TransitionInDays: 90 },
      { StorageClass: 'DEEP_ARCHIVE', TransitionInDays: 365 },
    ]);
    const peer = peerOf[region];
    const rules = props.ReplicationConfiguration.Rules;
    expect(rules).toEqual([
      {
        Id: `to-${peer}`,
        Status: 'Enabled',
        Priority: 1,
        Filter: { Prefix: '' },
        DeleteMarkerReplication: { Status: 'Disabled' },
        Destination: {
          Bucket: { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, `:s3:::${replicaBucketName(config, peer)}`]] },
          ReplicationTime: { Status: 'Enabled', Time: { Minutes: 15 } },
          Metrics: { Status: 'Enabled', EventThreshold: { Minutes: 15 } },
        },
      },
    ]);
    // TLS only.
    const policies = Object.values(template.findResources('AWS::S3::BucketPolicy')).filter((p) => JSON.stringify(p.Properties.Bucket).includes(id));
    expect(JSON.stringify(policies)).toContain('"aws:SecureTransport":"false"');
  });

  test('the replica bucket in this region, with the name the peer replicates to, exists in a stack deployed before every region stack', () => {
    const stack = built.archiveStacks[region];
    const replica = only(synth.template(stack), 'AWS::S3::Bucket');
    expect(replica.props.BucketName).toBe(`luxflow-lighting-archive-111111111111-${region}`);
    expect(replica.props.VersioningConfiguration).toEqual({ Status: 'Enabled' });
    expect(replica.resource.DeletionPolicy).toBe('RetainExceptOnCreate');
    for (const regionStack of Object.values(built.regionStacks)) {
      expect(regionStack.dependencies).toContain(stack);
    }
  });

  test('the archive path is alarmed: Firehose delivery freshness and the replication latency', () => {
    const alarms = Object.values(template.findResources('AWS::CloudWatch::Alarm')).map((a) => a.Properties);
    const freshness = alarms.find((a) => a.AlarmName === `luxflow-lighting-${region}-ArchiveDeliveryFreshness`);
    expect(freshness).toMatchObject({ Namespace: 'AWS/Firehose', MetricName: 'DeliveryToS3.DataFreshness', Threshold: 900 });
    const replication = alarms.find((a) => a.AlarmName === `luxflow-lighting-${region}-ArchiveReplicationLatency`);
    expect(replication).toMatchObject({ Namespace: 'AWS/S3', MetricName: 'ReplicationLatency', Threshold: 900 });
    expect(replication!.Dimensions).toEqual(
      expect.arrayContaining([
        { Name: 'DestinationBucket', Value: replicaBucketName(config, peerOf[region]) },
        { Name: 'RuleId', Value: `to-${peerOf[region]}` },
      ]),
    );
  });
});

describe('variants of the DR path', () => {
  test('one region: an archive, no replication, no replica stack elsewhere; a PRIMARY record only', () => {
    const one = makeApp({ pipeline: 'false', regions: 'us-east-1' });
    const t = new Synthesized(one).region('us-east-1');
    const archive = Object.entries(t.findResources('AWS::S3::Bucket')).find(([id]) => /^Archive[0-9A-F]{8}$/.test(id))![1];
    expect(archive.Properties.ReplicationConfiguration).toBeUndefined();
    expect(only(t, 'AWS::Route53::RecordSet').props.Failover).toBe('PRIMARY');
  });

  test('three regions: replication is a ring (each to the next), failover records for the first two only', () => {
    const three = makeApp({ pipeline: 'false', regions: 'us-east-1,eu-west-1,us-west-2' });
    const s = new Synthesized(three);
    const destination = (region: string) =>
      JSON.stringify(
        Object.entries(s.region(region).findResources('AWS::S3::Bucket')).find(([id]) => /^Archive[0-9A-F]{8}$/.test(id))![1].Properties
          .ReplicationConfiguration.Rules[0].Destination.Bucket,
      );
    expect(destination('us-east-1')).toContain('archive-111111111111-eu-west-1');
    expect(destination('eu-west-1')).toContain('archive-111111111111-us-west-2');
    expect(destination('us-west-2')).toContain('archive-111111111111-us-east-1');
    expect(Object.keys(s.region('us-west-2').findResources('AWS::Route53::RecordSet'))).toHaveLength(0);
  });

  test('primary not first in regions: the primary\'s archive replicates to the region its devices fail over to', () => {
    const built3 = makeApp({ pipeline: 'false', regions: 'us-east-1,eu-west-1,us-west-2', primaryRegion: 'eu-west-1' });
    const s = new Synthesized(built3);
    const secondary = ['us-east-1', 'us-west-2'].filter(
      (r) => Object.values(s.region(r).findResources('AWS::Route53::RecordSet')).some((x) => x.Properties.Failover === 'SECONDARY'),
    );
    expect(secondary).toEqual(['us-east-1']);
    const archive = Object.entries(s.region('eu-west-1').findResources('AWS::S3::Bucket')).find(([id]) => /^Archive[0-9A-F]{8}$/.test(id))![1];
    expect(JSON.stringify(archive.Properties.ReplicationConfiguration.Rules[0].Destination.Bucket)).toContain(
      `archive-111111111111-${secondary[0]}`,
    );
  });

  test('without deviceCaCertificateFile, no CA is registered (the README gives the registration step)', () => {
    const t = new Synthesized(makeApp({ pipeline: 'false' })).region('us-east-1');
    expect(Object.keys(t.findResources('AWS::IoT::CACertificate'))).toHaveLength(0);
  });

  test('a CA file that is not a PEM certificate is refused', () => {
    const { App } = require('aws-cdk-lib') as typeof import('aws-cdk-lib');
    expect(() => readConfig(new App({ context: { deviceCaCertificateFile: path.join(__dirname, '..', 'package.json') } }).node)).toThrow(/not a PEM/);
  });
});

describe('the region fence', () => {
  const fenced = new Synthesized(
    makeApp({ pipeline: 'false', regions: 'us-east-1,us-east-2', fenceWitnessRegion: 'us-west-2' }),
  );

  test('its quorum table is an MRSC global table with two replicas and a witness', () => {
    const tables = Object.values(fenced.region('us-east-1').findResources('AWS::DynamoDB::GlobalTable'));
    const fence = tables.find((t) => t.Properties.TableName === 'luxflow-fence');
    expect(fence).toBeDefined();
    expect(fence!.Properties.MultiRegionConsistency).toBe('STRONG');
    expect(fence!.Properties.GlobalTableWitnesses).toEqual([{ Region: 'us-west-2' }]);
    expect(fence!.Properties.Replicas.map((r: { Region: string }) => r.Region).sort()).toEqual(['us-east-1', 'us-east-2']);
  });

  test.each(['us-east-1', 'us-east-2'])('the workers of %s renew their lease in it', (region) => {
    const defs = Object.values(fenced.region(region).findResources('AWS::ECS::TaskDefinition'));
    const envs = defs.flatMap((d) => d.Properties.ContainerDefinitions.flatMap((c: { Environment?: { Name: string; Value: unknown }[] }) => c.Environment ?? []));
    expect(envs).toContainEqual({ Name: 'LUXFLOW_FENCE_TABLE', Value: 'luxflow-fence' });
  });

  test('no witness, no fence; a witness needs exactly two regions', () => {
    const plain = synth.region('us-east-1');
    const envs = JSON.stringify(plain.findResources('AWS::ECS::TaskDefinition'));
    expect(envs).not.toContain('LUXFLOW_FENCE_TABLE');
    expect(() => makeApp({ pipeline: 'false', regions: 'us-east-1,us-east-2,eu-west-1', fenceWitnessRegion: 'us-west-2' })).toThrow(/exactly two regions/);
  });
});

describe('other partitions', () => {
  test.each([['cn-north-1,cn-northwest-1', 'amazonaws.com.cn']])('regions=%s: the failover record and health check point at the IoT endpoint under %s', (regions, suffix) => {
    const region = regions.split(',')[0];
    const t = new Synthesized(makeApp({ pipeline: 'false', regions })).region(region);
    const endpoint = `a0000000000000-ats.iot.${region}.${suffix}`;
    expect(only(t, 'AWS::Route53::HealthCheck').props.HealthCheckConfig.FullyQualifiedDomainName).toBe(endpoint);
    expect(only(t, 'AWS::Route53::RecordSet').props.ResourceRecords).toEqual([endpoint]);
  });

  test('a certificate ARN of another partition than its region is refused', () => {
    expect(() =>
      readConfig(
        new (require('aws-cdk-lib') as typeof import('aws-cdk-lib')).App({
          context: { regions: 'cn-north-1,cn-northwest-1', apiCertificateArn: 'arn:aws:acm:{region}:111111111111:certificate/x' },
        }).node,
      ),
    ).toThrow(/apiCertificateArn=.*partition aws-cn/);
  });
});
