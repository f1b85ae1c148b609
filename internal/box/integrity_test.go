package box_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/picoflow/picoflow/internal/agent"
	"github.com/picoflow/picoflow/internal/agentcli"
	"github.com/picoflow/picoflow/internal/auth"
	"github.com/picoflow/picoflow/internal/box"
	"github.com/picoflow/picoflow/internal/catalog"
	"github.com/picoflow/picoflow/internal/checksum"
	"github.com/picoflow/picoflow/internal/command"
	"github.com/picoflow/picoflow/internal/compute"
	"github.com/picoflow/picoflow/internal/flow"
	"github.com/picoflow/picoflow/internal/record"
	"github.com/picoflow/picoflow/internal/server"
	"github.com/picoflow/picoflow/internal/simulate"
	"github.com/picoflow/picoflow/internal/upload"
)

// call makes one API request with a bearer token and returns the status,
// the body and the headers.
func call(t *testing.T, method, url, token string, body io.Reader) (int, []byte, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(method, url, body)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if method == http.MethodPost || method == http.MethodPatch || method == http.MethodHead || method == http.MethodDelete {
		req.Header.Set("Tus-Resumable", "1.0.0")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header
}

type runReply struct {
	ID, State, Error, Agent, FileName string
	Status                            int
}

// sendBytes uploads data as name declaring sha, then asks for its run.
func sendBytes(t *testing.T, base, token string, data []byte, name, sha, flowName string) (uploadURL string, run runReply) {
	t.Helper()
	src := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	c := &upload.Client{Endpoint: base + "/files/", Token: token}
	u, err := c.Upload(context.Background(), src, "", map[string]string{upload.MetaFilename: name, upload.MetaSHA256: sha, upload.MetaFlow: flowName,
		upload.MetaAgent: "agent:someone-else"}, func(string) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	return u, startRun(t, base, token, u)
}

func startRun(t *testing.T, base, token, uploadURL string) runReply {
	t.Helper()
	status, body, _ := call(t, http.MethodPost, base+"/api/v1/runs", token, strings.NewReader(`{"upload":"`+uploadURL+`"}`))
	var r runReply
	json.Unmarshal(body, &r)
	r.Status = status
	if status >= 300 {
		r.Error = string(body)
	}
	return r
}

func waitRun(t *testing.T, b *box.Box, id string) *flow.Run {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r, err := b.Server.Engine.Wait(ctx, id)
	if err != nil || !r.Terminal() {
		t.Fatalf("run %s did not finish: %+v %v", id, r, err)
	}
	return r
}

func simulated(t *testing.T, seed uint64) ([]byte, string) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "si.emd")
	if _, err := simulate.WriteSpectrumImage(context.Background(), p, simulate.SpectrumImageSpec{Width: 24, Height: 24, Support: "C", Elements: []string{"Cu"}, CountsPerPixel: 100, Seed: seed}); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(p)
	sum, _, err := checksum.File(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	return data, sum
}

// TestFailedRunDoesNotBlockContent: a run that failed (here: bytes that
// were not the declared content, from a careless or hostile sender) never
// blocks that content. The next correct upload restarts the run on its own
// bytes, the upload is not deleted, and the run then belongs to its new
// sender only. A duplicate sent while the content's run is still going is
// kept until that run has finished.
func TestFailedRunDoesNotBlockContent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	o := &outcomes{ch: make(chan agent.Entry, 8)}
	b := startBox(t, box.Config{Settle: 200 * time.Millisecond, OnChange: o.onChange})
	base := b.Server.URL()
	mallory, err := b.Server.Tokens.Create(ctx, "mallory", "agent:mallory", auth.RoleAgent)
	if err != nil {
		t.Fatal(err)
	}
	data, sum := simulated(t, 31)

	// Someone declares the file's SHA-256 for other bytes: that run fails.
	_, first := sendBytes(t, base, mallory, bytes.Repeat([]byte("x"), 4096), "claim.emd", sum, "hyperspectral")
	if first.Status != http.StatusCreated {
		t.Fatalf("hostile run: %+v", first)
	}
	if r := waitRun(t, b, first.ID); r.State != flow.StateFailed || !strings.Contains(r.Error, "checksum mismatch") {
		t.Fatalf("hostile run: %s %s", r.State, r.Error)
	}
	// The instrument's agent sends the real file: it is analysed.
	path := filepath.Join(b.Folders["hyperspectral"], "real.emd")
	os.WriteFile(path, data, 0o644)
	e := o.next(t)
	if e.State != agent.StateDone {
		t.Fatalf("the real file after a failed claim on its content: %+v", e)
	}
	r, err := b.Server.Engine.Run(ctx, e.RunID)
	if err != nil || r.State != flow.StateSucceeded || r.Agent != "agent:picoprobe-pc" || r.FileName != "real.emd" || r.RecordID == "" {
		t.Fatalf("run %+v %v", r, err)
	}
	t.Logf("the failed run %s was restarted as %s on the agent's upload", first.ID, r.ID)
	// The claimant no longer sees the run.
	if status, _, _ := call(t, http.MethodGet, base+"/api/v1/runs/"+r.ID, mallory, nil); status != http.StatusNotFound {
		t.Errorf("the first sender reads the restarted run: %d", status)
	}

	// An agent's own corrupt attempt, then the right bytes: one run, which
	// succeeds on the second upload.
	data2, sum2 := simulated(t, 32)
	_, bad := sendBytes(t, base, b.AgentToken, append(data2[:len(data2)-10:len(data2)-10], bytes.Repeat([]byte{0}, 10)...), "two.emd", sum2, "hyperspectral")
	if r := waitRun(t, b, bad.ID); r.State != flow.StateFailed {
		t.Fatalf("corrupt attempt: %+v", r)
	}
	var files struct{ Runs []runReply }
	getJSON(t, base+"/api/v1/files/"+sum2, b.AgentToken, &files)
	if len(files.Runs) != 1 || files.Runs[0].State != flow.StateFailed {
		t.Fatalf("/files/%s: %+v", sum2, files)
	}
	u2, good := sendBytes(t, base, b.AgentToken, data2, "two.emd", sum2, "hyperspectral")
	if good.Status != http.StatusCreated || good.ID != bad.ID {
		t.Fatalf("the right bytes after a corrupt attempt: %+v (first run %s)", good, bad.ID)
	}
	if r := waitRun(t, b, good.ID); r.State != flow.StateSucceeded {
		t.Fatalf("second attempt: %s %s", r.State, r.Error)
	}
	// The same bytes again, after success: the run is returned, the
	// needless upload removed. While a run is going, a duplicate waits (409).
	u3, again := sendBytes(t, base, b.AgentToken, data2, "two-again.emd", sum2, "hyperspectral")
	if again.Status != http.StatusOK || again.ID != good.ID {
		t.Fatalf("duplicate of a finished run: %+v", again)
	}
	if status, _, _ := call(t, http.MethodHead, u3, b.AgentToken, nil); status != http.StatusNotFound {
		t.Errorf("the duplicate upload is still there: %d", status)
	}
	if status, _, _ := call(t, http.MethodHead, u2, b.AgentToken, nil); status != http.StatusNotFound {
		t.Errorf("the run's own upload is still there after transfer: %d", status)
	}
	data3, sum3 := simulated(t, 33)
	_, r1 := sendBytes(t, base, b.AgentToken, data3, "three.emd", sum3, "hyperspectral")
	u4, r2 := sendBytes(t, base, b.AgentToken, data3, "three-copy.emd", sum3, "hyperspectral")
	if r2.Status == http.StatusConflict {
		if status, _, _ := call(t, http.MethodHead, u4, b.AgentToken, nil); status != http.StatusOK {
			t.Errorf("a duplicate was deleted while the content's run was going: %d", status)
		}
		waitRun(t, b, r1.ID)
		r2 = startRun(t, base, b.AgentToken, u4)
	}
	if r2.Status != http.StatusOK || r2.ID != r1.ID {
		t.Fatalf("duplicate: %+v, first %+v", r2, r1)
	}
}

