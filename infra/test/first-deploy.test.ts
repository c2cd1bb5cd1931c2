/**
 * What a first deploy into a real account meets before CloudFormation does: parameters that
 * are still placeholders, malformed or contradictory, refused at synth with one line.
 */
import { App } from 'aws-cdk-lib';
import { readConfig } from '../lib/config';

const config = (ctx: Record<string, string>) => readConfig(new App({ context: ctx }).node);

/** Everything a direct (pipeline=false) deploy into account 123456789012 must be given. */
const REAL: Record<string, string> = {
  account: '123456789012',
  pipeline: 'false',
  apiCertificateArn: 'arn:aws:acm:{region}:123456789012:certificate/abc',
  deviceDomain: 'iot.lights.example.net',
  deviceHostedZoneId: 'Z123456ABCDEFG',
  deviceCertificateArn: 'arn:aws:acm:{region}:123456789012:certificate/def',
  iotEndpointPrefix: 'a1b2c3d4e5f6g7',
};

describe('a real account is never deployed with placeholder parameters', () => {
  test('the complete set synthesizes', () => {
    expect(config(REAL).account).toBe('123456789012');
  });

  test.each(['apiCertificateArn', 'deviceDomain', 'deviceHostedZoneId', 'deviceCertificateArn', 'iotEndpointPrefix'])(
    'without %s the synth stops and names it',
    (key) => {
      const ctx = { ...REAL };
      delete ctx[key];
      expect(() => config(ctx)).toThrow(new RegExp(`-c ${key}=`));
    },
  );

  test('the README\'s first-deploy command (account, regions, API certificate only) names every device key it lacks', () => {
    const readme = { account: '123456789012', pipeline: 'false', apiCertificateArn: REAL.apiCertificateArn };
    expect(() => config(readme)).toThrow(/-c deviceDomain=.*-c deviceHostedZoneId=.*-c deviceCertificateArn=.*-c iotEndpointPrefix=/);
  });

  test('with the pipeline, its connection and repository are required too', () => {
    expect(() => config({ ...REAL, pipeline: 'true' })).toThrow(/-c connectionArn=.*-c repository=/);
    expect(() => config({ ...REAL, pipeline: 'true', connectionArn: 'arn:aws:codeconnections:us-east-1:123456789012:connection/x', repository: 'me/luxflow' })).not.toThrow();
  });

  test('a certificate of another account, or not an ACM certificate ARN, is refused', () => {
    expect(() => config({ ...REAL, apiCertificateArn: 'arn:aws:acm:{region}:999999999999:certificate/abc' })).toThrow(
      /apiCertificateArn=.*account 999999999999, not 123456789012/,
    );
    expect(() => config({ ...REAL, deviceCertificateArn: 'my-cert' })).toThrow(/deviceCertificateArn=my-cert: not an ACM certificate ARN/);
  });

  test('the dummy account keeps its placeholders (offline synth and the tests)', () => {
    expect(config({}).deviceDomain).toBe('iot.example.com');
  });
});

describe('a malformed parameter is one line from `cdk synth`, not a stack trace', () => {
  /** Runs the app's entry point as `cdk synth` does (context in CDK_CONTEXT_JSON). */
  function synth(ctx: Record<string, string>): { status: number | null; stderr: string } {
    const { spawnSync } = require('child_process') as typeof import('child_process');
    const os = require('os') as typeof import('os');
    const fs = require('fs') as typeof import('fs');
    const path = require('path') as typeof import('path');
    const out = spawnSync(process.execPath, ['-r', 'ts-node/register', path.join(__dirname, '..', 'bin', 'luxflow.ts')], {
      env: {
        ...process.env,
        TS_NODE_TRANSPILE_ONLY: 'true',
        CDK_CONTEXT_JSON: JSON.stringify({ pipeline: 'false', ...ctx }),
        CDK_OUTDIR: fs.mkdtempSync(path.join(os.tmpdir(), 'luxflow-bin-')),
      },
      encoding: 'utf8',
      timeout: 120_000,
    });
    return { status: out.status, stderr: out.stderr };
  }

  test.each([
    [{ regions: 'us-east-1,us-east-1' }, /^luxflow: context regions: duplicates/],
    [{ regions: 'us-east-1 eu-west-1' }, /^luxflow: context regions: "us-east-1 eu-west-1" is not a region name/],
    [{ regions: 'US-EAST-1' }, /^luxflow: context regions: "US-EAST-1" is not a region name/],
    [{ deviceCaCertificateFile: '/nonexistent/ca.pem' }, /^luxflow: context deviceCaCertificateFile=\/nonexistent\/ca.pem: cannot read/],
    [{ apiAllowedCidr: '10.0.0.0' }, /^luxflow: context apiAllowedCidr=10.0.0.0: not an IPv4 CIDR/],
    [{ alarmEmail: 'ops' }, /^luxflow: context alarmEmail=ops: not an e-mail address/],
    [{ appName: 'Lux Flow' }, /^luxflow: context appName=Lux Flow: not lower-case letters/],
    [{ pipelineRegion: 'mars-1' }, /^luxflow: context pipelineRegion: "mars-1" is not a region name/],
  ])('%j', (ctx, message) => {
    const { status, stderr } = synth(ctx as Record<string, string>);
    expect(status).toBe(1);
    expect(stderr.trim()).toMatch(message);
    expect(stderr.trim().split('\n')).toHaveLength(1);
  });
});

