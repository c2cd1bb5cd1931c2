/**
 * The deployment's parameters, read from CDK context (`-c key=value` or cdk.json). Every key has
 * a default that synthesizes offline: a dummy account and two regions.
 */
import { Node } from 'constructs';

export type QueryModel = 'timestream' | 'influxdb';

export interface LuxflowConfig {
  /** AWS account of every stack. Default: the dummy 111111111111 (synth only). */
  readonly account: string;
  /** Regions that each run the whole pipeline; the first is the primary unless said otherwise. */
  readonly regions: readonly string[];
  /** Region whose stack owns the global table (replicas live in the others) and the pipeline. */
  readonly primaryRegion: string;
  /** Application name: the KCL lease table's name and the metrics' `App` dimension. */
  readonly appName: string;
  /** Kinesis: undefined = on-demand; a number = provisioned with that many shards. */
  readonly shards?: number;
  /** Upper bound of the worker count: the shard count (on demand: `onDemandShards`). */
  readonly maxWorkers: number;
  /** Workers started (bounded by maxWorkers). */
  readonly desiredWorkers: number;
  readonly queryModel: QueryModel;
  /** NAT gateways per region VPC (the workers' egress). */
  readonly natGateways: number;
  /** CodeStar (CodeConnections) connection to the repository, for the pipeline's source. */
  readonly connectionArn: string;
  /** `owner/name` of the repository the pipeline builds. */
  readonly repository: string;
  readonly branch: string;
  /** Whether the app also defines the CDK Pipelines stack. */
  readonly pipeline: boolean;
  /** Optional e-mail subscribed to the alarm topic. */
  readonly alarmEmail?: string;
}

export const DUMMY_ACCOUNT = '111111111111';
export const DEFAULT_REGIONS = ['us-east-1', 'eu-west-1'];
export const DUMMY_CONNECTION_ARN =
  'arn:aws:codeconnections:us-east-1:111111111111:connection/00000000-0000-0000-0000-000000000000';
/** An on-demand stream starts with 4 shards; the worker bound when no shard count is given. */
export const ON_DEMAND_SHARDS = 4;

/**
 * Names the worker knows through its LUXFLOW_* settings; the defaults equal the Settings
 * defaults in the Python app so that `luxflow` commands without settings find the same tables.
 */
export const NAMES = {
  stream: 'luxflow-telemetry',
  commandTable: 'luxflow-model',
  deadLetterTable: 'luxflow-dead-letters',
  stateTable: 'luxflow-state',
  timestreamDatabase: 'luxflow',
  timestreamTables: ['events', 'usage'],
  influxBucket: 'luxflow',
} as const;

type ContextReader = Pick<Node, 'tryGetContext'>;

function str(node: ContextReader, key: string): string | undefined {
  const value: unknown = node.tryGetContext(key);
  if (value === undefined || value === null || value === '') return undefined;
  return String(value);
}

function int(node: ContextReader, key: string, min: number): number | undefined {
  const text = str(node, key);
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!Number.isInteger(value) || value < min) {
    throw new Error(`context ${key}=${text}: expected an integer >= ${min}`);
  }
  return value;
}

export function readConfig(node: ContextReader): LuxflowConfig {
  const regions = (str(node, 'regions') ?? DEFAULT_REGIONS.join(','))
    .split(',')
    .map((r) => r.trim())
    .filter((r) => r.length > 0);
  if (regions.length === 0) throw new Error('context regions: at least one region');
  if (new Set(regions).size !== regions.length) throw new Error(`context regions: duplicates in ${regions}`);
  const primaryRegion = str(node, 'primaryRegion') ?? regions[0];
  if (!regions.includes(primaryRegion)) {
    throw new Error(`context primaryRegion=${primaryRegion} is not one of regions ${regions}`);
  }
  const account = str(node, 'account') ?? DUMMY_ACCOUNT;
  if (!/^\d{12}$/.test(account)) throw new Error(`context account=${account}: 12 digits`);

  const shardsText = str(node, 'shards') ?? 'on-demand';
  const shards = shardsText === 'on-demand' ? undefined : int(node, 'shards', 1);
  const maxWorkers = shards ?? int(node, 'onDemandShards', 1) ?? ON_DEMAND_SHARDS;
  const desiredWorkers = Math.min(int(node, 'workers', 1) ?? 2, maxWorkers);

  const queryModel = str(node, 'queryModel') ?? 'timestream';
  if (queryModel !== 'timestream' && queryModel !== 'influxdb') {
    throw new Error(`context queryModel=${queryModel}: timestream or influxdb`);
  }
  return {
    account,
    regions,
    primaryRegion,
    appName: str(node, 'appName') ?? 'luxflow-lighting',
    shards,
    maxWorkers,
    desiredWorkers,
    queryModel,
    natGateways: int(node, 'natGateways', 1) ?? 1,
    connectionArn: str(node, 'connectionArn') ?? DUMMY_CONNECTION_ARN,
    repository: str(node, 'repository') ?? 'example/luxflow',
    branch: str(node, 'branch') ?? 'main',
    pipeline: (str(node, 'pipeline') ?? 'true') !== 'false',
    alarmEmail: str(node, 'alarmEmail'),
  };
}