// TestLongFileNames: names of 243-255 bytes (the limit of the instrument
// PC's file system) are stored under a bounded name and keep their whole
// name in the run and the record.
func TestLongFileNames(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	o := &outcomes{ch: make(chan agent.Entry, 8)}
	b := startBox(t, box.Config{Settle: 200 * time.Millisecond, OnChange: o.onChange})
	for i, name := range []string{strings.Repeat("x", 251) + ".emd", strings.Repeat("é", 125) + ".emd"} {
		data, _ := simulated(t, uint64(40+i))
		if err := os.WriteFile(filepath.Join(b.Folders["hyperspectral"], name), data, 0o644); err != nil {
			t.Fatal(err)
		}
		e := o.next(t)
		if e.State != agent.StateDone {
			t.Fatalf("%d-byte name: %+v", len(name), e)
		}
		r, _ := b.Server.Engine.Run(ctx, e.RunID)
		if r.FileName != name || len(filepath.Base(r.StoredPath)) > 200 {
			t.Fatalf("%d-byte name: run file name %q, stored as %q", len(name), r.FileName, filepath.Base(r.StoredPath))
		}
		ent, err := b.Server.Catalog.Get(ctx, r.RecordID, []string{auth.RoleAdmin})
		if err != nil || !strings.HasSuffix(ent.Title(), name) {
			t.Fatalf("record title %q, %v", ent.Title(), err)
		}
	}
}

// events collects the run IDs a server-sent event stream carries.
type events struct {
	mu  sync.Mutex
	ids map[string]bool
}