describe('a region that lacks a service the stacks need is refused at synth', () => {
  test.each([
    ['us-west-1,us-east-1', 'influxdb', /Timestream for InfluxDB .* not offered in us-west-1/],
    ['ap-northeast-2,ap-northeast-1', 'influxdb', /Timestream for InfluxDB .* not offered in ap-northeast-2/],
    ['eu-west-1,eu-west-2', 'timestream', /LiveAnalytics .* not offered in eu-west-2/],
    ['ap-northeast-3,ap-northeast-1', 'influxdb', /IoT Core custom domains is not offered in ap-northeast-3/],
  ])('regions=%s queryModel=%s', (regions, queryModel, message) => {
    expect(() => config({ regions, queryModel })).toThrow(message);
  });

  test('the default regions and the other commonly paired ones pass', () => {
    for (const regions of ['us-east-1,eu-west-1', 'us-east-2,us-west-2', 'eu-central-1,eu-west-1', 'ap-southeast-2,ap-northeast-1']) {
      expect(config({ regions }).regions).toEqual(regions.split(','));
    }
  });
});

describe('the region fence: its MRSC quorum table must be creatable', () => {
  test('regions and witness in one region set synthesize', () => {
    expect(config({ regions: 'us-east-1,us-east-2', fenceWitnessRegion: 'us-west-2' }).fenceWitnessRegion).toBe('us-west-2');
  });

  test.each([
    ['us-east-1,eu-west-1', 'us-west-2'],
    ['us-east-1,us-east-2', 'eu-west-1'],
    ['eu-west-1,eu-central-1', 'eu-north-1'],
  ])('regions=%s witness=%s: not in one region set, refused', (regions, witness) => {
    expect(() => config({ regions, fenceWitnessRegion: witness })).toThrow(/fenceWitnessRegion.*one MRSC region set/);
  });
});

describe('a certificate is regional', () => {
  test('one region\'s ARN for two regions is refused (the other region\'s listener or domain cannot use it)', () => {
    expect(() => config({ apiCertificateArn: 'arn:aws:acm:us-east-1:111111111111:certificate/abc' })).toThrow(
      /apiCertificateArn=.*us-east-1 only, not eu-west-1: use \{region\}/,
    );
    expect(() => config({ deviceCertificateArn: 'arn:aws:acm:eu-west-1:111111111111:certificate/abc', regions: 'us-east-1' })).toThrow(
      /deviceCertificateArn=.*eu-west-1 only, not us-east-1/,
    );
  });

  test('a fixed ARN of the one region deployed, or a {region} pattern, is accepted', () => {
    expect(config({ apiCertificateArn: 'arn:aws:acm:us-east-1:111111111111:certificate/abc', regions: 'us-east-1' }).regions).toEqual(['us-east-1']);
    expect(config({ apiCertificateArn: 'arn:aws:acm:{region}:111111111111:certificate/abc' }).regions).toHaveLength(2);
  });
});

describe('the device domain\'s parameters are checked for their shape', () => {
  test.each([
    [{ iotEndpointPrefix: 'a1b2c3-ats.iot.us-east-1.amazonaws.com' }, /iotEndpointPrefix=.*: not the endpoint prefix/],
    [{ deviceHostedZoneId: '/hostedzone/Z123' }, /deviceHostedZoneId=.*: not a Route 53 hosted zone id/],
    [{ deviceDomain: 'https://iot.example.net' }, /deviceDomain=.*: not a domain name/],
    [{ connectionArn: 'my-connection' }, /connectionArn=my-connection: not a CodeConnections/],
  ])('%j', (ctx, message) => {
    expect(() => config(ctx as Record<string, string>)).toThrow(message);
  });
});
