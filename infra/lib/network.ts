/**
 * The region's network: a two-AZ VPC with public subnets and the workers' private subnets
 * (egress through NAT), a DynamoDB gateway endpoint, and a flow log of rejected traffic.
 *
 * Created directly in the stack's scope, with the ids the stack always had (`Vpc`, `FlowLogs`),
 * so that the logical ids do not change.
 */
import { RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as logs from 'aws-cdk-lib/aws-logs';
import { LuxflowConfig } from './config';

export function addNetwork(stack: Stack, config: LuxflowConfig): ec2.Vpc {
  // Two AZs. Their names come from a context lookup: cdk.context.json (committed) holds
  // them for the dummy account, so `cdk synth` works offline.
  const vpc = new ec2.Vpc(stack, 'Vpc', {
    maxAzs: 2,
    natGateways: config.natGateways,
    subnetConfiguration: [
      { name: 'public', subnetType: ec2.SubnetType.PUBLIC, cidrMask: 24 },
      { name: 'workers', subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS, cidrMask: 22 },
    ],
    restrictDefaultSecurityGroup: false,
  });
  vpc.addGatewayEndpoint('DynamoDb', { service: ec2.GatewayVpcEndpointAwsService.DYNAMODB });
  vpc.addFlowLog('FlowLog', {
    destination: ec2.FlowLogDestination.toCloudWatchLogs(
      new logs.LogGroup(stack, 'FlowLogs', { retention: logs.RetentionDays.ONE_MONTH, removalPolicy: RemovalPolicy.DESTROY }),
    ),
    trafficType: ec2.FlowLogTrafficType.REJECT,
  });
  return vpc;
}
