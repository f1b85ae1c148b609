package agent

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestRateSchedule(t *testing.T) {
	sched, err := ParseSchedule([]string{"22:00-06:00 unlimited", "08:00-18:00 200Mbit"})
	if err != nil {
		t.Fatal(err)
	}
	day := func(h, m int) time.Time { return time.Date(2026, 11, 27, h, m, 0, 0, time.Local) }
	for _, tc := range []struct {
		at   time.Time
		want float64
	}{{day(23, 30), 0}, {day(2, 0), 0}, {day(6, 0), 50e6}, {day(9, 15), 25e6}, {day(18, 0), 50e6}, {day(21, 59), 50e6}} {
		if got, _ := RateAt(sched, 50e6, tc.at); got != tc.want {
			t.Errorf("%s: %g, want %g", tc.at.Format("15:04"), got, tc.want)
		}
	}
	for _, bad := range []string{"22:00 unlimited", "25:00-06:00 1Gbit", "08:00-18:00 fast"} {
		if _, err := ParseSchedule([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestStatusRates: a running agent records its cap for status, and the
// files it has not sent yet with the time they take at that cap.
func TestStatusRates(t *testing.T) {
	ctx := context.Background()
	dir, ledgerPath := t.TempDir(), filepath.Join(t.TempDir(), "l.db")
	a, err := New(ctx, Config{Server: "http://127.0.0.1:1", Token: "pf_x", Ledger: ledgerPath, Settle: 50 * time.Millisecond, MaxRate: "80Mbit",
		NormalPriority: true, Folders: []Folder{{Path: dir, Flow: "hyperspectral", Patterns: []string{"*.dat"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer a.Stop()
	os.WriteFile(filepath.Join(dir, "a.dat"), make([]byte, 20e6), 0o644)
	var r Rates
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if r, err = ReadRates(ctx, ledgerPath); err == nil && r.Files == 1 && !r.Updated.IsZero() {
			break
		}
	}
	if r.Cap != 10e6 || r.Files != 1 || r.Waiting != 20e6 || r.ETA != 2*time.Second {
		t.Fatalf("rates %+v (err %v)", r, err)
	}
}
