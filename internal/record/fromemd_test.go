package record_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/picoflow/picoflow/internal/emd"
	"github.com/picoflow/picoflow/internal/emd/emdtest"
	"github.com/picoflow/picoflow/internal/record"
)

// h5pyBerkeley reads, with h5py, the acquisition time (Unix seconds) and
// the user of a Berkeley EMD file.
const h5pyBerkeley = `
import sys, json, h5py
with h5py.File(sys.argv[1], "r") as f:
    t = [float(f["data"][g]["acquisition times"][()]) for g in f["data"] if "acquisition times" in f["data"][g]]
    u = f["user"].attrs.get("User name", "")
    print(json.dumps({"time": t[0], "user": u if isinstance(u, str) else u.decode()}))
`

// TestBerkeleyDateAndCreator: the acquisition time and the user that
// Berkeley's acquisition software stores become the record's date and
// creator (the values h5py reads: 2019-10-04T19:25:41Z, Peter Ercius).
func TestBerkeleyDateAndCreator(t *testing.T) {
	path := emdtest.File(t, "berkeley/Acquisition_18.emd")
	out := emdtest.H5py(t, h5pyBerkeley, path)
	var want struct {
		Time float64
		User string
	}
	if err := json.Unmarshal(out, &want); err != nil {
		t.Fatal(err)
	}
	f, err := emd.Open(context.Background(), path, emd.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := record.FromEMD(f, record.Source{Name: "Acquisition_18.emd"})
	wantDate := time.Unix(int64(want.Time), 0).UTC().Format(time.RFC3339)
	if len(r.Dates) == 0 || r.Dates[0].Date != wantDate || wantDate != "2019-10-04T19:25:41Z" {
		t.Errorf("dates %+v, want %s", r.Dates, wantDate)
	}
	if len(r.Creators) == 0 || r.Creators[0].Name != want.User || want.User != "Peter Ercius" {
		t.Errorf("creators %+v, want %q", r.Creators, want.User)
	}
	if r.PublicationYear != 2019 {
		t.Errorf("publication year %d", r.PublicationYear)
	}
}

// h5pyOptics reads, with h5py and Python's json (HyperSpy 1.7 cannot open
// Velox 11 files), the optics and EDS timing of a Velox file's first summed
// spectrum's metadata document (written when the acquisition ended).
const h5pyOptics = `
import sys, json, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as f:
    for gid in f["Data/Spectrum"]:
        raw = np.asarray(f["Data/Spectrum"][gid]["Metadata"][:, 0]).tobytes().rstrip(b"\0").decode()
        md = json.loads(raw)
        eds = [v for v in md["Detectors"].values() if v.get("DetectorType") == "AnalyticalDetector" and v.get("Inserted", "true") != "false" and "LiveTime" in v]
        print(json.dumps({"conv": float(md["Optics"]["BeamConvergence"]), "current": float(md["Optics"]["ScreenCurrent"]), "spot": float(md["Optics"]["SpotIndex"]),
            "live": float(eds[0]["LiveTime"]), "real": float(eds[0]["RealTime"]), "name": eds[0]["DetectorName"]}))
        break
`

// TestVeloxOptics: the convergence semi-angle, screen current, spot size
// and the EDS detectors' live and real time are those h5py reads from the
// file's metadata, in mrad, pA and s.
func TestVeloxOptics(t *testing.T) {
	path := emdtest.File(t, "velox/velox11_test_SI_16x16_215kx.emd")
	out := emdtest.H5py(t, h5pyOptics, path)
	var want struct {
		Conv, Current, Spot, Live, Real float64
		Name                            string
	}
	if err := json.Unmarshal(out, &want); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	f, err := emd.Open(context.Background(), path, emd.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	in := record.FromEMD(f, record.Source{Name: "v.emd"}).Instrument
	near := func(q *record.Quantity, v float64, unit string) bool {
		return q != nil && q.Unit == unit && v != 0 && (q.Value-v)/v < 1e-6 && (v-q.Value)/v < 1e-6
	}
	if !near(in.ConvergenceAngle, want.Conv*1000, "mrad") || !near(in.ScreenCurrent, want.Current*1e12, "pA") || in.SpotIndex == nil || in.SpotIndex.Value != want.Spot {
		t.Errorf("optics: convergence %+v, current %+v, spot %+v; h5py: %+v", in.ConvergenceAngle, in.ScreenCurrent, in.SpotIndex, want)
	}
	found := false
	for _, d := range in.Detectors {
		if d.Name == want.Name {
			found = true
			if !near(d.LiveTime, want.Live, "s") || !near(d.RealTime, want.Real, "s") {
				t.Errorf("detector %s: live %+v, real %+v; h5py: %g, %g s", d.Name, d.LiveTime, d.RealTime, want.Live, want.Real)
			}
		}
	}
	if !found {
		t.Errorf("no detector %s among %+v", want.Name, in.Detectors)
	}
}
