/**
 * Where the services this app cannot do without are offered, so that a region without them is
 * refused at synth instead of failing its stack's create (after the VPC, tables and key were
 * made, then rolled back). The lists are the regions whose CloudFormation resource types
 * include each one, read from cfn-lint 1.58.0's region schemas (the checker infra/ci.sh runs;
 * `cfnlint/data/schemas/providers/<region>.json`). A region added by AWS later is refused
 * until it is added here: check the service's endpoints page, then add it. eusc-de-east-1 (the
 * European Sovereign Cloud) has them, but aws-cdk-lib 2.276 cannot synthesize the archive's
 * Firehose there (no CIDR facts for the region), so it is left out.
 */
import { ConfigError } from './errors';

const OFFERED: Record<string, readonly string[]> = {
  'Timestream for InfluxDB (queryModel=influxdb)': [
    'ap-northeast-1', 'ap-northeast-3', 'ap-south-1', 'ap-southeast-1', 'ap-southeast-2', 'ap-southeast-3',
    'ca-central-1', 'cn-north-1', 'cn-northwest-1', 'eu-central-1', 'eu-north-1', 'eu-south-1', 'eu-south-2',
    'eu-west-1', 'eu-west-2', 'eu-west-3', 'me-central-1', 'mx-central-1', 'sa-east-1',
    'us-east-1', 'us-east-2', 'us-west-2',
  ],
  'Timestream for LiveAnalytics (queryModel=timestream)': [
    'ap-northeast-1', 'ap-south-1', 'ap-southeast-2', 'eu-central-1', 'eu-west-1',
    'us-east-1', 'us-east-2', 'us-gov-west-1', 'us-west-2',
  ],
  // The devices' custom domain (AWS::IoT::DomainConfiguration) and the device CA.
  'IoT Core custom domains': [
    'ap-east-1', 'ap-northeast-1', 'ap-northeast-2', 'ap-south-1', 'ap-southeast-1', 'ap-southeast-2',
    'ap-southeast-5', 'ca-central-1', 'cn-north-1', 'cn-northwest-1', 'eu-central-1', 'eu-north-1', 'eu-south-1',
    'eu-south-2', 'eu-west-1', 'eu-west-2', 'eu-west-3', 'il-central-1', 'me-central-1',
    'sa-east-1', 'us-east-1', 'us-east-2', 'us-gov-east-1', 'us-gov-west-1', 'us-west-1', 'us-west-2',
  ],
};

function required(queryModel: string): string[] {
  return [
    queryModel === 'influxdb'
      ? 'Timestream for InfluxDB (queryModel=influxdb)'
      : 'Timestream for LiveAnalytics (queryModel=timestream)',
    'IoT Core custom domains',
  ];
}

/** Refuses, in one line, a region that lacks a service every region stack needs. */
export function checkRegionsOffer(regions: readonly string[], queryModel: string): void {
  for (const service of required(queryModel)) {
    const missing = regions.filter((region) => !OFFERED[service].includes(region));
    if (missing.length > 0) {
      throw new ConfigError(`context regions: ${service} is not offered in ${missing.join(', ')} (lib/availability.ts)`);
    }
  }
}

/**
 * The region sets of DynamoDB multi-region strong consistency: an MRSC table's replicas and its
 * witness must all be in one of them (the region fence's quorum table is one).
 */
export const MRSC_REGION_SETS: Record<string, readonly string[]> = {
  US: ['us-east-1', 'us-east-2', 'us-west-2'],
  EU: ['eu-west-1', 'eu-west-2', 'eu-west-3', 'eu-central-1'],
  AP: ['ap-northeast-1', 'ap-northeast-2', 'ap-northeast-3'],
};

/** The region set holding every one of `regions`, or undefined. */
export function mrscRegionSet(regions: readonly string[]): string | undefined {
  return Object.keys(MRSC_REGION_SETS).find((set) => regions.every((r) => MRSC_REGION_SETS[set].includes(r)));
}
