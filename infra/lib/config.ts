/**
 * The deployment's parameters, read from CDK context (`-c key=value` or cdk.json). Every key has
 * a default that synthesizes offline: a dummy account, two regions, dummy ARNs.
 */
import { readFileSync } from 'fs';
import { RegionInfo } from 'aws-cdk-lib/region-info';
import { Node } from 'constructs';
import { checkRegionsOffer, mrscRegionSet } from './availability';
import { ConfigError } from './errors';

export type QueryModel = 'timestream' | 'influxdb';
/** How the private subnets reach AWS APIs: VPC endpoints only, or one NAT gateway per zone. */
export type Egress = 'endpoints' | 'nat';

export interface LuxflowConfig {
  /** AWS account of every stack. Default: the dummy 111111111111 (synth only). */
  readonly account: string;
  /** Regions that each run the whole pipeline; the first is the primary unless said otherwise. */
  readonly regions: readonly string[];
  /** Region whose stack owns the global table (replicas live in the others). */
  readonly primaryRegion: string;
  /** Region of the pipeline stack (default: the primary region). */
  readonly pipelineRegion: string;
  /** Application name: the KCL lease table's name and the metrics' `App` dimension. */
  readonly appName: string;
  /** Kinesis: undefined = on-demand; a number = provisioned with that many shards. */
  readonly shards?: number;
  /** Upper bound of the worker count: the shard count (on demand: `onDemandShards`). */
  readonly maxWorkers: number;
  /** Workers started (bounded by maxWorkers). */
  readonly desiredWorkers: number;
  /** Stream retention in hours (24 to 8760). */
  readonly retentionHours: number;
  readonly queryModel: QueryModel;
  readonly egress: Egress;
  /** DynamoDB deletion protection on the tables (see the README's first deploy). */
  readonly deletionProtection: boolean;
  /** ACM certificate ARN of the read API's HTTPS listener; `{region}` stands for each region. */
  readonly apiCertificateArn: string;
  /** CIDR allowed to reach the read API's load balancer on 443. */
  readonly apiAllowedCidr: string;
  /** Read API tasks per region. */
  readonly apiTasks: number;
  /** CodeStar (CodeConnections) connection to the repository, for the pipeline's source. */
  readonly connectionArn: string;
  /** `owner/name` of the repository the pipeline builds. */
  readonly repository: string;
  readonly branch: string;
  /** Whether the app also defines the CDK Pipelines stack. */
  readonly pipeline: boolean;
  /** Minutes a freshly deployed region must run with no alarm before the next one deploys. */
  readonly bakeMinutes: number;
  /** Optional e-mail subscribed to the alarm topic. */
  readonly alarmEmail?: string;
  /** The devices' MQTT endpoint name, served by an IoT domain configuration in every region. */
  readonly deviceDomain: string;
  /** Route 53 hosted zone of `deviceDomain` (its failover records). */
  readonly deviceHostedZoneId: string;
  /** ACM certificate of `deviceDomain`; `{region}` stands for each region. */
  readonly deviceCertificateArn: string;
  /** The account's IoT data endpoint prefix (`aws iot describe-endpoint --endpoint-type iot:Data-ATS`). */
  readonly iotEndpointPrefix: string;
  /** File of the CA that signs device certificates, registered in every region (optional). */
  readonly deviceCaCertificateFile?: string;
  /** That file's PEM. */
  readonly deviceCaCertificatePem?: string;
  /**
   * The witness region of the region fence's quorum table (an MRSC global table: the two
   * regions plus this witness). Unset: no fence. MRSC needs exactly two regions and the
   * witness in one region set (US, EU or AP).
   */
  readonly fenceWitnessRegion?: string;
  /** The names this deployment must own alone in its account (deploymentNames). */
  readonly names: DeploymentNames;
}

export const DEFAULT_APP_NAME = 'luxflow-lighting';

/** Stack ids and the names of the account-wide stores: one set per deployment. */
export interface DeploymentNames {
  /** In every stack id: `Luxflow<infix>-<region>`, `LuxflowArchive<infix>-<region>`, `LuxflowPipeline<infix>`. */
  readonly stackInfix: string;
  readonly commandTable: string;
  readonly fenceTable: string;
  readonly timestreamDatabase: string;
}

/**
 * A second deployment in the same account (a staging `appName` beside production) must neither
 * update the first one's stacks (same stack names) nor collide with its fixed table names. The
 * default application keeps the names its documents use; any other appName carries itself in
 * every stack id and fixed name.
 */