func subscribe(t *testing.T, url, token string) (*events, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("events: %v %v", resp, err)
	}
	ev := &events{ids: map[string]bool{}}
	go func() {
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var e struct {
					RunID string `json:"run_id"`
				}
				json.Unmarshal([]byte(data), &e)
				ev.mu.Lock()
				ev.ids[e.RunID] = true
				ev.mu.Unlock()
			}
		}
	}()
	return ev, cancel
}

func (e *events) has(id string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.ids[id]
}

// TestRunsVisibleToReadersOnly: a run is read by the agent that sent its
// file, by the readers of the record its flow publishes, and by
// administrators: in the API (list, run, files, events, stats) and in the
// portal (runs list, run page). Another agent and another group see
// nothing of it.
func TestRunsVisibleToReadersOnly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	flows, err := flow.ParseConfig([]byte(`
flows:
  - name: alpha
    steps:
      - {name: transfer}
      - {name: analyze}
      - {name: publish, params: {visible_to: ["group:alpha"]}}
`))
	if err != nil {
		t.Fatal(err)
	}
	o := &outcomes{ch: make(chan agent.Entry, 8)}
	b := startBox(t, box.Config{Settle: 200 * time.Millisecond, OnChange: o.onChange, Flows: &flows})
	base := b.Server.URL()
	other, _ := b.Server.Tokens.Create(ctx, "other", "agent:other", auth.RoleAgent)
	for _, u := range []struct{ name, group string }{{"alice", "group:alpha"}, {"bob", "group:ALPHA"}} {
		if err := b.Server.Accounts.Set(ctx, u.name, "pw-"+u.name+"-long-enough", u.group); err != nil {
			t.Fatal(err)
		}
	}
	mine, stopMine := subscribe(t, base+"/api/v1/events", b.AgentToken)
	defer stopMine()
	theirs, stopTheirs := subscribe(t, base+"/api/v1/events", other)
	defer stopTheirs()

	data, sum := simulated(t, 50)
	os.WriteFile(filepath.Join(b.Folders["alpha"], "alpha.emd"), data, 0o644)
	e := o.next(t)
	if e.State != agent.StateDone {
		t.Fatalf("file: %+v", e)
	}
	time.Sleep(300 * time.Millisecond) // the last events reach the streams

	type check struct {
		path string
		see  func(body []byte) bool
	}
	checks := []check{
		{"/api/v1/runs", func(b []byte) bool { return strings.Contains(string(b), e.RunID) }},
		{"/api/v1/runs/" + e.RunID, func(b []byte) bool { return strings.Contains(string(b), e.RunID) }},
		{"/api/v1/files/" + sum, func(b []byte) bool { return strings.Contains(string(b), e.RunID) }},
		{"/api/v1/stats", func(b []byte) bool { return strings.Contains(string(b), `"alpha"`) }},
	}
	for _, who := range []struct {
		name, token string
		sees        bool
	}{{"sender", b.AgentToken, true}, {"admin", b.AdminToken, true}, {"another agent", other, false}} {
		for _, c := range checks {
			status, body, _ := call(t, http.MethodGet, base+c.path, who.token, nil)
			if got := status == 200 && c.see(body); got != who.sees {
				t.Errorf("%s GET %s: %d, sees the run: %v, want %v\n%s", who.name, c.path, status, got, who.sees, body)
			}
		}
	}
	if !mine.has(e.RunID) || theirs.has(e.RunID) {
		t.Errorf("events: the sender saw the run: %v; another agent: %v", mine.has(e.RunID), theirs.has(e.RunID))
	}
	for _, who := range []struct {
		name string
		sees bool
	}{{"alice", true}, {"bob", false}} {
		u := newBrowser(t, base)
		_, login := u.get("/login")
		if code, body := u.post("/login", url.Values{"csrf": {csrfOf(t, login)}, "user": {who.name}, "password": {"pw-" + who.name + "-long-enough"}}); code != 200 {
			t.Fatalf("sign in %s: %d\n%s", who.name, code, body)
		}
		_, list := u.get("/runs")
		status, _ := u.get("/runs/" + e.RunID)
		if got := strings.Contains(list, "alpha.emd"); got != who.sees || (status == 200) != who.sees {
			t.Errorf("%s (portal): runs list shows the run: %v, run page %d; want %v", who.name, got, status, who.sees)
		}
	}
}

