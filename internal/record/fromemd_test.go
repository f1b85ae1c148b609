package record_test

import (
	"context"
	"encoding/json"
	"os/exec"
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
	out, err := exec.Command(emdtest.Python, "-c", h5pyBerkeley, path).Output()
	if err != nil {
		t.Fatalf("h5py: %v", err)
	}
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
