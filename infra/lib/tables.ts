/**
 * The DynamoDB tables: the command model's global table (owned by the primary region's stack,
 * a replica elsewhere) and the regional KCL, state and dead-letter tables.
 *
 * Removal: RETAIN_ON_UPDATE_OR_DELETE (CloudFormation's RetainExceptOnCreate) on every table:
 * kept when the stack is deleted or the resource replaced, but deleted when the create that
 * made it rolls back, so a failed first deploy leaves nothing behind that the next attempt
 * would collide with. Only the names that must be fixed are: the global table (one name in
 * every region) and the KCL tables (the KCL derives them from the application name).
 */
import { RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as kms from 'aws-cdk-lib/aws-kms';
import { LuxflowConfig } from './config';

import * as w from './worker';

/** Stores that hold data: kept on delete and replacement, removed when their create rolls back. */
export const STATEFUL = RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE;

export interface RegionTables {
  /** Whether this stack owns the command model's global table (the primary region's stack). */
  readonly ownsGlobalTable: boolean;
  /** The command model and the registry (same table); the replica in secondary regions. */
  readonly command: dynamodb.ITableV2;
  /** The KCL lease table, named after the application, with its lease-owner index. */
  readonly lease: dynamodb.Table;
  readonly kclCoordinatorState: dynamodb.Table;
  readonly kclWorkerMetricStats: dynamodb.Table;
  readonly state: dynamodb.Table;
  readonly deadLetter: dynamodb.Table;
  /** The region fence's quorum table (MRSC), when `fenceWitnessRegion` is set. */
  readonly fence?: dynamodb.ITableV2;
}

export function addTables(stack: Stack, config: LuxflowConfig, key: kms.IKey): RegionTables {
  const region = stack.region;
  const ownsGlobalTable = region === config.primaryRegion;

  let command: dynamodb.ITableV2;
  if (ownsGlobalTable) {
    const table = new dynamodb.TableV2(stack, 'CommandTable', {
      tableName: config.names.commandTable,
      partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
      sortKey: { name: 'sk', type: dynamodb.AttributeType.STRING },
      billing: dynamodb.Billing.onDemand(),
      globalSecondaryIndexes: [
        {
          indexName: 'gsi1',
          partitionKey: { name: 'gsi1pk', type: dynamodb.AttributeType.STRING },
          sortKey: { name: 'gsi1sk', type: dynamodb.AttributeType.STRING },
          projectionType: dynamodb.ProjectionType.ALL,
        },
      ],
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      deletionProtection: config.deletionProtection,
      removalPolicy: STATEFUL,
      replicas: config.regions.filter((r) => r !== region).map((r) => ({ region: r })),
    });
    // The AWS owned key, not the region key: a customer managed key per replica would have to
    // exist in every other region before this stack (which creates the replicas) deploys.
    command = table;
  } else {
    // The replica in this region, created by the primary stack (deployed first).
    command = dynamodb.TableV2.fromTableAttributes(stack, 'CommandTable', {
      tableName: config.names.commandTable,
      globalIndexes: ['gsi1'],
    });
  }

  const regional = (
    id: string,
    tableName: string | undefined,
    partitionKey: string,
    sortKey?: [string, dynamodb.AttributeType],
    extra: Partial<dynamodb.TableProps> = {},
  ) =>
    new dynamodb.Table(stack, id, {
      tableName,
      partitionKey: { name: partitionKey, type: dynamodb.AttributeType.STRING },
      sortKey: sortKey ? { name: sortKey[0], type: sortKey[1] } : undefined,
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      encryption: dynamodb.TableEncryption.CUSTOMER_MANAGED,
      encryptionKey: key,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      deletionProtection: config.deletionProtection,
      removalPolicy: STATEFUL,
      ...extra,
    });
  // The KCL lease table (its name is the application name) and KCL 3's two tables. Created
  // here so that the worker needs no CreateTable/UpdateTable permission.
  const lease = regional('LeaseTable', config.appName, 'leaseKey');
  lease.addGlobalSecondaryIndex({
    indexName: w.KCL_LEASE_OWNER_INDEX,
    partitionKey: { name: 'leaseOwner', type: dynamodb.AttributeType.STRING },
    sortKey: { name: 'leaseKey', type: dynamodb.AttributeType.STRING },
    projectionType: dynamodb.ProjectionType.KEYS_ONLY,
  });
  const kclCoordinatorState = regional('KclCoordinatorState', config.appName + w.KCL_COORDINATOR_SUFFIX, 'key');
  const kclWorkerMetricStats = regional('KclWorkerMetricStats', config.appName + w.KCL_WORKER_METRICS_SUFFIX, 'wid');
  // Generated names: the worker reads them from LUXFLOW_STATE_TABLE / LUXFLOW_DEAD_LETTER_TABLE.
  const state = regional('StateTable', undefined, 'shard_id', ['item', dynamodb.AttributeType.STRING]);
  const deadLetter = regional('DeadLetterTable', undefined, 'pk', ['sk', dynamodb.AttributeType.NUMBER], {
    timeToLiveAttribute: w.DEAD_LETTER_TTL_ATTRIBUTE,
  });
  const fence = addFenceTable(stack, config, ownsGlobalTable);
  return { ownsGlobalTable, command, lease, kclCoordinatorState, kclWorkerMetricStats, state, deadLetter, fence };
}

/**
 * The quorum table of the region fence: a global table in multi-region strong consistency
 * (two replicas and a witness), so a region renews its lease only while it reaches a majority.
 * A cut-off region's renewals fail and its workers stop writing the command table before the
 * survivor may take its sites over (the worker's `lighting.fence`).
 */
function addFenceTable(stack: Stack, config: LuxflowConfig, owner: boolean): dynamodb.ITableV2 | undefined {
  if (config.fenceWitnessRegion === undefined) return undefined;
  if (!owner) {
    return dynamodb.TableV2.fromTableAttributes(stack, 'FenceTable', { tableName: config.names.fenceTable });
  }
  return new dynamodb.TableV2(stack, 'FenceTable', {
    tableName: config.names.fenceTable,
    partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
    sortKey: { name: 'sk', type: dynamodb.AttributeType.STRING },
    billing: dynamodb.Billing.onDemand(),
    multiRegionConsistency: dynamodb.MultiRegionConsistency.STRONG,
    witnessRegion: config.fenceWitnessRegion,
    pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
    deletionProtection: config.deletionProtection,
    removalPolicy: STATEFUL,
    replicas: config.regions.filter((r) => r !== stack.region).map((r) => ({ region: r })),
  });
}