// TestEndpointActsOnlyForItself: the endpoint's identity comes from its
// token; a label (?endpoint=) tells apart processes sharing a token but
// cannot name another token's endpoint. A task's input, heartbeat,
// products and completion are accepted only from the endpoint holding it.
func TestEndpointActsOnlyForItself(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := startBox(t, box.Config{})
	base := b.Server.URL()
	one, _ := b.Server.Tokens.Create(ctx, "one", "endpoint:one", auth.RoleEndpoint)
	two, _ := b.Server.Tokens.Create(ctx, "two", "endpoint:two", auth.RoleEndpoint)
	in := filepath.Join(t.TempDir(), "x.emd")
	os.WriteFile(in, []byte("input"), 0o644)
	if _, err := b.Server.Tasks().Submit(ctx, "run-x", 1, "analyze", compute.Input{FileName: "x.emd", Path: in}); err != nil {
		t.Fatal(err)
	}
	status, body, _ := call(t, http.MethodPost, base+"/api/v1/compute/claim?endpoint=a&wait=2s", one, nil)
	var task compute.Task
	if err := json.Unmarshal(body, &task); status != 200 || err != nil || task.Endpoint != "a@endpoint:one" {
		t.Fatalf("claim: %d %s", status, body)
	}
	id := task.ID
	for _, label := range []string{"a", "a@endpoint:one", "one", ""} {
		q := "?endpoint=" + url.QueryEscape(label)
		for _, req := range []struct{ method, path string }{
			{http.MethodPost, "/heartbeat"}, {http.MethodGet, "/input"}, {http.MethodPut, "/products/map.png"}, {http.MethodPost, "/complete"},
		} {
			body := io.Reader(nil)
			if req.method != http.MethodGet {
				body = strings.NewReader(`{"error":"taken over"}`)
			}
			if status, _, _ := call(t, req.method, base+"/api/v1/compute/tasks/"+id+req.path+q, two, body); status != http.StatusNotFound {
				t.Errorf("endpoint:two %s %s%s on endpoint:one's task: %d, want 404", req.method, req.path, q, status)
			}
		}
	}
	if status, _, _ := call(t, http.MethodPost, base+"/api/v1/compute/tasks/"+id+"/heartbeat?endpoint=a", one, nil); status != http.StatusNoContent {
		t.Errorf("the holder's heartbeat: %d", status)
	}
	if status, body, _ := call(t, http.MethodGet, base+"/api/v1/compute/tasks/"+id+"/input?endpoint=a", one, nil); status != 200 || string(body) != "input" {
		t.Errorf("the holder's input: %d %q", status, body)
	}
}

// TestServedProductsCannotRunScript: whatever media type an analysis, a
// command or an endpoint gave a product, HTML, SVG and other active types
// are served as attachments of type application/octet-stream, never
// sniffed, under a sandboxing CSP; PNG figures stay inline.
func TestServedProductsCannotRunScript(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	b := startBox(t, box.Config{Dir: dir})
	products := filepath.Join(dir, "server", "products", "evil")
	os.MkdirAll(products, 0o750)
	files := map[string]string{
		"page.html": "text/html", "pic.svg": "image/svg+xml", "x.xml": "application/xhtml+xml", "run.js": "text/javascript",
		"plain.png": "image/png", "table.csv": "text/csv",
	}
	var rf []record.File
	for name, mt := range files {
		os.WriteFile(filepath.Join(products, name), []byte(`<html><script>alert(document.cookie)</script></html>`), 0o644)
		rf = append(rf, record.File{Name: name, MediaType: mt, Role: "command:evil"})
	}
	if err := b.Server.Catalog.Put(ctx, &catalog.Entry{ID: "evil", RunID: "evil", VisibleTo: []string{catalog.Public},
		Record: &record.Record{ID: "evil", Titles: []record.Title{{Title: "evil"}}, Files: rf}}); err != nil {
		t.Fatal(err)
	}
	for name, mt := range files {
		status, _, h := call(t, http.MethodGet, b.Server.URL()+"/api/v1/records/evil/files/"+name, "", nil)
		inline := mt == "image/png" || mt == "text/csv"
		ct, cd := h.Get("Content-Type"), h.Get("Content-Disposition")
		if status != 200 || h.Get("X-Content-Type-Options") != "nosniff" || !strings.Contains(h.Get("Content-Security-Policy"), "sandbox") {
			t.Errorf("%s: %d nosniff=%q csp=%q", name, status, h.Get("X-Content-Type-Options"), h.Get("Content-Security-Policy"))
		}
		if inline && (!strings.HasPrefix(ct, mt) || cd != "") {
			t.Errorf("%s (%s): served as %q, %q", name, mt, ct, cd)
		}
		if !inline && (ct != "application/octet-stream" || !strings.HasPrefix(cd, "attachment")) {
			t.Errorf("%s (%s): served as %q, %q; want an octet-stream attachment", name, mt, ct, cd)
		}
	}
}