export function deploymentNames(appName: string): DeploymentNames {
  if (appName === DEFAULT_APP_NAME) {
    return {
      stackInfix: '',
      commandTable: NAMES.commandTable,
      fenceTable: NAMES.fenceTable,
      timestreamDatabase: NAMES.timestreamDatabase,
    };
  }
  return {
    stackInfix: `-${appName}`,
    commandTable: `${appName}-model`,
    fenceTable: `${appName}-fence`,
    timestreamDatabase: appName,
  };
}

export const DUMMY_ACCOUNT = '111111111111';
export const DEFAULT_REGIONS = ['us-east-1', 'eu-west-1'];
export const DUMMY_CONNECTION_ARN =
  'arn:aws:codeconnections:us-east-1:111111111111:connection/00000000-0000-0000-0000-000000000000';
/** `{region}` is replaced by each stack's region; a real deployment passes its own ARN(s). */
export const DUMMY_CERTIFICATE_ARN =
  'arn:aws:acm:{region}:111111111111:certificate/00000000-0000-0000-0000-000000000000';
export const DUMMY_HOSTED_ZONE_ID = 'Z0000000000000000000';
export const DUMMY_IOT_ENDPOINT_PREFIX = 'a0000000000000';
export const DUMMY_DEVICE_DOMAIN = 'iot.example.com';
/** An on-demand stream starts with 4 shards; the worker bound when no shard count is given. */
export const ON_DEMAND_SHARDS = 4;
/**
 * Stream retention, 48 h: an incident found the next morning (a bad rule, a bug fixed overnight)
 * is still replayable from the stream itself; the raw-record archive in S3 keeps everything
 * older. Cost of the 24 h beyond the included day (us-east-1 list prices): provisioned, $0.02 per
 * shard-hour = $14.60 per shard-month (4 shards: $58.40/month); on demand, $0.10 per GB-month of
 * data held past 24 h (100 sites x 100 MB/day = 10 GB held: $1/month).
 */
export const DEFAULT_RETENTION_HOURS = 48;

/**
 * Names the worker knows through its LUXFLOW_* settings; the defaults equal the Settings
 * defaults in the Python app. Only the ones that must be fixed are physical names: the command
 * table (one name in every region, a global table) and the KCL tables (named after the
 * application by the KCL). The stream, the state and dead-letter tables get generated names
 * (passed to the worker in its environment), so that a retained copy never blocks a redeploy.
 */
export const NAMES = {
  commandTable: 'luxflow-model',
  fenceTable: 'luxflow-fence',
  timestreamDatabase: 'luxflow',
  timestreamTables: ['events', 'usage'],
  influxBucket: 'luxflow',
  influxOrganization: 'luxflow',
} as const;

type ContextReader = Pick<Node, 'tryGetContext'>;

function str(node: ContextReader, key: string): string | undefined {
  const value: unknown = node.tryGetContext(key);
  if (value === undefined || value === null || value === '') return undefined;
  return String(value);
}

/**
 * An AWS region name (`us-east-1`, `us-gov-west-1`, `cn-north-1`): a typo or a list joined with
 * spaces would otherwise become a stack id and fail far from its cause.
 */
function regionName(key: string, region: string): string {
  if (!/^[a-z]{2,4}(-[a-z]+)+-\d{1,2}$/.test(region)) {
    throw new ConfigError(`context ${key}: "${region}" is not a region name (e.g. us-east-1; a list is comma-separated)`);
  }
  return region;
}

function regionOrUndefined(key: string, region: string | undefined): string | undefined {
  return region === undefined ? undefined : regionName(key, region);
}

