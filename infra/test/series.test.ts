import { SERIES_COLD_DAYS, SERIES_HOT_DAYS, SERIES_TABLE } from '../lib/query-store';
import { Synthesized, actionsOf, containerOf, envOf, makeApp, statementsOfRole } from './helpers';

describe('telemetry series tiers (queryModel=timestream)', () => {
  const t = new Synthesized(makeApp({ pipeline: 'false', queryModel: 'timestream' })).region('us-east-1');

  test('the series table keeps the hot week in the memory store and 400 days in the magnetic store', () => {
    const tables = Object.values(t.findResources('AWS::Timestream::Table')).filter(
      (r) => r.Properties.TableName === SERIES_TABLE,
    );
    expect(tables).toHaveLength(1);
    expect(tables[0].Properties.RetentionProperties).toEqual({
      MemoryStoreRetentionPeriodInHours: '168',
      MagneticStoreRetentionPeriodInDays: '400',
    });
    expect(tables[0].Properties.MagneticStoreWriteProperties).toEqual({ EnableMagneticStoreWrites: true });
    expect(SERIES_HOT_DAYS * 24).toBeLessThanOrEqual(8766); // Timestream's memory-store maximum
    expect(SERIES_HOT_DAYS).toBeLessThan(SERIES_COLD_DAYS);
  });

  test('the workers are told the same split and may write the series table', () => {
    const env = envOf(containerOf(t, 'WorkerTask'));
    expect(env).toMatchObject({ LUXFLOW_SERIES_HOT_DAYS: '7', LUXFLOW_SERIES_COLD_DAYS: '400' });
    const write = statementsOfRole(t, 'WorkerTaskTaskRole').find((s) => actionsOf(s).includes('timestream:WriteRecords'));
    expect(JSON.stringify(write?.Resource)).toContain(`Timestream${SERIES_TABLE}`);
  });
});
