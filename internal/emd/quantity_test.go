package emd

import "testing"

// TestParseQuantity: Velox writes some values with their unit ("300kV").
func TestParseQuantity(t *testing.T) {
	for in, want := range map[string]float64{"300000": 300000, "300kV": 300000, "200 kV": 200000, "1.5us": 1.5e-6, "0.01": 0.01, "80 mV": 0.08} {
		if got, err := parseQuantity(in); err != nil || got != want {
			t.Errorf("%q: %v %v, want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "kV", "300 furlongs"} {
		if _, err := parseQuantity(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}
