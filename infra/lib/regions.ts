/** Stack ids and the deployment order of the regions (the primary first). */
import { LuxflowConfig } from './config';

export function regionStackId(region: string): string {
  return `Luxflow-${region}`;
}

/** The stack of a region's archive replica bucket (deployed before every region stack). */
export function archiveStackId(region: string): string {
  return `LuxflowArchive-${region}`;
}

/** Ordered regions: the primary first. */
export function deployOrder(config: LuxflowConfig): string[] {
  return [config.primaryRegion, ...config.regions.filter((r) => r !== config.primaryRegion)];
}
