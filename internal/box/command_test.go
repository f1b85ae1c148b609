package box_test

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/picoflow/picoflow/internal/agent"
	"github.com/picoflow/picoflow/internal/box"
	"github.com/picoflow/picoflow/internal/command"
	"github.com/picoflow/picoflow/internal/flow"
	"github.com/picoflow/picoflow/internal/simulate"
)

// TestCommandSteps: a flow with facility-configured commands, one on the
// server and one on a compute endpoint, after the built-in analysis. Their
// products join the record, downloadable; their data is in the run. A step
// naming a command nobody configured fails the run with that reason.
func TestCommandSteps(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	flows, err := flow.ParseConfig([]byte(`
flows:
  - name: measure
    steps:
      - {name: transfer}
      - {name: analyze}
      - {name: tree, type: command, params: {command: h5tree}}
      - {name: size, type: command, params: {command: size, where: endpoint}}
      - {name: publish}
  - name: slow
    steps:
      - {name: transfer}
      - {name: analyze}
      - {name: wait, type: command, params: {command: hang, where: endpoint}, timeout: 1s, attempts: 1}
      - {name: publish}
  - name: broken
    steps:
      - {name: transfer}
      - {name: analyze}
      - {name: clean, type: command, params: {command: rm-everything}, attempts: 1}
      - {name: publish}
`))
	if err != nil {
		t.Fatal(err)
	}
	cmds, err := command.Parse([]string{
		`h5tree=sh -c 'h5ls -r "$PICOFLOW_INPUT" > tree.txt'`,
		`size=sh -c 'n=$(wc -c < "$1"); echo "$n" > size.txt; printf "{\"bytes\": %d}" "$n" > result.json' sh {input}`,
		`hang=sleep 600`,
	})
	if err != nil {
		t.Fatal(err)
	}
	o := &outcomes{ch: make(chan agent.Entry, 4)}
	b, err := box.Start(ctx, box.Config{Dir: t.TempDir(), Workers: workers, Settle: 200 * time.Millisecond, OnChange: o.onChange,
		Flows: &flows, Commands: cmds, Endpoints: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Stop(ctx)
	write := func(flowName, name string) agent.Entry {
		t.Helper()
		if _, err := simulate.WriteSpectrumImage(ctx, b.Folders[flowName]+"/"+name, simulate.SpectrumImageSpec{
			Width: 32, Height: 32, Support: "C", Elements: []string{"Cu"}, CountsPerPixel: 200, Seed: 21}); err != nil {
			t.Fatal(err)
		}
		return o.next(t)
	}
	e := write("measure", "measured.emd")
	if e.State != agent.StateDone {
		t.Fatalf("measure: %+v", e)
	}
	run, err := b.Server.Engine.Run(ctx, e.RunID)
	if err != nil {
		t.Fatal(err)
	}
	if s := run.Steps[3]; s.Name != "size" || !strings.Contains(string(s.Output), `"data":{"bytes":`+itoa(e.Size)+`}`) || !strings.Contains(string(s.Output), `"where":"hpc-1@endpoint:box"`) {
		t.Fatalf("size step on the endpoint: %s", s.Output)
	}
	ent, err := b.Server.Catalog.Get(ctx, e.RunID, []string{"role:admin"})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, f := range ent.Record.Files {
		got[f.Name] = f.Role
	}
	if got["h5tree-tree.txt"] != "command:h5tree" || got["size-size.txt"] != "command:size" || got["intensity.png"] == "" {
		t.Fatalf("record files %v", got)
	}
	for name, want := range map[string]string{"h5tree-tree.txt": "/Data", "size-size.txt": itoa(e.Size)} {
		req, _ := http.NewRequest(http.MethodGet, b.Server.URL()+"/api/v1/records/"+e.RunID+"/files/"+name, nil)
		req.Header.Set("Authorization", "Bearer "+b.AdminToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Fatalf("%s: %d %q, want %q in it", name, resp.StatusCode, body, want)
		}
	}
	// The run page says where each step ran.
	_, page := signIn(t, b).get("/runs/" + e.RunID)
	for step, host := range map[string]string{"analyze": "server", "tree": "server", "size": "hpc-1@endpoint:box"} {
		if !regexp.MustCompile(`<tr data-step="` + step + `"><td>` + step + `</td><td>` + host + `</td>`).MatchString(page) {
			t.Errorf("run page: step %s not shown as run on %s:\n%s", step, host, page)
		}
	}
	// A command that hangs on the endpoint is stopped at the step's timeout
	// (counted on the endpoint, not in a batch queue).
	t0 := time.Now()
	e = write("slow", "slow.emd")
	if e.State != agent.StateFailed || !strings.Contains(e.Error, "timed out after 1s on endpoint hpc-1") || time.Since(t0) > 30*time.Second {
		t.Fatalf("a hung command on the endpoint: %+v after %v", e, time.Since(t0))
	}
	// A misspelt where is refused when the flows are loaded, with its line.
	typo, err := flow.ParseConfig([]byte("flows:\n  - name: typo\n    steps:\n      - {name: transfer}\n      - {name: analyze, params: {where: endpiont}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := box.Start(ctx, box.Config{Dir: t.TempDir(), Workers: workers, Flows: &typo}); err == nil ||
		!strings.Contains(err.Error(), "line 5: flow typo, step analyze: params: where must be server or endpoint, not endpiont") {
		t.Fatalf("a misspelt where: %v", err)
	}
	e = write("broken", "broken.emd")
	if e.State != agent.StateFailed || !strings.Contains(e.Error, `command "rm-everything"`) || !strings.Contains(e.Error, "no such command") {
		t.Fatalf("a step naming an unconfigured command: %+v", e)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
