/** Stack ids and the deployment order of the regions (the primary first). */
import { LuxflowConfig } from './config';

export function regionStackId(config: LuxflowConfig, region: string): string {
  return `Luxflow${config.names.stackInfix}-${region}`;
}

/** The stack of a region's archive replica bucket (deployed before every region stack). */
export function archiveStackId(config: LuxflowConfig, region: string): string {
  return `LuxflowArchive${config.names.stackInfix}-${region}`;
}

export function pipelineStackId(config: LuxflowConfig): string {
  return `LuxflowPipeline${config.names.stackInfix}`;
}

/** Ordered regions: the primary first. */
export function deployOrder(config: LuxflowConfig): string[] {
  return [config.primaryRegion, ...config.regions.filter((r) => r !== config.primaryRegion)];
}
