package box_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/picoflow/picoflow/internal/box"
	"github.com/picoflow/picoflow/internal/checksum"
	"github.com/picoflow/picoflow/internal/simulate"
	"github.com/picoflow/picoflow/internal/upload"
)

// TestTransferVerification: the server checks the agent's SHA-256 against
// the one it computed as the bytes arrived (no second read of the file);
// a file whose bytes do not match the declared SHA-256 fails its run with
// both sums, and its bytes are kept in quarantine, not deleted.
func TestTransferVerification(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	b, err := box.Start(ctx, box.Config{Dir: dir, Workers: workers})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Stop(ctx)
	base := b.Server.URL()
	src := filepath.Join(t.TempDir(), "si.emd")
	if _, err := simulate.WriteSpectrumImage(ctx, src, simulate.SpectrumImageSpec{Width: 32, Height: 32, Support: "C", Elements: []string{"Cu"}, CountsPerPixel: 100, Seed: 5}); err != nil {
		t.Fatal(err)
	}
	good, _, err := checksum.File(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	send := func(sum string) (id, state, reason string) {
		c := &upload.Client{Endpoint: base + "/files/", Token: b.AgentToken}
		u, err := c.Upload(ctx, src, "", map[string]string{upload.MetaFilename: "si.emd", upload.MetaSHA256: sum, upload.MetaFlow: "hyperspectral"}, func(string) error { return nil })
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest(http.MethodPost, base+"/api/v1/runs", strings.NewReader(`{"upload":"`+u+`"}`))
		req.Header.Set("Authorization", "Bearer "+b.AgentToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var run struct{ ID string }
		json.NewDecoder(resp.Body).Decode(&run)
		resp.Body.Close()
		wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		r, err := b.Server.Engine.Wait(wctx, run.ID)
		if err != nil {
			t.Fatal(err)
		}
		var out struct{ Verified string }
		json.Unmarshal(r.Steps[0].Output, &out)
		if r.State == "succeeded" && out.Verified != "on arrival" {
			t.Errorf("transfer step verified %q, want on arrival", out.Verified)
		}
		return r.ID, r.State, r.Error
	}
	if _, state, reason := send(good); state != "succeeded" {
		t.Fatalf("good file: %s %s", state, reason)
	}
	lie := strings.Repeat("ab", 32)
	id, state, reason := send(lie)
	if state != "failed" || !strings.Contains(reason, "checksum mismatch") || !strings.Contains(reason, lie) || !strings.Contains(reason, good) {
		t.Fatalf("declared %s for a file whose SHA-256 is %s: %s %q", lie, good, state, reason)
	}
	kept, _ := filepath.Glob(filepath.Join(dir, "server", "quarantine", id+"_*"))
	want, _ := os.ReadFile(src)
	if len(kept) != 1 {
		t.Fatalf("quarantine holds %v", kept)
	}
	if got, _ := os.ReadFile(kept[0]); !bytes.Equal(got, want) {
		t.Fatal("the quarantined bytes differ from the file sent")
	}
}