// TestUploadsBelongToTheirSender: the token decides who sent a file (a
// metadata field does not); another agent cannot read, write, delete or
// start a run on someone's upload; a token restricted to some flows
// cannot send to others.
func TestUploadsBelongToTheirSender(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := startBox(t, box.Config{})
	base := b.Server.URL()
	other, _ := b.Server.Tokens.Create(ctx, "other", "agent:other", auth.RoleAgent)
	restricted, _ := b.Server.Tokens.CreateRestricted(ctx, "only emd", "agent:emd-only", []string{"emd"}, auth.RoleAgent)
	data, sum := simulated(t, 60)
	meta := map[string]string{upload.MetaFilename: "mine.emd", upload.MetaSHA256: sum, upload.MetaFlow: "emd", upload.MetaAgent: "agent:other",
		upload.MetaOwner: "agent:other"}
	c := &upload.Client{Endpoint: base + "/files/", Token: b.AgentToken}
	u, err := c.Create(ctx, int64(len(data)), meta)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{http.MethodHead, http.MethodPatch, http.MethodDelete} {
		var body io.Reader
		if m == http.MethodPatch {
			body = bytes.NewReader(data)
		}
		req, _ := http.NewRequest(m, u, body)
		req.Header.Set("Authorization", "Bearer "+other)
		req.Header.Set("Tus-Resumable", "1.0.0")
		req.Header.Set("Upload-Offset", "0")
		req.Header.Set("Content-Type", "application/offset+octet-stream")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("another agent's %s on the upload: %d, want 404", m, resp.StatusCode)
		}
	}
	src := filepath.Join(t.TempDir(), "mine.emd")
	os.WriteFile(src, data, 0o644)
	f, _ := os.Open(src)
	if _, err := c.Send(ctx, u, f, 0, int64(len(data))); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if r := startRun(t, base, other, u); r.Status != http.StatusNotFound {
		t.Errorf("another agent starts a run on the upload: %+v", r)
	}
	r := startRun(t, base, b.AgentToken, u)
	if r.Status != http.StatusCreated || r.Agent != "agent:picoprobe-pc" {
		t.Fatalf("run %+v: the sender must be the token's subject", r)
	}
	cr := &upload.Client{Endpoint: base + "/files/", Token: restricted}
	if _, err := cr.Create(ctx, 10, map[string]string{upload.MetaFilename: "x.emd", upload.MetaSHA256: sum, upload.MetaFlow: "hyperspectral"}); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("a token restricted to emd sends to hyperspectral: %v", err)
	}
	if _, err := cr.Create(ctx, 10, map[string]string{upload.MetaFilename: "x.emd", upload.MetaSHA256: sum, upload.MetaFlow: "emd"}); err != nil {
		t.Errorf("a token restricted to emd sends to emd: %v", err)
	}
}

