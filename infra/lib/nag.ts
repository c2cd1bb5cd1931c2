/**
 * Findings kept on purpose, each with its reason next to it, for the three template checkers:
 *
 * - cdk-nag 3 (`acknowledge`): `Validations.of(...).acknowledge`, no prefix matching;
 * - checkov (`skipCheckov`): the resource's `Metadata.checkov.skip` entries, `{id, comment}`;
 * - cfn-lint (`ignoreCfnLint`): the resource's `Metadata.cfn-lint.config.ignore_checks`, with
 *   the reasons beside them in `Metadata.luxflow-lint-reasons` (cfn-lint has no reason field).
 *
 * Everything else fails: cdk-nag at synthesis, checkov and cfn-lint in infra/ci.sh.
 */
import { CfnElement, CfnResource, Stack, Validations } from 'aws-cdk-lib';
import { IConstruct } from 'constructs';

export function acknowledge(scope: IConstruct, id: string, reason: string): void {
  Validations.of(scope).acknowledge({ id, reason });
}

/** How cdk-nag writes a reference to `construct`'s ARN inside a finding id: `<LogicalId.Arn>`. */
export function arnRef(construct: IConstruct): string {
  const element = (construct.node.defaultChild ?? construct) as CfnElement;
  const stack = Stack.of(element);
  return `<${stack.resolve(stack.getLogicalId(element))}.Arn>`;
}

function cfnResource(construct: IConstruct): CfnResource {
  const resource = construct instanceof CfnResource ? construct : construct.node.defaultChild;
  if (!(resource instanceof CfnResource)) throw new Error(`${construct.node.path}: no CloudFormation resource`);
  return resource;
}

/** A checkov check skipped on one resource, with the reason checkov prints beside it. */
export function skipCheckov(construct: IConstruct, id: string, reason: string): void {
  const resource = cfnResource(construct);
  const current = (resource.getMetadata('checkov') as { skip?: Array<{ id: string; comment: string }> }) ?? {};
  const skip = (current.skip ?? []).filter((s) => s.id !== id);
  resource.addMetadata('checkov', { skip: [...skip, { id, comment: reason }] });
}

/** A cfn-lint rule ignored on one resource; the reason is kept in the metadata too. */
export function ignoreCfnLint(construct: IConstruct, rule: string, reason: string): void {
  const resource = cfnResource(construct);
  const config = (resource.getMetadata('cfn-lint') as { config?: { ignore_checks?: string[] } }) ?? {};
  const checks = new Set(config.config?.ignore_checks ?? []);
  checks.add(rule);
  resource.addMetadata('cfn-lint', { config: { ignore_checks: [...checks].sort() } });
  const reasons = (resource.getMetadata('luxflow-lint-reasons') as Record<string, string>) ?? {};
  resource.addMetadata('luxflow-lint-reasons', { ...reasons, [rule]: reason });
}

/** Every CloudFormation resource of `type` under `scope` (e.g. the CDK-generated ones). */
export function resourcesOfType(scope: IConstruct, type: string): CfnResource[] {
  return scope.node
    .findAll()
    .filter((c): c is CfnResource => c instanceof CfnResource && c.cfnResourceType === type);
}

export const REASONS = {
  tableIndexes:
    'Resource wildcard from the CDK table grant: the indexes of this one table (`/index/*`), ' +
    'which the grant adds because the table has a global secondary index. Actions are listed ' +
    'one by one; there is no wildcard action.',
  taskRoleStar:
    'Two statements need Resource "*": timestream:DescribeEndpoints (endpoint discovery has no ' +
    'resource-level permission) and cloudwatch:PutMetricData (no resource-level permission; ' +
    'limited by a condition to the Luxflow and application namespaces).',
  executionRoleStar:
    'ecr:GetAuthorizationToken has no resource-level permission (CDK grant for pulling the ' +
    'worker image); the repository actions are scoped to the asset repository.',
  keyGrant:
    'Action wildcards of the CDK table grant on the region key that encrypts the regional ' +
    'tables (kms:ReEncrypt*, kms:GenerateDataKey*): that one key, no other.',
} as const;
