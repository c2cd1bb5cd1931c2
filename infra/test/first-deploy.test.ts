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
