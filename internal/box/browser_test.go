package box_test

import (
	"bufio"
	"context"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/picoflow/picoflow/internal/box"
	"github.com/picoflow/picoflow/internal/catalog"
	"github.com/picoflow/picoflow/internal/catalog/catalogtest"
	"github.com/picoflow/picoflow/internal/flow"
	"github.com/picoflow/picoflow/internal/simulate"
)

// TestPortalInChromium drives the portal in headless Debian Chromium with
// playwright-core (e2e/portal.mjs): sign in, search through htmx, a facet,
// a record page with its figures and interactive spectrum, escaping of a
// hostile record, and the runs dashboard updating live when a new file
// arrives. The screenshots must be real renderings.
func TestPortalInChromium(t *testing.T) {
	t.Parallel()
	root, _ := filepath.Abs("../..")
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatal("node is required for the browser test (apt-get install nodejs)")
	}
	if _, err := os.Stat(filepath.Join(root, "node_modules", "playwright-core")); err != nil {
		t.Fatal("playwright-core is missing: run npm ci in the repository root")
	}
	if _, err := exec.LookPath("chromium"); err != nil {
		t.Fatal("Debian's chromium is required for the browser test (apt-get install chromium)")
	}
	b, e := startWithRecord(t, box.Config{Endpoints: 1}) // an endpoint for the runs page's compute section
	if _, err := simulate.WriteMovie(context.Background(), filepath.Join(b.Folders["spatiotemporal"], "growth.emd"), simulate.MovieSpec{Frames: 20, Width: 96, Height: 96, Particles: 6, Seed: 3, Drift: 0.3}); err != nil {
		t.Fatal(err)
	}
	var movieRun string
	for movieRun == "" {
		select {
		case <-time.After(60 * time.Second):
			t.Fatal("movie not processed")
		default:
		}
		if runs, err := b.Server.Engine.Runs(context.Background(), flow.ListQuery{Flow: "spatiotemporal", State: flow.StateSucceeded, All: true}); err == nil && len(runs) > 0 {
			movieRun = runs[0].ID
		}
		time.Sleep(50 * time.Millisecond)
	}
	hostile := `<script>alert("pwned")</script><img src=x onerror=alert(1)>`
	if err := b.Server.Catalog.Put(context.Background(), catalogtest.NewEntry("hostile", hostile, time.Now(), "PicoProbe", "hyperspectral", []string{"Fe"}, catalog.Public)); err != nil {
		t.Fatal(err)
	}
	out := os.Getenv("PICOFLOW_SCREENSHOTS")
	if out == "" {
		out = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", filepath.Join(root, "e2e", "portal.mjs"), b.Server.URL(), "admin", b.AdminPassword, out, e.RunID, "hostile", movieRun)
	cmd.Dir = root
	stdout, _ := cmd.StdoutPipe()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var steps []string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		steps = append(steps, line)
		if line == "READY-RUNS" {
			if _, err := simulate.WriteSpectrumImage(ctx, filepath.Join(b.Folders["hyperspectral"], "second.emd"), simulate.SpectrumImageSpec{
				Width: 32, Height: 32, Support: "C", Elements: []string{"Cu"}, CountsPerPixel: 300, Seed: 11}); err != nil {
				t.Error(err)
			}
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("browser test failed after %v: %v\n%s", steps, err, stderr.String())
	}
	if steps[len(steps)-1] != "DONE" {
		t.Fatalf("browser test stopped after %v", steps)
	}
	for _, name := range []string{"search.png", "record.png", "movie.png", "runs.png", "campaign.png", "record-version.png", "search-empty.png", "record-edited.png"} {
		checkScreenshot(t, filepath.Join(out, name), 1280)
	}
	checkScreenshot(t, filepath.Join(out, "record-390.png"), 390) // a phone
}

// checkScreenshot requires a real page: full width, and enough ink and
// colours that it is not a blank or error page.
func checkScreenshot(t *testing.T, path string, width int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	bnd := img.Bounds()
	if bnd.Dx() != width || bnd.Dy() < 600 {
		t.Fatalf("%s: %dx%d", filepath.Base(path), bnd.Dx(), bnd.Dy())
	}
	colours := map[uint32]bool{}
	ink, n := 0, 0
	for y := bnd.Min.Y; y < bnd.Max.Y; y += 3 {
		for x := bnd.Min.X; x < bnd.Max.X; x += 3 {
			r, g, b, _ := img.At(x, y).RGBA()
			colours[(r>>11)<<10|(g>>11)<<5|b>>11] = true
			if r+g+b < 3*0xE000 {
				ink++
			}
			n++
		}
	}
	if len(colours) < 40 || ink*100 < n {
		t.Fatalf("%s looks blank: %d colours, %.1f%% ink", filepath.Base(path), len(colours), 100*float64(ink)/float64(n))
	}
	t.Logf("%s: %dx%d, %d colours, %.1f%% ink", filepath.Base(path), bnd.Dx(), bnd.Dy(), len(colours), 100*float64(ink)/float64(n))
}
