/**
 * Feature flags, set on the app in code (not only in cdk.json) so that jest tests and
 * `cdk synth` build exactly the same templates.
 */
export const FEATURE_FLAGS: Record<string, unknown> = {
  "@aws-cdk/core:enableDiffNoFail": true,
  "@aws-cdk/aws-iam:minimizePolicies": true,
  "@aws-cdk/core:checkSecretUsage": true,
  "@aws-cdk/core:target-partitions": [
    "aws",
    "aws-cn"
  ],
  "@aws-cdk/aws-ecs:arnFormatIncludesClusterName": true,
  "@aws-cdk/aws-ecs:disableExplicitDeploymentControllerForCircuitBreaker": true,
  "@aws-cdk/aws-kms:reduceCrossAccountRegionPolicyScope": true,
  "@aws-cdk/aws-ecs:removeDefaultDeploymentAlarm": true,
  "@aws-cdk/aws-ecs:enableImdsBlockingDeprecatedFeature": false,
  "@aws-cdk/aws-ecs:reduceEc2FargateCloudWatchPermissions": true,
  "@aws-cdk/pipelines:reduceAssetRoleTrustScope": true,
  "@aws-cdk/pipelines:reduceStageRoleTrustScope": true,
  "@aws-cdk/aws-codepipeline:defaultPipelineTypeToV2": true,
  "@aws-cdk/aws-codepipeline:crossAccountKeysDefaultValueToFalse": true,
  "@aws-cdk/core:explicitStackTags": true,
  "@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy": true,
  // Without it the archive bucket's replication role is named "CDKReplicationRole" in every
  // region stack; IAM names are global, so the second region's stack failed to create it.
  "@aws-cdk/aws-s3:setUniqueReplicationRoleName": true
};
