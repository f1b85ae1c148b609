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
	"github.com/picoflow/picoflow/internal/pgtest"
	"github.com/picoflow/picoflow/internal/simulate"
	"github.com/picoflow/picoflow/internal/store"
	"github.com/picoflow/picoflow/internal/upload"
)

// loadFlows is PICOFLOW_LOAD_FLOWS, default 100 (1000 for the full test).
func loadFlows() int {
	if v, err := strconv.Atoi(os.Getenv("PICOFLOW_LOAD_FLOWS")); err == nil && v > 0 {
		return v
	}
	return 100
}

// TestLoadThroughEndpoints sends many flows through the hpc flow on two
// compute endpoint processes, kills one with SIGKILL a third of the way in
// and restarts it, and requires every flow to finish exactly once: one
// succeeded run, one finished task and one record per file.
func TestLoadThroughEndpoints(t *testing.T) {
	n := loadFlows()
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
	var killed sync.Once
	began := sendLoad(t, r.dir, n, []string{r.base}, r.token, "hpc", 8, func(sent int64) {
		if sent == int64(n/3) {
			killed.Do(func() {
				e1.kill() // SIGKILL mid-work
				go func() { time.Sleep(2 * time.Second); endpoint("e1b") }()
			})
		}
	})
	db, err = store.Open(context.Background(), filepath.Join(r.data, "picoflow.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	checkLoad(t, n, &rig{base: r.base, token: r.token}, db, began, "2 endpoints (one killed and replaced)")
}

// TestLoadReplicas is the load test on two server replicas sharing one
// PostgreSQL database and data directory: files are sent to both, each
// endpoint lists both; an endpoint is killed with SIGKILL a third of the
// way in and replaced, a server replica two thirds of the way in and
// restarted. Senders whose replica is down send to the other one (the
// same content must not start a second flow). Every flow finishes once.
func TestLoadReplicas(t *testing.T) {
	n := loadFlows()
	url := pgtest.URL(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "shared")
	db, err := store.OpenPostgres(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tokens := auth.NewTokens(db.Write, db.Read)
	token, err := tokens.Create(context.Background(), "load", "agent:load", auth.RoleAgent, auth.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	epToken, err := tokens.Create(context.Background(), "load", "endpoint:load", auth.RoleEndpoint)
	if err != nil {
		t.Fatal(err)
	}
	addrs := []string{freeAddr(t), freeAddr(t)}
	bases := []string{"http://" + addrs[0], "http://" + addrs[1]}
	a := replica(t, dir, "server-a", url, data, addrs[0], "5s")
	replica(t, dir, "server-b", url, data, addrs[1], "5s")
	endpoint := func(name, servers string) *proc {
		return start(t, dir, name, []string{"PICOFLOW_TOKEN=" + epToken}, "endpoint", "--server", servers, "--name", name, "--workers", "2",
			"--work-dir", filepath.Join(dir, "work-"+name))
	}
	e1 := endpoint("e1", bases[0]+","+bases[1])
	endpoint("e2", bases[1]+","+bases[0])
	var endpointKilled, serverKilled sync.Once
	began := sendLoad(t, dir, n, bases, token, "hpc", 8, func(sent int64) {
		if sent >= int64(n/3) {
			endpointKilled.Do(func() {
				e1.kill()
				go func() { time.Sleep(2 * time.Second); endpoint("e1b", bases[0]+","+bases[1]) }()
			})
		}
		if sent >= int64(2*n/3) {
			serverKilled.Do(func() {
				a.kill() // SIGKILL: its running steps, claims and uploads stop
				go func() { time.Sleep(3 * time.Second); replica(t, dir, "server-a2", url, data, addrs[0], "5s") }()
			})
		}
	})
	checkLoad(t, n, &rig{base: bases[1], token: token}, db, began, "2 server replicas and 2 endpoints (one of each killed)")
}

// sendLoad writes n distinct size x size spectrum images and sends each to
// a server (file i to bases[i%len(bases)], moving on to the next one when a
// server is down), starting flow for it; onSent, when set, sees the count
// of flows started so far.
func sendLoad(t *testing.T, dir string, n int, bases []string, token, flow string, size int, onSent func(sent int64)) time.Time {
	files := make([]string, n)
	src := filepath.Join(dir, "files")
	os.MkdirAll(src, 0o755)
	for i := range n {
		files[i] = filepath.Join(src, fmt.Sprintf("load_%04d.emd", i))
		if _, err := simulate.WriteSpectrumImage(context.Background(), files[i], simulate.SpectrumImageSpec{
			Width: size, Height: size, Support: "C", Elements: []string{"Fe"}, CountsPerPixel: 50, Seed: uint64(i + 1), Particles: 1}); err != nil {
			t.Fatal(err)
		}
	}
	send := func(base, path, sum string) error {
		tus := &upload.Client{Endpoint: base + "/files/", Token: token}
		u, err := tus.Upload(context.Background(), path, "", map[string]string{upload.MetaFilename: filepath.Base(path), upload.MetaSHA256: sum, upload.MetaFlow: flow}, func(string) error { return nil })
		if err != nil {
			return err
		}
		// As the agent does: 409 means a run for this content is still
		// going (a retry after a replica died mid-request); ask again with
		// the same upload until it has finished.
		for deadline := time.Now().Add(5 * time.Minute); ; {
			req, _ := http.NewRequest(http.MethodPost, base+"/api/v1/runs", strings.NewReader(`{"upload":"`+u+`"}`))
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusConflict && time.Now().Before(deadline) {
				time.Sleep(500 * time.Millisecond)
				continue
			}
			if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
				return fmt.Errorf("start run for %s: %s", path, resp.Status)
			}
			return nil
		}
	}
	began := time.Now()
	var sent atomic.Int64
	var wg sync.WaitGroup
	work := make(chan int)
	for range 8 {
		wg.Go(func() {
			for i := range work {
				sum, _, err := checksum.File(context.Background(), files[i])
				if err != nil {
					t.Error(err)
					continue
				}
				var errs []error
				for try := range 3 * len(bases) {
					err := send(bases[(i+try)%len(bases)], files[i], sum)
					if err == nil {
						errs = nil
						break
					}
					errs = append(errs, err)
					time.Sleep(200 * time.Millisecond)
				}
				if errs != nil {
					t.Errorf("send %s: %v", files[i], errs)
					continue
				}
				if k := sent.Add(1); onSent != nil {
					onSent(k)
				}
			}
		})
	}
	for i := range files {
		work <- i
	}
	close(work)
	wg.Wait()
	return began
}

// checkLoad waits for n hpc runs to end and requires each file to have
// been analysed and published once; it logs flows/s and the overhead.
func checkLoad(t *testing.T, n int, r *rig, db *store.DB, began time.Time, what string) {
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
	elapsed := time.Since(began)
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
	var tasks, doneTasks, retried, recorded, distinctRecords int
	if err := db.Read.QueryRow(`SELECT count(*), count(*) FILTER (WHERE state = 'done'), count(*) FILTER (WHERE attempts > 1) FROM task`).Scan(&tasks, &doneTasks, &retried); err != nil {
		t.Fatal(err)
	}
	records := "record"
	if db.Postgres {
		records = "picoflow_record" // the PostgreSQL catalog's table
	}
	if err := db.Read.QueryRow(`SELECT count(*), count(DISTINCT sha256) FROM `+records).Scan(&recorded, &distinctRecords); err != nil {
		t.Fatal(err)
	}
	if tasks != n || doneTasks != n || recorded != n || distinctRecords != n {
		t.Fatalf("tasks %d (done %d), records %d (distinct %d); want %d each", tasks, doneTasks, recorded, distinctRecords, n)
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
	t.Logf("%d flows through %s in %v: %.1f flows/s; %d tasks re-run after the kill; stats %s",
		n, what, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(), retried, b)
}