const CONNECTION_ARN = /^arn:aws[a-z-]*:(codeconnections|codestar-connections):[a-z0-9-]+:\d{12}:connection\/\S+$/;
const IPV4_CIDR = /^((25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(25[0-5]|2[0-4]\d|1?\d?\d)\/(3[0-2]|[12]?\d)$/;

function matching(node: ContextReader, key: string, pattern: RegExp, what: string): string | undefined {
  const text = str(node, key);
  if (text !== undefined && !pattern.test(text)) throw new ConfigError(`context ${key}=${text}: not ${what}`);
  return text;
}

function int(node: ContextReader, key: string, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
  const text = str(node, key);
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(`context ${key}=${text}: expected an integer from ${min} to ${max}`);
  }
  return value;
}

function bool(node: ContextReader, key: string, fallback: boolean): boolean {
  const text = str(node, key);
  if (text === undefined) return fallback;
  if (text !== 'true' && text !== 'false') throw new ConfigError(`context ${key}=${text}: true or false`);
  return text === 'true';
}

function oneOf<T extends string>(node: ContextReader, key: string, allowed: readonly T[], fallback: T): T {
  const text = str(node, key) ?? fallback;
  if (!(allowed as readonly string[]).includes(text)) {
    throw new ConfigError(`context ${key}=${text}: one of ${allowed.join(', ')}`);
  }
  return text as T;
}

export function readConfig(node: ContextReader): LuxflowConfig {
  const regions = (str(node, 'regions') ?? DEFAULT_REGIONS.join(','))
    .split(',')
    .map((r) => r.trim())
    .filter((r) => r.length > 0);
  if (regions.length === 0) throw new ConfigError('context regions: at least one region');
  for (const region of regions) regionName('regions', region);
  if (new Set(regions).size !== regions.length) throw new ConfigError(`context regions: duplicates in ${regions}`);
  const primaryRegion = regionName('primaryRegion', str(node, 'primaryRegion') ?? regions[0]);
  if (!regions.includes(primaryRegion)) {
    throw new ConfigError(`context primaryRegion=${primaryRegion} is not one of regions ${regions}`);
  }
  const account = str(node, 'account') ?? DUMMY_ACCOUNT;
  if (!/^\d{12}$/.test(account)) throw new ConfigError(`context account=${account}: 12 digits`);

  const shardsText = str(node, 'shards') ?? 'on-demand';
  const shards = shardsText === 'on-demand' ? undefined : int(node, 'shards', 1);
  const maxWorkers = shards ?? int(node, 'onDemandShards', 1) ?? ON_DEMAND_SHARDS;
  const desiredWorkers = Math.min(int(node, 'workers', 1) ?? 2, maxWorkers);

  // Timestream for LiveAnalytics is closed to new customers since 2025-06-20: InfluxDB is the
  // default, LiveAnalytics stays for accounts that already have it.
  const queryModel = oneOf<QueryModel>(node, 'queryModel', ['influxdb', 'timestream'], 'influxdb');
  // LiveAnalytics hands out cell endpoints through endpoint discovery, which no interface
  // endpoint covers: that model needs NAT.
  const egress = oneOf<Egress>(node, 'egress', ['endpoints', 'nat'], queryModel === 'timestream' ? 'nat' : 'endpoints');
  if (queryModel === 'timestream' && egress === 'endpoints') {
    throw new ConfigError('context egress=endpoints with queryModel=timestream: LiveAnalytics needs egress=nat');
  }
  checkRegionsOffer(regions, queryModel);
  // It names tables, the replica bucket, rules and alarms: letters, digits and hyphens fit all.
  const appName =
    matching(node, 'appName', /^[a-z0-9][a-z0-9-]{1,38}[a-z0-9]$/, 'lower-case letters, digits and hyphens (3-40)') ??
    DEFAULT_APP_NAME;
  const pipeline = bool(node, 'pipeline', true);
  requireRealValues(node, account, pipeline);
  return {
    account,
    regions,
    primaryRegion,
    pipelineRegion: regionName('pipelineRegion', str(node, 'pipelineRegion') ?? primaryRegion),
    appName,
    shards,
    maxWorkers,
    desiredWorkers,
    retentionHours: int(node, 'retentionHours', 24, 8760) ?? DEFAULT_RETENTION_HOURS,
    queryModel,
    egress,
    deletionProtection: bool(node, 'deletionProtection', true),
    apiCertificateArn: certificatePattern(node, 'apiCertificateArn', account, regions),
    apiAllowedCidr: matching(node, 'apiAllowedCidr', IPV4_CIDR, 'an IPv4 CIDR (a.b.c.d/n)') ?? '0.0.0.0/0',
    apiTasks: int(node, 'apiTasks', 1, 10) ?? 2,
    connectionArn: matching(node, 'connectionArn', CONNECTION_ARN, 'a CodeConnections connection ARN') ?? DUMMY_CONNECTION_ARN,
    repository: str(node, 'repository') ?? 'example/luxflow',
    branch: str(node, 'branch') ?? 'main',
    pipeline,
    bakeMinutes: int(node, 'bakeMinutes', 0, 480) ?? 30,
    alarmEmail: matching(node, 'alarmEmail', /^[^@\s]+@[^@\s]+\.[^@\s]+$/, 'an e-mail address'),
    deviceDomain: matching(node, 'deviceDomain', /^([a-z0-9]([a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,}$/, 'a domain name (iot.example.net)') ?? DUMMY_DEVICE_DOMAIN,
    deviceHostedZoneId: matching(node, 'deviceHostedZoneId', /^Z[A-Z0-9]{1,31}$/, 'a Route 53 hosted zone id (Z...)') ?? DUMMY_HOSTED_ZONE_ID,
    deviceCertificateArn: certificatePattern(node, 'deviceCertificateArn', account, regions),
    // The part before -ats.iot.<region>...: `aws iot describe-endpoint --endpoint-type iot:Data-ATS`.
    iotEndpointPrefix:
      matching(node, 'iotEndpointPrefix', /^[a-z0-9]{6,32}$/, 'the endpoint prefix (the part before -ats.iot.)') ?? DUMMY_IOT_ENDPOINT_PREFIX,
    deviceCaCertificateFile: str(node, 'deviceCaCertificateFile'),
    deviceCaCertificatePem: caPem(str(node, 'deviceCaCertificateFile')),
    names: deploymentNames(appName),
    fenceWitnessRegion: fenceWitness(regionOrUndefined('fenceWitnessRegion', str(node, 'fenceWitnessRegion')), regions),
  };
}

/**
 * The keys whose defaults are placeholders: they synthesize offline, but CloudFormation refuses
 * them (a certificate, hosted zone, endpoint or connection that exists in no account) only after
 * the stack has created its slow resources, and then rolls everything back. With a real account
 * each must be given.
 */
const PLACEHOLDERS = ['apiCertificateArn', 'deviceDomain', 'deviceHostedZoneId', 'deviceCertificateArn', 'iotEndpointPrefix'];
const PIPELINE_PLACEHOLDERS = ['connectionArn', 'repository'];

function requireRealValues(node: ContextReader, account: string, pipeline: boolean): void {
  if (account === DUMMY_ACCOUNT) return;
  const keys = [...PLACEHOLDERS, ...(pipeline ? PIPELINE_PLACEHOLDERS : [])];
  const missing = keys.filter((key) => str(node, key) === undefined);
  if (missing.length > 0) {
    throw new ConfigError(
      `context account=${account}: also give ${missing.map((k) => `-c ${k}=...`).join(' ')} ` +
        '(their defaults are placeholders that only synthesize)',
    );
  }
}

/** An ACM certificate ARN (`{region}` allowed for the region), of the deployment's account. */
function certificatePattern(node: ContextReader, key: string, account: string, regions: readonly string[]): string {
  const arn = str(node, key);
  if (arn === undefined) return DUMMY_CERTIFICATE_ARN;
  const match = /^arn:aws[a-z-]*:acm:(\{region\}|[a-z0-9-]+):(\d{12}):certificate\/\S+$/.exec(arn);
  if (!match) throw new ConfigError(`context ${key}=${arn}: not an ACM certificate ARN (arn:aws:acm:{region}:ACCOUNT:certificate/ID)`);
  if (match[2] !== account) {
    throw new ConfigError(`context ${key}=${arn}: a certificate of account ${match[2]}, not ${account} (ACM certificates are not shared)`);
  }
  samePartition(key, arn, regions);
  // ACM certificates are regional: a listener or IoT domain can only use one of its own region.
  const elsewhere = match[1] === '{region}' ? [] : regions.filter((r) => r !== match[1]);
  if (elsewhere.length > 0) {
    throw new ConfigError(`context ${key}=${arn}: a certificate of ${match[1]} only, not ${elsewhere.join(', ')}: use {region} for one per region`);
  }
  return arn;
}

/** A given ARN pattern must be in the partition of every region it is used in (aws, aws-cn, ...). */
function samePartition(key: string, arn: string, regions: readonly string[]): void {
  for (const region of regions) {
    const partition = RegionInfo.get(region).partition ?? 'aws';
    if (!arn.startsWith(`arn:${partition}:`)) {
      throw new ConfigError(`context ${key}=${arn}: ${region} is in partition ${partition} (arn:${partition}:...)`);
    }
  }
}

function fenceWitness(witness: string | undefined, regions: readonly string[]): string | undefined {
  if (witness === undefined) return undefined;
  if (regions.length !== 2) {
    throw new ConfigError(`context fenceWitnessRegion: the fence's MRSC table needs exactly two regions, not ${regions.length}`);
  }
  if (regions.includes(witness)) {
    throw new ConfigError(`context fenceWitnessRegion=${witness} must differ from the regions ${regions}`);
  }
  if (mrscRegionSet([...regions, witness]) === undefined) {
    throw new ConfigError(
      `context fenceWitnessRegion=${witness}: regions ${regions} and the witness must be in one MRSC region set ` +
        '(US: us-east-1, us-east-2, us-west-2; EU: eu-west-1, eu-west-2, eu-west-3, eu-central-1; ' +
        'AP: ap-northeast-1, ap-northeast-2, ap-northeast-3)',
    );
  }
  return witness;
}

function caPem(file: string | undefined): string | undefined {
  if (file === undefined) return undefined;
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError(`context deviceCaCertificateFile=${file}: cannot read it (${(error as NodeJS.ErrnoException).code ?? error})`);
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new ConfigError(`context deviceCaCertificateFile=${file}: not a PEM certificate`);
  return pem;
}

/** A certificate ARN pattern in `region` (ACM certificates are regional). */
export function certificateArn(config: LuxflowConfig, region: string, pattern = config.apiCertificateArn): string {
  return pattern.split('{region}').join(region);
}
