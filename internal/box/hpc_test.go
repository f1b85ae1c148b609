package box_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/picoflow/picoflow/internal/agent"
	"github.com/picoflow/picoflow/internal/analysis"
	"github.com/picoflow/picoflow/internal/box"
	"github.com/picoflow/picoflow/internal/compute"
	"github.com/picoflow/picoflow/internal/sandbox"
	"github.com/picoflow/picoflow/internal/simulate"
)

func writeHPCFile(t *testing.T, b *box.Box, name string) {
	if _, err := simulate.WriteSpectrumImage(context.Background(), filepath.Join(b.Folders["hpc"], name), simulate.SpectrumImageSpec{
		Width: 32, Height: 32, Support: "C", Elements: []string{"Pt"}, CountsPerPixel: 300, Seed: 8}); err != nil {
		t.Fatal(err)
	}
}

// TestHPCFlow: the analyze step of the hpc flow runs on a compute endpoint
// that pulls the task, stages the input over HTTP, and sends the products
// back; the run ends published.
func TestHPCFlow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	o := &outcomes{ch: make(chan agent.Entry, 4)}
	b, err := box.Start(ctx, box.Config{Dir: t.TempDir(), Workers: workers, Settle: 200 * time.Millisecond, OnChange: o.onChange, Endpoints: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Stop(ctx)
	writeHPCFile(t, b, "hpc.emd")
	e := o.next(t)
	if e.State != agent.StateDone {
		t.Fatalf("hpc file: %+v", e)
	}
	ent, err := b.Server.Catalog.Get(ctx, e.RunID, []string{"role:admin"})
	if err != nil || len(ent.Elements()) == 0 {
		t.Fatalf("record: %v %+v", err, ent)
	}
	// The products came back from the endpoint and are served.
	req, _ := http.NewRequest(http.MethodGet, b.Server.URL()+"/api/v1/records/"+e.RunID+"/files/intensity.png", nil)
	req.Header.Set("Authorization", "Bearer "+b.AdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	head, _ := io.ReadAll(io.LimitReader(resp.Body, 8))
	resp.Body.Close()
	if resp.StatusCode != 200 || string(head) != "\x89PNG\r\n\x1a\n" {
		t.Fatalf("intensity.png from the endpoint: %d %q", resp.StatusCode, head)
	}
	run, err := b.Server.Engine.Run(ctx, e.RunID)
	if err != nil || run.Steps[1].State != "succeeded" {
		t.Fatalf("run %+v %v", run, err)
	}
	// Administrators see the endpoint on the runs page: alive, one task done;
	// and on the run's page that it ran the analysis.
	staff := signIn(t, b)
	if _, page := staff.get("/runs/" + e.RunID); !strings.Contains(page, `<tr data-step="analyze"><td>analyze</td><td>hpc-1@endpoint:box</td>`) {
		t.Errorf("run page does not say the analysis ran on hpc-1:\n%s", page)
	}
	_, page := staff.get("/runs")
	row := regexp.MustCompile(`(?s)<tr data-endpoint="hpc-1@endpoint:box">.*?</tr>`).FindString(page)
	cells := regexp.MustCompile(`<td[^>]*>([^<]*)</td>`).FindAllStringSubmatch(row, -1)
	if len(cells) != 7 || cells[1][1] != "alive" || cells[2][1] != "0" || cells[3][1] != "1" || cells[4][1] != "0" {
		t.Fatalf("endpoint row on the runs page: %q\n%s", row, page)
	}
}

// TestLostEndpoint: an endpoint claims the task and vanishes; when its
// lease lapses another endpoint gets the task, and the file is analysed
// and published once.
func TestLostEndpoint(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	o := &outcomes{ch: make(chan agent.Entry, 4)}
	b, err := box.Start(ctx, box.Config{Dir: t.TempDir(), Workers: workers, Settle: 200 * time.Millisecond, OnChange: o.onChange, TaskLease: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Stop(ctx)
	claimed := make(chan struct{})
	lost := &compute.Endpoint{Server: b.Server.URL(), Token: b.EndpointToken, Name: "doomed", WorkDir: t.TempDir(),
		Run: func(ctx context.Context, _ *compute.Task, _, _ string) (any, error) {
			close(claimed)
			<-ctx.Done() // the node dies mid-analysis
			return nil, ctx.Err()
		}}
	if err := lost.Start(ctx); err != nil {
		t.Fatal(err)
	}
	writeHPCFile(t, b, "lost.emd")
	select {
	case <-claimed:
	case <-time.After(60 * time.Second):
		t.Fatal("the task was never claimed")
	}
	lost.Stop()
	// The survivor lists a replica that is down first: it moves on to the
	// live one.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + l.Addr().String()
	l.Close()
	good := &compute.Endpoint{Server: down + "/, " + b.Server.URL(), Token: b.EndpointToken, Name: "survivor", WorkDir: t.TempDir(),
		Run: analysis.EndpointRun(workers, sandbox.Limits{})}
	if err := good.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer good.Stop()
	e := o.next(t)
	if e.State != agent.StateDone {
		t.Fatalf("file: %+v", e)
	}
	var attempts int
	var endpoint string
	if err := b.Server.DB().Read.QueryRow(`SELECT attempts, endpoint FROM task WHERE run_id = ?`, e.RunID).Scan(&attempts, &endpoint); err != nil {
		t.Fatal(err)
	}
	if attempts != 2 || endpoint != "survivor@endpoint:box" {
		t.Fatalf("task attempts %d, endpoint %s; want 2, survivor@endpoint:box (its label @ its token's subject)", attempts, endpoint)
	}
	var tasks int
	b.Server.DB().Read.QueryRow(`SELECT count(*) FROM task WHERE run_id = ?`, e.RunID).Scan(&tasks)
	if tasks != 1 {
		t.Fatalf("%d tasks for one run", tasks)
	}
}

// TestIdleEndpointExits: an endpoint with an idle limit exits by itself
// when no task comes, and tasks arriving around the moment it decides to
// leave are neither lost nor stranded until their lease lapses (a claim is
// never cancelled for idleness). Whenever the endpoint has left, a new one
// is started, as the block scaler does.
func TestIdleEndpointExits(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	o := &outcomes{ch: make(chan agent.Entry, 4)}
	b, err := box.Start(ctx, box.Config{Dir: t.TempDir(), Workers: workers, Settle: 200 * time.Millisecond, OnChange: o.onChange})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Stop(ctx)
	var ep *compute.Endpoint
	started := 0
	ensure := func() {
		if ep != nil {
			select {
			case <-ep.Done():
				ep.Stop()
			default:
				return
			}
		}
		started++
		ep = &compute.Endpoint{Server: b.Server.URL(), Token: b.EndpointToken, Name: fmt.Sprintf("idler-%d", started), Workers: 2,
			WorkDir: t.TempDir(), Run: analysis.EndpointRun(workers, sandbox.Limits{}), IdleExit: time.Second}
		if err := ep.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 6 {
		ensure()
		// Files land around the moment the endpoint would give up.
		time.Sleep(time.Duration(400+120*i) * time.Millisecond)
		ensure()
		writeHPCFile(t, b, fmt.Sprintf("idle_%d.emd", i))
		t0 := time.Now()
	wait:
		for {
			select {
			case e := <-o.ch:
				if e.State != agent.StateDone {
					t.Fatalf("file %d: %+v", i, e)
				}
				break wait
			case <-time.After(50 * time.Millisecond):
				ensure()
			}
			if time.Since(t0) > 30*time.Second { // a stranded task waits out its 60 s lease
				t.Fatalf("file %d not done after 30 s (endpoints started: %d)", i, started)
			}
		}
		t.Logf("file %d done in %v", i, time.Since(t0).Round(time.Millisecond))
	}
	select {
	case <-ep.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("an idle endpoint did not exit")
	}
	t.Logf("%d endpoints started for 6 files", started)
}
