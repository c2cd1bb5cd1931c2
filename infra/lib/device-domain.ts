/**
 * The devices' path that fails over: one MQTT name (`deviceDomain`) for the whole fleet, served
 * in every region by an IoT Core domain configuration (the same name, a regional ACM
 * certificate), and resolved by Route 53 failover records: PRIMARY to the primary region's IoT
 * data endpoint, SECONDARY to the next region's, each with a health check on its endpoint.
 *
 * Failover time: the health check probes every 10 s from several Route 53 locations and turns
 * unhealthy after 3 failures (about 30 s), the record's TTL is 60 s, then each device's reconnect
 * backoff: about 1.5 minutes plus the backoff before devices publish to the survivor.
 *
 * The health check is TCP on 8883 (the endpoint accepts MQTT over TLS); an HTTPS probe cannot
 * present a device certificate. A region that answers but does not process (its workers down)
 * is not failed over automatically: that is an operator's decision (docs/dr.md), because the
 * survivor then takes over the region's sites' homes.
 *
 * Device certificates valid in both regions: the CA that signs them is registered in every
 * region (`deviceCaCertificateFile`: an `AWS::IoT::CACertificate` per region, SNI_ONLY mode, the
 * same PEM everywhere), and each device's certificate is registered and attached to its thing
 * and the device policy in every region (infra/README.md). Failover records exist for the
 * primary and the next region only (Route 53 failover has two roles).
 */
import { Stack } from 'aws-cdk-lib';
import * as iot from 'aws-cdk-lib/aws-iot';
import * as route53 from 'aws-cdk-lib/aws-route53';
import { RegionInfo } from 'aws-cdk-lib/region-info';
import { LuxflowConfig, certificateArn } from './config';
import { deployOrder } from './regions';

export const DEVICE_DNS_TTL_SECONDS = 60;
export const HEALTH_CHECK_INTERVAL_SECONDS = 10;
export const HEALTH_CHECK_FAILURES = 3;
export const MQTT_TLS_PORT = 8883;

/** The region's role in the failover pair, or none (a third region and beyond). */
export function failoverRole(config: LuxflowConfig, region: string): 'PRIMARY' | 'SECONDARY' | undefined {
  const [first, second] = deployOrder(config);
  if (region === first) return 'PRIMARY';
  if (region === second) return 'SECONDARY';
  return undefined;
}

/**
 * The account's IoT data (ATS) endpoint in `region`: what the device name resolves to there.
 * Under the region's partition domain (amazonaws.com.cn in China, amazonaws.eu in the European
 * Sovereign Cloud), not a fixed amazonaws.com.
 */
export function iotDataEndpoint(config: LuxflowConfig, region: string): string {
  return `${config.iotEndpointPrefix}-ats.iot.${region}.${RegionInfo.get(region).domainSuffix ?? 'amazonaws.com'}`;
}

export interface DeviceDomain {
  readonly domainConfiguration: iot.CfnDomainConfiguration;
  readonly healthCheck?: route53.CfnHealthCheck;
  readonly record?: route53.CfnRecordSet;
  readonly ca?: iot.CfnCACertificate;
}

export function addDeviceDomain(stack: Stack, config: LuxflowConfig): DeviceDomain {
  const region = stack.region;
  const domainConfiguration = new iot.CfnDomainConfiguration(stack, 'DeviceDomain', {
    domainConfigurationName: `luxflow-${config.appName.replace(/[^A-Za-z0-9_-]/g, '-')}`,
    domainName: config.deviceDomain,
    serverCertificateArns: [certificateArn(config, region, config.deviceCertificateArn)],
    serviceType: 'DATA',
    domainConfigurationStatus: 'ENABLED',
    tlsConfig: { securityPolicy: 'IoTSecurityPolicy_TLS13_1_2_2022_10' },
  });

  const ca = config.deviceCaCertificatePem
    ? new iot.CfnCACertificate(stack, 'DeviceCa', {
        caCertificatePem: config.deviceCaCertificatePem,
        // SNI_ONLY: the same CA may be registered in several regions (and accounts) without a
        // verification certificate; devices must send SNI, which MQTT clients on a custom domain do.
        certificateMode: 'SNI_ONLY',
        status: 'ACTIVE',
        autoRegistrationStatus: 'DISABLE',
      })
    : undefined;

  const role = failoverRole(config, region);
  if (role === undefined) return { domainConfiguration, ca };
  const endpoint = iotDataEndpoint(config, region);
  const healthCheck = new route53.CfnHealthCheck(stack, 'DeviceEndpointHealth', {
    healthCheckConfig: {
      type: 'TCP',
      fullyQualifiedDomainName: endpoint,
      port: MQTT_TLS_PORT,
      requestInterval: HEALTH_CHECK_INTERVAL_SECONDS,
      failureThreshold: HEALTH_CHECK_FAILURES,
    },
    healthCheckTags: [{ key: 'Name', value: `luxflow-${config.appName}-${region}-iot` }],
  });
  const record = new route53.CfnRecordSet(stack, 'DeviceFailoverRecord', {
    hostedZoneId: config.deviceHostedZoneId,
    name: config.deviceDomain,
    type: 'CNAME',
    ttl: String(DEVICE_DNS_TTL_SECONDS),
    setIdentifier: `luxflow-${region}`,
    failover: role,
    healthCheckId: healthCheck.attrHealthCheckId,
    resourceRecords: [endpoint],
  });
  return { domainConfiguration, healthCheck, record, ca };
}
