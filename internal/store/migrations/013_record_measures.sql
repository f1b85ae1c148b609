-- Numbers a search compares (voltage:>=200kV, magnification:<100000):
-- the accelerating voltage in kV and the magnification, NULL when unknown.
ALTER TABLE record ADD COLUMN voltage_kv REAL;
ALTER TABLE record ADD COLUMN magnification REAL;
UPDATE record SET voltage_kv = json_extract(doc, '$.instrument.acceleratingVoltage.value'),
  magnification = json_extract(doc, '$.instrument.magnification.value');
CREATE INDEX record_voltage ON record (voltage_kv);
CREATE INDEX record_magnification ON record (magnification);
