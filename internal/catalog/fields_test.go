package catalog

import (
	"errors"
	"slices"
	"testing"
	"time"
)

func TestParseQuery(t *testing.T) {
	q, err := ParseQuery(`gold element:Au element:C kind:hyperspectral instrument:Titan date:2026-11 made-before:v0.2.0 "in situ" note:x`)
	if err != nil {
		t.Fatal(err)
	}
	if q.Text != `gold "in situ" note:x` || !slices.Equal(q.Elements, []string{"Au", "C"}) || !slices.Equal(q.Kinds, []string{"hyperspectral"}) ||
		!slices.Equal(q.Instruments, []string{"Titan"}) || q.MadeBefore != "v0.2.0" ||
		!q.From.Equal(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)) || !q.To.Equal(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("%+v", q)
	}
	if _, err := ParseQuery("date:yesterday"); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad date: %v", err)
	}
}

func TestParseQueryMeasures(t *testing.T) {
	q, err := ParseQuery("voltage:>=200kV mag:<100kx element:gold 2017 Titan")
	if err != nil {
		t.Fatal(err)
	}
	want := []Range{{Field: FieldVoltage, Op: ">=", Value: 200}, {Field: FieldMagnification, Op: "<", Value: 1e5}}
	if !slices.Equal(q.Ranges, want) || !slices.Equal(q.Elements, []string{"Au"}) || q.Text != "Titan" ||
		!q.From.Equal(time.Date(2017, 1, 1, 0, 0, 0, 0, time.UTC)) || !q.To.Equal(time.Date(2018, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("%+v", q)
	}
	if q, _ := ParseQuery("voltage:300000V"); q.Ranges[0].Value != 300 || q.Ranges[0].Op != "=" {
		t.Errorf("volts: %+v", q.Ranges)
	}
	for _, bad := range []string{"voltage:>=high", "voltage:200parsec"} {
		if _, err := ParseQuery(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v", bad, err)
		}
	}
}
