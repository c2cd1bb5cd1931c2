/** Builds the whole app: one stack per region, the pipeline, and the cdk-nag gate. */
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { LuxflowConfig, readConfig } from './config';
import { FEATURE_FLAGS } from './flags';
import { LuxflowArchiveStack } from './archive';
import { LuxflowPipelineStack } from './pipeline-stack';
import { LuxflowRegionStack } from './region-stack';
import { archiveStackId, deployOrder, pipelineStackId, regionStackId } from './regions';

export interface LuxflowApp {
  readonly app: App;
  readonly config: LuxflowConfig;
  readonly regionStacks: Record<string, LuxflowRegionStack>;
  /** Each region's archive replica bucket; every region stack deploys after all of them. */
  readonly archiveStacks: Record<string, LuxflowArchiveStack>;
  readonly pipelineStack?: LuxflowPipelineStack;
}

export function buildApp(app: App = new App()): LuxflowApp {
  for (const [flag, value] of Object.entries(FEATURE_FLAGS)) {
    if (app.node.tryGetContext(flag) === undefined) app.node.setContext(flag, value);
  }
  const config = readConfig(app.node);
  // The gate: every AwsSolutions finding either fixed or acknowledged with a reason.
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));

  const archiveStacks: Record<string, LuxflowArchiveStack> = {};
  for (const region of deployOrder(config)) {
    archiveStacks[region] = new LuxflowArchiveStack(app, archiveStackId(config, region), {
      env: { account: config.account, region },
      description: `luxflow ${config.appName}: the archive replica bucket in ${region}`,
      config,
    });
  }
  const regionStacks: Record<string, LuxflowRegionStack> = {};
  let primary: LuxflowRegionStack | undefined;
  for (const region of deployOrder(config)) {
    const stack = new LuxflowRegionStack(app, regionStackId(config, region), {
      env: { account: config.account, region },
      description: `luxflow ${config.appName} in ${region}` + (region === config.primaryRegion ? ' (primary)' : ''),
      config,
    });
    // Every region's archive replicates to a replica bucket that must exist first.
    for (const archive of Object.values(archiveStacks)) stack.addStackDependency(archive);
    // The primary stack creates the global table whose replica this stack's workers use.
    if (primary) stack.addStackDependency(primary);
    else primary = stack;
    regionStacks[region] = stack;
  }
  const pipelineStack = config.pipeline
    ? new LuxflowPipelineStack(app, pipelineStackId(config), {
        env: { account: config.account, region: config.pipelineRegion },
        config,
      })
    : undefined;
  return { app, config, regionStacks, archiveStacks, pipelineStack };
}
