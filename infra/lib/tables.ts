/**
 * The region's DynamoDB tables: the command model (a global table owned by the primary
 * region's stack, a replica everywhere else) and the regional tables, never replicated because
 * shard ids repeat across the regional streams: the KCL's three, the state table and the
 * dead-letter table.
 *
 * Created directly in the stack's scope, with the ids the stack always had: a changed logical
 * id would make CloudFormation replace a retained, deletion-protected table.
 */
import { RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import { LuxflowConfig, NAMES } from './config';
import * as w from './worker';

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
}

export function addTables(stack: Stack, config: LuxflowConfig): RegionTables {
  const region = stack.region;
  const ownsGlobalTable = region === config.primaryRegion;

  // The command model and the registry (same table): a global table owned by the primary
  // region's stack, one replica per configured region.
  let command: dynamodb.ITableV2;
  if (ownsGlobalTable) {
    command = new dynamodb.TableV2(stack, 'CommandTable', {
      tableName: NAMES.commandTable,
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
      deletionProtection: true,
      removalPolicy: RemovalPolicy.RETAIN,
      replicas: config.regions.filter((r) => r !== region).map((r) => ({ region: r })),
    });
  } else {
    // The replica in this region, created by the primary stack (deployed first).
    command = dynamodb.TableV2.fromTableAttributes(stack, 'CommandTable', {
      tableName: NAMES.commandTable,
      globalIndexes: ['gsi1'],
    });
  }

  const regional = (id: string, tableName: string, partitionKey: string, sortKey?: [string, dynamodb.AttributeType], extra: Partial<dynamodb.TableProps> = {}) =>
    new dynamodb.Table(stack, id, {
      tableName,
      partitionKey: { name: partitionKey, type: dynamodb.AttributeType.STRING },
      sortKey: sortKey ? { name: sortKey[0], type: sortKey[1] } : undefined,
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      deletionProtection: true,
      removalPolicy: RemovalPolicy.RETAIN,
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
  const state = regional('StateTable', NAMES.stateTable, 'shard_id', ['item', dynamodb.AttributeType.STRING]);
  const deadLetter = regional('DeadLetterTable', NAMES.deadLetterTable, 'pk', ['sk', dynamodb.AttributeType.NUMBER], {
    timeToLiveAttribute: w.DEAD_LETTER_TTL_ATTRIBUTE,
  });
  return { ownsGlobalTable, command, lease, kclCoordinatorState, kclWorkerMetricStats, state, deadLetter };
}