// TestSignInHardening: after sign-in the portal only goes to its own pages
// (a browser reads "/\t/evil.example" as "//evil.example"); wrong
// passwords slow down further tries for the account and the address, even
// with the right password, until the back-off has passed.
func TestSignInHardening(t *testing.T) {
	t.Parallel()
	b := startBox(t, box.Config{})
	u := newBrowser(t, b.Server.URL())
	u.c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	try := func(user, password, next string) (int, string) {
		_, login := u.get("/login")
		resp, err := u.c.PostForm(u.base+"/login", url.Values{"csrf": {csrfOf(t, login)}, "user": {user}, "password": {password}, "next": {next}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Location")
	}
	for _, next := range []string{"/\t/evil.example", "/\n/evil.example", "/\\evil.example", "//evil.example", "https://evil.example/"} {
		if code, loc := try("admin", b.AdminPassword, next); code != http.StatusSeeOther || loc != "/search" {
			t.Errorf("next=%q: %d Location %q, want /search", next, code, loc)
		}
	}
	if code, loc := try("admin", b.AdminPassword, "/runs?state=failed"); loc != "/runs?state=failed" {
		t.Errorf("a local next: %d %q", code, loc)
	}
	for i := range 5 {
		if code, _ := try("admin", "wrong", ""); code != http.StatusUnauthorized {
			t.Fatalf("wrong password %d: %d", i+1, code)
		}
	}
	if code, _ := try("admin", b.AdminPassword, ""); code != http.StatusTooManyRequests {
		t.Fatalf("the right password straight after 5 wrong ones: %d, want 429", code)
	}
	if code, _ := try("someone-else", "x", ""); code != http.StatusTooManyRequests {
		t.Fatalf("another account from the same address: %d, want 429", code)
	}
	time.Sleep(1100 * time.Millisecond)
	if code, loc := try("admin", b.AdminPassword, ""); code != http.StatusSeeOther || loc != "/search" {
		t.Fatalf("the right password after the back-off: %d %q", code, loc)
	}
}

// TestDocumentedAccessList: the flows example of docs/operations.md loads,
// and its records and runs are visible to the group it names and to no
// one else; the same example with the principal unquoted (a YAML map) is
// refused at start with its line.
func TestDocumentedAccessList(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	doc, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	var example string
	for _, block := range strings.Split(string(doc), "```yaml\n")[1:] {
		if b, _, _ := strings.Cut(block, "```"); strings.Contains(b, "visible_to") {
			example = b
		}
	}
	if example == "" {
		t.Fatal("docs/operations.md has no yaml example with visible_to")
	}
	flows, err := flow.ParseConfig([]byte(example))
	if err != nil {
		t.Fatalf("the documented example: %v", err)
	}
	o := &outcomes{ch: make(chan agent.Entry, 4)}
	b, err := box.Start(ctx, box.Config{Dir: t.TempDir(), Workers: workers, Settle: 200 * time.Millisecond, OnChange: o.onChange, Flows: &flows})
	if err != nil {
		t.Fatalf("the documented example: %v", err)
	}
	defer b.Stop(ctx)
	data, _ := simulated(t, 70)
	os.WriteFile(filepath.Join(b.Folders["hyperspectral"], "doc.emd"), data, 0o644)
	e := o.next(t)
	if e.State != agent.StateDone {
		t.Fatalf("a file through the documented flow: %+v", e)
	}
	for _, who := range []struct {
		principals []string
		sees       bool
	}{{[]string{"user:alice", "group:picoprobe"}, true}, {[]string{"user:bob", "group:other"}, false}, {[]string{"user:eve", "group:PicoProbe"}, false}} {
		_, err := b.Server.Catalog.Get(ctx, e.RunID, who.principals)
		readable, _ := b.Server.Engine.CanRead(ctx, e.RunID, who.principals)
		if (err == nil) != who.sees || readable != who.sees {
			t.Errorf("%v: record %v, run readable %v; want %v", who.principals, err, readable, who.sees)
		}
	}
	unquoted, err := flow.ParseConfig([]byte(strings.Replace(example, `["group:picoprobe"]`, `[group:picoprobe]`, 1)))
	if err != nil {
		t.Fatal(err)
	}
	_, err = box.Start(ctx, box.Config{Dir: t.TempDir(), Workers: workers, Flows: &unquoted})
	if err == nil || !strings.Contains(err.Error(), "line 7:") || !strings.Contains(err.Error(), `quote principals`) {
		t.Fatalf("the example with the principal unquoted: %v", err)
	}
	t.Logf("unquoted: %v", err)
}

// TestRequestLimits: a request body that trickles (an unauthenticated
// POST /login that never ends) is cut off after the body timeout instead
// of holding its connection for ever; bodies outside uploads are capped;
// /metrics can be served apart, without a token, on a private address.
func TestRequestLimits(t *testing.T) {
	t.Parallel()
	metricsAddr := freePort(t)
	b := startBox(t, box.Config{Server: func(c *server.Config) {
		c.BodyTimeout = 500 * time.Millisecond
		c.MetricsAddr = metricsAddr
	}})
	base := b.Server.URL()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100000\r\n\r\nuser=a")
	t0 := time.Now()
	conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	io.Copy(io.Discard, conn) // returns when the server closes the connection
	if d := time.Since(t0); d > 10*time.Second {
		t.Errorf("a trickling body held its connection for %v", d)
	}
	big := strings.NewReader(`{"upload":"` + strings.Repeat("x", 2<<20) + `"}`)
	if status, _, _ := call(t, http.MethodPost, base+"/api/v1/runs", b.AgentToken, big); status != http.StatusBadRequest && status != http.StatusRequestEntityTooLarge {
		t.Errorf("a 2 MiB request body: %d", status)
	}
	if status, _, _ := call(t, http.MethodGet, base+"/metrics", b.AgentToken, nil); status != http.StatusNotFound {
		t.Errorf("/metrics on the main address with --metrics-addr set: %d, want 404", status)
	}
	if status, body, _ := call(t, http.MethodGet, "http://"+metricsAddr+"/metrics", "", nil); status != 200 || !strings.Contains(string(body), "picoflow_") {
		t.Errorf("/metrics on the metrics address: %d", status)
	}
}

// TestSecondServerOnOneDataDir: a second server on the SQLite data
// directory of a running one refuses to start, naming the first; once the
// first has stopped, it starts.
func TestSecondServerOnOneDataDir(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	b, err := box.Start(ctx, box.Config{Dir: dir, Workers: workers})
	if err != nil {
		t.Fatal(err)
	}
	cfg := server.Config{DataDir: filepath.Join(dir, "server"), Addr: "127.0.0.1:0", Workers: workers}
	if _, err := server.New(ctx, cfg); err == nil || !strings.Contains(err.Error(), "another picoflow server") {
		t.Fatalf("a second server on the same data directory: %v", err)
	}
	b.Stop(ctx)
	s, err := server.New(ctx, cfg)
	if err != nil {
		t.Fatalf("after the first stopped: %v", err)
	}
	s.Stop(ctx)
}

// TestAgentChecksItsConfiguration: the agent refuses to start with a
// missing folder, a flow the server does not offer to its token, or a
// token the server refuses, saying which; an unreachable server is not a
// reason (files wait).
func TestAgentChecksItsConfiguration(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := startBox(t, box.Config{})
	restricted, _ := b.Server.Tokens.CreateRestricted(ctx, "emd only", "agent:emd-only", []string{"emd"}, auth.RoleAgent)
	dir := t.TempDir()
	check := func(server, token string, folders ...agent.Folder) error {
		a, err := agent.New(ctx, agent.Config{Server: server, Token: token, Folders: folders, Ledger: filepath.Join(t.TempDir(), "l.db")})
		if err != nil {
			t.Fatal(err)
		}
		defer a.Stop()
		return a.Check(ctx)
	}
	base := b.Server.URL()
	if err := check(base, b.AgentToken, agent.Folder{Path: dir, Flow: "hyperspectral"}); err != nil {
		t.Errorf("a good configuration: %v", err)
	}
	for _, tc := range []struct {
		name, server, token string
		folder              agent.Folder
		want                string
	}{
		{"missing folder", base, b.AgentToken, agent.Folder{Path: filepath.Join(dir, "nope"), Flow: "emd"}, "no such file"},
		{"misspelt flow", base, b.AgentToken, agent.Folder{Path: dir, Flow: "hyperspectal"}, `flow "hyperspectal" is not offered`},
		{"flow not for this token", base, restricted, agent.Folder{Path: dir, Flow: "hyperspectral"}, "it may use: emd"},
		{"refused token", base, "pf_wrong", agent.Folder{Path: dir, Flow: "emd"}, "refuses this agent's token"},
	} {
		if err := check(tc.server, tc.token, tc.folder); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	if err := check("http://"+freePort(t), b.AgentToken, agent.Folder{Path: dir, Flow: "emd"}); err != nil {
		t.Errorf("an unreachable server: %v (files should wait)", err)
	}
}

// TestAgentYAMLReference: the agent YAML of docs/operations.md loads with
// every key understood.
func TestAgentYAMLReference(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	var example string
	for _, block := range strings.Split(string(doc), "```yaml\n")[1:] {
		if b, _, _ := strings.Cut(block, "```"); strings.Contains(b, "# agent.yaml") {
			example = b
		}
	}
	if example == "" {
		t.Fatal("docs/operations.md has no agent.yaml example")
	}
	path := filepath.Join(t.TempDir(), "agent.yaml")
	os.WriteFile(path, []byte(example), 0o644)
	cfg, err := agentcli.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server == "" || cfg.Instrument != "PicoProbe" || len(cfg.Folders) != 2 || cfg.Folders[0].Flow != "hyperspectral" || cfg.Settle != 2*time.Second ||
		cfg.IncompleteAfter != 10*time.Minute || cfg.Uploads != 2 || cfg.MaxRate != "400Mbit" || len(cfg.RateSchedule) != 2 || cfg.Folders[0].Path != `D:\Velox\SI` {
		t.Errorf("loaded %+v", cfg)
	}
}

// TestAgentFollowsServerRetry: a file whose run failed shows as done at
// the agent once an administrator's retry at the server has succeeded.
func TestAgentFollowsServerRetry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	marker := filepath.Join(t.TempDir(), "fixed")
	flows, err := flow.ParseConfig([]byte(`
flows:
  - name: picky
    steps:
      - {name: transfer}
      - {name: analyze}
      - {name: check, type: command, params: {command: check}, attempts: 1}
      - {name: publish}
`))
	if err != nil {
		t.Fatal(err)
	}
	cmds, err := command.Parse([]string{`check=sh -c 'test -f ` + marker + `'`})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	states := map[string]bool{}
	b := startBox(t, box.Config{Settle: 200 * time.Millisecond, Flows: &flows, Commands: cmds,
		RecheckFailed: 200 * time.Millisecond, OnChange: func(e agent.Entry) {
			mu.Lock()
			states[e.State] = true
			mu.Unlock()
		}})
	data, _ := simulated(t, 80)
	os.WriteFile(filepath.Join(b.Folders["picky"], "p.emd"), data, 0o644)
	entry := func() *agent.Entry {
		es, _ := b.Agent.Entries(ctx, 10)
		if len(es) == 0 {
			return nil
		}
		return es[0]
	}
	deadline := time.Now().Add(60 * time.Second)
	for e := entry(); e == nil || e.State != agent.StateFailed; e = entry() {
		if time.Now().After(deadline) {
			t.Fatalf("the file did not fail: %+v", e)
		}
		time.Sleep(100 * time.Millisecond)
	}
	os.WriteFile(marker, nil, 0o644)
	if status, body, _ := call(t, http.MethodPost, b.Server.URL()+"/api/v1/runs/"+entry().RunID+"/retry", b.AdminToken, nil); status != 200 {
		t.Fatalf("retry: %d %s", status, body)
	}
	deadline = time.Now().Add(60 * time.Second)
	for e := entry(); e.State != agent.StateDone; e = entry() {
		if time.Now().After(deadline) {
			t.Fatalf("the agent still shows %s after the retry succeeded at the server", e.State)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestStatusShowsWaitingFiles: a file that is not complete yet (its HDF5
// header claims more bytes than are there) is listed as waiting, with the
// reason, while the agent holds it; once complete it is sent and no longer
// waiting.
func TestStatusShowsWaitingFiles(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	o := &outcomes{ch: make(chan agent.Entry, 4)}
	dir := t.TempDir()
	b := startBox(t, box.Config{Dir: dir, Settle: 200 * time.Millisecond, OnChange: o.onChange})
	data, _ := simulated(t, 90)
	path := filepath.Join(b.Folders["hyperspectral"], "growing.emd")
	os.WriteFile(path, data[:len(data)/2], 0o644)
	ledger := filepath.Join(dir, "instrument", "agent.db")
	var waiting []agent.Waiting
	for deadline := time.Now().Add(30 * time.Second); ; {
		waiting, _ = agent.ReadWaiting(ctx, ledger)
		if len(waiting) == 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(waiting) != 1 || waiting[0].Path != path || !strings.Contains(waiting[0].Reason, "not complete yet") {
		t.Fatalf("waiting: %+v", waiting)
	}
	os.WriteFile(path, data, 0o644)
	if e := o.next(t); e.State != agent.StateDone || e.Path != path {
		t.Fatalf("the completed file: %+v", e)
	}
	if w, _ := agent.ReadWaiting(ctx, ledger); len(w) != 0 {
		t.Errorf("still waiting after it was sent: %+v", w)
	}
}

// TestFolderSettingsReachTheRecord: a folder's instrument, proposal and
// sample (agent settings) are in the record, and the record is found by
// them.
func TestFolderSettingsReachTheRecord(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := startBox(t, box.Config{})
	dir := t.TempDir()
	a, err := agent.New(ctx, agent.Config{Server: b.Server.URL(), Token: b.AgentToken, Ledger: filepath.Join(t.TempDir(), "l.db"), Settle: 200 * time.Millisecond,
		Folders: []agent.Folder{{Path: dir, Flow: "hyperspectral", Instrument: "Spectra Ultra", Proposal: "GUP-81234", Sample: "PtNi octahedra"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer a.Stop()
	data, _ := simulated(t, 95)
	os.WriteFile(filepath.Join(dir, "ptni.emd"), data, 0o644)
	var e *agent.Entry
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if es, _ := a.Entries(ctx, 1); len(es) == 1 && (es[0].State == agent.StateDone || es[0].State == agent.StateFailed) {
			e = es[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the file did not finish")
		}
	}
	ent, err := b.Server.Catalog.Get(ctx, e.RunID, []string{auth.RoleAdmin})
	if err != nil {
		t.Fatalf("%+v: %v", e, err)
	}
	subjects := map[string]string{}
	for _, s := range ent.Record.Subjects {
		subjects[s.SubjectScheme] = s.Subject
	}
	if ent.Record.Instrument.Name != "Spectra Ultra" || subjects["proposal"] != "GUP-81234" || subjects["sample"] != "PtNi octahedra" {
		t.Errorf("instrument %q, subjects %v", ent.Record.Instrument.Name, subjects)
	}
	var res catalog.Result
	getJSON(t, b.Server.URL()+"/api/v1/records?q=GUP-81234", b.AdminToken, &res)
	if res.Total != 1 {
		t.Errorf("search by proposal: %d records", res.Total)
	}
}

// TestQuietServerLog: a server's start and a run log no River internals
// at info level (no "poll only mode", no producer job counts).
func TestQuietServerLog(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var buf bytes.Buffer
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(p)
	}), &slog.HandlerOptions{Level: slog.LevelInfo}))
	o := &outcomes{ch: make(chan agent.Entry, 4)}
	b, err := box.Start(ctx, box.Config{Dir: t.TempDir(), Workers: workers, Settle: 200 * time.Millisecond, OnChange: o.onChange, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	data, _ := simulated(t, 97)
	os.WriteFile(filepath.Join(b.Folders["hyperspectral"], "q.emd"), data, 0o644)
	o.next(t)
	b.Stop(ctx)
	mu.Lock()
	text := buf.String()
	mu.Unlock()
	for _, noise := range []string{"poll only mode", "Producer job counts", "component=river"} {
		if strings.Contains(text, noise) {
			t.Errorf("the log has %q", noise)
		}
	}
	if !strings.Contains(text, "server started") {
		t.Errorf("the log lacks the server's own lines:\n%s", text)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// startBox starts a box for a test (Workers filled in, a new Dir unless
// given) and stops it when the test ends.
func startBox(t *testing.T, cfg box.Config) *box.Box {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	cfg.Workers = workers
	b, err := box.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Stop(context.Background()) })
	return b
}
