import * as fs from 'fs';
import * as path from 'path';
import { ARCHIVE_FORMAT_CODE } from '../lib/archive';
import { Synthesized, makeApp } from './helpers';

const built = makeApp({ pipeline: 'false' });
const synth = new Synthesized(built);
const region = built.config.regions[0];

describe('the archive keeps what a replay needs', () => {
  const template = synth.region(region);
  const [[, delivery]] = Object.entries(template.findResources('AWS::KinesisFirehose::DeliveryStream'));
  const s3 = delivery.Properties.ExtendedS3DestinationConfiguration;
  const functions = Object.entries(template.findResources('AWS::Lambda::Function'));
  const [formatId, format] = functions.find(([id]) => /^ArchiveFormat[0-9A-F]{8}$/.test(id))!;

  test('Firehose runs every record through the archive-format Lambda, and nothing else', () => {
    expect(s3.ProcessingConfiguration.Enabled).toBe(true);
    expect(s3.ProcessingConfiguration.Processors).toHaveLength(1);
    const [processor] = s3.ProcessingConfiguration.Processors;
    expect(processor.Type).toBe('Lambda');
    const parameters = Object.fromEntries(
      processor.Parameters.map((p: { ParameterName: string; ParameterValue: unknown }) => [p.ParameterName, p.ParameterValue]),
    );
    expect(JSON.stringify(parameters.LambdaArn)).toContain(formatId);
    expect(parameters).toMatchObject({ BufferIntervalInSeconds: '60', BufferSizeInMBs: '3', NumberOfRetries: '3' });
  });

  test('one object per buffer, not per site: a shard\'s order across sites stays in one object', () => {
    expect(s3.DynamicPartitioningConfiguration).toBeUndefined();
    expect(s3.Prefix).toBe(`raw/region=${region}/!{timestamp:yyyy/MM/dd/HH}/`);
    expect(s3.ErrorOutputPrefix).toContain('!{firehose:error-output-type}');
  });

  test('the Lambda is the handler file in infra/lambda: Python, arm64, 128 MB, logs kept a month', () => {
    expect(format.Properties).toMatchObject({ Handler: 'index.handler', Architectures: ['arm64'], MemorySize: 128, Timeout: 60 });
    expect(format.Properties.Runtime).toMatch(/^python3\.\d+$/);
    const handler = fs.readFileSync(path.join(ARCHIVE_FORMAT_CODE, 'index.py'), 'utf8');
    for (const field of ['shardId', 'sequenceNumber', 'partitionKey', 'approximateArrivalTimestamp']) {
      expect(handler).toContain(field);
    }
  });
});
