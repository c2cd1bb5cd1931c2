/**
 * cdk-nag 3 acknowledgments. Each finding is acknowledged individually (cdk-nag 3 has no
 * prefix matching) with the reason written next to it; everything else fails synthesis.
 */
import { CfnElement, Stack, Validations } from 'aws-cdk-lib';
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
} as const;
