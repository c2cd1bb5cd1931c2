/**
 * The region's network: a two-AZ VPC, public subnets (the read API's load balancer only) and
 * private subnets for the workers, the API tasks and the InfluxDB instance, with gateway
 * endpoints for DynamoDB and S3 (free) and a flow log of rejected traffic.
 *
 * Egress, `egress=endpoints` (default): no NAT gateway at all. Interface endpoints in both zones
 * for what the tasks call: Kinesis (the hot path), ECR (api + dkr; the layers come from S3
 * through its gateway endpoint), CloudWatch Logs and Secrets Manager. Losing a zone loses that
 * zone's endpoint ENIs only; there is no per-GB NAT toll on the Kinesis reads. Cost (us-east-1):
 * 5 endpoints x 2 zones x $0.01/h = $73.00/month, plus $0.01 per GB processed.
 * `egress=nat`: one NAT gateway per zone (2 x $0.045/h = $65.70/month plus $0.045 per GB
 * processed), for LiveAnalytics, whose cell endpoints no interface endpoint covers.
 */
import { RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import { LuxflowConfig } from './config';
import { acknowledge } from './nag';

export const AZS = 2;

/** The interface endpoints of `egress=endpoints`, by construct id. */
export const INTERFACE_ENDPOINTS: Record<string, ec2.InterfaceVpcEndpointAwsService> = {
  Kinesis: ec2.InterfaceVpcEndpointAwsService.KINESIS_STREAMS,
  EcrApi: ec2.InterfaceVpcEndpointAwsService.ECR,
  EcrDocker: ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER,
  Logs: ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS,
  SecretsManager: ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER,
};

export interface RegionNetwork {
  readonly vpc: ec2.Vpc;
  /** Where the tasks and the InfluxDB instance run. */
  readonly privateSubnets: ec2.SubnetSelection;
}

export function addNetwork(stack: Stack, config: LuxflowConfig, key: kms.IKey): RegionNetwork {
  const privateType = config.egress === 'nat' ? ec2.SubnetType.PRIVATE_WITH_EGRESS : ec2.SubnetType.PRIVATE_ISOLATED;
  // Two AZs. Their names come from a context lookup: cdk.context.json (committed) holds
  // them for the dummy account, so `cdk synth` works offline.
  const vpc = new ec2.Vpc(stack, 'Vpc', {
    maxAzs: AZS,
    natGateways: config.egress === 'nat' ? AZS : 0,
    subnetConfiguration: [
      { name: 'public', subnetType: ec2.SubnetType.PUBLIC, cidrMask: 24, mapPublicIpOnLaunch: false },
      { name: 'workers', subnetType: privateType, cidrMask: 22 },
    ],
    restrictDefaultSecurityGroup: false,
  });
  const privateSubnets = { subnetType: privateType };
  vpc.addGatewayEndpoint('DynamoDb', { service: ec2.GatewayVpcEndpointAwsService.DYNAMODB, subnets: [privateSubnets] });
  vpc.addGatewayEndpoint('S3', { service: ec2.GatewayVpcEndpointAwsService.S3, subnets: [privateSubnets] });
  if (config.egress === 'endpoints') {
    for (const [id, service] of Object.entries(INTERFACE_ENDPOINTS)) {
      const endpoint = vpc.addInterfaceEndpoint(id, { service, subnets: privateSubnets, privateDnsEnabled: true });
      acknowledge(
        endpoint,
        'AwsSolutions-EC23',
        'The endpoint accepts HTTPS from the VPC\'s own CIDR (a token cdk-nag cannot read): its ' +
          'callers are the tasks in the private subnets; nothing outside the VPC reaches it.',
      );
    }
  }
  vpc.addFlowLog('FlowLog', {
    destination: ec2.FlowLogDestination.toCloudWatchLogs(
      new logs.LogGroup(stack, 'FlowLogs', {
        retention: logs.RetentionDays.ONE_MONTH,
        encryptionKey: key,
        removalPolicy: RemovalPolicy.DESTROY,
      }),
    ),
    trafficType: ec2.FlowLogTrafficType.REJECT,
  });
  return { vpc, privateSubnets };
}
