//go:build linux

package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/picoflow/picoflow/internal/auth"
	"github.com/picoflow/picoflow/internal/checksum"
	"github.com/picoflow/picoflow/internal/pgtest"
	"github.com/picoflow/picoflow/internal/simulate"
	"github.com/picoflow/picoflow/internal/store"
	"github.com/picoflow/picoflow/internal/upload"
)

// TestServerReplicaKill9: two server processes share one PostgreSQL
// database and data directory; flows are started on the first, which is
// killed with SIGKILL while they run; the second finishes all of them,
// each once.
func TestServerReplicaKill9(t *testing.T) {
	t.Parallel()
	const n = 12
	url := pgtest.URL(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "shared")
	db, err := store.OpenPostgres(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	token, err := auth.NewTokens(db.Write, db.Read).Create(context.Background(), "t", "agent:load", auth.RoleAgent, auth.RoleAdmin)
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	addrA, addrB := freeAddr(t), freeAddr(t)
	replica := func(name, addr string) *proc {
		p := start(t, dir, name, nil, "server", "--db", url, "--data", data, "--addr", addr, "--rescue-after", "3s")
		eventually(t, 30*time.Second, name+" health", func() bool {
			resp, err := http.Get("http://" + addr + "/healthz")
			if err == nil {
				resp.Body.Close()
			}
			return err == nil && resp.StatusCode == 200
		})
		return p
	}
	a := replica("server-a", addrA)
	replica("server-b", addrB)
	src := filepath.Join(dir, "files")
	os.MkdirAll(src, 0o755)
	tus := &upload.Client{Endpoint: "http://" + addrA + "/files/", Token: token}
	var wg sync.WaitGroup
	work := make(chan int)
	for range 6 {
		wg.Go(func() {
			for i := range work {
				p := filepath.Join(src, fmt.Sprintf("r_%03d.emd", i))
				if _, err := simulate.WriteSpectrumImage(context.Background(), p, simulate.SpectrumImageSpec{Width: 24, Height: 24, Support: "C", Elements: []string{"Cu"}, CountsPerPixel: 80, Seed: uint64(i + 7), Particles: 2}); err != nil {
					t.Error(err)
					continue
				}
				sum, _, _ := checksum.File(context.Background(), p)
				u, err := tus.Upload(context.Background(), p, "", map[string]string{upload.MetaFilename: filepath.Base(p), upload.MetaSHA256: sum, upload.MetaFlow: "hyperspectral"}, func(string) error { return nil })
				if err != nil {
					t.Error(err)
					continue
				}
				req, _ := http.NewRequest(http.MethodPost, "http://"+addrA+"/api/v1/runs", strings.NewReader(`{"upload":"`+u+`"}`))
				req.Header.Set("Authorization", "Bearer "+token)
				if resp, err := http.DefaultClient.Do(req); err != nil {
					t.Error(err)
				} else {
					resp.Body.Close()
				}
			}
		})
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	a.kill() // SIGKILL while its steps run
	r := &rig{base: "http://" + addrB, token: token}
	var runs []struct{ State, Error string }
	last := time.Now()
	eventually(t, 90*time.Second, "replica B to finish every run", func() bool {
		runs = nil
		if err := r.get(t, "/api/v1/runs?limit=100", &runs); err != nil {
			return false
		}
		if time.Since(last) > 10*time.Second {
			last = time.Now()
			states := map[string]int{}
			for _, x := range runs {
				states[x.State]++
			}
			t.Logf("runs: %v", states)
		}
		done := 0
		for _, x := range runs {
			if x.State == "succeeded" || x.State == "failed" {
				done++
			}
		}
		return len(runs) == n && done == n
	})
	for _, x := range runs {
		if x.State != "succeeded" {
			t.Fatalf("run %s: %s", x.State, x.Error)
		}
	}
	var res struct{ Total int }
	if err := r.get(t, "/api/v1/records?limit=1", &res); err != nil || res.Total != n {
		t.Fatalf("%d records for %d files (%v)", res.Total, n, err)
	}
}
