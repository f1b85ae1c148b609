//go:build linux

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/picoflow/picoflow/internal/auth"
	"github.com/picoflow/picoflow/internal/checksum"
	"github.com/picoflow/picoflow/internal/simulate"
	"github.com/picoflow/picoflow/internal/store"
	"github.com/picoflow/picoflow/internal/upload"
)

// TestLoadThroughEndpoints sends many flows (PICOFLOW_LOAD_FLOWS, default
// 100 here; 1000 for the full test) through the hpc flow on two compute
// endpoint processes, kills one with SIGKILL a third of the way in and
// restarts it, and requires every flow to finish exactly once: one
// succeeded run, one finished task and one record per file.
func TestLoadThroughEndpoints(t *testing.T) {
	n := 100
	if v, err := strconv.Atoi(os.Getenv("PICOFLOW_LOAD_FLOWS")); err == nil && v > 0 {
		n = v
	}
	r := newRig(t)
	db, err := store.Open(context.Background(), filepath.Join(r.data, "picoflow.db"))
	if err != nil {
		t.Fatal(err)
	}
	epToken, err := auth.NewTokens(db.Write, db.Read).Create(context.Background(), "load", "endpoint:load", auth.RoleEndpoint)
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	r.server(t)
	endpoint := func(name string) *proc {
		return start(t, r.dir, name, []string{"PICOFLOW_TOKEN=" + epToken}, "endpoint", "--server", r.base, "--name", name, "--workers", "2",
			"--work-dir", filepath.Join(r.dir, "work-"+name))
	}
	e1 := endpoint("e1")
	endpoint("e2")

	// Small, distinct spectrum images.
	files := make([]string, n)
	src := filepath.Join(r.dir, "files")
	os.MkdirAll(src, 0o755)
	for i := range n {
		files[i] = filepath.Join(src, fmt.Sprintf("load_%04d.emd", i))
		if _, err := simulate.WriteSpectrumImage(context.Background(), files[i], simulate.SpectrumImageSpec{
			Width: 8, Height: 8, Support: "C", Elements: []string{"Fe"}, CountsPerPixel: 50, Seed: uint64(i + 1), Particles: 1}); err != nil {
			t.Fatal(err)
		}
	}
	tus := &upload.Client{Endpoint: r.base + "/files/", Token: r.token}
	start := time.Now()
	var sent atomic.Int64
	var killed sync.Once
	var wg sync.WaitGroup
	work := make(chan string)
	for range 8 {
		wg.Go(func() {
			for path := range work {
				sum, _, err := checksum.File(context.Background(), path)
				if err != nil {
					t.Error(err)
					continue
				}
				u, err := tus.Upload(context.Background(), path, "", map[string]string{upload.MetaFilename: filepath.Base(path), upload.MetaSHA256: sum, upload.MetaFlow: "hpc"}, func(string) error { return nil })
				if err != nil {
					t.Error(err)
					continue
				}
				req, _ := http.NewRequest(http.MethodPost, r.base+"/api/v1/runs", strings.NewReader(`{"upload":"`+u+`"}`))
				req.Header.Set("Authorization", "Bearer "+r.token)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					continue
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusCreated {
					t.Errorf("start run for %s: %s", path, resp.Status)
				}
				if sent.Add(1) == int64(n/3) {
					killed.Do(func() {
						e1.kill() // SIGKILL mid-work
						go func() { time.Sleep(2 * time.Second); endpoint("e1b") }()
					})
				}
			}
		})
	}
	for _, f := range files {
		work <- f
	}
	close(work)
	wg.Wait()
	type runRow struct {
		ID    string `json:"id"`
		State string `json:"state"`
		Error string `json:"error"`
	}
	var runs []runRow
	eventually(t, 10*time.Minute, "every flow to finish", func() bool {
		runs = nil
		if err := r.get(t, "/api/v1/runs?flow=hpc&limit="+strconv.Itoa(n+10), &runs); err != nil {
			return false
		}
		done := 0
		for _, x := range runs {
			if x.State == "succeeded" || x.State == "failed" {
				done++
			}
		}
		return done == n
	})
	elapsed := time.Since(start)
	failed := 0
	for _, x := range runs {
		if x.State != "succeeded" {
			failed++
			if failed < 5 {
				t.Errorf("run %s %s: %s", x.ID, x.State, x.Error)
			}
		}
	}
	if len(runs) != n || failed > 0 {
		t.Fatalf("%d runs for %d files, %d not succeeded", len(runs), n, failed)
	}
	db, err = store.Open(context.Background(), filepath.Join(r.data, "picoflow.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var tasks, doneTasks, retried, records, distinctRecords int
	db.Read.QueryRow(`SELECT count(*), count(*) FILTER (WHERE state = 'done'), count(*) FILTER (WHERE attempts > 1) FROM task`).Scan(&tasks, &doneTasks, &retried)
	db.Read.QueryRow(`SELECT count(*), count(DISTINCT sha256) FROM record`).Scan(&records, &distinctRecords)
	if tasks != n || doneTasks != n || records != n || distinctRecords != n {
		t.Fatalf("tasks %d (done %d), records %d (distinct %d); want %d each", tasks, doneTasks, records, distinctRecords, n)
	}
	var stats []struct {
		Flow           string  `json:"flow"`
		Runs           int     `json:"runs"`
		MedianOverhead int64   `json:"median_overhead_ns"`
		MeanRuntime    int64   `json:"mean_runtime_ns"`
		OverheadShare  float64 `json:"overhead_share"`
	}
	r.get(t, "/api/v1/stats", &stats)
	b, _ := json.Marshal(stats)
	t.Logf("%d flows through 2 endpoints (one killed and replaced) in %v: %.1f flows/s; %d tasks re-run after the kill; stats %s",
		n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(), retried, b)
}
